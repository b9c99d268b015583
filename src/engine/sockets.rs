//! The listening sockets of `[sockets]`, as the daemon bound them: the engine only hands
//! them to children (systemd's socket passing) and never binds, accepts or closes one.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use crate::config::model::{ServiceSpec, SocketSpec};

/// One bound, listening socket.
#[derive(Debug)]
pub struct BoundSocket {
    pub spec: SocketSpec,
    /// O_CLOEXEC in tend: only the children that are handed it on purpose inherit it.
    pub fd: Arc<OwnedFd>,
    /// The address as bound (`tcp://127.0.0.1:41234` for port 0), for the API.
    pub address: String,
    /// A unix socket's file (device, inode) as created: only that file is removed at the
    /// end, not one someone put in its place since.
    pub file: Option<(u64, u64)>,
}

/// Every socket of the manifest tend started with; they live as long as tend.
#[derive(Debug, Default)]
pub struct SocketSet {
    pub sockets: Vec<BoundSocket>,
}

/// What a service's instances are given: fds in the service's `sockets` order, and their
/// names for LISTEN_FDNAMES.
#[derive(Debug, Default, Clone)]
pub struct Passed {
    pub fds: Vec<Arc<OwnedFd>>,
    pub names: Vec<String>,
}

impl SocketSet {
    pub fn get(&self, name: &str) -> Option<&BoundSocket> {
        self.sockets.iter().find(|s| s.spec.name == name)
    }

    /// The sockets `service` names. A name without a bound socket cannot happen for a
    /// validated manifest the engine accepted; it is left out rather than trusted.
    pub fn for_service(&self, service: &ServiceSpec) -> Passed {
        let mut passed = Passed::default();
        for name in &service.sockets {
            if let Some(socket) = self.get(name) {
                passed.fds.push(socket.fd.clone());
                passed.names.push(name.clone());
            }
        }
        passed
    }

    /// Why a manifest with `wanted` sockets cannot be supervised by this tend, if it cannot:
    /// sockets are bound once, at startup (perhaps with privileges tend no longer has), and
    /// a socket that services share cannot be swapped under the ones that keep running.
    pub fn refuse_change(&self, wanted: &[SocketSpec]) -> Option<String> {
        let bound: Vec<&SocketSpec> = self.sockets.iter().map(|s| &s.spec).collect();
        let mut changed: Vec<&str> = wanted
            .iter()
            .filter(|w| !bound.contains(w))
            .map(|w| w.name.as_str())
            .chain(
                bound
                    .iter()
                    .filter(|b| !wanted.contains(b))
                    .map(|b| b.name.as_str()),
            )
            .collect();
        if changed.is_empty() {
            return None;
        }
        changed.sort_unstable();
        changed.dedup();
        let names: Vec<String> = changed.iter().map(|n| format!("`{n}`")).collect();
        Some(format!(
            "[sockets] {} changed: tend binds its sockets only when it starts; restart tend \
             (`tend down`, `tend up`) to apply",
            names.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{DEFAULT_BACKLOG, Listen};

    fn spec(name: &str, port: u16) -> SocketSpec {
        SocketSpec {
            name: name.into(),
            listen: Listen::Tcp {
                address: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                reuse_port: false,
            },
            backlog: DEFAULT_BACKLOG,
        }
    }

    fn set(specs: &[SocketSpec]) -> SocketSet {
        SocketSet {
            sockets: specs
                .iter()
                .map(|spec| BoundSocket {
                    spec: spec.clone(),
                    fd: Arc::new(OwnedFd::from(std::fs::File::open("/dev/null").unwrap())),
                    address: spec.listen.to_string(),
                    file: None,
                })
                .collect(),
        }
    }

    #[test]
    fn the_same_sockets_in_any_order_are_no_change() {
        let bound = set(&[spec("a", 1), spec("b", 2)]);
        assert_eq!(bound.refuse_change(&[spec("b", 2), spec("a", 1)]), None);
    }

    #[test]
    fn added_removed_or_changed_sockets_are_refused_by_name() {
        let bound = set(&[spec("a", 1), spec("b", 2)]);
        let why = bound
            .refuse_change(&[spec("a", 10), spec("c", 3)])
            .expect("refused");
        assert!(why.contains("`a`, `b`, `c` changed"), "{why}");
        assert!(why.contains("restart tend"), "{why}");
        assert!(bound.refuse_change(&[]).is_some());
    }

    #[test]
    fn a_service_gets_its_sockets_in_its_own_order() {
        let bound = set(&[spec("a", 1), spec("b", 2)]);
        let manifest_dir = tempfile::tempdir().unwrap();
        let path = manifest_dir.path().join("tend.toml");
        std::fs::write(
            &path,
            "[sockets.a]\nlisten = \"tcp://127.0.0.1:1\"\n[sockets.b]\nlisten = \"tcp://127.0.0.1:2\"\n[services.web]\ncommand = \"x\"\nsockets = [\"b\", \"a\"]\n",
        )
        .unwrap();
        let manifest = crate::config::load(&path).unwrap();
        let passed = bound.for_service(&manifest.services[0]);
        assert_eq!(passed.names, ["b", "a"]);
        assert!(Arc::ptr_eq(&passed.fds[0], &bound.sockets[1].fd));
        assert!(Arc::ptr_eq(&passed.fds[1], &bound.sockets[0].fd));
    }
}
