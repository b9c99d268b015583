//! The handover: what one image of tend gives the next in an upgrade, as versioned JSON in a
//! memfd whose descriptor the new image finds in `TEND_HANDOVER`. It names, by descriptor
//! number, everything that survives the exec (children's pipes, sockets, the control and
//! sd_notify sockets, the old binary), and holds every instance's state. Owns the format
//! and its version; no behaviour.

use std::io::{Read, Seek, Write};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::engine::handover::{Frozen, FrozenInstance};
use crate::engine::lifecycle::{self, ExitStatus, FrozenState};
use crate::logs::{LogState, Stream, tail::TailLine};

/// The format written and read here. A binary is fit to take over only if its
/// `upgrade-check` lists this version.
pub const VERSION: u32 = 1;

/// Where the new image finds the handover: `TEND_HANDOVER=<fd>`.
pub const ENV: &str = "TEND_HANDOVER";
/// Set when the new image could not take over and executed the old binary again: why.
pub const FAILED_ENV: &str = "TEND_HANDOVER_FAILED";
/// What `tend upgrade-check` prints first: this word, then the versions it reads.
pub const CHECK_WORD: &str = "tend-handover";

/// Everything handed over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Handover {
    pub version: u32,
    /// The version of tend that wrote it.
    pub from_version: String,
    /// The binary this upgrade executes.
    pub binary: PathBuf,
    /// The path tend was first started from: what `tend upgrade` executes by default.
    pub launched: PathBuf,
    /// An open descriptor of the binary that wrote this, to execute again if the new one
    /// cannot take over, with the arguments and environment (`KEY=VALUE`) it had.
    pub previous_exe: RawFd,
    pub argv: Vec<Text>,
    pub env: Vec<Text>,
    /// When the process started: its uptime goes on.
    pub started_at_ms: u64,
    /// Upgrades that took over before this one, and the number of this attempt.
    pub upgrades: u32,
    pub attempt: u32,
    pub session: Session,
    /// Counts set while tend ran (`tend scale`, the autoscaler).
    pub scaled: Vec<ScaledCount>,
    pub run_id: String,
    pub cgroup_root: Option<PathBuf>,
    pub control_socket: Endpoint,
    pub remote_listener: Option<RawFd>,
    pub notify_socket: Endpoint,
    pub sockets: Vec<Socket>,
    pub instances: Vec<Instance>,
    pub dependencies: Dependencies,
    pub logs: Vec<Log>,
    pub pipes: Vec<Pipes>,
}

/// How the daemon was started: what it reads again, and how it shows output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub manifest: PathBuf,
    /// `tend`, `supervisord`, `pm2`, `procfile` or `process-compose`.
    pub source: String,
    /// PM2's `--env`.
    pub environment: Option<String>,
    /// A foreground `tend up`: output echoed, tend's log on stderr.
    pub console: bool,
    pub colour: bool,
    pub exit_with: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScaledCount {
    pub service: String,
    pub instances: u32,
    /// Scaling names the instances `web:0`…, even at one instance.
    pub numbered: bool,
    /// The manifest's count when it was set.
    pub manifest: u32,
    /// `tend scale` or `autoscale`.
    pub by: String,
    pub reason: String,
    pub at_ms: i64,
}

/// A listening socket by descriptor, and where it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    pub fd: RawFd,
    pub path: PathBuf,
}

/// One of `[sockets]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Socket {
    pub name: String,
    pub fd: RawFd,
    pub address: String,
    /// A unix socket's file (device, inode), removed at the end only if still that one.
    pub file: Option<(u64, u64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub name: String,
    pub service: String,
    pub index: u32,
    pub state: State,
    pub attempt: u32,
    pub recent_restarts_us: Vec<u64>,
    pub restarts: u32,
    pub restart_causes: [u32; 4],
    pub last_exit: Option<Exit>,
    pub probation: bool,
    pub reason: String,
    pub leader: Option<u32>,
    pub alternate: bool,
    pub main_pid: Option<u32>,
    pub ready: bool,
    pub startup_over: bool,
    pub notify_status: Option<String>,
    pub cpu_seconds: f64,
    pub changed_at_ms: u64,
    pub last_start_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum State {
    Stopped,
    Running {
        pid: u32,
        up_for_us: u64,
        settled: bool,
    },
    Backoff {
        left_us: u64,
    },
    Exited {
        status: Exit,
        success: bool,
    },
    Fatal {
        retry_in_us: Option<u64>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dependencies {
    pub held: Vec<(String, String)>,
    pub restart_on_return: Vec<(String, String)>,
    pub ready: Vec<(String, bool)>,
}

/// One instance's log: its tail, unfinished lines and counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Log {
    pub instance: String,
    pub service: String,
    pub index: u32,
    pub tail: Vec<Line>,
    pub partial: [Text; 2],
    pub captured: [u64; 2],
    pub dropped: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    pub at_ms: u64,
    pub err: bool,
    pub text: Text,
}

/// Output bytes: as a string when they are UTF-8 (nearly always, and compact), else as
/// numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Text {
    Utf8(String),
    Bytes(Vec<u8>),
}

/// The read ends of a capture's pipes, by descriptor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pipes {
    pub instance: String,
    pub service: String,
    pub index: u32,
    pub stdout: Option<RawFd>,
    pub stderr: Option<RawFd>,
}

/// Why a handover cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReadError {
    #[error("handover version {found}, and this tend reads version {VERSION} only")]
    Version { found: u32 },
    #[error("the handover cannot be read: {0}")]
    Malformed(String),
}

impl Handover {
    /// Written into a memfd, without close-on-exec, at offset 0.
    pub fn write(&self) -> std::io::Result<OwnedFd> {
        let json = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        // SAFETY: memfd_create with a NUL-terminated name; a valid fd is owned from here.
        let fd = unsafe { libc::memfd_create(c"tend-handover".as_ptr(), 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        file.write_all(&json)?;
        file.rewind()?;
        Ok(file.into())
    }

    /// Read from `fd` (the file position is put back to the start, so the same descriptor
    /// can be handed on to a fallback).
    pub fn read(fd: RawFd) -> Result<Handover, ReadError> {
        let malformed = |e: std::io::Error| ReadError::Malformed(e.to_string());
        // SAFETY: borrowed for the read only; the File is forgotten, not closed.
        let mut file = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
        file.rewind().map_err(malformed)?;
        let mut text = Vec::new();
        file.read_to_end(&mut text).map_err(malformed)?;
        file.rewind().map_err(malformed)?;
        Handover::parse(&text)
    }

    /// The version first, so that another version is told as such rather than as a field
    /// that does not parse.
    pub fn parse(text: &[u8]) -> Result<Handover, ReadError> {
        #[derive(Deserialize)]
        struct Versioned {
            version: u32,
        }
        let versioned: Versioned = serde_json::from_slice(text)
            .map_err(|e| ReadError::Malformed(format!("no version: {e}")))?;
        if versioned.version != VERSION {
            return Err(ReadError::Version {
                found: versioned.version,
            });
        }
        serde_json::from_slice(text).map_err(|e| ReadError::Malformed(e.to_string()))
    }

    /// Every descriptor it names, which must survive the exec.
    pub fn descriptors(&self) -> Vec<RawFd> {
        let mut fds = vec![
            self.previous_exe,
            self.control_socket.fd,
            self.notify_socket.fd,
        ];
        fds.extend(self.remote_listener);
        fds.extend(self.sockets.iter().map(|s| s.fd));
        for pipes in &self.pipes {
            fds.extend(pipes.stdout);
            fds.extend(pipes.stderr);
        }
        fds
    }

    /// The engine's part.
    pub fn frozen(&self) -> Frozen {
        Frozen {
            instances: self.instances.iter().map(Instance::thawed).collect(),
            held: self.dependencies.held.clone(),
            restart_on_return: self.dependencies.restart_on_return.clone(),
            dependency_ready: self.dependencies.ready.clone(),
        }
    }
}

fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn time(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}

impl Exit {
    fn of(status: ExitStatus) -> Exit {
        match status {
            ExitStatus::Code(code) => Exit::Code(code),
            ExitStatus::Signal(signal) => Exit::Signal(signal),
        }
    }

    fn status(self) -> ExitStatus {
        match self {
            Exit::Code(code) => ExitStatus::Code(code),
            Exit::Signal(signal) => ExitStatus::Signal(signal),
        }
    }
}

impl Instance {
    pub fn of(frozen: &FrozenInstance) -> Instance {
        let lc = &frozen.lifecycle;
        Instance {
            name: frozen.name.clone(),
            service: frozen.service.clone(),
            index: frozen.index,
            state: match lc.state {
                FrozenState::Stopped => State::Stopped,
                FrozenState::Running {
                    pid,
                    up_for,
                    settled,
                } => State::Running {
                    pid,
                    up_for_us: us(up_for),
                    settled,
                },
                FrozenState::Backoff { left } => State::Backoff { left_us: us(left) },
                FrozenState::Exited { status, success } => State::Exited {
                    status: Exit::of(status),
                    success,
                },
                FrozenState::Fatal { retry_in } => State::Fatal {
                    retry_in_us: retry_in.map(us),
                },
            },
            attempt: lc.attempt,
            recent_restarts_us: lc.recent_restarts.iter().copied().map(us).collect(),
            restarts: lc.restarts,
            restart_causes: lc.restart_causes,
            last_exit: lc.last_exit.map(Exit::of),
            probation: lc.probation,
            reason: lc.reason.clone(),
            leader: frozen.leader,
            alternate: frozen.alternate,
            main_pid: frozen.main_pid,
            ready: frozen.ready,
            startup_over: frozen.startup_over,
            notify_status: frozen.notify_status.clone(),
            cpu_seconds: frozen.cpu_seconds,
            changed_at_ms: ms(frozen.changed_at),
            last_start_ms: frozen.last_start.map(ms),
        }
    }

    pub fn thawed(&self) -> FrozenInstance {
        let micros = Duration::from_micros;
        FrozenInstance {
            name: self.name.clone(),
            service: self.service.clone(),
            index: self.index,
            lifecycle: lifecycle::Frozen {
                state: match &self.state {
                    State::Stopped => FrozenState::Stopped,
                    State::Running {
                        pid,
                        up_for_us,
                        settled,
                    } => FrozenState::Running {
                        pid: *pid,
                        up_for: micros(*up_for_us),
                        settled: *settled,
                    },
                    State::Backoff { left_us } => FrozenState::Backoff {
                        left: micros(*left_us),
                    },
                    State::Exited { status, success } => FrozenState::Exited {
                        status: status.status(),
                        success: *success,
                    },
                    State::Fatal { retry_in_us } => FrozenState::Fatal {
                        retry_in: retry_in_us.map(micros),
                    },
                },
                attempt: self.attempt,
                recent_restarts: self
                    .recent_restarts_us
                    .iter()
                    .copied()
                    .map(micros)
                    .collect(),
                restarts: self.restarts,
                restart_causes: self.restart_causes,
                last_exit: self.last_exit.map(Exit::status),
                probation: self.probation,
                reason: self.reason.clone(),
            },
            leader: self.leader,
            alternate: self.alternate,
            main_pid: self.main_pid,
            ready: self.ready,
            startup_over: self.startup_over,
            notify_status: self.notify_status.clone(),
            cpu_seconds: self.cpu_seconds,
            changed_at: time(self.changed_at_ms),
            last_start: self.last_start_ms.map(time),
        }
    }
}

impl Text {
    pub fn of(bytes: &[u8]) -> Text {
        match std::str::from_utf8(bytes) {
            Ok(text) => Text::Utf8(text.to_string()),
            Err(_) => Text::Bytes(bytes.to_vec()),
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Text::Utf8(text) => text.as_bytes().to_vec(),
            Text::Bytes(bytes) => bytes.clone(),
        }
    }
}

impl Log {
    pub fn of(state: &LogState) -> Log {
        Log {
            instance: state.instance.clone(),
            service: state.service.clone(),
            index: state.index,
            tail: state
                .tail
                .iter()
                .map(|line| Line {
                    at_ms: ms(line.time),
                    err: line.stream == Stream::Err,
                    text: Text::of(&line.bytes),
                })
                .collect(),
            partial: [Text::of(&state.partial[0]), Text::of(&state.partial[1])],
            captured: state.captured,
            dropped: state.dropped,
        }
    }

    pub fn state(&self) -> LogState {
        LogState {
            instance: self.instance.clone(),
            service: self.service.clone(),
            index: self.index,
            tail: self
                .tail
                .iter()
                .map(|line| TailLine {
                    time: time(line.at_ms),
                    stream: if line.err { Stream::Err } else { Stream::Out },
                    bytes: line.text.bytes(),
                })
                .collect(),
            partial: [self.partial[0].bytes(), self.partial[1].bytes()],
            captured: self.captured,
            dropped: self.dropped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::lifecycle::RestartCause;
    use std::os::fd::AsRawFd;

    fn instance(state: FrozenState) -> FrozenInstance {
        FrozenInstance {
            name: "web:1".into(),
            service: "web".into(),
            index: 1,
            lifecycle: lifecycle::Frozen {
                state,
                attempt: 2,
                recent_restarts: vec![Duration::from_micros(1_500_000), Duration::from_secs(3)],
                restarts: 5,
                restart_causes: [1, 2, 0, 2],
                last_exit: Some(ExitStatus::Signal(9)),
                probation: true,
                reason: "up for 1s".into(),
            },
            leader: Some(4242),
            alternate: true,
            main_pid: Some(4243),
            ready: true,
            startup_over: false,
            notify_status: Some("serving".into()),
            cpu_seconds: 1.25,
            changed_at: time(1_700_000_000_123),
            last_start: Some(time(1_700_000_000_000)),
        }
    }

    fn handover(instances: Vec<FrozenInstance>) -> Handover {
        Handover {
            version: VERSION,
            from_version: "0.1.0".into(),
            binary: "/usr/bin/tend".into(),
            launched: "/usr/bin/tend".into(),
            previous_exe: 9,
            argv: vec![Text::of(b"/usr/bin/tend"), Text::of(b"up")],
            env: vec![Text::of(b"PATH=/bin"), Text::of(b"ODD=\xff")],
            started_at_ms: 1_700_000_000_000,
            upgrades: 1,
            attempt: 2,
            session: Session {
                manifest: "/srv/tend.toml".into(),
                source: "tend".into(),
                environment: None,
                console: false,
                colour: false,
                exit_with: None,
            },
            scaled: vec![ScaledCount {
                service: "web".into(),
                instances: 3,
                numbered: true,
                manifest: 2,
                by: "tend scale".into(),
                reason: "by hand".into(),
                at_ms: 1_700_000_000_500,
            }],
            run_id: "0123456789abcdef".into(),
            cgroup_root: Some("/sys/fs/cgroup/tend-1".into()),
            control_socket: Endpoint {
                fd: 10,
                path: "/srv/.tend/tend.sock".into(),
            },
            remote_listener: None,
            notify_socket: Endpoint {
                fd: 11,
                path: "/srv/.tend/notify.sock".into(),
            },
            sockets: vec![Socket {
                name: "http".into(),
                fd: 12,
                address: "tcp://127.0.0.1:8080".into(),
                file: None,
            }],
            instances: instances.iter().map(Instance::of).collect(),
            dependencies: Dependencies {
                held: vec![("api".into(), "db".into())],
                restart_on_return: Vec::new(),
                ready: vec![("db".into(), false)],
            },
            logs: vec![Log::of(&LogState {
                instance: "web:1".into(),
                service: "web".into(),
                index: 1,
                tail: vec![
                    TailLine {
                        time: time(1_700_000_000_001),
                        stream: Stream::Out,
                        bytes: b"hello\n".to_vec(),
                    },
                    TailLine {
                        time: time(1_700_000_000_002),
                        stream: Stream::Err,
                        bytes: vec![0xff, 0xfe, b'\n'],
                    },
                ],
                partial: [b"half a li".to_vec(), Vec::new()],
                captured: [100, 3],
                dropped: 0,
            })],
            pipes: vec![Pipes {
                instance: "web:1".into(),
                service: "web".into(),
                index: 1,
                stdout: Some(13),
                stderr: None,
            }],
        }
    }

    #[test]
    fn a_handover_reads_back_as_written() {
        let states = vec![
            instance(FrozenState::Running {
                pid: 4243,
                up_for: Duration::from_micros(12_345_678),
                settled: true,
            }),
            instance(FrozenState::Stopped),
            instance(FrozenState::Backoff {
                left: Duration::from_millis(1500),
            }),
            instance(FrozenState::Exited {
                status: ExitStatus::Code(3),
                success: false,
            }),
            instance(FrozenState::Fatal { retry_in: None }),
            instance(FrozenState::Fatal {
                retry_in: Some(Duration::from_secs(60)),
            }),
        ];
        let written = handover(states.clone());
        let fd = written.write().expect("memfd");
        let read = Handover::read(fd.as_raw_fd()).expect("reads back");
        assert_eq!(read, written);
        assert_eq!(read.frozen().instances, states, "every state, exactly");
        // Read twice from the same descriptor: a fallback hands it on as it came.
        assert_eq!(Handover::read(fd.as_raw_fd()), Ok(written.clone()));
        let log = read.logs[0].state();
        assert_eq!(
            log.tail[1].bytes,
            vec![0xff, 0xfe, b'\n'],
            "bytes, not text"
        );
        assert_eq!(log.partial[0], b"half a li");
        assert_eq!(
            read.instances[0].restart_causes[RestartCause::Requested as usize],
            2
        );
        let mut fds = read.descriptors();
        fds.sort_unstable();
        assert_eq!(fds, [9, 10, 11, 12, 13]);
    }

    #[test]
    fn another_version_is_refused_as_such() {
        let mut other = serde_json::to_value(handover(Vec::new())).unwrap();
        other["version"] = serde_json::json!(VERSION + 1);
        // A later version may have changed anything else too.
        other["instances"] = serde_json::json!("not what version 1 wrote");
        let text = serde_json::to_vec(&other).unwrap();
        assert_eq!(
            Handover::parse(&text),
            Err(ReadError::Version { found: VERSION + 1 })
        );
        assert!(matches!(
            Handover::parse(b"{\"version\": 1, \"instances\": 3}"),
            Err(ReadError::Malformed(_))
        ));
        assert!(matches!(
            Handover::parse(b"garbage"),
            Err(ReadError::Malformed(_))
        ));
    }
}
