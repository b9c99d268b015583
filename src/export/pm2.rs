//! tend manifest → PM2 ecosystem file (`ecosystem.config.json`).
//!
//! [`export_pm2`] is the inverse of `import::pm2` wherever both carry a setting: importing the
//! file it writes gives back the same services (see the round-trip test). What PM2 cannot do,
//! or does only approximately, is reported in [`Export::unmapped`], one entry per service and
//! tend setting, with the reason and, where there is one, what to do instead.
//!
//! The choices, in short (docs/export.md has the whole table):
//! - Every program runs with `interpreter: "none"` and `exec_mode: "fork"`: PM2 then spawns
//!   `script` with `args` as the argv, as tend does, whatever the file's extension. A shell
//!   line is `/bin/sh -c LINE`, exactly what tend runs.
//! - `instances` works in fork mode. `{instance}` and `{port}` exist in PM2 only as whole
//!   environment variables: `instance_var` (the instance number, in `TEND_INSTANCE` as tend
//!   sets it) and `increment_var` (counted up per instance: `PORT` from `port_base`, else
//!   the first variable whose value is `{instance}`). With one instance the placeholders are
//!   expanded in place. With more, whatever else differs per instance (a placeholder inside
//!   an argument, `cwd` or a variable) is expanded at start by a `/bin/sh -c` wrapper from
//!   those variables, which then execs the program; only a shell line's own text cannot be,
//!   and is reported. The wrapper also sets a `umask`, which PM2 has no key for.
//! - Restart counts, delays and timeouts are written out even where they equal PM2's
//!   defaults, since the importer reads PM2's defaults, not tend's.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use super::{Export, note_env_files, note_sockets, select};
use crate::config::model::{
    BackoffSpec, CheckSpec, Condition, Growth, Kind, LogFormat, LogSpec, LogTarget, Manifest,
    ProbeSpec, Program, RestartLimit, RestartPolicy, ServiceSpec, expand_placeholders,
};
use crate::config::signal::Signal;

/// The name of the file written: PM2 reads a `.json` ecosystem file as one JavaScript
/// expression, and tend's importer recognises the name.
pub const FILE_NAME: &str = "ecosystem.config.json";

/// PM2's `exp_backoff_restart_delay`: each delay is the previous one × 1.5, at most 15 s
/// (lib/God.js `handleExit`).
const PM2_EXP_FACTOR: f64 = 1.5;
const PM2_EXP_MAX: Duration = Duration::from_secs(15);
/// PM2's schema refuses a `min_uptime` below 100 ms.
const PM2_MIN_UPTIME_FLOOR_MS: u64 = 100;
/// PM2's `instance_var`, the variable it numbers instances in (its default is
/// NODE_APP_INSTANCE): tend's.
const INSTANCE_VAR: &str = "TEND_INSTANCE";

/// Keys of PM2's own process settings. PM2 copies the app's environment over these before it
/// spawns the program (`God.executeApp`), and passes them to the program as variables, so a
/// variable of one of these names either changes how PM2 runs the app or is overwritten.
const PM2_KEYS: &[&str] = &[
    "script",
    "name",
    "namespace",
    "cwd",
    "args",
    "exec_interpreter",
    "interpreter",
    "node_args",
    "exec_mode",
    "instances",
    "env",
    "out_file",
    "error_file",
    "log_file",
    "merge_logs",
    "log_date_format",
    "log_type",
    "autostart",
    "autorestart",
    "stop_exit_codes",
    "min_uptime",
    "max_restarts",
    "restart_delay",
    "exp_backoff_restart_delay",
    "kill_timeout",
    "kill_retry_time",
    "max_memory_restart",
    "instance_var",
    "increment_var",
    "uid",
    "gid",
    "username",
    "treekill",
    "watch",
    "vizion",
    "vizion_running",
    "pmx",
    "automation",
    "windowsHide",
    "status",
    "restart_time",
    "unstable_restarts",
    "created_at",
    "unique_id",
    "versioning",
    "km_link",
    "PM2_HOME",
    "PM2_USAGE",
    "__proto__",
];

/// Export `services` of `manifest` (all when empty) as a PM2 ecosystem file.
///
/// The apps are listed so that every dependency comes before its dependents (tend's own start
/// order, priorities included): PM2 starts apps in file order, without waiting for any.
pub fn export_pm2(manifest: &Manifest, services: &[String]) -> Export {
    let mut export = Export::default();
    let selected = select(manifest, services, &mut export);
    for svc in &selected {
        note_sockets(svc, &mut export, "PM2", "as the program");
        note_env_files(
            svc,
            &mut export,
            "PM2 has no env file key: keep ecosystem.config.json as private as the file",
        );
    }
    if selected.is_empty() {
        export.note(
            "",
            "",
            "no services to export: PM2 refuses an ecosystem file without apps",
        );
        return export;
    }
    let exported: Vec<&str> = selected.iter().map(|s| s.name.as_str()).collect();
    // Mapped in manifest order, so the notes read in the manifest's order.
    let mut apps: Vec<(&str, Object)> = selected
        .iter()
        .map(|spec| {
            let mut notes = Notes {
                export: &mut export,
                service: &spec.name,
            };
            (
                spec.name.as_str(),
                app(manifest, spec, &exported, &mut notes),
            )
        })
        .collect();
    let order = crate::config::start_order(manifest);
    let position = |name: &str| order.iter().position(|n| n == name).unwrap_or(usize::MAX);
    // Stable: a name start_order does not know (it lists every service) keeps its place.
    apps.sort_by_key(|(name, _)| position(name));
    let apps: Vec<Object> = apps.into_iter().map(|(_, app)| app).collect();
    let mut text = serde_json::to_string_pretty(&Ecosystem(&apps))
        .expect("UNWRAP: strings, numbers and booleans always serialize");
    text.push('\n');
    export.files.push((FILE_NAME.to_string(), text));
    export
}

/// The notes of one service.
struct Notes<'a> {
    export: &'a mut Export,
    service: &'a str,
}

impl Notes<'_> {
    fn add(&mut self, setting: &str, why: impl Into<String>) {
        self.export.note(self.service, setting, why);
    }
}

/// A JSON object that keeps its keys in the order they were put (serde_json's own map sorts
/// them unless its `preserve_order` feature is on, which tend does not enable).
#[derive(Default)]
struct Object(Vec<(&'static str, Value)>);

impl Object {
    fn put(&mut self, key: &'static str, value: impl Into<Value>) {
        self.0.push((key, value.into()));
    }
}

impl Serialize for Object {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// `{"apps": […]}`.
struct Ecosystem<'a>(&'a [Object]);

impl Serialize for Ecosystem<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("apps", self.0)?;
        map.end()
    }
}

/// How PM2 gets a service's per-instance values. With one instance, `{instance}` is 0 and
/// `{port}` is `port_base`: expanded in place. With several, PM2 numbers instances only in
/// whole variables (`instance_var`, `increment_var`); a placeholder inside a string is then
/// expanded from them by a `/bin/sh` wrapper (see [`wrap`]).
struct Instances {
    single: bool,
    /// `port_base`, which is also instance 0's port.
    port_base: Option<u16>,
    /// Whether PM2 counts `PORT` up per instance (`increment_var: "PORT"`).
    port_counts: bool,
}

impl Instances {
    /// The text for instance 0, when there is only that one.
    fn expand(&self, text: &str) -> String {
        if self.single {
            expand_placeholders(text, 0, self.port_base.map(u32::from))
        } else {
            text.to_string()
        }
    }

    /// Whether `text`, as PM2 gets it, still holds a placeholder tend would expand.
    fn left_in(&self, text: &str) -> bool {
        !self.single
            && (text.contains("{instance}")
                || (self.port_base.is_some() && text.contains("{port}")))
    }

    /// `text` as one /bin/sh word (never empty), its placeholders expanded from PM2's
    /// variables: `"$TEND_INSTANCE"`, and `"$PORT"` or `"$((port_base + $TEND_INSTANCE))"`.
    fn shell_word(&self, text: &str) -> String {
        let mut word = String::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            let expansion = if let Some(after) = rest.strip_prefix("{instance}") {
                Some((after, format!("\"${INSTANCE_VAR}\"")))
            } else if let (Some(after), Some(base)) = (rest.strip_prefix("{port}"), self.port_base)
            {
                let port = if self.port_counts {
                    "\"$PORT\"".to_string()
                } else {
                    format!("\"$(({base} + ${INSTANCE_VAR}))\"")
                };
                Some((after, port))
            } else {
                None
            };
            match expansion {
                Some((after, expanded)) => {
                    if !literal.is_empty() {
                        word.push_str(&sh_quote(&std::mem::take(&mut literal)));
                    }
                    word.push_str(&expanded);
                    rest = after;
                }
                None => {
                    literal.push(c);
                    rest = &rest[c.len_utf8()..];
                }
            }
        }
        if !literal.is_empty() || word.is_empty() {
            word.push_str(&sh_quote(&literal));
        }
        word
    }
}

/// `text` in single quotes for /bin/sh (a `'` as `'\''`; `''` when empty); a word of plain
/// characters as it is.
fn sh_quote(text: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if text.is_empty() {
        return "''".to_string();
    }
    if text.chars().all(plain) {
        return text.to_string();
    }
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// A name /bin/sh can `export`.
fn shell_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

const PLACEHOLDER_HINT: &str = "PM2 has no per-instance placeholders, and this cannot be expanded by the /bin/sh wrapper, so it is passed literally; read the instance number from $TEND_INSTANCE (and the port from $PORT) in the program instead";

fn app(manifest: &Manifest, spec: &ServiceSpec, exported: &[&str], notes: &mut Notes) -> Object {
    let mut app = Object::default();

    app.put("name", spec.name.as_str());
    if !spec.name.is_empty() && spec.name.bytes().all(|b| b.is_ascii_digit()) {
        notes.add(
            "name",
            "PM2's commands read a number as a process id (`pm2 stop 3`), so this app can only be named through its id or a namespace; give it a name with a letter",
        );
    }
    namespace(spec, &mut app, notes);
    let mut env = environment(spec);
    let places = Instances {
        single: spec.instances == 1,
        port_base: spec.port_base,
        port_counts: matches!(&env.increment, Some((v, Some(_))) if v == "PORT"),
    };
    let argv: Vec<String> = match &spec.program {
        Program::Exec(argv) => argv.iter().map(|a| places.expand(a)).collect(),
        // What tend runs for `shell = true`, word for word.
        Program::Shell(line) => vec!["/bin/sh".into(), "-c".into(), places.expand(line)],
    };
    // Always written: PM2's default is the directory `pm2 start` runs in, tend's the
    // manifest's.
    let cwd = match &spec.cwd {
        Some(cwd) => places.expand(cwd),
        None => manifest.base_dir().to_string_lossy().into_owned(),
    };
    let cwd_differs = spec.cwd.is_some() && places.left_in(&cwd);
    let dynamic = argv.iter().any(|a| places.left_in(a))
        || cwd_differs
        || !env.deferred.is_empty()
        || spec.umask.is_some();
    let (script, args, cwd) = if dynamic {
        let per_instance = Wrapped {
            argv: &argv,
            cwd: &cwd,
            cwd_differs,
            env: &env.deferred,
        };
        wrap(spec, &places, per_instance, &mut env.vars, manifest, notes)
    } else {
        let (script, args) = program(&argv, notes);
        (script, args, cwd)
    };
    app.put("script", script);
    if !args.is_empty() {
        app.put("args", args);
    }
    // No interpreter: PM2 would otherwise pick one by extension (node for `.js`, python for
    // `.py`, node for any other text file) and run the program through it.
    app.put("interpreter", "none");
    app.put("exec_mode", "fork");
    if spec.instances > 1 {
        app.put("instances", spec.instances);
    }
    app.put("cwd", cwd);
    for key in env.vars.keys() {
        pm2_name(spec, key, notes);
    }
    let vars = env.vars.into_iter().map(|(k, v)| (k, Value::String(v)));
    app.put("env", Value::Object(vars.collect()));
    app.put("instance_var", INSTANCE_VAR);
    if let Some((var, _)) = env.increment {
        app.put("increment_var", var);
    }
    identity(spec, &mut app, notes);
    if spec.kind == Kind::Task {
        notes.add(
            "kind",
            "PM2 has no run-to-completion kind: the task is started as an app (restarted as `restart` says; by default not at all) and nothing waits for it to complete",
        );
    }
    if !spec.autostart {
        app.put("autostart", false);
    }
    restarts(spec, &mut app, notes);
    stopping(spec, &mut app, notes);
    logs(&spec.logs, &mut app, notes);
    schedules(spec, &mut app, notes);
    watch(spec, &mut app, notes);
    resources(spec, &mut app, notes);
    probes(spec, notes);
    ordering(spec, exported, notes);
    if spec.critical {
        notes.add(
            "critical",
            "PM2 keeps the other apps running when one gives up (status `errored`); nothing stops the whole set",
        );
    }
    if let Some(cooldown) = spec.cooldown {
        notes.add(
            "cooldown",
            format!("PM2 leaves an errored app errored until `pm2 restart`; it does not try again after {cooldown:?}"),
        );
    }
    if spec.event_listener.is_some() {
        notes.add(
            "event_listener",
            "PM2 does not speak supervisord's event listener protocol: the program runs, but is never sent any event",
        );
    }
    if spec.autoscale.is_some() {
        notes.add(
            "autoscale",
            format!(
                "PM2 does not scale by CPU: instances is the count it starts with ({}); `pm2 scale NAME N` changes it by hand",
                spec.instances
            ),
        );
    }
    app
}

/// tend groups → PM2 namespace (one per app).
fn namespace(spec: &ServiceSpec, app: &mut Object, notes: &mut Notes) {
    let Some((first, rest)) = spec.groups.split_first() else {
        return;
    };
    app.put("namespace", first.as_str());
    if first == "default" {
        notes.add(
            "groups",
            "PM2's namespace `default` also holds every app written without a namespace, so `pm2 restart default` reaches those too",
        );
    }
    if !rest.is_empty() {
        notes.add(
            "groups",
            format!(
                "a PM2 app has one namespace: exported in `{first}`, not in {}",
                rest.iter()
                    .map(|g| format!("`{g}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
}

/// script and args for an argv PM2 can take as it is.
fn program(argv: &[String], notes: &mut Notes) -> (String, Vec<String>) {
    let Some((first, rest)) = argv.split_first() else {
        notes.add(
            "command",
            "no program to run; PM2 refuses an app without `script`",
        );
        return (String::new(), Vec::new());
    };
    if first.contains(' ') {
        // PM2 runs a `script` holding a space as `bash -c SCRIPT`, which would split it.
        notes.add(
            "command",
            format!("the program `{first}` contains a space, which PM2 reads as a shell command line; exported as `/bin/sh -c 'exec \"$0\" \"$@\"'` followed by the argv, which runs the same program with the same arguments"),
        );
        let mut args = vec!["-c".to_string(), "exec \"$0\" \"$@\"".to_string()];
        args.extend(argv.iter().cloned());
        ("/bin/sh".to_string(), args)
    } else {
        (first.clone(), rest.to_vec())
    }
}

/// What a wrapper sets up per instance.
struct Wrapped<'a> {
    argv: &'a [String],
    cwd: &'a str,
    /// Whether `cwd` holds a placeholder.
    cwd_differs: bool,
    /// Variables with placeholders: (name, value).
    env: &'a [(String, String)],
}

/// A `/bin/sh -c` wrapper, for what PM2 cannot say itself: a umask, and instances that
/// differ in more than PM2's two numbered variables. It sets the umask, changes into the
/// instance's directory, exports the instance's variables and execs the program with the
/// instance's arguments, `{instance}` and `{port}` expanded from the variables PM2 numbers
/// (`"$TEND_INSTANCE"`, `"$PORT"`, or `$((port_base + N))`): the same process, argv and
/// environment as tend's. What cannot be expanded (a shell line's own text, or no usable
/// variable) stays literal and is reported. Returns script, args and the cwd PM2 gets.
fn wrap(
    spec: &ServiceSpec,
    places: &Instances,
    wrapped: Wrapped,
    vars: &mut BTreeMap<String, String>,
    manifest: &Manifest,
    notes: &mut Notes,
) -> (String, Vec<String>, String) {
    let Wrapped {
        argv,
        cwd,
        cwd_differs,
        env: deferred,
    } = wrapped;
    let mut script = String::new();
    let mut pm2_cwd = cwd.to_string();
    if let Some(mask) = spec.umask {
        script.push_str(&format!("umask {mask:03o}; "));
        notes.add(
            "umask",
            "PM2 has no umask setting: set by the `/bin/sh -c` wrapper (see command)",
        );
    }
    let how = if places.port_counts {
        format!("`{{instance}}` from ${INSTANCE_VAR} and `{{port}}` from $PORT")
    } else {
        format!(
            "`{{instance}}` from ${INSTANCE_VAR} and `{{port}}` from port_base + ${INSTANCE_VAR}"
        )
    };
    let wrapper = if places.single {
        "exported as a `/bin/sh -c` wrapper that sets the umask, then execs the program".to_string()
    } else {
        format!(
            "exported as a `/bin/sh -c` wrapper (PM2 has no per-instance placeholders) that expands {how}, then execs the program"
        )
    };
    if cwd_differs {
        script.push_str(&format!("cd {} || exit 1; ", places.shell_word(cwd)));
        pm2_cwd = manifest.base_dir().to_string_lossy().into_owned();
        notes.add(
            "cwd",
            format!("`{cwd}`: changed into by the wrapper (see command); PM2's cwd is the manifest's directory"),
        );
    }
    let mut exports = Vec::new();
    for (key, value) in deferred {
        if shell_name(key) {
            exports.push(format!("{key}={}", places.shell_word(value)));
            notes.add(
                &format!("env.{key}"),
                format!(
                    "`{value}`: set per instance by the wrapper (see command), not in PM2's `env`"
                ),
            );
        } else {
            // /bin/sh cannot export this name: PM2's `env` has it as written.
            vars.insert(key.clone(), value.clone());
            notes.add(
                &format!("env.{key}"),
                format!("`{value}`: {PLACEHOLDER_HINT}"),
            );
        }
    }
    if !exports.is_empty() {
        script.push_str(&format!("export {}; ", exports.join(" ")));
    }
    let mut words = Vec::new();
    for (i, arg) in argv.iter().enumerate() {
        // A shell line is code: its placeholders cannot be told from its quoting.
        let shell_line = matches!(spec.program, Program::Shell(_)) && i == 2;
        if shell_line {
            if places.left_in(arg) {
                notes.add("command", format!("`{arg}`: {PLACEHOLDER_HINT}"));
            }
            words.push(sh_quote(arg));
        } else {
            words.push(places.shell_word(arg));
        }
    }
    script.push_str(&format!("exec {}", words.join(" ")));
    notes.add("command", wrapper);
    (
        "/bin/sh".to_string(),
        vec!["-c".to_string(), script],
        pm2_cwd,
    )
}

/// The environment as PM2 gets it.
struct Env {
    /// `env` (values expanded for a single instance).
    vars: BTreeMap<String, String>,
    /// Variables whose value differs per instance beyond what PM2 numbers: (name, value
    /// with placeholders), for [`wrap`].
    deferred: Vec<(String, String)>,
    /// `increment_var`, with the base PM2 counts from (`port_base` for `PORT`; None: 0).
    increment: Option<(String, Option<u16>)>,
}

/// env, instance_var, increment_var.
///
/// tend gives each child `TEND_SERVICE`, `TEND_INSTANCE` and, with `port_base`, `PORT`
/// (unless `env` sets it); the export sets them the same way: `TEND_INSTANCE` is PM2's
/// `instance_var`, `PORT` its `increment_var`. Without `port_base`, the first variable whose
/// whole value is `{instance}` is the `increment_var`, counting from 0. Other variables that
/// differ per instance are left to the wrapper.
fn environment(spec: &ServiceSpec) -> Env {
    let single = spec.instances == 1;
    let mut env: BTreeMap<String, String> = spec.env.clone();
    // tend sets these over the service's own values.
    env.insert("TEND_SERVICE".into(), spec.name.clone());
    env.remove("TEND_INSTANCE");
    let port_counts =
        spec.port_base.is_some() && env.get("PORT").is_none_or(|v| v.as_str() == "{port}");
    if port_counts {
        env.remove("PORT");
    }
    let counted: Vec<String> = env
        .iter()
        .filter(|(_, v)| v.as_str() == "{instance}")
        .map(|(k, _)| k.clone())
        .collect();
    for var in &counted {
        env.remove(var);
    }
    let mut counted = counted.into_iter();
    let increment = match (port_counts, spec.port_base) {
        (true, Some(base)) => Some(("PORT".to_string(), Some(base))),
        _ => counted.next().map(|var| (var, None)),
    };
    let mut deferred = Vec::new();
    for var in counted {
        if single {
            env.insert(var, "0".into());
        } else {
            deferred.push((var, "{instance}".to_string()));
        }
    }
    let places = |text: &str| {
        !single
            && (text.contains("{instance}")
                || (spec.port_base.is_some() && text.contains("{port}")))
    };
    let mut vars = BTreeMap::new();
    for (key, value) in env {
        if places(&value) {
            deferred.push((key, value));
        } else if single {
            let port = spec.port_base.map(u32::from);
            vars.insert(key, expand_placeholders(&value, 0, port));
        } else {
            vars.insert(key, value);
        }
    }
    if let Some((var, Some(base))) = &increment {
        // PM2 counts up from the variable's value in `env`.
        vars.insert(var.clone(), base.to_string());
    }
    Env {
        vars,
        deferred,
        increment,
    }
}

/// Reports a variable named like one of PM2's own settings.
fn pm2_name(spec: &ServiceSpec, key: &str, notes: &mut Notes) {
    if PM2_KEYS.contains(&key)
        || key.starts_with("pm_")
        || key.starts_with("axm_")
        || key == spec.name
    {
        notes.add(
            &format!("env.{key}"),
            "PM2 uses this name itself: it copies the environment over its own settings of the app (and sets an app-named variable) before starting it, so the variable changes how PM2 runs the app or is replaced",
        );
    }
}

/// user, group → uid, gid.
fn identity(spec: &ServiceSpec, app: &mut Object, notes: &mut Notes) {
    match (&spec.user, &spec.group) {
        (Some(user), group) => {
            app.put("uid", user.as_str());
            notes.add(
                "user",
                "PM2 sets HOME for the user, but not USER and LOGNAME (the program sees PM2's own), and needs to run as root, as tend does",
            );
            if let Some(group) = group {
                app.put("gid", group.as_str());
            }
            for (setting, id) in [("user", Some(user)), ("group", group.as_ref())] {
                if let Some(id) = id.filter(|id| id.bytes().all(|b| b.is_ascii_digit())) {
                    notes.add(
                        setting,
                        format!("PM2 looks id {id} up in /etc/passwd (/etc/group) and refuses the app when it is not there; tend takes a bare id as it is"),
                    );
                }
            }
        }
        (None, Some(_)) => notes.add(
            "group",
            "PM2 applies `gid` only together with `uid` (and refuses the app without one): not exported; set `user` too",
        ),
        (None, None) => {}
    }
}

/// Whole milliseconds, and whether that is exact.
fn millis(d: Duration) -> (u64, bool) {
    let ms = d.as_nanos().div_ceil(1_000_000) as u64;
    (ms, d.as_nanos().is_multiple_of(1_000_000))
}

/// restart, exit_codes, min_uptime, max_restarts, restart_limit, backoff.
fn restarts(spec: &ServiceSpec, app: &mut Object, notes: &mut Notes) {
    let restarts = spec.restart != RestartPolicy::Never;
    app.put("autorestart", restarts);
    if spec.restart == RestartPolicy::OnFailure {
        // PM2 restarts unless the exit code is listed (a signal is no code: restarted).
        app.put("stop_exit_codes", spec.exit_codes.clone());
    } else if spec.exit_codes != [0] {
        let policy = if restarts { "always" } else { "never" };
        notes.add(
            "exit_codes",
            format!("PM2 uses exit codes only to decide restarts (`stop_exit_codes`, exported for restart = \"on-failure\"); with restart = \"{policy}\" nothing reads them"),
        );
    }
    if spec.restart_limit == RestartLimit::Unstable && spec.restart != RestartPolicy::Always {
        notes.add(
            "restart",
            "tend also retries a run that ended before `min_uptime` whatever `restart` says (restart_limit = \"unstable\"); PM2 never restarts an exit that `autorestart`/`stop_exit_codes` rule out",
        );
    }
    if !restarts {
        // PM2 has no use for these without restarts (the importer drops them too).
        return;
    }

    let (uptime, exact) = millis(spec.min_uptime);
    let uptime = if uptime < PM2_MIN_UPTIME_FLOOR_MS {
        notes.add(
            "min_uptime",
            format!("PM2 refuses a min_uptime under {PM2_MIN_UPTIME_FLOOR_MS} ms: {PM2_MIN_UPTIME_FLOOR_MS} ms written for {:?}", spec.min_uptime),
        );
        PM2_MIN_UPTIME_FLOOR_MS
    } else {
        if !exact {
            notes.add(
                "min_uptime",
                format!(
                    "PM2 counts whole milliseconds: {uptime} ms written for {:?}",
                    spec.min_uptime
                ),
            );
        }
        uptime
    };
    app.put("min_uptime", uptime);

    // PM2 gives up when the count of unstable exits reaches max_restarts (lib/God.js
    // handleExit: `unstable_restarts >= max_restarts`), i.e. after max_restarts - 1 restarts;
    // tend gives up after max_restarts restarts. One more, so the counts agree (this also keeps
    // a 0 from reading as "unset", which PM2 replaces with 16).
    let limit = u64::from(spec.max_restarts) + 1;
    app.put("max_restarts", limit);
    let pm2_counting = format!(
        "PM2 writes max_restarts = {limit}: it gives up at the {limit}th unstable exit (one that came before min_uptime), i.e. after {} restarts in a row of failed starts, but counts only during the first min_uptime × max_restarts ({} ms) after the app was started and does not reset the count after a stable run",
        spec.max_restarts,
        uptime * limit
    );
    match spec.restart_limit {
        RestartLimit::Unstable => notes.add("max_restarts", pm2_counting),
        RestartLimit::Window => notes.add(
            "restart_limit",
            format!(
                "tend counts every restart within restart_window ({:?}); PM2 has no window and counts only unstable restarts. {pm2_counting}",
                spec.restart_window
            ),
        ),
    }
    backoff(&spec.backoff, app, notes);
}

fn backoff(backoff: &BackoffSpec, app: &mut Object, notes: &mut Notes) {
    if backoff.initial.is_zero() {
        // PM2 restarts at once without a delay key; so does tend.
        return;
    }
    let (initial, exact) = millis(backoff.initial);
    let mut differences: Vec<String> = Vec::new();
    if !exact {
        differences.push(format!("{initial} ms written for {:?}", backoff.initial));
    }
    let fixed = backoff.growth == Growth::Exponential && backoff.factor == 1.0;
    if fixed {
        app.put("restart_delay", initial);
    } else {
        app.put("exp_backoff_restart_delay", initial);
        let pm2_max = backoff.initial.max(PM2_EXP_MAX);
        if backoff.growth == Growth::Linear {
            differences.push(format!(
                "PM2 grows the delay ×{PM2_EXP_FACTOR} up to {PM2_EXP_MAX:?}, not linearly up to {:?}",
                backoff.max
            ));
        } else if backoff.factor != PM2_EXP_FACTOR || backoff.max != pm2_max {
            differences.push(format!(
                "PM2 grows the delay ×{PM2_EXP_FACTOR} up to {PM2_EXP_MAX:?}, not ×{} up to {:?}",
                backoff.factor, backoff.max
            ));
        } else if backoff.initial > PM2_EXP_MAX {
            differences.push(format!(
                "PM2 waits {:?} once, then its cap of {PM2_EXP_MAX:?}",
                backoff.initial
            ));
        }
    }
    if backoff.jitter != 0.0 {
        differences.push(format!(
            "PM2 waits exactly, without the ±{}% jitter",
            backoff.jitter * 100.0
        ));
    }
    if !differences.is_empty() {
        notes.add("backoff", differences.join("; "));
    }
}

/// stop_signal, stop_timeout.
fn stopping(spec: &ServiceSpec, app: &mut Object, notes: &mut Notes) {
    if spec.stop_signal != Signal::Int {
        notes.add(
            "stop_signal",
            format!("PM2 stops every app with SIGINT (then SIGKILL after kill_timeout), not SIG{}; only the PM2_KILL_SIGNAL variable of the daemon changes that, for all apps", spec.stop_signal.name()),
        );
    }
    let (ms, exact) = millis(spec.stop_timeout);
    let ms = if ms == 0 {
        notes.add(
            "stop_timeout",
            "PM2 reads a kill_timeout of 0 as unset (1600 ms): 1 ms written",
        );
        1
    } else {
        if !exact {
            notes.add(
                "stop_timeout",
                format!(
                    "PM2 counts whole milliseconds: {ms} ms written for {:?}",
                    spec.stop_timeout
                ),
            );
        }
        ms
    };
    app.put("kill_timeout", ms);
}

/// Where a stream goes, as PM2 writes it: None keeps PM2's default file.
fn log_path(target: &LogTarget, setting: &str, notes: &mut Notes) -> Option<String> {
    match target {
        LogTarget::File(Some(path)) => Some(path.to_string_lossy().into_owned()),
        LogTarget::File(None) => None,
        LogTarget::Null => Some("/dev/null".into()),
        LogTarget::Inherit => {
            notes.add(
                setting,
                "PM2's daemon has no terminal to inherit: the output goes to PM2's default log file (~/.pm2/logs/NAME-out.log, -error.log; `pm2 logs` shows it)",
            );
            None
        }
    }
}

/// cron_restart, schedule → PM2's `cron_restart` (croner reads the five fields, with the
/// day-of-month/day-of-week OR rule, in PM2's local time). PM2 restarts the app at those
/// times, and starts it when it is stopped: with `autorestart: false` (a task), that is a
/// run on a schedule, which is what tend's importer reads back.
fn schedules(spec: &ServiceSpec, app: &mut Object, notes: &mut Notes) {
    if let Some(cron) = &spec.cron_restart {
        app.put("cron_restart", cron.fields().join(" "));
        notes.add(
            "cron_restart",
            "PM2 also starts the app at these times when it is stopped (tend restarts only a running one); with restart = \"never\", tend's importer reads this back as a scheduled task",
        );
    }
    if let Some(cron) = &spec.schedule {
        app.put("cron_restart", cron.fields().join(" "));
        if spec.restart != RestartPolicy::Never {
            notes.add(
                "schedule",
                "PM2 restarts the app at these times even while a run goes on (tend skips a time that comes while the last run goes on); with autorestart, tend's importer reads it back as a service with `cron_restart`",
            );
        } else {
            notes.add(
                "schedule",
                "PM2 restarts the app at these times even while a run goes on; tend skips a time that comes while the last run goes on",
            );
        }
    }
}

/// watch, watch_ignore, watch_debounce → PM2's `watch`, `ignore_watch`, `watch_delay`.
/// Written as absolute paths: PM2 resolves relative ones against the app's `cwd`, tend
/// against the manifest's directory.
fn watch(spec: &ServiceSpec, app: &mut Object, notes: &mut Notes) {
    let Some(watch) = &spec.watch else {
        return;
    };
    let text = |p: &crate::config::glob::PathPattern| p.absolute.to_string_lossy().into_owned();
    app.put(
        "watch",
        watch.paths.iter().map(text).collect::<Vec<String>>(),
    );
    let mut ignore: Vec<String> = watch.ignore.iter().map(text).collect();
    // tend never lets a service's own log files restart it; PM2 must be told. (An empty
    // list also keeps PM2's default ignores, dot files and node_modules, away.)
    for target in [&spec.logs.stdout, &spec.logs.stderr] {
        if let LogTarget::File(Some(path)) = target
            && watch.paths.iter().any(|p| p.matches(path))
        {
            let path = path.to_string_lossy().into_owned();
            if !ignore.contains(&path) {
                notes.add(
                    "watch_ignore",
                    format!("{path} (a log file PM2 writes inside the watched paths) is added to `ignore_watch`: tend ignores its log files by itself"),
                );
                ignore.push(path);
            }
        }
    }
    app.put("ignore_watch", ignore);
    let (ms, _) = millis(watch.debounce);
    app.put("watch_delay", ms);
    notes.add(
        "watch_debounce",
        "PM2 restarts watch_delay after the first change and ignores changes until the restart is done; tend waits for the changes to stop for that long, then restarts once more if files changed meanwhile",
    );
}

/// logs → out_file, error_file, merge_logs, log_date_format, log_type.
fn logs(logs: &LogSpec, app: &mut Object, notes: &mut Notes) {
    let out = log_path(&logs.stdout, "logs.stdout", notes);
    let err = if logs.merge {
        match &logs.stdout {
            // Two appending streams on one file: PM2's way to merge.
            LogTarget::File(Some(_)) | LogTarget::Null => out.clone(),
            LogTarget::File(None) | LogTarget::Inherit => {
                notes.add(
                    "logs.merge",
                    "PM2 keeps stdout and stderr in separate default files (NAME-out.log, NAME-error.log); set `logs.stdout` to a path to merge them there",
                );
                None
            }
        }
    } else {
        log_path(&logs.stderr, "logs.stderr", notes)
    };
    let written = out.is_some() || err.is_some();
    if let Some(out) = out {
        app.put("out_file", out);
    }
    if let Some(err) = err {
        app.put("error_file", err);
    }
    if written {
        // Without it, PM2 adds `-ID` to a path ending in `.log` for each process (and, with
        // `instances`, for every instance); tend writes all instances to the one file.
        app.put("merge_logs", true);
    }

    let to_files = matches!(logs.stdout, LogTarget::File(_))
        || (!logs.merge && matches!(logs.stderr, LogTarget::File(_)));
    if to_files {
        let logrotate = "PM2 does not rotate its log files itself: `pm2 install pm2-logrotate` (max_size, retain, compress, rotateInterval are its settings, for all apps)";
        if let Some(size) = logs.max_size {
            notes.add(
                "logs.max_size",
                format!("{logrotate}; tend rotates this service at {size} bytes"),
            );
        }
        if let Some(every) = logs.rotate_every {
            notes.add(
                "logs.rotate_every",
                format!("{logrotate}; tend rotates this service every {every:?}"),
            );
        }
        let defaults = LogSpec::default();
        if logs.backups != defaults.backups {
            notes.add(
                "logs.backups",
                format!("{logrotate}; tend keeps {} rotated files", logs.backups),
            );
        }
        if logs.compress {
            notes.add("logs.compress", logrotate);
        }
    }

    let stamp: Option<(String, Vec<String>, bool)> = match (&logs.timestamp_format, logs.timestamps)
    {
        (Some(format), _) => {
            let (dayjs, approximations) = dayjs_format(format);
            Some((dayjs, approximations, format.ends_with(':')))
        }
        // tend's default stamp: RFC 3339 with milliseconds; `Z` is dayjs's offset.
        (None, true) => Some(("YYYY-MM-DD[T]HH:mm:ss.SSSZ".into(), Vec::new(), false)),
        (None, false) => None,
    };
    if logs.format == LogFormat::Json {
        app.put("log_type", "json");
        notes.add(
            "logs.format",
            "PM2's JSON lines are {message, timestamp, type, process_id, app_name} (tend's: time, service, instance, stream, line)",
        );
        if let Some((dayjs, _, _)) = stamp {
            app.put("log_date_format", dayjs);
            notes.add(
                "logs.timestamp_format",
                "PM2 puts no stamp before a JSON line: it uses the format (local time) for the `timestamp` field",
            );
        }
    } else if let Some((dayjs, approximations, colon)) = stamp {
        let mut why = vec!["PM2 writes local time where tend writes UTC".to_string()];
        if !colon {
            why.push("PM2 separates the stamp from the line with `: ` (tend with a space; a format ending in `:` gives the same lines)".into());
        }
        why.extend(approximations);
        app.put("log_date_format", dayjs);
        notes.add("logs.timestamp_format", why.join("; "));
    }

    let defaults = LogSpec::default();
    if logs.tail != defaults.tail {
        notes.add(
            "logs.tail",
            "PM2 keeps no lines in memory: `pm2 logs` reads the files",
        );
    }
    if logs.max_line != defaults.max_line {
        notes.add(
            "logs.max_line",
            "PM2 does not split long lines: they are written whole",
        );
    }
    if logs.syslog.is_some() {
        notes.add(
            "logs.syslog",
            "PM2 does not forward lines to syslog (a module such as pm2-syslog can)",
        );
    }
    if logs.journal.is_some() {
        notes.add(
            "logs.journal",
            "PM2 does not forward lines to the systemd journal",
        );
    }
    if logs.events_stdout || logs.events_stderr {
        notes.add(
            "logs.events",
            "PM2 has no supervisord event listeners to send lines to",
        );
    }
}

/// A tend timestamp pattern as a dayjs format (PM2's `log_date_format`), the inverse of the
/// importer's reading: a final `:` is left to PM2's own `: ` separator, letters are quoted
/// `[…]`. Also returns what is approximate.
fn dayjs_format(tend: &str) -> (String, Vec<String>) {
    let body = match tend.strip_suffix(':') {
        // `%%:` ends in a literal `%` followed by `:`; `…%:` cannot occur (no such directive).
        Some(body) => body,
        None => tend,
    };
    let mut out = String::new();
    let mut literal = String::new();
    let mut approximations = Vec::new();
    let flush = |literal: &mut String, out: &mut String| {
        for (i, piece) in literal.split(']').enumerate() {
            if i > 0 {
                out.push(']');
            }
            if piece.chars().any(|c| c.is_ascii_alphabetic() || c == '[') {
                out.push('[');
                out.push_str(piece);
                out.push(']');
            } else {
                out.push_str(piece);
            }
        }
        literal.clear();
    };
    let mut rest = body;
    while let Some(c) = rest.chars().next() {
        let directive = [
            ("%Y", "YYYY"),
            ("%m", "MM"),
            ("%d", "DD"),
            ("%H", "HH"),
            ("%M", "mm"),
            ("%S", "ss"),
            ("%3f", "SSS"),
            ("%6f", "SSS"),
            ("%z", "ZZ"),
        ]
        .into_iter()
        .find(|(d, _)| rest.starts_with(d));
        if let Some((d, token)) = directive {
            flush(&mut literal, &mut out);
            out.push_str(token);
            if d == "%6f" {
                approximations
                    .push("dayjs has no microseconds: %6f written as milliseconds".into());
            }
            rest = &rest[d.len()..];
        } else if rest.starts_with("%%") {
            literal.push('%');
            rest = &rest[2..];
        } else {
            literal.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    flush(&mut literal, &mut out);
    (out, approximations)
}

/// max_memory → max_memory_restart; the rest of `resources` reported.
fn resources(spec: &ServiceSpec, app: &mut Object, notes: &mut Notes) {
    let r = &spec.resources;
    if let Some(bytes) = r.max_memory {
        // PM2's units are ×1024; a number is bytes.
        let value: Value = [("G", 1u64 << 30), ("M", 1 << 20), ("K", 1 << 10)]
            .into_iter()
            .find(|(_, unit)| bytes.is_multiple_of(*unit))
            .map_or(Value::from(bytes), |(suffix, unit)| {
                Value::from(format!("{}{suffix}", bytes / unit))
            });
        app.put("max_memory_restart", value);
        notes.add(
            "max_memory",
            "PM2 checks the resident memory of the main process only (not its children), every 30 s (PM2_WORKER_INTERVAL); tend the whole process tree every sample_every",
        );
    }
    let cgroup = "a cgroup limit; PM2 sets none (run PM2 under systemd with the matching MemoryMax=, CPUQuota=, TasksMax= for all apps)";
    if r.memory_max.is_some() {
        notes.add("memory_max", cgroup);
    }
    if r.cpu_max.is_some() {
        notes.add("cpu_max", cgroup);
    }
    if r.pids_max.is_some() {
        notes.add("pids_max", cgroup);
    }
    if r.warn_cpu.is_some() {
        notes.add(
            "warn_cpu",
            "PM2 has no CPU warnings (`pm2 monit` shows the usage)",
        );
    }
    if r.warn_memory.is_some() {
        notes.add(
            "warn_memory",
            "PM2 has no memory warnings (`pm2 monit` shows the usage)",
        );
    }
    if !r.gpus.is_empty() {
        notes.add(
            "gpus",
            "PM2 does not hand out GPUs: set CUDA_VISIBLE_DEVICES in `env` (the same for every instance)",
        );
    }
    if r.max_gpu_memory.is_some() {
        notes.add("max_gpu_memory", "PM2 does not watch GPU memory");
    }
}

/// readiness, liveness, startup, watchdog: PM2 has no probes.
fn probes(spec: &ServiceSpec, notes: &mut Notes) {
    let what = |probe: &ProbeSpec| match &probe.check {
        CheckSpec::Http { url, .. } => format!("http {url}"),
        CheckSpec::Tcp(address) => format!("tcp {address}"),
        CheckSpec::Exec(command) => format!("exec `{command}`"),
        CheckSpec::Log(pattern) => format!("log line /{pattern}/"),
        CheckSpec::Notify => "sd_notify".into(),
    };
    if let Some(probe) = &spec.readiness {
        let why = match probe.check {
            CheckSpec::Notify => "PM2 has no sd_notify socket; its `wait_ready` waits for `process.send('ready')` over Node's IPC channel, which only Node programs have".to_string(),
            _ => format!("PM2 has no readiness checks ({}): an app is `online` as soon as it is spawned", what(probe)),
        };
        notes.add("readiness", why);
    }
    if let Some(probe) = &spec.liveness {
        notes.add(
            "liveness",
            format!(
                "PM2 has no liveness checks ({}): a hung process is not restarted",
                what(probe)
            ),
        );
    }
    if let Some(probe) = &spec.startup {
        notes.add(
            "startup",
            format!("PM2 has no startup checks ({})", what(probe)),
        );
    }
    if let Some(watchdog) = spec.watchdog {
        notes.add(
            "watchdog",
            format!("PM2 has no watchdog: a program that stops sending WATCHDOG=1 for {watchdog:?} is not restarted"),
        );
    }
    if let Some(signal) = spec.reload_signal {
        notes.add(
            "reload_signal",
            format!(
                "`pm2 reload` restarts the processes; `pm2 sendSignal SIG{} NAME` sends the signal",
                signal.name()
            ),
        );
    }
}

/// depends_on, priority: PM2 only has the order of the file.
fn ordering(spec: &ServiceSpec, exported: &[&str], notes: &mut Notes) {
    if !spec.depends_on.is_empty() {
        let list: Vec<String> = spec
            .depends_on
            .iter()
            .map(|d| {
                let missing = if exported.contains(&d.service.as_str()) {
                    ""
                } else {
                    ", not in this export"
                };
                let condition = match d.condition {
                    Condition::Started => "started",
                    Condition::Healthy => "healthy",
                    Condition::Completed => "completed",
                };
                format!("{} ({condition}{missing})", d.service)
            })
            .collect();
        notes.add(
            "depends_on",
            format!("PM2 has no dependencies: it starts the apps in file order (two at a time) without waiting for any to be ready, and does not stop or restart dependents; the file lists {} first", list.join(", ")),
        );
    }
    if spec.priority != 0 {
        notes.add(
            "priority",
            "PM2 has no priorities: the file order follows them at start (among independent services); PM2 stops apps in no set order",
        );
    }
}

#[cfg(test)]
mod tests;
