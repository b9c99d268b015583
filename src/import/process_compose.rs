//! process-compose YAML to tend services. The mapping tables and every choice where the
//! two differ are in docs/migrating.md; the comments here say why at the point of each rule.
//!
//! process-compose reads its file in this order, and so does the import:
//! 1. `${...}` is expanded over the whole text (envsubst rules, `$$` escapes a `$`, an
//!    unset variable is empty) unless `disable_env_expansion` is set. Where tend would
//!    interpolate the same field (`command`, `args`, `env`, `cwd`), the expansion is
//!    rewritten in tend's syntax so it still happens when tend loads the manifest; elsewhere
//!    (probes, paths, numbers) it is evaluated now, with a warning.
//! 2. A process's `extends` is merged.
//! 3. Go templates (`{{.VAR}}` from `vars`) are rendered in the fields process-compose
//!    renders; `{{.PC_REPLICA_NUM}}` becomes tend's per-instance `{instance}`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::envsubst::{self, Piece, Var};
use super::gotemplate::{self, Lookup, Out};
use super::tree::{self, Names, Report, hint};
use super::{Diagnostic, Imported, ReadFile, dotenv, read_from_disk, shell};
use crate::config::document::{self, Format, Node, Value};

/// Top-level keys process-compose knows (`types.Project`).
const TOP_KEYS: &[&str] = &[
    "version",
    "name",
    "log_location",
    "log_level",
    "log_length",
    "log_configuration",
    "log_format",
    "processes",
    "environment",
    "shell",
    "is_strict",
    "vars",
    "disable_env_expansion",
    "is_tui_disabled",
    "extends",
    "env_cmds",
    "ordered_shutdown",
    "file_names",
    "env_file_names",
    "dot_env_vars",
    "mcp_server",
];

/// Process keys process-compose knows (`types.ProcessConfig`).
const PROCESS_KEYS: &[&str] = &[
    "name",
    "extends",
    "disabled",
    "is_daemon",
    "command",
    "entrypoint",
    "log_location",
    "log_configuration",
    "environment",
    "env_file",
    "availability",
    "depends_on",
    "liveness_probe",
    "readiness_probe",
    "ready_log_line",
    "shutdown",
    "disable_ansi_colors",
    "working_dir",
    "namespace",
    "replicas",
    "description",
    "vars",
    "is_foreground",
    "is_tty",
    "is_elevated",
    "is_interactive",
    "launch_timeout_seconds",
    "is_disabled",
    "is_dotenv_disabled",
    "original_config",
    "replica_num",
    "replica_name",
    "executable",
    "args",
    "schedule",
    "watch",
    "mcp",
    "truncate_log",
    "is_template_disabled",
    "monitor_for",
    "monitor_silence_threshold",
    "success_exit_codes",
];

const AVAILABILITY_KEYS: &[&str] = &[
    "restart",
    "backoff_seconds",
    "max_restarts",
    "exit_on_end",
    "exit_on_skipped",
];
const SHUTDOWN_KEYS: &[&str] = &[
    "command",
    "timeout_seconds",
    "signal",
    "parent_only",
    "send_keys",
];
const PROBE_KEYS: &[&str] = &[
    "exec",
    "http_get",
    "initial_delay_seconds",
    "period_seconds",
    "timeout_seconds",
    "success_threshold",
    "failure_threshold",
];
const EXEC_KEYS: &[&str] = &["command", "working_dir"];
const HTTP_KEYS: &[&str] = &[
    "host",
    "path",
    "scheme",
    "port",
    "num_port",
    "headers",
    "status_code",
];
const LOGGER_KEYS: &[&str] = &[
    "rotation",
    "fields_order",
    "disable_json",
    "timestamp_format",
    "no_color",
    "no_metadata",
    "add_timestamp",
    "flush_each_line",
];
const ROTATION_KEYS: &[&str] = &[
    "directory",
    "filename",
    "max_size_mb",
    "max_backups",
    "max_age_days",
    "compress",
];
const SHELL_KEYS: &[&str] = &[
    "shell_command",
    "shell_argument",
    "elevated_shell_command",
    "elevated_shell_argument",
];
const CONDITIONS: &[&str] = &[
    "process_started",
    "process_healthy",
    "process_completed",
    "process_completed_successfully",
    "process_log_ready",
];

/// process-compose's in-memory log lines per process (`log_length`), which tend's `tail` is.
const DEFAULT_LOG_LENGTH: i64 = 1000;
/// The most lines tend keeps in memory per instance.
const MAX_TAIL: i64 = 1_000_000;

/// Import a process-compose file, reading `.env` and env files beside it from the disk.
pub fn import(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Imported, Vec<Diagnostic>> {
    import_with(path, text, env, &read_from_disk)
}

/// [`import`] with the file reader given (tests pass one that never touches the disk).
pub fn import_with(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    read: ReadFile<'_>,
) -> Result<Imported, Vec<Diagnostic>> {
    let mut report = Report::new(path);
    let root = match document::parse(text, Format::Yaml) {
        Ok(root) => root,
        Err(errors) => {
            for e in errors {
                report.error(e.line.unwrap_or(1), "yaml", e.message);
            }
            return Err(report.errors);
        }
    };
    // yaml.v3 (process-compose's parser) honours YAML merge keys (`<<: *defaults`), a
    // common way to share settings between processes; tend's parser keeps `<<` as a key.
    let mut root = root;
    merge_keys(&mut root);
    if root.entries().is_none() {
        report.error(
            root.line,
            "yaml",
            format!("expected a mapping of settings, found {}", root.kind()),
        );
        return Err(report.errors);
    }
    let dir = path.parent().unwrap_or(Path::new("")).to_path_buf();
    let mut importer = Importer {
        report,
        env,
        read,
        dir,
        expand: true,
        dotenv: None,
        global_vars: BTreeMap::new(),
        global_env: Vec::new(),
        shell: Shell::default(),
        log_length: None,
    };
    let tree = importer.run(&root);
    if !importer.report.errors.is_empty() {
        return Err(importer.report.errors);
    }
    let mut warnings = importer.report.warnings;
    // In file order: this file's notes first, then those about files beside it.
    warnings
        .sort_by(|a, b| (a.file != path, &a.file, a.line).cmp(&(b.file != path, &b.file, b.line)));
    Ok(Imported {
        tree: tree.expect("a tree when there is no error"),
        warnings,
    })
}

/// How commands are run: process-compose's `shell` setting.
struct Shell {
    command: String,
    argument: String,
    /// Written in the file (and not a POSIX sh or bash, which tend can stand in for).
    custom: bool,
}

impl Default for Shell {
    fn default() -> Self {
        Shell {
            command: "bash".into(),
            argument: "-c".into(),
            custom: false,
        }
    }
}

impl Shell {
    fn is_sh(&self) -> bool {
        matches!(self.command.as_str(), "sh" | "/bin/sh" | "/usr/bin/sh") && self.argument == "-c"
    }
}

/// Where a string ends up in tend, which decides what its `${...}` and `{{...}}` become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `command`, `args`, `env` values, `cwd`: tend interpolates `${VAR}` and expands
    /// `{instance}` / `{port}`.
    Interp,
    /// Probe commands, URLs, addresses and headers: taken literally, placeholders expanded.
    Probe,
    /// Paths and other values tend takes literally, without placeholders.
    Literal,
}

/// One process as read in the first pass.
struct Proc {
    /// The process-compose name (a key under `processes`).
    source: String,
    /// The tend service name.
    name: String,
    line: usize,
    /// The process's settings, its `extends` merged in.
    node: Node,
    replicas: i64,
    daemon: bool,
    disabled: bool,
    has_probe: bool,
    has_log_line: bool,
    /// Something waits for it to complete: it becomes `kind = "task"`.
    task: bool,
    /// `.env` beside the file goes into its environment.
    dotenv: bool,
    /// `vars`, global then its own.
    vars: BTreeMap<String, Node>,
    deps: Vec<Dep>,
    /// No command to run: not imported.
    skipped: bool,
}

/// One resolved `depends_on` entry.
struct Dep {
    target: usize,
    condition: &'static str,
    line: usize,
}

struct Importer<'a> {
    report: Report,
    env: &'a dyn Fn(&str) -> Option<String>,
    read: ReadFile<'a>,
    dir: PathBuf,
    expand: bool,
    /// `.env` beside the file, as tend reads it: its path and values.
    dotenv: Option<(PathBuf, BTreeMap<String, String>)>,
    global_vars: BTreeMap<String, Node>,
    /// Global `environment` entries: key, value, line.
    global_env: Vec<(String, String, usize)>,
    shell: Shell,
    log_length: Option<(i64, usize)>,
}

impl Importer<'_> {
    fn run(&mut self, root: &Node) -> Option<Node> {
        if let Some(entry) = root.entry("disable_env_expansion") {
            self.expand = !self
                .boolean(&entry.value, "disable_env_expansion")
                .unwrap_or(false);
        }
        let dotenv_path = self.dir.join(".env");
        if let Some(text) = (self.read)(&dotenv_path) {
            self.check_env_file(&dotenv_path, &text);
            self.report.warn(
                1,
                ".env",
                format!(
                    "{} is loaded into every process as `env_file` (process-compose does the same); in tend its values override the environment tend runs in, in process-compose the environment wins",
                    dotenv_path.display()
                ),
            );
            self.dotenv = Some((dotenv_path, dotenv::tend_values(&text)));
        }

        for entry in root.entries().unwrap_or_default() {
            self.top_level(entry);
        }

        let Some(processes) = root.entry("processes") else {
            self.report
                .error(root.line, "processes", "no `processes`: nothing to import");
            return None;
        };
        let Some(list) = processes.value.entries() else {
            self.report.error(
                processes.line,
                "processes",
                format!(
                    "expected a mapping of processes, found {}",
                    processes.value.kind()
                ),
            );
            return None;
        };
        let mut procs = self.first_pass(list);
        self.dependencies(&mut procs);

        let mut services = tree::table(processes.line);
        for i in 0..procs.len() {
            if procs[i].skipped {
                continue;
            }
            if let Some(service) = self.service(&procs, i) {
                let p = &procs[i];
                tree::set(&mut services, &p.name, p.line, service);
            }
        }
        let mut root_out = tree::table(1);
        tree::set(&mut root_out, "services", processes.line, services);
        Some(root_out)
    }

    // ---- top level ----------------------------------------------------------------------

    fn top_level(&mut self, entry: &document::Entry) {
        let key = entry.key.as_str();
        let line = entry.line;
        let value = &entry.value;
        match key {
            // Informational in process-compose too.
            "version" | "processes" | "disable_env_expansion" => {}
            "vars" => match value.entries() {
                Some(entries) => {
                    for e in entries {
                        self.global_vars.insert(e.key.clone(), e.value.clone());
                    }
                }
                None if value.value == Value::Null => {}
                None => self.report.error(line, key, "expected a mapping of variables"),
            },
            "environment" => {
                self.global_env = self.env_entries(value, key);
            }
            "shell" => self.shell_setting(value, line),
            "log_length" => {
                if let Some(n) = self.int(value, key) {
                    self.log_length = Some((n, line));
                }
            }
            "ordered_shutdown" => {
                // tend always stops dependents before their dependencies, which is what
                // `ordered_shutdown: true` asks for.
                if self.boolean(value, key) == Some(false) {
                    self.report.warn(
                        line,
                        key,
                        "tend always stops in reverse dependency order; process-compose without ordered_shutdown stops everything at once",
                    );
                }
            }
            "name" => self.report.warn(line, key, "tend has no project name; not imported"),
            "log_location" => self.report.warn(
                line,
                key,
                "a unified log of every process has no tend equivalent: tend writes one log per service under state_dir/logs (`tend logs` shows them together); not imported",
            ),
            "log_configuration" => self.report.warn(
                line,
                key,
                "configures the unified log_location, which is not imported; set `[services.NAME.logs]` per service instead",
            ),
            "log_level" | "log_format" => self.report.warn(
                line,
                key,
                "process-compose's own log; tend's own log (state_dir/tend.log) has no level or format setting; not imported",
            ),
            "is_strict" => self.report.warn(
                line,
                key,
                "tend always rejects unknown keys and dependency mistakes; nothing to import",
            ),
            "is_tui_disabled" => self.report.warn(
                line,
                key,
                "tend has no TUI (`tend up` prints prefixed output in the foreground); not imported",
            ),
            "extends" => self.report.warn(
                line,
                key,
                "the project this file extends is not read: import it too and merge the services by hand",
            ),
            "env_cmds" => {
                for e in value.entries().unwrap_or_default() {
                    self.report.warn(
                        e.line,
                        &format!("env_cmds.{}", e.key),
                        format!(
                            "tend cannot set a variable from a command's output; set `{}` in the environment or an env file",
                            e.key
                        ),
                    );
                }
            }
            "mcp_server" => self.report.warn(line, key, "tend has no MCP server; not imported"),
            "file_names" | "env_file_names" | "dot_env_vars" => self.report.warn(
                line,
                key,
                "process-compose fills this itself at run time; ignored",
            ),
            _ if key.starts_with("x-") => self.report.warn(
                line,
                key,
                "an extension key (ignored by process-compose too); not imported",
            ),
            _ => self.report.warn(
                line,
                key,
                format!("unknown key{}; not imported", hint(key, TOP_KEYS)),
            ),
        }
    }

    fn shell_setting(&mut self, value: &Node, line: usize) {
        let Some(entries) = value.entries() else {
            self.report.error(line, "shell", "expected a mapping");
            return;
        };
        for e in entries {
            let key = format!("shell.{}", e.key);
            match e.key.as_str() {
                "shell_command" => {
                    if let Some(s) = self.plain_string(&e.value, &key) {
                        self.shell.command = s;
                    }
                }
                "shell_argument" => {
                    if let Some(s) = self.plain_string(&e.value, &key) {
                        self.shell.argument = s;
                    }
                }
                // Used only with is_elevated, which is reported where it is set.
                "elevated_shell_command" | "elevated_shell_argument" => {}
                other => self.report.warn(
                    e.line,
                    &key,
                    format!("unknown key{}; not imported", hint(other, SHELL_KEYS)),
                ),
            }
        }
        let known = [
            "bash",
            "/bin/bash",
            "/usr/bin/bash",
            "sh",
            "/bin/sh",
            "/usr/bin/sh",
        ];
        self.shell.custom =
            !(known.contains(&self.shell.command.as_str()) && self.shell.argument == "-c");
    }

    // ---- first pass: names, extends, facts other processes need -------------------------

    fn first_pass(&mut self, list: &[document::Entry]) -> Vec<Proc> {
        let mut names = Names::default();
        let by_source: HashMap<&str, &Node> =
            list.iter().map(|e| (e.key.as_str(), &e.value)).collect();
        let mut procs = Vec::new();
        for entry in list {
            let base = format!("processes.{}", entry.key);
            let node = match &entry.value.value {
                Value::Table(_) => {
                    self.resolve_extends(&entry.key, &entry.value, &by_source, &base)
                }
                Value::Null => tree::table(entry.value.line),
                _ => {
                    self.report.error(
                        entry.line,
                        &base,
                        format!(
                            "expected a mapping of settings, found {}",
                            entry.value.kind()
                        ),
                    );
                    continue;
                }
            };
            let (name, renamed) = names.assign(&entry.key);
            if renamed {
                self.report.warn(
                    entry.line,
                    &base,
                    format!(
                        "`{}` is not a valid tend service name (letters, digits, `_`, `.`, `-`, starting with a letter or digit, not `all`): imported as `{name}`",
                        entry.key
                    ),
                );
            }
            let replicas = match node.get("replicas") {
                Some(v) => self.int(v, &format!("{base}.replicas")).unwrap_or(1).max(1),
                None => 1,
            };
            let flag = |this: &mut Self, key: &str| {
                node.get(key)
                    .and_then(|v| this.boolean(v, &format!("{base}.{key}")))
                    .unwrap_or(false)
            };
            let daemon = flag(self, "is_daemon");
            let mut disabled = flag(self, "disabled");
            if let Some(v) = node.get("is_disabled")
                && let Some(s) = self.plain_string(v, &format!("{base}.is_disabled"))
            {
                // process-compose turns the text "true" / "false" into `disabled`.
                match s.as_str() {
                    "true" => disabled = true,
                    "false" => disabled = false,
                    _ => {}
                }
            }
            let dotenv = self.dotenv.is_some() && !flag(self, "is_dotenv_disabled");
            let mut vars = self.global_vars.clone();
            if let Some(own) = node.get("vars").and_then(Node::entries) {
                for e in own {
                    vars.insert(e.key.clone(), e.value.clone());
                }
            }
            let has_command = node.get("command").is_some_and(|c| {
                !matches!(&c.value, Value::Null) && c.value != Value::String(String::new())
            }) || node
                .get("entrypoint")
                .is_some_and(|e| matches!(&e.value, Value::Array(items) if !items.is_empty()));
            if !has_command {
                self.report.warn(
                    entry.line,
                    &base,
                    "no `command` or `entrypoint`: process-compose would start an empty shell; not imported",
                );
            }
            procs.push(Proc {
                source: entry.key.clone(),
                name,
                line: entry.line,
                replicas,
                daemon,
                disabled,
                has_probe: node.get("readiness_probe").is_some()
                    || node.get("liveness_probe").is_some(),
                has_log_line: node.get("ready_log_line").is_some(),
                task: false,
                dotenv,
                vars,
                deps: Vec::new(),
                skipped: !has_command,
                node,
            });
        }
        procs
    }

    /// A process with `extends: other` starts from the other's settings (resolved first)
    /// and overrides them: process-compose's merge, on the tree.
    fn resolve_extends(
        &mut self,
        name: &str,
        node: &Node,
        all: &HashMap<&str, &Node>,
        base: &str,
    ) -> Node {
        let mut chain = vec![name.to_string()];
        let mut current = node.clone();
        while let Some(parent_entry) = current.entry("extends").cloned() {
            let Value::String(parent) = &parent_entry.value.value else {
                self.report.error(
                    parent_entry.line,
                    &format!("{base}.extends"),
                    "expected a process name",
                );
                break;
            };
            if chain.contains(parent) {
                self.report.error(
                    parent_entry.line,
                    &format!("{base}.extends"),
                    format!("circular extends through `{parent}`"),
                );
                break;
            }
            let Some(parent_node) = all.get(parent.as_str()) else {
                self.report.error(
                    parent_entry.line,
                    &format!("{base}.extends"),
                    format!(
                        "extends unknown process `{parent}`{}",
                        hint(parent, &all.keys().copied().collect::<Vec<_>>())
                    ),
                );
                break;
            };
            chain.push(parent.clone());
            let mut merged = (*parent_node).clone();
            tree::remove(&mut merged, "extends");
            let mut child = current.clone();
            tree::remove(&mut child, "extends");
            merge_process(&mut merged, &child);
            // The parent's own `extends` is followed on the next round.
            if let Some(grand) = parent_node.entry("extends") {
                tree::set(&mut merged, "extends", grand.line, grand.value.clone());
            }
            current = merged;
        }
        current
    }

    // ---- dependencies -------------------------------------------------------------------

    fn dependencies(&mut self, procs: &mut [Proc]) {
        let mut targets: HashMap<String, (usize, bool)> = HashMap::new();
        for (i, p) in procs.iter().enumerate() {
            targets.insert(p.source.clone(), (i, false));
        }
        for (i, p) in procs.iter().enumerate() {
            if p.replicas > 1 {
                // process-compose names replicas `name-0` …, zero-padded to the width of
                // the count.
                let width = p.replicas.to_string().len();
                for r in 0..p.replicas {
                    targets
                        .entry(format!("{}-{:0width$}", p.source, r))
                        .or_insert((i, true));
                }
            }
        }
        for i in 0..procs.len() {
            let base = format!("processes.{}.depends_on", procs[i].source);
            let Some(deps) = procs[i].node.get("depends_on").cloned() else {
                continue;
            };
            let Some(entries) = deps.entries() else {
                if deps.value != Value::Null {
                    self.report.error(
                        deps.line,
                        &base,
                        "expected a mapping of process: { condition }",
                    );
                }
                continue;
            };
            let mut resolved: Vec<Dep> = Vec::new();
            for e in entries {
                let key = format!("{base}.{}", e.key);
                let condition = self.condition(&e.value, &key, e.line);
                let Some(&(target, replica)) = targets.get(e.key.as_str()) else {
                    let names: Vec<&str> = procs.iter().map(|p| p.source.as_str()).collect();
                    self.report.warn(
                        e.line,
                        &key,
                        format!(
                            "`{}` is not a process here{} (process-compose refuses to load this file); dependency dropped",
                            e.key,
                            hint(&e.key, &names)
                        ),
                    );
                    continue;
                };
                let Some(condition) = condition else { continue };
                if target == i {
                    self.report.warn(
                        e.line,
                        &key,
                        "a process cannot wait for itself; dependency dropped",
                    );
                    continue;
                }
                if procs[target].skipped {
                    self.report.warn(
                        e.line,
                        &key,
                        format!(
                            "`{}` is not imported (no command); dependency dropped",
                            e.key
                        ),
                    );
                    continue;
                }
                let condition = self.map_condition(procs, i, target, condition, e.line, &key);
                let earlier = resolved.iter().find(|d| d.target == target);
                if replica && earlier.is_none() {
                    self.report.warn(
                        e.line,
                        &key,
                        format!(
                            "`{}` is one replica of `{}`; tend waits for every instance of `{}` (other replicas named here add nothing)",
                            e.key, procs[target].source, procs[target].name
                        ),
                    );
                }
                if let Some(existing) = earlier {
                    if existing.condition != condition {
                        self.report.warn(
                            e.line,
                            &key,
                            format!(
                                "`{}` is already waited for as `{}`; this `{condition}` is dropped",
                                procs[target].name, existing.condition
                            ),
                        );
                    }
                    continue;
                }
                if matches!(condition, "completed") {
                    procs[target].task = true;
                }
                resolved.push(Dep {
                    target,
                    condition,
                    line: e.line,
                });
            }
            procs[i].deps = resolved;
        }
    }

    /// The process-compose condition of one `depends_on` entry.
    fn condition(&mut self, value: &Node, key: &str, line: usize) -> Option<&'static str> {
        let condition = match value.entries() {
            Some(entries) => {
                for e in entries {
                    if e.key != "condition" {
                        let why = if e.key.starts_with("x-") {
                            "an extension key (ignored by process-compose too)".to_string()
                        } else {
                            format!("unknown key{}", hint(&e.key, &["condition"]))
                        };
                        self.report.warn(
                            e.line,
                            &format!("{key}.{}", e.key),
                            format!("{why}; not imported"),
                        );
                    }
                }
                value.get("condition")
            }
            None if value.value == Value::Null => None,
            None => {
                self.report
                    .error(line, key, "expected a mapping with `condition`");
                return None;
            }
        };
        let Some(condition) = condition else {
            // The zero value of process-compose's condition type is process_completed.
            self.report.warn(
                line,
                key,
                "no condition: process-compose's default is `process_completed` (its documentation says process_started); imported as that",
            );
            return Some("process_completed");
        };
        let text = self.plain_string(condition, &format!("{key}.condition"))?;
        match CONDITIONS.iter().find(|c| **c == text) {
            Some(c) => Some(c),
            None => {
                self.report.error(
                    condition.line,
                    &format!("{key}.condition"),
                    format!("invalid condition `{text}`{}", hint(&text, CONDITIONS)),
                );
                None
            }
        }
    }

    /// tend's condition for process-compose's `condition` on `target`.
    fn map_condition(
        &mut self,
        procs: &[Proc],
        from: usize,
        target: usize,
        condition: &str,
        line: usize,
        key: &str,
    ) -> &'static str {
        let t = &procs[target];
        if t.disabled && !procs[from].disabled {
            self.report.warn(
                line,
                key,
                format!(
                    "`{}` is disabled (autostart = false); tend starts it when a dependent starts, process-compose does not",
                    t.source
                ),
            );
        }
        if t.daemon && matches!(condition, "process_healthy" | "process_log_ready") {
            self.report.warn(
                line,
                key,
                format!(
                    "`{}` is a daemon, imported as a task that launches it: waiting for its launch to complete instead",
                    t.source
                ),
            );
            return "completed";
        }
        match condition {
            "process_started" => "started",
            "process_healthy" => {
                if !t.has_probe && !t.has_log_line {
                    self.report.warn(
                        line,
                        key,
                        format!(
                            "`{}` has no probe: process-compose refuses to start this process; tend counts it healthy once it has run for min_uptime",
                            t.source
                        ),
                    );
                }
                "healthy"
            }
            "process_log_ready" => {
                if !t.has_log_line {
                    self.report.warn(
                        line,
                        key,
                        format!("`{}` has no ready_log_line (process-compose refuses this file); waiting for it to be healthy", t.source),
                    );
                }
                "healthy"
            }
            "process_completed_successfully" => "completed",
            _ => {
                self.report.warn(
                    line,
                    key,
                    format!(
                        "tend's `completed` waits for a successful exit (an exit code in `exit_codes`); process-compose's process_completed also accepted a failure. `{}` becomes a task",
                        t.source
                    ),
                );
                "completed"
            }
        }
    }

    // ---- one service --------------------------------------------------------------------

    fn service(&mut self, procs: &[Proc], i: usize) -> Option<Node> {
        let p = &procs[i];
        let n = &p.node;
        let base = format!("processes.{}", p.source);
        let at = |k: &str| format!("{base}.{k}");
        let line = p.line;

        // Keys with nothing to translate, or handled in their own place below.
        for e in n.entries().unwrap_or_default() {
            self.process_key(p, e, &base);
        }

        let mut svc = tree::table(line);

        // Program.
        let program = self.program(p, &base)?;
        for (key, key_line, value) in program {
            tree::set(&mut svc, key, key_line, value);
        }

        // Working directory.
        let mut cwd_literal: Option<String> = None;
        if let Some(wd) = n.entry("working_dir") {
            let text = self.text(p, &wd.value, &at("working_dir"), Mode::Interp, true);
            if let Some(text) = text.filter(|t| !t.is_empty()) {
                tree::set(&mut svc, "cwd", wd.line, tree::string(wd.value.line, text));
            }
            // The same text taken literally, to place the env_file: its notes were just given.
            cwd_literal = self
                .quietly(|this| this.text(p, &wd.value, &at("working_dir"), Mode::Literal, true));
        }

        // Environment files: `.env` beside the file, then the process's own.
        let mut env_files = Vec::new();
        if p.dotenv {
            env_files.push(tree::string(line, ".env"));
        }
        if let Some(ef) = n.entry("env_file")
            && let Some(file) = self.text(p, &ef.value, &at("env_file"), Mode::Literal, false)
            && !file.is_empty()
        {
            // process-compose reads it relative to the process's working_dir; tend
            // relative to the manifest.
            let path = match cwd_literal.as_deref().filter(|d| !d.is_empty()) {
                Some(dir) if !file.starts_with('/') => {
                    format!("{}/{}", dir.trim_end_matches('/'), file)
                }
                _ => file,
            };
            match (self.read)(&self.dir.join(&path)) {
                    Some(text) => {
                        self.check_env_file(&self.dir.join(&path), &text);
                        let keys = dotenv::tend_values(&text);
                        for (k, _, gline) in &self.global_env {
                            if keys.contains_key(k) {
                                self.report.warn(
                                    *gline,
                                    &format!("environment.{k}"),
                                    format!("`{k}` is also in {path}: process-compose lets the env_file win over the global environment, tend's `env` wins over every env_file"),
                                );
                            }
                        }
                    }
                    None => self.report.warn(
                        ef.line,
                        &at("env_file"),
                        format!("{path} cannot be read (process-compose refuses to load a project without it; so will tend)"),
                    ),
                }
            env_files.push(tree::string(ef.value.line, path));
        }
        if !env_files.is_empty() {
            let l = env_files[0].line;
            tree::set(&mut svc, "env_file", l, tree::array(l, env_files));
        }

        // Environment: global entries, then the process's own over them.
        let mut env: Vec<(String, String, usize)> = Vec::new();
        for (k, raw, l) in self.global_env.clone() {
            if let Some(v) =
                self.text_str(p, &raw, l, &format!("environment.{k}"), Mode::Interp, false)
            {
                upsert(&mut env, k, v, l);
            }
        }
        if let Some(e) = n.entry("environment") {
            for (k, raw, l) in self.env_entries(&e.value, &at("environment")) {
                let key = format!("{}.{k}", at("environment"));
                if let Some(v) = self.text_str(p, &raw, l, &key, Mode::Interp, true) {
                    upsert(&mut env, k, v, l);
                }
            }
        }
        // process-compose gives every process these two; add them where they can matter.
        let mentions = |needle: &str| {
            strings_of(n)
                .iter()
                .any(|s| mentions_outside_templates(s, needle))
        };
        if (p.replicas > 1 || mentions("PC_REPLICA_NUM"))
            && !env.iter().any(|(k, ..)| k == "PC_REPLICA_NUM")
        {
            let v = if p.replicas > 1 { "{instance}" } else { "0" };
            env.push(("PC_REPLICA_NUM".into(), v.into(), line));
        }
        if mentions("PC_PROC_NAME") && !env.iter().any(|(k, ..)| k == "PC_PROC_NAME") {
            env.push(("PC_PROC_NAME".into(), tree::tend_literal(&p.source), line));
        }
        if !env.is_empty() {
            let mut table = tree::table(env[0].2);
            for (k, v, l) in env {
                tree::set(&mut table, &k, l, tree::string(l, v));
            }
            let l = table.line;
            tree::set(&mut svc, "env", l, table);
        }

        // Kind and start.
        let schedule = self.schedule(n, &base);
        if p.task || p.daemon || schedule.is_some() {
            tree::set(&mut svc, "kind", line, tree::string(line, "task"));
        }
        let foreground = n
            .get("is_foreground")
            .and_then(|v| self.boolean(v, &at("is_foreground")))
            .unwrap_or(false);
        if p.disabled || foreground {
            let l = n
                .entry("disabled")
                .or_else(|| n.entry("is_disabled"))
                .or_else(|| n.entry("is_foreground"))
                .map_or(line, |e| e.line);
            tree::set(&mut svc, "autostart", l, tree::boolean(l, false));
        } else if let Some((_, Some(l))) = &schedule {
            // `run_on_start`: a scheduled task otherwise waits for its first time.
            tree::set(&mut svc, "autostart", *l, tree::boolean(*l, true));
        }
        if let Some((cron, _)) = schedule {
            let l = cron.line;
            tree::set(&mut svc, "schedule", l, cron);
        }
        if p.replicas > 1 {
            let l = n.entry("replicas").map_or(line, |e| e.line);
            tree::set(&mut svc, "instances", l, tree::integer(l, p.replicas));
        }

        // Probes first: an http probe on a per-replica port needs `port_base`, which goes
        // before the restart settings.
        let mut port_base: Option<(i64, usize)> = None;
        let readiness = self.readiness(p, &base, &mut port_base);
        let liveness = n.entry("liveness_probe").and_then(|e| {
            if !p.daemon {
                self.report.warn(
                    e.line,
                    &at("liveness_probe"),
                    "process-compose acts on a liveness probe only for an is_daemon process; tend restarts this process when it fails",
                );
            }
            self.probe(p, &e.value, &at("liveness_probe"), &mut port_base)
        });
        if let Some((port, l)) = port_base {
            tree::set(&mut svc, "port_base", l, tree::integer(l, port));
        }

        self.availability(p, &base, &mut svc);
        self.exit_codes(p, &base, &mut svc);
        self.shutdown(p, &base, &mut svc);

        if !p.deps.is_empty() {
            let l = n.entry("depends_on").map_or(line, |e| e.line);
            let mut deps = tree::table(l);
            for d in &p.deps {
                tree::set(
                    &mut deps,
                    &procs[d.target].name,
                    d.line,
                    tree::string(d.line, d.condition),
                );
            }
            tree::set(&mut svc, "depends_on", l, deps);
        }

        if let Some(ns) = n.entry("namespace") {
            let groups = self.groups(procs, &ns.value, &at("namespace"));
            if !groups.is_empty() {
                let items = groups
                    .into_iter()
                    .map(|g| tree::string(ns.value.line, g))
                    .collect();
                tree::set(
                    &mut svc,
                    "groups",
                    ns.line,
                    tree::array(ns.value.line, items),
                );
            }
        }

        self.logs(p, &base, &mut svc);
        self.watch(p, &base, cwd_literal.as_deref(), &mut svc);

        if let Some(r) = readiness {
            let l = r.line;
            tree::set(&mut svc, "readiness", l, r);
        }
        if let Some(r) = liveness {
            let l = r.line;
            tree::set(&mut svc, "liveness", l, r);
        }
        Some(svc)
    }

    /// `schedule`: its cron (an `interval` that divides an hour or a day becomes one), and
    /// the line of `run_on_start: true`. None when nothing tend can run is scheduled.
    fn schedule(&mut self, n: &Node, base: &str) -> Option<(Node, Option<usize>)> {
        let entry = n.entry("schedule")?;
        let key = format!("{base}.schedule");
        let at = |k: &str| format!("{key}.{k}");
        let Some(entries) = entry.value.entries() else {
            if entry.value.value != Value::Null {
                self.report.error(
                    entry.line,
                    &key,
                    format!("expected a table, found {}", entry.value.kind()),
                );
            }
            return None;
        };
        let mut cron: Option<(String, usize)> = None;
        let mut interval: Option<(String, usize)> = None;
        let mut run_on_start = None;
        for e in entries {
            match e.key.as_str() {
                "cron" => {
                    cron = self
                        .plain_string(&e.value, &at("cron"))
                        .map(|c| (c, e.line))
                }
                "interval" => {
                    interval = self
                        .plain_string(&e.value, &at("interval"))
                        .map(|i| (i, e.line))
                }
                "run_on_start" => {
                    if self.boolean(&e.value, &at("run_on_start")) == Some(true) {
                        run_on_start = Some(e.line);
                    }
                }
                "timezone" => {
                    let zone = self
                        .plain_string(&e.value, &at("timezone"))
                        .unwrap_or_default();
                    if !zone.is_empty() && zone != "Local" {
                        self.report.warn(
                            e.line,
                            &at("timezone"),
                            format!("tend reads cron expressions in its own local time; to have them in {zone}, run tend with TZ={zone}"),
                        );
                    }
                }
                "max_concurrent" => {
                    if let Some(n) = self.int(&e.value, &at("max_concurrent"))
                        && n > 1
                    {
                        self.report.warn(
                            e.line,
                            &at("max_concurrent"),
                            format!("tend runs one run at a time and skips a time that comes while the last run goes on; {n} concurrent runs are not imported"),
                        );
                    }
                }
                other => self.report.warn(
                    e.line,
                    &at(other),
                    format!(
                        "unknown key{} (process-compose refuses it); not imported",
                        hint(
                            other,
                            &[
                                "cron",
                                "interval",
                                "timezone",
                                "run_on_start",
                                "max_concurrent"
                            ]
                        )
                    ),
                ),
            }
        }
        let (text, line) = match (cron, interval) {
            (Some((cron, line)), interval) => {
                if let Some((_, l)) = interval {
                    self.report.warn(
                        l,
                        &at("interval"),
                        "ignored: `cron` is set, and process-compose uses it",
                    );
                }
                (cron, line)
            }
            (None, Some((interval, line))) => match interval_as_cron(&interval) {
                Some(cron) => {
                    self.report.warn(
                        line,
                        &at("interval"),
                        format!("imported as `schedule = \"{cron}\"`: runs at those clock times, where process-compose counts the interval from its start"),
                    );
                    (cron, line)
                }
                None => {
                    self.report.warn(
                        line,
                        &at("interval"),
                        format!("`{interval}` is no whole number of minutes or hours that divides an hour or a day, which is what a cron schedule can say; not imported"),
                    );
                    return None;
                }
            },
            (None, None) => return None,
        };
        if let Err(why) = crate::config::cron::Cron::parse(&text) {
            self.report
                .warn(line, &at("cron"), format!("`{text}`: {why}; not imported"));
            return None;
        }
        Some((tree::string(line, text), run_on_start))
    }

    /// `watch`: each path (relative to the working_dir) with its `include` globs, its
    /// `exclude` globs and process-compose's default excludes as `watch_ignore`.
    fn watch(&mut self, p: &Proc, base: &str, cwd: Option<&str>, svc: &mut Node) {
        let Some(entry) = p.node.entry("watch") else {
            return;
        };
        let key = format!("{base}.watch");
        let at = |k: &str| format!("{key}.{k}");
        let Some(entries) = entry.value.entries() else {
            if entry.value.value != Value::Null {
                self.report.error(
                    entry.line,
                    &key,
                    format!("expected a table, found {}", entry.value.kind()),
                );
            }
            return;
        };
        let line = entry.line;
        let root_of = |path: &str| -> String {
            let path = path.trim_start_matches("./");
            let dir = cwd.map(|d| d.trim_start_matches("./").trim_end_matches('/'));
            let joined = match dir.filter(|d| !d.is_empty() && *d != ".") {
                Some(dir) if !path.starts_with('/') => {
                    format!("{}/{}", dir.trim_end_matches('/'), path)
                }
                _ => path.to_string(),
            };
            let joined = joined.trim_end_matches('/').to_string();
            if joined.is_empty() || joined == "." {
                ".".into()
            } else {
                joined
            }
        };
        // A pattern with `/` is relative to its root; one without matches a name anywhere.
        let under = |root: &str, pattern: &str| -> String {
            let pattern = pattern.trim_start_matches("./");
            let tail = if pattern.contains('/') {
                pattern.to_string()
            } else {
                format!("**/{pattern}")
            };
            if root == "." {
                tail
            } else {
                format!("{root}/{tail}")
            }
        };
        let mut watch = Vec::new();
        let mut ignore = Vec::new();
        let mut defaults = true;
        let mut debounce: Option<(String, usize)> = None;
        for e in entries {
            match e.key.as_str() {
                "paths" => {
                    let Value::Array(items) = &e.value.value else {
                        self.report.error(e.line, &at("paths"), "expected a list of paths");
                        continue;
                    };
                    for (i, item) in items.iter().enumerate() {
                        let item_key = format!("{}[{i}]", at("paths"));
                        let (path, include, exclude) = match &item.value {
                            Value::String(_) => (Some(item), None, None),
                            Value::Table(_) => (
                                item.get("path"),
                                item.get("include"),
                                item.get("exclude"),
                            ),
                            _ => {
                                self.report.error(item.line, &item_key, "expected a table with `path`");
                                continue;
                            }
                        };
                        let Some(path) = path.and_then(|n| self.text(p, n, &item_key, Mode::Literal, true)) else {
                            self.report.error(item.line, &item_key, "a watched path needs `path`");
                            continue;
                        };
                        let root = root_of(&path);
                        let globs = |this: &mut Self, node: Option<&Node>, k: &str| -> Vec<String> {
                            let Some(node) = node else { return Vec::new() };
                            match &node.value {
                                Value::Array(list) => list
                                    .iter()
                                    .filter_map(|g| this.plain_string(g, &format!("{item_key}.{k}")))
                                    .collect(),
                                _ => {
                                    this.report.error(node.line, &format!("{item_key}.{k}"), "expected a list of globs");
                                    Vec::new()
                                }
                            }
                        };
                        let includes = globs(self, include, "include");
                        if includes.is_empty() {
                            watch.push(tree::string(item.line, root.clone()));
                        } else {
                            for glob in includes {
                                watch.push(tree::string(item.line, under(&root, &glob)));
                            }
                        }
                        for glob in globs(self, exclude, "exclude") {
                            ignore.push(tree::string(item.line, under(&root, &glob)));
                        }
                    }
                }
                "debounce" => {
                    debounce = self.plain_string(&e.value, &at("debounce")).map(|d| (d, e.line));
                }
                "disable_default_excludes" => {
                    defaults = self.boolean(&e.value, &at("disable_default_excludes")) != Some(true);
                }
                "cascade" => {
                    if self.boolean(&e.value, &at("cascade")) == Some(true) {
                        self.report.warn(
                            e.line,
                            &at("cascade"),
                            "tend restarts only this process on a change; its dependents follow with `depends_on = { NAME = { condition = \"healthy\", on_unready = \"restart\" } }`; not imported",
                        );
                    }
                }
                "max_entries" | "buffer_size" => self.report.warn(
                    e.line,
                    &at(&e.key),
                    "a limit of process-compose's watcher; tend's is inotify's own (fs.inotify.max_user_watches); not imported",
                ),
                other => self.report.warn(
                    e.line,
                    &at(other),
                    format!("unknown key{} (process-compose refuses it); not imported", hint(other, &["paths", "debounce", "cascade", "max_entries", "buffer_size", "disable_default_excludes"])),
                ),
            }
        }
        if watch.is_empty() {
            return;
        }
        if defaults {
            for name in PC_WATCH_IGNORED_DIRS.iter().chain(PC_WATCH_IGNORED_FILES) {
                ignore.push(tree::string(line, format!("**/{name}")));
            }
        }
        tree::set(svc, "watch", line, tree::array(line, watch));
        if !ignore.is_empty() {
            tree::set(svc, "watch_ignore", line, tree::array(line, ignore));
        }
        let (text, l) = debounce.unwrap_or_else(|| ("300ms".into(), line));
        if crate::config::duration::parse(&text).is_ok() {
            tree::set(svc, "watch_debounce", l, tree::string(l, text));
        } else {
            self.report.warn(
                l,
                &at("debounce"),
                format!("`{text}` is not a duration tend reads (ms, s, m, h); tend's default, 500ms, applies"),
            );
        }
    }

    /// Report a process key that has no tend equivalent; translated keys pass silently.
    fn process_key(&mut self, p: &Proc, e: &document::Entry, base: &str) {
        let key = format!("{base}.{}", e.key);
        let truthy = |this: &mut Self| this.boolean(&e.value, &key).unwrap_or(false);
        let message: Option<String> = match e.key.as_str() {
            "command" | "entrypoint" | "working_dir" | "environment" | "env_file" | "availability"
            | "depends_on" | "readiness_probe" | "liveness_probe" | "ready_log_line" | "shutdown"
            | "namespace" | "replicas" | "disabled" | "is_disabled" | "vars"
            | "is_dotenv_disabled" | "is_template_disabled" | "success_exit_codes"
            | "log_location" | "log_configuration" | "is_foreground" | "extends" => None,
            "description" => Some("tend has no description field; not imported".into()),
            "is_daemon" if p.daemon => Some(
                "tend supervises processes that stay in the foreground: imported as a task that runs the launcher once; the daemon it forks is not watched, restarted or stopped by tend. Run the program in the foreground instead (e.g. `postgres -D DIR` rather than `pg_ctl start`)".into(),
            ),
            "is_elevated" if truthy(self) => Some(
                "process-compose runs it through sudo; tend runs commands as `user` (when tend is root) and never elevates; not imported".into(),
            ),
            "is_tty" | "is_interactive" if truthy(self) => Some(
                "tend gives processes /dev/null as stdin and pipes as output, never a terminal; not imported".into(),
            ),
            "disable_ansi_colors" if truthy(self) => Some(
                "tend writes output as the process wrote it, colour codes included; not imported".into(),
            ),
            "truncate_log" if truthy(self) => {
                Some("tend appends to log files and rotates them; it does not truncate at start; not imported".into())
            }
            "launch_timeout_seconds" => Some(if p.daemon {
                "tend does not follow daemons (see is_daemon); not imported".into()
            } else {
                "applies to is_daemon processes only; not imported".into()
            }),
            // Translated in `schedule` and `watch`.
            "schedule" | "watch" => None,
            "mcp" => Some("tend has no MCP server; not imported".into()),
            "monitor_for" | "monitor_silence_threshold" => {
                Some("tend does not watch output for activity or silence; not imported".into())
            }
            "is_daemon" | "is_elevated" | "is_tty" | "is_interactive" | "disable_ansi_colors"
            | "truncate_log" => None,
            "name" | "original_config" | "replica_num" | "replica_name" | "executable" | "args" => {
                Some("process-compose sets this itself; the value written is not used".into())
            }
            k if k.starts_with("x-") => Some("an extension key (ignored by process-compose too); not imported".into()),
            k => Some(format!(
                "unknown key{} (process-compose refuses it); not imported",
                hint(k, PROCESS_KEYS)
            )),
        };
        if let Some(message) = message {
            self.report.warn(e.line, &key, message);
        }
    }

    /// `command` (or `args`) and `shell`, from `command` or `entrypoint`.
    fn program(&mut self, p: &Proc, base: &str) -> Option<Vec<(&'static str, usize, Node)>> {
        let n = &p.node;
        let command = n.entry("command").filter(|e| {
            !matches!(&e.value.value, Value::Null) && e.value.value != Value::String(String::new())
        });
        let template_disabled = n
            .get("is_template_disabled")
            .and_then(|v| self.boolean(v, &format!("{base}.is_template_disabled")))
            .unwrap_or(false);
        if let Some(cmd) = command {
            let key = format!("{base}.command");
            let raw = match &cmd.value.value {
                Value::String(s) => s.clone(),
                _ => {
                    self.report.error(
                        cmd.line,
                        &key,
                        format!("expected a string, found {}", cmd.value.kind()),
                    );
                    return None;
                }
            };
            let rendered = self.text(p, &cmd.value, &key, Mode::Interp, !template_disabled)?;
            if let Some(e) = n.entry("entrypoint") {
                self.report.warn(
                    e.line,
                    &format!("{base}.entrypoint"),
                    "`command` is set, so process-compose ignores `entrypoint`; not imported",
                );
            }
            let l = cmd.value.line;
            // A custom shell is used as it is; under sh there is nothing to keep bash for.
            let bash = if self.shell.custom || self.shell.is_sh() {
                None
            } else {
                shell::bash_only(&raw)
            };
            if self.shell.custom || bash.is_some() {
                if let Some(what) = bash {
                    self.report.warn(
                        cmd.line,
                        &key,
                        format!(
                            "uses bash syntax ({what}); kept on bash as in process-compose (`args = [\"bash\", \"-c\", ...]`) since tend's `shell = true` is /bin/sh"
                        ),
                    );
                }
                let args = vec![
                    tree::string(l, tree::tend_literal(&self.shell.command)),
                    tree::string(l, tree::tend_literal(&self.shell.argument)),
                    tree::string(l, rendered),
                ];
                return Some(vec![("args", cmd.line, tree::array(l, args))]);
            }
            return Some(vec![
                ("command", cmd.line, tree::string(l, rendered)),
                ("shell", cmd.line, tree::boolean(l, true)),
            ]);
        }
        let entry = n.entry("entrypoint")?;
        let key = format!("{base}.entrypoint");
        let Value::Array(items) = &entry.value.value else {
            self.report
                .error(entry.line, &key, "expected a list of strings");
            return None;
        };
        let mut args = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let v = self.text(p, item, &format!("{key}[{i}]"), Mode::Interp, false)?;
            args.push(tree::string(item.line, v));
        }
        Some(vec![(
            "args",
            entry.line,
            tree::array(entry.value.line, args),
        )])
    }

    fn availability(&mut self, p: &Proc, base: &str, svc: &mut Node) {
        let n = &p.node;
        let Some(av) = n.entry("availability") else {
            if !p.task && !p.daemon {
                // process-compose's default is not to restart; tend's is to restart a
                // service always.
                tree::set(svc, "restart", p.line, tree::string(p.line, "never"));
            }
            return;
        };
        let key = format!("{base}.availability");
        let Some(entries) = av.value.entries() else {
            if av.value.value != Value::Null {
                self.report.error(av.line, &key, "expected a mapping");
            }
            if !p.task && !p.daemon {
                tree::set(svc, "restart", p.line, tree::string(p.line, "never"));
            }
            return;
        };
        for e in entries {
            if !AVAILABILITY_KEYS.contains(&e.key.as_str()) {
                self.report.warn(
                    e.line,
                    &format!("{key}.{}", e.key),
                    format!(
                        "unknown key{}; not imported",
                        hint(&e.key, AVAILABILITY_KEYS)
                    ),
                );
            }
        }
        let restart_entry = av.value.entry("restart");
        let restart = match restart_entry {
            Some(r) => match self.plain_string(&r.value, &format!("{key}.restart")) {
                Some(s)
                    if ["no", "always", "on_failure", "exit_on_failure"].contains(&s.as_str()) =>
                {
                    s
                }
                Some(s) => {
                    self.report.error(
                        r.value.line,
                        &format!("{key}.restart"),
                        format!(
                            "invalid restart policy `{s}`{}",
                            hint(&s, &["no", "always", "on_failure", "exit_on_failure"])
                        ),
                    );
                    return;
                }
                None => return,
            },
            None => "no".to_string(),
        };
        let rline = restart_entry.map_or(av.line, |e| e.line);
        let restarts = matches!(restart.as_str(), "always" | "on_failure");
        if p.daemon {
            if restarts {
                self.report.warn(
                    rline,
                    &format!("{key}.restart"),
                    "the policy applies to the daemon, which tend cannot see (see is_daemon); the task that launches it is not restarted",
                );
            }
        } else {
            let tend_restart = match restart.as_str() {
                "always" => "always",
                "on_failure" | "exit_on_failure" => "on-failure",
                _ => "never",
            };
            // A task's default is already `never`.
            if !(p.task && tend_restart == "never") {
                tree::set(svc, "restart", rline, tree::string(rline, tend_restart));
            }
        }

        if let Some(b) = av.value.entry("backoff_seconds") {
            let bkey = format!("{key}.backoff_seconds");
            if let Some(secs) = self.int(&b.value, &bkey) {
                if restarts && !p.daemon {
                    // process-compose waits the same time before every restart (at least
                    // 1 s); tend's backoff with factor 1 and no jitter is that.
                    let mut backoff = tree::table(b.line);
                    tree::set(
                        &mut backoff,
                        "initial",
                        b.line,
                        tree::string(b.line, tree::seconds(secs.max(1))),
                    );
                    tree::set(&mut backoff, "factor", b.line, tree::float(b.line, 1.0));
                    tree::set(&mut backoff, "jitter", b.line, tree::float(b.line, 0.0));
                    tree::set(svc, "backoff", b.line, backoff);
                } else {
                    self.report.warn(
                        b.line,
                        &bkey,
                        "no effect without `restart: always` or `on_failure`; not imported",
                    );
                }
            }
        }
        if let Some(m) = av.value.entry("max_restarts") {
            let mkey = format!("{key}.max_restarts");
            if let Some(max) = self.int(&m.value, &mkey) {
                if !restarts || p.daemon {
                    if max != 0 {
                        self.report.warn(
                            m.line,
                            &mkey,
                            "no effect without `restart: always` or `on_failure`; not imported",
                        );
                    }
                } else if max <= 0 {
                    self.report.warn(
                        m.line,
                        &mkey,
                        "0 is unlimited in process-compose; tend always has a limit: it gives up (fatal) after max_restarts (10) restarts within restart_window (60s)",
                    );
                } else {
                    tree::set(svc, "max_restarts", m.line, tree::integer(m.line, max));
                    self.report.warn(
                        m.line,
                        &mkey,
                        "process-compose counts restarts over the process's whole life; tend counts them within restart_window (60s), so a rarely failing process is not given up",
                    );
                }
            }
        }
        if restart == "exit_on_failure" && !p.daemon {
            // The first failure goes fatal, and a critical service going fatal stops
            // everything: process-compose's "shut the project down on failure".
            tree::set(svc, "max_restarts", rline, tree::integer(rline, 0));
            tree::set(svc, "critical", rline, tree::boolean(rline, true));
            self.report.warn(
                rline,
                &format!("{key}.restart"),
                "imported as `restart = \"on-failure\"`, `max_restarts = 0`, `critical = true`: a failure stops everything, but tend exits 1 rather than with the process's exit code",
            );
        }
        for flag in ["exit_on_end", "exit_on_skipped"] {
            if let Some(e) = av.value.entry(flag) {
                let fkey = format!("{key}.{flag}");
                if self.boolean(&e.value, &fkey) == Some(true) {
                    let why = if flag == "exit_on_end" {
                        "tend does not stop everything when a process ends (only `critical` services going fatal do)"
                    } else {
                        "tend has no skipped state"
                    };
                    self.report
                        .warn(e.line, &fkey, format!("{why}; not imported"));
                }
            }
        }
    }

    fn exit_codes(&mut self, p: &Proc, base: &str, svc: &mut Node) {
        let Some(e) = p.node.entry("success_exit_codes") else {
            return;
        };
        let key = format!("{base}.success_exit_codes");
        let Value::Array(items) = &e.value.value else {
            self.report
                .error(e.line, &key, "expected a list of exit codes");
            return;
        };
        // 0 always counts as success in process-compose; tend's list replaces its default.
        let mut codes = vec![0];
        for item in items {
            match self.int(item, &key) {
                Some(c) if (0..=255).contains(&c) && !codes.contains(&c) => {
                    codes.push(c);
                }
                Some(c) => {
                    self.report
                        .error(item.line, &key, format!("exit code {c} is not in 0-255"))
                }
                None => {}
            }
        }
        let nodes = codes
            .into_iter()
            .map(|c| tree::integer(e.value.line, c))
            .collect();
        tree::set(svc, "exit_codes", e.line, tree::array(e.value.line, nodes));
    }

    fn shutdown(&mut self, p: &Proc, base: &str, svc: &mut Node) {
        let Some(sd) = p.node.entry("shutdown") else {
            return;
        };
        let key = format!("{base}.shutdown");
        let Some(entries) = sd.value.entries() else {
            if sd.value.value != Value::Null {
                self.report.error(sd.line, &key, "expected a mapping");
            }
            return;
        };
        for e in entries {
            let k = format!("{key}.{}", e.key);
            match e.key.as_str() {
                "signal" => {
                    if let Some(sig) = self.int(&e.value, &k)
                        && sig != 0 && sig != 15 {
                            let value = match signal_name(sig) {
                                Some(name) => tree::string(e.value.line, name),
                                None => tree::integer(e.value.line, sig),
                            };
                            tree::set(svc, "stop_signal", e.line, value);
                        }
                }
                "timeout_seconds" => {
                    if let Some(t) = self.int(&e.value, &k) {
                        if t > 0 {
                            tree::set(svc, "stop_timeout", e.line, tree::string(e.value.line, tree::seconds(t)));
                        } else {
                            self.report.warn(
                                e.line,
                                &k,
                                "without a timeout process-compose never sends SIGKILL; tend sends it after stop_timeout (10s)",
                            );
                        }
                    }
                }
                "command" => self.report.warn(
                    e.line,
                    &k,
                    "tend has no stop command: it sends stop_signal to the process tree, then SIGKILL after stop_timeout; not imported",
                ),
                "parent_only" => {
                    if self.boolean(&e.value, &k) == Some(true) {
                        self.report.warn(
                            e.line,
                            &k,
                            "tend always signals the whole process tree, not the main process only; not imported",
                        );
                    }
                }
                "send_keys" => self.report.warn(e.line, &k, "tend processes have no terminal to type into; not imported"),
                other => self.report.warn(e.line, &k, format!("unknown key{}; not imported", hint(other, SHUTDOWN_KEYS))),
            }
        }
    }

    fn groups(&mut self, procs: &[Proc], value: &Node, key: &str) -> Vec<String> {
        let raw: Vec<(String, usize)> = match &value.value {
            Value::String(s) if !s.is_empty() => vec![(s.clone(), value.line)],
            Value::String(_) | Value::Null => vec![],
            Value::Array(items) => items
                .iter()
                .filter_map(|i| match &i.value {
                    Value::String(s) => Some((s.clone(), i.line)),
                    _ => {
                        self.report.error(
                            i.line,
                            key,
                            "namespace must be a string or a list of strings",
                        );
                        None
                    }
                })
                .collect(),
            _ => {
                self.report.error(
                    value.line,
                    key,
                    "namespace must be a string or a list of strings",
                );
                return vec![];
            }
        };
        let services: Vec<&str> = procs.iter().map(|p| p.name.as_str()).collect();
        let mut out = Vec::new();
        for (ns, line) in raw {
            let mut names = Names::default();
            for s in &services {
                names.reserve(s);
            }
            let group = if tree::is_tend_name(&ns) && !names.is_taken(&ns) {
                ns.clone()
            } else {
                let (mut g, _) = names.assign(&ns);
                if services.contains(&ns.as_str()) || g != ns {
                    // A group may not share a service's name.
                    if services.contains(&g.as_str()) {
                        g = format!("{g}-group");
                    }
                }
                self.report.warn(
                    line,
                    key,
                    format!("namespace `{ns}` is not a valid tend group name or is a service's name: imported as group `{g}`"),
                );
                g
            };
            if !out.contains(&group) {
                out.push(group);
            }
        }
        out
    }

    fn logs(&mut self, p: &Proc, base: &str, svc: &mut Node) {
        let n = &p.node;
        let mut logs = tree::table(p.line);
        let location = n.entry("log_location");
        let mut has_file = false;
        if let Some(loc) = location {
            let key = format!("{base}.log_location");
            if p.replicas > 1 {
                self.report.warn(
                    loc.line,
                    &key,
                    "tend cannot give each instance its own custom log file (process-compose appends the replica number); the instances keep tend's per-instance files under state_dir/logs",
                );
            } else if let Some(path) = self.text(p, &loc.value, &key, Mode::Literal, true)
                && !path.is_empty()
            {
                // process-compose writes stdout and stderr to the one file.
                let path = path.replace("{PC_REPLICA_NUM}", "0");
                tree::set(
                    &mut logs,
                    "stdout",
                    loc.line,
                    tree::string(loc.value.line, path),
                );
                tree::set(
                    &mut logs,
                    "merge",
                    loc.line,
                    tree::boolean(loc.value.line, true),
                );
                has_file = true;
            }
        }
        if let Some(cfg) = n.entry("log_configuration") {
            self.log_configuration(
                &cfg.value,
                &format!("{base}.log_configuration"),
                cfg.line,
                has_file,
                location.map(|l| l.line),
                &mut logs,
            );
        } else if has_file {
            let l = location.map_or(p.line, |l| l.line);
            self.report.warn(
                l,
                &format!("{base}.log_location"),
                "process-compose writes each line as JSON with the process name and level; tend writes the lines as the process printed them",
            );
        }
        if let Some((length, line)) = self.log_length
            && length != DEFAULT_LOG_LENGTH
            && length > 0
        {
            let tail = length.min(MAX_TAIL);
            if tail < length {
                self.report.warn(
                    line,
                    "log_length",
                    format!("tend keeps at most {MAX_TAIL} lines in memory per instance"),
                );
            }
            tree::set(&mut logs, "tail", line, tree::integer(line, tail));
        }
        if logs.entries().is_some_and(|e| !e.is_empty()) {
            let l = logs.entries().map_or(p.line, |e| e[0].line);
            tree::set(svc, "logs", l, logs);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn log_configuration(
        &mut self,
        cfg: &Node,
        key: &str,
        line: usize,
        has_file: bool,
        location_line: Option<usize>,
        logs: &mut Node,
    ) {
        let Some(entries) = cfg.entries() else {
            if cfg.value != Value::Null {
                self.report.error(line, key, "expected a mapping");
            }
            return;
        };
        if !has_file {
            self.report.warn(
                line,
                key,
                "no effect without the process's log_location; not imported",
            );
            return;
        }
        let flag = |this: &mut Self, k: &str| {
            cfg.get(k)
                .and_then(|v| this.boolean(v, &format!("{key}.{k}")))
                .unwrap_or(false)
        };
        let plain = flag(self, "disable_json") && flag(self, "no_metadata");
        if !plain {
            self.report.warn(
                location_line.unwrap_or(line),
                &format!("{}.log_location", key.trim_end_matches(".log_configuration")),
                "process-compose writes each line with metadata (as JSON unless disable_json, with the process name unless no_metadata); tend writes the lines as the process printed them",
            );
        }
        for e in entries {
            let k = format!("{key}.{}", e.key);
            match e.key.as_str() {
                // Only the shape of each line, covered above.
                "disable_json" | "no_metadata" | "no_color" | "fields_order"
                | "flush_each_line" => {}
                "add_timestamp" => {
                    if self.boolean(&e.value, &k) == Some(true) {
                        tree::set(logs, "timestamps", e.line, tree::boolean(e.line, true));
                    }
                }
                "timestamp_format" => {
                    if let Some(layout) = self.plain_string(&e.value, &k) {
                        match go_layout_to_tend(&layout) {
                            Some(fmt) if flag(self, "add_timestamp") => {
                                tree::set(logs, "timestamp_format", e.line, tree::string(e.line, fmt));
                            }
                            Some(_) => {}
                            None => self.report.warn(
                                e.line,
                                &k,
                                format!("Go layout `{layout}` has no tend equivalent (tend knows %Y %m %d %H %M %S %3f %6f %z); tend's RFC 3339 default is used"),
                            ),
                        }
                    }
                }
                "rotation" => self.rotation(&e.value, &k, e.line, logs),
                other => self.report.warn(
                    e.line,
                    &k,
                    format!("unknown key{}; not imported", hint(other, LOGGER_KEYS)),
                ),
            }
        }
    }

    fn rotation(&mut self, value: &Node, key: &str, line: usize, logs: &mut Node) {
        let Some(entries) = value.entries() else {
            if value.value != Value::Null {
                self.report.error(line, key, "expected a mapping");
            }
            return;
        };
        for e in entries {
            let k = format!("{key}.{}", e.key);
            match e.key.as_str() {
                "max_size_mb" => {
                    // lumberjack's megabytes are MiB.
                    if let Some(mb) = self.int(&e.value, &k).filter(|m| *m > 0) {
                        tree::set(logs, "max_size", e.line, tree::string(e.line, format!("{mb}MiB")));
                    }
                }
                "max_backups" => {
                    if let Some(n) = self.int(&e.value, &k).filter(|n| *n >= 0) {
                        tree::set(logs, "backups", e.line, tree::integer(e.line, n.min(1000)));
                    }
                }
                "compress" => {
                    if let Some(b) = self.boolean(&e.value, &k) {
                        tree::set(logs, "compress", e.line, tree::boolean(e.line, b));
                    }
                }
                "max_age_days" => self.report.warn(
                    e.line,
                    &k,
                    "tend keeps `backups` rotated files whatever their age (its rotate_every rotates by age, it does not delete); not imported",
                ),
                "directory" | "filename" => self.report.warn(e.line, &k, "the file is the process's log_location; not imported"),
                other => self.report.warn(e.line, &k, format!("unknown key{}; not imported", hint(other, ROTATION_KEYS))),
            }
        }
    }

    fn readiness(
        &mut self,
        p: &Proc,
        base: &str,
        port_base: &mut Option<(i64, usize)>,
    ) -> Option<Node> {
        let n = &p.node;
        let probe = n.entry("readiness_probe");
        let log_line = n.entry("ready_log_line");
        if let (Some(_), Some(l)) = (probe, log_line) {
            self.report.warn(
                l.line,
                &format!("{base}.ready_log_line"),
                "process-compose refuses ready_log_line together with a readiness probe; the probe is kept",
            );
        }
        if let Some(e) = probe {
            self.report.warn(
                e.line,
                &format!("{base}.readiness_probe"),
                "process-compose probes until the first success and stops (restarting per `availability`) a process that fails it failure_threshold times first; tend keeps probing and never restarts on readiness (add a `startup` probe with the same check for that)",
            );
            return self.probe(p, &e.value, &format!("{base}.readiness_probe"), port_base);
        }
        let l = log_line?;
        let key = format!("{base}.ready_log_line");
        let text = self.text(p, &l.value, &key, Mode::Literal, false)?;
        if text.is_empty() {
            return None;
        }
        // process-compose looks for the text anywhere in a line; tend's `log` is a regex.
        let mut table = tree::table(l.line);
        tree::set(
            &mut table,
            "log",
            l.line,
            tree::string(l.value.line, regex_escape(&text)),
        );
        Some(table)
    }

    fn probe(
        &mut self,
        p: &Proc,
        node: &Node,
        key: &str,
        port_base: &mut Option<(i64, usize)>,
    ) -> Option<Node> {
        let Some(entries) = node.entries() else {
            self.report.error(node.line, key, "expected a mapping");
            return None;
        };
        for e in entries {
            if !PROBE_KEYS.contains(&e.key.as_str()) {
                self.report.warn(
                    e.line,
                    &format!("{key}.{}", e.key),
                    format!("unknown key{}; not imported", hint(&e.key, PROBE_KEYS)),
                );
            }
        }
        let mut probe = tree::table(node.line);
        let exec = node.entry("exec");
        let http = node.entry("http_get");
        if let (Some(_), Some(h)) = (exec, http) {
            self.report.warn(
                h.line,
                &format!("{key}.http_get"),
                "process-compose uses `exec` when both are set; not imported",
            );
        }
        if let Some(e) = exec {
            let ekey = format!("{key}.exec");
            for sub in e.value.entries().unwrap_or_default() {
                if !EXEC_KEYS.contains(&sub.key.as_str()) {
                    self.report.warn(
                        sub.line,
                        &format!("{ekey}.{}", sub.key),
                        format!("unknown key{}; not imported", hint(&sub.key, EXEC_KEYS)),
                    );
                }
            }
            let command = e
                .value
                .get("command")
                .and_then(|c| self.text(p, c, &format!("{ekey}.command"), Mode::Probe, true));
            let Some(mut command) = command.filter(|c| !c.trim().is_empty()) else {
                self.report
                    .warn(e.line, &ekey, "no command; probe not imported");
                return None;
            };
            if let Some(wd) = e.value.get("working_dir")
                && let Some(dir) =
                    self.text(p, wd, &format!("{ekey}.working_dir"), Mode::Probe, false)
                && !dir.is_empty()
            {
                let own = p.node.get("working_dir").and_then(|w| {
                    self.quietly(|this| {
                        this.text(p, w, &format!("{ekey}.working_dir"), Mode::Probe, true)
                    })
                });
                if own.as_deref() != Some(dir.as_str()) {
                    // tend runs exec checks in the service's cwd.
                    command = format!("cd {} && {command}", tree::sh_quote(&dir));
                }
            }
            tree::set(
                &mut probe,
                "exec",
                e.line,
                tree::string(e.value.line, command),
            );
        } else if let Some(h) = http {
            let check =
                self.http_probe(p, &h.value, &format!("{key}.http_get"), h.line, port_base)?;
            for (k, v) in check {
                tree::set(&mut probe, &k, h.line, v);
            }
        } else {
            self.report.warn(
                node.line,
                key,
                "neither `exec` nor `http_get`: process-compose cannot run it; not imported",
            );
            return None;
        }

        let timing = [
            ("initial_delay_seconds", "initial_delay", 0),
            ("period_seconds", "interval", 1),
            ("timeout_seconds", "timeout", 1),
        ];
        for (pc_key, tend_key, min) in timing {
            if let Some(e) = node.entry(pc_key) {
                // Below process-compose's minimum, it uses its default, which is tend's.
                if let Some(v) = self
                    .int(&e.value, &format!("{key}.{pc_key}"))
                    .filter(|v| *v >= min.max(1))
                {
                    tree::set(
                        &mut probe,
                        tend_key,
                        e.line,
                        tree::string(e.value.line, tree::seconds(v)),
                    );
                }
            }
        }
        if let Some(e) = node.entry("success_threshold") {
            let k = format!("{key}.success_threshold");
            if let Some(v) = self.int(&e.value, &k).filter(|v| *v > 1) {
                tree::set(
                    &mut probe,
                    "success_threshold",
                    e.line,
                    tree::integer(e.value.line, v),
                );
                self.report.warn(
                    e.line,
                    &k,
                    "process-compose does not honour success_threshold; tend does",
                );
            }
        }
        if let Some(e) = node.entry("failure_threshold")
            && let Some(v) = self
                .int(&e.value, &format!("{key}.failure_threshold"))
                .filter(|v| *v >= 1)
        {
            tree::set(
                &mut probe,
                "failure_threshold",
                e.line,
                tree::integer(e.value.line, v),
            );
        }
        Some(probe)
    }

    /// `http = URL` (with `status` and `headers`), or `tcp` for https.
    fn http_probe(
        &mut self,
        p: &Proc,
        node: &Node,
        key: &str,
        line: usize,
        port_base: &mut Option<(i64, usize)>,
    ) -> Option<Vec<(String, Node)>> {
        let Some(entries) = node.entries() else {
            self.report.error(line, key, "expected a mapping");
            return None;
        };
        for e in entries {
            let k = format!("{key}.{}", e.key);
            match e.key.as_str() {
                "host" | "path" | "scheme" | "port" | "headers" | "status_code" => {}
                "num_port" => self.report.warn(
                    e.line,
                    &k,
                    "process-compose sets this from `port`; the value written is not used",
                ),
                other => self.report.warn(
                    e.line,
                    &k,
                    format!("unknown key{}; not imported", hint(other, HTTP_KEYS)),
                ),
            }
        }
        let field = |this: &mut Self, k: &str| {
            node.get(k)
                .and_then(|v| this.text(p, v, &format!("{key}.{k}"), Mode::Probe, true))
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        let host = field(self, "host").unwrap_or_else(|| "127.0.0.1".into());
        let scheme = field(self, "scheme")
            .unwrap_or_else(|| "http".into())
            .to_ascii_lowercase();
        let mut path = field(self, "path").unwrap_or_else(|| "/".into());
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        let port_line = node.entry("port").map_or(line, |e| e.line);
        let port_text = field(self, "port");
        // The port as tend writes it: a number, `{port}`, or none (the scheme's default).
        let port: Option<String> = match port_text.as_deref() {
            None => None,
            Some(t) if t.parse::<u16>().is_ok_and(|n| n > 0) => Some(t.to_string()),
            Some(t) => match t
                .strip_suffix("{instance}")
                .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            {
                // `822{{.PC_REPLICA_NUM}}`: ports 8220, 8221, … while there are at most 10
                // replicas, which is tend's `port_base` with `{port}`.
                Some(digits) if p.replicas <= 10 => {
                    let first: i64 = digits.parse::<i64>().unwrap_or(0) * 10;
                    if first < 1 || first + p.replicas - 1 > 65535 {
                        self.report.warn(
                            port_line,
                            &format!("{key}.port"),
                            format!("`{t}` gives no valid port; probe not imported"),
                        );
                        return None;
                    }
                    match port_base {
                        Some((other, _)) if *other != first => {
                            self.report.warn(port_line, &format!("{key}.port"), "another probe already sets a different port_base; probe not imported");
                            return None;
                        }
                        _ => *port_base = Some((first, port_line)),
                    }
                    self.report.warn(
                        port_line,
                        &format!("{key}.port"),
                        format!("a port per replica: imported as `port_base = {first}` and `{{port}}`, which also sets PORT for each instance (process-compose does not)"),
                    );
                    Some("{port}".into())
                }
                _ => {
                    self.report.warn(
                        port_line,
                        &format!("{key}.port"),
                        format!("`{t}` is not a port: process-compose then probes the scheme's default port, and so does this"),
                    );
                    None
                }
            },
        };
        if scheme == "https" {
            let address = format!("{host}:{}", port.unwrap_or_else(|| "443".into()));
            self.report.warn(
                line,
                key,
                format!(
                    "tend's http probe does not speak https: imported as a tcp check of {address}"
                ),
            );
            return Some(vec![("tcp".into(), tree::string(line, address))]);
        }
        if scheme != "http" {
            self.report.warn(
                line,
                &format!("{key}.scheme"),
                format!("scheme `{scheme}` is not http; probe not imported"),
            );
            return None;
        }
        let url = match &port {
            Some(port) => format!("http://{host}:{port}{path}"),
            None => format!("http://{host}{path}"),
        };
        let mut out = vec![("http".to_string(), tree::string(line, url))];
        // process-compose accepts exactly one status, 200 unless set (below 1 or from 400 on,
        // it falls back to 200).
        let status = match node.entry("status_code") {
            Some(e) => self
                .int(&e.value, &format!("{key}.status_code"))
                .filter(|c| (1..400).contains(c))
                .unwrap_or(200),
            None => 200,
        };
        let sline = node.entry("status_code").map_or(line, |e| e.line);
        out.push(("status".into(), tree::integer(sline, status)));
        if let Some(h) = node.entry("headers") {
            match h.value.entries() {
                Some(headers) => {
                    let mut table = tree::table(h.line);
                    for e in headers {
                        if let Some(v) = self.text(
                            p,
                            &e.value,
                            &format!("{key}.headers.{}", e.key),
                            Mode::Probe,
                            false,
                        ) {
                            tree::set(&mut table, &e.key, e.line, tree::string(e.value.line, v));
                        }
                    }
                    out.push(("headers".into(), table));
                }
                None => self.report.error(
                    h.line,
                    &format!("{key}.headers"),
                    "expected a mapping of header: value",
                ),
            }
        }
        Some(out)
    }

    // ---- values -------------------------------------------------------------------------

    /// Run `f` without keeping the warnings it reports (a value read a second time).
    fn quietly<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        let before = self.report.warnings.len();
        let out = f(self);
        self.report.warnings.truncate(before);
        out
    }

    /// `environment` entries (`KEY=VALUE` strings): key, raw value, line.
    fn env_entries(&mut self, value: &Node, key: &str) -> Vec<(String, String, usize)> {
        let items = match &value.value {
            Value::Array(items) => items,
            Value::Null => return vec![],
            _ => {
                self.report
                    .error(value.line, key, "expected a list of \"KEY=VALUE\" strings");
                return vec![];
            }
        };
        let mut out = Vec::new();
        for item in items {
            let text = match &item.value {
                Value::String(s) => s.clone(),
                Value::Integer(_) | Value::Float(_) | Value::Bool(_) => {
                    crate::config::document::Node::to_json(item).to_string()
                }
                _ => {
                    self.report.error(
                        item.line,
                        key,
                        format!("expected a \"KEY=VALUE\" string, found {}", item.kind()),
                    );
                    continue;
                }
            };
            match text.split_once('=') {
                Some((k, v)) if !k.is_empty() && !k.contains('\0') => out.push((k.to_string(), v.to_string(), item.line)),
                _ => self.report.warn(item.line, key, format!("`{text}` is not KEY=VALUE; process-compose passes it on, the process sees no variable; not imported")),
            }
        }
        out
    }

    fn text(
        &mut self,
        p: &Proc,
        node: &Node,
        key: &str,
        mode: Mode,
        templates: bool,
    ) -> Option<String> {
        let raw = match &node.value {
            Value::String(s) => s.clone(),
            Value::Integer(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => String::new(),
            _ => {
                self.report.error(
                    node.line,
                    key,
                    format!("expected a string, found {}", node.kind()),
                );
                return None;
            }
        };
        self.text_str(p, &raw, node.line, key, mode, templates)
    }

    /// One string value, as tend must read it to mean what process-compose made of it.
    fn text_str(
        &mut self,
        p: &Proc,
        raw: &str,
        line: usize,
        key: &str,
        mode: Mode,
        templates: bool,
    ) -> Option<String> {
        let pieces = if self.expand {
            match envsubst::parse(raw) {
                Ok(pieces) => pieces,
                Err(message) => {
                    self.report.error(
                        line,
                        key,
                        format!("{message} (process-compose refuses to load this; write `$${{` for a literal `${{`)"),
                    );
                    return None;
                }
            }
        } else {
            vec![Piece::Text(raw.to_string())]
        };
        if mode != Mode::Literal {
            for piece in &pieces {
                if let Piece::Text(t) = piece {
                    for placeholder in tree::placeholders_in(t) {
                        self.report.warn(
                            line,
                            key,
                            format!("contains `{placeholder}`, which tend replaces per instance"),
                        );
                    }
                }
            }
        }
        // Templates are rendered in the text around expansions, as process-compose renders
        // the string those expansions produced.
        let mut segments: Vec<Segment> = Vec::new();
        for piece in pieces {
            match piece {
                Piece::Var(v) => segments.push(Segment::Var(v)),
                Piece::Text(t) if templates => {
                    let vars = &p.vars;
                    let lookup = |name: &str| {
                        if name == "PC_REPLICA_NUM" && !vars.contains_key(name) {
                            return Lookup::Replica;
                        }
                        match vars.get(name).map(|n| &n.value) {
                            Some(Value::String(s)) => Lookup::Text(s.clone()),
                            Some(Value::Integer(i)) => Lookup::Text(i.to_string()),
                            Some(Value::Float(f)) => Lookup::Text(f.to_string()),
                            Some(Value::Bool(b)) => Lookup::Text(b.to_string()),
                            Some(Value::Null) => Lookup::Text("<nil>".into()),
                            _ => Lookup::Missing,
                        }
                    };
                    let (outs, problems) = gotemplate::render(&t, &lookup);
                    for problem in problems {
                        let message = format!("template `{}`: {}", problem.action, problem.message);
                        if problem.fatal {
                            self.report.error(line, key, message);
                        } else {
                            self.report.warn(line, key, message);
                        }
                    }
                    for out in outs {
                        segments.push(match out {
                            Out::Lit(s) => Segment::Lit(s),
                            Out::Replica if p.replicas > 1 && mode != Mode::Literal => {
                                Segment::Lit("{instance}".into())
                            }
                            Out::Replica => Segment::Lit("0".into()),
                        });
                    }
                }
                Piece::Text(t) => segments.push(Segment::Lit(t)),
            }
        }
        Some(self.render(p, &segments, line, key, mode))
    }

    fn render(
        &mut self,
        p: &Proc,
        segments: &[Segment],
        line: usize,
        key: &str,
        mode: Mode,
    ) -> String {
        let mut out = String::new();
        let mut pending = String::new();
        for segment in segments {
            match segment {
                Segment::Lit(s) => pending.push_str(s),
                Segment::Var(v) => {
                    self.note_injected(v, line, key);
                    let tend = if mode == Mode::Interp
                        && !pending.ends_with('$')
                        && !(pending.is_empty() && out.ends_with('$'))
                    {
                        self.tend_expansion(p, v, line, key)
                    } else {
                        None
                    };
                    match tend {
                        Some(expr) => {
                            out.push_str(&literal_for(mode, &pending));
                            pending.clear();
                            out.push_str(&expr);
                        }
                        None => {
                            let why = if mode == Mode::Interp {
                                "has no tend equivalent"
                            } else {
                                "is in a field tend does not interpolate"
                            };
                            self.report.warn(
                                line,
                                key,
                                format!("`{}` {why}: substituted with its value now, at import time (process-compose substitutes it when it loads the file)", v.source),
                            );
                            pending.push_str(&self.bake(v));
                        }
                    }
                }
            }
        }
        out.push_str(&literal_for(mode, &pending));
        out
    }

    /// `${PC_REPLICA_NUM}` and `${PC_PROC_NAME}` are expanded when the file is loaded,
    /// before any process exists: they come out empty, which is rarely what was meant.
    fn note_injected(&mut self, v: &Var, line: usize, key: &str) {
        if matches!(v.name.as_str(), "PC_REPLICA_NUM" | "PC_PROC_NAME") {
            self.report.warn(
                line,
                key,
                format!(
                    "`{}` is expanded when process-compose loads the file, before the process has it, so it is empty there (and here); write `$${{{}}}` to let the shell read it",
                    v.source, v.name
                ),
            );
        }
    }

    /// The expansion in tend's syntax, when tend has the same operation.
    fn tend_expansion(&mut self, p: &Proc, v: &Var, line: usize, key: &str) -> Option<String> {
        let mut chars = v.name.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
            && chars.all(|c| c == '_' || c.is_ascii_alphanumeric());
        if !valid {
            return None;
        }
        let in_env = (self.env)(&v.name).is_some();
        let in_dotenv = self
            .dotenv
            .as_ref()
            .is_some_and(|(_, values)| values.contains_key(&v.name));
        if v.is_plain() {
            if in_env || (in_dotenv && p.dotenv) {
                return Some(format!("${{{}}}", v.name));
            }
            if in_dotenv {
                // Only `.env` has it, and this process does not get `.env`: tend would not
                // find it when it loads the manifest.
                return None;
            }
            self.report.warn(
                line,
                key,
                format!(
                    "`{}` is not set now: process-compose substitutes an empty string, so it is written `${{{}:-}}` (tend refuses an unset `${{{}}}`)",
                    v.name, v.name, v.name
                ),
            );
            return Some(format!("${{{}:-}}", v.name));
        }
        if v.is_default() {
            let mut default = String::new();
            for arg in &v.args {
                let segments: Vec<Segment> = arg
                    .iter()
                    .map(|piece| match piece {
                        Piece::Text(t) => Segment::Lit(t.clone()),
                        Piece::Var(inner) => Segment::Var(inner.clone()),
                    })
                    .collect();
                default.push_str(&self.render(p, &segments, line, key, Mode::Interp));
            }
            return Some(format!("${{{}:-{default}}}", v.name));
        }
        None
    }

    fn bake(&self, v: &Var) -> String {
        let dotenv = self.dotenv.as_ref().map(|(_, values)| values);
        let env = self.env;
        let lookup = |name: &str| {
            dotenv
                .and_then(|d| d.get(name).cloned())
                .or_else(|| env(name))
        };
        envsubst::eval_var(v, &lookup)
    }

    /// A value from the file where tend has no interpolation: expansions evaluated now.
    fn resolved(&mut self, node: &Node, key: &str) -> Option<Value> {
        match &node.value {
            Value::String(s) if self.expand && s.contains("${") => {
                let pieces = match envsubst::parse(s) {
                    Ok(p) => p,
                    Err(message) => {
                        self.report.error(node.line, key, message);
                        return None;
                    }
                };
                let dotenv = self.dotenv.as_ref().map(|(_, values)| values.clone());
                let env = self.env;
                let lookup = |name: &str| {
                    dotenv
                        .as_ref()
                        .and_then(|d| d.get(name).cloned())
                        .or_else(|| env(name))
                };
                let text = envsubst::eval(&pieces, &lookup);
                self.report.warn(
                    node.line,
                    key,
                    format!("`{s}` substituted now, at import time, to `{text}` (tend does not interpolate this field)"),
                );
                // The expansion happens before YAML parsing in process-compose, so the
                // result is read as a YAML scalar.
                Some(match document::parse(&format!("v: {text}"), Format::Yaml) {
                    Ok(tree) => tree
                        .get("v")
                        .map_or(Value::String(text.clone()), |n| n.value.clone()),
                    Err(_) => Value::String(text),
                })
            }
            other => Some(other.clone()),
        }
    }

    fn int(&mut self, node: &Node, key: &str) -> Option<i64> {
        match self.resolved(node, key)? {
            Value::Integer(i) => Some(i),
            Value::String(s) if s.trim().parse::<i64>().is_ok() => s.trim().parse().ok(),
            Value::Null => None,
            other => {
                self.report.error(
                    node.line,
                    key,
                    format!(
                        "expected an integer, found {}",
                        Node::new(node.line, other).kind()
                    ),
                );
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node, key: &str) -> Option<bool> {
        match self.resolved(node, key)? {
            Value::Bool(b) => Some(b),
            Value::Null => None,
            // yaml.v3 reads YAML 1.1's spellings into a bool field.
            Value::String(s) => match s.as_str() {
                "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "true" | "True"
                | "TRUE" => Some(true),
                "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "false" | "False"
                | "FALSE" => Some(false),
                _ => {
                    self.report.error(
                        node.line,
                        key,
                        format!("expected true or false, found `{s}`"),
                    );
                    None
                }
            },
            other => {
                self.report.error(
                    node.line,
                    key,
                    format!(
                        "expected true or false, found {}",
                        Node::new(node.line, other).kind()
                    ),
                );
                None
            }
        }
    }

    fn plain_string(&mut self, node: &Node, key: &str) -> Option<String> {
        match self.resolved(node, key)? {
            Value::String(s) => Some(s),
            Value::Integer(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Null => None,
            other => {
                self.report.error(
                    node.line,
                    key,
                    format!(
                        "expected a string, found {}",
                        Node::new(node.line, other).kind()
                    ),
                );
                None
            }
        }
    }

    /// Warnings for an env file tend will read: lines it rejects, and `$` that godotenv
    /// (process-compose's reader) would have expanded.
    fn check_env_file(&mut self, path: &Path, text: &str) {
        let (values, errors) = dotenv::tend(text);
        for (line, why) in errors {
            self.report.warn_in(
                path,
                line,
                "line",
                format!(
                    "tend cannot read this line ({why}); `tend check` fails until it is changed"
                ),
            );
        }
        for a in values {
            let raw = text.lines().nth(a.line - 1).unwrap_or("");
            let single_quoted = raw
                .split_once('=')
                .is_some_and(|(_, v)| v.trim_start().starts_with('\''));
            if a.value.contains('$') && !single_quoted {
                self.report.warn_in(
                    path,
                    a.line,
                    &a.key,
                    "process-compose's env file reader expands `$VAR` in values; tend takes values literally",
                );
            }
        }
    }
}

/// A piece of a string after templates: literal text, or an expansion still to place.
enum Segment {
    Lit(String),
    Var(Var),
}

/// Literal text written for `mode`: escaped where tend interpolates.
/// process-compose's built-in watch excludes (src/watcher/matcher.go), unless a process
/// sets `disable_default_excludes`: directory names, then file name patterns.
const PC_WATCH_IGNORED_DIRS: &[&str] = &[
    ".git",
    ".hg",
    ".svn",
    ".idea",
    ".vscode",
    "node_modules",
    "vendor",
    "target",
    "dist",
    "build",
    "bin",
    ".venv",
    "venv",
    "__pycache__",
    ".mypy_cache",
    ".pytest_cache",
    ".next",
    ".nuxt",
    ".terraform",
    ".gradle",
    ".direnv",
    "result",
];
const PC_WATCH_IGNORED_FILES: &[&str] = &[
    "*.log",
    "*.log.gz",
    "*.swp",
    "*.swx",
    "*~",
    ".#*",
    "#*#",
    "4913",
    ".DS_Store",
    "*.tmp",
];

/// A Go duration as a cron schedule, when it is a whole number of minutes dividing an hour
/// (`*/15 * * * *`) or of hours dividing a day (`0 */6 * * *`).
fn interval_as_cron(interval: &str) -> Option<String> {
    let seconds = crate::config::duration::parse(interval).ok()?.as_secs_f64();
    if seconds <= 0.0 || seconds.fract() != 0.0 {
        return None;
    }
    let seconds = seconds as u64;
    if !seconds.is_multiple_of(60) {
        return None;
    }
    let minutes = seconds / 60;
    match minutes {
        1 => Some("* * * * *".into()),
        m if m < 60 && 60 % m == 0 => Some(format!("*/{m} * * * *")),
        60 => Some("0 * * * *".into()),
        m if m % 60 == 0 && m < 1440 && 1440 % m == 0 => Some(format!("0 */{} * * *", m / 60)),
        1440 => Some("0 0 * * *".into()),
        _ => None,
    }
}

fn literal_for(mode: Mode, text: &str) -> String {
    match mode {
        Mode::Interp => tree::tend_literal(text),
        Mode::Probe | Mode::Literal => text.to_string(),
    }
}

fn upsert(env: &mut Vec<(String, String, usize)>, key: String, value: String, line: usize) {
    match env.iter_mut().find(|(k, ..)| *k == key) {
        Some(entry) => {
            entry.1 = value;
            entry.2 = line;
        }
        None => env.push((key, value, line)),
    }
}

/// Every string in a tree.
fn strings_of(node: &Node) -> Vec<&str> {
    match &node.value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().flat_map(strings_of).collect(),
        Value::Table(entries) => entries.iter().flat_map(|e| strings_of(&e.value)).collect(),
        _ => vec![],
    }
}

/// Whether `text` names `needle` somewhere a template does not consume it.
fn mentions_outside_templates(text: &str, needle: &str) -> bool {
    let mut rest = text.to_string();
    while let Some(open) = rest.find("{{") {
        match rest[open..].find("}}") {
            Some(close) => rest.replace_range(open..open + close + 2, " "),
            None => break,
        }
    }
    rest.contains(needle)
}

/// Merge a process over the one it extends: the child's values win, tables merge key by
/// key, `environment` merges by variable, `namespace` is replaced, other lists append.
/// As with process-compose's merge, a child's zero value (false, 0, "") does not override.
fn merge_process(base: &mut Node, child: &Node) {
    for e in child.entries().unwrap_or_default() {
        let zero = matches!(
            &e.value.value,
            Value::Bool(false) | Value::Integer(0) | Value::Null
        ) || e.value.value == Value::String(String::new());
        match (tree::get_mut(base, &e.key), &e.value.value) {
            (Some(existing), Value::Table(_)) if matches!(existing.value, Value::Table(_)) => {
                merge_process(existing, &e.value);
            }
            (Some(existing), Value::Array(items)) if e.key == "environment" => {
                if let Value::Array(old) = &mut existing.value {
                    for item in items {
                        let name = |n: &Node| match &n.value {
                            Value::String(s) => s.split('=').next().map(str::to_string),
                            _ => None,
                        };
                        let k = name(item);
                        old.retain(|o| name(o) != k);
                        old.push(item.clone());
                    }
                }
            }
            (Some(existing), Value::Array(items)) if e.key != "namespace" => {
                if let Value::Array(old) = &mut existing.value {
                    old.extend(items.iter().cloned());
                }
            }
            (Some(_), _) if zero => {}
            _ => tree::set(base, &e.key, e.line, e.value.clone()),
        }
    }
}

/// Resolve YAML merge keys: `<<: MAP` (or a list of maps, the first winning) adds the
/// map's entries the table does not set itself, where the `<<` was written.
fn merge_keys(node: &mut Node) {
    match &mut node.value {
        Value::Array(items) => items.iter_mut().for_each(merge_keys),
        Value::Table(entries) => {
            while let Some(at) = entries.iter().position(|e| e.key == "<<") {
                let merge = entries.remove(at);
                let sources: Vec<Node> = match merge.value.value {
                    Value::Array(items) => items,
                    _ => vec![merge.value],
                };
                let mut added = Vec::new();
                for source in sources {
                    for e in source.entries().unwrap_or_default() {
                        let present = entries.iter().any(|x| x.key == e.key)
                            || added.iter().any(|x: &document::Entry| x.key == e.key);
                        if !present {
                            added.push(e.clone());
                        }
                    }
                }
                for (i, e) in added.into_iter().enumerate() {
                    entries.insert(at + i, e);
                }
            }
            for e in entries.iter_mut() {
                merge_keys(&mut e.value);
            }
        }
        _ => {}
    }
}

/// Linux signal numbers tend knows by name.
fn signal_name(n: i64) -> Option<&'static str> {
    Some(match n {
        1 => "HUP",
        2 => "INT",
        3 => "QUIT",
        6 => "ABRT",
        9 => "KILL",
        10 => "USR1",
        12 => "USR2",
        13 => "PIPE",
        14 => "ALRM",
        15 => "TERM",
        18 => "CONT",
        19 => "STOP",
        20 => "TSTP",
        21 => "TTIN",
        22 => "TTOU",
        28 => "WINCH",
        _ => return None,
    })
}

/// A literal text as a regular expression matching it anywhere.
fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A Go time layout in tend's `timestamp_format` directives, when every part has one.
fn go_layout_to_tend(layout: &str) -> Option<String> {
    const TOKENS: &[(&str, &str)] = &[
        ("2006", "%Y"),
        (".000000", ".%6f"),
        (".000", ".%3f"),
        ("-0700", "%z"),
        ("01", "%m"),
        ("02", "%d"),
        ("15", "%H"),
        ("04", "%M"),
        ("05", "%S"),
    ];
    let mut out = String::new();
    let mut rest = layout;
    'outer: while !rest.is_empty() {
        for (go, tend) in TOKENS {
            if let Some(after) = rest.strip_prefix(go) {
                out.push_str(tend);
                rest = after;
                continue 'outer;
            }
        }
        let c = rest.chars().next()?;
        if c.is_ascii_alphanumeric() && c != 'T' {
            return None;
        }
        if c == '%' {
            out.push('%');
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    Some(out)
}

#[cfg(test)]
mod tests;
