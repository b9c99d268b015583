//! `[program:x]`, `[fcgi-program:x]`, `[eventlistener:x]` and `[group:x]` into tend
//! services, and the assembly of the manifest tree.

use std::collections::BTreeMap;

use super::values;
use super::*;

// ---------------------------------------------------------------------------------------
// A tree under construction: like `Entry`, plus the file each part came from.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Item {
    pub key: String,
    pub line: usize,
    pub file: usize,
    pub val: Val,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Val {
    Leaf(Value),
    /// Array elements with their lines.
    List(Vec<(usize, Value)>),
    Table(Vec<Item>),
}

impl Item {
    pub fn leaf(key: &str, line: usize, file: usize, value: Value) -> Item {
        Item {
            key: key.to_string(),
            line,
            file,
            val: Val::Leaf(value),
        }
    }

    pub fn table(key: &str, line: usize, file: usize, items: Vec<Item>) -> Item {
        Item {
            key: key.to_string(),
            line,
            file,
            val: Val::Table(items),
        }
    }

    pub fn list(key: &str, line: usize, file: usize, values: Vec<(usize, Value)>) -> Item {
        Item {
            key: key.to_string(),
            line,
            file,
            val: Val::List(values),
        }
    }

    fn to_entry(&self, path: &mut Vec<Segment>, origins: &mut Vec<Origin>) -> Entry {
        path.push(Segment::Key(self.key.clone()));
        origins.push(Origin {
            path: path.clone(),
            file: self.file,
        });
        let value = match &self.val {
            Val::Leaf(v) => v.clone(),
            Val::List(items) => Value::Array(
                items
                    .iter()
                    .map(|(line, v)| Node::new(*line, v.clone()))
                    .collect(),
            ),
            Val::Table(items) => {
                Value::Table(items.iter().map(|i| i.to_entry(path, origins)).collect())
            }
        };
        path.pop();
        Entry {
            key: self.key.clone(),
            line: self.line,
            value: Node::new(self.line, value),
        }
    }

    /// This item as tend runs instance `index` of it, escaped again: every string (all
    /// [`escape`]d) gets its `$${` read back as `${` (tend's interpolation, done when the
    /// manifest loads) and then `{instance}` replaced by `index` (what tend does per
    /// instance in `command`, `args`, `env` and `cwd`). Comparing with the escaped strings
    /// of the real process, as escaping is one to one, compares what each would run:
    /// replacing `{instance}` in the escaped text instead would read `$%(process_num)d`'s
    /// `$${instance}` as `$$0`.
    fn instantiate(&self, index: usize) -> Item {
        let text = |v: &Value| match v {
            Value::String(s) => Value::String(escape(
                &unescape(s).replace("{instance}", &index.to_string()),
            )),
            other => other.clone(),
        };
        Item {
            val: match &self.val {
                Val::Leaf(v) => Val::Leaf(text(v)),
                Val::List(items) => Val::List(items.iter().map(|(l, v)| (*l, text(v))).collect()),
                Val::Table(items) => {
                    Val::Table(items.iter().map(|i| i.instantiate(index)).collect())
                }
            },
            ..self.clone()
        }
    }
}

/// `${` is tend's interpolation; supervisord passes it on untouched, so it is escaped.
fn escape(text: &str) -> String {
    text.replace("${", "$${")
}

/// The text [`escape`] was given: each `$${` read back as `${`, as tend's interpolation
/// reads it.
fn unescape(text: &str) -> String {
    text.replace("$${", "${")
}

/// A name tend accepts (`[A-Za-z0-9][A-Za-z0-9_.-]*`, not `all`), changing as little
/// as possible.
fn tend_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        out.insert(0, 'x');
    }
    if out == "all" {
        out.push('_');
    }
    out
}

// ---------------------------------------------------------------------------------------
// What the program sections become
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Program,
    Fcgi,
    Listener,
}

impl Kind {
    fn what(self) -> &'static str {
        match self {
            Kind::Program => "[program:x]",
            Kind::Fcgi => "[fcgi-program:x]",
            Kind::Listener => "[eventlistener:x]",
        }
    }
}

pub(super) const PROGRAM_KEYS: &[&str] = &[
    "command",
    "process_name",
    "numprocs",
    "numprocs_start",
    "priority",
    "autostart",
    "startsecs",
    "startretries",
    "autorestart",
    "exitcodes",
    "stopsignal",
    "stopwaitsecs",
    "stopasgroup",
    "killasgroup",
    "user",
    "redirect_stderr",
    "stdout_logfile",
    "stdout_logfile_maxbytes",
    "stdout_logfile_backups",
    "stdout_capture_maxbytes",
    "stdout_events_enabled",
    "stdout_syslog",
    "stderr_logfile",
    "stderr_logfile_maxbytes",
    "stderr_logfile_backups",
    "stderr_capture_maxbytes",
    "stderr_events_enabled",
    "stderr_syslog",
    "environment",
    "directory",
    "umask",
    "serverurl",
    // Not supervisord's: people add it for tools like tend; honoured.
    "depends_on",
];
pub(super) const FCGI_KEYS: &[&str] = &["socket", "socket_backlog", "socket_owner", "socket_mode"];
pub(super) const LISTENER_KEYS: &[&str] = &["events", "buffer_size", "result_handler"];

const DEFAULT_PRIORITY: i64 = 999;
const DEFAULT_LOG_SIZE: i64 = 50 * 1024 * 1024;
const DEFAULT_LOG_BACKUPS: i64 = 10;
const MAX_INSTANCES: i64 = 10_000;

/// One tend service made from a program (before priority, dependencies and groups).
#[derive(Debug, Clone)]
struct ServiceParts {
    name: String,
    line: usize,
    file: usize,
    /// command/args, cwd, env.
    head: Vec<Item>,
    /// user, umask, autostart, instances.
    middle: Vec<Item>,
    /// restart … stop_timeout.
    tail: Vec<Item>,
    logs: Option<Item>,
}

/// A program section, mapped.
pub(super) struct Mapped {
    kind: Kind,
    /// supervisord's program name.
    program: String,
    section: Section,
    services: Vec<ServiceParts>,
    split: bool,
    priority: Option<Got<i64>>,
    default_priority: i64,
    /// (name, line) as written, and the key's file.
    depends_on: Option<DependsOn>,
    /// `[group:x]` sections naming this program: (group, file, line).
    groups: Vec<(String, usize, usize)>,
    processes: Vec<ProcessName>,
    listener: Option<ListenerParts>,
}

/// `depends_on=` as written: names with their lines, and the key's place.
struct DependsOn {
    names: Vec<(String, usize)>,
    file: usize,
    line: usize,
}

struct ListenerParts {
    events: Vec<String>,
    buffer_size: i64,
    result_handler: Option<Setting>,
}

/// What every process of a program is read with.
struct PerProcess<'p> {
    section: &'p Section,
    base: &'p Names<'p>,
    numprocs: i64,
    redirect: Option<&'p Got<bool>>,
    /// `process_name` as written (or its default), and where.
    process_name: &'p str,
    process_name_raw: Option<&'p ini::Value>,
}

/// One process's values that may differ between processes.
#[derive(Debug, Clone, PartialEq)]
struct Proc {
    name: String,
    head: Vec<Item>,
    logs: Option<Item>,
}

/// The `*_logfile*` keys of one stream, as read for one process.
#[derive(Default)]
struct Stream {
    target: Option<Got<LogFile>>,
    max: Option<Got<i64>>,
    backups: Option<Got<i64>>,
    syslog: Option<Got<bool>>,
    /// `*_events_enabled`: PROCESS_LOG events.
    events: Option<Got<bool>>,
}

/// Where a stream ends up in tend.
#[derive(Debug, Clone, PartialEq)]
enum Dest {
    Default,
    File,
    Inherit,
    Null,
}

pub(super) struct Group {
    name: String,
    file: usize,
    line: usize,
}

impl<'a> Cx<'a> {
    /// Like `typed`, but telling "absent" (Ok(None)) from "wrong" (Err).
    fn try_typed<T>(
        &mut self,
        section: &Section,
        key: &str,
        names: &Names,
        sink: Sink,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<Got<T>>, ()> {
        if self.value(section, key).is_none() {
            return Ok(None);
        }
        self.typed(section, key, names, sink, parse)
            .map(Some)
            .ok_or(())
    }

    fn expand_user(&self, path: &str) -> String {
        if (path == "~" || path.starts_with("~/"))
            && let Some(home) = (self.env)("HOME")
        {
            return format!("{home}{}", &path[1..]);
        }
        path.to_string()
    }

    // -------------------------------------------------------------------------------
    // [group:x]
    // -------------------------------------------------------------------------------

    /// Every `[group:x]`, checked; returns program section name → groups naming it.
    pub(super) fn groups(&mut self) -> BTreeMap<String, Vec<Group>> {
        let sections = self.ini.sections.clone();
        let names = Names {
            supervisord_env: true,
            ..Names::default()
        };
        let mut members: BTreeMap<String, Vec<Group>> = BTreeMap::new();
        for section in sections.iter().filter(|s| s.name.starts_with("group:")) {
            let raw_name = &section.name["group:".len()..];
            let name = match values::process_or_group_name(raw_name) {
                Ok(name) => name,
                Err(message) => {
                    self.error(section.file, section.line, &section.name, message);
                    continue;
                }
            };
            let programs = self
                .text(section, "programs", &names, Sink::Errors)
                .map(|g| (values::list_of_strings(&g.value), g.file, g.line));
            if let Some(priority) =
                self.typed(section, "priority", &names, Sink::Errors, values::integer)
            {
                self.warn(
                    priority.file,
                    priority.line,
                    &format!("{}.priority", section.name),
                    "tend has no group priority: each service keeps its own `priority`, so the start order between groups may differ",
                );
            }
            self.unknown_keys(section, &["programs", "priority"], "[group:x]");
            let Some((programs, file, line)) = programs else {
                if self.value(section, "programs").is_none() {
                    self.warn(
                        section.file,
                        section.line,
                        &section.name,
                        "has no `programs`: an empty group",
                    );
                }
                continue;
            };
            for program in programs {
                let plain = format!("program:{program}");
                let fcgi = format!("fcgi-program:{program}");
                let has = |n: &str| sections.iter().any(|s| s.name == n);
                let target = match (has(&plain), has(&fcgi)) {
                    (true, true) => {
                        self.error(file, line, &format!("{}.programs", section.name),
                            format!("`{program}` is ambiguous: there is both [program:{program}] and [fcgi-program:{program}]"));
                        continue;
                    }
                    (true, false) => plain,
                    (false, true) => fcgi,
                    (false, false) => {
                        self.error(
                            file,
                            line,
                            &format!("{}.programs", section.name),
                            format!(
                                "names unknown program `{program}` (no [program:{program}] section)"
                            ),
                        );
                        continue;
                    }
                };
                let list = members.entry(target).or_default();
                if !list.iter().any(|g| g.name == name) {
                    list.push(Group {
                        name: name.clone(),
                        file,
                        line,
                    });
                }
            }
        }
        members
    }

    // -------------------------------------------------------------------------------
    // Program sections
    // -------------------------------------------------------------------------------

    pub(super) fn programs(&mut self, groups: &BTreeMap<String, Vec<Group>>) -> Vec<Mapped> {
        let sections = self.ini.sections.clone();
        let mut mapped = Vec::new();
        for section in &sections {
            let kind = if section.name.starts_with("program:") {
                Kind::Program
            } else if section.name.starts_with("fcgi-program:") {
                Kind::Fcgi
            } else if section.name.starts_with("eventlistener:") {
                Kind::Listener
            } else {
                continue;
            };
            let member_of: Vec<(String, usize, usize)> = groups
                .get(&section.name)
                .map(|list| {
                    list.iter()
                        .map(|g| (g.name.clone(), g.file, g.line))
                        .collect()
                })
                .unwrap_or_default();
            if let Some(m) = self.program(section, kind, member_of) {
                mapped.push(m);
            }
        }
        mapped
    }

    fn program(
        &mut self,
        section: &Section,
        kind: Kind,
        groups: Vec<(String, usize, usize)>,
    ) -> Option<Mapped> {
        let errors_before = self.errors.len();
        let at = |k: &str| format!("{}.{k}", section.name);
        let raw_name = section.name.split_once(':').map_or("", |(_, n)| n);
        let program = if kind == Kind::Listener {
            raw_name.to_string()
        } else {
            match values::process_or_group_name(raw_name) {
                Ok(name) => name,
                Err(message) => {
                    self.error(section.file, section.line, &section.name, message);
                    return None;
                }
            }
        };
        if program.is_empty() {
            self.error(
                section.file,
                section.line,
                &section.name,
                "the section has no program name",
            );
            return None;
        }
        if groups.len() > 1 {
            let names: Vec<&str> = groups.iter().map(|g| g.0.as_str()).collect();
            self.warn(section.file, section.line, &section.name, format!(
                "is in several groups ({}): supervisord runs one copy of it per group; tend runs it once, in all of them",
                names.join(", ")
            ));
        }
        let group_name = groups.first().map_or(program.clone(), |g| g.0.clone());
        let base = Names {
            host: true,
            program: Some(&program),
            group: Some(&group_name),
            supervisord_env: true,
            ..Names::default()
        };
        let e = Sink::Errors;

        // Read once, before any per-process expansion (no process_num here).
        let priority = self.typed(section, "priority", &base, e, values::integer);
        let autostart = self.typed(section, "autostart", &base, e, values::boolean);
        let autorestart = self.typed(section, "autorestart", &base, e, values::auto_restart);
        let startsecs = self.typed(section, "startsecs", &base, e, |t| {
            values::integer_at_least(t, 0)
        });
        let startretries = self.typed(section, "startretries", &base, e, |t| {
            values::integer_at_least(t, 0)
        });
        let stopsignal = self.stop_signal(section, &base);
        let stopwaitsecs = self.typed(section, "stopwaitsecs", &base, e, |t| {
            values::integer_at_least(t, 0)
        });
        let stopasgroup = self.typed(section, "stopasgroup", &base, e, values::boolean);
        let killasgroup = self.typed(section, "killasgroup", &base, e, values::boolean);
        let exitcodes = self.typed(section, "exitcodes", &base, e, values::exit_codes);
        let redirect = self.typed(section, "redirect_stderr", &base, e, values::boolean);
        let numprocs = self.typed(section, "numprocs", &base, e, values::integer);
        let numprocs_start = self.typed(section, "numprocs_start", &base, e, values::integer);
        let user = self.text(section, "user", &base, e);
        let umask = self.typed(section, "umask", &base, e, values::octal);
        let serverurl = self.text(section, "serverurl", &base, e);
        for stream in ["stdout", "stderr"] {
            let key = format!("{stream}_capture_maxbytes");
            if let Some(size) = self.typed(section, &key, &base, e, values::byte_size)
                && size.value != 0
            {
                self.warn(
                    size.file,
                    size.line,
                    &at(&key),
                    "capture mode (PROCESS_COMMUNICATION events) is not supported by tend; ignored",
                );
            }
        }
        if let Some(url) = &serverurl
            && !url.value.trim().eq_ignore_ascii_case("auto")
        {
            self.warn(
                url.file,
                url.line,
                &at("serverurl"),
                "tend does not set SUPERVISOR_SERVER_URL for children; ignored",
            );
        }

        let stop_group = stopasgroup.as_ref().is_some_and(|g| g.value);
        let kill_group = killasgroup.as_ref().map_or(stop_group, |g| g.value);
        if stop_group && !kill_group {
            let g = killasgroup
                .as_ref()
                .expect("UNWRAP: kill_group is false only when written");
            self.error(
                g.file,
                g.line,
                &at("killasgroup"),
                "stopasgroup=true needs killasgroup=true (supervisord refuses this combination)",
            );
        }
        for (got, key) in [(&stopasgroup, "stopasgroup"), (&killasgroup, "killasgroup")] {
            if let Some(g) = got
                && !g.value
            {
                self.warn(g.file, g.line, &at(key),
                    "tend always signals the whole process group (and processes that left it), so `false` cannot be kept");
            }
        }

        let (numprocs_value, numprocs_line, numprocs_file) = match &numprocs {
            Some(g) => (g.value, g.line, g.file),
            None => (1, section.line, section.file),
        };
        if numprocs.is_some() && !(1..=MAX_INSTANCES).contains(&numprocs_value) {
            self.error(
                numprocs_file,
                numprocs_line,
                &at("numprocs"),
                format!("must be between 1 and {MAX_INSTANCES} for tend, not {numprocs_value}"),
            );
        }
        let start = numprocs_start.as_ref().map_or(0, |g| g.value);
        let process_name_raw = self.value(section, "process_name");
        let process_name_text = process_name_raw
            .as_ref()
            .map_or("%(program_name)s".to_string(), |v| v.text.clone());
        if numprocs_value > 1 && !process_name_text.contains("%(process_num)") {
            let (file, line) = process_name_raw
                .as_ref()
                .map_or((numprocs_file, numprocs_line), |v| (v.file, v.line));
            self.error(
                file,
                line,
                &at("process_name"),
                "must contain %(process_num) when numprocs > 1 (supervisord refuses this)",
            );
        }

        if kind == Kind::Fcgi {
            self.fcgi_socket(section, &program);
        }
        let listener = if kind == Kind::Listener {
            self.listener_parts(section, redirect.as_ref())
        } else {
            None
        };
        let depends_on = self.depends_on(section);

        let mut known: Vec<&str> = PROGRAM_KEYS.to_vec();
        match kind {
            Kind::Program => {}
            Kind::Fcgi => known.extend(FCGI_KEYS),
            Kind::Listener => known.extend(LISTENER_KEYS),
        }
        self.unknown_keys(section, &known, kind.what());
        self.literal_placeholders(section);

        // The shared parts of every service made from this program.
        let mut middle = Vec::new();
        if let Some(u) = &user {
            middle.push(Item::leaf(
                "user",
                u.line,
                u.file,
                Value::String(u.value.trim().to_string()),
            ));
        }
        if let Some(u) = &umask {
            middle.push(Item::leaf(
                "umask",
                u.line,
                u.file,
                Value::String(format!("{:03o}", u.value)),
            ));
        }
        if let Some(a) = &autostart {
            middle.push(Item::leaf(
                "autostart",
                a.line,
                a.file,
                Value::Bool(a.value),
            ));
        }
        let mut tail = self.restart_items(
            section,
            autorestart.as_ref(),
            exitcodes.as_ref(),
            startsecs.as_ref(),
            startretries.as_ref(),
        );
        if let Some(s) = &stopsignal {
            tail.push(Item::leaf(
                "stop_signal",
                s.line,
                s.file,
                Value::String(s.value.to_string()),
            ));
        }
        if let Some(s) = &stopwaitsecs {
            tail.push(Item::leaf(
                "stop_timeout",
                s.line,
                s.file,
                Value::String(format!("{}s", s.value)),
            ));
        }

        // Per process: the values that may use process_num.
        // (With an invalid numprocs, one process is still read, for its errors.)
        let n = usize::try_from(numprocs_value)
            .ok()
            .filter(|n| (1..=MAX_INSTANCES as usize).contains(n))
            .unwrap_or(1);
        let per = PerProcess {
            section,
            base: &base,
            numprocs: numprocs_value,
            redirect: redirect.as_ref(),
            process_name: &process_name_text,
            process_name_raw: process_name_raw.as_ref(),
        };
        let mut reals: Vec<Proc> = Vec::with_capacity(n);
        for i in 0..n {
            let num = Arg::Int(start + i as i64);
            match self.process(&per, num, Sink::Errors) {
                Some(p) => reals.push(p),
                // The other processes would repeat the same errors.
                None => break,
            }
        }
        if self.errors.len() != errors_before || reals.len() != n {
            return None;
        }

        let service_name = tend_name(&program);
        let mut services = Vec::new();
        let mut processes = Vec::new();
        let mut split = false;
        let same = reals
            .iter()
            .all(|p| p.head == reals[0].head && p.logs == reals[0].logs);
        let shared_head = if n == 1 || same {
            Some(reals[0].head.clone())
        } else {
            self.template(&per, &reals)
        };
        match shared_head {
            Some(head) => {
                if service_name != program {
                    self.warn(section.file, section.line, &section.name, format!(
                        "`{program}` is not a valid tend service name; the service is called `{service_name}`"
                    ));
                }
                let mut middle = middle.clone();
                if n > 1 {
                    middle.push(Item::leaf(
                        "instances",
                        numprocs_line,
                        numprocs_file,
                        Value::Integer(numprocs_value),
                    ));
                }
                services.push(ServiceParts {
                    name: service_name.clone(),
                    line: section.line,
                    file: section.file,
                    head,
                    middle,
                    tail: tail.clone(),
                    logs: reals[0].logs.clone(),
                });
                for (i, p) in reals.iter().enumerate() {
                    processes.push(ProcessName {
                        group: group_name.clone(),
                        name: p.name.clone(),
                        service: service_name.clone(),
                        instance: (n > 1).then_some(i as u32),
                    });
                }
                self.name_warnings(
                    section,
                    &program,
                    &service_name,
                    &reals,
                    numprocs_start.as_ref(),
                    process_name_raw.as_ref(),
                );
            }
            None => {
                split = true;
                let mut seen: Vec<String> = Vec::new();
                for p in &reals {
                    let name = tend_name(&p.name);
                    if seen.contains(&name) {
                        self.error(section.file, section.line, &section.name, format!(
                            "processes must be split into separate services, but two would be called `{name}`"
                        ));
                        return None;
                    }
                    if name != p.name {
                        self.warn(section.file, section.line, &section.name, format!(
                            "process `{}` is not a valid tend service name; the service is called `{name}`",
                            p.name
                        ));
                    }
                    seen.push(name.clone());
                    services.push(ServiceParts {
                        name: name.clone(),
                        line: section.line,
                        file: section.file,
                        head: p.head.clone(),
                        middle: middle.clone(),
                        tail: tail.clone(),
                        logs: p.logs.clone(),
                    });
                    processes.push(ProcessName {
                        group: group_name.clone(),
                        name: p.name.clone(),
                        service: name,
                        instance: None,
                    });
                }
                let differing = reals[0]
                    .head
                    .iter()
                    .find(|item| reals.iter().any(|p| !p.head.contains(item)))
                    .map_or("logs".to_string(), |item| item.key.clone());
                self.warn(numprocs_file, numprocs_line, &at("numprocs"), format!(
                    "the {n} processes differ in `{differing}` in a way tend's `{{instance}}` cannot express (a width like %(process_num)02d, numprocs_start, or a per-process log file): imported as {n} services {} in group `{}`",
                    seen.join(", "),
                    groups.first().map_or(program.as_str(), |g| g.0.as_str()),
                ));
            }
        }

        let default_priority = if kind == Kind::Listener {
            -1
        } else {
            DEFAULT_PRIORITY
        };
        Some(Mapped {
            kind,
            program,
            section: section.clone(),
            services,
            split,
            priority,
            default_priority,
            depends_on,
            groups,
            processes,
            listener,
        })
    }

    fn stop_signal(&mut self, section: &Section, names: &Names) -> Option<Got<&'static str>> {
        let raw = self.value(section, "stopsignal")?;
        let key = format!("{}.stopsignal", section.name);
        let text = self.expand(&raw, &key, names, Sink::Errors)?;
        match values::signal(&text) {
            Ok(name) => Some(Got {
                value: name,
                file: raw.file,
                line: raw.line,
            }),
            Err(SignalError::Invalid(m) | SignalError::Unsupported(m)) => {
                self.error(raw.file, raw.line, &key, m);
                None
            }
        }
    }

    /// `{instance}` written literally where tend would replace it.
    fn literal_placeholders(&mut self, section: &Section) {
        for key in ["command", "environment", "directory"] {
            if let Some(v) = self.value(section, key)
                && v.text.contains("{instance}")
            {
                self.warn(v.file, v.line, &format!("{}.{key}", section.name),
                    "contains `{instance}`, which tend replaces with the instance number (supervisord passed it on as written)");
            }
        }
    }

    fn name_warnings(
        &mut self,
        section: &Section,
        program: &str,
        service: &str,
        reals: &[Proc],
        numprocs_start: Option<&Got<i64>>,
        process_name: Option<&ini::Value>,
    ) {
        let at = |k: &str| format!("{}.{k}", section.name);
        let n = reals.len();
        if let Some(raw) = process_name {
            if n == 1 && reals[0].name != program {
                self.warn(raw.file, raw.line, &at("process_name"), format!(
                    "supervisord calls the process `{}`; tend calls it `{service}` (supervisorctl uses supervisord's names)",
                    reals[0].name
                ));
            } else if n > 1 {
                self.warn(raw.file, raw.line, &at("process_name"), format!(
                    "supervisord calls the processes `{}` … `{}`; tend calls them `{service}:0` … `{service}:{}` (supervisorctl uses supervisord's names)",
                    reals[0].name, reals[n - 1].name, n - 1
                ));
            }
        }
        if let Some(start) = numprocs_start
            && start.value != 0
        {
            self.warn(start.file, start.line, &at("numprocs_start"), format!(
                "tend numbers instances from 0; supervisord's process_num starts at {} here (only names are affected: process_num is not used in the command, environment or directory)",
                start.value
            ));
        }
    }

    /// The per-instance template (`{instance}` for process_num), when it reproduces every
    /// process exactly.
    ///
    /// Only `head` (command, args, env, cwd) is instantiated by tend. Log settings are
    /// used as written for every instance (tend replaces no placeholder in a log file
    /// name), so the processes must have the same logs: then whatever they hold, a
    /// literal `{instance}` included, means the same to tend as to supervisord.
    fn template(&mut self, per: &PerProcess, reals: &[Proc]) -> Option<Vec<Item>> {
        if reals.iter().any(|p| p.logs != reals[0].logs) {
            return None;
        }
        let template = self.process(per, Arg::Verbatim("{instance}".into()), Sink::Quiet)?;
        let fits = reals.iter().enumerate().all(|(i, p)| {
            template
                .head
                .iter()
                .map(|item| item.instantiate(i))
                .collect::<Vec<_>>()
                == p.head
        });
        fits.then_some(template.head)
    }

    /// The values of one process (`num` is its process_num).
    fn process(&mut self, per: &PerProcess, num: Arg, sink: Sink) -> Option<Proc> {
        let PerProcess {
            section,
            base,
            numprocs,
            redirect,
            process_name: process_name_text,
            process_name_raw,
        } = *per;
        let at = |k: &str| format!("{}.{k}", section.name);
        let warnings = if sink == Sink::Quiet {
            Sink::Quiet
        } else {
            Sink::Warnings
        };
        let names = Names {
            process_num: Some(num),
            numprocs: Some(numprocs),
            ..base.clone()
        };
        let mut failed = false;

        let program_env = match self.value(section, "environment") {
            None => Vec::new(),
            Some(raw) => match self.expand(&raw, &at("environment"), &names, sink) {
                Some(text) => match self.environment_vars(&raw, &text, &at("environment"), sink) {
                    Some(vars) => vars,
                    None => {
                        failed = true;
                        Vec::new()
                    }
                },
                None => {
                    failed = true;
                    Vec::new()
                }
            },
        };
        let names = Names {
            program_env: &program_env,
            ..names
        };

        let mut head = Vec::new();
        let command = match self.value(section, "command") {
            None => {
                self.report(
                    sink,
                    section.file,
                    section.line,
                    &section.name,
                    "has no `command` (supervisord refuses this)".into(),
                );
                None
            }
            Some(raw) => self
                .expand(&raw, &at("command"), &names, sink)
                .and_then(|text| self.command_item(&raw, &text, &at("command"), sink)),
        };
        match command {
            Some(item) => head.push(item),
            None => failed = true,
        }

        match self.try_typed(section, "directory", &names, sink, |t| Ok(t.to_string())) {
            Ok(Some(dir)) => {
                let path = self.expand_user(&dir.value);
                if path.is_empty() {
                    self.report(
                        sink,
                        dir.file,
                        dir.line,
                        &at("directory"),
                        "is empty".into(),
                    );
                    failed = true;
                } else {
                    if !path.starts_with('/') {
                        self.report(warnings, dir.file, dir.line, &at("directory"), format!(
                            "`{path}` is relative: supervisord resolved it from its own working directory, tend resolves it from the manifest's directory"
                        ));
                    }
                    head.push(Item::leaf(
                        "cwd",
                        dir.line,
                        dir.file,
                        Value::String(escape(&path)),
                    ));
                }
            }
            Ok(None) => {}
            Err(()) => failed = true,
        }

        // [supervisord] environment first, the program's over it.
        let mut vars: Vec<EnvVar> = self.global_env.clone();
        for var in &program_env {
            match vars.iter_mut().find(|v| v.key == var.key) {
                Some(existing) => *existing = var.clone(),
                None => vars.push(var.clone()),
            }
        }
        if let Some(first) = vars.first() {
            let (line, file) = match self.value(section, "environment") {
                Some(raw) => (raw.line, raw.file),
                None => (first.line, first.file),
            };
            let items = vars
                .iter()
                .map(|v| Item::leaf(&v.key, v.line, v.file, Value::String(escape(&v.value))))
                .collect();
            head.push(Item::table("env", line, file, items));
        }

        let mut streams: [Stream; 2] = Default::default();
        for (stream, slot) in ["stdout", "stderr"].iter().zip(streams.iter_mut()) {
            let key = format!("{stream}_logfile");
            match self.logfile(section, &key, &names, sink) {
                Ok(target) => slot.target = target,
                Err(()) => failed = true,
            }
            match self.try_typed(
                section,
                &format!("{key}_maxbytes"),
                &names,
                sink,
                values::byte_size,
            ) {
                Ok(v) => slot.max = v,
                Err(()) => failed = true,
            }
            match self.try_typed(section, &format!("{key}_backups"), &names, sink, |t| {
                values::integer_at_least(t, 0)
            }) {
                Ok(v) => slot.backups = v,
                Err(()) => failed = true,
            }
            match self.try_typed(
                section,
                &format!("{stream}_syslog"),
                &names,
                sink,
                values::boolean,
            ) {
                Ok(v) => slot.syslog = v,
                Err(()) => failed = true,
            }
            match self.try_typed(
                section,
                &format!("{stream}_events_enabled"),
                &names,
                sink,
                values::boolean,
            ) {
                Ok(v) => slot.events = v,
                Err(()) => failed = true,
            }
        }
        let [out, err] = streams;
        let logs = self.logs_item(section, redirect, out, err, warnings);

        let (file, line) =
            process_name_raw.map_or((section.file, section.line), |v| (v.file, v.line));
        let name = self
            .expand_text(
                process_name_text,
                file,
                line,
                &at("process_name"),
                &names,
                sink,
            )
            .and_then(|text| match values::process_or_group_name(&text) {
                Ok(name) => Some(name),
                Err(message) => {
                    self.report(sink, file, line, &at("process_name"), message);
                    None
                }
            });
        let name = match name {
            Some(name) => name,
            None => {
                failed = true;
                String::new()
            }
        };
        (!failed).then_some(Proc { name, head, logs })
    }

    /// `stdout_logfile` / `stderr_logfile`. supervisord expands these twice (a quirk kept:
    /// a `%` left by the first expansion must itself be valid).
    fn logfile(
        &mut self,
        section: &Section,
        key: &str,
        names: &Names,
        sink: Sink,
    ) -> Result<Option<Got<LogFile>>, ()> {
        let Some(raw) = self.value(section, key) else {
            return Ok(None);
        };
        let label = format!("{}.{key}", section.name);
        let once = self.expand(&raw, &label, names, sink).ok_or(())?;
        let twice = match expand::expand(&once, &|name| self.lookup(names, raw.file, name)) {
            Ok(text) => text,
            Err(ExpandError::Unknown(name)) => {
                let message = format!(
                    "{} (supervisord expands log file names twice: after `%%` became `%`, the `%` is read again; write `%%%%`)",
                    Self::unknown_name_message(names, &name)
                );
                self.report(sink, raw.file, raw.line, &label, message);
                return Err(());
            }
            Err(ExpandError::Format(message)) => {
                self.report(sink, raw.file, raw.line, &label, format!(
                    "{message} (supervisord expands log file names twice: a literal `%` must be written `%%%%`)"
                ));
                return Err(());
            }
        };
        let value = match values::logfile(&twice) {
            LogFile::Path(p) => LogFile::Path(self.expand_user(&p)),
            other => other,
        };
        Ok(Some(Got {
            value,
            file: raw.file,
            line: raw.line,
        }))
    }

    fn command_item(
        &mut self,
        raw: &ini::Value,
        text: &str,
        key: &str,
        sink: Sink,
    ) -> Option<Item> {
        let argv = match shlex::split_command(text) {
            Ok(argv) => argv,
            Err(e) => {
                self.report(
                    sink,
                    raw.file,
                    raw.line,
                    key,
                    format!("cannot be split into words: {e} (supervisord would fail to start it)"),
                );
                return None;
            }
        };
        if argv.is_empty() {
            self.report(sink, raw.file, raw.line, key, "is empty".into());
            return None;
        }
        // tend splits `command` with POSIX shell rules; where they give another argv
        // (comments, escapes in double quotes), the argv is written out as `args`.
        if shell_words::split(text).is_ok_and(|words| words == argv) {
            Some(Item::leaf(
                "command",
                raw.line,
                raw.file,
                Value::String(escape(text)),
            ))
        } else {
            Some(Item::list(
                "args",
                raw.line,
                raw.file,
                argv.iter()
                    .map(|a| (raw.line, Value::String(escape(a))))
                    .collect(),
            ))
        }
    }

    fn logs_item(
        &mut self,
        section: &Section,
        redirect: Option<&Got<bool>>,
        out: Stream,
        err: Stream,
        warnings: Sink,
    ) -> Option<Item> {
        let at = |k: &str| format!("{}.{k}", section.name);
        let mut items = Vec::new();
        let mut merged = false;
        if let Some(r) = redirect
            && r.value
        {
            merged = true;
            items.push(Item::leaf("merge", r.line, r.file, Value::Bool(true)));
            if let Some(t) = &err.target
                && matches!(t.value, LogFile::Path(_) | LogFile::Syslog)
            {
                self.report(
                    warnings,
                    t.file,
                    t.line,
                    &at("stderr_logfile"),
                    "ignored because redirect_stderr=true (supervisord ignores it too)".into(),
                );
            }
        } else if let (Some(o), Some(e)) = (&out.target, &err.target)
            && let (LogFile::Path(a), LogFile::Path(b)) = (&o.value, &e.value)
            && a == b
            && !is_special(a)
        {
            // Both streams into one file: one writer in tend.
            merged = true;
            items.push(Item::leaf("merge", e.line, e.file, Value::Bool(true)));
        }

        let mut syslog_magic = false;
        let out_dest = self.log_target(
            section,
            "stdout",
            out.target.as_ref(),
            warnings,
            &mut syslog_magic,
            &mut items,
        );
        let err_dest = if merged {
            None
        } else {
            Some(self.log_target(
                section,
                "stderr",
                err.target.as_ref(),
                warnings,
                &mut syslog_magic,
                &mut items,
            ))
        };

        // tend rotates both files alike; supervisord had a setting per stream.
        let writes = |d: &Dest| matches!(d, Dest::Default | Dest::File);
        let mut file_streams: Vec<(&str, &Stream)> = Vec::new();
        if writes(&out_dest) {
            file_streams.push(("stdout", &out));
        }
        if let Some(d) = &err_dest
            && writes(d)
        {
            file_streams.push(("stderr", &err));
        }
        for (setting, pick, default) in [
            ("max_size", 0usize, DEFAULT_LOG_SIZE),
            ("backups", 1usize, DEFAULT_LOG_BACKUPS),
        ] {
            let get = |s: &Stream| {
                if pick == 0 {
                    s.max.clone()
                } else {
                    s.backups.clone()
                }
            };
            let suffix = if pick == 0 {
                "logfile_maxbytes"
            } else {
                "logfile_backups"
            };
            let chosen = file_streams
                .iter()
                .find_map(|(name, s)| get(s).map(|g| (*name, g)));
            let Some((chosen_stream, chosen)) = chosen else {
                continue;
            };
            let value = if pick == 0 {
                values::tend_size(chosen.value)
            } else {
                Value::Integer(chosen.value)
            };
            items.push(Item::leaf(setting, chosen.line, chosen.file, value));
            for (name, s) in &file_streams {
                let effective = get(s).map_or(default, |g| g.value);
                if *name != chosen_stream && effective != chosen.value {
                    let (file, line) =
                        get(s).map_or((section.file, section.line), |g| (g.file, g.line));
                    self.report(warnings, file, line, &at(&format!("{name}_{suffix}")), format!(
                        "tend has one `logs.{setting}` for both logs: {name}'s log gets {chosen_stream}'s {} instead of {effective}",
                        chosen.value
                    ));
                }
            }
        }

        let out_syslog = out.syslog.as_ref().is_some_and(|g| g.value);
        let err_syslog = !merged && err.syslog.as_ref().is_some_and(|g| g.value);
        if out_syslog || err_syslog || syslog_magic {
            let first = [&out.syslog, &err.syslog]
                .into_iter()
                .flatten()
                .find(|g| g.value)
                .map_or((section.line, section.file), |g| (g.line, g.file));
            items.push(Item::leaf("syslog", first.0, first.1, Value::Bool(true)));
            if !syslog_magic && !merged && out_syslog != err_syslog && err_dest.is_some() {
                let (lonely, other) = if out_syslog {
                    ("stdout", "stderr")
                } else {
                    ("stderr", "stdout")
                };
                self.report(
                    warnings,
                    section.file,
                    section.line,
                    &at(&format!("{lonely}_syslog")),
                    format!("tend sends both streams to syslog; {other} goes there too"),
                );
            }
        }

        // PROCESS_LOG events; with redirect_stderr, stderr's lines are stdout's.
        let enabled =
            |g: &Option<Got<bool>>| g.as_ref().filter(|g| g.value).map(|g| (g.line, g.file));
        let streams: Vec<(usize, usize, &str)> = [
            enabled(&out.events).map(|(l, f)| (l, f, "stdout")),
            enabled(&err.events)
                .filter(|_| !merged)
                .map(|(l, f)| (l, f, "stderr")),
        ]
        .into_iter()
        .flatten()
        .collect();
        if let Some(&(line, file, _)) = streams.first() {
            items.push(Item::list(
                "events",
                line,
                file,
                streams
                    .iter()
                    .map(|(l, _, s)| (*l, Value::String((*s).into())))
                    .collect(),
            ));
        }

        let first = items.iter().map(|i| (i.line, i.file)).min()?;
        Some(Item::table("logs", first.0, first.1, items))
    }

    fn log_target(
        &mut self,
        section: &Section,
        stream: &str,
        target: Option<&Got<LogFile>>,
        warnings: Sink,
        syslog_magic: &mut bool,
        items: &mut Vec<Item>,
    ) -> Dest {
        let Some(target) = target else {
            return Dest::Default;
        };
        let key = format!("{}.{stream}_logfile", section.name);
        let mut put = |v: &str| {
            items.push(Item::leaf(
                stream,
                target.line,
                target.file,
                Value::String(v.to_string()),
            ))
        };
        match &target.value {
            LogFile::Auto => Dest::Default,
            LogFile::None => {
                put("null");
                Dest::Null
            }
            LogFile::Syslog => {
                put("null");
                *syslog_magic = true;
                self.report(warnings, target.file, target.line, &key,
                    "`syslog` as a log file is deprecated in supervisord; mapped to logs.syslog = true with no file".into());
                Dest::Null
            }
            LogFile::Path(path) => {
                let own = if stream == "stdout" {
                    STDOUT_PATHS
                } else {
                    STDERR_PATHS
                };
                let other = if stream == "stdout" {
                    STDERR_PATHS
                } else {
                    STDOUT_PATHS
                };
                if path == "/dev/null" {
                    put("null");
                    Dest::Null
                } else if own.contains(&path.as_str()) {
                    put("inherit");
                    Dest::Inherit
                } else if other.contains(&path.as_str()) {
                    put("inherit");
                    self.report(warnings, target.file, target.line, &key, format!(
                        "`{path}` is mapped to \"inherit\", which sends {stream} to tend's own {stream}, not to the other stream"
                    ));
                    Dest::Inherit
                } else {
                    if !path.starts_with('/') {
                        self.report(warnings, target.file, target.line, &key, format!(
                            "`{path}` is relative: supervisord resolved it from its own working directory, tend resolves it from the manifest's directory"
                        ));
                    }
                    put(path);
                    Dest::File
                }
            }
        }
    }

    fn restart_items(
        &mut self,
        section: &Section,
        autorestart: Option<&Got<AutoRestart>>,
        exitcodes: Option<&Got<Vec<i64>>>,
        startsecs: Option<&Got<i64>>,
        startretries: Option<&Got<i64>>,
    ) -> Vec<Item> {
        let mut items = Vec::new();
        let policy = autorestart.map_or(AutoRestart::Unexpected, |g| g.value);
        let (line, file) = autorestart.map_or((section.line, section.file), |g| (g.line, g.file));
        let restart = match policy {
            AutoRestart::Always => "always",
            AutoRestart::Never => "never",
            AutoRestart::Unexpected => "on-failure",
        };
        items.push(Item::leaf(
            "restart",
            line,
            file,
            Value::String(restart.into()),
        ));
        if let Some(codes) = exitcodes {
            items.push(Item::list(
                "exit_codes",
                codes.line,
                codes.file,
                codes
                    .value
                    .iter()
                    .map(|c| (codes.line, Value::Integer(*c)))
                    .collect(),
            ));
        }
        if let Some(s) = startsecs {
            items.push(Item::leaf(
                "min_uptime",
                s.line,
                s.file,
                Value::String(format!("{}s", s.value)),
            ));
        }
        // supervisord's rules exactly: only failed starts (exits within startsecs) count
        // toward startretries, they are retried whatever autorestart says, with waits of
        // 1 s, 2 s, 3 s …; a process that ran past startsecs is restarted at once.
        let retries = startretries.map_or(3, |g| g.value).max(0);
        let (line, file) = startretries.map_or((section.line, section.file), |g| (g.line, g.file));
        items.push(Item::leaf(
            "restart_limit",
            line,
            file,
            Value::String("unstable".into()),
        ));
        items.push(Item::leaf(
            "max_restarts",
            line,
            file,
            Value::Integer(retries.min(i64::from(u32::MAX))),
        ));
        items.push(Item::table(
            "backoff",
            line,
            file,
            vec![
                Item::leaf("initial", line, file, Value::String("1s".into())),
                Item::leaf(
                    "max",
                    line,
                    file,
                    Value::String(format!("{}s", retries.max(1))),
                ),
                Item::leaf("growth", line, file, Value::String("linear".into())),
                Item::leaf("jitter", line, file, Value::Float(0.0)),
            ],
        ));
        items
    }

    fn depends_on(&mut self, section: &Section) -> Option<DependsOn> {
        let raw = self.value(section, "depends_on")?;
        let mut names = Vec::new();
        let mut current = String::new();
        let mut start = 0;
        for (i, c) in raw.text.chars().chain([',']).enumerate() {
            if c == ',' || c.is_whitespace() {
                if !current.is_empty() {
                    names.push((std::mem::take(&mut current), raw.line_at(&raw.text, start)));
                }
            } else {
                if current.is_empty() {
                    start = i;
                }
                current.push(c);
            }
        }
        Some(DependsOn {
            names,
            file: raw.file,
            line: raw.line,
        })
    }

    fn fcgi_socket(&mut self, section: &Section, program: &str) {
        let at = |k: &str| format!("{}.{k}", section.name);
        let names = Names {
            program: Some(program),
            supervisord_env: true,
            ..Names::default()
        };
        let owner = self.text(section, "socket_owner", &names, Sink::Errors);
        let mode = self.typed(section, "socket_mode", &names, Sink::Errors, values::octal);
        self.typed(section, "socket_backlog", &names, Sink::Errors, |t| {
            let n = values::integer(t)?;
            if (1..=65535).contains(&n) {
                Ok(n)
            } else {
                Err(format!("`{t}` is not between 1 and 65535"))
            }
        });
        let Some(socket) = self.text(section, "socket", &names, Sink::Errors) else {
            if self.value(section, "socket").is_none() {
                self.error(
                    section.file,
                    section.line,
                    &section.name,
                    "has no `socket` (supervisord refuses this)",
                );
            }
            return;
        };
        let value = socket.value.trim().to_string();
        if let Some(path) = value.strip_prefix("unix://") {
            if !path.starts_with('/') {
                self.error(
                    socket.file,
                    socket.line,
                    &at("socket"),
                    format!("the unix socket path `{path}` is not absolute"),
                );
                return;
            }
        } else {
            let tcp_ok = value
                .strip_prefix("tcp://")
                .and_then(|rest| rest.rsplit_once(':'))
                .is_some_and(|(host, port)| {
                    !host.is_empty()
                        && !host.contains(|c: char| c.is_whitespace() || c == ':')
                        && !port.is_empty()
                        && port.bytes().all(|b| b.is_ascii_digit())
                });
            if !tcp_ok {
                self.error(
                    socket.file,
                    socket.line,
                    &at("socket"),
                    format!("`{value}` is not `unix:///absolute/path` or `tcp://host:port`"),
                );
                return;
            }
            if owner.is_some() || mode.is_some() {
                self.error(section.file, section.line, &section.name,
                    "socket_owner and socket_mode only apply to unix sockets (supervisord refuses them here)");
                return;
            }
        }
        self.warn(socket.file, socket.line, &at("socket"), format!(
            "tend does not create FastCGI sockets: supervisord opened `{value}` and gave it to every process as its stdin; under tend the program gets /dev/null on stdin"
        ));
    }

    fn listener_parts(
        &mut self,
        section: &Section,
        redirect: Option<&Got<bool>>,
    ) -> Option<ListenerParts> {
        let at = |k: &str| format!("{}.{k}", section.name);
        let names = Names {
            supervisord_env: true,
            ..Names::default()
        };
        if let Some(r) = redirect
            && r.value
        {
            self.error(r.file, r.line, &at("redirect_stderr"),
                "redirect_stderr=true is not allowed for an event listener (it would mix stderr into the protocol on stdout)");
        }
        let buffer_size = self
            .typed(section, "buffer_size", &names, Sink::Errors, |t| {
                values::integer_at_least(t, 1)
            })
            .map_or(10, |g| g.value);
        let result_handler = self.setting(section, "result_handler", &names, Sink::Errors);
        let mut events: Vec<String> = Vec::new();
        if let Some(list) = self.text(section, "events", &names, Sink::Errors) {
            for event in values::list_of_strings(&list.value) {
                let upper = event.to_uppercase();
                if crate::config::events::EventType::from_name(&upper).is_none() {
                    self.error(
                        list.file,
                        list.line,
                        &at("events"),
                        format!("unknown event type `{event}`"),
                    );
                } else if !events.contains(&upper) {
                    events.push(upper);
                }
            }
        }
        if events.is_empty()
            && self
                .value(section, "events")
                .is_none_or(|v| v.text.is_empty())
        {
            self.error(
                section.file,
                section.line,
                &section.name,
                "needs an `events` line (supervisord refuses a listener without one)",
            );
        }
        if let Some(handler) = &result_handler
            && handler.value.trim() != "supervisor.dispatchers:default_handler"
        {
            let (file, line) = self.locate_setting(section, "result_handler");
            self.warn(file, line, &format!("{}.result_handler", section.name),
                "result handlers are Python code; tend uses supervisord's default (OK accepts, anything else rejects and re-sends)");
        }
        Some(ListenerParts {
            events,
            buffer_size,
            result_handler,
        })
    }

    // -------------------------------------------------------------------------------
    // The tree
    // -------------------------------------------------------------------------------

    pub(super) fn finish(
        mut self,
        tend: Vec<Item>,
        mapped: Vec<Mapped>,
    ) -> Result<Imported, Vec<Diagnostic>> {
        let (programs, listeners): (Vec<Mapped>, Vec<Mapped>) =
            mapped.into_iter().partition(|m| m.kind != Kind::Listener);

        // Service names must be unique.
        let mut taken: Vec<(String, String)> = Vec::new();
        for m in &programs {
            for s in &m.services {
                if let Some((_, other)) = taken.iter().find(|(name, _)| *name == s.name) {
                    let other = other.clone();
                    self.error(
                        m.section.file,
                        m.section.line,
                        &m.section.name,
                        format!(
                            "would be the tend service `{}`, which [{other}] already is",
                            s.name
                        ),
                    );
                } else {
                    taken.push((s.name.clone(), m.section.name.clone()));
                }
            }
        }
        let service_names: Vec<String> = taken.iter().map(|(n, _)| n.clone()).collect();
        let any_priority = programs.iter().any(|m| m.priority.is_some());

        let mut services = Vec::new();
        let mut processes = Vec::new();
        for m in &programs {
            let built = self.assemble(m, &programs, &service_names, any_priority);
            services.extend(built);
            processes.extend(m.processes.iter().cloned());
        }
        let mut listener_out = Vec::new();
        for m in &listeners {
            let built = self.assemble(m, &programs, &service_names, true);
            let mut origins = Vec::new();
            let entries: Vec<Entry> = built
                .iter()
                .map(|item| item.to_entry(&mut Vec::new(), &mut origins))
                .collect();
            let parts = m
                .listener
                .as_ref()
                .expect("UNWRAP: listeners have listener parts");
            listener_out.push(EventListener {
                section: self.section_ref(&m.section),
                events: parts.events.clone(),
                buffer_size: parts.buffer_size,
                result_handler: parts.result_handler.clone(),
                priority: m.priority.as_ref().map_or(m.default_priority, |g| g.value),
                services: Node::new(m.section.line, Value::Table(entries)),
                processes: m.processes.clone(),
            });
        }

        let supervisord_line = self
            .ini
            .section("supervisord")
            .map_or((1, 0), |s| (s.line, s.file));
        let services_line = services.first().map_or((1, 0), |s| (s.line, s.file));
        let root = [
            Item::table("tend", supervisord_line.0, supervisord_line.1, tend),
            Item::table("services", services_line.0, services_line.1, services),
        ];
        let mut origins = Vec::new();
        let entries: Vec<Entry> = root
            .iter()
            .map(|item| item.to_entry(&mut Vec::new(), &mut origins))
            .collect();
        let tree = Node::new(1, Value::Table(entries));

        let order = |files: &[PathBuf], d: &Diagnostic| {
            (
                files
                    .iter()
                    .position(|f| *f == d.file)
                    .unwrap_or(usize::MAX),
                d.line,
                d.key.clone(),
                d.message.clone(),
            )
        };
        let files = self.files.clone();
        let mut errors = std::mem::take(&mut self.errors);
        errors.sort_by_key(|d| order(&files, d));
        errors.dedup();
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut warnings = std::mem::take(&mut self.warnings);
        warnings.sort_by_key(|d| order(&files, d));
        warnings.dedup();
        Ok(Imported {
            tree,
            warnings,
            files,
            server: std::mem::take(&mut self.server),
            listeners: listener_out,
            processes,
            origins,
        })
    }

    /// The service tables of one mapped program.
    fn assemble(
        &mut self,
        m: &Mapped,
        programs: &[Mapped],
        service_names: &[String],
        with_priority: bool,
    ) -> Vec<Item> {
        let at = |k: &str| format!("{}.{k}", m.section.name);
        // Groups: the [group:x] sections, or the program's own name when split.
        let mut groups: Vec<(String, usize, usize)> = m.groups.clone();
        if m.split && groups.is_empty() {
            groups.push((m.program.clone(), m.section.file, m.section.line));
        }
        let mut group_values = Vec::new();
        for (name, file, line) in &groups {
            let tend = tend_name(name);
            if service_names.contains(&tend) {
                self.warn(*file, *line, &m.section.name, format!(
                    "group `{name}` has the name of a service, which tend does not allow: `{}` is not put in it", m.program
                ));
                continue;
            }
            if tend != *name {
                self.warn(
                    *file,
                    *line,
                    &m.section.name,
                    format!("group `{name}` is not a valid tend group name; it is called `{tend}`"),
                );
            }
            group_values.push((*line, *file, tend));
        }

        let depends = m.depends_on.as_ref().map(|d| {
            let mut values = Vec::new();
            for (name, name_line) in &d.names {
                let target = programs.iter().find(|p| p.program == *name);
                match target {
                    Some(p) => {
                        for s in &p.services {
                            values.push((*name_line, Value::String(s.name.clone())));
                        }
                    }
                    None => values.push((*name_line, Value::String(name.clone()))),
                }
            }
            Item::list("depends_on", d.line, d.file, values)
        });
        if m.kind == Kind::Listener
            && let Some(d) = &m.depends_on
        {
            self.warn(
                d.file,
                d.line,
                &at("depends_on"),
                "kept with the listener, which tend does not run yet",
            );
        }

        let mut out = Vec::new();
        for s in &m.services {
            let mut items = s.head.clone();
            items.extend(s.middle.iter().cloned());
            if with_priority {
                let (value, line, file) = m
                    .priority
                    .as_ref()
                    .map_or((m.default_priority, m.section.line, m.section.file), |g| {
                        (g.value, g.line, g.file)
                    });
                items.push(Item::leaf("priority", line, file, Value::Integer(value)));
            }
            items.extend(s.tail.iter().cloned());
            if let Some(d) = &depends {
                items.push(d.clone());
            }
            if let Some(&(line, file, _)) = group_values.first() {
                items.push(Item::list(
                    "groups",
                    line,
                    file,
                    group_values
                        .iter()
                        .map(|(l, _, g)| (*l, Value::String(g.clone())))
                        .collect(),
                ));
            }
            if let Some(logs) = &s.logs {
                items.push(logs.clone());
            }
            out.push(Item::table(&s.name, s.line, s.file, items));
        }
        out
    }
}

const STDOUT_PATHS: &[&str] = &["/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"];
const STDERR_PATHS: &[&str] = &["/dev/stderr", "/dev/fd/2", "/proc/self/fd/2"];

fn is_special(path: &str) -> bool {
    path == "/dev/null" || STDOUT_PATHS.contains(&path) || STDERR_PATHS.contains(&path)
}
