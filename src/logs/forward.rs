//! Forwards captured log lines of supervised services to the local syslog daemon (RFC 5424
//! over its datagram socket) and to the systemd journal (its native protocol), so that hosts
//! which centralise logs through either see tend's services like any other program.

use crate::logs::Stream;

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::socket::{ControlMessage, MsgFlags, UnixAddr, sendmsg};

/// Facility "user-level messages": tend's services are ordinary programs, not the system.
const FACILITY_USER: u8 = 1;
/// Past this a syslog datagram is cut rather than lost: common daemons accept at least 8 KiB.
const SYSLOG_MAX_DATAGRAM: usize = 8192;
const APP_NAME_MAX: usize = 48;
const HOSTNAME_MAX: usize = 255;
/// Sealed so that journald may map the file without fearing changes behind its back.
const SEALS: SealFlag = SealFlag::F_SEAL_SHRINK
    .union(SealFlag::F_SEAL_GROW)
    .union(SealFlag::F_SEAL_WRITE)
    .union(SealFlag::F_SEAL_SEAL);
/// One huge line must not pin its size in memory for the rest of the daemon's life.
const KEEP_CAPACITY: usize = 64 * 1024;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Protocol {
    Syslog,
    Journal,
}

/// Sends lines to one socket in one protocol. Owned by a single thread.
#[derive(Debug)]
pub struct Forwarder {
    protocol: Protocol,
    path: PathBuf,
    socket: Option<UnixDatagram>,
    hostname: String,
    buf: Vec<u8>,
}

impl Forwarder {
    /// Does not connect yet (lazy): the socket may appear later.
    pub fn new(protocol: Protocol, socket: PathBuf) -> Forwarder {
        let hostname = match protocol {
            Protocol::Syslog => hostname(),
            Protocol::Journal => String::new(),
        };
        Forwarder {
            protocol,
            path: socket,
            socket: None,
            hostname,
            buf: Vec::new(),
        }
    }

    /// Sends one line; one trailing `\n`, then one trailing `\r`, are not part of the message.
    /// Errors (daemon absent, queue full: `WouldBlock`) are returned for the caller to count;
    /// the next call tries again from scratch.
    pub fn send(
        &mut self,
        time: SystemTime,
        service: &str,
        instance: u32,
        stream: Stream,
        line: &[u8],
    ) -> io::Result<()> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        self.buf.clear();
        let result = match self.protocol {
            Protocol::Syslog => {
                let msg_start = build_syslog(
                    &mut self.buf,
                    &self.hostname,
                    time,
                    service,
                    instance,
                    stream,
                    line,
                );
                open(&mut self.socket)
                    .and_then(|sock| send_syslog(sock, &self.path, &mut self.buf, msg_start))
            }
            Protocol::Journal => {
                build_journal(&mut self.buf, service, instance, stream, line);
                open(&mut self.socket).and_then(|sock| send_journal(sock, &self.path, &self.buf))
            }
        };
        self.buf.clear();
        self.buf.shrink_to(KEEP_CAPACITY);
        result
    }
}

/// The socket is unbound and every datagram is addressed by path (no `connect`): a restarted
/// daemon recreates its socket file, and resolving the path on each send follows it without
/// any reconnect logic, while a missing daemon is just an error on that one send.
fn open(slot: &mut Option<UnixDatagram>) -> io::Result<&UnixDatagram> {
    let sock = match slot.take() {
        Some(sock) => sock,
        None => {
            let sock = UnixDatagram::unbound()?;
            // A stuck daemon must cost a lost line, never a stalled log pipeline.
            sock.set_nonblocking(true)?;
            sock
        }
    };
    Ok(slot.insert(sock))
}

fn is_too_big(err: &io::Error) -> bool {
    err.raw_os_error() == Some(libc::EMSGSIZE)
}

fn severity(stream: Stream) -> u8 {
    match stream {
        Stream::Out => 6, // info
        Stream::Err => 4, // warning: stderr is not necessarily an error, but it stands out
    }
}

fn stream_name(stream: Stream) -> &'static str {
    match stream {
        Stream::Out => "stdout",
        Stream::Err => "stderr",
    }
}

fn hostname() -> String {
    let mut raw = [0u8; HOSTNAME_MAX + 1];
    // SAFETY: the pointer and length describe `raw`, which outlives the call.
    let rc = unsafe { libc::gethostname(raw.as_mut_ptr().cast(), raw.len()) };
    let raw = if rc == 0 { &raw[..] } else { &[][..] };
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    let name: String = raw[..end]
        .iter()
        .take(HOSTNAME_MAX)
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '_' })
        .collect();
    if name.is_empty() {
        "-".to_owned()
    } else {
        name
    }
}

/// Writes the RFC 5424 datagram into `out`; returns where MSG starts.
fn build_syslog(
    out: &mut Vec<u8>,
    hostname: &str,
    time: SystemTime,
    service: &str,
    instance: u32,
    stream: Stream,
    line: &[u8],
) -> usize {
    let pri = FACILITY_USER * 8 + severity(stream);
    // Writing into a Vec cannot fail.
    let _ = write!(out, "<{pri}>1 ");
    push_timestamp(out, time);
    out.push(b' ');
    out.extend_from_slice(hostname.as_bytes());
    out.push(b' ');
    // RFC 5424 APP-NAME is PRINTUSASCII only; unrepresentable characters keep their place.
    if service.is_empty() {
        out.push(b'-');
    }
    for c in service.chars().take(APP_NAME_MAX) {
        out.push(if c.is_ascii_graphic() { c as u8 } else { b'_' });
    }
    let _ = write!(out, " {instance} {} -", stream_name(stream));
    if !line.is_empty() {
        out.push(b' ');
    }
    let msg_start = out.len();
    // Raw bytes, no BOM: the RFC lets MSG be any octets, and rewriting them would lose data.
    out.extend_from_slice(line);
    msg_start
}

fn push_timestamp(out: &mut Vec<u8>, time: SystemTime) {
    crate::logs::line::rfc3339_millis(out, time);
}

fn send_syslog(
    sock: &UnixDatagram,
    path: &Path,
    buf: &mut Vec<u8>,
    msg_start: usize,
) -> io::Result<()> {
    match sock.send_to(buf, path) {
        Err(e) if is_too_big(&e) && buf.len() > SYSLOG_MAX_DATAGRAM => {
            let mut cut = SYSLOG_MAX_DATAGRAM.max(msg_start);
            // Do not leave half a UTF-8 character at the end (at most 3 continuation bytes).
            for _ in 0..3 {
                if cut > msg_start && buf.get(cut).is_some_and(|b| b & 0xC0 == 0x80) {
                    cut -= 1;
                }
            }
            buf.truncate(cut);
            sock.send_to(buf, path).map(drop)
        }
        other => other.map(drop),
    }
}

fn build_journal(out: &mut Vec<u8>, service: &str, instance: u32, stream: Stream, line: &[u8]) {
    push_field(out, "MESSAGE", line);
    let _ = write!(
        out,
        "PRIORITY={}\nSYSLOG_FACILITY={FACILITY_USER}\n",
        severity(stream)
    );
    push_field(out, "SYSLOG_IDENTIFIER", service.as_bytes());
    push_field(out, "TEND_SERVICE", service.as_bytes());
    let _ = write!(
        out,
        "TEND_INSTANCE={instance}\nTEND_STREAM={}\n",
        stream_name(stream)
    );
}

/// `KEY=value\n`, or, for a value the simple form cannot hold (a newline would end it early),
/// `KEY\n` + 64-bit little-endian length + value + `\n`.
fn push_field(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.extend_from_slice(key.as_bytes());
    if value.contains(&b'\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        out.push(b'=');
    }
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn send_journal(sock: &UnixDatagram, path: &Path, payload: &[u8]) -> io::Result<()> {
    match sock.send_to(payload, path) {
        Err(e) if is_too_big(&e) => send_journal_memfd(sock, path, payload),
        other => other.map(drop),
    }
}

/// journald's way for entries larger than a datagram: the payload goes in a sealed memfd and
/// an empty datagram carries only the descriptor.
fn send_journal_memfd(sock: &UnixDatagram, path: &Path, payload: &[u8]) -> io::Result<()> {
    let fd = memfd_create(
        c"tend-journal",
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )?;
    let mut file = File::from(fd);
    file.write_all(payload)?;
    fcntl(&file, FcntlArg::F_ADD_SEALS(SEALS))?;
    let addr = UnixAddr::new(path)?;
    let fds = [file.as_raw_fd()];
    sendmsg(
        sock.as_raw_fd(),
        &[],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        Some(&addr),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{IoSliceMut, Read, Seek, SeekFrom};
    use std::os::fd::{FromRawFd, OwnedFd, RawFd};
    use std::time::{Duration, UNIX_EPOCH};
    use tempfile::TempDir;

    /// 2026-11-23T14:15:39.123Z, worked out by hand: 1_795_443_339 s = 20_780 days + 51_339 s;
    /// 2026-01-01 is day 56 * 365 + 14 leap days = 20_454, so day 326 of 2026 (0-based),
    /// which after the 304 days of January to October is November 23; 51_339 s = 14:15:39.
    fn fixed_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_795_443_339_123)
    }

    fn receiver(dir: &TempDir) -> (UnixDatagram, PathBuf) {
        let path = dir.path().join("log.sock");
        let sock = UnixDatagram::bind(&path).expect("bind");
        sock.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        (sock, path)
    }

    fn put(fwd: &mut Forwarder, instance: u32, stream: Stream, line: &[u8]) {
        fwd.send(fixed_time(), "web", instance, stream, line)
            .expect("send");
    }

    fn recv(sock: &UnixDatagram) -> Vec<u8> {
        let mut buf = vec![0u8; 1 << 20];
        let n = sock.recv(&mut buf).expect("recv");
        buf.truncate(n);
        buf
    }

    fn timestamp(time: SystemTime) -> String {
        let mut out = Vec::new();
        push_timestamp(&mut out, time);
        String::from_utf8(out).expect("ascii")
    }

    /// Parses the journal native protocol back into (key, value) pairs.
    fn parse_journal(mut data: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut fields = Vec::new();
        while !data.is_empty() {
            let nl = data.iter().position(|&b| b == b'\n').expect("newline");
            match data[..nl].iter().position(|&b| b == b'=') {
                Some(eq) => {
                    let key = String::from_utf8(data[..eq].to_vec()).expect("key");
                    fields.push((key, data[eq + 1..nl].to_vec()));
                    data = &data[nl + 1..];
                }
                None => {
                    let key = String::from_utf8(data[..nl].to_vec()).expect("key");
                    let len_bytes: [u8; 8] = data[nl + 1..nl + 9].try_into().expect("len");
                    let len = u64::from_le_bytes(len_bytes) as usize;
                    let value = &data[nl + 9..nl + 9 + len];
                    assert_eq!(data[nl + 9 + len], b'\n');
                    fields.push((key, value.to_vec()));
                    data = &data[nl + 10 + len..];
                }
            }
        }
        fields
    }

    fn expected_journal(message: &[u8], priority: &str, stream: &str) -> Vec<(String, Vec<u8>)> {
        [
            ("MESSAGE", message),
            ("PRIORITY", priority.as_bytes()),
            ("SYSLOG_FACILITY", b"1"),
            ("SYSLOG_IDENTIFIER", b"web"),
            ("TEND_SERVICE", b"web"),
            ("TEND_INSTANCE", b"2"),
            ("TEND_STREAM", stream.as_bytes()),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_vec()))
        .collect()
    }

    /// A payload no datagram on this host can carry, whatever the default send buffer.
    fn oversized_len() -> usize {
        let wmem: usize = std::fs::read_to_string("/proc/sys/net/core/wmem_default")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        (300 * 1024).max(wmem + 1024)
    }

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(fixed_time()), "2026-11-23T14:15:39.123Z");
    }

    #[test]
    fn syslog_stdout_and_stderr() {
        let dir = TempDir::new().expect("tempdir");
        let (rx, path) = receiver(&dir);
        let mut fwd = Forwarder::new(Protocol::Syslog, path);
        let host = fwd.hostname.clone();
        assert!(!host.is_empty() && host.bytes().all(|b| b.is_ascii_graphic()));

        put(&mut fwd, 3, Stream::Out, b"hello world\n");
        let expected = format!("<14>1 2026-11-23T14:15:39.123Z {host} web 3 stdout - hello world");
        assert_eq!(recv(&rx), expected.as_bytes());

        put(&mut fwd, 0, Stream::Err, b"oops\r\n");
        let expected = format!("<12>1 2026-11-23T14:15:39.123Z {host} web 0 stderr - oops");
        assert_eq!(recv(&rx), expected.as_bytes());

        // Only one terminator is stripped; an empty line has no MSG at all.
        put(&mut fwd, 1, Stream::Out, b"\n\n");
        let expected = format!("<14>1 2026-11-23T14:15:39.123Z {host} web 1 stdout - \n");
        assert_eq!(recv(&rx), expected.as_bytes());
        put(&mut fwd, 1, Stream::Out, b"");
        let expected = format!("<14>1 2026-11-23T14:15:39.123Z {host} web 1 stdout -");
        assert_eq!(recv(&rx), expected.as_bytes());
    }

    #[test]
    fn syslog_app_name_and_raw_bytes() {
        let dir = TempDir::new().expect("tempdir");
        let (rx, path) = receiver(&dir);
        let mut fwd = Forwarder::new(Protocol::Syslog, path);
        let host = fwd.hostname.clone();
        let prefix = format!("<14>1 2026-11-23T14:15:39.123Z {host} ");
        let cases: [(String, &str); 4] = [
            ("my web\tapp".into(), "my_web_app"),
            ("café→x".into(), "caf__x"),
            ("a".repeat(60), &"a".repeat(48)),
            (String::new(), "-"),
        ];
        for (service, app) in &cases {
            fwd.send(fixed_time(), service, 7, Stream::Out, b"x")
                .expect("send");
            assert_eq!(recv(&rx), format!("{prefix}{app} 7 stdout - x").as_bytes());
        }

        let line = b"bad \xff\xfe utf8 \xc3\n";
        put(&mut fwd, 7, Stream::Out, line);
        let mut expected = format!("{prefix}web 7 stdout - ").into_bytes();
        expected.extend_from_slice(b"bad \xff\xfe utf8 \xc3");
        assert_eq!(recv(&rx), expected);
    }

    #[test]
    fn syslog_oversized_line_is_truncated() {
        let dir = TempDir::new().expect("tempdir");
        let (rx, path) = receiver(&dir);
        let mut fwd = Forwarder::new(Protocol::Syslog, path);
        let line = "é".repeat(oversized_len() / 2);
        put(&mut fwd, 1, Stream::Out, line.as_bytes());
        let got = recv(&rx);
        assert!(got.len() <= SYSLOG_MAX_DATAGRAM && got.len() >= SYSLOG_MAX_DATAGRAM - 3);
        let header = format!(
            "<14>1 2026-11-23T14:15:39.123Z {} web 1 stdout - ",
            fwd.hostname
        );
        assert!(got.starts_with(header.as_bytes()));
        let msg = std::str::from_utf8(&got[header.len()..]).expect("whole characters only");
        assert!(line.starts_with(msg) && !msg.is_empty());
        assert!(fwd.buf.capacity() <= KEEP_CAPACITY);
    }

    #[test]
    fn journal_simple_and_binary_fields() {
        let dir = TempDir::new().expect("tempdir");
        let (rx, path) = receiver(&dir);
        let mut fwd = Forwarder::new(Protocol::Journal, path);

        put(&mut fwd, 2, Stream::Out, b"hello\n");
        let got = recv(&rx);
        assert!(got.starts_with(b"MESSAGE=hello\nPRIORITY=6\n"));
        assert_eq!(
            parse_journal(&got),
            expected_journal(b"hello", "6", "stdout")
        );

        put(&mut fwd, 2, Stream::Err, b"two\nlines\xff\r\n");
        let got = recv(&rx);
        let mut binary = b"MESSAGE\n".to_vec();
        binary.extend_from_slice(&10u64.to_le_bytes());
        binary.extend_from_slice(b"two\nlines\xff\n");
        assert!(got.starts_with(&binary));
        let expected = expected_journal(b"two\nlines\xff", "4", "stderr");
        assert_eq!(parse_journal(&got), expected);
    }

    #[test]
    fn journal_oversized_entry_goes_through_memfd() {
        let dir = TempDir::new().expect("tempdir");
        let (rx, path) = receiver(&dir);
        let mut fwd = Forwarder::new(Protocol::Journal, path);
        let line: Vec<u8> = (0..oversized_len())
            .map(|i| b'a' + (i % 26) as u8)
            .collect();
        put(&mut fwd, 2, Stream::Out, &line);

        let mut data = [0u8; 16];
        let mut iov = [IoSliceMut::new(&mut data)];
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        let msg = nix::sys::socket::recvmsg::<()>(
            rx.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        )
        .expect("recvmsg");
        assert_eq!(msg.bytes, 0, "the datagram itself is empty");
        let mut fds = Vec::new();
        for c in msg.cmsgs().expect("cmsgs") {
            if let nix::sys::socket::ControlMessageOwned::ScmRights(received) = c {
                fds.extend(received);
            }
        }
        assert_eq!(fds.len(), 1);
        // SAFETY: SCM_RIGHTS just installed this descriptor in our table; nothing else owns it.
        let mut file = File::from(unsafe { OwnedFd::from_raw_fd(fds[0]) });
        let seals = fcntl(&file, FcntlArg::F_GET_SEALS).expect("seals");
        assert_eq!(SealFlag::from_bits_truncate(seals), SEALS);
        // The descriptor shares the sender's offset (journald maps the file instead of reading).
        file.seek(SeekFrom::Start(0)).expect("rewind");
        let mut payload = Vec::new();
        file.read_to_end(&mut payload).expect("read memfd");
        // Not assert_eq!: a failure would print megabytes.
        assert!(parse_journal(&payload) == expected_journal(&line, "6", "stdout"));
    }

    #[test]
    fn socket_appearing_later_and_daemon_restart() {
        let dir = TempDir::new().expect("tempdir");
        let path = dir.path().join("log.sock");
        for protocol in [Protocol::Syslog, Protocol::Journal] {
            let mut fwd = Forwarder::new(protocol, path.clone());
            let mut send = |text: &[u8]| fwd.send(fixed_time(), "web", 1, Stream::Out, text);
            assert!(send(b"early").is_err(), "nothing listens yet");

            let carries = |got: Vec<u8>, text: &str| match protocol {
                Protocol::Syslog => got.ends_with(format!(" - {text}").as_bytes()),
                Protocol::Journal => got.starts_with(format!("MESSAGE={text}\n").as_bytes()),
            };
            let (rx, _) = receiver(&dir);
            send(b"first").expect("send once bound");
            assert!(carries(recv(&rx), "first"));

            drop(rx);
            assert!(send(b"lost").is_err(), "daemon gone, socket left");
            std::fs::remove_file(&path).expect("remove");
            assert!(send(b"lost").is_err(), "socket removed");

            let (rx, _) = receiver(&dir);
            send(b"again").expect("send after restart");
            assert!(carries(recv(&rx), "again"));
            drop(rx);
            std::fs::remove_file(&path).expect("remove");
        }
    }

    #[test]
    fn stuck_receiver_gives_would_block() {
        for protocol in [Protocol::Syslog, Protocol::Journal] {
            let dir = TempDir::new().expect("tempdir");
            let (rx, path) = receiver(&dir);
            let mut fwd = Forwarder::new(protocol, path);
            let err = (0..100_000)
                .find_map(|_| {
                    fwd.send(fixed_time(), "web", 1, Stream::Out, b"never read")
                        .err()
                })
                .expect("the queue fills up");
            assert_eq!(err.kind(), io::ErrorKind::WouldBlock);

            rx.set_nonblocking(true).expect("nonblocking");
            let mut buf = [0u8; 256];
            while rx.recv(&mut buf).is_ok() {}
            put(&mut fwd, 1, Stream::Out, b"drained");
        }
    }
}
