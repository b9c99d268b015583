//! Binding `[sockets]`: once, at startup, before any service runs (and with whatever
//! privileges tend started with, so a service running as another user can be handed port
//! 80). Each socket is close-on-exec in tend; the engine hands it to the services that
//! name it. Unix socket files are removed at shutdown.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrIn, SockaddrIn6, SockaddrStorage, UnixAddr, bind,
    getsockname, setsockopt, socket, sockopt,
};

use crate::config::model::{Listen, SocketSpec};
use crate::engine::sockets::{BoundSocket, SocketSet};

/// Bind and listen on every socket, in manifest order. On any failure, what was bound is
/// closed and its files removed: tend refuses to start and leaves nothing behind.
pub fn bind_all(specs: &[SocketSpec]) -> anyhow::Result<SocketSet> {
    let mut set = SocketSet::default();
    for spec in specs {
        match bind_one(spec) {
            Ok(bound) => set.sockets.push(bound),
            Err(e) => {
                remove_files(&set);
                return Err(e.context(format!(
                    "cannot listen on socket `{}` ({})",
                    spec.name, spec.listen
                )));
            }
        }
    }
    Ok(set)
}

/// Removes the unix socket files when dropped: at the end of a run, and when tend gives up
/// starting after binding them.
pub struct Cleanup(pub Arc<SocketSet>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        remove_files(&self.0);
    }
}

/// Remove the unix socket files tend created, if they are still the ones it bound (not
/// replaced since by someone else's).
pub fn remove_files(set: &SocketSet) {
    for socket in &set.sockets {
        if let (Listen::Unix { path, .. }, Some(file)) = (&socket.spec.listen, socket.file)
            && fs::symlink_metadata(path).is_ok_and(|m| (m.dev(), m.ino()) == file)
        {
            let _ = fs::remove_file(path);
        }
    }
}

fn bind_one(spec: &SocketSpec) -> anyhow::Result<BoundSocket> {
    let (fd, address) = match &spec.listen {
        Listen::Tcp {
            address,
            reuse_port,
        } => {
            let family = if address.is_ipv4() {
                AddressFamily::Inet
            } else {
                AddressFamily::Inet6
            };
            let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
            // Restarting tend must not wait out TIME_WAIT connections of the last run.
            setsockopt(&fd, sockopt::ReuseAddr, &true)?;
            if *reuse_port {
                setsockopt(&fd, sockopt::ReusePort, &true)?;
            }
            // IPV6_V6ONLY is left as net.ipv6.bindv6only says (0, dual-stack, almost
            // everywhere): systemd's BindIPv6Only=default, so an export behaves the same.
            match address {
                std::net::SocketAddr::V4(v4) => bind(fd.as_raw_fd(), &SockaddrIn::from(*v4))?,
                std::net::SocketAddr::V6(v6) => bind(fd.as_raw_fd(), &SockaddrIn6::from(*v6))?,
            }
            listen(&fd, spec.backlog)?;
            let local = getsockname::<SockaddrStorage>(fd.as_raw_fd())?;
            let port = local
                .as_sockaddr_in()
                .map(|a| a.port())
                .or_else(|| local.as_sockaddr_in6().map(|a| a.port()))
                .unwrap_or(address.port());
            let bound = std::net::SocketAddr::new(address.ip(), port);
            (fd, format!("tcp://{bound}"))
        }
        Listen::Unix {
            path,
            mode,
            owner,
            group,
        } => {
            let fd = bind_unix(
                path,
                *mode,
                owner.as_deref(),
                group.as_deref(),
                spec.backlog,
            )?;
            (fd, spec.listen.to_string())
        }
    };
    let file = match &spec.listen {
        Listen::Unix { path, .. } => fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino())),
        Listen::Tcp { .. } => None,
    };
    Ok(BoundSocket {
        spec: spec.clone(),
        fd: Arc::new(fd),
        address,
        file,
    })
}

/// listen(2) directly: nix's `Backlog` refuses values above SOMAXCONN, which the kernel's
/// own net.core.somaxconn may allow.
fn listen(fd: &OwnedFd, backlog: u32) -> nix::Result<()> {
    let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
    // SAFETY: a plain system call on an fd we own.
    nix::errno::Errno::result(unsafe { libc::listen(fd.as_raw_fd(), backlog) }).map(drop)
}

fn bind_unix(
    path: &Path,
    mode: u32,
    owner: Option<&str>,
    group: Option<&str>,
    backlog: u32,
) -> anyhow::Result<OwnedFd> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if let Ok(meta) = fs::symlink_metadata(path) {
        // A mistyped path must not destroy someone's file.
        if !meta.file_type().is_socket() {
            bail!("{} exists and is not a socket", path.display());
        }
        // A stale file from a run that did not clean up is replaced; a live one is someone
        // else's (another tend, the program itself) and is left alone, as is one tend
        // cannot tell (not allowed to connect).
        match std::os::unix::net::UnixStream::connect(path) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            Ok(_) => bail!(
                "{} is in use: another process listens on it",
                path.display()
            ),
            Err(e) => bail!(
                "{} exists, and tend cannot tell whether it is in use: {e}",
                path.display()
            ),
        }
        fs::remove_file(path).with_context(|| format!("removing the stale {}", path.display()))?;
    }
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    bind(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    // Owner and mode are set before listen(): until then every connect is refused, so no
    // one gets in through the mode the umask gave the file.
    let prepared = chown(path, owner, group)
        .and_then(|()| {
            fs::set_permissions(path, fs::Permissions::from_mode(mode))
                .with_context(|| format!("setting the mode of {} to {mode:o}", path.display()))
        })
        .and_then(|()| listen(&fd, backlog).map_err(anyhow::Error::from));
    if let Err(e) = prepared {
        let _ = fs::remove_file(path);
        return Err(e);
    }
    Ok(fd)
}

fn chown(path: &Path, owner: Option<&str>, group: Option<&str>) -> anyhow::Result<()> {
    if owner.is_none() && group.is_none() {
        return Ok(());
    }
    let uid = owner
        .map(|name| match name.parse::<u32>() {
            Ok(id) => Ok(nix::unistd::Uid::from_raw(id)),
            Err(_) => nix::unistd::User::from_name(name)
                .ok()
                .flatten()
                .map(|u| u.uid)
                .with_context(|| format!("no user named `{name}`")),
        })
        .transpose()?;
    let gid = group
        .map(|name| match name.parse::<u32>() {
            Ok(id) => Ok(nix::unistd::Gid::from_raw(id)),
            Err(_) => nix::unistd::Group::from_name(name)
                .ok()
                .flatten()
                .map(|g| g.gid)
                .with_context(|| format!("no group named `{name}`")),
        })
        .transpose()?;
    nix::unistd::chown(path, uid, gid).with_context(|| {
        format!(
            "giving {} to {}{} (tend must be root, or a member of the group)",
            path.display(),
            owner.unwrap_or(""),
            group.map(|g| format!(":{g}")).unwrap_or_default()
        )
    })
}
