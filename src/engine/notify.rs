//! The supervisor's side of systemd's sd_notify protocol: one datagram socket that
//! every child gets as `NOTIFY_SOCKET`, senders identified by kernel-attached
//! credentials, plus mapping a sender pid back to the instance it belongs to.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use nix::errno::Errno;
use nix::sys::socket::{
    self, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixAddr,
    UnixCredentials, sockopt,
};
use tokio::io::Interest;
use tokio::net::UnixDatagram;

/// Largest message accepted; systemd uses the same limit (PIPE_BUF).
pub const MAX_MESSAGE: usize = 4096;
/// The kernel's SCM_MAX_FD: with room for this many fds the control data can never be
/// truncated, so every fd a sender attaches reaches us and gets closed, none leak.
const SCM_MAX_FD: usize = 253;
/// Bound on the ppid walk, so a pathological or racing process tree cannot stall us.
const MAX_ANCESTRY: usize = 64;

/// The notification socket. The file is removed on drop if it is still ours.
#[derive(Debug)]
pub struct NotifySocket {
    sock: UnixDatagram,
    path: PathBuf,
    /// (dev, ino) of the socket file we created, so drop never unlinks a successor's.
    ident: (u64, u64),
    /// Whether drop removes the file: not for a socket taken over in an upgrade until the
    /// upgrade is done (a fallback to the previous binary still needs it).
    owns_file: std::sync::atomic::AtomicBool,
}

/// One received message, with the sender's credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notification {
    pub pid: u32,
    pub uid: u32,
    pub gid: u32,
    pub ready: bool,
    pub reloading: bool,
    pub stopping: bool,
    pub status: Option<String>,
    pub main_pid: Option<u32>,
    /// `WATCHDOG=1`
    pub watchdog: bool,
    /// `WATCHDOG=trigger`
    pub watchdog_trigger: bool,
    pub watchdog_usec: Option<u64>,
    pub errno: Option<i32>,
    pub extend_timeout_usec: Option<u64>,
    /// `MONOTONIC_USEC`, sent together with `RELOADING=1`.
    pub monotonic_usec: Option<u64>,
    /// Unknown assignments (`VAR=VALUE`), kept for logging.
    pub other: Vec<String>,
}

impl NotifySocket {
    /// Bind a unix datagram socket at `path` with SO_PASSCRED on, non-blocking and
    /// registered with the current tokio runtime (so call it from inside one).
    ///
    /// A stale socket file at `path` is removed first; any other kind of file is left
    /// alone and reported as `AlreadyExists`. The socket file gets mode 0o666 so
    /// children running as other users can send, but the permissions of the
    /// directories above it still apply: they must let those users search them.
    pub fn bind(path: &Path) -> io::Result<NotifySocket> {
        remove_stale(path)?;
        // SO_PASSCRED goes on before bind, so no datagram can arrive without credentials.
        let fd = socket::socket(
            AddressFamily::Unix,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )?;
        socket::setsockopt(&fd, sockopt::PassCred, &true)?;
        socket::bind(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
        let finish = || -> io::Result<NotifySocket> {
            // bind created the file under the umask; widen it explicitly.
            fs::set_permissions(path, fs::Permissions::from_mode(0o666))?;
            let meta = fs::symlink_metadata(path)?;
            let sock = UnixDatagram::from_std(std::os::unix::net::UnixDatagram::from(fd))?;
            Ok(NotifySocket {
                sock,
                path: path.to_owned(),
                ident: (meta.dev(), meta.ino()),
                owns_file: true.into(),
            })
        };
        finish().inspect_err(|_| {
            let _ = fs::remove_file(path);
        })
    }

    /// The socket the previous image of tend bound, from its descriptor (an upgrade): the
    /// datagrams sent meanwhile are waiting in it.
    pub fn adopt(fd: OwnedFd, path: &Path) -> io::Result<NotifySocket> {
        let ident = fs::symlink_metadata(path)
            .map(|meta| (meta.dev(), meta.ino()))
            .unwrap_or_default();
        let sock = std::os::unix::net::UnixDatagram::from(fd);
        sock.set_nonblocking(true)?;
        Ok(NotifySocket {
            sock: UnixDatagram::from_std(sock)?,
            path: path.to_owned(),
            ident,
            owns_file: false.into(),
        })
    }

    /// The upgrade that handed this socket over is done: its file is this image's to remove.
    pub fn own_file(&self) {
        self.owns_file
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its descriptor, to hand over in an upgrade.
    pub fn raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Wait for the next message. Datagrams without credentials, over 4096 bytes, or
    /// whose parse sets nothing (garbage, empty, `READY=0`, a bare `BARRIER=1`) are
    /// skipped; Err means the socket itself failed.
    ///
    /// Senders such as `systemd-notify` exit right after sending, so callers should
    /// resolve `pid` (see [`owner_of`]) as soon as this returns: until the sender is
    /// reaped its /proc entry survives as a zombie, after that it is gone. That is
    /// also why this returns per datagram instead of batching.
    pub async fn recv(&self) -> io::Result<Notification> {
        let fd = self.sock.as_raw_fd();
        loop {
            let got = self
                .sock
                .async_io(Interest::READABLE, || recv_one(fd))
                .await?;
            if let Some(n) = got {
                return Ok(n);
            }
        }
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        if !self.owns_file.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        if let Ok(m) = fs::symlink_metadata(&self.path)
            && (m.dev(), m.ino()) == self.ident
        {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn remove_stale(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => fs::remove_file(path),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Read one datagram. Ok(None) means "read and discarded"; WouldBlock goes back to
/// tokio so it clears readiness.
fn recv_one(fd: RawFd) -> io::Result<Option<Notification>> {
    let mut body = [0u8; MAX_MESSAGE];
    let mut cmsg = nix::cmsg_space!(UnixCredentials, [RawFd; SCM_MAX_FD]);
    let mut iov = [io::IoSliceMut::new(&mut body)];
    let flags = MsgFlags::MSG_CMSG_CLOEXEC;
    let msg = match socket::recvmsg::<()>(fd, &mut iov, Some(&mut cmsg), flags) {
        Ok(msg) => msg,
        Err(Errno::EINTR) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut creds = None;
    // cmsgs() only fails on MSG_CTRUNC, which the buffer size rules out.
    for c in msg.cmsgs().into_iter().flatten() {
        match c {
            ControlMessageOwned::ScmCredentials(c) => creds = Some(c),
            // We keep no fd store; close what was passed instead of leaking it.
            ControlMessageOwned::ScmRights(fds) => {
                for fd in fds {
                    // SAFETY: the kernel just installed this fd for us and nothing else owns it.
                    drop(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
            _ => {}
        }
    }
    let (len, truncated) = (msg.bytes, msg.flags.contains(MsgFlags::MSG_TRUNC));
    let Some(creds) = creds else { return Ok(None) };
    if truncated || creds.pid() <= 0 {
        return Ok(None);
    }
    let mut n = parse(&body[..len]);
    if n == Notification::default() {
        return Ok(None);
    }
    n.pid = creds.pid() as u32;
    n.uid = creds.uid();
    n.gid = creds.gid();
    Ok(Some(n))
}

/// Parse a message body: newline-separated `VAR=VALUE` assignments. Lines without `=`
/// or with invalid UTF-8 are skipped, values may contain `=`, the trailing newline is
/// optional. Flags are set only by their documented value (`READY=1`, not `READY=0`);
/// numbers keep the last valid value (`MAINPID` > 0, `ERRNO` >= 0); the last `STATUS`
/// wins; `BARRIER` is plumbing and dropped. pid/uid/gid are left 0.
pub fn parse(body: &[u8]) -> Notification {
    fn keep<T: FromStr>(slot: &mut Option<T>, value: &str) {
        if let Ok(v) = value.parse() {
            *slot = Some(v);
        }
    }
    let mut n = Notification::default();
    for line in body.split(|&b| b == b'\n') {
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key {
            "READY" => n.ready |= value == "1",
            "RELOADING" => n.reloading |= value == "1",
            "STOPPING" => n.stopping |= value == "1",
            "STATUS" => n.status = Some(value.to_owned()),
            "MAINPID" => {
                if let Ok(p @ 1..) = value.parse::<u32>() {
                    n.main_pid = Some(p);
                }
            }
            "WATCHDOG" => match value {
                "1" => n.watchdog = true,
                "trigger" => n.watchdog_trigger = true,
                _ => {}
            },
            "WATCHDOG_USEC" => keep(&mut n.watchdog_usec, value),
            "ERRNO" => {
                if let Ok(e @ 0..) = value.parse::<i32>() {
                    n.errno = Some(e);
                }
            }
            "EXTEND_TIMEOUT_USEC" => keep(&mut n.extend_timeout_usec, value),
            "MONOTONIC_USEC" => keep(&mut n.monotonic_usec, value),
            // sd_notify_barrier() sends BARRIER=1 with a pipe fd and waits for it to
            // close; recv closes every passed fd, so nothing is left to do here.
            "" | "BARRIER" => {}
            _ => n.other.push(line.to_owned()),
        }
    }
    n
}

/// Which of `leaders` the sending `pid` belongs to: the pid itself, else an ancestor
/// found through /proc/PID/stat's ppid chain (at most 64 steps, stopping at pid 1),
/// else, when `cgroups` maps leader pid → cgroup path relative to the cgroup2 mount
/// (like "/tend-123/web.0"), the leader whose path equals or contains the sender's
/// "0::" cgroup (the deepest such, should paths nest). Keys of `cgroups` need not be
/// in `leaders`. A sender that is already gone yields None.
pub fn owner_of(pid: u32, leaders: &HashSet<u32>, cgroups: &HashMap<u32, String>) -> Option<u32> {
    if pid == 0 {
        return None;
    }
    if leaders.contains(&pid) {
        return Some(pid);
    }
    let mut cur = pid;
    for _ in 0..MAX_ANCESTRY {
        match parent_of(cur) {
            Some(p) if p > 1 => {
                if leaders.contains(&p) {
                    return Some(p);
                }
                cur = p;
            }
            _ => break,
        }
    }
    // The ppid chain breaks when a process daemonizes (reparented to init or a
    // subreaper); cgroup membership survives that.
    if cgroups.is_empty() {
        return None;
    }
    let cg = cgroup_of(pid)?;
    cgroups
        .iter()
        .filter(|(_, base)| is_under(&cg, base))
        .max_by_key(|(_, base)| base.len())
        .map(|(&leader, _)| leader)
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm (field 2) may contain spaces and ')', so split after its last ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn cgroup_of(pid: u32) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_owned)
}

/// `path` equals `base` or lies below it ("/a/bc" is not under "/a/b").
fn is_under(path: &str, base: &str) -> bool {
    let base = base.trim_end_matches('/');
    path.strip_prefix(base)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram as StdDatagram;
    use std::process::{Command, Stdio};
    use std::time::Duration;

    async fn recv(sock: &NotifySocket) -> Notification {
        tokio::time::timeout(Duration::from_secs(10), sock.recv())
            .await
            .expect("no notification within 10s")
            .expect("recv failed")
    }

    fn me() -> HashSet<u32> {
        HashSet::from([std::process::id()])
    }

    #[test]
    fn parse_every_field() {
        let n = parse(
            b"READY=1\nRELOADING=1\nSTOPPING=1\nSTATUS=a=b c\nMAINPID=42\nWATCHDOG=1\n\
              WATCHDOG=trigger\nWATCHDOG_USEC=5000000\nERRNO=2\nEXTEND_TIMEOUT_USEC=7\n\
              MONOTONIC_USEC=123\nFDSTORE=1\n",
        );
        let want = Notification {
            ready: true,
            reloading: true,
            stopping: true,
            status: Some("a=b c".into()),
            main_pid: Some(42),
            watchdog: true,
            watchdog_trigger: true,
            watchdog_usec: Some(5_000_000),
            errno: Some(2),
            extend_timeout_usec: Some(7),
            monotonic_usec: Some(123),
            other: vec!["FDSTORE=1".into()],
            ..Default::default()
        };
        assert_eq!(n, want);
    }

    #[test]
    fn parse_rejects_junk() {
        let n = parse(b"READY=0\nMAINPID=junk\nMAINPID=0\nMAINPID=-3\nERRNO=-1\nno equals\n\n=x\nWATCHDOG=2\nSTATUS=one\n\xff\xfe=1\nSTATUS=two");
        assert!(!n.ready && !n.watchdog && !n.watchdog_trigger);
        assert_eq!(n.main_pid, None);
        assert_eq!(n.errno, None);
        assert_eq!(n.status.as_deref(), Some("two"));
        assert!(n.other.is_empty());
        assert_eq!(parse(b"MAINPID=7\nMAINPID=x").main_pid, Some(7));
        assert_eq!(parse(b""), Notification::default());
    }

    #[test]
    fn cgroup_prefix() {
        assert!(is_under("/tend-1/web.0", "/tend-1/web.0"));
        assert!(is_under("/tend-1/web.0/sub", "/tend-1/web.0"));
        assert!(is_under("/tend-1/web.0/sub", "/tend-1/web.0/"));
        assert!(!is_under("/tend-1/web.01", "/tend-1/web.0"));
        assert!(is_under("/anything", "/"));
    }

    #[tokio::test]
    async fn bind_and_recv_with_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        // A leftover socket from a previous run must not stop us.
        drop(StdDatagram::bind(&path).unwrap());
        let sock = NotifySocket::bind(&path).unwrap();
        assert_eq!(sock.path(), path);
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o666);

        let client = StdDatagram::unbound().unwrap();
        client.send_to(&[b'a'; MAX_MESSAGE + 1], &path).unwrap();
        client.send_to(b"no assignment\n\xff", &path).unwrap();
        client.send_to(b"READY=1\nSTATUS=up", &path).unwrap();
        let n = recv(&sock).await;
        assert_eq!(n.pid, std::process::id());
        assert_eq!(n.uid, nix::unistd::getuid().as_raw());
        assert_eq!(n.gid, nix::unistd::getgid().as_raw());
        assert!(n.ready);
        assert_eq!(n.status.as_deref(), Some("up"));
        assert_eq!(owner_of(n.pid, &me(), &HashMap::new()), Some(n.pid));

        drop(sock);
        assert!(!path.exists(), "socket file removed on drop");
    }

    #[tokio::test]
    async fn bind_refuses_to_remove_non_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        fs::write(&path, b"keep").unwrap();
        let err = NotifySocket::bind(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).unwrap(), b"keep");
    }

    #[tokio::test]
    async fn real_systemd_notify() {
        let bin = Path::new("/usr/bin/systemd-notify");
        if !bin.exists() {
            eprintln!(
                "note: {} absent, skipping real_systemd_notify",
                bin.display()
            );
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let sock = NotifySocket::bind(&dir.path().join("notify")).unwrap();
        let mut child = Command::new(bin)
            .args(["--ready", "--status=loading done"])
            .env("NOTIFY_SOCKET", sock.path())
            .spawn()
            .unwrap();
        let n = recv(&sock).await;
        assert!(n.ready);
        assert_eq!(n.status.as_deref(), Some("loading done"));
        // Resolved before we reap the child: until then its /proc entry survives.
        // Whether it sent from itself, a forked child, or (as root) with our pid
        // as the claimed sender, the walk ends at us.
        let me = std::process::id();
        assert_eq!(
            owner_of(n.pid, &HashSet::from([me]), &HashMap::new()),
            Some(me)
        );
        // systemd-notify then sends BARRIER=1 and waits until its fd is closed, so
        // keep receiving (recv closes it and skips the message) until it exits.
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), sock.recv()).await;
        };
        assert!(status.success());
    }

    #[tokio::test]
    async fn grandchild_found_through_ppid_walk() {
        let has_python = Command::new("/usr/bin/env")
            .args(["python3", "-c", ""])
            .status()
            .is_ok_and(|s| s.success());
        if !has_python {
            eprintln!("note: python3 absent, skipping grandchild_found_through_ppid_walk");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let sock = NotifySocket::bind(&dir.path().join("notify")).unwrap();
        // Python sends, then blocks on stdin so it stays alive for the lookup.
        let script = "import os, socket, sys\n\
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
            s.sendto(b'READY=1\\nMAINPID=%d' % os.getpid(), sys.argv[1])\n\
            sys.stdin.read()\n";
        // `; exit $?` keeps sh from exec'ing python, so python is a grandchild.
        let mut sh = Command::new("sh")
            .args(["-c", "/usr/bin/env python3 -c \"$1\" \"$2\"; exit $?", "sh"])
            .arg(script)
            .arg(sock.path())
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let n = recv(&sock).await;
        assert_eq!(n.main_pid, Some(n.pid));
        assert_ne!(n.pid, sh.id());
        let me = std::process::id();
        let none = HashMap::new();
        assert_eq!(owner_of(n.pid, &HashSet::from([me]), &none), Some(me));
        assert_eq!(
            owner_of(n.pid, &HashSet::from([sh.id()]), &none),
            Some(sh.id())
        );
        drop(sh.stdin.take()); // EOF lets python exit
        assert!(sh.wait().unwrap().success());
    }

    #[test]
    fn owner_of_unrelated_and_gone() {
        let mut a = Command::new("sleep").arg("30").spawn().unwrap();
        let mut b = Command::new("sleep").arg("30").spawn().unwrap();
        let none = HashMap::new();
        assert_eq!(owner_of(a.id(), &HashSet::from([b.id()]), &none), None);
        assert_eq!(owner_of(a.id(), &HashSet::new(), &none), None);

        // Cgroup membership: `a` shares our cgroup, so a leader mapped to it owns `a`
        // even though that leader (a made-up pid) is no ancestor.
        if let Some(cg) = cgroup_of(std::process::id()) {
            let fake = u32::MAX - 1;
            let map = HashMap::from([(fake, cg.clone())]);
            assert_eq!(owner_of(a.id(), &HashSet::new(), &map), Some(fake));
            let elsewhere =
                HashMap::from([(fake, format!("{}/tend-nowhere", cg.trim_end_matches('/')))]);
            assert_eq!(owner_of(a.id(), &HashSet::new(), &elsewhere), None);
        } else {
            eprintln!("note: no cgroup2 entry in /proc/self/cgroup, skipping cgroup check");
        }
        for c in [&mut a, &mut b] {
            c.kill().unwrap();
            c.wait().unwrap();
        }

        let mut gone = Command::new("true").spawn().unwrap();
        let pid = gone.id();
        gone.wait().unwrap();
        assert_eq!(owner_of(pid, &me(), &none), None);
        assert_eq!(parent_of(pid), None);
    }
}
