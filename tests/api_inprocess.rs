//! The API router in-process, on a real engine with a real child, without a socket: the
//! handlers' contract on its own (tests/it goes through the socket and TCP). A test binary
//! of its own, because the engine's reaper waits for any child (`waitpid(-1)`) and would
//! take the exit of another test's child in a shared binary.

use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tokio::sync::Notify;
use tokio::time::Instant;
use tower_service::Service;

use tend::api::{AppState, router};
use tend::config::model::CgroupMode;
use tend::engine::EngineOptions;
use tend::engine::tree::Containment;
use tend::logs::LogSink;

async fn call(
    router: &mut Router,
    method: &str,
    uri: &str,
    body: &str,
) -> (StatusCode, serde_json::Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = router.call(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, value)
}

#[tokio::test]
async fn handlers_answer_on_a_real_engine() {
    let dir = tempfile::tempdir().unwrap();
    let manifest_path = dir.path().join("tend.toml");
    std::fs::write(
        &manifest_path,
        "[tend]\ncgroups = \"off\"\n[services.web]\ncommand = \"sleep 30\"\n",
    )
    .unwrap();
    let manifest = tend::config::load(&manifest_path).unwrap();
    let logs = LogSink::start(
        dir.path().join("logs"),
        None,
        tend::logs::OwnLogTarget {
            path: dir.path().join("tend.log"),
            rotation: tend::config::model::LogSpec::default(),
            to_stderr: false,
            redirect_std: false,
        },
    )
    .unwrap();
    let services = Arc::new(tend::api::ServiceList::new(&manifest));
    let rpc = Arc::new(tend::api::xmlrpc::Rpc::new(
        tend::api::xmlrpc::Config {
            manifest: manifest.clone(),
            names: Vec::new(),
            overrides: Default::default(),
        },
        None,
        None,
    ));
    let engine = tend::engine::start(
        manifest,
        EngineOptions {
            containment: Arc::new(Containment::detect(CgroupMode::Off, "api-test".into())),
            logs: logs.clone(),
            notify_socket: dir.path().join("notify.sock"),
            listener_io: None,
            sockets: Default::default(),
            clock: None,
            spawner: None,
            notify: None,
            adoption: None,
        },
    )
    .unwrap();
    let mut router = router(AppState {
        engine: engine.clone(),
        manifest: manifest_path,
        state_dir: dir.path().to_path_buf(),
        logs,
        started: Instant::now(),
        started_at: SystemTime::now(),
        shutdown: Arc::new(Notify::new()),
        services,
        history: None,
        http_listen: None,
        rpc,
        upgrades: Default::default(),
    });

    let (status, body) = call(&mut router, "POST", "/api/v1/services/web/start", "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["ok"], true);
    let (status, body) = call(&mut router, "GET", "/api/v1/services/web", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["state"], "running");
    assert!(body["instances"][0]["pid"].is_u64());
    let (status, body) = call(&mut router, "GET", "/api/v1/events", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no history here: {body}");
    let (status, body) = call(
        &mut router,
        "POST",
        "/api/v1/actions/signal",
        r#"{"targets":[],"signal":"HUP"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "no targets given");
    let (status, _) = call(&mut router, "GET", "/ready", "").await;
    assert_eq!(status, StatusCode::OK);

    engine.shutdown().await.unwrap();
    let (_, body) = call(&mut router, "GET", "/api/v1/services/web", "").await;
    assert_eq!(body["state"], "stopped");
}
