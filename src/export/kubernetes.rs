//! Kubernetes: one multi-document YAML file, `kubernetes.yaml`, with a Service per service
//! that declares a port (`port_base`), then a Deployment per long-running service and an
//! indexed Job per task, then a HorizontalPodAutoscaler per `autoscale`.
//!
//! Mapping notes (also in the file's header comment):
//! - `{port}` becomes `port_base`: every pod has its own network namespace, so every replica
//!   listens on the same port, and the Service balances over them.
//! - `{instance}` has no per-replica meaning in a Deployment (replicas are interchangeable):
//!   with one instance it is `0`, exactly as tend; with more it is reported (a StatefulSet
//!   gives each pod an ordinal). In a Job it is the completion index (`completionMode:
//!   Indexed`), passed in `TEND_INSTANCE` and referenced as `$(TEND_INSTANCE)`.
//! - In `command`, `args` and `env` values Kubernetes expands `$(VAR)` and turns `$$` into
//!   `$`, so every `$` written by the user is doubled.
//! - Dependencies become init containers that wait until the dependency's Service accepts
//!   TCP connections, with [`WAIT_IMAGE`]. A Service routes only to ready pods, so this waits
//!   for readiness whether the condition was `started` or `healthy`.

use crate::config::model::{
    AutoscaleSpec, CheckSpec, Condition, Kind, Manifest, ProbeSpec, Program, RestartPolicy,
    ServiceSpec,
};
use crate::config::signal::Signal;

use super::yaml::{self, Map, Node};
use super::{
    Export, ceil_secs, dns_label, is_local, note_common, note_env_files, note_replica_index,
    parse_http_url, project_name, select, split_host_port,
};

/// The image of the init containers that wait for dependencies: it has `sh`, `nc` and
/// `sleep`. Pin or mirror it where your cluster cannot pull from Docker Hub.
pub const WAIT_IMAGE: &str = "busybox:1.37";

/// The output file's name.
pub const FILE: &str = "kubernetes.yaml";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeOptions {
    /// The container image every service runs in.
    pub image: String,
    /// Written into every object's metadata; None: the namespace `kubectl` is pointed at.
    pub namespace: Option<String>,
}

/// How `{instance}` is rendered in strings Kubernetes expands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Index {
    /// A Deployment: instance 0 (exact with one replica).
    Zero,
    /// An indexed Job: `$(TEND_INSTANCE)`.
    JobIndex,
}

/// A string for `command`, `args` or an `env` value: `$` doubled, then placeholders filled.
fn expanded(s: &str, svc: &ServiceSpec, index: Index) -> String {
    let mut out = s.replace('$', "$$");
    let instance = match index {
        Index::Zero => "0",
        Index::JobIndex => "$(TEND_INSTANCE)",
    };
    out = out.replace("{instance}", instance);
    if let Some(port) = svc.port_base {
        out = out.replace("{port}", &port.to_string());
    }
    out
}

/// A string Kubernetes does not expand (probes, workingDir): placeholders for instance 0.
fn literal(s: &str, svc: &ServiceSpec) -> String {
    crate::config::model::expand_placeholders(s, 0, svc.port_base.map(u32::from))
}

pub fn export_kubernetes(
    manifest: &Manifest,
    services: &[String],
    options: &KubeOptions,
) -> Export {
    let mut export = Export::default();
    let selected = select(manifest, services, &mut export);
    for svc in &selected {
        note_env_files(
            svc,
            &mut export,
            "put secrets in a Secret (kubectl create secret generic --from-env-file=PATH) and use envFrom instead",
        );
    }
    let project = project_name(manifest);

    let mut front = Vec::new();
    let mut workloads = Vec::new();
    let mut scalers = Vec::new();
    for svc in &selected {
        let name = k8s_name(svc);
        if name != svc.name {
            export.note(
                &svc.name,
                "name",
                format!("Kubernetes names are lowercase DNS labels: named {name:?}"),
            );
        }
        let labels = labels(&name, &project);
        if let Some(port) = svc.port_base {
            front.push(service_object(&name, port, &labels, options));
        }
        workloads.push(workload(
            manifest,
            svc,
            &name,
            &labels,
            options,
            &mut export,
        ));
        if let Some(auto) = &svc.autoscale {
            scalers.push(autoscaler(svc, auto, &name, &labels, options, &mut export));
        }
    }

    let mut text = String::new();
    text.push_str(&header(manifest));
    for doc in front.iter().chain(&workloads).chain(&scalers) {
        text.push_str("---\n");
        text.push_str(&yaml::to_string(doc));
    }
    export.files.push((FILE.to_string(), text));
    export
}

fn header(manifest: &Manifest) -> String {
    let file = manifest
        .path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut h = String::new();
    h.push_str(&format!(
        "# Generated by tend export kubernetes from {}.\n",
        file.replace(['\n', '\r'], " ")
    ));
    h.push_str(&format!(
        "# Init containers wait for dependencies' Services with {WAIT_IMAGE} (nc).\n"
    ));
    h.push_str(
        "# Probes reach the pod's IP, not 127.0.0.1: programs must listen on all interfaces.\n",
    );
    h.push_str("# In command, args and env values, $$ stands for a literal $.\n");
    h
}

fn k8s_name(svc: &ServiceSpec) -> String {
    let n = dns_label(&svc.name);
    if n.is_empty() { "service".into() } else { n }
}

fn labels(name: &str, project: &str) -> Map {
    Map::new()
        .entry("app.kubernetes.io/name", name)
        .entry("app.kubernetes.io/part-of", project)
}

fn metadata(name: &str, labels: &Map, options: &KubeOptions) -> Map {
    Map::new()
        .entry("name", name)
        .opt("namespace", options.namespace.as_deref())
        .entry("labels", labels.clone())
}

fn service_object(name: &str, port: u16, labels: &Map, options: &KubeOptions) -> Node {
    Map::new()
        .entry("apiVersion", "v1")
        .entry("kind", "Service")
        .entry("metadata", metadata(name, labels, options))
        .entry(
            "spec",
            Map::new().entry("selector", labels.clone()).entry(
                "ports",
                vec![Node::from(
                    Map::new()
                        .entry("name", "main")
                        .entry("port", i64::from(port))
                        .entry("targetPort", i64::from(port))
                        .entry("protocol", "TCP"),
                )],
            ),
        )
        .into()
}

fn workload(
    manifest: &Manifest,
    svc: &ServiceSpec,
    name: &str,
    labels: &Map,
    options: &KubeOptions,
    export: &mut Export,
) -> Node {
    let n = &svc.name;
    let is_job = svc.kind == Kind::Task;
    let index = if is_job { Index::JobIndex } else { Index::Zero };
    note_common(svc, export, "Kubernetes");
    // A scheduled task is a CronJob; the rest has no Kubernetes form.
    let scheduled = svc.schedule.as_ref().filter(|_| is_job);
    if let Some(cron) = scheduled {
        export.note(
            n,
            "schedule",
            format!("a CronJob (\"{cron}\", concurrencyPolicy Forbid: a run still going skips the next, as tend does) runs in kube-controller-manager's time zone, usually UTC, where tend uses its local time: set spec.timeZone if they differ"),
        );
        if svc.autostart {
            export.note(
                n,
                "autostart",
                format!("a CronJob does not run when it is created: `kubectl create job --from=cronjob/{name} {name}-now` runs it once"),
            );
        }
    }
    if let Some(cron) = &svc.cron_restart {
        export.note(
            n,
            "cron_restart",
            format!("not generated: a CronJob at \"{cron}\" that runs `kubectl rollout restart deployment/{name}` (with a ServiceAccount allowed to patch deployments) does it"),
        );
    }
    if svc.watch.is_some() {
        export.note(
            n,
            "watch",
            "a pod does not watch its files: rebuild and roll out the image (Tilt or Skaffold do that on changes during development)",
        );
    }

    // An autoscaled Deployment may have several replicas whatever it starts with.
    let replicated = svc.instances > 1 || svc.autoscale.is_some();
    if !is_job && replicated {
        note_replica_index(
            svc,
            export,
            "replicas of a Deployment have no index (rendered as 0 / left unset); a StatefulSet gives each pod an ordinal (label apps.kubernetes.io/pod-index)",
        );
    }
    if svc.stop_signal != Signal::Term {
        export.note(
            n,
            "stop_signal",
            format!(
                "Kubernetes sends SIGTERM: set STOPSIGNAL SIG{} in the image (or lifecycle.stopSignal where the ContainerStopSignals feature is on)",
                svc.stop_signal.name()
            ),
        );
    }

    let mut container = Map::new()
        .entry("name", name)
        .entry("image", options.image.as_str());
    let (command, args) = match &svc.program {
        Program::Exec(argv) => {
            let argv: Vec<String> = argv.iter().map(|a| expanded(a, svc, index)).collect();
            (
                argv[..1.min(argv.len())].to_vec(),
                argv.get(1..).unwrap_or_default().to_vec(),
            )
        }
        Program::Shell(line) => (
            vec!["/bin/sh".into(), "-c".into(), expanded(line, svc, index)],
            Vec::new(),
        ),
    };
    container.push("command", Node::strs(command));
    if !args.is_empty() {
        container.push("args", Node::strs(args));
    }
    if let Some(cwd) = &svc.cwd {
        container.push("workingDir", literal(cwd, svc));
    }
    if let Some(port) = svc.port_base {
        container.push(
            "ports",
            vec![Node::from(
                Map::new()
                    .entry("name", "main")
                    .entry("containerPort", i64::from(port))
                    .entry("protocol", "TCP"),
            )],
        );
    }
    container.push("env", env(svc, index));

    for (field, probe, which) in [
        ("startupProbe", &svc.startup, "startup"),
        ("readinessProbe", &svc.readiness, "readiness"),
        ("livenessProbe", &svc.liveness, "liveness"),
    ] {
        if let Some(p) = probe
            && let Some(node) = probe_node(svc, p, which, export)
        {
            container.push(field, node);
        }
    }

    let resources = resources(svc, export);
    if !resources.is_empty() {
        container.push("resources", resources);
    }
    let security = security_context(svc, export);
    if !security.is_empty() {
        container.push("securityContext", security);
    }

    let mut pod = Map::new();
    let restart_policy = if is_job {
        match svc.restart {
            RestartPolicy::Never => "Never",
            _ => "OnFailure",
        }
    } else {
        if svc.restart != RestartPolicy::Always {
            export.note(
                n,
                "restart",
                "a Deployment always restarts its containers; run it as kind = \"task\" (a Job) to restart on failure or never",
            );
        }
        "Always"
    };
    pod.push("restartPolicy", restart_policy);
    pod.push("terminationGracePeriodSeconds", ceil_secs(svc.stop_timeout));
    let inits = init_containers(manifest, svc, export);
    if !inits.is_empty() {
        pod.push("initContainers", inits);
    }
    pod.push("containers", vec![Node::from(container)]);

    let template = Map::new()
        .entry("metadata", Map::new().entry("labels", labels.clone()))
        .entry("spec", pod);

    let replicas = if svc.autostart || is_job {
        svc.instances
    } else {
        export.note(
            n,
            "autostart",
            format!(
                "not started: replicas at 0; scale it to {} to start it",
                svc.instances
            ),
        );
        0
    };
    if is_job && !svc.autostart && scheduled.is_none() {
        export.note(
            n,
            "autostart",
            "the Job is suspended; set spec.suspend to false to run it",
        );
    }
    let spec = if is_job {
        let backoff_limit = if svc.restart == RestartPolicy::Never {
            0
        } else {
            svc.max_restarts
        };
        let mut spec = Map::new();
        if !svc.autostart && scheduled.is_none() {
            spec.push("suspend", true);
        }
        spec.entry("completionMode", "Indexed")
            .entry("completions", svc.instances)
            .entry("parallelism", replicas)
            .entry("backoffLimit", backoff_limit)
            .entry("template", template)
    } else {
        Map::new()
            .entry("replicas", replicas)
            .entry("selector", Map::new().entry("matchLabels", labels.clone()))
            .entry("template", template)
    };
    let (spec, kind) = match scheduled {
        Some(cron) => (
            Map::new()
                .entry("schedule", cron.fields().join(" "))
                .entry("concurrencyPolicy", "Forbid")
                .entry("jobTemplate", Map::new().entry("spec", spec)),
            "CronJob",
        ),
        None if is_job => (spec, "Job"),
        None => (spec, "Deployment"),
    };
    let api = if is_job { "batch/v1" } else { "apps/v1" };
    Map::new()
        .entry("apiVersion", api)
        .entry("kind", kind)
        .entry("metadata", metadata(name, labels, options))
        .entry("spec", spec)
        .into()
}

/// `autoscale` as a HorizontalPodAutoscaler (autoscaling/v2) of the service's Deployment:
/// the same bounds, the same target as an average of CPU per pod (tend's % of one core in
/// millicores, so no resource request is needed), scale-down one pod per `cooldown`.
fn autoscaler(
    svc: &ServiceSpec,
    auto: &AutoscaleSpec,
    name: &str,
    labels: &Map,
    options: &KubeOptions,
    export: &mut Export,
) -> Node {
    // HPA's limits: a policy's period is at most 30 minutes, a stabilisation window an hour.
    let cooldown = ceil_secs(auto.cooldown);
    let period = cooldown.clamp(1, 1800);
    let window = cooldown.clamp(0, 3600);
    let mut why = String::from(
        "a HorizontalPodAutoscaler (needs the metrics server) with the same bounds and target; it scales down as soon as the CPU is under the target (one pod per cooldown, after a cooldown-long stabilisation), where tend waits until it is under half of it",
    );
    if cooldown > 1800 {
        why.push_str("; the cooldown is capped at 1800 s, the longest period a policy takes");
    }
    export.note(&svc.name, "autoscale", why);
    if !svc.autostart {
        export.note(
            &svc.name,
            "autostart",
            "an autoscaler does not scale a Deployment at 0 replicas: it acts once you scale it up",
        );
    }
    let millicores = ((auto.cpu * 10.0).round() as i64).max(1);
    let policy = |pods: u32| -> Node {
        Node::Seq(vec![
            Map::new()
                .entry("type", "Pods")
                .entry("value", pods)
                .entry("periodSeconds", period)
                .into(),
        ])
    };
    Map::new()
        .entry("apiVersion", "autoscaling/v2")
        .entry("kind", "HorizontalPodAutoscaler")
        .entry("metadata", metadata(name, labels, options))
        .entry(
            "spec",
            Map::new()
                .entry(
                    "scaleTargetRef",
                    Map::new()
                        .entry("apiVersion", "apps/v1")
                        .entry("kind", "Deployment")
                        .entry("name", name),
                )
                .entry("minReplicas", auto.min)
                .entry("maxReplicas", auto.max)
                .entry(
                    "metrics",
                    vec![Node::from(
                        Map::new().entry("type", "Resource").entry(
                            "resource",
                            Map::new().entry("name", "cpu").entry(
                                "target",
                                Map::new()
                                    .entry("type", "AverageValue")
                                    .entry("averageValue", format!("{millicores}m")),
                            ),
                        ),
                    )],
                )
                .entry(
                    "behavior",
                    Map::new()
                        .entry(
                            "scaleUp",
                            Map::new()
                                .entry("stabilizationWindowSeconds", 0i64)
                                .entry("policies", policy(auto.max)),
                        )
                        .entry(
                            "scaleDown",
                            Map::new()
                                .entry("stabilizationWindowSeconds", window)
                                .entry("policies", policy(1)),
                        ),
                ),
        )
        .into()
}

/// The container's environment: tend's own variables, then the service's `env`.
fn env(svc: &ServiceSpec, index: Index) -> Node {
    let mut items: Vec<Node> = Vec::new();
    let var = |name: &str, value: String| -> Node {
        Map::new().entry("name", name).entry("value", value).into()
    };
    match index {
        // First, so later values can reference it as $(TEND_INSTANCE).
        Index::JobIndex => items.push(
            Map::new()
                .entry("name", "TEND_INSTANCE")
                .entry(
                    "valueFrom",
                    Map::new().entry(
                        "fieldRef",
                        Map::new().entry(
                            "fieldPath",
                            "metadata.annotations['batch.kubernetes.io/job-completion-index']",
                        ),
                    ),
                )
                .into(),
        ),
        Index::Zero if svc.instances == 1 && svc.autoscale.is_none() => {
            items.push(var("TEND_INSTANCE", "0".into()))
        }
        Index::Zero => {}
    }
    items.push(var("TEND_SERVICE", svc.name.replace('$', "$$")));
    if let Some(port) = svc.port_base
        && !svc.env.contains_key("PORT")
    {
        items.push(var("PORT", port.to_string()));
    }
    for (k, v) in &svc.env {
        if k == "TEND_SERVICE" || k == "TEND_INSTANCE" {
            continue; // tend's own win, as under tend
        }
        items.push(var(k, expanded(v, svc, index)));
    }
    Node::Seq(items)
}

fn probe_node(svc: &ServiceSpec, p: &ProbeSpec, which: &str, export: &mut Export) -> Option<Node> {
    let n = &svc.name;
    let suggestion = match svc.port_base {
        Some(port) => format!("e.g. tcpSocket on port {port}, or an httpGet/exec probe"),
        None => "e.g. an exec probe that checks what the program does when ready".into(),
    };
    let mut m = Map::new();
    match &p.check {
        CheckSpec::Http {
            url,
            method,
            status,
            body_contains,
            headers,
        } => {
            let url = literal(url, svc);
            let Some(u) = parse_http_url(&url) else {
                export.note(n, which, format!("cannot read the URL {url:?}"));
                return None;
            };
            if method != "GET" {
                export.note(
                    n,
                    &format!("{which}.method"),
                    "httpGet probes always GET; use an exec probe with curl",
                );
            }
            if *status != (200, 399) {
                export.note(
                    n,
                    &format!("{which}.status"),
                    "the kubelet accepts any status from 200 to 399",
                );
            }
            if body_contains.is_some() {
                export.note(
                    n,
                    &format!("{which}.body_contains"),
                    "httpGet cannot check the body; use an exec probe with curl | grep",
                );
            }
            let mut get = Map::new();
            if !is_local(&u.host) {
                get.push("host", u.host.as_str());
            }
            get.push("path", u.path.as_str());
            get.push("port", i64::from(u.port));
            get.push("scheme", "HTTP");
            if !headers.is_empty() {
                let hs: Vec<Node> = headers
                    .iter()
                    .map(|(k, v)| {
                        Map::new()
                            .entry("name", k.as_str())
                            .entry("value", literal(v, svc))
                            .into()
                    })
                    .collect();
                get.push("httpHeaders", hs);
            }
            m.push("httpGet", get);
        }
        CheckSpec::Tcp(addr) => {
            let addr = literal(addr, svc);
            let Some((host, port)) = split_host_port(&addr, 0).filter(|(_, p)| *p != 0) else {
                export.note(n, which, format!("cannot read the address {addr:?}"));
                return None;
            };
            let mut tcp = Map::new();
            if !is_local(&host) {
                tcp.push("host", host);
            }
            tcp.push("port", i64::from(port));
            m.push("tcpSocket", tcp);
        }
        CheckSpec::Exec(cmd) => {
            m.push(
                "exec",
                Map::new().entry(
                    "command",
                    Node::strs(["/bin/sh".to_string(), "-c".into(), literal(cmd, svc)]),
                ),
            );
        }
        CheckSpec::Log(pattern) => {
            export.note(
                n,
                which,
                format!("no probe reads output (log = {pattern:?}); {suggestion}"),
            );
            return None;
        }
        CheckSpec::Notify => {
            export.note(
                n,
                which,
                format!("no sd_notify in Kubernetes; {suggestion}"),
            );
            return None;
        }
    }
    if p.fallback.is_some() {
        export.note(
            n,
            &format!("{which}.fallback"),
            "a probe has one check; use an exec probe that tries both",
        );
    }
    let subsecond = [p.initial_delay, p.interval, p.timeout]
        .iter()
        .any(|d| d.subsec_nanos() > 0);
    if subsecond {
        export.note(
            n,
            which,
            "probe timings are whole seconds there: rounded up",
        );
    }
    let success = if which == "readiness" {
        p.success_threshold.max(1)
    } else {
        if p.success_threshold != 1 {
            export.note(
                n,
                &format!("{which}.success_threshold"),
                "must be 1 for liveness and startup probes",
            );
        }
        1
    };
    m.push("initialDelaySeconds", ceil_secs(p.initial_delay));
    m.push("periodSeconds", ceil_secs(p.interval).max(1));
    m.push("timeoutSeconds", ceil_secs(p.timeout).max(1));
    m.push("successThreshold", success);
    m.push("failureThreshold", p.failure_threshold.max(1));
    Some(m.into())
}

/// A memory quantity: binary suffixes where exact, else bytes.
fn memory_quantity(bytes: u64) -> String {
    for (shift, suffix) in [(40, "Ti"), (30, "Gi"), (20, "Mi"), (10, "Ki")] {
        let unit = 1u64 << shift;
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

/// A CPU quantity in millicores (at least 1m).
fn cpu_quantity(cores: f64) -> String {
    let milli = ((cores * 1000.0).round() as i64).max(1);
    if milli % 1000 == 0 {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

/// `limits` only: Kubernetes sets a request equal to a limit that has no request, so the
/// pod is scheduled where the limit fits, as tend's hard limit is always available.
fn resources(svc: &ServiceSpec, export: &mut Export) -> Map {
    let r = &svc.resources;
    let mut limits = Map::new();
    if let Some(m) = r.memory_max {
        limits.push("memory", memory_quantity(m));
    }
    if let Some(c) = r.cpu_max {
        limits.push("cpu", cpu_quantity(c));
    }
    if !r.gpus.is_empty() {
        let per = if r.gpus_per_instance == 0 {
            r.gpus.len()
        } else {
            r.gpus_per_instance.min(r.gpus.len())
        };
        limits.push("nvidia.com/gpu", per as i64);
        export.note(
            &svc.name,
            "gpus",
            format!("{per} GPU(s) per pod through the NVIDIA device plugin; which devices is the plugin's choice"),
        );
    }
    if r.pids_max.is_some() {
        export.note(
            &svc.name,
            "pids_max",
            "the pid limit is the kubelet's (podPidsLimit), per node",
        );
    }
    if limits.is_empty() {
        Map::new()
    } else {
        Map::new().entry("limits", limits)
    }
}

fn security_context(svc: &ServiceSpec, export: &mut Export) -> Map {
    let mut m = Map::new();
    for (value, field, setting) in [
        (&svc.user, "runAsUser", "user"),
        (&svc.group, "runAsGroup", "group"),
    ] {
        if let Some(v) = value {
            match v.parse::<i64>() {
                Ok(id) => m.push(field, id),
                Err(_) => export.note(
                    &svc.name,
                    setting,
                    format!("{field} takes a numeric id, not {v:?}: set USER in the image or give the id"),
                ),
            }
        }
    }
    m
}

fn init_containers(manifest: &Manifest, svc: &ServiceSpec, export: &mut Export) -> Vec<Node> {
    let mut out = Vec::new();
    for dep in &svc.depends_on {
        let setting = format!("depends_on.{}", dep.service);
        let Some(target) = manifest.service(&dep.service) else {
            continue;
        };
        if dep.condition == Condition::Completed {
            export.note(
                &svc.name,
                &setting,
                format!(
                    "waiting for Job {} to complete needs the API (kubectl wait --for=condition=complete job/{} in an init container with a ServiceAccount allowed to get jobs)",
                    k8s_name(target),
                    k8s_name(target)
                ),
            );
            continue;
        }
        let Some(port) = target.port_base else {
            export.note(
                &svc.name,
                &setting,
                "the dependency declares no port_base, so there is no Service to wait for",
            );
            continue;
        };
        let host = k8s_name(target);
        let script = format!(
            "until nc -z -w 2 {host} {port}; do echo waiting for {host}:{port}; sleep 1; done"
        );
        out.push(
            Map::new()
                .entry("name", dns_label(&format!("wait-{host}")))
                .entry("image", WAIT_IMAGE)
                .entry("command", Node::strs(["sh", "-c", script.as_str()]))
                .into(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(memory_quantity(512 << 20), "512Mi");
        assert_eq!(memory_quantity(3 << 30), "3Gi");
        assert_eq!(memory_quantity(1_000_000), "1000000");
        assert_eq!(cpu_quantity(1.5), "1500m");
        assert_eq!(cpu_quantity(2.0), "2");
        assert_eq!(cpu_quantity(0.0001), "1m");
    }
}
