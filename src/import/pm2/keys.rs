//! The app keys PM2 knows (`lib/API/schema.json` of PM2 7), their aliases and types, and
//! PM2's rule for picking a value among a key and its aliases.

use super::js::{Js, JsValue};
use super::values::truthy;
use crate::config::edit_distance;

/// A JSON-schema type as PM2's validator checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    Str,
    Num,
    Bool,
    Arr,
    Obj,
}

impl Ty {
    pub(crate) fn noun(self) -> &'static str {
        match self {
            Ty::Str => "a string",
            Ty::Num => "a number",
            Ty::Bool => "a boolean",
            Ty::Arr => "an array",
            Ty::Obj => "an object",
        }
    }
}

/// Extra checks PM2 makes on a string value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pattern {
    /// `^\d+(h|m|s)?$`, converted to milliseconds.
    Time,
    /// `^\d+(G|M|K)?$`, converted to bytes.
    Size,
    /// `^(cluster|fork)(_mode)?$`.
    ExecMode,
}

pub(crate) struct KeyDef {
    pub name: &'static str,
    /// Types in schema order: when the first is Arr and a string is given, PM2 splits it.
    pub types: &'static [Ty],
    /// Aliases as the schema lists them (the camelCase alias is added by [`aliases`]).
    pub aliases: &'static [&'static str],
    pub pattern: Option<Pattern>,
    pub min: Option<f64>,
}

const fn key(name: &'static str, types: &'static [Ty]) -> KeyDef {
    KeyDef {
        name,
        types,
        aliases: &[],
        pattern: None,
        min: None,
    }
}

const fn aliased(
    name: &'static str,
    types: &'static [Ty],
    aliases: &'static [&'static str],
) -> KeyDef {
    KeyDef {
        name,
        types,
        aliases,
        pattern: None,
        min: None,
    }
}

use Ty::{Arr, Bool, Num, Obj, Str};

/// Every key of PM2's app schema, in its order.
pub(crate) const SCHEMA: &[KeyDef] = &[
    aliased("script", &[Str], &["exec"]),
    key("name", &[Str]),
    key("name_prefix", &[Str]),
    key("filter_env", &[Bool, Arr, Str]),
    key("namespace", &[Str]),
    key("install_url", &[Str]),
    key("cwd", &[Str]),
    key("args", &[Arr, Str]),
    aliased("exec_interpreter", &[Str], &["interpreter"]),
    aliased(
        "node_args",
        &[Arr, Str],
        &["interpreterArgs", "interpreter_args"],
    ),
    aliased("out_file", &[Str], &["out", "output", "out_log"]),
    aliased(
        "error_file",
        &[Str],
        &["error", "err", "err_file", "err_log"],
    ),
    aliased("log_file", &[Bool, Str], &["log"]),
    key("disable_logs", &[Bool]),
    key("log_type", &[Str]),
    key("log_date_format", &[Str]),
    key("time", &[Bool]),
    key("env", &[Obj, Str]),
    KeyDef {
        pattern: Some(Pattern::Size),
        ..key("max_memory_restart", &[Str, Num])
    },
    aliased("pid_file", &[Str], &["pid"]),
    key("restart_delay", &[Num]),
    key("exp_backoff_restart_delay", &[Num]),
    key("source_map_support", &[Bool]),
    key("disable_source_map_support", &[Bool]),
    key("wait_ready", &[Bool]),
    key("instances", &[Num]),
    key("kill_timeout", &[Num]),
    key("shutdown_with_message", &[Bool]),
    key("listen_timeout", &[Num]),
    aliased("cron_restart", &[Str, Num], &["cron"]),
    aliased("merge_logs", &[Bool], &["combine_logs"]),
    key("vizion", &[Bool]),
    key("autostart", &[Bool]),
    key("autorestart", &[Bool]),
    key("stop_exit_codes", &[Arr, Num]),
    key("watch_delay", &[Num]),
    key("watch", &[Bool, Arr, Str]),
    key("ignore_watch", &[Arr, Str]),
    key("watch_options", &[Obj]),
    KeyDef {
        pattern: Some(Pattern::Time),
        min: Some(100.0),
        ..key("min_uptime", &[Num, Str])
    },
    KeyDef {
        min: Some(0.0),
        ..key("max_restarts", &[Num])
    },
    key("execute_command", &[Bool]),
    KeyDef {
        pattern: Some(Pattern::ExecMode),
        ..key("exec_mode", &[Str])
    },
    key("force", &[Bool]),
    key("append_env_to_name", &[Bool]),
    key("post_update", &[Arr]),
    key("trace", &[Bool]),
    key("disable_trace", &[Bool]),
    key("v8", &[Bool]),
    key("event_loop_inspector", &[Bool]),
    key("deep_monitoring", &[Bool]),
    key("increment_var", &[Str]),
    key("instance_var", &[Str]),
    key("pmx", &[Bool, Str]),
    key("automation", &[Bool]),
    key("treekill", &[Bool]),
    key("port", &[Num]),
    key("username", &[Str]),
    aliased("uid", &[Num, Str], &["user"]),
    key("gid", &[Num, Str]),
    key("windowsHide", &[Bool]),
    key("kill_retry_time", &[Num]),
    key("write", &[Bool]),
    key("io", &[Obj]),
];

/// Keys PM2 reads before validating, as other names for `script` (`lib/Common.js`).
pub(crate) const SCRIPT_ALIASES_BEFORE_VALIDATION: &[&str] = &["cmd", "command"];

pub(crate) fn def(name: &str) -> Option<&'static KeyDef> {
    SCHEMA.iter().find(|d| d.name == name)
}

/// PM2's automatic alias: `max_memory_restart` → `maxMemoryRestart`.
pub(crate) fn camel(name: &str) -> String {
    name.split('_')
        .enumerate()
        .map(|(i, part)| {
            if i != 0 && part.len() > 1 {
                let mut chars = part.chars();
                chars
                    .next()
                    .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                    .unwrap_or_default()
            } else {
                part.to_string()
            }
        })
        .collect()
}

/// The aliases in the order PM2 tries them: the schema's, last first, then the camelCase one
/// (which is the key itself for keys without an underscore).
pub(crate) fn aliases(def: &KeyDef) -> Vec<String> {
    let mut out = vec![camel(def.name)];
    for alias in def.aliases {
        out.insert(0, (*alias).to_string());
    }
    out
}

/// The schema key a written key stands for (itself, an alias or a camelCase form).
pub(crate) fn canonical(written: &str) -> Option<&'static str> {
    if SCRIPT_ALIASES_BEFORE_VALIDATION.contains(&written) {
        return Some("script");
    }
    SCHEMA
        .iter()
        .find(|d| d.name == written || aliases(d).iter().any(|a| a == written))
        .map(|d| d.name)
}

/// `env_production`, `env_staging`, …: PM2's `^env_\S*$`.
pub(crate) fn env_block_name(written: &str) -> Option<&str> {
    written
        .strip_prefix("env_")
        .filter(|rest| !rest.contains(char::is_whitespace))
}

/// All names a key may be written as, for "did you mean".
pub(crate) fn all_names() -> Vec<String> {
    let mut names: Vec<String> = SCRIPT_ALIASES_BEFORE_VALIDATION
        .iter()
        .map(|s| s.to_string())
        .collect();
    for def in SCHEMA {
        names.push(def.name.to_string());
        names.extend(aliases(def));
    }
    names.sort();
    names.dedup();
    names
}

/// Which written value PM2 uses for `def`: `conf[key] || (conf[key] = app[alias])` for
/// each alias in turn. The first truthy one wins; when none is truthy, the value of the
/// last alias tried is kept, so a falsy value under the key itself (`max_restarts: 0`)
/// is replaced by the (absent) alias and reads as unset.
pub(crate) fn pick<'p, P>(def: &KeyDef, lookup: impl Fn(&str) -> Option<&'p P>) -> Option<&'p P>
where
    P: AsJs + 'p,
{
    let mut chosen = lookup(def.name);
    for alias in aliases(def) {
        if !chosen.is_some_and(|p| truthy(p.js())) {
            chosen = lookup(&alias);
        }
    }
    chosen
}

/// Something that holds a value: lets [`pick`] work on the importer's props.
pub(crate) trait AsJs {
    fn js(&self) -> &Js;
}

impl AsJs for super::js::Prop {
    fn js(&self) -> &Js {
        &self.value
    }
}

/// True for values PM2's validator treats as "not written": `undefined` and `null`.
pub(crate) fn is_unset(js: &Js) -> bool {
    matches!(js.value, JsValue::Undefined | JsValue::Null)
}

/// The closest of `candidates` to `word`, within edit distance 2 (or a case-only match).
pub(crate) fn did_you_mean<'c>(word: &str, candidates: &'c [String]) -> Option<&'c str> {
    candidates
        .iter()
        .map(|c| {
            let d = if c.eq_ignore_ascii_case(word) {
                0
            } else {
                edit_distance(&word.to_ascii_lowercase(), &c.to_ascii_lowercase())
            };
            (d, c)
        })
        // Close for the word's length: `instance` → `instances`, not `source` → `force`.
        .filter(|&(d, c)| d <= (word.chars().count() / 4).max(1) && c != word)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_follow_pm2() {
        assert_eq!(camel("max_memory_restart"), "maxMemoryRestart");
        assert_eq!(camel("windowsHide"), "windowsHide");
        assert_eq!(camel("v8"), "v8");
        let node_args = def("node_args").unwrap();
        assert_eq!(
            aliases(node_args),
            ["interpreter_args", "interpreterArgs", "nodeArgs"]
        );
        assert_eq!(aliases(def("script").unwrap()), ["exec", "script"]);
        assert_eq!(canonical("ignoreWatch"), Some("ignore_watch"));
        assert_eq!(canonical("err"), Some("error_file"));
        assert_eq!(canonical("cmd"), Some("script"));
        assert_eq!(canonical("user"), Some("uid"));
        assert_eq!(canonical("max"), None);
        assert_eq!(env_block_name("env_production"), Some("production"));
        assert_eq!(env_block_name("env"), None);
    }

    #[test]
    fn suggestions() {
        let names = all_names();
        assert_eq!(did_you_mean("instance", &names), Some("instances"));
        assert_eq!(
            did_you_mean("max_memory_restar", &names),
            Some("max_memory_restart")
        );
        assert_eq!(did_you_mean("ErrorFile", &names), Some("errorFile"));
        assert_eq!(did_you_mean("TEST_VARIABLE", &names), None);
    }
}
