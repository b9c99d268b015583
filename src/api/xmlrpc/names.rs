//! supervisord's view of the manifest: every instance as a process in a group, with the
//! settings `supervisorctl avail` shows and the files its log commands read.

use std::path::{Path, PathBuf};

use crate::config::model::{LogTarget, Manifest, Program, RestartPolicy, ServiceSpec};
use crate::logs::{self, Stream};

/// One supervisord process: a tend instance under supervisord's names.
#[derive(Debug, Clone)]
pub struct Process {
    pub group: String,
    pub name: String,
    /// tend's instance name (`web`, `web:2`).
    pub instance: String,
    pub service: String,
    pub stdout_log: Option<PathBuf>,
    pub stderr_log: Option<PathBuf>,
    pub config: ProcessConfig,
}

/// What `getAllConfigInfo` reports, in supervisord's terms.
#[derive(Debug, Clone)]
pub struct ProcessConfig {
    pub command: String,
    pub directory: Option<String>,
    pub user: Option<String>,
    pub autostart: bool,
    /// `true`, `false` or `unexpected`.
    pub autorestart: &'static str,
    pub exitcodes: Vec<i32>,
    pub priority: i64,
    pub startsecs: u64,
    pub startretries: u32,
    pub stopsignal: i32,
    pub stopwaitsecs: u64,
    pub redirect_stderr: bool,
    pub stdout_logfile: String,
    pub stderr_logfile: String,
    pub logfile_maxbytes: u64,
    pub logfile_backups: u32,
    pub syslog: bool,
}

impl Process {
    /// `name` alone when the group has its name, else `group:name`.
    pub fn namespec(&self) -> String {
        if self.group == self.name {
            self.name.clone()
        } else {
            format!("{}:{}", self.group, self.name)
        }
    }
}

/// A supervisord name given for a tend instance (from an imported supervisord.conf).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GivenName {
    pub group: String,
    pub name: String,
    pub instance: String,
}

/// Every process, sorted by group then name as `getAllProcessInfo` lists them.
#[derive(Debug, Clone, Default)]
pub struct ProcessTable {
    pub processes: Vec<Process>,
}

impl ProcessTable {
    /// Names come from `given` where an instance has one; otherwise a service is a group of
    /// its own, and its instances are processes named after the service (one instance) or
    /// numbered (`web:0`, so the namespec is tend's instance name).
    pub fn new(manifest: &Manifest, given: &[GivenName]) -> ProcessTable {
        let log_dir = manifest.daemon.state_dir.join("logs");
        let mut processes = Vec::new();
        for service in &manifest.services {
            for index in 0..service.instances {
                let instance = service.instance_name(index);
                let (group, name) = match given.iter().find(|g| g.instance == instance) {
                    Some(g) => (g.group.clone(), g.name.clone()),
                    None if !service.is_numbered() => (service.name.clone(), service.name.clone()),
                    None => (service.name.clone(), index.to_string()),
                };
                let stem = logs::file_stem(&service.name, index, service.is_numbered());
                let stdout_log = logs::file_of(&service.logs, &log_dir, &stem, Stream::Out);
                let stderr_log = logs::file_of(&service.logs, &log_dir, &stem, Stream::Err);
                let config = config_of(service, stdout_log.as_deref(), stderr_log.as_deref());
                processes.push(Process {
                    group,
                    name,
                    instance,
                    service: service.name.clone(),
                    stdout_log,
                    stderr_log,
                    config,
                });
            }
        }
        processes.sort_by(|a, b| (&a.group, &a.name).cmp(&(&b.group, &b.name)));
        ProcessTable { processes }
    }

    /// The processes a namespec names: `name`, `group:name`, or `group:*` / `group:` for a
    /// whole group. None when it names nothing.
    pub fn resolve(&self, namespec: &str) -> Option<Resolved<'_>> {
        let (group, name) = match namespec.split_once(':') {
            Some((group, name)) => (group, name),
            None => (namespec, namespec),
        };
        let members: Vec<&Process> = self.processes.iter().filter(|p| p.group == group).collect();
        if members.is_empty() {
            return None;
        }
        if name.is_empty() || name == "*" {
            return Some(Resolved::Group(members));
        }
        members
            .into_iter()
            .find(|p| p.name == name)
            .map(Resolved::Process)
    }

    pub fn by_instance(&self, instance: &str) -> Option<&Process> {
        self.processes.iter().find(|p| p.instance == instance)
    }

    pub fn groups(&self) -> Vec<&str> {
        let mut groups: Vec<&str> = self.processes.iter().map(|p| p.group.as_str()).collect();
        groups.dedup();
        groups
    }
}

pub enum Resolved<'a> {
    Process(&'a Process),
    Group(Vec<&'a Process>),
}

fn config_of(service: &ServiceSpec, stdout: Option<&Path>, stderr: Option<&Path>) -> ProcessConfig {
    let command = match &service.program {
        Program::Exec(argv) => shell_words::join(argv),
        Program::Shell(line) => line.clone(),
    };
    let logfile = |path: Option<&Path>, target: &LogTarget| match (path, target) {
        (Some(path), _) => path.display().to_string(),
        (None, LogTarget::Inherit) => "/dev/stdout".into(),
        (None, _) => "none".into(),
    };
    ProcessConfig {
        command,
        directory: service.cwd.clone(),
        user: service.user.clone(),
        autostart: service.autostart,
        autorestart: match service.restart {
            RestartPolicy::Always => "true",
            RestartPolicy::OnFailure => "unexpected",
            RestartPolicy::Never => "false",
        },
        exitcodes: service.exit_codes.clone(),
        priority: service.priority,
        startsecs: service.min_uptime.as_secs(),
        startretries: service.max_restarts,
        stopsignal: service.stop_signal.number(),
        stopwaitsecs: service.stop_timeout.as_secs(),
        redirect_stderr: service.logs.merge,
        stdout_logfile: logfile(stdout, &service.logs.stdout),
        stderr_logfile: logfile(stderr, &service.logs.stderr),
        logfile_maxbytes: service.logs.max_size.unwrap_or(0),
        logfile_backups: service.logs.backups,
        syslog: service.logs.syslog.is_some(),
    }
}
