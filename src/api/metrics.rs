//! `GET /metrics`: the Prometheus text format (0.0.4), rendered on each scrape from the
//! instances' status snapshots and the log counters: no registry to keep in step with the
//! engine, and nothing is computed between scrapes.

use std::fmt::Write;
use std::time::SystemTime;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use crate::api::{ApiError, AppState};
use crate::engine::event::InstanceStatus;
use crate::engine::lifecycle::RestartCause;
use crate::logs::{LogSink, Stream};

const STATES: [&str; 8] = [
    "stopped", "waiting", "starting", "running", "backoff", "stopping", "exited", "fatal",
];

pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let statuses = state.engine.status(Vec::new()).await??;
    let own = OwnProcess::read(state.started_at);
    let history_dropped = state.history.as_ref().map(|h| h.dropped());
    let text = render(
        &statuses,
        &state.logs,
        &own,
        history_dropped,
        Instant::now(),
    );
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// tend's own process, as the standard `process_*` metrics describe it.
#[derive(Debug, Default)]
pub struct OwnProcess {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub open_fds: u64,
    pub max_fds: u64,
    pub start_time: f64,
}

impl OwnProcess {
    pub fn read(started_at: SystemTime) -> OwnProcess {
        let mut own = OwnProcess {
            start_time: started_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
            ..OwnProcess::default()
        };
        // Only tend's own time: /proc/self/stat's cutime would add every reaped child.
        if let Ok(usage) = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        {
            let seconds =
                |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1_000_000.0;
            own.cpu_seconds = seconds(usage.user_time()) + seconds(usage.system_time());
        }
        if let Ok(statm) = std::fs::read_to_string("/proc/self/statm") {
            let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
                .ok()
                .flatten()
                .unwrap_or(4096) as u64;
            let mut fields = statm
                .split_whitespace()
                .map(|f| f.parse::<u64>().unwrap_or(0));
            own.virtual_bytes = fields.next().unwrap_or(0) * page;
            own.resident_bytes = fields.next().unwrap_or(0) * page;
        }
        if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
            own.open_fds = entries.count() as u64;
        }
        if let Ok((soft, _)) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        {
            own.max_fds = soft;
        }
        own
    }
}

/// One metric family: its HELP and TYPE lines, then its samples.
struct Family<'a> {
    out: &'a mut String,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &str, kind: &str, help: &str) -> Family<'a> {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Family { out }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (key, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(key);
                self.out.push_str("=\"");
                escape_label(self.out, val);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        write_value(self.out, value);
        self.out.push('\n');
    }
}

fn escape_label(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn write_value(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        let _ = write!(out, "{}", value as i64);
    } else {
        let _ = write!(out, "{value}");
    }
}

fn flag(on: bool) -> f64 {
    if on { 1.0 } else { 0.0 }
}

/// The whole exposition; pure, so tests and the benchmark call it directly.
pub fn render(
    statuses: &[std::sync::Arc<InstanceStatus>],
    logs: &LogSink,
    own: &OwnProcess,
    history_dropped: Option<u64>,
    now: Instant,
) -> String {
    // About 1.5 KiB per instance; one allocation up front keeps a scrape of hundreds of
    // instances from regrowing the buffer.
    let mut out = String::with_capacity(2048 + statuses.len() * 1536);

    let mut f = Family::new(
        &mut out,
        "tend_build_info",
        "gauge",
        "tend's version; always 1.",
    );
    f.sample(
        "tend_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );

    macro_rules! per_instance {
        ($name:expr, $kind:expr, $help:expr, |$s:ident| $value:expr) => {{
            let mut f = Family::new(&mut out, $name, $kind, $help);
            for $s in statuses {
                if let Some(value) = $value {
                    f.sample(
                        $name,
                        &[("service", &$s.service), ("instance", &$s.name)],
                        value,
                    );
                }
            }
        }};
    }

    per_instance!(
        "tend_instance_up",
        "gauge",
        "1 while the instance has a running process.",
        |s| Some(flag(s.pid.is_some()))
    );
    {
        let mut f = Family::new(
            &mut out,
            "tend_instance_state",
            "gauge",
            "1 for the state the instance is in, 0 for the others.",
        );
        for s in statuses {
            for state in STATES {
                f.sample(
                    "tend_instance_state",
                    &[
                        ("service", &s.service),
                        ("instance", &s.name),
                        ("state", state),
                    ],
                    flag(s.state == state),
                );
            }
        }
    }
    per_instance!(
        "tend_instance_ready",
        "gauge",
        "1 when the instance is ready (readiness probe passing, or up past min_uptime).",
        |s| Some(flag(s.ready))
    );
    per_instance!(
        "tend_instance_healthy",
        "gauge",
        "1 when the liveness probe passes, 0 when it fails; absent without one.",
        |s| match s.health {
            "healthy" => Some(1.0),
            "unhealthy" => Some(0.0),
            _ => None,
        }
    );
    {
        let mut f = Family::new(
            &mut out,
            "tend_instance_restarts_total",
            "counter",
            "Restarts of the instance, by what caused them.",
        );
        for s in statuses {
            for cause in RestartCause::ALL {
                f.sample(
                    "tend_instance_restarts_total",
                    &[
                        ("service", &s.service),
                        ("instance", &s.name),
                        ("reason", cause.label()),
                    ],
                    s.restart_causes[cause as usize] as f64,
                );
            }
        }
    }
    per_instance!(
        "tend_instance_last_exit_code",
        "gauge",
        "How the last run ended, as a shell reports it (128+N for signal N).",
        |s| s.last_exit.map(|e| e.shell_code() as f64)
    );
    per_instance!(
        "tend_instance_cpu_seconds_total",
        "counter",
        "CPU time used by the instance's process trees, all runs.",
        |s| Some(s.cpu_seconds)
    );
    per_instance!(
        "tend_instance_resident_memory_bytes",
        "gauge",
        "Resident memory of the instance's process tree at the last sample.",
        |s| s.rss_bytes.filter(|_| s.pid.is_some()).map(|b| b as f64)
    );
    per_instance!(
        "tend_instance_gpu_memory_bytes",
        "gauge",
        "GPU memory held by the instance's processes (NVIDIA, where NVML is available).",
        |s| s.gpu_memory_bytes.map(|b| b as f64)
    );
    per_instance!(
        "tend_instance_uptime_seconds",
        "gauge",
        "Seconds since the current process started; absent while none runs.",
        |s| s
            .started
            .map(|at| now.saturating_duration_since(at).as_secs_f64())
    );
    {
        let mut f = Family::new(
            &mut out,
            "tend_probe_success",
            "gauge",
            "1 when the probe's last attempt succeeded, 0 when it failed.",
        );
        for s in statuses {
            for p in &s.probes {
                if let Some(ok) = p.last_ok {
                    f.sample(
                        "tend_probe_success",
                        &[
                            ("service", &s.service),
                            ("instance", &s.name),
                            ("probe", p.role.name()),
                            ("check", p.kind),
                        ],
                        flag(ok),
                    );
                }
            }
        }
    }
    {
        let mut f = Family::new(
            &mut out,
            "tend_probe_duration_seconds",
            "gauge",
            "How long the probe's last attempt took.",
        );
        for s in statuses {
            for p in &s.probes {
                if let Some(took) = p.took {
                    f.sample(
                        "tend_probe_duration_seconds",
                        &[
                            ("service", &s.service),
                            ("instance", &s.name),
                            ("probe", p.role.name()),
                            ("check", p.kind),
                        ],
                        took.as_secs_f64(),
                    );
                }
            }
        }
    }
    {
        let mut f = Family::new(
            &mut out,
            "tend_log_bytes_total",
            "counter",
            "Bytes of output captured from the instance, by stream.",
        );
        for s in statuses {
            if let Some(log) = logs.instance(&s.name) {
                for stream in [Stream::Out, Stream::Err] {
                    f.sample(
                        "tend_log_bytes_total",
                        &[
                            ("service", &s.service),
                            ("instance", &s.name),
                            ("stream", stream.name()),
                        ],
                        log.captured_bytes(stream) as f64,
                    );
                }
            }
        }
    }
    {
        let mut f = Family::new(
            &mut out,
            "tend_log_dropped_bytes_total",
            "counter",
            "Bytes of output dropped because the log writer stalled for too long.",
        );
        for s in statuses {
            if let Some(log) = logs.instance(&s.name) {
                f.sample(
                    "tend_log_dropped_bytes_total",
                    &[("service", &s.service), ("instance", &s.name)],
                    log.dropped_bytes() as f64,
                );
            }
        }
    }
    {
        let mut f = Family::new(
            &mut out,
            "tend_log_spliced_bytes_total",
            "counter",
            "Bytes of output written to log files by splice(2), never copied through tend.",
        );
        for s in statuses {
            if let Some(log) = logs.instance(&s.name) {
                f.sample(
                    "tend_log_spliced_bytes_total",
                    &[("service", &s.service), ("instance", &s.name)],
                    log.spliced_bytes() as f64,
                );
            }
        }
    }
    if let Some(dropped) = history_dropped {
        let mut f = Family::new(
            &mut out,
            "tend_history_dropped_records_total",
            "counter",
            "History records dropped because the database writer fell behind.",
        );
        f.sample("tend_history_dropped_records_total", &[], dropped as f64);
    }
    let process: [(&str, &str, &str, f64); 6] = [
        (
            "process_cpu_seconds_total",
            "counter",
            "CPU time of tend itself (not its children), user and system.",
            own.cpu_seconds,
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory of tend itself.",
            own.resident_bytes as f64,
        ),
        (
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory of tend itself.",
            own.virtual_bytes as f64,
        ),
        (
            "process_open_fds",
            "gauge",
            "File descriptors tend has open.",
            own.open_fds as f64,
        ),
        (
            "process_max_fds",
            "gauge",
            "tend's limit on open file descriptors.",
            own.max_fds as f64,
        ),
        (
            "process_start_time_seconds",
            "gauge",
            "When tend started, in seconds since the epoch.",
            own.start_time,
        ),
    ];
    for (name, kind, help, value) in process {
        Family::new(&mut out, name, kind, help).sample(name, &[], value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        escape_label(&mut out, "a\"b\\c\nd");
        assert_eq!(out, "a\\\"b\\\\c\\nd");
    }

    /// The shipped Grafana dashboard may only query metrics that tend exposes.
    #[test]
    fn the_grafana_dashboard_queries_only_exposed_metrics() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogSink::start(
            dir.path().join("logs"),
            None,
            crate::logs::OwnLogTarget {
                path: dir.path().join("tend.log"),
                rotation: crate::config::model::LogSpec::default(),
                to_stderr: false,
                redirect_std: false,
            },
        )
        .unwrap();
        let text = render(&[], &logs, &OwnProcess::default(), Some(0), Instant::now());
        let exposed: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        let dashboard: serde_json::Value =
            serde_json::from_str(include_str!("../../examples/grafana-dashboard.json")).unwrap();
        let mut exprs = Vec::new();
        collect_exprs(&dashboard, &mut exprs);
        assert!(exprs.len() > 10, "the dashboard has its queries");
        let names = regex::Regex::new(r"(?-u:\b)(tend_[a-z_]+|process_[a-z_]+)(?-u:\b)").unwrap();
        for expr in &exprs {
            for name in names.find_iter(expr) {
                assert!(
                    exposed.contains(&name.as_str()),
                    "the dashboard queries `{}`, which tend does not expose",
                    name.as_str()
                );
            }
        }
    }

    fn collect_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::String(expr)) = map.get("expr") {
                    out.push(expr.clone());
                }
                map.values().for_each(|v| collect_exprs(v, out));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn values_print_as_integers_when_whole() {
        let mut out = String::new();
        for v in [3.0, 0.25, f64::NAN, f64::INFINITY] {
            write_value(&mut out, v);
            out.push(' ');
        }
        assert_eq!(out, "3 0.25 NaN +Inf ");
    }
}
