//! supervisord's XML-RPC methods (API 3.0) on top of the engine: names resolved through the
//! [`ProcessTable`], states mapped to supervisord's, faults as supervisord raises them.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Rpc;
use super::codec::Value;
use super::names::{Process, ProcessTable, Resolved};
use crate::api::AppState;
use crate::config::signal::Signal;
use crate::engine::event::InstanceStatus;
use crate::engine::lifecycle::ExitStatus;

/// supervisord's fault codes (supervisor/xmlrpc.py).
pub mod fault {
    pub const UNKNOWN_METHOD: i32 = 1;
    pub const INCORRECT_PARAMETERS: i32 = 2;
    pub const BAD_ARGUMENTS: i32 = 3;
    pub const SIGNATURE_UNSUPPORTED: i32 = 4;
    pub const SHUTDOWN_STATE: i32 = 6;
    pub const BAD_NAME: i32 = 10;
    pub const BAD_SIGNAL: i32 = 11;
    pub const NO_FILE: i32 = 20;
    pub const FAILED: i32 = 30;
    pub const ABNORMAL_TERMINATION: i32 = 40;
    pub const SPAWN_ERROR: i32 = 50;
    pub const ALREADY_STARTED: i32 = 60;
    pub const NOT_RUNNING: i32 = 70;
    pub const SUCCESS: i32 = 80;
    pub const ALREADY_ADDED: i32 = 90;
    pub const STILL_RUNNING: i32 = 91;
    pub const CANT_REREAD: i32 = 92;

    pub fn name(code: i32) -> &'static str {
        match code {
            UNKNOWN_METHOD => "UNKNOWN_METHOD",
            INCORRECT_PARAMETERS => "INCORRECT_PARAMETERS",
            BAD_ARGUMENTS => "BAD_ARGUMENTS",
            SIGNATURE_UNSUPPORTED => "SIGNATURE_UNSUPPORTED",
            SHUTDOWN_STATE => "SHUTDOWN_STATE",
            BAD_NAME => "BAD_NAME",
            BAD_SIGNAL => "BAD_SIGNAL",
            NO_FILE => "NO_FILE",
            ABNORMAL_TERMINATION => "ABNORMAL_TERMINATION",
            SPAWN_ERROR => "SPAWN_ERROR",
            ALREADY_STARTED => "ALREADY_STARTED",
            NOT_RUNNING => "NOT_RUNNING",
            SUCCESS => "SUCCESS",
            ALREADY_ADDED => "ALREADY_ADDED",
            STILL_RUNNING => "STILL_RUNNING",
            CANT_REREAD => "CANT_REREAD",
            _ => "FAILED",
        }
    }
}

/// A fault: code and text (`NAME` or `NAME: detail`, as supervisord writes them).
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub code: i32,
    pub text: String,
}

impl Fault {
    pub fn new(code: i32, detail: impl AsRef<str>) -> Fault {
        let detail = detail.as_ref();
        let text = if detail.is_empty() {
            fault::name(code).to_string()
        } else {
            format!("{}: {detail}", fault::name(code))
        };
        Fault { code, text }
    }
}

type Answer = Result<Value, Fault>;

/// Every method tend answers, for `system.listMethods`.
pub const METHODS: &[&str] = &[
    "supervisor.addProcessGroup",
    "supervisor.clearAllProcessLogs",
    "supervisor.clearLog",
    "supervisor.clearProcessLog",
    "supervisor.clearProcessLogs",
    "supervisor.getAPIVersion",
    "supervisor.getAllConfigInfo",
    "supervisor.getAllProcessInfo",
    "supervisor.getIdentification",
    "supervisor.getPID",
    "supervisor.getProcessInfo",
    "supervisor.getState",
    "supervisor.getSupervisorVersion",
    "supervisor.getVersion",
    "supervisor.readLog",
    "supervisor.readMainLog",
    "supervisor.readProcessLog",
    "supervisor.readProcessStderrLog",
    "supervisor.readProcessStdoutLog",
    "supervisor.reloadConfig",
    "supervisor.removeProcessGroup",
    "supervisor.restart",
    "supervisor.sendProcessStdin",
    "supervisor.sendRemoteCommEvent",
    "supervisor.shutdown",
    "supervisor.signalAllProcesses",
    "supervisor.signalProcess",
    "supervisor.signalProcessGroup",
    "supervisor.startAllProcesses",
    "supervisor.startProcess",
    "supervisor.startProcessGroup",
    "supervisor.stopAllProcesses",
    "supervisor.stopProcess",
    "supervisor.stopProcessGroup",
    "supervisor.tailProcessLog",
    "supervisor.tailProcessStderrLog",
    "supervisor.tailProcessStdoutLog",
    "system.listMethods",
    "system.methodHelp",
    "system.methodSignature",
    "system.multicall",
];

/// Whether a call acts (and so goes to the audit): everything but reading.
pub fn changes_something(method: &str) -> bool {
    let name = method.rsplit('.').next().unwrap_or(method);
    [
        "start",
        "stop",
        "signal",
        "shutdown",
        "restart",
        "clear",
        "add",
        "remove",
        "reload",
        "send",
        "multicall",
    ]
    .iter()
    .any(|verb| name.starts_with(verb))
}

/// How much log text one multicall may return in all: each call reads at most
/// [`MAX_READ`], and a few hundred calls must not make tend allocate gigabytes.
const MAX_MULTICALL_TEXT: usize = 32 << 20;

/// Run one call. `system.multicall` runs its calls in order, each answer in its place.
pub async fn call(state: &AppState, rpc: &Rpc, method: &str, params: &[Value]) -> Answer {
    if method == "system.multicall" {
        return multicall(state, rpc, params).await;
    }
    single(state, rpc, method, params).await
}

async fn multicall(state: &AppState, rpc: &Rpc, params: &[Value]) -> Answer {
    let [Value::Array(calls)] = params else {
        return Err(Fault::new(fault::INCORRECT_PARAMETERS, ""));
    };
    let mut answers = Vec::with_capacity(calls.len());
    let mut text = 0usize;
    for call in calls {
        let method = call.get("methodName").and_then(Value::as_str);
        let params = call.get("params").and_then(Value::as_array).unwrap_or(&[]);
        let answer = match method {
            None => Err(Fault::new(fault::INCORRECT_PARAMETERS, "no methodName")),
            Some("system.multicall") => Err(Fault::new(
                fault::INCORRECT_PARAMETERS,
                "recursive system.multicall forbidden",
            )),
            Some(_) if text > MAX_MULTICALL_TEXT => Err(Fault::new(
                fault::FAILED,
                "this multicall's answers are too large already; ask for less at once",
            )),
            Some(method) => single(state, rpc, method, params).await,
        };
        if let Ok(value) = &answer {
            text += text_size(value);
        }
        answers.push(match answer {
            Ok(value) => value,
            Err(f) => Value::Struct(vec![
                ("faultCode".into(), Value::Int(f.code)),
                ("faultString".into(), Value::String(f.text)),
            ]),
        });
    }
    Ok(Value::Array(answers))
}

async fn single(state: &AppState, rpc: &Rpc, method: &str, params: &[Value]) -> Answer {
    let Some((namespace, name)) = method.split_once('.') else {
        return Err(Fault::new(fault::UNKNOWN_METHOD, ""));
    };
    if namespace == "system" {
        return system(name, params);
    }
    if namespace != "supervisor" || name.starts_with('_') {
        return Err(Fault::new(fault::UNKNOWN_METHOD, ""));
    }
    if rpc.shutting_down.load(Ordering::Relaxed) && name != "sendRemoteCommEvent" {
        return Err(Fault::new(fault::SHUTDOWN_STATE, ""));
    }
    let args = Args(params);
    let table = rpc.table();
    match name {
        "getAPIVersion" | "getVersion" => {
            args.none()?;
            Ok(Value::String(API_VERSION.into()))
        }
        "getSupervisorVersion" => {
            args.none()?;
            Ok(Value::String(env!("CARGO_PKG_VERSION").into()))
        }
        "getIdentification" => {
            args.none()?;
            Ok(Value::String(rpc.identifier.clone()))
        }
        "getState" => {
            args.none()?;
            Ok(Value::Struct(vec![
                ("statecode".into(), Value::Int(1)),
                ("statename".into(), Value::String("RUNNING".into())),
            ]))
        }
        "getPID" => {
            args.none()?;
            Ok(Value::Int(std::process::id() as i32))
        }
        "readLog" | "readMainLog" => {
            let (offset, length) = (args.int(0)?, args.int(1)?);
            args.count(2)?;
            let file = state.state_dir.join("tend.log");
            off_the_engine(move || read_file(&file, offset, length))
                .await?
                .map(Value::String)
        }
        "clearLog" => {
            args.none()?;
            let file = state.state_dir.join("tend.log");
            off_the_engine(move || truncate(&file)).await??;
            Ok(Value::Bool(true))
        }
        "shutdown" => {
            args.none()?;
            rpc.shutting_down.store(true, Ordering::Relaxed);
            state.shutdown.notify_one();
            Ok(Value::Bool(true))
        }
        "reloadConfig" => {
            args.none()?;
            super::groups::reload_config(rpc).await
        }
        "addProcessGroup" => {
            let name = args.string(0)?;
            args.count(1)?;
            super::groups::add_group(state, rpc, name).await
        }
        "removeProcessGroup" => {
            let name = args.string(0)?;
            args.count(1)?;
            super::groups::remove_group(state, rpc, name).await
        }
        "getProcessInfo" => {
            let name = args.string(0)?;
            args.count(1)?;
            let process = one_process(&table, name)?;
            let status = status_of(state, process).await?;
            Ok(process_info(process, &status, SystemTime::now()))
        }
        "getAllProcessInfo" => {
            args.none()?;
            let statuses = all_statuses(state).await?;
            let now = SystemTime::now();
            let infos = table
                .processes
                .iter()
                .filter_map(|p| {
                    let status = statuses.iter().find(|s| s.name == p.instance)?;
                    Some(process_info(p, status, now))
                })
                .collect();
            Ok(Value::Array(infos))
        }
        "getAllConfigInfo" => {
            args.none()?;
            super::groups::config_infos(rpc).await
        }
        "restart" => {
            args.none()?;
            super::groups::restart(state, rpc).await
        }
        "startProcess" | "stopProcess" => {
            let action = start_or_stop_of(name);
            let process_name = args.string(0)?;
            let wait = args.opt_bool(1)?.unwrap_or(true);
            args.at_most(2)?;
            match resolve(&table, process_name)? {
                Resolved::Group(members) => group_action(state, action, &members, wait).await,
                Resolved::Process(p) => {
                    start_or_stop(state, p, action, wait).await.map(Value::Bool)
                }
            }
        }
        "startProcessGroup" | "stopProcessGroup" => {
            let action = start_or_stop_of(name);
            let group_name = args.string(0)?;
            let wait = args.opt_bool(1)?.unwrap_or(true);
            args.at_most(2)?;
            let members = group(&table, group_name)?;
            group_action(state, action, &members, wait).await
        }
        "startAllProcesses" | "stopAllProcesses" => {
            let action = start_or_stop_of(name);
            let wait = args.opt_bool(0)?.unwrap_or(true);
            args.at_most(1)?;
            let all: Vec<&Process> = table.processes.iter().collect();
            group_action(state, action, &all, wait).await
        }
        "signalProcess" => {
            let (name, signal) = (args.string(0)?, parse_signal(args.signal(1)?)?);
            args.count(2)?;
            match resolve(&table, name)? {
                Resolved::Group(members) => {
                    group_action(state, Action::Signal(signal), &members, true).await
                }
                Resolved::Process(p) => send_signal(state, p, signal).await.map(Value::Bool),
            }
        }
        "signalProcessGroup" => {
            let (name, signal) = (args.string(0)?, parse_signal(args.signal(1)?)?);
            args.count(2)?;
            let members = group(&table, name)?;
            group_action(state, Action::Signal(signal), &members, true).await
        }
        "signalAllProcesses" => {
            let signal = parse_signal(args.signal(0)?)?;
            args.count(1)?;
            let all: Vec<&Process> = table.processes.iter().collect();
            group_action(state, Action::Signal(signal), &all, true).await
        }
        "readProcessStdoutLog" | "readProcessLog" | "readProcessStderrLog" => {
            let (name, offset, length) = (args.string(0)?, args.int(1)?, args.int(2)?);
            args.count(3)?;
            let process = one_process(&table, name)?;
            let file = log_file(process, method.contains("Stderr"))
                .ok_or_else(|| Fault::new(fault::NO_FILE, process.namespec()))?;
            let file = file.to_path_buf();
            off_the_engine(move || read_file(&file, offset, length))
                .await?
                .map(Value::String)
        }
        "tailProcessStdoutLog" | "tailProcessLog" | "tailProcessStderrLog" => {
            let (name, offset, length) = (args.string(0)?, args.int(1)?, args.int(2)?);
            args.count(3)?;
            let process = one_process(&table, name)?;
            // supervisord: no log file (or none yet) is an empty answer, not a fault.
            match log_file(process, method.contains("Stderr")).filter(|f| f.exists()) {
                Some(file) => {
                    let file = file.to_path_buf();
                    off_the_engine(move || tail_file(&file, offset, length)).await
                }
                None => Ok(Value::Array(vec![
                    Value::String(String::new()),
                    Value::Int(0),
                    Value::Bool(false),
                ])),
            }
        }
        "clearProcessLogs" | "clearProcessLog" => {
            let name = args.string(0)?;
            args.count(1)?;
            let process = one_process(&table, name)?;
            let process = process.clone();
            off_the_engine(move || clear_logs(&process)).await??;
            Ok(Value::Bool(true))
        }
        "clearAllProcessLogs" => {
            args.none()?;
            let results = table
                .processes
                .iter()
                .map(|p| {
                    // Truncating is quick (no data is read): done in place.
                    let outcome = clear_logs(p).map(|_| ());
                    result_struct(p, outcome)
                })
                .collect();
            Ok(Value::Array(results))
        }
        "sendProcessStdin" => {
            let name = args.string(0)?;
            args.string(1)?;
            args.count(2)?;
            let process = one_process(&table, name)?;
            let status = status_of(state, process).await?;
            if status.pid.is_none() {
                return Err(Fault::new(fault::NOT_RUNNING, process.namespec()));
            }
            // tend gives its children /dev/null as stdin: there is no pipe to write to.
            Err(Fault::new(fault::NO_FILE, process.namespec()))
        }
        "sendRemoteCommEvent" => {
            let (kind, data) = (args.string(0)?, args.string(1)?);
            args.count(2)?;
            // Nobody subscribed (or no listeners at all) is fine, as in supervisord.
            if let Some(events) = &rpc.remote_events {
                let _ = events.send((kind.to_string(), data.to_string()));
            }
            Ok(Value::Bool(true))
        }
        _ => Err(Fault::new(fault::UNKNOWN_METHOD, "")),
    }
}

const API_VERSION: &str = "3.0";

fn text_size(value: &Value) -> usize {
    match value {
        Value::String(s) => s.len(),
        Value::Array(items) => items.iter().map(text_size).sum(),
        Value::Struct(members) => members.iter().map(|(k, v)| k.len() + text_size(v)).sum(),
        _ => 8,
    }
}

fn system(name: &str, params: &[Value]) -> Answer {
    let args = Args(params);
    match name {
        "listMethods" => {
            args.none()?;
            Ok(Value::Array(
                METHODS.iter().map(|m| Value::String((*m).into())).collect(),
            ))
        }
        "methodHelp" => {
            let method = args.string(0)?;
            args.count(1)?;
            if !METHODS.contains(&method) {
                return Err(Fault::new(fault::SIGNATURE_UNSUPPORTED, ""));
            }
            Ok(Value::String(format!(
                "{method}: see supervisord's XML-RPC API documentation (version 3.0)"
            )))
        }
        "methodSignature" => {
            let method = args.string(0)?;
            args.count(1)?;
            if !METHODS.contains(&method) {
                return Err(Fault::new(fault::SIGNATURE_UNSUPPORTED, ""));
            }
            Ok(Value::Array(vec![Value::String("undef".into())]))
        }
        _ => Err(Fault::new(fault::UNKNOWN_METHOD, "")),
    }
}

/// Positional parameters with supervisord's INCORRECT_PARAMETERS for a wrong shape.
struct Args<'a>(&'a [Value]);

impl Args<'_> {
    fn wrong() -> Fault {
        Fault::new(fault::INCORRECT_PARAMETERS, "")
    }
    fn none(&self) -> Result<(), Fault> {
        self.count(0)
    }
    fn count(&self, n: usize) -> Result<(), Fault> {
        if self.0.len() == n {
            Ok(())
        } else {
            Err(Self::wrong())
        }
    }
    fn at_most(&self, n: usize) -> Result<(), Fault> {
        if self.0.len() <= n {
            Ok(())
        } else {
            Err(Self::wrong())
        }
    }
    fn string(&self, i: usize) -> Result<&str, Fault> {
        self.0
            .get(i)
            .and_then(Value::as_str)
            .ok_or_else(Self::wrong)
    }
    fn int(&self, i: usize) -> Result<i64, Fault> {
        self.0
            .get(i)
            .and_then(Value::as_int)
            .map(i64::from)
            .ok_or_else(Self::wrong)
    }
    fn opt_bool(&self, i: usize) -> Result<Option<bool>, Fault> {
        match self.0.get(i) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::Int(n)) => Ok(Some(*n != 0)),
            Some(_) => Err(Self::wrong()),
        }
    }
    /// A signal is a name or a number, sent as a string or an int.
    fn signal(&self, i: usize) -> Result<String, Fault> {
        match self.0.get(i) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Int(n)) => Ok(n.to_string()),
            _ => Err(Self::wrong()),
        }
    }
}

fn parse_signal(text: String) -> Result<Signal, Fault> {
    text.parse::<Signal>()
        .map_err(|_| Fault::new(fault::BAD_SIGNAL, text))
}

fn resolve<'a>(table: &'a ProcessTable, namespec: &str) -> Result<Resolved<'a>, Fault> {
    table
        .resolve(namespec)
        .ok_or_else(|| Fault::new(fault::BAD_NAME, namespec))
}

fn one_process<'a>(table: &'a ProcessTable, namespec: &str) -> Result<&'a Process, Fault> {
    match resolve(table, namespec)? {
        Resolved::Process(p) => Ok(p),
        Resolved::Group(_) => Err(Fault::new(fault::BAD_NAME, namespec)),
    }
}

fn group<'a>(table: &'a ProcessTable, name: &str) -> Result<Vec<&'a Process>, Fault> {
    let members: Vec<&Process> = table.processes.iter().filter(|p| p.group == name).collect();
    if members.is_empty() {
        return Err(Fault::new(fault::BAD_NAME, name));
    }
    Ok(members)
}

async fn all_statuses(state: &AppState) -> Result<Vec<std::sync::Arc<InstanceStatus>>, Fault> {
    match state.engine.status(Vec::new()).await {
        Ok(Ok(statuses)) => Ok(statuses),
        _ => Err(Fault::new(fault::FAILED, "the engine is not answering")),
    }
}

async fn status_of(
    state: &AppState,
    process: &Process,
) -> Result<std::sync::Arc<InstanceStatus>, Fault> {
    match state.engine.status(vec![process.instance.clone()]).await {
        Ok(Ok(mut statuses)) if !statuses.is_empty() => Ok(statuses.remove(0)),
        Ok(_) => Err(Fault::new(fault::BAD_NAME, process.namespec())),
        Err(_) => Err(Fault::new(fault::FAILED, "the engine is not answering")),
    }
}

/// supervisord's state for a tend instance: a running process is STARTING until it counts
/// as started (ready: up past min_uptime, or its readiness probe passed).
pub fn supervisor_state(status: &InstanceStatus) -> (i32, &'static str) {
    match status.state {
        "stopped" => (0, "STOPPED"),
        "waiting" | "starting" => (10, "STARTING"),
        "running" if status.ready || status.is_task => (20, "RUNNING"),
        "running" => (10, "STARTING"),
        "backoff" => (30, "BACKOFF"),
        "stopping" => (40, "STOPPING"),
        "exited" => (100, "EXITED"),
        "fatal" => (200, "FATAL"),
        _ => (1000, "UNKNOWN"),
    }
}

/// STARTING, RUNNING and BACKOFF: what supervisord calls running.
fn is_running_state(status: &InstanceStatus) -> bool {
    matches!(supervisor_state(status).0, 10 | 20 | 30)
}

fn epoch(time: SystemTime) -> i32 {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    // XML-RPC ints are 32-bit; supervisord caps the same way.
    secs.min(i32::MAX as u64) as i32
}

fn process_info(process: &Process, status: &InstanceStatus, now: SystemTime) -> Value {
    let (code, statename) = supervisor_state(status);
    let start = status.last_start.map_or(0, epoch);
    let stopped = matches!(code, 0 | 100 | 200);
    let stop = if stopped && status.last_start.is_some() {
        epoch(status.changed_at)
    } else {
        0
    };
    let exitstatus = match status.last_exit {
        Some(ExitStatus::Code(code)) => code,
        Some(ExitStatus::Signal(_)) => -1,
        None => 0,
    };
    let spawnerr = if matches!(code, 30 | 200) {
        status.reason.clone()
    } else {
        String::new()
    };
    let description = match code {
        20 => {
            let up = status
                .last_start
                .and_then(|s| now.duration_since(s).ok())
                .unwrap_or_default();
            format!("pid {}, uptime {}", status.pid.unwrap_or(0), uptime(up))
        }
        30 | 200 if spawnerr.is_empty() => {
            format!("unknown error (try \"tail {}\")", process.namespec())
        }
        30 | 200 => spawnerr.clone(),
        0 | 100 if status.last_start.is_none() => "Not started".into(),
        0 | 100 => local_time(status.changed_at),
        _ => String::new(),
    };
    let path = |p: &Option<std::path::PathBuf>| {
        p.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    Value::Struct(vec![
        ("name".into(), Value::String(process.name.clone())),
        ("group".into(), Value::String(process.group.clone())),
        ("description".into(), Value::String(description)),
        ("start".into(), Value::Int(start)),
        ("stop".into(), Value::Int(stop)),
        ("now".into(), Value::Int(epoch(now))),
        ("state".into(), Value::Int(code)),
        ("statename".into(), Value::String(statename.into())),
        ("spawnerr".into(), Value::String(spawnerr)),
        ("exitstatus".into(), Value::Int(exitstatus)),
        ("logfile".into(), Value::String(path(&process.stdout_log))),
        (
            "stdout_logfile".into(),
            Value::String(path(&process.stdout_log)),
        ),
        (
            "stderr_logfile".into(),
            Value::String(path(&process.stderr_log)),
        ),
        ("pid".into(), Value::Int(status.pid.unwrap_or(0) as i32)),
    ])
}

/// Python's `str(timedelta)` of whole seconds: `0:01:02`, `1 day, 2:03:04`.
fn uptime(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let clock = format!("{}:{:02}:{:02}", rest / 3600, rest % 3600 / 60, rest % 60);
    match days {
        0 => clock,
        1 => format!("1 day, {clock}"),
        n => format!("{n} days, {clock}"),
    }
}

/// `%b %d %I:%M %p` in local time, as supervisord shows when a process stopped.
fn local_time(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as libc::time_t;
    // SAFETY: localtime_r and strftime write only into the buffers given to them.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&secs, &mut tm).is_null() {
            return String::new();
        }
        let mut buffer = [0u8; 64];
        let written = libc::strftime(
            buffer.as_mut_ptr().cast(),
            buffer.len(),
            c"%b %d %I:%M %p".as_ptr(),
            &tm,
        );
        String::from_utf8_lossy(&buffer[..written]).into_owned()
    }
}

pub(super) fn config_info(process: &Process, inuse: bool) -> Value {
    let c = &process.config;
    let text = |s: &str| Value::String(s.to_string());
    let optional = |s: &Option<String>| Value::String(s.clone().unwrap_or_else(|| "none".into()));
    let autorestart = match c.autorestart {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        other => text(other),
    };
    Value::Struct(vec![
        ("autorestart".into(), autorestart),
        ("autostart".into(), Value::Bool(c.autostart)),
        ("command".into(), text(&c.command)),
        ("directory".into(), optional(&c.directory)),
        (
            "exitcodes".into(),
            Value::Array(c.exitcodes.iter().map(|&e| Value::Int(e)).collect()),
        ),
        ("group".into(), text(&process.group)),
        ("group_prio".into(), Value::Int(clamp(c.priority))),
        ("inuse".into(), Value::Bool(inuse)),
        ("killasgroup".into(), Value::Bool(true)),
        ("name".into(), text(&process.name)),
        ("process_prio".into(), Value::Int(clamp(c.priority))),
        ("redirect_stderr".into(), Value::Bool(c.redirect_stderr)),
        ("serverurl".into(), text("auto")),
        (
            "startretries".into(),
            Value::Int(clamp(i64::from(c.startretries))),
        ),
        ("startsecs".into(), Value::Int(clamp(c.startsecs as i64))),
        ("stderr_capture_maxbytes".into(), Value::Int(0)),
        ("stderr_events_enabled".into(), Value::Bool(false)),
        ("stderr_logfile".into(), text(&c.stderr_logfile)),
        (
            "stderr_logfile_backups".into(),
            Value::Int(clamp(i64::from(c.logfile_backups))),
        ),
        (
            "stderr_logfile_maxbytes".into(),
            Value::Int(clamp(c.logfile_maxbytes as i64)),
        ),
        ("stderr_syslog".into(), Value::Bool(c.syslog)),
        ("stdout_capture_maxbytes".into(), Value::Int(0)),
        ("stdout_events_enabled".into(), Value::Bool(false)),
        ("stdout_logfile".into(), text(&c.stdout_logfile)),
        (
            "stdout_logfile_backups".into(),
            Value::Int(clamp(i64::from(c.logfile_backups))),
        ),
        (
            "stdout_logfile_maxbytes".into(),
            Value::Int(clamp(c.logfile_maxbytes as i64)),
        ),
        ("stdout_syslog".into(), Value::Bool(c.syslog)),
        ("stopsignal".into(), Value::Int(c.stopsignal)),
        (
            "stopwaitsecs".into(),
            Value::Int(clamp(c.stopwaitsecs as i64)),
        ),
        ("uid".into(), optional(&c.user)),
    ])
}

fn clamp(n: i64) -> i32 {
    n.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// `start…` or `stop…` by the method's name.
fn start_or_stop_of(method: &str) -> Action {
    if method.starts_with("start") {
        Action::Start
    } else {
        Action::Stop
    }
}

#[derive(Clone, Copy)]
enum Action {
    Start,
    Stop,
    Signal(Signal),
}

/// `startProcess` / `stopProcess` for one process: supervisord's precondition (not yet
/// running / running), then the same start or stop as a group's.
async fn start_or_stop(
    state: &AppState,
    process: &Process,
    action: Action,
    wait: bool,
) -> Result<bool, Fault> {
    let running = is_running_state(&*status_of(state, process).await?);
    match action {
        Action::Start if running => Err(Fault::new(fault::ALREADY_STARTED, process.namespec())),
        Action::Stop if !running => Err(Fault::new(fault::NOT_RUNNING, process.namespec())),
        _ => {
            let outcomes = engine_start_or_stop(state, action, &[process], wait).await?;
            match outcomes.into_iter().next() {
                Some((_, Err(fault))) => Err(fault),
                _ => Ok(true),
            }
        }
    }
}

/// Start or stop these processes in one engine request (the engine orders them by
/// dependencies and priority, as supervisord orders a group by priority). Without `wait`
/// it runs in the background and each counts as done. Each outcome is the fault
/// supervisord would give: SPAWN_ERROR or ABNORMAL_TERMINATION for a start, FAILED for a
/// stop.
async fn engine_start_or_stop(
    state: &AppState,
    action: Action,
    processes: &[&Process],
    wait: bool,
) -> Result<Vec<(String, Result<(), Fault>)>, Fault> {
    let targets: Vec<String> = processes.iter().map(|p| p.instance.clone()).collect();
    let stop = matches!(action, Action::Stop);
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    if !wait {
        let engine = state.engine.clone();
        let done = targets.iter().map(|i| (i.clone(), Ok(()))).collect();
        tokio::spawn(async move {
            let _ = if stop {
                engine.stop(targets).await
            } else {
                engine.start(targets).await
            };
        });
        return Ok(done);
    }
    let answer = if stop {
        state.engine.stop(targets).await
    } else {
        state.engine.start(targets).await
    };
    let outcomes = answer
        .map_err(|_| Fault::new(fault::FAILED, "the engine is not answering"))?
        .map_err(|e| Fault::new(fault::BAD_NAME, e.0))?;
    Ok(outcomes
        .into_iter()
        .map(|(instance, outcome)| {
            let process = processes.iter().find(|p| p.instance == instance);
            let name = process.map_or(instance.clone(), |p| p.namespec());
            let fault = |reason: String| match action {
                Action::Start if reason.starts_with("spawn failed") => {
                    Fault::new(fault::SPAWN_ERROR, &name)
                }
                Action::Start => Fault::new(fault::ABNORMAL_TERMINATION, &name),
                _ => Fault::new(fault::FAILED, reason),
            };
            (instance, outcome.map_err(fault))
        })
        .collect())
}

async fn send_signal(state: &AppState, process: &Process, signal: Signal) -> Result<bool, Fault> {
    let status = status_of(state, process).await?;
    if !matches!(supervisor_state(&status).0, 10 | 20 | 40) || status.pid.is_none() {
        return Err(Fault::new(fault::NOT_RUNNING, process.namespec()));
    }
    let outcomes = state
        .engine
        .signal(signal, vec![process.instance.clone()])
        .await
        .map_err(|_| Fault::new(fault::FAILED, "the engine is not answering"))?
        .map_err(|e| Fault::new(fault::BAD_NAME, e.0))?;
    match outcomes.into_iter().next() {
        Some((_, Err(reason))) => Err(Fault::new(fault::FAILED, reason)),
        _ => Ok(true),
    }
}

/// A group or `all` action: only the processes it applies to are touched (start: those not
/// running; stop: those running), each with a result struct.
async fn group_action(
    state: &AppState,
    action: Action,
    members: &[&Process],
    wait: bool,
) -> Answer {
    let statuses = all_statuses(state).await?;
    let applies = |p: &&Process| {
        statuses
            .iter()
            .find(|s| s.name == p.instance)
            .is_some_and(|s| match action {
                Action::Start => !is_running_state(s),
                Action::Stop => is_running_state(s),
                // supervisord signals only RUNNING, STARTING and STOPPING processes.
                Action::Signal(_) => matches!(supervisor_state(s).0, 10 | 20 | 40),
            })
    };
    let chosen: Vec<&Process> = members.iter().copied().filter(applies).collect();
    // One engine request for the whole set: the engine orders it (dependencies, priority)
    // and runs the instances concurrently, as supervisord starts a group in priority order.
    let outcomes: Vec<(String, Result<(), Fault>)> = match action {
        Action::Signal(signal) => {
            let mut out = Vec::new();
            for p in &chosen {
                out.push((
                    p.instance.clone(),
                    send_signal(state, p, signal).await.map(|_| ()),
                ));
            }
            out
        }
        Action::Start | Action::Stop => engine_start_or_stop(state, action, &chosen, wait).await?,
    };
    let results = chosen
        .iter()
        .filter_map(|p| {
            let (_, outcome) = outcomes.iter().find(|(i, _)| *i == p.instance)?;
            Some(result_struct(p, outcome.clone().map(|_| ())))
        })
        .collect();
    Ok(Value::Array(results))
}

fn result_struct(process: &Process, outcome: Result<(), Fault>) -> Value {
    let (status, description) = match outcome {
        Ok(()) => (fault::SUCCESS, "OK".to_string()),
        Err(f) => (f.code, f.text),
    };
    Value::Struct(vec![
        ("name".into(), Value::String(process.name.clone())),
        ("group".into(), Value::String(process.group.clone())),
        ("status".into(), Value::Int(status)),
        ("description".into(), Value::String(description)),
    ])
}

/// File work off the engine's one thread: a log read may be megabytes.
async fn off_the_engine<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Fault> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Fault::new(fault::FAILED, e.to_string()))
}

fn log_file(process: &Process, stderr: bool) -> Option<&Path> {
    if stderr {
        process.stderr_log.as_deref()
    } else {
        process.stdout_log.as_deref()
    }
}

fn clear_logs(process: &Process) -> Result<bool, Fault> {
    for file in [&process.stdout_log, &process.stderr_log]
        .into_iter()
        .flatten()
    {
        truncate(file)?;
    }
    Ok(true)
}

fn truncate(path: &Path) -> Result<(), Fault> {
    match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(file) => file
            .set_len(0)
            .map_err(|e| Fault::new(fault::FAILED, e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Fault::new(fault::FAILED, e.to_string())),
    }
}

/// supervisord's `readFile`: a negative offset with length 0 is the last |offset| bytes;
/// a non-negative offset reads `length` bytes from there (0: to the end).
pub fn read_file(path: &Path, offset: i64, length: i64) -> Result<String, Fault> {
    if (offset < 0 && length != 0) || length < 0 {
        return Err(Fault::new(fault::BAD_ARGUMENTS, ""));
    }
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Fault::new(fault::NO_FILE, path.display().to_string()));
        }
        Err(e) => return Err(Fault::new(fault::FAILED, e.to_string())),
    };
    let failed = |e: std::io::Error| Fault::new(fault::FAILED, e.to_string());
    let size = file.seek(SeekFrom::End(0)).map_err(failed)?;
    let (start, count) = if offset < 0 {
        let back = offset.unsigned_abs();
        (size.saturating_sub(back), back)
    } else if length == 0 {
        (offset as u64, u64::MAX)
    } else {
        (offset as u64, length as u64)
    };
    file.seek(SeekFrom::Start(start)).map_err(failed)?;
    let mut data = Vec::new();
    file.take(count.min(MAX_READ))
        .read_to_end(&mut data)
        .map_err(failed)?;
    Ok(String::from_utf8_lossy(&data).into_owned())
}

/// At most this much log text in one answer, so a huge file cannot exhaust memory.
const MAX_READ: u64 = 16 << 20;

/// supervisord's `tailFile`: `[bytes, new offset, overflow]`; a missing file is no fault.
pub fn tail_file(path: &Path, offset: i64, length: i64) -> Value {
    let answer = |data: &[u8], offset: i64, overflow: bool| {
        Value::Array(vec![
            Value::String(String::from_utf8_lossy(data).into_owned()),
            Value::Int(clamp(offset)),
            Value::Bool(overflow),
        ])
    };
    let Ok(mut file) = std::fs::File::open(path) else {
        return answer(b"", offset, false);
    };
    let Ok(size) = file.seek(SeekFrom::End(0)) else {
        return answer(b"", offset, false);
    };
    let size = size as i64;
    let (mut offset, mut length) = (offset, length.clamp(0, MAX_READ as i64));
    let mut overflow = false;
    if size > offset.saturating_add(length) {
        overflow = true;
        offset = size - 1;
    }
    if offset.saturating_add(length) > size {
        if offset > size - 1 {
            length = 0;
        }
        offset = size - length;
    }
    offset = offset.max(0);
    let mut data = Vec::new();
    if length > 0 && file.seek(SeekFrom::Start(offset as u64)).is_ok() {
        let _ = file.take(length as u64).read_to_end(&mut data);
    }
    answer(&data, size, overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_reads_like_python_timedelta() {
        assert_eq!(uptime(Duration::from_secs(62)), "0:01:02");
        assert_eq!(uptime(Duration::from_secs(86_400 + 7384)), "1 day, 2:03:04");
        assert_eq!(
            uptime(Duration::from_secs(3 * 86_400 + 5)),
            "3 days, 0:00:05"
        );
    }

    #[test]
    fn read_and_tail_follow_supervisords_offset_rules() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        std::fs::write(&path, b"0123456789").unwrap();
        assert_eq!(read_file(&path, -4, 0).unwrap(), "6789");
        assert_eq!(read_file(&path, -100, 0).unwrap(), "0123456789");
        assert_eq!(read_file(&path, 2, 3).unwrap(), "234");
        assert_eq!(read_file(&path, 7, 0).unwrap(), "789");
        assert_eq!(
            read_file(&path, -1, 1).unwrap_err().code,
            fault::BAD_ARGUMENTS
        );
        assert_eq!(
            read_file(&dir.path().join("none"), 0, 0).unwrap_err().code,
            fault::NO_FILE
        );
        let tail = |o, l| match tail_file(&path, o, l) {
            Value::Array(v) => v,
            other => panic!("{other:?}"),
        };
        // tail -f's first call: offset 0, length 1600 on a small file: everything.
        assert_eq!(
            tail(0, 1600),
            [
                Value::String("0123456789".into()),
                Value::Int(10),
                Value::Bool(false)
            ]
        );
        // Larger than offset + length: the last `length` bytes, with overflow.
        assert_eq!(
            tail(0, 4),
            [
                Value::String("6789".into()),
                Value::Int(10),
                Value::Bool(true)
            ]
        );
        // Nothing new since the last offset.
        assert_eq!(
            tail(10, 1600),
            [
                Value::String(String::new()),
                Value::Int(10),
                Value::Bool(false)
            ]
        );
    }
}
