//! `tend diff` and `tend apply` (and SIGHUP): the manifest file read again, the way it was
//! read at start, compared with the one the daemon runs ([`crate::config::plan`]), and the
//! difference carried out through the engine. An invalid file changes nothing.
//!
//! The order: stop what leaves or is replaced (only those instances, dependents among them
//! first; an unchanged dependent keeps running, as with `tend restart`), hand the engine the
//! new set ([`crate::engine::EngineHandle::reconfigure`], through [`super::xmlrpc::commit`],
//! which also renames everything for supervisorctl and the API), then start what was running
//! before and the added autostart services. `[tend]` settings are never taken live.

use std::collections::HashSet;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::api::{ApiError, AppState, Caller};
use crate::config::ConfigErrors;
use crate::config::model::ServiceSpec;
use crate::config::plan::{self, Action, Plan, ServiceChange};
use crate::engine::command::ReloadMode;
use crate::protocol::{
    ActionResult, ApplyReport, KeptCount, ManifestError, ManifestErrors, PlanReport, ScaleInfo,
    ServiceChangeInfo,
};

/// Why nothing (or not everything) was done.
#[derive(Debug)]
pub enum ApplyError {
    /// The file does not read or validate: 422 with every error.
    Invalid(ConfigErrors),
    Api(ApiError),
}

impl From<ApiError> for ApplyError {
    fn from(e: ApiError) -> Self {
        ApplyError::Api(e)
    }
}

impl From<crate::engine::EngineGone> for ApplyError {
    fn from(e: crate::engine::EngineGone) -> Self {
        ApplyError::Api(e.into())
    }
}

impl From<crate::engine::command::UnknownTarget> for ApplyError {
    fn from(e: crate::engine::command::UnknownTarget) -> Self {
        ApplyError::Api(e.into())
    }
}

impl ApplyError {
    /// One line per error, for tend's log and the audit.
    pub fn lines(&self) -> Vec<String> {
        match self {
            ApplyError::Invalid(errors) => errors.0.iter().map(|e| e.to_string()).collect(),
            ApplyError::Api(e) => vec![e.message.clone()],
        }
    }
}

impl IntoResponse for ApplyError {
    fn into_response(self) -> Response {
        match self {
            ApplyError::Invalid(errors) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(ManifestErrors {
                    error: errors.to_string(),
                    errors: errors
                        .0
                        .iter()
                        .map(|e| ManifestError {
                            file: e.file.display().to_string(),
                            line: e.line,
                            key: e.key.clone(),
                            message: e.message.clone(),
                        })
                        .collect(),
                }),
            )
                .into_response(),
            ApplyError::Api(e) => e.into_response(),
        }
    }
}

/// `GET /api/v1/plan`.
pub async fn plan(State(state): State<AppState>) -> Result<Json<PlanReport>, ApplyError> {
    let fresh = reread(&state)?;
    let configs = state.rpc.configs().await;
    let fresh = super::scale::rebase(&configs.active, fresh);
    let plan = plan::plan(&configs.active.manifest, &fresh.manifest);
    Ok(Json(report(&plan, &state, &configs.active, &fresh)))
}

/// `POST /api/v1/apply`.
pub async fn apply(
    State(state): State<AppState>,
    caller: Option<axum::Extension<Caller>>,
) -> Result<Json<ApplyReport>, ApplyError> {
    let result = carry_out(&state).await;
    audit(&state, caller.map(|c| c.0), &result);
    result.map(Json)
}

/// SIGHUP: apply, and say what was done (or every error) in tend's own log.
pub async fn on_hangup(state: &AppState) {
    crate::logs::own::say("SIGHUP: reading the manifest again");
    let result = carry_out(state).await;
    match &result {
        Ok(report) => {
            for line in summary(report) {
                crate::logs::own::say(&format!("apply: {line}"));
            }
        }
        Err(e) => {
            for line in e.lines() {
                crate::logs::own::say(&format!("apply: {line}"));
            }
            crate::logs::own::say("apply: nothing was changed");
        }
    }
    audit(
        state,
        Some(Caller {
            origin: "signal".into(),
            who: "SIGHUP".into(),
            role: crate::api::Role::Operate,
        }),
        &result,
    );
}

fn audit(state: &AppState, caller: Option<Caller>, result: &Result<ApplyReport, ApplyError>) {
    let Some(history) = &state.history else {
        return;
    };
    let (ok, text) = match result {
        Ok(report) => (report.ok, summary(report).join("; ")),
        Err(e) => (false, e.lines().join("; ")),
    };
    super::control::audit(
        history,
        caller.unwrap_or_else(Caller::unknown),
        "apply",
        "all".into(),
        ok,
        text,
    );
}

/// What an apply did, a line per kind of change.
pub fn summary(report: &ApplyReport) -> Vec<String> {
    let plan = &report.plan;
    let mut lines = Vec::new();
    if !plan.changes_services() {
        lines.push("no service changed".to_string());
    }
    let list = |names: &[String]| names.join(", ");
    if !plan.added.is_empty() {
        lines.push(format!("added {}", list(&plan.added)));
    }
    if !plan.removed.is_empty() {
        lines.push(format!("removed {}", list(&plan.removed)));
    }
    for change in &plan.changed {
        lines.push(format!(
            "{} {}: {}",
            change.action,
            change.name,
            change.settings.join(", ")
        ));
    }
    if !report.stopped.is_empty() {
        lines.push(format!("stopped {}", list(&report.stopped)));
    }
    // One line for what succeeded, then one per failure.
    let mut results = |done: &str, results: &[ActionResult], failed_as: &str| {
        let ok: Vec<String> = results
            .iter()
            .filter(|r| r.ok)
            .map(|r| r.instance.clone())
            .collect();
        if !ok.is_empty() {
            lines.push(format!("{done} {}", list(&ok)));
        }
        for failed in results.iter().filter(|r| !r.ok) {
            lines.push(format!(
                "{} {failed_as}: {}",
                failed.instance,
                failed.error.as_deref().unwrap_or("failed")
            ));
        }
    };
    results("started", &report.started, "did not start");
    results(
        "reloaded",
        &report.reloaded,
        "was not reloaded, its old process runs",
    );
    for kept in &plan.kept_counts {
        lines.push(format!(
            "kept {} at {} instance(s), set by {} (the manifest says {})",
            kept.name, kept.instances, kept.by, kept.manifest
        ));
    }
    if !plan.daemon_changes.is_empty() {
        lines.push(format!(
            "not applied, needs `tend down && tend up`: {}",
            list(&plan.daemon_changes)
        ));
    }
    lines
}

/// Whether the manifest file, read again, says what runs (counts set while tend runs
/// kept): an upgrade's new image reads the file, and must find in it what it takes over.
/// Err says what differs.
pub fn matches_file(state: &AppState, active: &super::xmlrpc::Config) -> Result<(), String> {
    let fresh = match state.rpc.reread() {
        Some(Ok(config)) => config,
        Some(Err(errors)) => {
            return Err(format!(
                "the manifest does not read now ({} error(s), the first: {})",
                errors.0.len(),
                errors.0.first().map(|e| e.to_string()).unwrap_or_default()
            ));
        }
        None => return Err("this manifest cannot be re-read".into()),
    };
    let fresh = super::scale::rebase(active, fresh);
    if let Some(why) = state
        .engine
        .sockets()
        .refuse_change(&fresh.manifest.sockets)
    {
        return Err(why);
    }
    let plan = plan::plan(&active.manifest, &fresh.manifest);
    if plan.is_empty() {
        return Ok(());
    }
    let mut differs = Vec::new();
    if !plan.added.is_empty() {
        differs.push(format!("it adds {}", plan.added.join(", ")));
    }
    if !plan.removed.is_empty() {
        differs.push(format!("it lacks {}", plan.removed.join(", ")));
    }
    if !plan.changed.is_empty() {
        let names: Vec<&str> = plan.changed.iter().map(|c| c.name.as_str()).collect();
        differs.push(format!("it changes {}", names.join(", ")));
    }
    if !plan.daemon.is_empty() {
        differs.push(format!(
            "it changes {}, which needs `tend down && tend up`",
            plan.daemon.join(", ")
        ));
    }
    Err(format!(
        "the manifest file differs from what runs ({}): apply it or undo the edit first",
        differs.join("; ")
    ))
}

/// The file again, exactly as the daemon read it at start.
fn reread(state: &AppState) -> Result<super::xmlrpc::Config, ApplyError> {
    match state.rpc.reread() {
        Some(Ok(config)) => Ok(config),
        Some(Err(errors)) => Err(ApplyError::Invalid(errors)),
        None => Err(ApiError::new(StatusCode::CONFLICT, "this manifest cannot be re-read").into()),
    }
}

/// How a restarted service's running instances move to their new spec.
#[derive(Debug, PartialEq, Eq)]
enum Replacement {
    /// Stopped before the engine takes the new spec, started after it.
    StopThenStart,
    /// Rolling reload: the engine takes the new spec while they run; then each gets a
    /// replacement beside it (`max_surge` at a time), and the old process stops once the
    /// replacement is ready. No gap, and a replacement that fails leaves the old running.
    Rolling,
}

/// The one place the way of replacing a changed service is chosen: a rolling reload when
/// old and new processes can share the service's `[sockets]` (before and after the
/// change) and the instance count stays; else stop, then start. The same rule as `tend
/// reload`'s ([`ReloadMode::overlaps`]), so that one service reloads one way.
fn replacement(change: &ServiceChange, old: &ServiceSpec, new: &ServiceSpec) -> Replacement {
    if change.action == Action::Restart
        && old.instances == new.instances
        && ReloadMode::overlaps(old)
        && ReloadMode::overlaps(new)
    {
        Replacement::Rolling
    } else {
        Replacement::StopThenStart
    }
}

/// Read the file again and carry out its plan; the report says what was done.
pub async fn carry_out(state: &AppState) -> Result<ApplyReport, ApplyError> {
    let fresh = reread(state)?;
    let configs = state.rpc.configs().await;
    // A count set by `tend scale` or the autoscaler stays unless the file's own changed.
    let fresh = super::scale::rebase(&configs.active, fresh);
    let plan = plan::plan(&configs.active.manifest, &fresh.manifest);
    let mut report = ApplyReport {
        plan: report(&plan, state, &configs.active, &fresh),
        stopped: Vec::new(),
        started: Vec::new(),
        reloaded: Vec::new(),
        ok: true,
    };
    // The file's sockets are not taken (they are bound once), but a change to them refuses
    // the whole apply, before anything stops.
    let sockets_refused = state
        .engine
        .sockets()
        .refuse_change(&fresh.manifest.sockets);
    let mut next = configs.active.clone();
    next.manifest.services = fresh.manifest.services;
    next.names = fresh.names;
    next.overrides = fresh.overrides;
    if !plan.changes_services() {
        // Nothing to hand the engine; only the counts kept, perhaps fewer of them.
        if next.overrides != configs.active.overrides {
            let mut configs = configs;
            super::xmlrpc::commit(state, &mut configs.active, next)
                .await
                .map_err(|refused| ApiError::new(StatusCode::CONFLICT, refused))?;
        }
        return Ok(report);
    }
    if let Some(why) = sockets_refused {
        return Err(
            ApiError::new(StatusCode::CONFLICT, format!("nothing was changed: {why}")).into(),
        );
    }
    let done = transition(state, configs, &plan, next).await?;
    report.stopped = done.stopped;
    report.started = done.started;
    report.reloaded = done.reloaded;
    report.ok = done.ok;
    Ok(report)
}

/// What [`transition`] stopped, started and reloaded.
pub(super) struct Transition {
    pub stopped: Vec<String>,
    pub started: Vec<ActionResult>,
    pub reloaded: Vec<ActionResult>,
    /// Every instance that was to start did, and every reload was carried out.
    pub ok: bool,
}

/// Take the supervised set from the configuration in force to `next`, whose difference is
/// `plan`: stop what leaves or is replaced, commit, start what was running and the added
/// autostart services. `tend apply` and `tend scale` (and the autoscaler) both come here,
/// holding the one lock on the configuration, which is let go before the starts are waited
/// for.
pub(super) async fn transition(
    state: &AppState,
    mut configs: tokio::sync::MutexGuard<'_, super::xmlrpc::Configs>,
    plan: &Plan,
    next: super::xmlrpc::Config,
) -> Result<Transition, ApiError> {
    let old = configs.active.manifest.clone();
    let mut done = Transition {
        stopped: Vec::new(),
        started: Vec::new(),
        reloaded: Vec::new(),
        ok: true,
    };
    // Refused before anything stops: the engine would refuse the new set only after.
    if let Some(why) = state.engine.sockets().refuse_change(&next.manifest.sockets) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("nothing was changed: {why}"),
        ));
    }
    let statuses = state.engine.status(Vec::new()).await??;
    let at_rest = |state: &str| matches!(state, "stopped" | "exited" | "fatal");
    let running: HashSet<&str> = statuses
        .iter()
        .filter(|s| !at_rest(s.state) && s.state != "stopping")
        .map(|s| s.service.as_str())
        .collect();
    let live: HashSet<&str> = statuses
        .iter()
        .filter(|s| !at_rest(s.state))
        .map(|s| s.name.as_str())
        .collect();
    let mut leaving: Vec<String> = Vec::new();
    // The highest indices of services that scale down, highest first.
    let mut dropped: Vec<String> = Vec::new();
    let mut to_start: Vec<String> = Vec::new();
    // Services reloaded in place, and their instances that run now.
    let mut rolling: Vec<String> = Vec::new();
    let mut to_reload: Vec<String> = Vec::new();
    for name in &plan.removed {
        let spec = old
            .service(name)
            .expect("UNWRAP: the plan names old services");
        leaving.extend((0..spec.instances).map(|i| spec.instance_name(i)));
    }
    for change in &plan.changed {
        let was = old
            .service(&change.name)
            .expect("UNWRAP: changed is in both");
        let now = next
            .manifest
            .service(&change.name)
            .expect("UNWRAP: changed is in both");
        let up = running.contains(change.name.as_str());
        match change.action {
            Action::Restart => match replacement(change, was, now) {
                Replacement::StopThenStart => {
                    leaving.extend((0..was.instances).map(|i| was.instance_name(i)));
                    if up {
                        to_start.push(change.name.clone());
                    }
                }
                Replacement::Rolling => {
                    rolling.push(change.name.clone());
                    // Only running instances are replaced; the others take the new spec
                    // at their next start.
                    to_reload.extend(
                        statuses
                            .iter()
                            .filter(|s| s.service == change.name && s.state == "running")
                            .map(|s| s.name.clone()),
                    );
                }
            },
            Action::Scale { from, to } => {
                // The highest indices go; new ones start when the service runs.
                dropped.extend((to..from).rev().map(|i| was.instance_name(i)));
                if up {
                    to_start.extend((from..to).map(|i| now.instance_name(i)));
                }
            }
            Action::Update => {}
        }
    }
    for name in &plan.added {
        if next.manifest.service(name).is_some_and(|s| s.autostart) {
            to_start.push(name.clone());
        }
    }
    // Only what runs needs stopping; the engine takes the rest as it is.
    let to_stop: Vec<String> = leaving
        .into_iter()
        .filter(|i| live.contains(i.as_str()))
        .collect();
    if !to_stop.is_empty() {
        let outcomes = state.engine.stop(to_stop.clone()).await??;
        done.stopped = outcomes.into_iter().map(|(name, _)| name).collect();
    }
    // A scale-down stops one instance at a time, from the highest index down: capacity
    // goes gradually, and whenever it is interrupted the instances left are 0..k. Nothing
    // depends on one instance, so these need no place in the ordered stop above.
    let mut to_stop = to_stop;
    for instance in dropped.into_iter().filter(|i| live.contains(i.as_str())) {
        state.engine.stop(vec![instance.clone()]).await??;
        done.stopped.push(instance.clone());
        to_stop.push(instance);
    }
    if let Err(refused) =
        super::xmlrpc::commit_rolling(state, &mut configs.active, next, rolling).await
    {
        // Something started in between (a `tend start` of a stopped service): put back
        // what was stopped for the change, and leave the rest as it was.
        drop(configs);
        if !to_stop.is_empty() {
            let _ = state.engine.start(to_stop).await;
        }
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("the change was refused, nothing was changed: {refused}"),
        ));
    }
    // Starting waits for min_uptime, a reload for readiness: another change need not wait.
    drop(configs);
    if !to_reload.is_empty() {
        let outcomes = state.engine.replace(to_reload).await??;
        done.reloaded = outcomes
            .into_iter()
            .map(|(instance, outcome)| ActionResult {
                instance,
                ok: outcome.is_ok(),
                error: outcome.err(),
            })
            .collect();
    }
    if !to_start.is_empty() {
        let outcomes = state.engine.start(to_start).await??;
        done.started = outcomes
            .into_iter()
            .map(|(instance, outcome)| ActionResult {
                instance,
                ok: outcome.is_ok(),
                error: outcome.err(),
            })
            .collect();
    }
    done.ok = done.started.iter().chain(&done.reloaded).all(|r| r.ok);
    Ok(done)
}

/// The plan on the wire; `fresh` is the file as the apply takes it (counts kept). A restart
/// that is carried out as a rolling reload says `reload`.
fn report(
    plan: &Plan,
    state: &AppState,
    active: &super::xmlrpc::Config,
    fresh: &super::xmlrpc::Config,
) -> PlanReport {
    let (old, new) = (&active.manifest, &fresh.manifest);
    PlanReport {
        kept_counts: fresh
            .overrides
            .iter()
            .filter_map(|(name, kept)| {
                Some(KeptCount {
                    name: name.clone(),
                    instances: fresh.manifest.service(name)?.instances,
                    manifest: kept.manifest,
                    by: kept.by.to_string(),
                })
            })
            .collect(),
        manifest: state.manifest.display().to_string(),
        added: plan.added.clone(),
        removed: plan.removed.clone(),
        changed: plan
            .changed
            .iter()
            .map(|change| ServiceChangeInfo {
                name: change.name.clone(),
                action: match change.action {
                    Action::Restart
                        if old
                            .service(&change.name)
                            .zip(new.service(&change.name))
                            .is_some_and(|(was, now)| {
                                replacement(change, was, now) == Replacement::Rolling
                            }) =>
                    {
                        "reload"
                    }
                    Action::Restart => "restart",
                    Action::Scale { .. } => "scale",
                    Action::Update => "update",
                }
                .to_string(),
                settings: change.settings.iter().map(|s| s.key.clone()).collect(),
                instances: match change.action {
                    Action::Scale { from, to } => Some(ScaleInfo { from, to }),
                    _ => None,
                },
            })
            .collect(),
        unchanged: plan.unchanged.clone(),
        daemon_changes: plan.daemon.clone(),
    }
}
