//! `tend scale SERVICE N` (`POST /api/v1/actions/scale`) and the autoscaler's changes: the
//! configuration in force with one service's `instances` changed, carried out by the same
//! path as `tend apply` ([`super::apply::transition`]), under the same lock.
//!
//! A count set this way is an [`Override`], kept in the configuration in force and
//! remembered across applies until the manifest's own `instances` for that service changes
//! ([`rebase`]), as `kubectl apply` leaves `replicas` alone unless the file's value changed
//! since the last apply. It lives in memory only: a new `tend up` starts from the file.
//!
//! Names: a scaled service becomes [`numbered`](crate::config::model::ServiceSpec::numbered),
//! so that `web:0` stays `web:0` if the count later comes down to 1. Only the first scale of
//! a single-instance service renames it (`web` → `web:0`…), which replaces that instance.

use std::collections::BTreeMap;
use std::time::SystemTime;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;

use crate::api::{ApiError, AppState, Caller, unix_ms};
use crate::config::model::ServiceSpec;
use crate::config::plan;
use crate::protocol::{ScaleRequest, ScaleResponse};
use crate::store::{EventRow, Record};

/// The most instances a service may be scaled to, as the manifest's `instances` allows.
pub const MAX_INSTANCES: u32 = 10_000;

/// Who set a count while tend runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scaler {
    /// `tend scale` (or `POST /api/v1/actions/scale`).
    Manual,
    Autoscale,
}

impl std::fmt::Display for Scaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Scaler::Manual => "tend scale",
            Scaler::Autoscale => "autoscale",
        })
    }
}

/// A count set while tend runs; the count itself is the service's `instances` in the
/// configuration in force.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// The manifest's `instances` when it was set: an apply whose file says otherwise drops
    /// the override and takes the file's count.
    pub manifest: u32,
    pub by: Scaler,
    /// The last change, as recorded in the history.
    pub reason: String,
    pub at_ms: i64,
}

/// Service name → its override.
pub type Overrides = BTreeMap<String, Override>;

/// What asks for a new count.
#[derive(Debug, Clone)]
pub enum Request {
    Manual(Caller),
    /// The autoscaler, which saw the service at `from` instances.
    Autoscale {
        from: u32,
        reason: String,
    },
}

/// The file as read again (`fresh`, no overrides), with the counts set while tend runs put
/// back where the file's `instances` for that service has not changed since they were set:
///
/// - manual: kept (with its names) while the file's `instances` is the one it was set
///   against; a changed `instances`, a service removed, or `autoscale` added drops it;
/// - autoscaled before and after: the autoscaler's count is kept, moved into the new
///   `min..=max` (`instances` is only the count an autoscaled service starts with);
///   `autoscale` removed drops it.
///
/// Every other setting is the file's.
pub fn rebase(
    active: &super::xmlrpc::Config,
    mut fresh: super::xmlrpc::Config,
) -> super::xmlrpc::Config {
    let mut kept = Overrides::new();
    for (name, set) in &active.overrides {
        let Some(now) = active.manifest.service(name) else {
            continue;
        };
        let Some(file) = fresh.manifest.services.iter_mut().find(|s| &s.name == name) else {
            continue;
        };
        let count = match (&now.autoscale, &file.autoscale) {
            (Some(_), Some(bounds)) => now.instances.clamp(bounds.min, bounds.max),
            (None, None) if file.instances == set.manifest => now.instances,
            _ => continue,
        };
        // A new `port_base` the count no longer fits in: the file's count it is.
        if !ports_fit(file, count) {
            continue;
        }
        kept.insert(
            name.clone(),
            Override {
                manifest: file.instances,
                ..set.clone()
            },
        );
        let file = std::sync::Arc::make_mut(file);
        file.instances = count;
        file.numbered = file.numbered || now.numbered;
    }
    fresh.overrides = kept;
    fresh
}

/// Whether every instance of `count` gets a port below 65536.
fn ports_fit(spec: &ServiceSpec, count: u32) -> bool {
    spec.port_base
        .is_none_or(|base| u32::from(base) + count - 1 <= u32::from(u16::MAX))
}

/// `POST /api/v1/actions/scale`.
pub async fn scale(
    State(state): State<AppState>,
    caller: Option<axum::Extension<Caller>>,
    body: Result<Json<ScaleRequest>, JsonRejection>,
) -> Result<Json<ScaleResponse>, ApiError> {
    let Json(request) = body?;
    let caller = caller.map_or_else(Caller::unknown, |c| c.0);
    let result = scale_to(
        &state,
        &request.service,
        request.instances,
        Request::Manual(caller.clone()),
    )
    .await;
    if let Some(history) = &state.history {
        let (ok, text) = match &result {
            Ok(done) => (done.ok, outcome(done)),
            Err(e) => (false, e.message.clone()),
        };
        super::control::audit(history, caller, "scale", request.service.clone(), ok, text);
    }
    result.map(Json)
}

/// One line of what a scale did, for the audit: `2 → 4; started web:2, web:3`.
pub fn outcome(done: &ScaleResponse) -> String {
    format!("{} → {}{}", done.from, done.to, instances_moved(done))
}

/// `; stopped …; started …` (and what did not start), or nothing.
pub fn instances_moved(done: &ScaleResponse) -> String {
    let mut text = String::new();
    if !done.stopped.is_empty() {
        text.push_str(&format!("; stopped {}", done.stopped.join(", ")));
    }
    let started: Vec<&str> = done
        .started
        .iter()
        .filter(|r| r.ok)
        .map(|r| r.instance.as_str())
        .collect();
    if !started.is_empty() {
        text.push_str(&format!("; started {}", started.join(", ")));
    }
    for failed in done.started.iter().filter(|r| !r.ok) {
        text.push_str(&format!(
            "; {} did not start: {}",
            failed.instance,
            failed.error.as_deref().unwrap_or("failed")
        ));
    }
    text
}

/// Give `service` `to` instances: new indices added (and started, when the service runs),
/// the highest removed (stopped first). Answers once what it started is up (as `start`).
pub async fn scale_to(
    state: &AppState,
    service: &str,
    to: u32,
    request: Request,
) -> Result<ScaleResponse, ApiError> {
    if to == 0 {
        return Err(ApiError::bad_request(format!(
            "a service has at least 1 instance; to stop every instance of `{service}` and keep its count, use `tend stop {service}`"
        )));
    }
    if to > MAX_INSTANCES {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_INSTANCES} instances, not {to}"
        )));
    }
    let configs = state.rpc.configs().await;
    let active = &configs.active;
    let Some(spec) = active.manifest.service(service) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no service named `{service}`"),
        ));
    };
    let from = spec.instances;
    let set = active.overrides.get(service);
    let manifest = set.map_or(from, |o| o.manifest);
    let statuses = state.engine.status(vec![service.to_string()]).await??;
    let running = statuses
        .iter()
        .any(|s| !matches!(s.state, "stopped" | "exited" | "fatal" | "stopping"));
    let unchanged = ScaleResponse {
        service: service.to_string(),
        from,
        to: from,
        manifest,
        stopped: Vec::new(),
        started: Vec::new(),
        running,
        ok: true,
    };
    let (by, reason) = match &request {
        Request::Manual(caller) => {
            if let Some(auto) = &spec.autoscale {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    format!(
                        "`{service}` is autoscaled between {} and {} instances: its count follows its CPU; change `autoscale` in the manifest and apply",
                        auto.min, auto.max
                    ),
                ));
            }
            (
                Scaler::Manual,
                format!("tend scale by {}: {from} → {to}", caller.who),
            )
        }
        // Something else changed the count since the autoscaler looked: it looks again.
        Request::Autoscale { from: seen, .. } if *seen != from => return Ok(unchanged),
        Request::Autoscale { reason, .. } => (Scaler::Autoscale, reason.clone()),
    };
    if !ports_fit(spec, to) {
        return Err(ApiError::bad_request(format!(
            "{to} instances from port_base {} would need ports past 65535",
            spec.port_base.unwrap_or_default()
        )));
    }
    if to == from {
        return Ok(ScaleResponse { to, ..unchanged });
    }
    let mut next = active.clone();
    let changed = next
        .manifest
        .services
        .iter_mut()
        .find(|s| s.name == service)
        .expect("UNWRAP: found above");
    let changed = std::sync::Arc::make_mut(changed);
    changed.instances = to;
    changed.numbered = true;
    // Back at the file's count with the file's names: nothing left to remember.
    if by == Scaler::Manual && to == manifest && to >= 2 {
        next.overrides.remove(service);
    } else {
        next.overrides.insert(
            service.to_string(),
            Override {
                manifest,
                by,
                reason: reason.clone(),
                at_ms: unix_ms(SystemTime::now()),
            },
        );
    }
    let plan = plan::plan(&active.manifest, &next.manifest);
    let done = super::apply::transition(state, configs, &plan, next).await?;
    if let Some(history) = &state.history {
        history.record(Record::Event(EventRow {
            id: None,
            at_ms: unix_ms(SystemTime::now()),
            service: service.to_string(),
            instance: service.to_string(),
            kind: "scale".into(),
            from_state: None,
            to_state: None,
            reason: Some(reason),
            pid: None,
            exit_code: None,
            signal: None,
            probe: None,
            passing: None,
        }));
    }
    Ok(ScaleResponse {
        to,
        stopped: done.stopped,
        started: done.started,
        ok: done.ok,
        ..unchanged
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::xmlrpc::Config;

    fn config(text: &str) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tend.toml");
        std::fs::write(&path, text).unwrap();
        let manifest = crate::config::load(&path).expect("a valid manifest");
        Config {
            manifest,
            names: Vec::new(),
            overrides: Overrides::new(),
        }
    }

    fn scaled(mut config: Config, service: &str, to: u32, by: Scaler) -> Config {
        let spec = config
            .manifest
            .services
            .iter_mut()
            .find(|s| s.name == service)
            .unwrap();
        let spec = std::sync::Arc::make_mut(spec);
        config.overrides.insert(
            service.into(),
            Override {
                manifest: spec.instances,
                by,
                reason: "test".into(),
                at_ms: 0,
            },
        );
        spec.instances = to;
        spec.numbered = true;
        config
    }

    fn count(config: &Config, service: &str) -> u32 {
        config.manifest.service(service).unwrap().instances
    }

    #[test]
    fn the_request_takes_a_whole_number_as_json_schema_counts_them() {
        let read = |body: &str| serde_json::from_str::<ScaleRequest>(body).map(|r| r.instances);
        assert_eq!(read(r#"{"service": "web", "instances": 4}"#).unwrap(), 4);
        assert_eq!(read(r#"{"service": "web", "instances": 4.0}"#).unwrap(), 4);
        assert!(read(r#"{"service": "web", "instances": 4.5}"#).is_err());
        assert!(read(r#"{"service": "web", "instances": -1}"#).is_err());
        assert!(read(r#"{"service": "web", "instances": "4"}"#).is_err());
        let document = crate::api::openapi::build();
        let schema = &document["paths"]["/api/v1/actions/scale"]["post"]["requestBody"]["content"]
            ["application/json"]["schema"]["properties"]["instances"];
        assert_eq!(schema["type"], "integer", "{schema}");
        assert_eq!(
            (schema["minimum"].as_u64(), schema["maximum"].as_u64()),
            (Some(1), Some(10000))
        );
    }

    const TWO: &str = "[services.web]\ncommand = \"sleep 1\"\ninstances = 2\n\n[services.db]\ncommand = \"sleep 1\"\n";

    #[test]
    fn an_unchanged_count_in_the_file_keeps_the_scaled_one() {
        let active = scaled(config(TWO), "web", 4, Scaler::Manual);
        let fresh = rebase(&active, config(TWO));
        assert_eq!(count(&fresh, "web"), 4);
        assert_eq!(fresh.overrides["web"].manifest, 2);
        // Another setting of the service changed: still the scaled count.
        let edited = TWO.replace("sleep 1\"\ninstances", "sleep 2\"\ninstances");
        let fresh = rebase(&active, config(&edited));
        assert_eq!(count(&fresh, "web"), 4);
        assert_eq!(
            crate::config::plan::plan(&active.manifest, &fresh.manifest).changed[0].settings[0].key,
            "command"
        );
    }

    #[test]
    fn a_changed_count_in_the_file_drops_the_scaled_one() {
        let active = scaled(config(TWO), "web", 4, Scaler::Manual);
        let fresh = rebase(
            &active,
            config(&TWO.replace("instances = 2", "instances = 3")),
        );
        assert_eq!(count(&fresh, "web"), 3);
        assert!(fresh.overrides.is_empty());
        // Removed from the file: gone with it.
        let fresh = rebase(&active, config("[services.db]\ncommand = \"sleep 1\"\n"));
        assert!(fresh.overrides.is_empty());
    }

    #[test]
    fn a_single_instance_scaled_down_to_one_keeps_its_numbered_name() {
        // db: 1 → 3 → 1 keeps `db:0`, and the file (1, unchanged) keeps it so.
        let active = scaled(config(TWO), "db", 1, Scaler::Manual);
        let fresh = rebase(&active, config(TWO));
        let db = fresh.manifest.service("db").unwrap();
        assert_eq!((db.instances, db.instance_name(0).as_str()), (1, "db:0"));
    }

    #[test]
    fn an_autoscaled_count_is_kept_inside_the_new_bounds() {
        let auto = "[services.web]\ncommand = \"sleep 1\"\nautoscale = { min = 2, max = 8, cpu = \"70%\" }\n";
        let active = scaled(config(auto), "web", 6, Scaler::Autoscale);
        assert_eq!(count(&rebase(&active, config(auto)), "web"), 6);
        let narrower = auto.replace("max = 8", "max = 4");
        assert_eq!(count(&rebase(&active, config(&narrower)), "web"), 4);
        // `instances`, the starting count, changed: the autoscaler's count stays.
        let started = auto.replace("cpu = \"70%\" }", "cpu = \"70%\" }\ninstances = 3");
        assert_eq!(count(&rebase(&active, config(&started)), "web"), 6);
        // autoscale removed: the file's count.
        let plain = "[services.web]\ncommand = \"sleep 1\"\n";
        let fresh = rebase(&active, config(plain));
        assert_eq!(count(&fresh, "web"), 1);
        assert!(fresh.overrides.is_empty());
    }
}
