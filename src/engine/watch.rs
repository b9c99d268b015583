//! `watch`: one task per service that has it. It watches the directories that can hold a
//! matching file with inotify (one instance per service, a watch per directory, added as
//! directories appear), and after a change waits for `watch_debounce` of quiet before it
//! sends the supervisor a [`SupervisorCommand::Trigger`]. While that restart is under way,
//! further changes are only remembered: once it is done they give one more restart, never
//! a queue of them.
//!
//! A change is a file created, deleted, moved, closed after writing, or touched (its
//! attributes changed). Directory walks (at the start, when a directory appears, after an
//! event queue overflow) run on the blocking pool: a big tree never stalls the engine's
//! thread.

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, InotifyEvent, WatchDescriptor};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc::WeakUnboundedSender;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::config::glob::Relation;
use crate::config::model::{Listen, LogTarget, Manifest, WatchSpec};
use crate::engine::command::{Outcomes, SupervisorCommand, Trigger, UnknownTarget};

/// What a file watch never reacts to, whatever its globs say: tend's state directory (its
/// logs, history and sockets) and every service's log files with their rotations. A service
/// that logs into the tree it watches would otherwise restart itself for ever.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Exclusions {
    /// Everything below these.
    dirs: Vec<PathBuf>,
    /// These files, and their rotated copies (`app.log.1`, `app.log.2.gz`).
    files: Vec<PathBuf>,
}

impl Exclusions {
    pub fn of(manifest: &Manifest) -> Exclusions {
        let mut files = vec![manifest.daemon.socket.clone()];
        for spec in &manifest.services {
            for target in [&spec.logs.stdout, &spec.logs.stderr] {
                if let LogTarget::File(Some(path)) = target {
                    files.push(path.clone());
                }
            }
        }
        for socket in &manifest.sockets {
            if let Listen::Unix { path, .. } = &socket.listen {
                files.push(path.clone());
            }
        }
        Exclusions {
            dirs: vec![manifest.daemon.state_dir.clone()],
            files,
        }
    }

    pub fn covers(&self, path: &Path) -> bool {
        if self.dirs.iter().any(|dir| path.starts_with(dir)) {
            return true;
        }
        self.files.iter().any(|file| {
            if path == file {
                return true;
            }
            let (Some(name), Some(excluded)) = (path.file_name(), file.file_name()) else {
                return false;
            };
            let (name, excluded) = (name.as_bytes(), excluded.as_bytes());
            path.parent() == file.parent()
                && name.len() > excluded.len()
                && name.starts_with(excluded)
                && name[excluded.len()] == b'.'
        })
    }
}

/// What decides whether a path counts: the service's globs and the exclusions of now.
#[derive(Clone)]
struct Filter {
    spec: Arc<WatchSpec>,
    exclusions: Arc<Exclusions>,
}

impl Filter {
    fn ignored(&self, path: &Path) -> bool {
        self.exclusions.covers(path) || self.spec.ignore.iter().any(|p| p.matches(path))
    }

    /// A change to `path` restarts.
    fn counts(&self, path: &Path) -> bool {
        self.spec.paths.iter().any(|p| p.matches(path)) && !self.ignored(path)
    }

    /// A directory that holds, or may come to hold, a path that counts.
    fn worth_watching(&self, dir: &Path) -> bool {
        !self.ignored(dir)
            && self
                .spec
                .paths
                .iter()
                .any(|p| p.relation(dir) != Relation::Outside)
    }

    /// Where watching starts: for each glob, its leading directory, or the nearest one
    /// above it that exists (to see it appear).
    fn roots(&self) -> Vec<PathBuf> {
        let mut roots: Vec<PathBuf> = Vec::new();
        for pattern in &self.spec.paths {
            let mut root = pattern.static_prefix();
            while !root.is_dir() && root.pop() {}
            if !roots.contains(&root) && self.worth_watching(&root) {
                roots.push(root);
            }
        }
        roots
    }
}

const MASK: AddWatchFlags = AddWatchFlags::IN_CREATE
    .union(AddWatchFlags::IN_DELETE)
    .union(AddWatchFlags::IN_CLOSE_WRITE)
    .union(AddWatchFlags::IN_ATTRIB)
    .union(AddWatchFlags::IN_MOVED_FROM)
    .union(AddWatchFlags::IN_MOVED_TO)
    .union(AddWatchFlags::IN_ONLYDIR);

/// What a walk found.
#[derive(Default)]
struct Walked {
    dirs: Vec<(WatchDescriptor, PathBuf)>,
    /// Files that count, found in directories that had just appeared (their creation
    /// came before the watch that would have seen it).
    files: Vec<PathBuf>,
    /// inotify's watch limit was reached.
    limit: bool,
}

/// Watch `start` and every directory below it worth watching. Blocking: directory reads.
fn walk(inotify: &Inotify, filter: &Filter, start: Vec<PathBuf>, report: bool) -> Walked {
    let mut out = Walked::default();
    let mut seen = HashSet::new();
    let mut stack = start;
    while let Some(dir) = stack.pop() {
        if !seen.insert(dir.clone()) {
            continue;
        }
        match inotify.add_watch(&dir, MASK) {
            Ok(wd) => out.dirs.push((wd, dir.clone())),
            Err(Errno::ENOSPC) => {
                out.limit = true;
                continue;
            }
            // Gone already, not a directory, or not ours to read.
            Err(_) => continue,
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            // Not followed through symbolic links: a link to `..` would never end.
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if filter.worth_watching(&path) {
                    stack.push(path);
                }
            } else if report && filter.counts(&path) {
                out.files.push(path);
            }
        }
    }
    out
}

/// The inotify instance, shared with the walks on the blocking pool.
struct Shared(Arc<Inotify>);

impl AsRawFd for Shared {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// One service's watch.
pub struct Watcher {
    service: String,
    spec: Arc<WatchSpec>,
    /// For naming changed files in reasons: relative to the manifest when inside it.
    base_dir: PathBuf,
    inotify: Arc<Inotify>,
    fd: AsyncFd<Shared>,
    dirs: HashMap<WatchDescriptor, PathBuf>,
    exclusions: tokio::sync::watch::Receiver<Arc<Exclusions>>,
    limit_told: bool,
}

/// What has changed since the last restart.
#[derive(Default)]
struct Burst {
    /// The first few distinct paths, in order.
    paths: Vec<PathBuf>,
    more: usize,
    /// Events were lost (the kernel's queue overflowed): something changed.
    lost: bool,
}

impl Burst {
    fn add(&mut self, path: PathBuf) {
        if self.paths.contains(&path) {
            return;
        }
        if self.paths.len() < 3 {
            self.paths.push(path);
        } else {
            self.more += 1;
        }
    }

    /// `watch: src/app.py changed`, `watch: a.py, b.py, c.py and 4 more changed`.
    fn reason(&self, base_dir: &Path) -> String {
        if self.paths.is_empty() {
            return "watch: files changed (inotify lost events)".into();
        }
        let names: Vec<String> = self
            .paths
            .iter()
            .map(|p| p.strip_prefix(base_dir).unwrap_or(p).display().to_string())
            .collect();
        let mut text = format!("watch: {}", names.join(", "));
        if self.more > 0 {
            text.push_str(&format!(" and {} more", self.more));
        }
        text.push_str(" changed");
        text
    }
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

type Reply = oneshot::Receiver<Result<Outcomes, UnknownTarget>>;

impl Watcher {
    /// Set up the watches (the first walk done): changes from now on are seen.
    pub async fn start(
        service: String,
        spec: WatchSpec,
        base_dir: PathBuf,
        exclusions: tokio::sync::watch::Receiver<Arc<Exclusions>>,
    ) -> io::Result<Watcher> {
        let inotify = Arc::new(Inotify::init(
            InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC,
        )?);
        // SAFETY: `Shared` holds a clone of the Arc that owns the fd, so the fd stays open,
        // and is the same fd, for as long as the AsyncFd lives.
        let fd = unsafe { AsyncFd::register(Shared(inotify.clone())) }?;
        let mut watcher = Watcher {
            service,
            spec: Arc::new(spec),
            base_dir,
            inotify,
            fd,
            dirs: HashMap::new(),
            exclusions,
            limit_told: false,
        };
        watcher.scan(None, false).await;
        Ok(watcher)
    }

    /// How many directories are watched.
    pub fn watched(&self) -> usize {
        self.dirs.len()
    }

    fn filter(&self) -> Filter {
        Filter {
            spec: self.spec.clone(),
            exclusions: self.exclusions.borrow().clone(),
        }
    }

    /// Walk `start` (the roots when None) on the blocking pool; returns the files that
    /// count found there when `report`.
    async fn scan(&mut self, start: Option<Vec<PathBuf>>, report: bool) -> Vec<PathBuf> {
        let inotify = self.inotify.clone();
        let filter = self.filter();
        let walked = tokio::task::spawn_blocking(move || {
            let start = start.unwrap_or_else(|| filter.roots());
            walk(&inotify, &filter, start, report)
        })
        .await
        .unwrap_or_default();
        // A directory moved within the tree keeps its watch: the new path replaces the old.
        for (wd, dir) in walked.dirs {
            self.dirs.insert(wd, dir);
        }
        if walked.limit && !self.limit_told {
            self.limit_told = true;
            crate::logs::own::say(&format!(
                "{}: watch: inotify's limit of watches is reached (sysctl fs.inotify.max_user_watches); some directories are not watched",
                self.service
            ));
        }
        walked.files
    }

    async fn next_events(&self) -> io::Result<Vec<InotifyEvent>> {
        loop {
            let mut ready = self.fd.readable().await?;
            match ready.try_io(|fd| fd.get_ref().0.read_events().map_err(io::Error::from)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Take a batch of events: new directories get watched, changes go into `burst`.
    /// Whether anything counted (the same file again counts: it is still being written).
    async fn take(&mut self, events: Vec<InotifyEvent>, burst: &mut Burst) -> bool {
        let mut counted = false;
        let filter = self.filter();
        let mut new_dirs = Vec::new();
        let mut overflow = false;
        for event in events {
            if event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                overflow = true;
                continue;
            }
            if event.mask.contains(AddWatchFlags::IN_IGNORED) {
                self.dirs.remove(&event.wd);
                continue;
            }
            // Events about a watched directory itself come from its parent's watch too.
            let (Some(dir), Some(name)) = (self.dirs.get(&event.wd), &event.name) else {
                continue;
            };
            let path = dir.join(name);
            if event.mask.contains(AddWatchFlags::IN_ISDIR)
                && event
                    .mask
                    .intersects(AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO)
                && filter.worth_watching(&path)
            {
                new_dirs.push(path.clone());
            }
            if filter.counts(&path) {
                counted = true;
                burst.add(path);
            }
        }
        if overflow {
            counted = true;
            burst.lost = true;
            self.scan(None, false).await;
        }
        if !new_dirs.is_empty() {
            for path in self.scan(Some(new_dirs), true).await {
                counted = true;
                burst.add(path);
            }
        }
        counted
    }

    /// Restart the service after each burst of changes, until the engine is gone.
    pub async fn run(mut self, commands: WeakUnboundedSender<SupervisorCommand>) {
        let debounce = self.spec.debounce;
        let mut burst = Burst::default();
        let mut quiet_until: Option<Instant> = None;
        let mut restarting: Option<Reply> = None;
        loop {
            tokio::select! {
                events = self.next_events() => {
                    let events = match events {
                        Ok(events) => events,
                        Err(error) => {
                            crate::logs::own::say(&format!(
                                "{}: watch: cannot read file events ({error}); no more restarts on changes",
                                self.service
                            ));
                            return;
                        }
                    };
                    if self.take(events, &mut burst).await {
                        quiet_until = Some(Instant::now() + debounce);
                    }
                }
                () = sleep_until_some(quiet_until), if restarting.is_none() && quiet_until.is_some() => {
                    quiet_until = None;
                    let reason = std::mem::take(&mut burst).reason(&self.base_dir);
                    let Some(commands) = commands.upgrade() else { return };
                    let (reply, done) = oneshot::channel();
                    let trigger = SupervisorCommand::Trigger {
                        service: self.service.clone(),
                        action: Trigger::RestartUnlessStopped,
                        reason,
                        reply: Some(reply),
                    };
                    if commands.send(trigger).is_err() {
                        return;
                    }
                    restarting = Some(done);
                }
                _ = async { restarting.as_mut().expect("UNWRAP: the branch needs it").await }, if restarting.is_some() => {
                    // Done: changes made meanwhile (if any) restart once more when quiet.
                    restarting = None;
                }
            }
        }
    }
}

/// The `watch` task of one service: set up, say so, and restart on changes.
pub async fn run(
    service: String,
    spec: WatchSpec,
    base_dir: PathBuf,
    exclusions: tokio::sync::watch::Receiver<Arc<Exclusions>>,
    commands: WeakUnboundedSender<SupervisorCommand>,
) {
    match Watcher::start(service.clone(), spec, base_dir, exclusions).await {
        Ok(watcher) => {
            crate::logs::own::say(&format!(
                "{service}: watching {} director{} for changes",
                watcher.watched(),
                if watcher.watched() == 1 { "y" } else { "ies" }
            ));
            watcher.run(commands).await;
        }
        Err(error) => crate::logs::own::say(&format!(
            "{service}: watch: cannot watch files: {error} (see sysctl fs.inotify.max_user_instances)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::mpsc;

    use super::*;
    use crate::config::glob::PathPattern;

    fn spec(dir: &Path, paths: &[&str], ignore: &[&str]) -> WatchSpec {
        WatchSpec {
            paths: paths
                .iter()
                .map(|p| PathPattern::new(p, dir).unwrap())
                .collect(),
            ignore: ignore
                .iter()
                .map(|p| PathPattern::new(p, dir).unwrap())
                .collect(),
            debounce: Duration::from_millis(500),
        }
    }

    fn exclusions(dir: &Path) -> tokio::sync::watch::Receiver<Arc<Exclusions>> {
        let excluded = Exclusions {
            dirs: vec![dir.join(".tend")],
            files: vec![dir.join("src/app.log")],
        };
        tokio::sync::watch::channel(Arc::new(excluded)).1
    }

    #[test]
    fn exclusions_cover_the_state_dir_and_log_rotations() {
        let e = Exclusions {
            dirs: vec![PathBuf::from("/p/.tend")],
            files: vec![PathBuf::from("/p/src/app.log")],
        };
        assert!(e.covers(Path::new("/p/.tend/logs/web.out.log")));
        assert!(e.covers(Path::new("/p/src/app.log")));
        assert!(e.covers(Path::new("/p/src/app.log.1.gz")));
        assert!(!e.covers(Path::new("/p/src/app.logger")));
        assert!(!e.covers(Path::new("/p/other/app.log")));
        assert!(!e.covers(Path::new("/p/.tendency")));
    }

    #[test]
    fn reasons_name_what_changed() {
        let mut burst = Burst::default();
        burst.add(PathBuf::from("/p/src/a.py"));
        burst.add(PathBuf::from("/p/src/a.py"));
        assert_eq!(burst.reason(Path::new("/p")), "watch: src/a.py changed");
        for name in ["b", "c", "d", "e"] {
            burst.add(PathBuf::from(format!("/p/src/{name}.py")));
        }
        assert_eq!(
            burst.reason(Path::new("/p")),
            "watch: src/a.py, src/b.py, src/c.py and 2 more changed"
        );
        burst.add(PathBuf::from("/elsewhere/x"));
        assert!(burst.reason(Path::new("/p")).contains("and 3 more"));
    }

    /// Receive the next trigger, keeping its reply (the restart "in progress").
    async fn restart_asked(
        rx: &mut mpsc::UnboundedReceiver<SupervisorCommand>,
    ) -> (String, oneshot::Sender<Result<Outcomes, UnknownTarget>>) {
        match rx.recv().await {
            Some(SupervisorCommand::Trigger {
                service,
                action,
                reason,
                reply,
            }) => {
                assert_eq!(service, "web");
                assert_eq!(action, Trigger::RestartUnlessStopped);
                (reason, reply.expect("a watch waits for its restart"))
            }
            other => panic!("expected a trigger, got {other:?}"),
        }
    }

    /// Nothing more comes: on the paused clock, a minute passes at once when all is idle.
    async fn nothing_more(rx: &mut mpsc::UnboundedReceiver<SupervisorCommand>) {
        let more = tokio::time::timeout(Duration::from_secs(60), rx.recv()).await;
        assert!(more.is_err(), "unexpected: {more:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_restarts_once_and_a_change_during_the_restart_once_more() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("src/pkg")).unwrap();
        std::fs::create_dir_all(root.join(".tend/logs")).unwrap();
        let watcher = Watcher::start(
            "web".into(),
            spec(&root, &["src/**/*.py"], &["**/ignored"]),
            root.clone(),
            exclusions(&root),
        )
        .await
        .unwrap();
        assert_eq!(watcher.watched(), 2, "src and src/pkg");
        let (tx, mut rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(watcher.run(tx.downgrade()));

        let started = Instant::now();
        for i in 0..20 {
            std::fs::write(root.join("src/pkg/mod.py"), format!("v = {i}\n")).unwrap();
        }
        let (reason, reply) = restart_asked(&mut rx).await;
        assert_eq!(reason, "watch: src/pkg/mod.py changed");
        assert!(started.elapsed() >= Duration::from_millis(500), "debounced");

        // While the restart runs: more changes, a new directory with a file in it.
        std::fs::write(root.join("src/main.py"), "x").unwrap();
        std::fs::create_dir_all(root.join("src/new/deeper")).unwrap();
        std::fs::write(root.join("src/new/deeper/late.py"), "x").unwrap();
        nothing_more(&mut rx).await;
        reply.send(Ok(Vec::new())).unwrap();
        let (reason, reply) = restart_asked(&mut rx).await;
        assert!(reason.starts_with("watch: src/main.py"), "{reason}");
        reply.send(Ok(Vec::new())).unwrap();
        nothing_more(&mut rx).await;

        // The new directories are watched now.
        std::fs::write(root.join("src/new/deeper/late.py"), "y").unwrap();
        let (reason, reply) = restart_asked(&mut rx).await;
        assert_eq!(reason, "watch: src/new/deeper/late.py changed");
        reply.send(Ok(Vec::new())).unwrap();
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn ignored_files_state_and_logs_restart_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("src/ignored")).unwrap();
        std::fs::create_dir_all(root.join(".tend/logs")).unwrap();
        let watcher = Watcher::start(
            "web".into(),
            spec(&root, &["**"], &["**/ignored", "*.tmp"]),
            root.clone(),
            exclusions(&root),
        )
        .await
        .unwrap();
        assert_eq!(
            watcher.watched(),
            2,
            "the root and src: not ignored, not .tend"
        );
        let (tx, mut rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(watcher.run(tx.downgrade()));
        std::fs::write(root.join("src/ignored/a.py"), "x").unwrap();
        std::fs::write(root.join("scratch.tmp"), "x").unwrap();
        std::fs::write(root.join(".tend/logs/web.out.log"), "x").unwrap();
        std::fs::write(root.join("src/app.log"), "x").unwrap();
        std::fs::write(root.join("src/app.log.1"), "x").unwrap();
        nothing_more(&mut rx).await;
        std::fs::write(root.join("src/real.txt"), "x").unwrap();
        let (reason, _reply) = restart_asked(&mut rx).await;
        assert_eq!(reason, "watch: src/real.txt changed");
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_missing_directory_is_watched_for_once_it_appears() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let watcher = Watcher::start(
            "web".into(),
            spec(&root, &["build/out/*.js"], &[]),
            root.clone(),
            exclusions(&root),
        )
        .await
        .unwrap();
        assert_eq!(
            watcher.watched(),
            1,
            "the manifest's directory, for build to appear"
        );
        let (tx, mut rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(watcher.run(tx.downgrade()));
        std::fs::create_dir_all(root.join("build/out")).unwrap();
        std::fs::write(root.join("build/out/app.js"), "x").unwrap();
        let (reason, reply) = restart_asked(&mut rx).await;
        assert_eq!(reason, "watch: build/out/app.js changed");
        reply.send(Ok(Vec::new())).unwrap();
        std::fs::write(root.join("build/other.txt"), "x").unwrap();
        nothing_more(&mut rx).await;
        task.abort();
    }
}
