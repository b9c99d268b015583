//! `tend export kubernetes` and `tend export compose`: a manifest turned into Kubernetes
//! objects or a Compose file, as pure functions. What has no equivalent on the other side is
//! reported in [`Export::unmapped`], one entry per service and setting, with a hint.

use std::time::Duration;

use crate::config::model::{BackoffSpec, LogSpec, Manifest, Program, RestartLimit, ServiceSpec};

pub mod compose;
pub mod kubernetes;
pub mod pm2;
pub mod supervisord;
pub mod systemd;
mod yaml;

pub use compose::export_compose;
pub use kubernetes::{KubeOptions, export_kubernetes};
pub use pm2::export_pm2;
pub use supervisord::export_supervisord;
pub use systemd::{
    Startup, SystemdOptions, export_systemd, export_systemd_with, startup_unit, startup_unit_name,
};

/// What an exporter produces.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Export {
    /// `(file name, contents)`.
    pub files: Vec<(String, String)>,
    /// `(service, setting, why)`: what could not be carried over (or only approximately).
    pub unmapped: Vec<(String, String, String)>,
}

impl Export {
    /// What could not be mapped, for a person: one line per setting under the services it
    /// concerns. A note that holds for several services is printed once, under all of
    /// their names, so a default that every service shares does not repeat. Empty when
    /// everything was carried over.
    pub fn report(&self) -> String {
        if self.unmapped.is_empty() {
            return String::new();
        }
        // Each distinct note with the services it concerns, in first-seen order…
        type Note<'a> = (&'a str, &'a str);
        let mut notes: Vec<(Note, Vec<&str>)> = Vec::new();
        for (service, setting, why) in &self.unmapped {
            let key = (setting.as_str(), why.as_str());
            match notes.iter_mut().find(|(k, _)| *k == key) {
                Some((_, services)) => services.push(service),
                None => notes.push((key, vec![service])),
            }
        }
        // …then the notes gathered under each set of services.
        let mut groups: Vec<(Vec<&str>, Vec<Note>)> = Vec::new();
        for (note, services) in notes {
            match groups.iter_mut().find(|(s, _)| *s == services) {
                Some((_, group)) => group.push(note),
                None => groups.push((services, vec![note])),
            }
        }
        let mut out = format!(
            "not mapped, or mapped approximately ({} setting(s)):\n",
            self.unmapped.len()
        );
        for (services, notes) in groups {
            out.push_str(&format!("  {}:\n", services.join(", ")));
            for (setting, why) in notes {
                if setting.is_empty() {
                    out.push_str(&format!("    {why}\n"));
                } else {
                    out.push_str(&format!("    {setting}: {why}\n"));
                }
            }
        }
        out
    }

    pub(crate) fn note(&mut self, service: &str, setting: &str, why: impl Into<String>) {
        self.unmapped
            .push((service.to_string(), setting.to_string(), why.into()));
    }
}

/// The services to export, in manifest order: all of them when `names` is empty, else those
/// named and everything they depend on (tend starts a service's dependencies with it, and
/// every target refers to them by name). Names that are not in the manifest are reported as
/// unmapped with an empty setting.
pub(crate) fn select<'a>(
    manifest: &'a Manifest,
    names: &[String],
    export: &mut Export,
) -> Vec<&'a ServiceSpec> {
    if names.is_empty() {
        return manifest.services.iter().map(|s| &**s).collect();
    }
    let mut wanted = std::collections::BTreeSet::new();
    let mut todo: Vec<&str> = Vec::new();
    for name in names {
        if manifest.service(name).is_none() {
            export.note(name, "", "no such service in the manifest");
        } else {
            todo.push(name);
        }
    }
    while let Some(name) = todo.pop() {
        if wanted.insert(name.to_string())
            && let Some(spec) = manifest.service(name)
        {
            todo.extend(spec.depends_on.iter().map(|d| d.service.as_str()));
        }
    }
    manifest
        .services
        .iter()
        .filter(|s| wanted.contains(&s.name))
        .map(|s| &**s)
        .collect()
}

/// The project name: the manifest directory's name, made into a lowercase DNS label.
pub(crate) fn project_name(manifest: &Manifest) -> String {
    let dir = manifest.base_dir();
    let raw = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = dns_label(&raw);
    if name.is_empty() { "tend".into() } else { name }
}

/// Lowercase letters, digits and `-`, starting with a letter and ending with a letter or
/// digit, at most 63 characters (an RFC 1035 label, what a Kubernetes Service name must be).
/// Empty when nothing usable is left.
pub(crate) fn dns_label(raw: &str) -> String {
    let mut out: String = raw
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "s-");
    }
    out.truncate(63);
    out.trim_matches('-').to_string()
}

/// `env_file`: tend merged its values into `env` when it read the manifest, so the target
/// gets them inline. Said once per service, with `instead`: the target's way to keep them
/// in a file of their own.
pub(crate) fn note_env_files(svc: &ServiceSpec, export: &mut Export, instead: &str) {
    if svc.env_files.is_empty() {
        return;
    }
    let files: Vec<String> = svc
        .env_files
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    export.note(
        &svc.name,
        "env_file",
        format!(
            "the values from {} are written inline, as tend read them; {instead}",
            files.join(", ")
        ),
    );
}

/// `sockets`: only systemd passes listening sockets (LISTEN_FDS) as tend does.
pub(crate) fn note_sockets(svc: &ServiceSpec, export: &mut Export, target: &str, wrapper_in: &str) {
    if !svc.sockets.is_empty() {
        export.note(
            &svc.name,
            "sockets",
            format!(
                "{target} passes no listening sockets (LISTEN_FDS): the program must bind its port itself, or run under a socket-activation wrapper {wrapper_in} (e.g. systemd-socket-activate)"
            ),
        );
    }
}

/// Replicas that cannot tell which instance they are: said under `{instance}` when the
/// service uses it, else under `TEND_INSTANCE` (which tend sets anyway).
pub(crate) fn note_replica_index(svc: &ServiceSpec, export: &mut Export, why: &str) {
    let setting = if uses_instance(svc) {
        "{instance}"
    } else {
        "TEND_INSTANCE"
    };
    export.note(&svc.name, setting, why);
}

/// Whole seconds, rounded up (Kubernetes and Compose's `retries` count in whole units).
pub(crate) fn ceil_secs(d: Duration) -> i64 {
    let s = d.as_secs() as i64;
    if d.subsec_nanos() > 0 { s + 1 } else { s }
}

/// Whether a string holds the `{instance}` placeholder.
pub(crate) fn has_instance(s: &str) -> bool {
    s.contains("{instance}")
}

/// Whether any string of the service that tend expands per instance uses `{instance}`.
pub(crate) fn uses_instance(svc: &ServiceSpec) -> bool {
    let program = match &svc.program {
        Program::Exec(argv) => argv.iter().any(|a| has_instance(a)),
        Program::Shell(line) => has_instance(line),
    };
    let probes = [&svc.readiness, &svc.liveness, &svc.startup]
        .into_iter()
        .flatten()
        .any(|p| format!("{:?}", p.check).contains("{instance}"));
    program
        || svc.env.values().any(|v| has_instance(v))
        || svc.cwd.as_deref().is_some_and(has_instance)
        || probes
}

/// Settings tend uses that neither target has: reported when they differ from the default.
/// `cron_restart`, `schedule` and `watch` for a target that has none of them: each is
/// reported, with the command to run from the host's cron (or a systemd timer) instead.
pub(crate) fn note_schedules(
    svc: &ServiceSpec,
    export: &mut Export,
    target: &str,
    restart: &str,
    run: &str,
    watch: &str,
) {
    let n = &svc.name;
    if let Some(cron) = &svc.cron_restart {
        export.note(
            n,
            "cron_restart",
            format!("{target} restarts nothing on a schedule: run `{restart}` at \"{cron}\" from the host's cron or a systemd timer"),
        );
    }
    if let Some(cron) = &svc.schedule {
        export.note(
            n,
            "schedule",
            format!("{target} runs nothing on a schedule: run `{run}` at \"{cron}\" from the host's cron or a systemd timer"),
        );
    }
    if svc.watch.is_some() {
        export.note(n, "watch", watch);
    }
}

pub(crate) fn note_common(svc: &ServiceSpec, export: &mut Export, target: &str) {
    let n = &svc.name;
    if svc.umask.is_some() {
        export.note(
            n,
            "umask",
            "no container setting for it; set it in the image's entrypoint",
        );
    }
    if svc.exit_codes != [0] {
        export.note(
            n,
            "exit_codes",
            format!("{target} counts only exit code 0 as success"),
        );
    }
    let restarts_tuned = svc.backoff != BackoffSpec::default()
        || svc.min_uptime != Duration::from_secs(1)
        || svc.restart_window != Duration::from_secs(60)
        || svc.restart_limit != RestartLimit::Window
        || svc.cooldown.is_some();
    if restarts_tuned {
        export.note(
            n,
            "backoff",
            format!(
                "{target}'s restart delays are its own (backoff, min_uptime, restart_window, restart_limit, cooldown are not carried over)"
            ),
        );
    }
    if svc.priority != 0 {
        export.note(
            n,
            "priority",
            "start order comes only from depends_on there",
        );
    }
    if !svc.groups.is_empty() {
        export.note(
            n,
            "groups",
            "no equivalent; select services by label (Kubernetes) or profile (Compose)",
        );
    }
    if svc.logs != LogSpec::default() {
        export.note(
            n,
            "logs",
            format!(
                "output goes to {target}'s log driver; rotation and destinations are its settings"
            ),
        );
    }
    if svc.watchdog.is_some() {
        export.note(n, "watchdog", "no sd_notify watchdog; use a liveness probe");
    }
    if let Some(signal) = svc.reload_signal {
        export.note(
            n,
            "reload_signal",
            format!(
                "no reload command; send SIG{} to the container's process yourself",
                signal.name()
            ),
        );
    }
    if svc.critical {
        export.note(
            n,
            "critical",
            "no equivalent: one failing service does not stop the others",
        );
    }
    if svc.event_listener.is_some() {
        export.note(
            n,
            "event_listener",
            "supervisord event listeners need tend (or supervisord) as the supervisor",
        );
    }
    note_sockets(svc, export, target, "in the image");
    let r = &svc.resources;
    if r.max_memory.is_some() {
        export.note(
            n,
            "max_memory",
            "no restart on resident memory; memory_max maps to a hard memory limit (OOM kill)",
        );
    }
    if r.warn_cpu.is_some() || r.warn_memory.is_some() {
        export.note(
            n,
            "warn_cpu/warn_memory",
            "no warnings; use your monitoring's alerts",
        );
    }
    if r.max_gpu_memory.is_some() {
        export.note(n, "max_gpu_memory", "no GPU memory limit");
    }
    for dep in &svc.depends_on {
        if dep.on_unready != crate::config::model::OnUnready::Ignore {
            export.note(
                n,
                &format!("depends_on.{}.on_unready", dep.service),
                "dependencies are only waited for at start",
            );
        }
    }
}

/// The parts of an `http://HOST:PORT/PATH` URL a probe needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpUrl {
    pub host: String,
    pub port: u16,
    pub path: String,
}

pub(crate) fn parse_http_url(url: &str) -> Option<HttpUrl> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    let (host, port) = split_host_port(authority, 80)?;
    Some(HttpUrl { host, port, path })
}

/// `HOST:PORT`, `[V6]:PORT`, or a bare host with `default` as the port.
pub(crate) fn split_host_port(s: &str, default: u16) -> Option<(String, u16)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default,
            None => return None,
        };
        return Some((host.to_string(), port));
    }
    match s.rsplit_once(':') {
        Some((host, port)) => Some((host.to_string(), port.parse().ok()?)),
        None if !s.is_empty() => Some((s.to_string(), default)),
        None => None,
    }
}

/// Whether a probe's host is the container itself.
pub(crate) fn is_local(host: &str) -> bool {
    matches!(
        host,
        "127.0.0.1" | "localhost" | "::1" | "0.0.0.0" | "::" | ""
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(dns_label("My_App.v2"), "my-app-v2");
        assert_eq!(dns_label("9lives"), "s-9lives");
        assert_eq!(dns_label("__"), "");
    }

    #[test]
    fn urls() {
        assert_eq!(
            parse_http_url("http://127.0.0.1:8080/health?x=1"),
            Some(HttpUrl {
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/health?x=1".into()
            })
        );
        assert_eq!(parse_http_url("http://h").unwrap().port, 80);
        assert_eq!(parse_http_url("http://[::1]:9/").unwrap().host, "::1");
        assert_eq!(parse_http_url("http://h:x/"), None);
        assert_eq!(split_host_port("db:5432", 0), Some(("db".into(), 5432)));
    }
}
