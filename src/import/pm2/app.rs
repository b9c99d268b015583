//! One PM2 app → one tend service.
//!
//! The order of work follows PM2's: the raw app is adjusted as `Common.verifyConfs` does
//! (script aliases, the default name, a script with spaces, `time`, `instances: "max"`),
//! each key is picked and checked as `Config.validateJSON` does (aliases, types, patterns,
//! units), and the result is what `Common.prepareAppConf`, `God.prepare` and the fork
//! container would run. Each tend key then gets the line of the PM2 key it came from;
//! defaults PM2 has and tend does not share are written out, at the app's line.

use super::Diags;
use super::js::{Js, JsValue, Member, Part, Prop, js_number};
use super::keys::{self, Pattern, Ty};
use super::values::{
    dayjs_to_tend, duration, env_interpolation, escape_interpolation, js_parse_float, js_parse_int,
    js_parse_int_number, js_to_number, json_stringify, pm2_split, size, truthy,
};
use crate::config::document::{Entry, Node, Value};

/// PM2's defaults (lib/God.js, constants.js), written out where tend's differ.
const PM2_MIN_UPTIME_MS: f64 = 1000.0;
const PM2_MAX_RESTARTS: f64 = 16.0;
const PM2_KILL_TIMEOUT_MS: f64 = 1600.0;
/// `exp_backoff_restart_delay` grows ×1.5 up to this (lib/God.js handleExit).
const PM2_EXP_BACKOFF_MAX_MS: f64 = 15000.0;
/// PM2 stops apps with SIGINT (`PM2_KILL_SIGNAL`), tend with SIGTERM.
const PM2_STOP_SIGNAL: &str = "INT";

/// Keys whose value decides what runs and where: JavaScript there fails the import, since
/// a service running the wrong program is worse than none.
const CRITICAL: &[&str] = &[
    "script",
    "name",
    "args",
    "exec_interpreter",
    "node_args",
    "cwd",
];

/// Keys where PM2's reading of `0` as unset gives something else than 0 would: the
/// default that applies instead.
const ZERO_IS_UNSET: &[(&str, &str)] = &[
    ("max_restarts", "16"),
    ("min_uptime", "1s"),
    ("kill_timeout", "1600ms"),
    ("listen_timeout", "3s"),
    ("stop_exit_codes", "every exit code restarts"),
];

/// PM2 features that do not touch the program (PM2.io, versioning metadata, Windows):
/// dropped without a warning when they are off or at PM2's default.
const PM2_ONLY: &[(&str, &str)] = &[
    ("vizion", "versioning metadata for `pm2 show`"),
    ("pmx", "PM2.io metrics"),
    ("automation", "PM2.io metrics"),
    ("trace", "PM2.io transaction tracing"),
    ("disable_trace", "PM2.io transaction tracing"),
    ("v8", "PM2.io V8 profiling"),
    ("event_loop_inspector", "PM2.io event-loop inspection"),
    ("deep_monitoring", "PM2.io deep monitoring"),
    ("io", "PM2.io settings"),
    ("post_update", "commands PM2.io runs after a pull"),
    ("install_url", "PM2's module installer"),
    ("windowsHide", "Windows consoles"),
    ("write", "PM2's internal flag"),
];

pub(super) struct Ctx<'a> {
    pub env_name: Option<&'a str>,
    /// `deploy.ENV.env` for the selected environment.
    pub deploy_env: Option<&'a Js>,
    pub diags: &'a mut Diags,
}

pub(super) struct Service {
    pub name: String,
    /// Where the service is named: the `name` key, else the app object.
    pub line: usize,
    /// The app in the file (`apps[0]`), for messages.
    pub path: String,
    pub table: Node,
    /// PM2's namespace (not `default`): (name, line, key path), made a group later.
    pub namespace: Option<(String, usize, String)>,
}

/// A value as PM2's validator leaves it.
#[derive(Debug, Clone)]
enum Pv<'a> {
    Str(String),
    Num(f64),
    Bool(bool),
    Arr(&'a [Js]),
    /// An object (`env`, `watch_options`, `io`): read through the prop itself.
    Obj,
    /// A string where PM2 wants an array, split as PM2 splits it.
    Words(Vec<String>),
    /// A string read from the environment (only where tend can interpolate it).
    Env(&'a [Part]),
}

#[derive(Clone)]
struct Got<'a> {
    prop: &'a Prop,
    value: Pv<'a>,
}

impl Got<'_> {
    fn line(&self) -> usize {
        self.prop.line
    }
}

/// An app's props, with the diagnostics sink.
struct Reader<'a, 'd> {
    path: &'a str,
    app_line: usize,
    props: Vec<&'a Prop>,
    diags: &'d mut Diags,
    /// Keys already read: each is checked (and reported) once.
    read: Vec<(&'static str, Option<Got<'a>>)>,
}

impl<'a> Reader<'a, '_> {
    fn at(&self, key: &str) -> String {
        if self.path.is_empty() || key.is_empty() {
            format!("{}{key}", self.path)
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn warn(&mut self, line: usize, key: &str, message: impl Into<String>) {
        let at = self.at(key);
        self.diags.warn(line, &at, message);
    }

    fn error(&mut self, line: usize, key: &str, message: impl Into<String>) {
        let at = self.at(key);
        self.diags.error(line, &at, message);
    }

    fn raw(&self, key: &str) -> Option<&'a Prop> {
        self.props.iter().copied().find(|p| p.key == key)
    }

    /// The value PM2 validates for schema key `name`, checked and converted as PM2 does;
    /// None when not written, or when wrong (reported the first time it is read).
    fn get(&mut self, name: &str) -> Option<Got<'a>> {
        if let Some((_, got)) = self.read.iter().find(|(n, _)| *n == name) {
            return got.clone();
        }
        let def = keys::def(name).unwrap_or_else(|| panic!("`{name}` is not a schema key"));
        let got = self.validate(def);
        self.read.push((def.name, got.clone()));
        got
    }

    fn validate(&mut self, def: &'static keys::KeyDef) -> Option<Got<'a>> {
        let name = def.name;
        let props = self.props.clone();
        let lookup = |k: &str| props.iter().copied().find(|p| p.key == k);
        let chosen = if name == "script" {
            // verifyConfs: `cmd`, then `command` stand in for a missing script; then the
            // validator's alias `exec`.
            ["script", "cmd", "command", "exec"]
                .into_iter()
                .filter_map(lookup)
                .find(|p| truthy(&p.value))
                .or_else(|| lookup("script"))
        } else {
            keys::pick(def, lookup)
        };

        // The same setting under several names: say which one PM2 uses.
        let mut names: Vec<String> = vec![def.name.to_string()];
        names.extend(keys::aliases(def));
        if name == "script" {
            names.extend(["cmd".to_string(), "command".to_string()]);
        }
        names.sort();
        names.dedup();
        if let Some(used) = chosen {
            for other in names.iter().filter_map(|n| lookup(n)) {
                if !std::ptr::eq(other, used) && !keys::is_unset(&other.value) {
                    self.warn(
                        other.line,
                        &other.key,
                        format!(
                            "ignored: `{}` (line {}) sets the same thing, and PM2 uses that one",
                            used.key, used.line
                        ),
                    );
                }
            }
        }
        // `conf[key] || (conf[key] = app[alias])`: a 0 under the key itself is replaced by
        // the missing alias, so PM2 reads it as unset.
        if let Some(own) = lookup(def.name)
            && matches!(own.value.value, JsValue::Number(_))
            && !truthy(&own.value)
            && !chosen.is_some_and(|c| std::ptr::eq(c, own))
            && let Some((_, default)) = ZERO_IS_UNSET.iter().find(|(k, _)| *k == name)
        {
            self.warn(
                own.line,
                &own.key,
                format!("PM2 reads a 0 here as not set (a falsy value under a key that has aliases is replaced by the absent alias), so its default applies ({default}); imported the same way"),
            );
        }

        let prop = chosen?;
        let js = &prop.value;
        let critical = CRITICAL.contains(&name);
        match &js.value {
            JsValue::Undefined | JsValue::Null => return None,
            JsValue::Code(code) => {
                let key = self.at(&prop.key);
                if critical {
                    self.diags.code_error(code.line, &key, &code.what);
                } else {
                    self.diags.code_warning(code.line, &key, &code.what);
                }
                return None;
            }
            JsValue::EnvString(parts) if name == "cwd" => {
                return Some(Got {
                    prop,
                    value: Pv::Env(parts),
                });
            }
            JsValue::EnvString(_) => {
                let what = "`process.env`, read when PM2 loads the file";
                let key = self.at(&prop.key);
                if critical {
                    self.diags.code_error(js.line, &key, what);
                } else {
                    self.diags.code_warning(js.line, &key, what);
                }
                return None;
            }
            _ => {}
        }

        // Config._valid: strings that are numbers become numbers where a number is allowed.
        let mut value = match &js.value {
            JsValue::String(s) if def.types.contains(&Ty::Num) && !js_to_number(s).is_nan() => {
                Pv::Num(js_parse_float(s))
            }
            JsValue::String(s) => Pv::Str(s.clone()),
            JsValue::Number(n) => Pv::Num(*n),
            JsValue::Bool(b) => Pv::Bool(*b),
            JsValue::Array(items) => Pv::Arr(items),
            JsValue::Object(_) => Pv::Obj,
            _ => return None,
        };
        let ty = match value {
            Pv::Str(_) => Ty::Str,
            Pv::Num(_) => Ty::Num,
            Pv::Bool(_) => Ty::Bool,
            Pv::Arr(_) => Ty::Arr,
            _ => Ty::Obj,
        };
        if !def.types.contains(&ty) {
            let expected: Vec<&str> = def.types.iter().map(|t| t.noun()).collect();
            self.error(
                js.line,
                &prop.key,
                format!(
                    "must be {}, not {} (PM2's validator refuses the app)",
                    expected.join(" or "),
                    js.kind()
                ),
            );
            return None;
        }
        if let (Pv::Str(s), Some(pattern)) = (&value, def.pattern) {
            let digits_then = |units: &str| {
                let body = s.strip_suffix(|c: char| units.contains(c)).unwrap_or(s);
                !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit())
            };
            let (ok, expected) = match pattern {
                Pattern::Time => (
                    digits_then("hms"),
                    "milliseconds, or a whole number with h, m or s (\"2s\")",
                ),
                Pattern::Size => (
                    digits_then("GMK"),
                    "bytes, or a whole number with K, M or G (\"200M\"; K, M and G are ×1024)",
                ),
                Pattern::ExecMode => (
                    matches!(
                        s.as_str(),
                        "fork" | "cluster" | "fork_mode" | "cluster_mode"
                    ),
                    "\"fork\" or \"cluster\"",
                ),
            };
            if !ok {
                self.error(
                    js.line,
                    &prop.key,
                    format!("{s:?} is not accepted by PM2: write {expected} (PM2 refuses the app)"),
                );
                return None;
            }
        }
        if let (Pv::Num(n), Some(min)) = (&value, def.min)
            && *n < min
        {
            self.error(
                js.line,
                &prop.key,
                format!("must be at least {} (PM2 refuses the app)", js_number(min)),
            );
            return None;
        }
        if let Pv::Str(s) = &value {
            if def.types.first() == Some(&Ty::Arr) && def.types.len() > 1 {
                value = Pv::Words(pm2_split(s));
            } else if s.len() >= 2 {
                let unit = |c: char| -> Option<f64> {
                    match (def.pattern?, c) {
                        (Pattern::Time, 'h') => Some(3_600_000.0),
                        (Pattern::Time, 'm') => Some(60_000.0),
                        (Pattern::Time, 's') => Some(1000.0),
                        (Pattern::Size, 'G') => Some(1024.0 * 1024.0 * 1024.0),
                        (Pattern::Size, 'M') => Some(1024.0 * 1024.0),
                        (Pattern::Size, 'K') => Some(1024.0),
                        _ => None,
                    }
                };
                if let Some(factor) = s.chars().last().and_then(unit) {
                    value = Pv::Num(js_parse_float(&s[..s.len() - 1]) * factor);
                }
            }
        }
        Some(Got { prop, value })
    }

    fn get_str(&mut self, name: &str) -> Option<(String, &'a Prop)> {
        match self.get(name)? {
            Got {
                value: Pv::Str(s),
                prop,
            } => Some((s, prop)),
            _ => None,
        }
    }

    fn get_num(&mut self, name: &str) -> Option<(f64, &'a Prop)> {
        match self.get(name)? {
            Got {
                value: Pv::Num(n),
                prop,
            } => Some((n, prop)),
            _ => None,
        }
    }

    fn get_bool(&mut self, name: &str) -> Option<(bool, &'a Prop)> {
        match self.get(name)? {
            Got {
                value: Pv::Bool(b),
                prop,
            } => Some((b, prop)),
            _ => None,
        }
    }
}

/// The entries of a service table, in the order tend's docs list them.
#[derive(Default)]
struct Table {
    entries: Vec<Entry>,
}

impl Table {
    fn put(&mut self, key: &str, line: usize, value: Node) {
        self.entries.push(Entry {
            key: key.to_string(),
            line,
            value,
        });
    }

    fn string(&mut self, key: &str, line: usize, text: impl Into<String>) {
        self.put(key, line, string(line, text));
    }

    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn into_node(self, line: usize) -> Node {
        Node::new(line, Value::Table(self.entries))
    }
}

fn string(line: usize, text: impl Into<String>) -> Node {
    Node::new(line, Value::String(text.into()))
}

fn integer(line: usize, n: i64) -> Node {
    Node::new(line, Value::Integer(n))
}

/// Environment variables in the order they are first set; a later source replaces the
/// value (JavaScript's `Object.assign`).
#[derive(Default)]
struct EnvVars {
    vars: Vec<(String, usize, Node)>,
}

impl EnvVars {
    fn set(&mut self, name: &str, line: usize, value: Node) {
        match self.vars.iter_mut().find(|(n, _, _)| n == name) {
            Some(slot) => {
                slot.1 = line;
                slot.2 = value;
            }
            None => self.vars.push((name.to_string(), line, value)),
        }
    }

    fn remove(&mut self, name: &str) {
        self.vars.retain(|(n, _, _)| n != name);
    }

    fn get(&self, name: &str) -> Option<&Node> {
        self.vars
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, _, v)| v)
    }
}

/// What to do with one environment value.
enum EnvValue {
    Set(Node),
    Unset,
    Skip,
}

pub(super) fn map_app(app: &Js, path: &str, ctx: &mut Ctx<'_>) -> Option<Service> {
    let members = match &app.value {
        JsValue::Object(members) => members,
        JsValue::Code(code) => {
            ctx.diags.code_error(code.line, path, &code.what);
            return None;
        }
        _ => {
            ctx.diags.error(
                app.line,
                path,
                format!("an app must be an object, found {}", app.kind()),
            );
            return None;
        }
    };
    let errors_before = ctx.diags.error_count();
    let mut r = Reader {
        path,
        app_line: app.line,
        props: Vec::new(),
        diags: ctx.diags,
        read: Vec::new(),
    };
    let mut spreads = Vec::new();
    for member in members {
        match member {
            Member::Prop(prop) => {
                if let Some(slot) = r.props.iter_mut().find(|p| p.key == prop.key) {
                    let first = slot.line;
                    *slot = prop;
                    r.warn(
                        prop.line,
                        &prop.key,
                        format!("written twice (first on line {first}); the last one counts, as in JavaScript"),
                    );
                } else {
                    r.props.push(prop);
                }
            }
            Member::Code(code) => {
                spreads.push(code.what.clone());
                r.diags.warn(
                    code.line,
                    path,
                    format!("{}: the keys it adds are not imported (tend cannot evaluate JavaScript); write them out", code.what),
                );
            }
        }
    }
    unknown_keys(&mut r, ctx.env_name);

    let mut table = Table::default();
    let mut env = EnvVars::default();

    // --- What runs -----------------------------------------------------------------
    let script = r.get_str("script");
    let Some((script, script_prop)) = script.filter(|(s, _)| !s.is_empty()) else {
        let written = ["script", "cmd", "command", "exec"]
            .iter()
            .any(|k| r.raw(k).is_some_and(|p| !keys::is_unset(&p.value)));
        if !written
            || r.raw("script")
                .is_some_and(|p| p.value.value == JsValue::String(String::new()))
        {
            let hint = match spreads.first() {
                Some(spread) => format!(" ({spread} may hold it, but tend cannot evaluate it)"),
                None => String::new(),
            };
            r.error(
                app.line,
                "script",
                format!("no `script`: PM2 needs the program to run and refuses the app{hint}"),
            );
        }
        return None;
    };

    let exec_mode = r.get_str("exec_mode").map(|(s, _)| s);
    let execute_command = r.get_bool("execute_command").is_some_and(|(b, _)| b);
    let cluster = !execute_command
        && exec_mode
            .as_deref()
            .is_some_and(|m| m.starts_with("cluster"));

    let name_prop = r.raw("name");
    let mut name = match r.get_str("name") {
        Some((name, _)) if !name.is_empty() => name,
        _ => default_name(&script),
    };
    if let (Some(env_name), Some((true, _))) = (ctx.env_name, r.get_bool("append_env_to_name")) {
        name = format!("{name}-{env_name}");
    }
    let name_line = name_prop.map_or(app.line, |p| p.line);
    let tend_name = tend_name(&name);
    if tend_name != name {
        r.warn(
            name_line,
            "name",
            format!("`{name}` is not a valid tend service name (letters, digits, `_`, `.`, `-`; not `all`); imported as `{tend_name}`"),
        );
    }

    let mut python = None;
    let argv = program(&mut r, &script, script_prop, cluster, &mut python);

    // --- Where ---------------------------------------------------------------------
    // (text for tend, prop, the literal directory when it is one)
    let cwd: Option<(String, &Prop, Option<String>)> = match r.get("cwd") {
        Some(Got {
            value: Pv::Str(dir),
            prop,
        }) => {
            if dir.contains("{instance}") {
                r.warn(
                    prop.line,
                    &prop.key,
                    "contains `{instance}`, which tend replaces with the instance number",
                );
            }
            Some((escape_interpolation(&dir), prop, Some(dir)))
        }
        Some(Got {
            value: Pv::Env(parts),
            prop,
        }) => match env_interpolation(parts) {
            Some(text) => Some((text, prop, None)),
            None => {
                let at = r.at(&prop.key);
                r.diags.code_error(
                    prop.value.line,
                    &at,
                    "`process.env` with a default that holds `}`",
                );
                None
            }
        },
        _ => None,
    };

    // --- Instances -----------------------------------------------------------------
    let instances = instances(&mut r, cluster);

    // --- Environment ---------------------------------------------------------------
    environment(&mut r, ctx.env_name, ctx.deploy_env, &mut env);
    // prepareAppConf sets these on the app's env, before `env_NAME` is merged over it.
    if let Some((port, prop)) = r.get_num("port") {
        env.set("PORT", prop.line, string(prop.value.line, js_number(port)));
    }
    if let Some(line) = python {
        env.set("PYTHONUNBUFFERED", line, string(line, "1"));
    }
    // Selected `env_NAME` comes last, over everything above (mergeEnvironmentVariables).
    if let Some(env_name) = ctx.env_name {
        selected_env_block(&mut r, env_name, &mut env);
    }
    let port_base = instance_variables(&mut r, instances.count, &mut env);

    // --- Identity ------------------------------------------------------------------
    let mut identity = Table::default();
    if let Some(got) = r.get("uid") {
        identity.put("user", got.line(), id_node(&got));
    }
    if let Some(got) = r.get("gid") {
        identity.put("group", got.line(), id_node(&got));
    }

    // --- Assemble ------------------------------------------------------------------
    match argv {
        Program::Command(text, line) => table.string("command", line, text),
        Program::Args(words, line) => table.put(
            "args",
            line,
            Node::new(
                line,
                Value::Array(words.into_iter().map(|(w, l)| string(l, w)).collect()),
            ),
        ),
    }
    if let Some((text, prop, _)) = &cwd {
        table.put("cwd", prop.line, string(prop.value.line, text.clone()));
    }
    if !env.vars.is_empty() {
        let line = r.raw("env").map_or(app.line, |p| p.line);
        let entries = env
            .vars
            .into_iter()
            .map(|(key, line, value)| Entry { key, line, value })
            .collect();
        table.put("env", line, Node::new(line, Value::Table(entries)));
    }
    table.entries.append(&mut identity.entries);
    if let Some((false, prop)) = r.get_bool("autostart") {
        table.put(
            "autostart",
            prop.line,
            Node::new(prop.value.line, Value::Bool(false)),
        );
    }
    if instances.count > 1 {
        table.put(
            "instances",
            instances.line,
            integer(instances.line, instances.count),
        );
    }
    if let Some((base, line)) = port_base {
        table.put("port_base", line, integer(line, base));
    }
    restarts(&mut r, &mut table);
    stopping(&mut r, &mut table);
    let cwd_text = cwd.as_ref().and_then(|(_, _, literal)| literal.clone());
    let cwd_is_env = cwd
        .as_ref()
        .is_some_and(|(_, _, literal)| literal.is_none());
    logs(
        &mut r,
        &mut table,
        cwd_text.as_deref(),
        cwd_is_env,
        instances.count,
    );
    if let Some((bytes, prop)) = r.get_num("max_memory_restart") {
        max_memory(&mut r, &mut table, bytes, prop);
    }
    cron_restart(&mut r, &mut table);
    watch(&mut r, &mut table, cwd_text.as_deref(), cwd_is_env);
    not_imported(&mut r);

    let namespace = match r.get_str("namespace") {
        Some((ns, prop)) if ns != "default" && !ns.is_empty() => {
            Some((ns, prop.line, r.at(&prop.key)))
        }
        _ => None,
    };
    // An app with errors is not returned, so that its half-read table is not mistaken
    // for a result; the errors fail the import anyway.
    if r.diags.error_count() != errors_before {
        return None;
    }
    Some(Service {
        name: tend_name,
        line: name_line,
        path: path.to_string(),
        table: table.into_node(app.line),
        namespace,
    })
}

/// PM2's default name: the script's file name without its last extension.
fn default_name(script: &str) -> String {
    let trimmed = script.trim_end_matches('/');
    let base = trimmed.rsplit('/').next().unwrap_or(trimmed);
    match base.rfind('.') {
        Some(dot) if dot > 0 => base[..dot].to_string(),
        _ => base.to_string(),
    }
}

/// A tend service name for a PM2 name: the name itself when tend accepts it (`a--0`,
/// `web-`). Otherwise each run of other characters becomes one `-` (PM2 makes them `-` in
/// its log file names), or none where a `-` is next to it or at the end, and a leading
/// non-alphanumeric is dropped: `my app!` → `my-app`, `a - b` → `a-b`, `web-!` → `web-`.
fn tend_name(name: &str) -> String {
    if check_name(name).is_ok() {
        return name.to_string();
    }
    let mut out = String::with_capacity(name.len());
    // Whether the last character is a `-` put in for refused ones (and only for them).
    let mut ours = false;
    for c in name.chars() {
        if c == '-' && ours {
            // The `-` put in stands for this one too.
            ours = false;
        } else if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
            out.push(c);
            ours = false;
        } else if !out.ends_with('-') {
            out.push('-');
            ours = true;
        }
    }
    if ours {
        out.pop();
    }
    match out.trim_start_matches(|c: char| !c.is_ascii_alphanumeric()) {
        "" => "app".to_string(),
        "all" => "all-app".to_string(),
        other => other.to_string(),
    }
}

/// tend's rule for service and group names.
pub(super) fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !first_ok || !rest_ok {
        return Err(format!(
            "`{name}` is not a valid tend name: use letters, digits, `_`, `.` and `-`, starting with a letter or digit"
        ));
    }
    if name == "all" {
        return Err("`all` is reserved in tend".into());
    }
    Ok(())
}

/// Written keys PM2 does not know, and `env_NAME` blocks that are not selected.
fn unknown_keys(r: &mut Reader<'_, '_>, env_name: Option<&str>) {
    let known = keys::all_names();
    for prop in r.props.clone() {
        let key = prop.key.as_str();
        if key == "env" || keys::canonical(key).is_some() {
            continue;
        }
        if key == "env_file" {
            r.warn(
                prop.line,
                key,
                "PM2 has no env_file: it reads `env_file` as the environment block for `--env file`; tend's `env_file` loads a dotenv file — add it by hand if that is what was meant",
            );
            continue;
        }
        if let Some(block) = keys::env_block_name(key) {
            if Some(block) != env_name {
                r.warn(
                    prop.line,
                    key,
                    format!("not applied: PM2 merges `{key}` over `env` only with `--env {block}`; import with the env name `{block}` to apply it"),
                );
            }
            continue;
        }
        let hint = keys::did_you_mean(key, &known)
            .map(|k| format!(" (did you mean `{k}`?)"))
            .unwrap_or_default();
        r.warn(
            prop.line,
            key,
            format!("not a PM2 option; PM2 ignores it{hint}"),
        );
    }
}

/// The command line tend runs.
enum Program {
    /// `command = "…"`, when every word is plain (no quoting needed).
    Command(String, usize),
    /// `args = […]`: (word, line).
    Args(Vec<(String, usize)>, usize),
}

/// The interpreter PM2 picks by extension (`lib/API/interpreter.json`); `python` is written
/// `python3` (PM2 falls back to it when `python` is missing, which is the usual case now).
fn interpreter_for(script: &str) -> Option<&'static str> {
    let base = script.rsplit('/').next().unwrap_or(script);
    let dot = base.rfind('.').filter(|&d| d > 0)?;
    Some(match &base[dot..] {
        ".js" | ".cjs" | ".mjs" => "node",
        ".sh" => "bash",
        ".py" => "python3",
        ".rb" => "ruby",
        ".php" => "php",
        ".pl" => "perl",
        ".coffee" => "coffee",
        ".ls" => "lsc",
        ".ts" | ".tsx" => "bun",
        _ => return None,
    })
}

/// Text bash runs as one plain command: words of ordinary characters, no assignment first.
fn plain_command(script: &str) -> Option<Vec<String>> {
    let words: Vec<String> = script.split_whitespace().map(String::from).collect();
    let plain = words.iter().all(|w| w.chars().all(plain_char));
    (plain && !words.is_empty() && !words[0].contains('=')).then_some(words)
}

fn plain_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(c, '_' | '@' | '%' | '+' | '=' | ':' | ',' | '.' | '/' | '-')
}

/// A word of the command line, ready for tend (escaped), and its line.
type Word = (String, usize);

/// A literal word: `${` escaped, and a literal `{instance}` reported.
fn literal_word(r: &mut Reader<'_, '_>, text: &str, line: usize, key: &str) -> Word {
    if text.contains("{instance}") {
        r.warn(
            line,
            key,
            format!(
                "`{text}` contains `{{instance}}`, which tend replaces with the instance number"
            ),
        );
    }
    (escape_interpolation(text), line)
}

/// Build the argv: interpreter, its arguments, the script, the app's arguments.
fn program(
    r: &mut Reader<'_, '_>,
    script: &str,
    script_prop: &Prop,
    cluster: bool,
    python: &mut Option<usize>,
) -> Program {
    let script_line = script_prop.value.line;
    let script_key = script_prop.key.clone();
    let interpreter = r.get_str("exec_interpreter");
    let node_args = word_list(r, "node_args");
    let args = word_list(r, "args");
    let mut argv: Vec<Word> = Vec::new();

    if script.contains(' ') {
        // verifyConfs: a script with a space runs as `bash -c SCRIPT`, replacing `args`.
        let ignored = [
            args.as_ref().map(|(_, p)| *p),
            node_args.as_ref().map(|(_, p)| *p),
            interpreter.as_ref().map(|(_, p)| *p),
        ];
        for prop in ignored.into_iter().flatten() {
            r.warn(
                prop.line,
                &prop.key,
                "ignored: PM2 runs a `script` that contains a space as `bash -c SCRIPT`, without this",
            );
        }
        match plain_command(script) {
            // bash would run these words as one simple command: run them directly.
            Some(words) => {
                for word in words {
                    let w = literal_word(r, &word, script_line, &script_key);
                    argv.push(w);
                }
            }
            None => {
                argv.push(("bash".into(), script_line));
                argv.push(("-c".into(), script_line));
                let w = literal_word(r, script, script_line, &script_key);
                argv.push(w);
            }
        }
    } else {
        let interpreter: Option<(String, usize)> = match interpreter {
            Some((i, _)) if i == "none" => None,
            Some((i, prop)) => {
                let line = prop.value.line;
                if i.contains("node@") {
                    r.warn(
                        prop.line,
                        &prop.key,
                        format!("PM2 installs and picks a Node version through nvm for `{i}`; tend runs `node` from PATH"),
                    );
                    Some(("node".to_string(), line))
                } else {
                    if i == "coffee" || i == "lsc" {
                        r.warn(
                            prop.line,
                            &prop.key,
                            format!("PM2 runs its bundled `{i}`; tend runs `{i}` from PATH"),
                        );
                    }
                    Some((i, line))
                }
            }
            None => {
                match interpreter_for(script) {
                    Some(i) => {
                        if i == "coffee" || i == "lsc" {
                            r.warn(
                            script_prop.line,
                            &script_key,
                            format!("PM2 runs this with its bundled `{i}`; tend runs `{i}` from PATH"),
                        );
                        }
                        Some((i.to_string(), script_line))
                    }
                    None => {
                        if script.contains('/') {
                            r.warn(
                            script_prop.line,
                            &script_key,
                            "no interpreter and no known extension: PM2 runs a binary directly but a text file with node; tend runs it directly, so a script needs its `#!` line and the executable bit (or set `interpreter`)",
                        );
                        }
                        None
                    }
                }
            }
        };
        if cluster
            && let Some((i, _)) = &interpreter
            && !(i == "node" || i.ends_with("/node") || i == "bun" || i.ends_with("/bun"))
        {
            let line = r.raw("exec_mode").map_or(r.app_line, |p| p.line);
            r.warn(
                line,
                "exec_mode",
                format!("cluster mode is for Node programs (PM2 loads the script in Node's cluster workers); imported as fork mode would run it, with `{i}`"),
            );
        }
        match interpreter {
            Some((i, line)) => {
                if i.contains("python") {
                    *python = Some(line);
                }
                let w = literal_word(r, &i, line, "interpreter");
                argv.push(w);
                if let Some((words, _)) = node_args {
                    argv.extend(words);
                }
            }
            None => {
                if let Some((_, prop)) = node_args {
                    r.warn(
                        prop.line,
                        &prop.key,
                        "ignored: there is no interpreter to pass these to (PM2 ignores them too)",
                    );
                }
            }
        }
        let w = literal_word(r, script, script_line, &script_key);
        argv.push(w);
        if let Some((words, _)) = args {
            argv.extend(words);
        }
    }

    let line = script_prop.line;
    let words: Vec<String> = argv.iter().map(|(w, _)| w.clone()).collect();
    let command = words.join(" ");
    // `command` only when tend's own split gives back exactly these words.
    let simple = words
        .iter()
        .all(|w| !w.is_empty() && w.chars().all(plain_char))
        && shell_words::split(&command).is_ok_and(|split| split == words);
    if simple {
        Program::Command(command, line)
    } else {
        Program::Args(argv, line)
    }
}

/// `args` or `node_args` as words with their lines; None when not written.
fn word_list<'a>(r: &mut Reader<'a, '_>, name: &str) -> Option<(Vec<Word>, &'a Prop)> {
    let got = r.get(name)?;
    let line = got.prop.value.line;
    let key = got.prop.key.clone();
    let words = match got.value {
        Pv::Words(words) => words
            .iter()
            .map(|w| literal_word(r, w, line, &key))
            .collect(),
        Pv::Arr(items) => {
            let mut words = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let at = r.at(&format!("{key}[{i}]"));
                match &item.value {
                    JsValue::Code(code) => r.diags.code_error(code.line, &at, &code.what),
                    // Already tend syntax: not escaped again.
                    JsValue::EnvString(parts) => match env_interpolation(parts) {
                        Some(text) => words.push((text, item.line)),
                        None => r.diags.code_error(
                            item.line,
                            &at,
                            "`process.env` with a default that holds `}`",
                        ),
                    },
                    JsValue::Object(_) => r.diags.error(
                        item.line,
                        &at,
                        "an object cannot be a command-line argument",
                    ),
                    // spawn() turns each element into a string.
                    _ => {
                        let text = super::values::js_string(item).unwrap_or_default();
                        words.push(literal_word(r, &text, item.line, &key));
                    }
                }
            }
            words
        }
        _ => return None,
    };
    Some((words, got.prop))
}

/// The instance count tend should run, and where it was written.
struct Instances {
    count: i64,
    line: usize,
}

fn instances(r: &mut Reader<'_, '_>, cluster: bool) -> Instances {
    let Some(prop) = r.raw("instances").filter(|p| !keys::is_unset(&p.value)) else {
        return Instances {
            count: 1,
            line: r.app_line,
        };
    };
    // verifyConfs: "max" is 0, other text goes through parseInt (NaN → 0).
    let n = match &prop.value.value {
        JsValue::String(s) if s == "max" => 0.0,
        JsValue::String(s) => {
            let n = js_parse_int(s);
            if n.is_nan() { 0.0 } else { n }
        }
        JsValue::Number(n) => js_parse_int_number(*n),
        JsValue::Code(code) => {
            let at = r.at(&prop.key);
            r.diags.code_warning(code.line, &at, &code.what);
            return Instances {
                count: 1,
                line: prop.line,
            };
        }
        JsValue::EnvString(_) => {
            let at = r.at(&prop.key);
            r.diags.code_warning(
                prop.value.line,
                &at,
                "`process.env`, read when PM2 loads the file",
            );
            return Instances {
                count: 1,
                line: prop.line,
            };
        }
        _ => {
            let kind = prop.value.kind();
            r.error(
                prop.value.line,
                &prop.key,
                format!(
                    "must be a number or \"max\", not {kind} (PM2's validator refuses the app)"
                ),
            );
            return Instances {
                count: 1,
                line: prop.line,
            };
        }
    };
    let n = if n.is_nan() { 0.0 } else { n };
    let port_note = "; tend runs separate processes, which cannot share one listening port unless the program sets SO_REUSEPORT (or gives each instance its own port: `port_base`, `{instance}`)";
    if n <= 0.0 {
        let cpus = if n == 0.0 {
            "one instance per CPU".to_string()
        } else {
            format!("as many instances as CPUs less {}", -n)
        };
        let cluster_note = if cluster { port_note } else { "" };
        r.warn(
            prop.line,
            &prop.key,
            format!("PM2 starts {cpus} here; tend has no \"max\" and imports 1 instance: set `instances` to the number this machine should run{cluster_note}"),
        );
        return Instances {
            count: 1,
            line: prop.line,
        };
    }
    let count = n as i64;
    if cluster && count > 1 {
        r.warn(
            prop.line,
            &prop.key,
            format!("cluster mode: PM2's {count} workers share one port through Node's cluster module{port_note}"),
        );
    }
    Instances {
        count,
        line: prop.line,
    }
}

/// One environment value as tend takes it. `stringify_objects`: PM2 turns objects in the
/// app's own `env` into JSON text, and drops them elsewhere.
fn env_value(r: &mut Reader<'_, '_>, js: &Js, key: &str, stringify_objects: bool) -> EnvValue {
    let text = match &js.value {
        JsValue::String(s) => escape_interpolation(s),
        JsValue::Number(n) => js_number(*n),
        JsValue::Bool(b) => b.to_string(),
        // Object.assign keeps the null; the spawn drops it: the variable is not set.
        JsValue::Null | JsValue::Undefined => return EnvValue::Unset,
        JsValue::Array(_) | JsValue::Object(_) if stringify_objects => match json_stringify(js) {
            Some(json) => escape_interpolation(&json),
            None => {
                r.warn(
                    js.line,
                    key,
                    "holds JavaScript code; PM2 would pass it as JSON text, tend cannot evaluate it: not imported",
                );
                return EnvValue::Skip;
            }
        },
        JsValue::Array(_) | JsValue::Object(_) => {
            r.warn(
                js.line,
                key,
                "PM2 passes no object values from here to the program (only from `env`); not imported",
            );
            return EnvValue::Skip;
        }
        JsValue::EnvString(parts) => match env_interpolation(parts) {
            Some(text) => text,
            None => {
                let at = r.at(key);
                r.diags
                    .code_warning(js.line, &at, "`process.env` with a default that holds `}`");
                return EnvValue::Skip;
            }
        },
        JsValue::Code(code) => {
            let at = r.at(key);
            r.diags.code_warning(code.line, &at, &code.what);
            return EnvValue::Skip;
        }
    };
    if text.contains("{instance}") {
        r.warn(
            js.line,
            key,
            "contains `{instance}`, which tend replaces with the instance number",
        );
    }
    EnvValue::Set(string(js.line, text))
}

/// Merge one object of variables into `env`.
fn merge_env_object(
    r: &mut Reader<'_, '_>,
    js: &Js,
    key: &str,
    stringify_objects: bool,
    env: &mut EnvVars,
) {
    match &js.value {
        JsValue::Object(members) => {
            for member in members {
                match member {
                    Member::Prop(var) => {
                        let var_key = format!("{key}.{}", var.key);
                        if var.key.is_empty() || var.key.contains(['=', '\0']) {
                            r.warn(
                                var.line,
                                &var_key,
                                "not a valid environment variable name; not imported",
                            );
                            continue;
                        }
                        match env_value(r, &var.value, &var_key, stringify_objects) {
                            EnvValue::Set(node) => env.set(&var.key, var.line, node),
                            EnvValue::Unset => env.remove(&var.key),
                            EnvValue::Skip => {}
                        }
                    }
                    Member::Code(code) => {
                        let at = r.at(key);
                        r.diags.code_warning(code.line, &at, &code.what);
                    }
                }
            }
        }
        JsValue::Code(code) => {
            let at = r.at(key);
            r.diags.code_warning(code.line, &at, &code.what);
        }
        JsValue::Null | JsValue::Undefined => {}
        _ => r.warn(
            js.line,
            key,
            format!(
                "must be an object of variables, not {}; not imported",
                js.kind()
            ),
        ),
    }
}

/// `deploy.ENV.env` (with an env name) and the app's `env`.
fn environment(
    r: &mut Reader<'_, '_>,
    env_name: Option<&str>,
    deploy_env: Option<&Js>,
    env: &mut EnvVars,
) {
    if let (Some(env_name), Some(deploy)) = (env_name, deploy_env) {
        let key = format!("deploy.{env_name}.env");
        // Reported against the app, since it is merged into each app.
        merge_env_object(r, deploy, &key, false, env);
    }
    if let Some(prop) = r.raw("env") {
        merge_env_object(r, &prop.value, "env", true, env);
    }
}

fn selected_env_block(r: &mut Reader<'_, '_>, env_name: &str, env: &mut EnvVars) {
    let key = format!("env_{env_name}");
    match r.raw(&key) {
        Some(prop) => merge_env_object(r, &prop.value, &key, false, env),
        None => {
            let line = r.app_line;
            r.warn(
                line,
                "",
                format!("has no `{key}`: PM2 says \"Environment [{env_name}] is not defined\" and uses `env` alone, as here"),
            );
        }
    }
}

/// `NODE_APP_INSTANCE` (or `instance_var`) and `increment_var`, which PM2 sets per instance.
/// Returns `port_base` when `increment_var` is `PORT`.
fn instance_variables(
    r: &mut Reader<'_, '_>,
    count: i64,
    env: &mut EnvVars,
) -> Option<(i64, usize)> {
    let (instance_var, line) = match r.get_str("instance_var") {
        Some((name, prop)) if !name.is_empty() => (name, prop.line),
        _ => ("NODE_APP_INSTANCE".to_string(), r.app_line),
    };
    // PM2 sets it on the process, under the app's env, so a variable in `env` wins.
    if env.get(&instance_var).is_none() {
        env.set(&instance_var, line, string(line, "{instance}"));
    }
    let (var, prop) = r.get_str("increment_var")?;
    let base_text = match env.get(&var).map(|n| &n.value) {
        Some(Value::String(s)) => s.clone(),
        _ => "0".to_string(),
    };
    // `Number(env[var]) || 0`
    let base = {
        let n = js_to_number(&base_text);
        if n.is_nan() { 0.0 } else { n }
    };
    if var == "PORT" && base >= 1.0 && base.fract() == 0.0 && base + (count as f64) - 1.0 <= 65535.0
    {
        // tend's port_base gives instance i the port base + i, in PORT: PM2's increment.
        env.remove("PORT");
        return Some((base as i64, prop.line));
    }
    if base == 0.0 {
        env.set(&var, prop.line, string(prop.value.line, "{instance}"));
    } else if count > 1 {
        r.warn(
            prop.line,
            &prop.key,
            format!("PM2 gives instance i the value {} + i in `{var}`; tend can count up only `PORT` (`port_base`) or from 0 (`{{instance}}`): every instance gets {}", js_number(base), js_number(base)),
        );
    }
    None
}

fn id_node(got: &Got<'_>) -> Node {
    let line = got.prop.value.line;
    match &got.value {
        Pv::Num(n) if n.fract() == 0.0 && *n >= 0.0 => integer(line, *n as i64),
        Pv::Num(n) => string(line, js_number(*n)),
        Pv::Str(s) => string(line, s.clone()),
        _ => string(line, ""),
    }
}

/// autorestart, stop_exit_codes, min_uptime, max_restarts, restart_delay,
/// exp_backoff_restart_delay.
///
/// `max_restarts: N` becomes `max_restarts = N - 1` with `restart_limit = "unstable"`.
/// PM2 (lib/God.js handleExit) counts an exit as unstable when the run was shorter than
/// `min_uptime`, and gives up (status `errored`) once `unstable_restarts >= max_restarts`:
/// at the N-th unstable exit (the ⌈N⌉-th for a fraction), after N - 1 restarts. tend's
/// `max_restarts` counts restarts: it goes `fatal` at the failed start after them. So
/// PM2's default 16 is 15. A 0 that reaches PM2 (`maxRestarts: 0`, or `max_restarts:
/// "0"`; a number 0 under `max_restarts` itself reads as unset) holds at the first exit,
/// however long the run lasted: PM2 never restarts the app, which is `restart = "never"`.
fn restarts(r: &mut Reader<'_, '_>, table: &mut Table) {
    let line = r.app_line;
    let autorestart = r.get_bool("autorestart");
    let stop_exit_codes = r.get("stop_exit_codes");
    let min_uptime = r.get_num("min_uptime");
    let max_restarts = r.get_num("max_restarts");
    let restart_delay = r.get_num("restart_delay");
    let exp_backoff = r.get_num("exp_backoff_restart_delay");

    let never = match (autorestart, max_restarts) {
        (Some((false, prop)), _) => Some((prop, "`autorestart: false` (in PM2 as in tend)")),
        (_, Some((n, prop))) if n.ceil() <= 0.0 => {
            r.warn(
                prop.line,
                &prop.key,
                "PM2 gives up at the first exit with 0 here, however long the run lasted (`unstable_restarts >= max_restarts` holds at once), and never restarts the app: imported as `restart = \"never\"`",
            );
            Some((prop, "`max_restarts` 0 (PM2 never restarts the app)"))
        }
        _ => None,
    };
    if let Some((cause, why)) = never {
        table.put("restart", cause.line, string(cause.value.line, "never"));
        let inert: Vec<&Prop> = [
            stop_exit_codes.as_ref().map(|g| g.prop),
            min_uptime.map(|(_, p)| p),
            max_restarts.map(|(_, p)| p),
            restart_delay.map(|(_, p)| p),
            exp_backoff.map(|(_, p)| p),
        ]
        .into_iter()
        .flatten()
        .filter(|p| !std::ptr::eq(*p, cause))
        .collect();
        for prop in inert {
            r.warn(
                prop.line,
                &prop.key,
                format!("no effect with {why}; not imported"),
            );
        }
        return;
    }

    if let Some(got) = stop_exit_codes {
        let codes: Vec<(Js, usize)> = match &got.value {
            Pv::Num(n) => vec![(
                Js {
                    line: got.prop.value.line,
                    value: JsValue::Number(*n),
                },
                got.prop.value.line,
            )],
            Pv::Arr(items) => items.iter().map(|i| (i.clone(), i.line)).collect(),
            _ => Vec::new(),
        };
        let mut nodes = Vec::new();
        for (i, (code, code_line)) in codes.iter().enumerate() {
            // handleExit: strings are parseInt'ed, numbers compared as they are.
            let n = match &code.value {
                JsValue::Number(n) => *n,
                JsValue::String(s) => js_parse_int(s),
                _ => f64::NAN,
            };
            if n.fract() == 0.0 && (0.0..=255.0).contains(&n) {
                nodes.push(integer(*code_line, n as i64));
            } else {
                let key = format!("{}[{i}]", got.prop.key);
                r.warn(
                    *code_line,
                    &key,
                    format!(
                        "{} is not an exit code (0 to 255): no exit can match it; not imported",
                        code.kind()
                    ),
                );
            }
        }
        if !nodes.is_empty() {
            table.string("restart", got.prop.line, "on-failure");
            table.put(
                "exit_codes",
                got.prop.line,
                Node::new(got.prop.value.line, Value::Array(nodes)),
            );
        }
    }

    let backoff_line = exp_backoff.or(restart_delay).map_or(line, |(_, p)| p.line);
    let mut backoff = Table::default();
    match (exp_backoff, restart_delay) {
        (Some((initial, prop)), delay) => {
            let initial = js_parse_int_number(initial).max(0.0);
            backoff.string("initial", prop.line, duration(initial));
            backoff.string(
                "max",
                prop.line,
                duration(initial.max(PM2_EXP_BACKOFF_MAX_MS)),
            );
            backoff.put(
                "factor",
                prop.line,
                Node::new(prop.value.line, Value::Float(1.5)),
            );
            backoff.put(
                "jitter",
                prop.line,
                Node::new(prop.value.line, Value::Float(0.0)),
            );
            r.warn(
                prop.line,
                &prop.key,
                "imported as `backoff` (×1.5 up to 15s); tend waits only after a run shorter than `min_uptime` and starts again from the first delay after a longer one (PM2: after every exit, reset after 30s up)",
            );
            if let Some((_, delay_prop)) = delay {
                r.warn(
                    delay_prop.line,
                    &delay_prop.key,
                    "ignored: `exp_backoff_restart_delay` replaces it, in PM2 as here",
                );
            }
        }
        (None, Some((delay, prop))) if js_parse_int_number(delay) > 0.0 => {
            let delay = js_parse_int_number(delay);
            backoff.string("initial", prop.line, duration(delay));
            backoff.put(
                "factor",
                prop.line,
                Node::new(prop.value.line, Value::Float(1.0)),
            );
            backoff.put(
                "jitter",
                prop.line,
                Node::new(prop.value.line, Value::Float(0.0)),
            );
            r.warn(
                prop.line,
                &prop.key,
                "imported as a fixed `backoff`; tend waits only after a run shorter than `min_uptime` and restarts a run that lasted longer at once (PM2 waits after every exit)",
            );
        }
        // PM2 restarts at once.
        _ => backoff.string("initial", backoff_line, "0s"),
    }
    table.put("backoff", backoff_line, backoff.into_node(backoff_line));

    let (uptime, uptime_line) =
        min_uptime.map_or((PM2_MIN_UPTIME_MS, line), |(ms, p)| (ms, p.line));
    table.string("min_uptime", uptime_line, duration(uptime));
    // Restarts before PM2 gives up: see above (a 0 was handled there).
    let (limit, limit_line) = max_restarts.map_or((PM2_MAX_RESTARTS, line), |(n, p)| (n, p.line));
    table.put(
        "max_restarts",
        limit_line,
        integer(limit_line, (limit.ceil() - 1.0).max(0.0) as i64),
    );
    table.string("restart_limit", limit_line, "unstable");
}

/// kill_timeout, and the stop signal PM2 uses.
fn stopping(r: &mut Reader<'_, '_>, table: &mut Table) {
    let line = r.app_line;
    table.string("stop_signal", line, PM2_STOP_SIGNAL);
    let (ms, timeout_line) = r
        .get_num("kill_timeout")
        .map_or((PM2_KILL_TIMEOUT_MS, line), |(ms, p)| (ms, p.line));
    table.string("stop_timeout", timeout_line, duration(ms));
    if let Some((true, prop)) = r.get_bool("shutdown_with_message") {
        r.warn(
            prop.line,
            &prop.key,
            "PM2 stops the app with an IPC `shutdown` message; tend has no IPC channel and sends SIGINT, so the program must handle that signal",
        );
    }
    if let Some((false, prop)) = r.get_bool("treekill") {
        r.warn(
            prop.line,
            &prop.key,
            "tend always signals the whole process tree; PM2 here signals only the main process",
        );
    }
}

/// A log path for tend: relative to `cwd` as PM2 resolves it; None (with a warning) where
/// tend cannot say the same.
fn log_path(
    r: &mut Reader<'_, '_>,
    prop: &Prop,
    file: &str,
    cwd: Option<&str>,
    cwd_is_env: bool,
) -> Option<String> {
    if file == "/dev/null" || file == "NULL" {
        return Some("null".into());
    }
    if file.starts_with('~') {
        r.warn(
            prop.line,
            &prop.key,
            "PM2 expands `~` to the home directory; tend does not in log paths: write the full path (tend's default log file is used meanwhile)",
        );
        return None;
    }
    if file.starts_with('/') {
        return Some(file.to_string());
    }
    match cwd {
        _ if cwd_is_env => {
            r.warn(
                prop.line,
                &prop.key,
                "PM2 resolves this from `cwd`, which comes from the environment here, and tend does not expand variables in log paths: write the full path (tend's default log file is used meanwhile)",
            );
            None
        }
        Some(dir) => {
            let mut file = file;
            while let Some(rest) = file.strip_prefix("./") {
                file = rest;
            }
            Some(
                std::path::Path::new(dir)
                    .join(file)
                    .to_string_lossy()
                    .into_owned(),
            )
        }
        None => Some(file.to_string()),
    }
}

/// out_file, error_file, log_file, merge_logs, log_date_format, time, log_type, disable_logs.
fn logs(
    r: &mut Reader<'_, '_>,
    table: &mut Table,
    cwd: Option<&str>,
    cwd_is_env: bool,
    instances: i64,
) {
    let mut logs = Table::default();
    let mut first_line = None;
    let mut note_line = |line: usize| {
        first_line.get_or_insert(line);
    };
    let out = r.get_str("out_file");
    let err = r.get_str("error_file");
    let combined = r.get("log_file");
    let merge_logs = r.get_bool("merge_logs");

    if let Some((true, prop)) = r.get_bool("disable_logs") {
        logs.string("stdout", prop.line, "null");
        logs.string("stderr", prop.line, "null");
        note_line(prop.line);
        for (_, p) in [out.as_ref(), err.as_ref()].into_iter().flatten() {
            r.warn(p.line, &p.key, "ignored: `disable_logs` is set");
        }
    } else {
        let out_path = out
            .as_ref()
            .and_then(|(f, p)| Some((log_path(r, p, f, cwd, cwd_is_env)?, *p)));
        let err_path = err
            .as_ref()
            .and_then(|(f, p)| Some((log_path(r, p, f, cwd, cwd_is_env)?, *p)));
        match (&out_path, &err_path) {
            (Some((o, op)), Some((e, _))) if o == e && o != "null" => {
                logs.string("stdout", op.line, o.clone());
                logs.put("merge", op.line, Node::new(op.line, Value::Bool(true)));
                note_line(op.line);
            }
            _ => {
                if let Some((o, op)) = &out_path {
                    logs.string("stdout", op.line, o.clone());
                    note_line(op.line);
                }
                if let Some((e, ep)) = &err_path {
                    logs.string("stderr", ep.line, e.clone());
                    note_line(ep.line);
                }
            }
        }
        match combined {
            Some(Got {
                value: Pv::Str(file),
                prop,
            }) if out.is_none() && err.is_none() => {
                if let Some(path) = log_path(r, prop, &file, cwd, cwd_is_env) {
                    logs.string("stdout", prop.line, path);
                    logs.put("merge", prop.line, Node::new(prop.line, Value::Bool(true)));
                    note_line(prop.line);
                    r.warn(
                        prop.line,
                        &prop.key,
                        "imported as stdout and stderr merged into this one file; PM2 also keeps separate out and error files in ~/.pm2/logs",
                    );
                }
            }
            Some(Got { value: Pv::Str(_), prop }) => r.warn(
                prop.line,
                &prop.key,
                "tend cannot also write a combined log beside separate stdout and stderr files; not imported (or use `logs.merge` for one file)",
            ),
            Some(Got { value: Pv::Bool(true), prop }) => r.warn(
                prop.line,
                &prop.key,
                "PM2 writes a combined log to ~/.pm2/logs; tend keeps stdout and stderr apart (set `logs.merge = true` for one file); not imported",
            ),
            _ => {}
        }
        let explicit_path = logs
            .entries
            .iter()
            .any(|e| matches!(&e.value.value, Value::String(s) if s != "null"));
        let merged = matches!(merge_logs, Some((true, _)));
        if instances > 1 && explicit_path && !merged {
            let line = out
                .as_ref()
                .or(err.as_ref())
                .map_or(r.app_line, |(_, p)| p.line);
            r.warn(
                line,
                "merge_logs",
                "PM2 writes one file per process here (`NAME-ID.log`); all of tend's instances write to this one file, as with PM2's `merge_logs: true`",
            );
        }
    }

    // time: true replaces log_date_format with PM2's own format.
    let time = r.get_bool("time");
    let date_format = r.get_str("log_date_format");
    let format = match (&time, &date_format) {
        (Some((true, time_prop)), date) => {
            if let Some((f, p)) = date
                && f != "YYYY-MM-DDTHH:mm:ss"
            {
                r.warn(
                    p.line,
                    &p.key,
                    format!("ignored: `time: true` (line {}) replaces it with YYYY-MM-DDTHH:mm:ss, as PM2 does", time_prop.line),
                );
            }
            Some(("YYYY-MM-DDTHH:mm:ss".to_string(), *time_prop))
        }
        (_, Some((f, p))) if !f.is_empty() => Some((f.clone(), *p)),
        _ => None,
    };
    let json = match r.get_str("log_type") {
        Some((kind, prop)) if kind == "json" => Some(prop),
        Some((kind, prop)) => {
            r.warn(
                prop.line,
                &prop.key,
                format!("PM2 knows only \"json\" here; `{kind}` changes nothing"),
            );
            None
        }
        None => None,
    };
    if let Some(prop) = json {
        logs.string("format", prop.line, "json");
        note_line(prop.line);
        r.warn(
            prop.line,
            &prop.key,
            "tend's JSON lines are {\"time\", \"service\", \"instance\", \"stream\", \"line\"} with RFC 3339 UTC times (PM2's: message, timestamp, type, process_id, app_name)",
        );
    } else if let Some((pattern, prop)) = format {
        note_line(prop.line);
        match dayjs_to_tend(&pattern) {
            // PM2 writes `DATE: line`; tend writes `STAMP line`, so the colon goes in the stamp.
            Ok(tend) => {
                logs.string("timestamp_format", prop.line, format!("{tend}:"));
                r.warn(
                    prop.line,
                    &prop.key,
                    "tend writes log timestamps in UTC; PM2 writes local time",
                );
            }
            Err(token) => {
                logs.put(
                    "timestamps",
                    prop.line,
                    Node::new(prop.line, Value::Bool(true)),
                );
                r.warn(
                    prop.line,
                    &prop.key,
                    format!("tend's timestamps cannot write the dayjs token `{token}`; imported as tend's RFC 3339 timestamps (UTC)"),
                );
            }
        }
    }
    if let Some((pid, prop)) = r.get_str("pid_file") {
        r.warn(
            prop.line,
            &prop.key,
            format!("tend writes no per-app pid file (`{pid}`); `tend status` shows the pids"),
        );
    }
    if !logs.is_empty() {
        let line = first_line.unwrap_or(r.app_line);
        table.put("logs", line, logs.into_node(line));
    }
}

fn max_memory(r: &mut Reader<'_, '_>, table: &mut Table, bytes: f64, prop: &Prop) {
    let bytes = bytes.round().max(0.0) as u64;
    let line = prop.value.line;
    let value = match &prop.value.value {
        // A unit written in PM2 (×1024) stays a unit: "200M" → "200MiB".
        JsValue::String(s) if s.ends_with(['K', 'M', 'G']) => string(line, size(bytes)),
        _ => integer(line, bytes as i64),
    };
    if bytes < 1 << 20 {
        r.warn(
            prop.line,
            &prop.key,
            format!("{bytes} bytes: PM2 reads a number without a unit as bytes, so this restarts the app as soon as it is sampled; imported as written (did you mean \"{bytes}M\"?)"),
        );
    }
    table.put("max_memory", prop.line, value);
}

/// `cron_restart`: PM2 restarts the app at these times, and starts it if it is stopped.
/// With `autorestart: false` that is how PM2 runs a periodic job: a task on a `schedule`
/// here (which also runs when tend starts, as PM2 starts it); otherwise `cron_restart`.
fn cron_restart(r: &mut Reader<'_, '_>, table: &mut Table) {
    let Some(got) = r.get("cron_restart") else {
        return;
    };
    let text = match &got.value {
        Pv::Num(n) if *n == 0.0 => return,
        Pv::Str(s) if s == "0" || s.trim().is_empty() => return,
        Pv::Str(s) => s.trim().to_string(),
        Pv::Num(n) => js_number(*n),
        _ => return,
    };
    let (line, key) = (got.prop.line, got.prop.key.clone());
    // PM2's cron library (croner) takes an optional seconds field first.
    let fields: Vec<&str> = text.split_whitespace().collect();
    let text = match fields.as_slice() {
        [seconds, rest @ ..] if rest.len() == 5 => {
            if *seconds != "0" {
                r.warn(
                    line,
                    &key,
                    format!("`{text}` fires on seconds \"{seconds}\"; tend's cron fires on whole minutes: not imported"),
                );
                return;
            }
            rest.join(" ")
        }
        _ => text,
    };
    if let Err(why) = crate::config::cron::Cron::parse(&text) {
        r.warn(line, &key, format!("`{text}`: {why}; not imported"));
        return;
    }
    let value = string(got.prop.value.line, text);
    if matches!(r.get_bool("autorestart"), Some((false, _))) {
        let at = table
            .entries
            .iter()
            .rposition(|e| matches!(e.key.as_str(), "command" | "args" | "cwd"))
            .map_or(0, |i| i + 1);
        table.entries.insert(
            at,
            Entry {
                key: "kind".into(),
                line,
                value: string(line, "task"),
            },
        );
        table.put("schedule", line, value);
        // PM2 starts the app when it is added, then at these times: a scheduled task
        // waits for its first time unless told.
        if !matches!(r.get_bool("autostart"), Some((false, _))) {
            table.put("autostart", line, Node::new(line, Value::Bool(true)));
        }
        r.warn(
            line,
            &key,
            "with `autorestart: false`, PM2 starts the app at these times: imported as a task with `schedule` (it also runs when tend starts, as PM2 starts it)",
        );
    } else {
        table.put("cron_restart", line, value);
        r.warn(
            line,
            &key,
            "PM2 also starts the app at these times when it is stopped; tend's `cron_restart` restarts it only while it runs",
        );
    }
}

/// A watch or ignore path as tend reads it (a glob relative to the manifest), from one PM2
/// resolves against the app's `cwd`; None (reported) for what tend cannot carry over.
fn watch_path(
    r: &mut Reader<'_, '_>,
    key: &str,
    line: usize,
    written: &str,
    cwd: Option<&str>,
    cwd_is_env: bool,
    anywhere: bool,
) -> Option<String> {
    let mut path = written.trim();
    if path.contains(['\\', '^', '$', '+', '|', '(', ')', '{', '}']) {
        r.warn(
            line,
            key,
            format!("`{written}` reads as a regular expression (chokidar takes those); tend reads globs: not imported, write it as a glob"),
        );
        return None;
    }
    while let Some(rest) = path.strip_prefix("./") {
        path = rest;
    }
    if path.is_empty() || path == "." {
        path = ".";
    }
    if path.starts_with('/') {
        return Some(path.to_string());
    }
    // A bare name (`node_modules`, `*.log`) is meant wherever it is.
    if anywhere && !path.contains('/') && path != "." {
        return Some(format!("**/{path}"));
    }
    match cwd {
        _ if cwd_is_env => {
            r.warn(
                line,
                key,
                format!("`{written}` is relative to `cwd`, which comes from the environment here; tend does not expand variables in watch paths: not imported"),
            );
            None
        }
        Some(dir) if path == "." => Some(dir.to_string()),
        Some(dir) => Some(
            std::path::Path::new(dir)
                .join(path)
                .to_string_lossy()
                .into_owned(),
        ),
        None => Some(path.to_string()),
    }
}

/// watch, ignore_watch, watch_delay, watch_options.
fn watch(r: &mut Reader<'_, '_>, table: &mut Table, cwd: Option<&str>, cwd_is_env: bool) {
    let Some(got) = r.get("watch") else {
        return;
    };
    let line = got.prop.line;
    let key = got.prop.key.clone();
    // `watch: true` (or an empty list) watches the app's directory.
    let written: Vec<(String, usize)> = match &got.value {
        Pv::Bool(false) => return,
        Pv::Str(s) if s.is_empty() => return,
        Pv::Bool(true) => vec![(".".to_string(), got.prop.value.line)],
        Pv::Arr([]) => vec![(".".to_string(), got.prop.value.line)],
        Pv::Str(s) => vec![(s.clone(), got.prop.value.line)],
        Pv::Arr(items) => items
            .iter()
            .filter_map(|item| match &item.value {
                JsValue::String(s) => Some((s.clone(), item.line)),
                _ => None,
            })
            .collect(),
        _ => return,
    };
    let mut paths = Vec::new();
    for (path, path_line) in &written {
        if let Some(path) = watch_path(r, &key, line, path, cwd, cwd_is_env, false) {
            paths.push(string(*path_line, path));
        }
    }
    if paths.is_empty() {
        return;
    }
    let ignore: Vec<Node> = match r.get("ignore_watch") {
        Some(ignore) => {
            let (ignore_line, ignore_key) = (ignore.prop.line, ignore.prop.key.clone());
            let items: Vec<(String, usize)> = match &ignore.value {
                Pv::Str(s) => vec![(s.clone(), ignore.prop.value.line)],
                Pv::Arr(items) => items
                    .iter()
                    .filter_map(|item| match &item.value {
                        JsValue::String(s) => Some((s.clone(), item.line)),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            items
                .iter()
                .filter_map(|(item, item_line)| {
                    watch_path(r, &ignore_key, ignore_line, item, cwd, cwd_is_env, true)
                        .map(|p| string(*item_line, p))
                })
                .collect()
        }
        // PM2's default: dot files and directories, and node_modules.
        None => vec![string(line, "**/.*"), string(line, "**/node_modules")],
    };
    table.put("watch", line, Node::new(line, Value::Array(paths)));
    if !ignore.is_empty() {
        table.put("watch_ignore", line, Node::new(line, Value::Array(ignore)));
    }
    if let Some((ms, prop)) = r.get_num("watch_delay") {
        table.string("watch_debounce", prop.line, duration(ms));
    }
    if let Some(got) = r.get("watch_options") {
        r.warn(
            got.line(),
            &got.prop.key,
            "chokidar's options (polling, symbolic links); tend watches with inotify: not imported",
        );
    }
}

/// PM2 settings with no tend equivalent: each one that does something is reported.
fn not_imported(r: &mut Reader<'_, '_>) {
    let wait_ready = r.get_bool("wait_ready").filter(|(b, _)| *b);
    let listen_timeout = r.get_num("listen_timeout");
    if let Some((_, prop)) = wait_ready {
        let timeout = listen_timeout
            .map(|(ms, _)| format!(" (and `listen_timeout`: {}ms)", js_number(ms)))
            .unwrap_or_default();
        r.warn(
            prop.line,
            &prop.key,
            format!("PM2 waits for the program's `process.send('ready')` over IPC{timeout}; tend has no IPC channel: use `readiness = {{ notify = true }}` (sd_notify) or an http/tcp readiness probe"),
        );
    } else if let Some((_, prop)) = listen_timeout {
        r.warn(
            prop.line,
            &prop.key,
            "PM2 waits this long for a cluster worker to listen during reloads; tend has no equivalent (a readiness probe has its own `timeout`)",
        );
    }
    if let Some(got) = r.get("filter_env")
        && truthy(&got.prop.value)
    {
        r.warn(
            got.line(),
            &got.prop.key,
            "PM2 keeps (some of) its own environment from the program here; tend always passes its environment on: not imported",
        );
    }
    if let Some((true, prop)) = r.get_bool("force") {
        r.warn(
            prop.line,
            &prop.key,
            "starting a second copy of a running app is not a tend concept; ignored",
        );
    }
    if let Some((_, prop)) = r.get_str("name_prefix") {
        r.warn(
            prop.line,
            &prop.key,
            "PM2 uses only the command line's `--name-prefix`, not this key; ignored",
        );
    }
    if let Some((_, prop)) = r.get_str("username") {
        r.warn(
            prop.line,
            &prop.key,
            "PM2 overwrites this with the user running it; ignored (tend's key is `user`)",
        );
    }
    if let Some((ms, prop)) = r.get_num("kill_retry_time")
        && ms != 100.0
    {
        r.warn(
            prop.line,
            &prop.key,
            "how often PM2 polls for the stopped process; tend is told at once; ignored",
        );
    }
    if let Some((true, prop)) = r.get_bool("source_map_support") {
        r.warn(
            prop.line,
            &prop.key,
            "PM2 loads source-map-support into Node; tend does not: run node with `--enable-source-maps` for mapped stack traces",
        );
    }
    for (key, what) in PM2_ONLY {
        let Some(got) = r.get(key) else { continue };
        let default_true = matches!(*key, "vizion" | "pmx" | "automation" | "windowsHide");
        let active = match &got.value {
            Pv::Bool(b) => *b && !default_true,
            Pv::Arr(items) => !items.is_empty(),
            _ => true,
        } && *key != "disable_trace";
        if active {
            r.warn(
                got.line(),
                &got.prop.key,
                format!("{what}: a PM2 feature; ignored"),
            );
        }
    }
    // Every other written key is still checked, so that a value PM2 refuses is an error
    // here too (`ignore_watch` with watch off has no effect, but a wrong type fails PM2).
    // `instances` is not: verifyConfs converts it first (see `instances`).
    for def in keys::SCHEMA {
        if def.name != "instances" {
            let _ = r.get(def.name);
        }
    }
}
