//! Services, instances and the actions on them; the audit record of every action.

use std::time::SystemTime;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::time::Instant;

use axum::response::Response;

use crate::api::{
    ApiError, AppState, Caller, JSON_PER_INSTANCE, ServiceMeta, json_sized, split_targets, unix_ms,
};
use crate::config::model::Kind;
use crate::config::signal::Signal;
use crate::engine::command::Outcomes;
use crate::engine::event::InstanceStatus;
use crate::engine::lifecycle::ExitStatus;
use crate::protocol::{
    ActionRequest, ActionResponse, ActionResult, AutoscaleInfo, DaemonInfo, InstanceInfo,
    ProbeInfo, Scaled, ServiceInfo, ShutdownResponse, SignalRequest, SocketInfo, TargetSignal,
};
use crate::store::{ActionRow, Record};

pub async fn info(State(state): State<AppState>) -> Json<DaemonInfo> {
    let upgrades = state.upgrades.record();
    Json(DaemonInfo {
        upgrades: upgrades.upgrades,
        last_upgrade: upgrades.last.as_ref().map(|last| last.info()),
        version: env!("CARGO_PKG_VERSION").to_string(),
        pid: std::process::id(),
        manifest: state.manifest.display().to_string(),
        state_dir: state.state_dir.display().to_string(),
        uptime_ms: state.started.elapsed().as_millis() as u64,
        http_listen: state.http_listen.map(|a| a.to_string()),
        sockets: state
            .engine
            .sockets()
            .sockets
            .iter()
            .map(|s| SocketInfo {
                name: s.spec.name.clone(),
                address: s.address.clone(),
            })
            .collect(),
    })
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct TargetsQuery {
    /// Comma-separated targets (service, `name:N` instance, group or `all`); empty: all.
    #[serde(default)]
    pub targets: String,
    /// For `wait`: running instances must also be ready.
    #[serde(default)]
    pub ready: bool,
}

pub async fn instances(
    State(state): State<AppState>,
    query: Result<Query<TargetsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let statuses = state.engine.status(split_targets(&query.targets)).await??;
    let now = Instant::now();
    let infos: Vec<InstanceInfo> = statuses.iter().map(|s| instance_info(s, now)).collect();
    Ok(json_sized(&infos, 64 + infos.len() * JSON_PER_INSTANCE))
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct ServicesQuery {
    /// Comma-separated targets (service, `name:N` instance, group or `all`): only the
    /// services with an instance among them, with only those instances. Empty: every
    /// service, with all its instances.
    #[serde(default)]
    pub targets: String,
}

pub async fn services(
    State(state): State<AppState>,
    query: Result<Query<ServicesQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let targets = split_targets(&query.targets);
    let everything = targets.is_empty();
    let statuses = state.engine.status(targets).await??;
    let metas = state.services.current();
    let now = Instant::now();
    // One pass to group: hundreds of services must not cost hundreds of scans.
    let mut by_service: std::collections::HashMap<&str, Vec<&InstanceStatus>> =
        std::collections::HashMap::with_capacity(metas.len());
    for status in &statuses {
        by_service
            .entry(status.service.as_str())
            .or_default()
            .push(&**status);
    }
    // With targets, a service none of them names is left out (one scaled to 0 has no
    // instance to be named by).
    let services: Vec<ServiceInfo> = metas
        .iter()
        .filter_map(|meta| {
            let own = by_service.remove(meta.name.as_str());
            if own.is_none() && !everything {
                return None;
            }
            Some(service_info(meta, own.unwrap_or_default(), now))
        })
        .collect();
    let capacity = 64 + services.len() * 160 + statuses.len() * JSON_PER_INSTANCE;
    Ok(json_sized(&services, capacity))
}

pub async fn service(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<ServiceInfo>, ApiError> {
    let Path(name) = name?;
    let metas = state.services.current();
    if !metas.iter().any(|m| m.name == name) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no service named `{name}`"),
        ));
    }
    let statuses = state.engine.status(vec![name.clone()]).await??;
    let meta = metas
        .iter()
        .find(|m| m.name == name)
        .expect("UNWRAP: checked above");
    let own = statuses
        .iter()
        .filter(|s| s.service == name)
        .map(|s| &**s)
        .collect();
    Ok(Json(service_info(meta, own, Instant::now())))
}

fn service_info(meta: &ServiceMeta, statuses: Vec<&InstanceStatus>, now: Instant) -> ServiceInfo {
    let instances: Vec<InstanceInfo> = statuses.iter().map(|s| instance_info(s, now)).collect();
    ServiceInfo {
        name: meta.name.clone(),
        kind: match meta.kind {
            Kind::Task => "task",
            Kind::Service => "service",
        }
        .to_string(),
        state: summary_state(instances.iter().map(|i| i.state.as_str())).to_string(),
        ready: !instances.is_empty() && instances.iter().all(|i| i.ready),
        autostart: meta.autostart,
        depends_on: meta.depends_on.clone(),
        count: meta.instances,
        scaled: meta.scaled.as_ref().map(|o| Scaled {
            manifest: o.manifest,
            by: o.by.to_string(),
            reason: o.reason.clone(),
            at_ms: o.at_ms,
        }),
        autoscale: meta.autoscale.as_ref().map(|a| AutoscaleInfo {
            min: a.min,
            max: a.max,
            cpu_percent: a.cpu,
            cooldown_ms: a.cooldown.as_millis() as u64,
        }),
        instances,
    }
}

/// One word for several instances: their state when they agree, else the one that most
/// needs a look.
fn summary_state<'a>(states: impl Iterator<Item = &'a str>) -> &'a str {
    const PRESSING: [&str; 8] = [
        "fatal", "backoff", "stopping", "starting", "waiting", "exited", "running", "stopped",
    ];
    states
        .min_by_key(|s| PRESSING.iter().position(|p| p == s).unwrap_or(0))
        .unwrap_or("stopped")
}

pub fn instance_info(status: &InstanceStatus, now: Instant) -> InstanceInfo {
    let (exit_code, exit_signal) = match status.last_exit {
        Some(ExitStatus::Code(code)) => (Some(code), None),
        Some(ExitStatus::Signal(number)) => (
            None,
            Some(
                crate::config::signal::signal_name(number)
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("SIG{number}")),
            ),
        ),
        None => (None, None),
    };
    InstanceInfo {
        name: status.name.clone(),
        service: status.service.clone(),
        instance: status.index,
        state: status.state.to_string(),
        pid: status.pid,
        replacement_pid: status.replacement_pid,
        uptime_ms: status
            .started
            .map(|s| now.saturating_duration_since(s).as_millis() as u64),
        restarts: status.restarts,
        exit_code,
        exit_signal,
        ready: status.ready,
        health: status.health.to_string(),
        reason: status.reason.clone(),
        status_text: status.notify_status.clone(),
        notify_phase: status.notify_phase.map(str::to_string),
        probes: status
            .probes
            .iter()
            .map(|p| ProbeInfo {
                role: p.role.name().to_string(),
                kind: p.kind.to_string(),
                passing: p.passing,
                last_ok: p.last_ok,
                detail: p.detail.clone(),
                fallback: p.fallback,
                took_ms: p.took.map(|t| t.as_secs_f64() * 1000.0),
                at_ms: p.at.map(|at| unix_ms(at) as u64),
            })
            .collect(),
        cpu_percent: status.cpu_percent,
        rss_bytes: status.rss_bytes,
        cpu_seconds: status.cpu_seconds,
        gpu_memory_bytes: status.gpu_memory_bytes,
        gpu_percent: status.gpu_percent,
        warning: status.warning.clone(),
    }
}

pub async fn action(
    State(state): State<AppState>,
    caller: Option<axum::Extension<Caller>>,
    action: Result<Path<String>, PathRejection>,
    body: Result<Json<ActionRequest>, JsonRejection>,
) -> Result<Json<ActionResponse>, ApiError> {
    let Path(action) = action?;
    let Json(request) = body?;
    run_action(&state, caller.map(|c| c.0), &action, request).await
}

/// The optional body of `POST /api/v1/services/{target}/{start|stop|restart}`: no options yet.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetAction {}

pub async fn signal_action(
    State(state): State<AppState>,
    caller: Option<axum::Extension<Caller>>,
    body: Result<Json<SignalRequest>, JsonRejection>,
) -> Result<Json<ActionResponse>, ApiError> {
    let Json(request) = body?;
    let request = ActionRequest {
        targets: request.targets,
        signal: Some(request.signal),
    };
    run_action(&state, caller.map(|c| c.0), "signal", request).await
}

pub async fn target_signal(
    State(state): State<AppState>,
    caller: Option<axum::Extension<Caller>>,
    target: Result<Path<String>, PathRejection>,
    body: Result<Json<TargetSignal>, JsonRejection>,
) -> Result<Json<ActionResponse>, ApiError> {
    let Path(target) = target?;
    let Json(body) = body?;
    let request = ActionRequest {
        targets: vec![target],
        signal: Some(body.signal),
    };
    run_action(&state, caller.map(|c| c.0), "signal", request).await
}

pub async fn service_action(
    State(state): State<AppState>,
    caller: Option<axum::Extension<Caller>>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: axum::body::Bytes,
) -> Result<Json<ActionResponse>, ApiError> {
    let Path((target, action)) = path?;
    // The body is optional: empty means no options.
    if !body.iter().all(u8::is_ascii_whitespace) {
        serde_json::from_slice::<TargetAction>(&body)
            .map_err(|e| ApiError::bad_request(format!("bad request body: {e}")))?;
    }
    run_action(
        &state,
        caller.map(|c| c.0),
        &action,
        ActionRequest {
            targets: vec![target],
            signal: None,
        },
    )
    .await
}

async fn run_action(
    state: &AppState,
    caller: Option<Caller>,
    action: &str,
    request: ActionRequest,
) -> Result<Json<ActionResponse>, ApiError> {
    let targets = request.targets.join(",");
    let result = perform(state, action, request).await;
    if let Some(history) = &state.history {
        let caller = caller.unwrap_or_else(Caller::unknown);
        let (ok, summary) = match &result {
            Ok(response) => {
                let failed: Vec<String> = response
                    .failures()
                    .map(|f| format!("{}: {}", f.instance, f.error.as_deref().unwrap_or("failed")))
                    .collect();
                if failed.is_empty() {
                    (true, format!("ok ({} instances)", response.results.len()))
                } else {
                    (false, failed.join("; "))
                }
            }
            Err(e) => (false, e.message.clone()),
        };
        audit(history, caller, action, targets, ok, summary);
    }
    result.map(Json)
}

/// One row of the audit: who asked for what, and how it went.
pub(super) fn audit(
    history: &crate::store::History,
    caller: Caller,
    action: &str,
    targets: String,
    ok: bool,
    result: String,
) {
    history.record(Record::Action(ActionRow {
        id: None,
        at_ms: unix_ms(SystemTime::now()),
        origin: caller.origin,
        who: caller.who,
        action: action.to_string(),
        targets,
        ok,
        result,
    }));
}

async fn perform(
    state: &AppState,
    action: &str,
    request: ActionRequest,
) -> Result<ActionResponse, ApiError> {
    if request.targets.is_empty() {
        return Err(ApiError::bad_request("no targets given"));
    }
    let engine = &state.engine;
    let outcomes = match action {
        "start" => engine.start(request.targets).await??,
        "stop" => engine.stop(request.targets).await??,
        "restart" => engine.restart(request.targets).await??,
        "reload" => engine.reload(request.targets).await??,
        "signal" => {
            let name = request
                .signal
                .ok_or_else(|| ApiError::bad_request("the signal action needs a `signal`"))?;
            let signal: Signal =
                name.parse()
                    .map_err(|e: crate::config::signal::UnknownSignal| {
                        ApiError::bad_request(e.to_string())
                    })?;
            engine.signal(signal, request.targets).await??
        }
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("unknown action `{other}` (start, stop, restart, reload, signal)"),
            ));
        }
    };
    Ok(response(outcomes))
}

fn response(outcomes: Outcomes) -> ActionResponse {
    ActionResponse {
        results: outcomes
            .into_iter()
            .map(|(instance, outcome)| ActionResult {
                instance,
                ok: outcome.is_ok(),
                error: outcome.err(),
            })
            .collect(),
    }
}

pub async fn wait(
    State(state): State<AppState>,
    query: Result<Query<TargetsQuery>, QueryRejection>,
) -> Result<Json<ActionResponse>, ApiError> {
    let Query(query) = query?;
    let outcomes = state
        .engine
        .wait_settled(split_targets(&query.targets), query.ready)
        .await??;
    Ok(Json(response(outcomes)))
}

pub async fn shutdown(
    State(state): State<AppState>,
    caller: Option<axum::Extension<Caller>>,
) -> (StatusCode, Json<ShutdownResponse>) {
    if let Some(history) = &state.history {
        let caller = caller.map(|c| c.0).unwrap_or_else(Caller::unknown);
        audit(
            history,
            caller,
            "shutdown",
            "all".into(),
            true,
            "shutting down".into(),
        );
    }
    // Answer first; the daemon stops its services once this response is on its way.
    let notify = state.shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        notify.notify_one();
    });
    (
        StatusCode::ACCEPTED,
        Json(ShutdownResponse {
            status: "shutting down".into(),
        }),
    )
}
