//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of the API, generated at run time
//! from the same types the handlers parse and answer with (their schemars schemas), so the
//! document cannot drift from the code. The table here lists every route of
//! [`crate::api::router`]; the integration tests request each documented path and run
//! schemathesis against the document.

use axum::Json;
use schemars::{JsonSchema, SchemaGenerator, generate::SchemaSettings};
use serde_json::{Map, Value, json};

use crate::api::control::{ServicesQuery, TargetAction, TargetsQuery};
use crate::api::history::{AuditQuery, EventsQuery, SamplesQuery, StreamQuery, SummaryQuery};
use crate::api::logs::{LogEntry, LogQuery};
use crate::protocol::{
    ActionRequest, ActionResponse, ActionRow, ApplyReport, DaemonInfo, ErrorBody, EventRow,
    InstanceInfo, Liveness, LoginRequest, LogoutResponse, ManifestErrors, PlanReport, ReadyReport,
    SampleRow, ScaleRequest, ScaleResponse, ServiceInfo, SessionInfo, ShutdownResponse,
    SignalRequest, SummaryReport, TargetSignal, UpgradeRequest,
};

pub async fn document() -> Json<Value> {
    Json(build())
}

/// What one operation answers with on success.
enum Answer {
    Json(u16, Value),
    /// A stream: newline-delimited JSON, server-sent events or text, with the item schema.
    Stream(&'static str, Option<Value>),
    /// No answer on success: the operation ends the connection (an upgrade's exec); this
    /// says where to read the outcome.
    Closes(&'static str),
}

struct Operation {
    method: &'static str,
    path: &'static str,
    id: &'static str,
    summary: &'static str,
    tag: &'static str,
    query: Option<Value>,
    body: Option<(Value, bool)>,
    answer: Answer,
    /// Error statuses besides the ones every operation can give.
    errors: &'static [u16],
    /// An action: needs an `operate` token on TCP.
    operate: bool,
    /// Needs no token on TCP.
    public: bool,
    /// What an error status means here, where it is not the usual (a 422 described here
    /// answers a plain error, not the manifest's errors).
    described: &'static [(u16, &'static str)],
}

fn responses() -> SchemaGenerator {
    SchemaSettings::draft2020_12()
        .for_serialize()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        })
        .into_generator()
}

fn requests() -> SchemaGenerator {
    // Request schemas are inlined: they describe what is parsed (the deserialize contract),
    // and keeping them out of components avoids a name clash with the response contract.
    SchemaSettings::draft2020_12()
        .for_deserialize()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .into_generator()
}

fn out<T: JsonSchema>(g: &mut SchemaGenerator) -> Value {
    g.subschema_for::<T>().to_value()
}

fn input<T: JsonSchema>(g: &mut SchemaGenerator) -> Value {
    let mut schema = g.root_schema_for::<T>().to_value();
    if let Some(map) = schema.as_object_mut() {
        map.remove("$schema");
        map.remove("title");
    }
    schema
}

fn operations(r: &mut SchemaGenerator, q: &mut SchemaGenerator) -> Vec<Operation> {
    let op = |method, path, id, summary, tag, answer| Operation {
        method,
        path,
        id,
        summary,
        tag,
        query: None,
        body: None,
        answer,
        errors: &[],
        operate: false,
        public: false,
        described: &[],
    };
    vec![
        Operation {
            public: true,
            ..op(
                "get",
                "/health",
                "health",
                "tend's process answers",
                "health",
                Answer::Json(200, out::<Liveness>(r)),
            )
        },
        Operation {
            public: true,
            errors: &[503],
            ..op(
                "get",
                "/live",
                "live",
                "tend and its engine answer",
                "health",
                Answer::Json(200, out::<Liveness>(r)),
            )
        },
        Operation {
            public: true,
            errors: &[503],
            ..op(
                "get",
                "/ready",
                "ready",
                "Every autostart service is ready (503 lists those that are not)",
                "health",
                Answer::Json(200, out::<ReadyReport>(r)),
            )
        },
        op(
            "get",
            "/metrics",
            "metrics",
            "Prometheus metrics (text format 0.0.4)",
            "metrics",
            Answer::Stream("text/plain", None),
        ),
        op(
            "get",
            "/api/v1/openapi.json",
            "openapi",
            "This document",
            "meta",
            Answer::Json(200, json!({"type": "object"})),
        ),
        op(
            "get",
            "/api/v1/info",
            "info",
            "tend's version, pid, manifest and uptime",
            "meta",
            Answer::Json(200, out::<DaemonInfo>(r)),
        ),
        Operation {
            query: Some(input::<ServicesQuery>(q)),
            errors: &[404],
            ..op(
                "get",
                "/api/v1/services",
                "listServices",
                "Every service with its instances, or those of the targets",
                "services",
                Answer::Json(200, out::<Vec<ServiceInfo>>(r)),
            )
        },
        Operation {
            errors: &[404],
            ..op(
                "get",
                "/api/v1/services/{name}",
                "getService",
                "One service with its instances",
                "services",
                Answer::Json(200, out::<ServiceInfo>(r)),
            )
        },
        Operation {
            body: Some((input::<TargetAction>(q), false)),
            errors: &[404],
            operate: true,
            ..op(
                "post",
                "/api/v1/services/{target}/{action}",
                "actOnTarget",
                "start, stop, restart or reload a service, `name:N` instance, group or `all` (reload: a replacement beside each instance of a service with sockets, ready before the old process stops; `reload_signal`; else a rolling restart)",
                "actions",
                Answer::Json(200, out::<ActionResponse>(r)),
            )
        },
        Operation {
            body: Some((input::<TargetSignal>(q), true)),
            errors: &[404],
            operate: true,
            ..op(
                "post",
                "/api/v1/services/{target}/signal",
                "signalTarget",
                "Send a signal to a target's process groups",
                "actions",
                Answer::Json(200, out::<ActionResponse>(r)),
            )
        },
        Operation {
            query: Some(input::<TargetsQuery>(q)),
            errors: &[404],
            ..op(
                "get",
                "/api/v1/instances",
                "listInstances",
                "Instances of the targets (all by default)",
                "services",
                Answer::Json(200, out::<Vec<InstanceInfo>>(r)),
            )
        },
        Operation {
            body: Some((input::<ActionRequest>(q), true)),
            errors: &[404],
            operate: true,
            ..op(
                "post",
                "/api/v1/actions/{action}",
                "act",
                "start, stop, restart or reload several targets at once (reload answers once it is over: a failed replacement is stopped, the old processes keep running, and the instances are listed with the reason)",
                "actions",
                Answer::Json(200, out::<ActionResponse>(r)),
            )
        },
        Operation {
            body: Some((input::<SignalRequest>(q), true)),
            errors: &[404],
            operate: true,
            ..op(
                "post",
                "/api/v1/actions/signal",
                "signal",
                "Send a signal to several targets' process groups",
                "actions",
                Answer::Json(200, out::<ActionResponse>(r)),
            )
        },
        Operation {
            body: Some((input::<ScaleRequest>(q), true)),
            errors: &[404, 409, 503],
            operate: true,
            ..op(
                "post",
                "/api/v1/actions/scale",
                "scale",
                "Give a service N instances while tend runs: new indices start (when it runs), the highest stop; kept until the manifest's `instances` changes (409: the service is autoscaled)",
                "actions",
                Answer::Json(200, out::<ScaleResponse>(r)),
            )
        },
        Operation {
            body: Some((input::<UpgradeRequest>(q), true)),
            errors: &[409, 422, 500, 503],
            operate: true,
            described: &[
                (
                    409,
                    "not upgraded: something is under way (a start, stop or reload), or the manifest file differs from what runs",
                ),
                (
                    422,
                    "not upgraded: the binary is missing, not executable, or does not read this tend's handover version",
                ),
                (500, "not upgraded: executing the binary failed"),
            ],
            ..op(
                "post",
                "/api/v1/actions/upgrade",
                "upgrade",
                "Execute a binary (by default the one tend was started from) in place of the daemon: same pid, its children, their output pipes and its sockets handed over, no service stopped. Only a refusal is answered; everything then runs on as before",
                "actions",
                Answer::Closes(
                    "A successful upgrade ends this connection (the exec). GET /api/v1/info then answers with `upgrades` one higher and `last_upgrade` saying how it went (`ok: false` when the new binary could not take over and the previous one took over again)",
                ),
            )
        },
        Operation {
            query: Some(input::<TargetsQuery>(q)),
            errors: &[404],
            ..op(
                "get",
                "/api/v1/wait",
                "wait",
                "Wait until the targets are settled (running, or ready with `ready`)",
                "actions",
                Answer::Json(200, out::<ActionResponse>(r)),
            )
        },
        Operation {
            operate: true,
            ..op(
                "post",
                "/api/v1/shutdown",
                "shutdown",
                "Stop every service and end the daemon",
                "actions",
                Answer::Json(202, out::<ShutdownResponse>(r)),
            )
        },
        Operation {
            errors: &[409, 422],
            ..op(
                "get",
                "/api/v1/plan",
                "plan",
                "What apply would do: the manifest file read again and compared with what runs (422: the file is invalid, with every error)",
                "config",
                Answer::Json(200, out::<PlanReport>(r)),
            )
        },
        Operation {
            errors: &[409, 422, 503],
            operate: true,
            ..op(
                "post",
                "/api/v1/apply",
                "apply",
                "Read the manifest file again and carry out its changes: add, remove and restart only what changed (422: the file is invalid, nothing is changed)",
                "config",
                Answer::Json(200, out::<ApplyReport>(r)),
            )
        },
        Operation {
            query: Some(input::<LogQuery>(q)),
            errors: &[404],
            ..op(
                "get",
                "/api/v1/logs",
                "logs",
                "The log tail, then with `follow` the live lines (newline-delimited JSON)",
                "logs",
                Answer::Stream("application/x-ndjson", Some(out::<LogEntry>(r))),
            )
        },
        Operation {
            query: Some(input::<LogQuery>(q)),
            errors: &[404],
            ..op(
                "get",
                "/api/v1/logs/stream",
                "logStream",
                "The log tail, then the live lines, as server-sent events (`event: log`)",
                "logs",
                Answer::Stream("text/event-stream", Some(out::<LogEntry>(r))),
            )
        },
        Operation {
            query: Some(input::<EventsQuery>(q)),
            errors: &[404, 503],
            ..op(
                "get",
                "/api/v1/events",
                "events",
                "Past events from the history, oldest first",
                "history",
                Answer::Json(200, out::<Vec<EventRow>>(r)),
            )
        },
        Operation {
            query: Some(input::<StreamQuery>(q)),
            ..op(
                "get",
                "/api/v1/events/stream",
                "eventStream",
                "Live events as server-sent events (`event: state|spawn|exit|probe|warning`)",
                "history",
                Answer::Stream("text/event-stream", Some(out::<EventRow>(r))),
            )
        },
        Operation {
            query: Some(input::<AuditQuery>(q)),
            errors: &[404, 503],
            ..op(
                "get",
                "/api/v1/audit",
                "audit",
                "Actions taken through the API: who, what, when, result",
                "history",
                Answer::Json(200, out::<Vec<ActionRow>>(r)),
            )
        },
        Operation {
            query: Some(input::<SummaryQuery>(q)),
            errors: &[404, 503],
            ..op(
                "get",
                "/api/v1/summary",
                "summary",
                "Per service: uptime %, restarts and last failure over a window",
                "history",
                Answer::Json(200, out::<SummaryReport>(r)),
            )
        },
        op(
            "get",
            "/api/v1/session",
            "getSession",
            "Who the caller is: role, and for a dashboard session its CSRF token and end",
            "session",
            Answer::Json(200, out::<SessionInfo>(r)),
        ),
        Operation {
            body: Some((input::<LoginRequest>(q), true)),
            errors: &[401, 403, 404, 429],
            public: true,
            ..op(
                "post",
                "/api/v1/session",
                "login",
                "The dashboard's login on the TCP listener: a token for a session cookie (HttpOnly, SameSite=Strict), with the token's role. 401 for an unknown token, counted like a bad bearer token; 403 from a page of another origin; 404 on the unix socket, which needs no login",
                "session",
                Answer::Json(200, out::<SessionInfo>(r)),
            )
        },
        op(
            "delete",
            "/api/v1/session",
            "logout",
            "End the request's dashboard session (a `read` session may too) and clear its cookie",
            "session",
            Answer::Json(200, out::<LogoutResponse>(r)),
        ),
        Operation {
            query: Some(input::<SamplesQuery>(q)),
            errors: &[404, 503],
            ..op(
                "get",
                "/api/v1/samples",
                "samples",
                "CPU and memory samples of one instance, for charts",
                "history",
                Answer::Json(200, out::<Vec<SampleRow>>(r)),
            )
        },
    ]
}

/// Query parameters from the query struct's object schema.
fn parameters(query: &Value) -> Vec<Value> {
    let required: Vec<&str> = query["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    query["properties"]
        .as_object()
        .map(|props| {
            props
                .iter()
                .map(|(name, schema)| {
                    let mut schema = schema.clone();
                    let description = schema
                        .as_object_mut()
                        .and_then(|m| m.remove("description"))
                        .unwrap_or(Value::Null);
                    let mut p = json!({
                        "name": name,
                        "in": "query",
                        "required": required.contains(&name.as_str()),
                        "schema": schema,
                    });
                    if !description.is_null() {
                        p["description"] = description;
                    }
                    p
                })
                .collect()
        })
        .unwrap_or_default()
}

fn path_parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            let schema = match name {
                "action" => {
                    json!({"type": "string", "enum": ["start", "stop", "restart", "reload"]})
                }
                // `all` is a target in every manifest: it lets a fuzzer reach the actions.
                "target" => json!({"type": "string", "minLength": 1, "examples": ["all"]}),
                _ => json!({"type": "string", "minLength": 1}),
            };
            json!({"name": name, "in": "path", "required": true, "schema": schema})
        })
        .collect()
}

pub fn build() -> Value {
    let mut r = responses();
    let mut q = requests();
    let error = out::<ErrorBody>(&mut r);
    let manifest_errors = out::<ManifestErrors>(&mut r);
    let operations = operations(&mut r, &mut q);
    let mut paths = Map::new();
    for op in operations {
        let mut responses = Map::new();
        match &op.answer {
            Answer::Json(status, schema) => {
                responses.insert(
                    status.to_string(),
                    json!({"description": "success", "content": {"application/json": {"schema": schema}}}),
                );
            }
            Answer::Closes(_) => {}
            Answer::Stream(kind, item) => {
                let mut content = json!({"schema": {"type": "string"}});
                if let Some(item) = item {
                    content["x-item-schema"] = item.clone();
                }
                responses.insert(
                    "200".into(),
                    json!({"description": "a stream", "content": {*kind: content}}),
                );
            }
        }
        let mut statuses: Vec<u16> = vec![400];
        statuses.extend_from_slice(op.errors);
        if !op.public {
            statuses.extend([401, 429]);
        }
        if op.operate {
            statuses.push(403);
        }
        if op.body.is_some() {
            statuses.extend([413, 415]);
        }
        for status in statuses {
            let text = match status {
                400 => "bad request",
                401 => "missing or unknown token (TCP listener)",
                403 => "the token's role may not do this",
                404 => "no such service, instance or group",
                409 => {
                    "the change cannot be made now (tend is stopping, or something started meanwhile)"
                }
                422 => {
                    "the manifest is invalid: every error, with file, line and key; nothing changed"
                }
                413 => "the body is too large",
                415 => "the body is not `Content-Type: application/json`",
                429 => "too many failed authentications from this address",
                503 => "not available right now",
                _ => "error",
            };
            let described = op.described.iter().find(|(s, _)| *s == status);
            let text = described.map_or(text, |(_, text)| text);
            let schema = if status == 422 && described.is_none() {
                &manifest_errors
            } else {
                &error
            };
            responses.insert(
                status.to_string(),
                json!({"description": text, "content": {"application/json": {"schema": schema}}}),
            );
        }
        let mut parameters = path_parameters(op.path);
        if let Some(query) = &op.query {
            parameters.extend(self::parameters(query));
        }
        let mut operation = json!({
            "operationId": op.id,
            "summary": op.summary,
            "tags": [op.tag],
            "responses": responses,
        });
        if !parameters.is_empty() {
            operation["parameters"] = Value::Array(parameters);
        }
        if let Some((schema, required)) = &op.body {
            operation["requestBody"] = json!({
                "required": required,
                "content": {"application/json": {"schema": schema}},
            });
        }
        if op.public {
            operation["security"] = json!([]);
        }
        if let Answer::Closes(description) = &op.answer {
            operation["description"] = json!(description);
        }
        let entry = paths
            .entry(op.path.to_string())
            .or_insert_with(|| json!({}));
        entry[op.method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "tend control API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Served on tend's unix socket (no token: the socket's file mode is the access control) and, when [tend.http] is set, on TCP with bearer tokens: `read` tokens may GET, `operate` tokens may also act.",
        },
        "servers": [{"url": "/"}],
        "components": {
            "schemas": r.take_definitions(true),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    out.push(target);
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves_and_operation_ids_are_unique() {
        let document = build();
        let schemas = document["components"]["schemas"].as_object().unwrap();
        let mut found = Vec::new();
        refs(&document, &mut found);
        assert!(!found.is_empty());
        for target in found {
            let name = target
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("reference outside components: {target}"));
            assert!(schemas.contains_key(name), "dangling reference {target}");
        }
        let mut ids: Vec<&str> = document["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .map(|op| op["operationId"].as_str().unwrap())
            .collect();
        let count = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), count, "operationIds must be unique");
    }

    #[test]
    fn path_parameters_follow_the_template() {
        let document = build();
        let op = &document["paths"]["/api/v1/services/{target}/{action}"]["post"];
        let names: Vec<&str> = op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["target", "action"]);
        assert_eq!(
            op["responses"]["403"]["description"],
            "the token's role may not do this"
        );
        assert!(
            document["paths"]["/health"]["get"]["security"]
                .as_array()
                .unwrap()
                .is_empty()
        );
    }
}
