//! tend under a service manager: when systemd (or anything speaking sd_notify) started tend
//! with `NOTIFY_SOCKET`, tend tells it READY=1 once its initial services have settled,
//! STOPPING=1 when it begins to stop, a STATUS= line, and watchdog pings when asked for them.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

/// The manager's notification socket, taken from tend's own environment at start-up.
#[derive(Debug)]
pub struct Manager {
    socket: UnixDatagram,
    address: Address,
    /// Half the interval systemd asked for with `WATCHDOG_USEC`, when it asked this process.
    watchdog: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Address {
    Path(PathBuf),
    /// `@name`: a Linux abstract socket.
    Abstract(Vec<u8>),
}

impl Manager {
    /// The manager that started tend, if any: `NOTIFY_SOCKET` is set and usable.
    pub fn from_env() -> Option<Manager> {
        Manager::from_vars(|name| std::env::var(name).ok(), std::process::id())
    }

    fn from_vars(var: impl Fn(&str) -> Option<String>, pid: u32) -> Option<Manager> {
        let raw = var("NOTIFY_SOCKET").filter(|s| !s.is_empty())?;
        let address = match raw.strip_prefix('@') {
            Some(name) => Address::Abstract(name.as_bytes().to_vec()),
            None if raw.starts_with('/') => Address::Path(PathBuf::from(raw)),
            // vsock: and relative paths are not for a local supervisor.
            None => return None,
        };
        // WATCHDOG_PID names the process the pings are expected from: when it is another
        // (tend was started by a wrapper that kept the variable), the pings are not ours.
        let for_us = var("WATCHDOG_PID").is_none_or(|p| p.trim() == pid.to_string());
        let watchdog = var("WATCHDOG_USEC")
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|&usec| usec > 0 && for_us)
            .map(|usec| Duration::from_micros(usec) / 2);
        let socket = UnixDatagram::unbound().ok()?;
        socket.set_nonblocking(true).ok()?;
        Some(Manager {
            socket,
            address,
            watchdog,
        })
    }

    /// How often to ping the watchdog, when the manager asked for pings.
    pub fn watchdog_every(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Send one notification (`KEY=VALUE` lines). A manager that went away or a full
    /// socket buffer is not tend's failure: the message is dropped.
    pub fn send(&self, message: &str) {
        let _ = match &self.address {
            Address::Path(path) => self.socket.send_to(message.as_bytes(), path),
            Address::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                match std::os::unix::net::SocketAddr::from_abstract_name(name) {
                    Ok(addr) => self.socket.send_to_addr(message.as_bytes(), &addr),
                    Err(e) => Err(e),
                }
            }
        };
    }

    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping every service");
    }

    pub fn ping(&self) {
        self.send("WATCHDOG=1");
    }
}

/// STATUS= ends at the first newline.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn only_a_usable_socket_makes_a_manager() {
        assert!(Manager::from_vars(vars(&[]), 7).is_none());
        assert!(Manager::from_vars(vars(&[("NOTIFY_SOCKET", "")]), 7).is_none());
        assert!(Manager::from_vars(vars(&[("NOTIFY_SOCKET", "vsock:2:99")]), 7).is_none());
        let m = Manager::from_vars(vars(&[("NOTIFY_SOCKET", "@sd")]), 7).unwrap();
        assert_eq!(m.address, Address::Abstract(b"sd".to_vec()));
    }

    #[test]
    fn watchdog_pings_only_when_meant_for_this_process() {
        let base = [
            ("NOTIFY_SOCKET", "/run/notify"),
            ("WATCHDOG_USEC", "4000000"),
        ];
        let m = Manager::from_vars(vars(&base), 7).unwrap();
        assert_eq!(m.watchdog_every(), Some(Duration::from_secs(2)));
        let mine = [base[0], base[1], ("WATCHDOG_PID", "7")];
        assert!(
            Manager::from_vars(vars(&mine), 7)
                .unwrap()
                .watchdog
                .is_some()
        );
        let other = [base[0], base[1], ("WATCHDOG_PID", "8")];
        assert!(
            Manager::from_vars(vars(&other), 7)
                .unwrap()
                .watchdog
                .is_none()
        );
    }

    #[test]
    fn messages_reach_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        let path_str = path.display().to_string();
        let m = Manager::from_vars(vars(&[("NOTIFY_SOCKET", &path_str)]), 7).unwrap();
        m.ready("2 up\n1 failed");
        let mut buf = [0u8; 256];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=2 up 1 failed");
    }
}
