//! Kubernetes and Compose exports checked by outside tools: `kubernetes-validate --strict`
//! and the Compose specification's JSON schema (both from target/tools, which
//! ./scripts/test fills), and parsed back with PyYAML (YAML 1.1, the stricter reader) to
//! prove the quoting round-trips.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tend::export::{Export, KubeOptions, export_compose, export_kubernetes};

/// The Kubernetes version validated against (kubernetes-validate's newest schema).
const KUBE_VERSION: &str = "1.37.0";

const FULL: &str = r#"
[services.db]
command = "postgres -c 'shared_buffers=128MB'"
port_base = 5432
readiness = { exec = "pg_isready -q -h 127.0.0.1 && echo \"$PGDATA\"", interval = "2s", timeout = "1s", failure_threshold = 5 }
memory_max = "512MiB"
cpu_max = "150%"
stop_signal = "INT"
stop_timeout = "30s"
user = "999"
group = "999"

[services.migrate]
kind = "task"
args = ["./migrate", "--shard={instance}", "--dsn", "postgres://u:p@db/x?sslmode=disable"]
instances = 2
restart = "on-failure"
max_restarts = 4
depends_on = { db = "healthy" }

[services.api]
command = "./api --port {port} --greeting \"hello world\""
port_base = 8000
instances = 3
cwd = "/srv/api"
env = { QUOTE = 'he said "hi" \ and left', DOLLAR = 'cost: $5 and $(HOME) and $${x}', PCT = "100% %s", MULTI = "line1\nline2\ttab", INST = "{instance}", no = "yes" }
readiness = { http = "http://127.0.0.1:{port}/health", interval = "2s", headers = { X-Probe = "1" } }
liveness = { tcp = "127.0.0.1:{port}", failure_threshold = 3 }
startup = { http = "http://127.0.0.1:{port}/ready", interval = "5s", failure_threshold = 60 }
depends_on = { db = "healthy", migrate = "completed" }

[services.worker_2]
shell = true
command = "while true; do echo \"tick $(date +%s) 100%\" | tee -a '/tmp/a b.log'; sleep 1; done"
restart = "on-failure"
readiness = { log = "ready" }
depends_on = ["api"]
max_memory = "1GB"
gpus = [0, 1]
gpus_per_instance = 1
"#;

fn manifest(dir: &Path, text: &str) -> tend::config::model::Manifest {
    let project = dir.join("shop");
    std::fs::create_dir_all(&project).unwrap();
    let path = project.join("tend.toml");
    std::fs::write(&path, text).unwrap();
    tend::config::load(&path).unwrap_or_else(|e| panic!("manifest does not load: {e}"))
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/export")
        .join(name)
}

fn write(dir: &Path, export: &Export) -> PathBuf {
    assert_eq!(export.files.len(), 1);
    let (name, text) = &export.files[0];
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The documents as PyYAML reads them (a YAML 1.1 parser, the stricter test for quoting).
fn parse(file: &Path, compose_schema: bool) -> Vec<Value> {
    let mut cmd = Command::new(super::tool("python"));
    cmd.arg(data("parse.py"));
    if compose_schema {
        cmd.arg("--compose-schema").arg(data("compose-spec.json"));
    }
    let out = cmd.arg(file).output().unwrap();
    assert!(
        out.status.success(),
        "parse.py failed on {}:\n{}\n{}",
        file.display(),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(file).unwrap()
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn kube_validate(file: &Path) {
    let out = Command::new(super::tool("kubernetes-validate"))
        .args(["--strict", "-k", KUBE_VERSION])
        .arg(file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let bad = !out.status.success()
        || stdout.contains("ERROR")
        || stdout.contains("WARN")
        || stderr.contains("ERROR")
        || stderr.contains("WARN");
    assert!(
        !bad,
        "kubernetes-validate rejected {}:\n{stdout}\n{stderr}\n{}",
        file.display(),
        std::fs::read_to_string(file).unwrap()
    );
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn env_of(container: &Value, name: &str) -> Value {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .map(|e| e["value"].clone())
        .unwrap_or(Value::Null)
}

fn has_note(export: &Export, service: &str, setting: &str) -> bool {
    export
        .unmapped
        .iter()
        .any(|(s, k, _)| s == service && k == setting)
}

#[test]
fn kubernetes_full_manifest_validates_and_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(dir.path(), FULL);
    let export = export_kubernetes(
        &m,
        &[],
        &KubeOptions {
            image: "registry.example/shop:1.2".into(),
            namespace: Some("shop-prod".into()),
        },
    );
    let file = write(dir.path(), &export);
    kube_validate(&file);
    let docs = parse(&file, false);
    // Two Services (db, api), then three Deployments and a Job.
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "Service",
            "Service",
            "Deployment",
            "Job",
            "Deployment",
            "Deployment"
        ]
    );
    for d in &docs {
        assert_eq!(d["metadata"]["namespace"], "shop-prod");
        assert_eq!(d["metadata"]["labels"]["app.kubernetes.io/part-of"], "shop");
    }

    let db_svc = find(&docs, "Service", "db");
    assert_eq!(db_svc["spec"]["ports"][0]["port"], 5432);
    assert_eq!(db_svc["spec"]["selector"]["app.kubernetes.io/name"], "db");

    let db = find(&docs, "Deployment", "db");
    assert_eq!(db["spec"]["replicas"], 1);
    let pod = &db["spec"]["template"]["spec"];
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    let c = &pod["containers"][0];
    assert_eq!(c["image"], "registry.example/shop:1.2");
    assert_eq!(c["command"], serde_json::json!(["postgres"]));
    assert_eq!(c["args"], serde_json::json!(["-c", "shared_buffers=128MB"]));
    assert_eq!(c["resources"]["limits"]["memory"], "512Mi");
    assert_eq!(c["resources"]["limits"]["cpu"], "1500m");
    assert_eq!(c["securityContext"]["runAsUser"], 999);
    // Probe commands are not $(VAR)-expanded by Kubernetes: written as they are.
    assert_eq!(
        c["readinessProbe"]["exec"]["command"][2],
        "pg_isready -q -h 127.0.0.1 && echo \"$PGDATA\""
    );
    assert_eq!(c["readinessProbe"]["periodSeconds"], 2);
    assert_eq!(c["readinessProbe"]["failureThreshold"], 5);
    assert!(has_note(&export, "db", "stop_signal"));

    let api = find(&docs, "Deployment", "api");
    assert_eq!(api["spec"]["replicas"], 3);
    let pod = &api["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(
        c["args"],
        serde_json::json!(["--port", "8000", "--greeting", "hello world"])
    );
    assert_eq!(c["workingDir"], "/srv/api");
    assert_eq!(env_of(c, "QUOTE"), r#"he said "hi" \ and left"#);
    // `$` doubled against Kubernetes' $(VAR) expansion; `$${x}` was tend's literal `${x}`.
    assert_eq!(env_of(c, "DOLLAR"), "cost: $$5 and $$(HOME) and $${x}");
    assert_eq!(env_of(c, "PCT"), "100% %s");
    assert_eq!(env_of(c, "MULTI"), "line1\nline2\ttab");
    assert_eq!(env_of(c, "no"), "yes");
    assert_eq!(env_of(c, "PORT"), "8000");
    assert_eq!(env_of(c, "TEND_INSTANCE"), Value::Null);
    assert!(has_note(&export, "api", "{instance}"));
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], 8000);
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/health");
    assert_eq!(
        c["readinessProbe"]["httpGet"]["httpHeaders"][0]["name"],
        "X-Probe"
    );
    assert_eq!(c["livenessProbe"]["tcpSocket"]["port"], 8000);
    assert_eq!(c["startupProbe"]["failureThreshold"], 60);
    // db becomes an init container; migrate (completed) cannot be waited for this way.
    let inits = pod["initContainers"].as_array().unwrap();
    assert_eq!(inits.len(), 1);
    assert!(
        inits[0]["command"][2]
            .as_str()
            .unwrap()
            .contains("nc -z -w 2 db 5432")
    );
    assert!(has_note(&export, "api", "depends_on.migrate"));

    let job = find(&docs, "Job", "migrate");
    assert_eq!(job["spec"]["completions"], 2);
    assert_eq!(job["spec"]["completionMode"], "Indexed");
    assert_eq!(job["spec"]["backoffLimit"], 4);
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "OnFailure");
    assert_eq!(pod["containers"][0]["args"][0], "--shard=$(TEND_INSTANCE)");

    // The worker's name is made a DNS label; its shell line keeps every character.
    let worker = find(&docs, "Deployment", "worker-2");
    let c = &worker["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        c["command"],
        serde_json::json!([
            "/bin/sh",
            "-c",
            "while true; do echo \"tick $$(date +%s) 100%\" | tee -a '/tmp/a b.log'; sleep 1; done"
        ])
    );
    assert_eq!(c["resources"]["limits"]["nvidia.com/gpu"], 1);
    assert!(c.get("readinessProbe").is_none());
    assert!(has_note(&export, "worker_2", "readiness"));
    assert!(has_note(&export, "worker_2", "name"));
    assert!(has_note(&export, "worker_2", "restart"));
    assert!(has_note(&export, "worker_2", "max_memory"));
    assert!(!has_note(&export, "worker_2", "depends_on.api"));
}

#[test]
fn kubernetes_selection_and_no_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(dir.path(), FULL);
    let export = export_kubernetes(
        &m,
        &["db".into(), "nope".into()],
        &KubeOptions {
            image: "img".into(),
            namespace: None,
        },
    );
    let file = write(dir.path(), &export);
    kube_validate(&file);
    let docs = parse(&file, false);
    assert_eq!(docs.len(), 2);
    assert!(
        docs.iter()
            .all(|d| d["metadata"].get("namespace").is_none())
    );
    assert!(has_note(&export, "nope", ""));
}

#[test]
fn compose_full_manifest_validates_and_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(dir.path(), FULL);
    let export = export_compose(&m, &[], "registry.example/shop:1.2");
    let file = write(dir.path(), &export);
    let docs = parse(&file, true);
    let doc = &docs[0];
    assert_eq!(doc["name"], "shop");
    let s = &doc["services"];

    let db = &s["db"];
    assert_eq!(db["image"], "registry.example/shop:1.2");
    assert_eq!(db["entrypoint"], serde_json::json!([]));
    assert_eq!(
        db["command"],
        serde_json::json!(["postgres", "-c", "shared_buffers=128MB"])
    );
    assert_eq!(db["user"], "999:999");
    assert_eq!(db["stop_signal"], "SIGINT");
    assert_eq!(db["stop_grace_period"], "30s");
    assert_eq!(db["deploy"]["resources"]["limits"]["memory"], "512m");
    assert_eq!(db["deploy"]["resources"]["limits"]["cpus"], "1.5");
    assert_eq!(
        db["healthcheck"]["test"],
        serde_json::json!([
            "CMD-SHELL",
            "pg_isready -q -h 127.0.0.1 && echo \"$$PGDATA\""
        ])
    );
    assert_eq!(db["healthcheck"]["retries"], 5);
    assert_eq!(db["healthcheck"]["interval"], "2s");
    assert_eq!(db["restart"], "always");

    let api = &s["api"];
    assert_eq!(api["deploy"]["replicas"], 3);
    assert_eq!(api["ports"][0]["published"], "8000-8002");
    assert_eq!(api["working_dir"], "/srv/api");
    let env = &api["environment"];
    assert_eq!(env["QUOTE"], r#"he said "hi" \ and left"#);
    assert_eq!(env["DOLLAR"], "cost: $$5 and $$(HOME) and $${x}");
    assert_eq!(env["PCT"], "100% %s");
    assert_eq!(env["MULTI"], "line1\nline2\ttab");
    assert_eq!(env["no"], "yes");
    assert_eq!(env["PORT"], "8000");
    let test = api["healthcheck"]["test"][1].as_str().unwrap();
    assert!(test.starts_with("curl -fsS -o /dev/null"), "{test}");
    assert!(test.contains("'http://127.0.0.1:8000/health'"), "{test}");
    assert_eq!(api["healthcheck"]["start_period"], "5m");
    assert_eq!(
        api["depends_on"],
        serde_json::json!({
            "db": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"}
        })
    );
    assert!(has_note(&export, "api", "liveness"));
    assert!(has_note(&export, "api", "{instance}"));

    let migrate = &s["migrate"];
    assert_eq!(migrate["restart"], "on-failure");
    assert_eq!(migrate["command"][1], "--shard=0");

    let worker = &s["worker_2"];
    assert_eq!(
        worker["command"][2],
        "while true; do echo \"tick $$(date +%s) 100%\" | tee -a '/tmp/a b.log'; sleep 1; done"
    );
    assert_eq!(worker["depends_on"]["api"]["condition"], "service_started");
    assert_eq!(
        worker["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"],
        serde_json::json!(["0"])
    );
    assert!(worker.get("healthcheck").is_none());
    assert!(has_note(&export, "worker_2", "readiness"));
}

#[test]
fn compose_selection_brings_its_dependencies() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(dir.path(), FULL);
    let export = export_compose(&m, &["api".into()], "img");
    let file = write(dir.path(), &export);
    let docs = parse(&file, true);
    let services = docs[0]["services"].as_object().unwrap();
    let mut names: Vec<&str> = services.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, ["api", "db", "migrate"]);
    assert_eq!(
        services["api"]["depends_on"]["db"]["condition"],
        "service_healthy"
    );
    assert!(!has_note(&export, "api", "depends_on.db"));
}

#[test]
fn awkward_strings_survive_both_formats() {
    // Control characters, a YAML document marker, `#`, `: `, unicode, a lone backslash.
    let text = r#"
[services."odd.name"]
args = ["printf", "%s\n", "--- # not: a comment", "\u0007bell \u001b[0m", "é ✓ \u2028", "\\", "'single'", "yes", "0755", ""]
env = { EMPTY = "", "WEIRD" = "a\r\nb", TRAIL = "x " }
"#;
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(dir.path(), text);
    let argv = vec![
        "printf",
        "%s\n",
        "--- # not: a comment",
        "\u{7}bell \u{1b}[0m",
        "é ✓ \u{2028}",
        "\\",
        "'single'",
        "yes",
        "0755",
        "",
    ];

    let k = export_kubernetes(
        &m,
        &[],
        &KubeOptions {
            image: "img".into(),
            namespace: None,
        },
    );
    let file = write(dir.path(), &k);
    kube_validate(&file);
    let docs = parse(&file, false);
    let c = &docs[0]["spec"]["template"]["spec"]["containers"][0];
    let mut got: Vec<String> = vec![c["command"][0].as_str().unwrap().to_string()];
    got.extend(
        c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string()),
    );
    assert_eq!(got, argv);
    assert_eq!(env_of(c, "WEIRD"), "a\r\nb");
    assert_eq!(env_of(c, "EMPTY"), "");
    assert_eq!(env_of(c, "TRAIL"), "x ");

    let dir2 = tempfile::tempdir().unwrap();
    let m2 = manifest(dir2.path(), text);
    let comp = export_compose(&m2, &[], "img");
    let file = write(dir2.path(), &comp);
    let docs = parse(&file, true);
    let svc = &docs[0]["services"]["odd.name"];
    let got: Vec<&str> = svc["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(got, argv);
    assert_eq!(svc["environment"]["WEIRD"], "a\r\nb");
}

#[test]
fn odd_settings_are_reported_and_still_valid() {
    let text = r#"
[services.seed]
kind = "task"
autostart = false
command = "./seed"
user = "root"

[services.svc]
command = "./svc"
autostart = false
restart = "never"
port_base = 9000
readiness = { notify = true }
liveness = { http = "http://127.0.0.1:{port}/live", method = "POST", interval = "500ms", body_contains = "ok" }
backoff = { initial = "2s" }
exit_codes = [0, 3]
umask = "022"
pids_max = 100
"#;
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(dir.path(), text);
    let k = export_kubernetes(
        &m,
        &[],
        &KubeOptions {
            image: "img".into(),
            namespace: None,
        },
    );
    let file = write(dir.path(), &k);
    kube_validate(&file);
    let docs = parse(&file, false);
    let job = find(&docs, "Job", "seed");
    assert_eq!(job["spec"]["suspend"], true);
    let dep = find(&docs, "Deployment", "svc");
    assert_eq!(dep["spec"]["replicas"], 0);
    let c = &dep["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["livenessProbe"]["periodSeconds"], 1);
    for (service, setting) in [
        ("seed", "autostart"),
        ("seed", "user"),
        ("svc", "readiness"),
        ("svc", "liveness.method"),
        ("svc", "liveness.body_contains"),
        ("svc", "liveness"),
        ("svc", "backoff"),
        ("svc", "exit_codes"),
        ("svc", "umask"),
        ("svc", "pids_max"),
        ("svc", "restart"),
    ] {
        assert!(
            has_note(&k, service, setting),
            "{service} {setting}: {:?}",
            k.unmapped
        );
    }

    let c = export_compose(&m, &[], "img");
    let file = write(dir.path(), &c);
    let docs = parse(&file, true);
    let svc = &docs[0]["services"]["svc"];
    assert_eq!(svc["restart"], "no");
    assert_eq!(svc["deploy"]["replicas"], 0);
    assert_eq!(svc["deploy"]["resources"]["limits"]["pids"], 100);
    assert_eq!(docs[0]["services"]["seed"]["user"], "root");
}

#[test]
fn sockets_are_reported_not_dropped_by_kubernetes_and_compose() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(
        dir.path(),
        "[sockets.http]\nlisten = \"tcp://0.0.0.0:8080\"\n[services.web]\ncommand = \"./web\"\nsockets = [\"http\"]\n",
    );
    let kube = export_kubernetes(
        &m,
        &[],
        &KubeOptions {
            image: "img".into(),
            namespace: None,
        },
    );
    assert!(has_note(&kube, "web", "sockets"), "{:?}", kube.unmapped);
    let compose = export_compose(&m, &[], "img");
    assert!(
        has_note(&compose, "web", "sockets"),
        "{:?}",
        compose.unmapped
    );
    assert!(
        compose.report().contains("LISTEN_FDS"),
        "{}",
        compose.report()
    );
}

#[test]
fn autoscale_becomes_a_horizontal_pod_autoscaler_and_a_note_for_compose() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(
        dir.path(),
        r#"
[services.api]
command = "./api"
port_base = 8000
instances = 3
autoscale = { min = 2, max = 8, cpu = "70%", cooldown = "2m" }

[services.slow]
command = "./slow"
autostart = false
autoscale = { max = 4, cpu = 1.25, cooldown = "2h" }
"#,
    );
    let export = export_kubernetes(
        &m,
        &[],
        &KubeOptions {
            image: "registry.example/shop:1.2".into(),
            namespace: Some("shop".into()),
        },
    );
    let file = write(dir.path(), &export);
    kube_validate(&file);
    let docs = parse(&file, false);
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "Service",
            "Deployment",
            "Deployment",
            "HorizontalPodAutoscaler",
            "HorizontalPodAutoscaler"
        ]
    );
    // The Deployment starts with `instances`; the autoscaler takes it from there.
    assert_eq!(find(&docs, "Deployment", "api")["spec"]["replicas"], 3);
    let hpa = find(&docs, "HorizontalPodAutoscaler", "api");
    assert_eq!(hpa["apiVersion"], "autoscaling/v2");
    assert_eq!(hpa["metadata"]["namespace"], "shop");
    let spec = &hpa["spec"];
    assert_eq!(spec["scaleTargetRef"]["kind"], "Deployment");
    assert_eq!(spec["scaleTargetRef"]["name"], "api");
    assert_eq!(
        (spec["minReplicas"].clone(), spec["maxReplicas"].clone()),
        (2.into(), 8.into())
    );
    let target = &spec["metrics"][0]["resource"]["target"];
    assert_eq!(spec["metrics"][0]["resource"]["name"], "cpu");
    assert_eq!(target["type"], "AverageValue");
    assert_eq!(target["averageValue"], "700m");
    let down = &spec["behavior"]["scaleDown"];
    assert_eq!(down["stabilizationWindowSeconds"], 120);
    assert_eq!(down["policies"][0]["type"], "Pods");
    assert_eq!(down["policies"][0]["value"], 1);
    assert_eq!(down["policies"][0]["periodSeconds"], 120);
    assert!(has_note(&export, "api", "autoscale"));
    // 1.25 cores; a two-hour cooldown is past what a policy takes, and said so.
    let slow = &find(&docs, "HorizontalPodAutoscaler", "slow")["spec"];
    assert_eq!(
        slow["metrics"][0]["resource"]["target"]["averageValue"],
        "1250m"
    );
    assert_eq!(
        slow["behavior"]["scaleDown"]["policies"][0]["periodSeconds"],
        1800
    );
    assert_eq!(
        slow["behavior"]["scaleDown"]["stabilizationWindowSeconds"],
        3600
    );
    let says = |service: &str, setting: &str, text: &str| {
        export
            .unmapped
            .iter()
            .any(|(s, k, w)| s == service && k == setting && w.contains(text))
    };
    assert!(
        says("slow", "autoscale", "capped at 1800 s"),
        "{:?}",
        export.unmapped
    );
    assert!(
        says("slow", "autostart", "at 0 replicas: it acts"),
        "{:?}",
        export.unmapped
    );
    // Replicas have no index, even for one that starts with one instance.
    let slow = find(&docs, "Deployment", "slow");
    let container = &slow["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(env_of(container, "TEND_INSTANCE"), Value::Null);
    assert!(has_note(&export, "slow", "TEND_INSTANCE"));

    // Compose cannot scale by load: the starting count, and a note.
    let compose = export_compose(&m, &[], "registry.example/shop:1.2");
    let file = write(dir.path(), &compose);
    let docs = parse(&file, true);
    assert_eq!(docs[0]["services"]["api"]["deploy"]["replicas"], 3);
    assert!(
        compose
            .unmapped
            .iter()
            .any(|(s, k, w)| s == "api" && k == "autoscale" && w.contains("--scale api=N"))
    );
}

#[test]
fn a_scheduled_task_is_a_cron_job_and_the_other_triggers_are_reported() {
    let text = r#"
[services.report]
kind = "task"
command = "./report"
schedule = "@hourly"
instances = 2

[services.web]
command = "./web"
cron_restart = "0 3 * * *"
watch = ["src"]
"#;
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(dir.path(), text);
    let k = export_kubernetes(
        &m,
        &[],
        &KubeOptions {
            image: "img".into(),
            namespace: None,
        },
    );
    let file = write(dir.path(), &k);
    kube_validate(&file);
    let docs = parse(&file, false);
    let cron = find(&docs, "CronJob", "report");
    assert_eq!(cron["apiVersion"], "batch/v1");
    assert_eq!(cron["spec"]["schedule"], "0 * * * *");
    assert_eq!(cron["spec"]["concurrencyPolicy"], "Forbid");
    let job = &cron["spec"]["jobTemplate"]["spec"];
    assert_eq!(job["completions"], 2);
    assert!(job.get("suspend").is_none(), "{job}");
    for (service, setting) in [
        ("report", "schedule"),
        ("web", "cron_restart"),
        ("web", "watch"),
    ] {
        assert!(
            has_note(&k, service, setting),
            "{service} {setting}: {:?}",
            k.unmapped
        );
    }

    let c = export_compose(&m, &[], "img");
    let file = write(dir.path(), &c);
    parse(&file, true);
    for (service, setting) in [
        ("report", "schedule"),
        ("web", "cron_restart"),
        ("web", "watch"),
    ] {
        assert!(
            has_note(&c, service, setting),
            "{service} {setting}: {:?}",
            c.unmapped
        );
    }
}
