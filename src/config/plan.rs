//! What changes between the manifest tend runs and the one on disk: the plan `tend diff`
//! shows and `tend apply` carries out. A pure function of two manifests.
//!
//! Every setting is compared by name: [`compare`] and [`compare_daemon`] take their structs
//! apart with every field named, so a field added to [`ServiceSpec`] or [`DaemonSettings`]
//! does not compile until it is given a key and an [`Effect`] here.

use crate::config::model::{
    BackoffSpec, DaemonSettings, Dependency, LogSpec, Manifest, ResourceSpec, ServiceSpec,
};

/// How a changed setting reaches the running instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The instance task or its process uses it (the command, the environment, the restart
    /// policy, probes, logs...): the service's instances are replaced, and those that were
    /// running are started again.
    Restart,
    /// Only the number of instances, while the names carry the index (`web:0`, `web:1`...:
    /// counts of 2 or more, or a `numbered` service): new indices are added, the highest
    /// removed, the others untouched.
    Scale,
    /// Read by the supervisor alone (start order, dependency gating, targets, `critical`):
    /// taken at once, no process is touched.
    Update,
}

/// One setting that differs, by its manifest key (`command`, `env.PORT`, `logs.max_size`,
/// `depends_on.db`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub key: String,
    pub effect: Effect,
}

/// What happens to a changed service as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Some setting needs its instances replaced.
    Restart,
    /// Only the count changed (with perhaps supervisor-only settings).
    Scale { from: u32, to: u32 },
    /// Only supervisor-only settings changed.
    Update,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceChange {
    pub name: String,
    pub settings: Vec<Setting>,
    pub action: Action,
}

/// The difference between two manifests, service by service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// In the new manifest's order.
    pub added: Vec<String>,
    /// In the old manifest's order.
    pub removed: Vec<String>,
    /// In the new manifest's order.
    pub changed: Vec<ServiceChange>,
    pub unchanged: Vec<String>,
    /// `[tend]` keys that differ (`tend.http`, `tend.state_dir`): the daemon cannot take them
    /// while it runs; they wait for `tend down && tend up`.
    pub daemon: Vec<String>,
}

impl Plan {
    /// Whether applying it would change a service.
    pub fn changes_services(&self) -> bool {
        !self.added.is_empty() || !self.removed.is_empty() || !self.changed.is_empty()
    }

    /// Whether the two manifests differ at all.
    pub fn is_empty(&self) -> bool {
        !self.changes_services() && self.daemon.is_empty()
    }
}

/// The plan that takes `old` (what runs) to `new` (what the file says now).
pub fn plan(old: &Manifest, new: &Manifest) -> Plan {
    let mut plan = Plan {
        removed: old
            .services
            .iter()
            .filter(|s| new.service(&s.name).is_none())
            .map(|s| s.name.clone())
            .collect(),
        daemon: compare_daemon(&old.daemon, &new.daemon),
        ..Plan::default()
    };
    // Sockets are bound once, at startup: like `[tend]`, they wait for a restart of tend.
    let mut socket_names: Vec<&str> = old
        .sockets
        .iter()
        .chain(&new.sockets)
        .map(|s| s.name.as_str())
        .collect();
    socket_names.sort_unstable();
    socket_names.dedup();
    for name in socket_names {
        let was = old.sockets.iter().find(|s| s.name == name);
        let now = new.sockets.iter().find(|s| s.name == name);
        if was != now {
            plan.daemon.push(format!("sockets.{name}"));
        }
    }
    for spec in &new.services {
        match old.service(&spec.name) {
            None => plan.added.push(spec.name.clone()),
            Some(was) => {
                let settings = compare(was, spec);
                if settings.is_empty() {
                    plan.unchanged.push(spec.name.clone());
                } else {
                    let action = action(was, spec, &settings);
                    plan.changed.push(ServiceChange {
                        name: spec.name.clone(),
                        settings,
                        action,
                    });
                }
            }
        }
    }
    plan
}

fn action(old: &ServiceSpec, new: &ServiceSpec, settings: &[Setting]) -> Action {
    if settings.iter().any(|s| s.effect == Effect::Restart) {
        Action::Restart
    } else if old.instances != new.instances {
        Action::Scale {
            from: old.instances,
            to: new.instances,
        }
    } else {
        Action::Update
    }
}

/// The differing settings of two specs of one service; empty when they are equal.
pub fn compare(old: &ServiceSpec, new: &ServiceSpec) -> Vec<Setting> {
    // Every field named: a new one must be given a key and an effect before this compiles.
    let ServiceSpec {
        name: _,
        program,
        cwd,
        env,
        env_files,
        user,
        group,
        umask,
        kind,
        autostart,
        instances,
        numbered: _,
        autoscale,
        port_base,
        restart,
        exit_codes,
        backoff,
        min_uptime,
        max_restarts,
        restart_window,
        restart_limit,
        cooldown,
        stop_signal,
        stop_timeout,
        reload_signal,
        reload_timeout,
        max_surge,
        depends_on,
        priority,
        groups,
        logs,
        readiness,
        liveness,
        startup,
        watchdog,
        resources,
        critical,
        event_listener,
        sockets,
        cron_restart,
        schedule,
        watch,
    } = old;
    let mut out = Settings::default();
    use Effect::{Restart, Update};
    // `args` and `shell` are written as `command` in the model.
    out.field("command", program, &new.program, Restart);
    out.field("cwd", cwd, &new.cwd, Restart);
    out.map("env", env, &new.env, Restart);
    // What a process gets from the files is in `env`; the paths alone reach no process.
    out.field("env_file", env_files, &new.env_files, Update);
    out.field("user", user, &new.user, Restart);
    out.field("group", group, &new.group, Restart);
    out.field("umask", umask, &new.umask, Restart);
    out.field("kind", kind, &new.kind, Restart);
    out.field("autostart", autostart, &new.autostart, Update);
    if old.is_numbered() != new.is_numbered() {
        // The names change (`web` ↔ `web:0`), and with them the log files: every instance
        // is replaced. So it is from or to one instance, unless the service is `numbered`
        // (autoscaled, or scaled by `tend scale`), whose single instance is `web:0`.
        out.push("instances", Restart);
    } else if instances != &new.instances {
        out.push("instances", Effect::Scale);
    }
    // Read by the autoscaler alone; the count it sets is `instances`.
    out.field("autoscale", autoscale, &new.autoscale, Update);
    out.field("port_base", port_base, &new.port_base, Restart);
    out.field("restart", restart, &new.restart, Restart);
    out.field("exit_codes", exit_codes, &new.exit_codes, Restart);
    backoff_settings(&mut out, backoff, &new.backoff);
    out.field("min_uptime", min_uptime, &new.min_uptime, Restart);
    out.field("max_restarts", max_restarts, &new.max_restarts, Restart);
    out.field(
        "restart_window",
        restart_window,
        &new.restart_window,
        Restart,
    );
    out.field("restart_limit", restart_limit, &new.restart_limit, Restart);
    out.field("cooldown", cooldown, &new.cooldown, Restart);
    out.field("stop_signal", stop_signal, &new.stop_signal, Restart);
    out.field("stop_timeout", stop_timeout, &new.stop_timeout, Restart);
    // Read by the supervisor when a reload is asked for, never by a process.
    out.field("reload_signal", reload_signal, &new.reload_signal, Update);
    out.field(
        "reload_timeout",
        reload_timeout,
        &new.reload_timeout,
        Update,
    );
    out.field("max_surge", max_surge, &new.max_surge, Update);
    dependency_settings(&mut out, depends_on, &new.depends_on);
    out.field("priority", priority, &new.priority, Update);
    out.field("groups", groups, &new.groups, Update);
    log_settings(&mut out, logs, &new.logs);
    out.field("readiness", readiness, &new.readiness, Restart);
    out.field("liveness", liveness, &new.liveness, Restart);
    out.field("startup", startup, &new.startup, Restart);
    out.field("watchdog", watchdog, &new.watchdog, Restart);
    resource_settings(&mut out, resources, &new.resources);
    out.field("critical", critical, &new.critical, Update);
    out.field(
        "event_listener",
        event_listener,
        &new.event_listener,
        Restart,
    );
    // The fds a process is given.
    out.field("sockets", sockets, &new.sockets, Restart);
    // Read by the supervisor's schedule and watch tasks, which start again with the new
    // spec; no process is touched until one fires.
    out.field("cron_restart", cron_restart, &new.cron_restart, Update);
    out.field("schedule", schedule, &new.schedule, Update);
    out.field("watch", watch, &new.watch, Update);
    out.0
}

fn backoff_settings(out: &mut Settings, old: &BackoffSpec, new: &BackoffSpec) {
    let BackoffSpec {
        initial,
        max,
        factor,
        jitter,
        growth,
    } = old;
    out.field("backoff.initial", initial, &new.initial, Effect::Restart);
    out.field("backoff.max", max, &new.max, Effect::Restart);
    out.field("backoff.factor", factor, &new.factor, Effect::Restart);
    out.field("backoff.jitter", jitter, &new.jitter, Effect::Restart);
    out.field("backoff.growth", growth, &new.growth, Effect::Restart);
}

/// `depends_on.NAME` for each dependency added, removed or with another condition or
/// `on_unready`. Dependencies gate starts and follow readiness in the supervisor only.
fn dependency_settings(out: &mut Settings, old: &[Dependency], new: &[Dependency]) {
    let mut names: Vec<&str> = old.iter().chain(new).map(|d| d.service.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let was = old.iter().find(|d| d.service == name);
        let now = new.iter().find(|d| d.service == name);
        if was != now {
            out.push(&format!("depends_on.{name}"), Effect::Update);
        }
    }
}

fn log_settings(out: &mut Settings, old: &LogSpec, new: &LogSpec) {
    let LogSpec {
        merge,
        stdout,
        stderr,
        max_size,
        rotate_every,
        backups,
        compress,
        timestamps,
        timestamp_format,
        format,
        tail,
        max_line,
        syslog,
        journal,
        events_stdout,
        events_stderr,
    } = old;
    use Effect::Restart;
    out.field("logs.merge", merge, &new.merge, Restart);
    out.field("logs.stdout", stdout, &new.stdout, Restart);
    out.field("logs.stderr", stderr, &new.stderr, Restart);
    out.field("logs.max_size", max_size, &new.max_size, Restart);
    out.field(
        "logs.rotate_every",
        rotate_every,
        &new.rotate_every,
        Restart,
    );
    out.field("logs.backups", backups, &new.backups, Restart);
    out.field("logs.compress", compress, &new.compress, Restart);
    out.field("logs.timestamps", timestamps, &new.timestamps, Restart);
    out.field(
        "logs.timestamp_format",
        timestamp_format,
        &new.timestamp_format,
        Restart,
    );
    out.field("logs.format", format, &new.format, Restart);
    out.field("logs.tail", tail, &new.tail, Restart);
    out.field("logs.max_line", max_line, &new.max_line, Restart);
    out.field("logs.syslog", syslog, &new.syslog, Restart);
    out.field("logs.journal", journal, &new.journal, Restart);
    // One key in the manifest: `events = ["stdout", "stderr"]`.
    if (events_stdout, events_stderr) != (&new.events_stdout, &new.events_stderr) {
        out.push("logs.events", Restart);
    }
}

/// The resource keys sit directly under `[services.NAME]`.
fn resource_settings(out: &mut Settings, old: &ResourceSpec, new: &ResourceSpec) {
    let ResourceSpec {
        max_memory,
        memory_max,
        cpu_max,
        pids_max,
        warn_cpu,
        warn_memory,
        gpus,
        gpus_per_instance,
        max_gpu_memory,
    } = old;
    use Effect::Restart;
    out.field("max_memory", max_memory, &new.max_memory, Restart);
    out.field("memory_max", memory_max, &new.memory_max, Restart);
    out.field("cpu_max", cpu_max, &new.cpu_max, Restart);
    out.field("pids_max", pids_max, &new.pids_max, Restart);
    out.field("warn_cpu", warn_cpu, &new.warn_cpu, Restart);
    out.field("warn_memory", warn_memory, &new.warn_memory, Restart);
    out.field("gpus", gpus, &new.gpus, Restart);
    out.field(
        "gpus_per_instance",
        gpus_per_instance,
        &new.gpus_per_instance,
        Restart,
    );
    out.field(
        "max_gpu_memory",
        max_gpu_memory,
        &new.max_gpu_memory,
        Restart,
    );
}

/// The `[tend]` keys that differ. None of them is taken while tend runs: the socket, the
/// state directory, the listeners, the history and the notifiers are set up once, at start.
pub fn compare_daemon(old: &DaemonSettings, new: &DaemonSettings) -> Vec<String> {
    let DaemonSettings {
        state_dir,
        socket,
        cgroups,
        log,
        sample_every,
        max_starting,
        socket_group,
        min_fds,
        min_procs,
        http,
        history,
        notify,
    } = old;
    let mut out = Settings::default();
    let effect = Effect::Restart;
    out.field("tend.state_dir", state_dir, &new.state_dir, effect);
    out.field("tend.socket", socket, &new.socket, effect);
    out.field("tend.cgroups", cgroups, &new.cgroups, effect);
    out.field("tend.log", log, &new.log, effect);
    out.field("tend.sample_every", sample_every, &new.sample_every, effect);
    out.field("tend.max_starting", max_starting, &new.max_starting, effect);
    out.field("tend.socket_group", socket_group, &new.socket_group, effect);
    out.field("tend.min_fds", min_fds, &new.min_fds, effect);
    out.field("tend.min_procs", min_procs, &new.min_procs, effect);
    out.field("tend.http", http, &new.http, effect);
    out.field("tend.history", history, &new.history, effect);
    out.field("tend.notify", notify, &new.notify, effect);
    out.0.into_iter().map(|s| s.key).collect()
}

#[derive(Default)]
struct Settings(Vec<Setting>);

impl Settings {
    fn push(&mut self, key: &str, effect: Effect) {
        self.0.push(Setting {
            key: key.to_string(),
            effect,
        });
    }

    fn field<T: PartialEq + ?Sized>(&mut self, key: &str, old: &T, new: &T, effect: Effect) {
        if old != new {
            self.push(key, effect);
        }
    }

    /// `KEY.NAME` for each entry added, removed or changed.
    fn map(
        &mut self,
        key: &str,
        old: &std::collections::BTreeMap<String, String>,
        new: &std::collections::BTreeMap<String, String>,
        effect: Effect,
    ) {
        let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            if old.get(name) != new.get(name) {
                self.push(&format!("{key}.{name}"), effect);
            }
        }
    }
}

#[cfg(test)]
mod tests;
