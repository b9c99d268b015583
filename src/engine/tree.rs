//! Containment of an instance's whole process tree, so a stop leaves nothing behind.
//!
//! Where tend can write a cgroup v2 subtree, each instance gets its own cgroup: membership is
//! exact and `cgroup.kill` is atomic. Otherwise (and always in addition) the instance's
//! process group is signalled, and at stop time /proc is scanned for descendants that left
//! the group (`setsid`, double fork): processes below a group member, and orphans that were
//! re-parented to tend (it is a subreaper) carrying the instance's `TEND_*` markers.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::sys::signal::{Signal as NixSignal, kill, killpg};
use nix::unistd::Pid;

use crate::config::model::CgroupMode;

/// Environment variable naming the daemon run that started a process; survivors of a crashed
/// run are recognised by it.
pub const RUN_ID_VAR: &str = "TEND_RUN_ID";

/// Per-daemon containment settings.
#[derive(Debug, Clone)]
pub struct Containment {
    /// This daemon's cgroup directory (`…/tend-<pid>`), when cgroups are in use.
    cgroup_root: Option<PathBuf>,
    run_id: String,
    tend_pid: i32,
}

impl Containment {
    /// Decide how to contain children: a cgroup v2 subtree below tend's own cgroup if one can
    /// be created and joined, otherwise process groups plus /proc tracking.
    pub fn detect(mode: CgroupMode, run_id: String) -> Containment {
        let tend_pid = std::process::id() as i32;
        let cgroup_root = match mode {
            CgroupMode::Off => None,
            CgroupMode::Auto => own_cgroup_dir().and_then(|dir| {
                let root = dir.join(format!("tend-{tend_pid}"));
                match fs::create_dir(&root) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(_) => return None,
                }
                // Hand the resource controllers down to the instances where the parent
                // offers them, so per-instance limits can be set; each one on its own, as
                // any may be missing.
                for controller in ["+memory", "+cpu", "+pids"] {
                    let _ = fs::write(root.join("cgroup.subtree_control"), controller);
                }
                Some(root)
            }),
        };
        Containment {
            cgroup_root,
            run_id,
            tend_pid,
        }
    }

    /// The containment the previous image of tend set up (an upgrade): the same run id,
    /// which its children carry, and the same cgroup subtree, which holds them.
    pub fn resume(cgroup_root: Option<PathBuf>, run_id: String) -> Containment {
        Containment {
            cgroup_root,
            run_id,
            tend_pid: std::process::id() as i32,
        }
    }

    pub fn cgroup_root(&self) -> Option<&Path> {
        self.cgroup_root.as_deref()
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The containment for one instance (creates its cgroup if cgroups are in use).
    pub fn instance(&self, service: &str, index: u32) -> InstanceTree {
        self.instance_slot(service, index, false)
    }

    /// The containment for the second process of an instance during a reload: its own
    /// cgroup beside the current one's, so that stopping either never touches the other.
    /// `alternate` picks the other of two names; the current process holds one of them.
    pub fn instance_slot(&self, service: &str, index: u32, alternate: bool) -> InstanceTree {
        let cgroup = self.cgroup_root.as_ref().and_then(|root| {
            let name = if alternate {
                format!("{service}.{index}.r")
            } else {
                format!("{service}.{index}")
            };
            let dir = root.join(name);
            match fs::create_dir(&dir) {
                Ok(()) => Some(dir),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Some(dir),
                Err(_) => None,
            }
        });
        InstanceTree {
            cgroup,
            alternate,
            pgid: None,
            markers: [
                format!("{RUN_ID_VAR}={}", self.run_id),
                format!("TEND_SERVICE={service}"),
                format!("TEND_INSTANCE={index}"),
            ],
            tend_pid: self.tend_pid,
        }
    }

    /// Remove this daemon's (empty) cgroup subtree at exit.
    pub fn remove(&self) {
        remove_cgroup_tree(self.cgroup_root.as_deref());
    }
}

/// The processes of one instance.
#[derive(Debug)]
pub struct InstanceTree {
    cgroup: Option<PathBuf>,
    /// Which of the instance's two cgroup names it has (see [`Containment::instance_slot`]).
    alternate: bool,
    /// The current leader's pid, which is also its process group id.
    pgid: Option<i32>,
    markers: [String; 3],
    tend_pid: i32,
}

impl InstanceTree {
    pub fn cgroup_dir(&self) -> Option<PathBuf> {
        self.cgroup.clone()
    }

    /// Whether this is the alternate slot (see [`Containment::instance_slot`]).
    pub fn is_alternate(&self) -> bool {
        self.alternate
    }

    pub fn set_leader(&mut self, pid: u32) {
        self.pgid = Some(pid as i32);
    }

    /// The pid tend spawned (also the process group's id), once spawned.
    pub fn leader(&self) -> Option<u32> {
        self.pgid.and_then(|p| u32::try_from(p).ok())
    }

    /// Send `signal` to every process of the instance. `thorough` also searches /proc for
    /// escaped descendants (used when stopping; a plain `tend signal` hits group and cgroup).
    pub fn signal(&self, signal: i32, thorough: bool, owned: &dyn Fn(u32) -> bool) {
        let Ok(sig) = NixSignal::try_from(signal) else {
            return;
        };
        let pgid = self.pgid.filter(|p| *p > 1);
        if let Some(pgid) = pgid {
            let _ = killpg(Pid::from_raw(pgid), sig);
        }
        // Each process gets the signal exactly once: many programs take a second SIGTERM as
        // "quit now, skip the cleanup". So only processes outside the group are sent it here.
        let mut others = self.cgroup_members();
        if thorough && self.cgroup.is_none() {
            others.extend(self.escaped(owned));
        }
        others.sort_unstable();
        others.dedup();
        for pid in others {
            let outside = pgid.is_none_or(|pgid| {
                nix::unistd::getpgid(Some(Pid::from_raw(pid))).is_ok_and(|g| g.as_raw() != pgid)
            });
            if outside {
                let _ = kill(Pid::from_raw(pid), sig);
            }
        }
    }

    /// SIGKILL everything, atomically through `cgroup.kill` where available.
    pub fn kill(&self, owned: &dyn Fn(u32) -> bool) {
        if let Some(cgroup) = &self.cgroup {
            let _ = fs::write(cgroup.join("cgroup.kill"), "1");
        }
        self.signal(libc::SIGKILL, true, owned);
    }

    /// Whether nothing of the tree is left. `thorough` includes escaped descendants.
    pub fn is_empty(&self, thorough: bool, owned: &dyn Fn(u32) -> bool) -> bool {
        let group_alive = self
            .pgid
            .filter(|p| *p > 1)
            .is_some_and(|pgid| killpg(Pid::from_raw(pgid), None).is_ok());
        if group_alive || !self.cgroup_members().is_empty() {
            return false;
        }
        !(thorough && self.cgroup.is_none() && !self.escaped(owned).is_empty())
    }

    /// Every process of the instance now: its cgroup's members, or else its process group
    /// and escaped descendants (from a /proc scan shared by callers within a few ms).
    pub fn members(&self, owned: &dyn Fn(u32) -> bool) -> Vec<u32> {
        let pids = if self.cgroup.is_some() {
            self.cgroup_members()
        } else {
            self.escaped(owned)
        };
        pids.into_iter()
            .filter_map(|p| u32::try_from(p).ok())
            .collect()
    }

    fn cgroup_members(&self) -> Vec<i32> {
        let Some(cgroup) = &self.cgroup else {
            return vec![];
        };
        // Read by hand: `fs::read_to_string` first asks the file's size, which cgroupfs
        // does not know, and sampling reads this for every instance.
        let mut procs = Vec::new();
        let mut chunk = [0u8; 1024];
        if let Ok(mut file) = fs::File::open(cgroup.join("cgroup.procs")) {
            while let Ok(n @ 1..) = std::io::Read::read(&mut file, &mut chunk) {
                procs.extend_from_slice(&chunk[..n]);
            }
        }
        String::from_utf8_lossy(&procs)
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Processes that left the process group: descendants of group members, and orphans
    /// adopted by tend that carry this instance's markers, with their descendants.
    /// `owned` tells tend's own spawned leaders apart from adopted orphans.
    fn escaped(&self, owned: &dyn Fn(u32) -> bool) -> Vec<i32> {
        let procs = recent_process_table();
        let procs = procs.as_slice();
        let mut members: HashSet<i32> = HashSet::new();
        if let Some(pgid) = self.pgid {
            members.extend(procs.iter().filter(|p| p.pgid == pgid).map(|p| p.pid));
        }
        for p in procs {
            if p.ppid == self.tend_pid && !owned(p.pid as u32) && has_markers(p.pid, &self.markers)
            {
                members.insert(p.pid);
            }
        }
        // Close over descendants; a few passes suffice for realistic depths.
        loop {
            let before = members.len();
            for p in procs {
                if members.contains(&p.ppid) {
                    members.insert(p.pid);
                }
            }
            if members.len() == before {
                break;
            }
        }
        members.retain(|pid| *pid != self.tend_pid && *pid > 1);
        members.into_iter().collect()
    }

    /// Remove the instance's cgroup once it is empty.
    pub fn remove(&self) {
        if let Some(cgroup) = &self.cgroup {
            let _ = fs::remove_dir(cgroup);
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct ProcStat {
    pid: i32,
    ppid: i32,
    pgid: i32,
    /// Exited, waiting to be reaped: nothing left to stop.
    zombie: bool,
}

/// How long a /proc scan is reused. When many instances stop at once (a `down` without
/// cgroups) each one asks for the table, often within the same few milliseconds; one scan
/// serves them all. A process that appears within this window is caught by the next poll.
const TABLE_REUSE: std::time::Duration = std::time::Duration::from_millis(10);

type CachedTable = Option<(std::time::Instant, std::sync::Arc<Vec<ProcStat>>)>;
static TABLE_CACHE: std::sync::Mutex<CachedTable> = std::sync::Mutex::new(None);

fn recent_process_table() -> std::sync::Arc<Vec<ProcStat>> {
    let mut cache = TABLE_CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((at, table)) = cache.as_ref()
        && at.elapsed() < TABLE_REUSE
    {
        return table.clone();
    }
    let table = std::sync::Arc::new(process_table());
    *cache = Some((std::time::Instant::now(), table.clone()));
    table
}

/// Every process's pid, parent and process group, from /proc/*/stat.
fn process_table() -> Vec<ProcStat> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return vec![];
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter_map(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // The command name may contain spaces and parentheses; fields resume after the last ')'.
            let rest = &stat[stat.rfind(')')? + 2..];
            let mut fields = rest.split(' ');
            let zombie = fields.next()? == "Z";
            let ppid = fields.next()?.parse().ok()?;
            let pgid = fields.next()?.parse().ok()?;
            Some(ProcStat {
                pid,
                ppid,
                pgid,
                zombie,
            })
        })
        .collect()
}

fn has_markers(pid: i32, markers: &[String]) -> bool {
    let Ok(environ) = fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    markers.iter().all(|m| {
        environ
            .split(|b| *b == 0)
            .any(|entry| entry == m.as_bytes())
    })
}

/// Find the directory of tend's own cgroup in a writable cgroup v2 hierarchy.
fn own_cgroup_dir() -> Option<PathBuf> {
    let membership = fs::read_to_string("/proc/self/cgroup").ok()?;
    let own = membership.lines().find_map(|l| l.strip_prefix("0::"))?;
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount = mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split(' ').next()? != "cgroup2" {
            return None;
        }
        left.split(' ').nth(4).map(PathBuf::from)
    })?;
    let dir = mount.join(own.trim_start_matches('/'));
    // Writable and joinable: domain controllers in our own cgroup's subtree_control would
    // forbid processes in child cgroups next to us only if we enabled them; we do not.
    let probe = dir.join(format!("tend-probe-{}", std::process::id()));
    fs::create_dir(&probe).ok()?;
    let _ = fs::remove_dir(&probe);
    Some(dir)
}

/// Stop processes left behind by an earlier daemon that died without stopping them: members
/// of its recorded cgroup subtree, and any process carrying its run id. Returns how many
/// processes were found.
pub fn stop_survivors(run_id: &str, cgroup_root: Option<&Path>) -> usize {
    let marker = format!("{RUN_ID_VAR}={run_id}");
    let find = || -> Vec<i32> {
        let own = std::process::id() as i32;
        let mut pids: HashSet<i32> = HashSet::new();
        if let Some(root) = cgroup_root
            && let Ok(entries) = fs::read_dir(root)
        {
            for entry in entries.flatten() {
                if let Ok(procs) = fs::read_to_string(entry.path().join("cgroup.procs")) {
                    pids.extend(procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
                }
            }
        }
        for p in process_table() {
            if p.pid != own && has_markers(p.pid, std::slice::from_ref(&marker)) {
                pids.insert(p.pid);
            }
        }
        pids.into_iter().filter(|p| *p > 1 && *p != own).collect()
    };
    let survivors = find();
    if survivors.is_empty() {
        remove_cgroup_tree(cgroup_root);
        return 0;
    }
    for pid in &survivors {
        let _ = kill(Pid::from_raw(*pid), NixSignal::SIGTERM);
    }
    // Bounded wait for a graceful exit, then no more mercy.
    for _ in 0..50 {
        if find().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    if let Some(root) = cgroup_root
        && let Ok(entries) = fs::read_dir(root)
    {
        for entry in entries.flatten() {
            let _ = fs::write(entry.path().join("cgroup.kill"), "1");
        }
    }
    for pid in find() {
        let _ = kill(Pid::from_raw(pid), NixSignal::SIGKILL);
    }
    remove_cgroup_tree(cgroup_root);
    survivors.len()
}

/// At shutdown: stop whatever is still parented to tend. Those are orphans it adopted as
/// subreaper (or PID 1) that no instance claimed, for instance a daemonised grandchild that
/// cleared its environment. They were started under tend, so they do not outlive it.
pub fn stop_adopted_orphans() -> usize {
    let own = std::process::id() as i32;
    let orphans = || -> Vec<i32> {
        process_table()
            .into_iter()
            .filter(|p| p.ppid == own && p.pid > 1 && !p.zombie)
            .map(|p| p.pid)
            .collect()
    };
    let found = orphans();
    if found.is_empty() {
        return 0;
    }
    for pid in &found {
        let _ = kill(Pid::from_raw(*pid), NixSignal::SIGTERM);
    }
    for _ in 0..50 {
        if orphans().is_empty() {
            return found.len();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for pid in orphans() {
        let _ = kill(Pid::from_raw(pid), NixSignal::SIGKILL);
    }
    found.len()
}

fn remove_cgroup_tree(root: Option<&Path>) {
    let Some(root) = root else { return };
    for _ in 0..50 {
        if let Ok(entries) = fs::read_dir(root) {
            for entry in entries.flatten() {
                if entry.path().is_dir() {
                    let _ = fs::remove_dir(entry.path());
                }
            }
        }
        if fs::remove_dir(root).is_ok() || !root.exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
