//! The `tend` command: parses arguments and runs one subcommand. Everything that touches a
//! running daemon goes through `protocol::client`; offline commands (check, schema) use
//! `config` directly. Never imports the engine.

pub mod args;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};

use crate::config;
use crate::daemon::{self, DaemonOptions};
use crate::export;
use crate::import;
use crate::protocol::client::{Client, ClientError};
use crate::protocol::{
    API, ActionRequest, ActionResponse, ApplyReport, DaemonInfo, EventRow, InstanceInfo,
    PlanReport, ScaleRequest, ScaleResponse, ServiceInfo, SummaryReport, UpgradeRequest,
};
use args::*;

/// Run the CLI; returns the process exit code.
pub fn main() -> i32 {
    // A daemon's new image after `tend upgrade`: its arguments are the old image's, and
    // what it is to do is in the handover.
    if let Some(code) = daemon::take_over_from_handover() {
        return code;
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("tend: {error:#}");
            1
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    match &cli.command {
        Command::Up(UpArgs {
            detach,
            wait,
            services,
            exit_with,
            daemonized,
        }) => up(
            &cli,
            *detach,
            *wait,
            services,
            exit_with.as_deref(),
            *daemonized,
        ),
        Command::Check => check(&cli),
        Command::UpgradeCheck => {
            load(&cli)?;
            println!("{}", daemon::upgrade_check_line());
            Ok(0)
        }
        Command::Import(ImportArgs { file }) => import(&cli, file),
        Command::Export(ExportArgs {
            format,
            output,
            image,
            namespace,
            systemd_version,
            services,
        }) => export(
            &cli,
            *format,
            &ExportTarget {
                output: output.as_deref(),
                image: image.as_deref(),
                namespace: namespace.as_deref(),
                systemd_version: *systemd_version,
            },
            services,
        ),
        Command::Startup(StartupArgs { user, print }) => startup(&cli, *user, *print),
        Command::Schema => {
            println!("{}", serde_json::to_string_pretty(&config::schema())?);
            Ok(0)
        }
        Command::Completions(CompletionsArgs { shell }) => {
            clap_complete::generate(*shell, &mut Cli::command(), "tend", &mut std::io::stdout());
            Ok(0)
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(0)
        }
        Command::Top => crate::tui::run(&socket(&cli)?),
        _ => client_command(&cli),
    }
}

fn manifest_path(cli: &Cli) -> anyhow::Result<PathBuf> {
    match &cli.options.config {
        Some(path) => Ok(path.clone()),
        None => {
            let cwd = std::env::current_dir()?;
            config::find_manifest(&cwd).ok_or_else(|| {
                anyhow!(
                    "no tend.toml in {} or its parents (use -c FILE)",
                    cwd.display()
                )
            })
        }
    }
}

fn reading(cli: &Cli) -> import::Reading {
    import::Reading {
        source: cli
            .options
            .from
            .as_deref()
            .and_then(import::Source::from_name),
        environment: cli.options.env.clone(),
        socket: cli.options.socket.clone(),
    }
}

fn load(cli: &Cli) -> anyhow::Result<import::Loaded> {
    let path = manifest_path(cli)?;
    let loaded = import::load(&path, &reading(cli))
        .map_err(|errors| anyhow!("{} error(s) in the manifest:\n{errors}", errors.0.len()))?;
    for warning in &loaded.warnings {
        eprintln!("tend: warning: {warning}");
    }
    Ok(loaded)
}

fn check(cli: &Cli) -> anyhow::Result<i32> {
    let path = manifest_path(cli)?;
    match import::load(&path, &reading(cli)) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                eprintln!("warning: {warning}");
            }
            let manifest = &loaded.manifest;
            let instances: u32 = manifest.services.iter().map(|s| s.instances).sum();
            let warnings = match loaded.warnings.len() {
                0 => String::new(),
                n => format!(", {n} warning(s)"),
            };
            println!(
                "{}: ok ({} services, {} instances{warnings})",
                path.display(),
                manifest.services.len(),
                instances
            );
            Ok(0)
        }
        Err(errors) => {
            for error in &errors.0 {
                eprintln!("{error}");
            }
            eprintln!("{} error(s)", errors.0.len());
            Ok(1)
        }
    }
}

/// `tend import FILE`: the file as a commented tend.toml on stdout. The translation is
/// validated too, so what is printed is a manifest tend accepts.
fn import(cli: &Cli, file: &Path) -> anyhow::Result<i32> {
    let env = |name: &str| std::env::var(name).ok();
    let translation = match import::translate(file, &reading(cli), &env) {
        Ok(t) => t,
        Err(errors) => {
            for error in &errors.0 {
                eprintln!("{error}");
            }
            eprintln!("{} error(s)", errors.0.len());
            return Ok(1);
        }
    };
    if let Err(errors) = translation.clone().validate(&env, false) {
        for error in &errors.0 {
            eprintln!("{error}");
        }
        eprintln!(
            "{} error(s): the translation is not a valid manifest",
            errors.0.len()
        );
        return Ok(1);
    }
    print!("{}", translation.to_toml());
    for warning in &translation.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(0)
}

/// `tend export`'s options beyond the format and the services.
struct ExportTarget<'a> {
    output: Option<&'a Path>,
    image: Option<&'a str>,
    namespace: Option<&'a str>,
    systemd_version: u32,
}

/// `tend export FORMAT`: the files on stdout (or into `-o DIR`), then what could not be
/// mapped on stderr.
fn export(
    cli: &Cli,
    format: ExportFormat,
    target: &ExportTarget,
    services: &[String],
) -> anyhow::Result<i32> {
    let manifest = load(cli)?.manifest;
    for name in services {
        if manifest.service(name).is_none() {
            let names: Vec<String> = manifest.services.iter().map(|s| s.name.clone()).collect();
            let hint = config::did_you_mean(name, &names)
                .map(|c| format!(" (did you mean {c:?}?)"))
                .unwrap_or_default();
            return Err(anyhow!("no service named {name:?} in the manifest{hint}"));
        }
    }
    let image = || {
        target.image.map(str::to_string).ok_or_else(|| {
            anyhow!("{format:?} needs --image: the container image the programs run in")
        })
    };
    let exported = match format {
        ExportFormat::Systemd => export::export_systemd_with(
            &manifest,
            services,
            &export::SystemdOptions {
                systemd_version: target.systemd_version,
            },
        ),
        ExportFormat::Kubernetes => export::export_kubernetes(
            &manifest,
            services,
            &export::KubeOptions {
                image: image()?,
                namespace: target.namespace.map(str::to_string),
            },
        ),
        ExportFormat::Compose => export::export_compose(&manifest, services, &image()?),
        ExportFormat::Pm2 => export::export_pm2(&manifest, services),
        ExportFormat::Supervisord => export::export_supervisord(&manifest, services),
    };
    match target.output {
        Some(dir) => {
            for (name, content) in &exported.files {
                let path = dir.join(name);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("cannot create {}", parent.display()))?;
                }
                std::fs::write(&path, content)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
        }
        None => {
            let several = exported.files.len() > 1;
            let mut out = std::io::stdout().lock();
            for (name, content) in &exported.files {
                if several {
                    writeln!(out, "# ==> {name} <==")?;
                }
                out.write_all(content.as_bytes())?;
                if several && !content.ends_with("\n\n") {
                    writeln!(out)?;
                }
            }
            out.flush()?;
        }
    }
    eprint!("{}", exported.report());
    Ok(0)
}

/// `tend startup`: the unit that runs this manifest's `tend up` at boot.
fn startup(cli: &Cli, user_unit: bool, print: bool) -> anyhow::Result<i32> {
    let path = std::path::absolute(manifest_path(cli)?)?;
    let manifest = import::load(&path, &reading(cli))
        .map_err(|errors| anyhow!("{} error(s) in the manifest:\n{errors}", errors.0.len()))?
        .manifest;
    let tend = std::env::current_exe().context("finding the tend binary")?;
    let mut args = vec!["-c".to_string(), path.display().to_string()];
    if let Some(from) = &cli.options.from {
        args.extend(["--from".into(), from.clone()]);
    }
    if let Some(env) = &cli.options.env {
        args.extend(["--env".into(), env.clone()]);
    }
    // A system unit runs as whoever asked for it: the user behind sudo, else this user;
    // root itself needs no User= line.
    let run_as = if user_unit {
        None
    } else if nix::unistd::geteuid().is_root() {
        std::env::var("SUDO_USER")
            .ok()
            .filter(|u| !u.is_empty() && u != "root")
    } else {
        nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten()
            .map(|u| u.name)
    };
    let unit = export::startup_unit(
        &manifest,
        &export::Startup {
            tend: tend.display().to_string(),
            args,
            user_unit,
            run_as,
            path: std::env::var("PATH").ok(),
        },
    );
    if print {
        print!("{unit}");
        return Ok(0);
    }
    let name = export::startup_unit_name(&manifest);
    let dir = if user_unit {
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
            .ok_or_else(|| anyhow!("neither XDG_CONFIG_HOME nor HOME is set"))?;
        config.join("systemd/user")
    } else {
        PathBuf::from("/etc/systemd/system")
    };
    let file = dir.join(&name);
    std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&file, &unit))
        .map_err(|e| {
            let hint = match e.kind() {
                std::io::ErrorKind::PermissionDenied => {
                    ": run it with sudo, or use --user, or --print"
                }
                _ => "",
            };
            anyhow!("cannot write {}: {e}{hint}", file.display())
        })?;
    let ctl = if user_unit {
        "systemctl --user"
    } else {
        "systemctl"
    };
    println!("wrote {}", file.display());
    println!("start it now and at every boot with:");
    println!("  {ctl} daemon-reload && {ctl} enable --now {name}");
    if user_unit {
        println!("and, for it to start at boot before you log in:");
        println!("  loginctl enable-linger");
    }
    if socket(cli).is_ok_and(|s| s.exists()) {
        println!(
            "note: tend is already running for this manifest; `tend down` it before systemd starts its own"
        );
    }
    Ok(0)
}

/// Whether the daemon process ends within `limit` (it may still be finishing its shutdown).
fn daemon_exits(child: &mut std::process::Child, limit: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if child.try_wait().ok().flatten().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn socket(cli: &Cli) -> anyhow::Result<PathBuf> {
    if let Some(socket) = &cli.options.socket {
        return Ok(socket.clone());
    }
    let path = manifest_path(cli)?;
    let socket = import::locate_socket(&path, &reading(cli));
    if socket.exists() {
        return Ok(socket);
    }
    // The manifest may have changed since the daemon started (or be broken now): the
    // daemon wrote down where it listens.
    let recorded = daemon::recorded_socket(&config::locate_state_dir(&path));
    Ok(recorded.filter(|s| s.exists()).unwrap_or(socket))
}

fn up(
    cli: &Cli,
    detach: bool,
    wait_ready: bool,
    services: &[String],
    exit_with: Option<&str>,
    daemonized: bool,
) -> anyhow::Result<i32> {
    let loaded = load(cli)?;
    let manifest = loaded.manifest;
    for name in services.iter().map(String::as_str).chain(exit_with) {
        if manifest.service(name).is_none() {
            return Err(anyhow!("unknown service `{name}`"));
        }
    }
    if !detach {
        let colour = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            && std::io::stdout().is_terminal();
        return daemon::run(DaemonOptions {
            manifest,
            supervisor: loaded.supervisor,
            reading: import::Reading {
                source: Some(loaded.source),
                environment: cli.options.env.clone(),
                socket: cli.options.socket.clone(),
            },
            services: services.to_vec(),
            console: !daemonized,
            colour,
            exit_with: exit_with.map(str::to_string),
        });
    }
    let state_dir = manifest.daemon.state_dir.clone();
    std::fs::create_dir_all(&state_dir)?;
    // `--socket` is already in the manifest as loaded.
    let socket = manifest.daemon.socket.clone();
    let runtime = client_runtime()?;
    let client = Client::new(&socket);
    if runtime
        .block_on(client.get::<DaemonInfo>(&format!("{API}/info")))
        .is_ok()
    {
        return Err(anyhow!(
            "tend is already running for this manifest; use `tend start` or `tend down`"
        ));
    }
    let log_path = state_dir.join("tend.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)?;
    let log_start = log.metadata()?.len();
    let exe = std::env::current_exe()?;
    let mut daemon = Process::new(exe);
    // The very binary this is, named as the shell found it: the path `tend upgrade` runs
    // by default, and a link there may later point to a newer version.
    std::os::unix::process::CommandExt::arg0(&mut daemon, daemon::launch_path());
    // The daemon reads the file again, exactly as this process did.
    daemon
        .arg("-c")
        .arg(&manifest.path)
        .arg("--from")
        .arg(loaded.source.to_string());
    if let Some(env) = &cli.options.env {
        daemon.arg("--env").arg(env);
    }
    daemon.arg("--socket").arg(&socket);
    daemon
        .arg("up")
        .arg("--daemonized")
        .args(services)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    unsafe {
        use std::os::unix::process::CommandExt;
        // Its own session: no controlling terminal, untouched by this shell's job control.
        daemon.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    let mut child = daemon.spawn().context("starting the daemon")?;

    // Wait for the socket to answer (or the daemon to die trying).
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read(&log_path).unwrap_or_default();
            let tail =
                String::from_utf8_lossy(&log[(log_start as usize).min(log.len())..]).into_owned();
            eprint!("{tail}");
            return Err(anyhow!("the daemon exited during start-up ({status})"));
        }
        if runtime
            .block_on(client.get::<DaemonInfo>(&format!("{API}/info")))
            .is_ok()
        {
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err(anyhow!(
                "the daemon did not open {} within 30 s; see {}",
                socket.display(),
                log_path.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let targets = if services.is_empty() {
        manifest
            .services
            .iter()
            .filter(|s| s.autostart)
            .map(|s| s.name.clone())
            .collect::<Vec<_>>()
    } else {
        services.to_vec()
    };
    if targets.is_empty() {
        println!("tend is running (nothing to autostart)");
        return Ok(0);
    }
    // Thousands of services do not fit in one URI (the server refuses one over 64 KiB): wait
    // for them a batch at a time. Waiting is until settled, so the batches add no time.
    let waited = wait_batches(&targets).into_iter().try_fold(
        ActionResponse {
            results: Vec::new(),
        },
        |mut settled, batch| {
            let more: ActionResponse = runtime
                .block_on(client.get(&format!("{API}/wait?targets={batch}&ready={wait_ready}")))?;
            settled.results.extend(more.results);
            Ok::<_, ClientError>(settled)
        },
    );
    let settled: ActionResponse = match waited {
        Ok(settled) => settled,
        // A `tend down` (or a crash) between start-up and the wait: say that, not how the
        // connection broke. The server only drops a request unread at the very end of a
        // shutdown, which can still take seconds (stopping everything, flushing logs) on a
        // busy machine: wait for it generously before calling it a transport failure.
        Err(ClientError::NotRunning(_) | ClientError::Transport(_))
            if daemon_exits(&mut child, Duration::from_secs(30)) =>
        {
            return Err(anyhow!(
                "the daemon stopped before the services were up (see {})",
                log_path.display()
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let failures: Vec<_> = settled.failures().collect();
    if failures.is_empty() {
        println!("tend is running: {} instance(s) up", settled.results.len());
        Ok(0)
    } else {
        for failure in &failures {
            eprintln!(
                "{}: {}",
                failure.instance,
                failure.error.as_deref().unwrap_or("failed")
            );
        }
        eprintln!(
            "{} of {} instance(s) failed to start",
            failures.len(),
            settled.results.len()
        );
        Ok(1)
    }
}

/// `names` as encoded `targets=` values of at most about 8 KiB each (more only for a name
/// longer than that).
fn wait_batches(names: &[String]) -> Vec<String> {
    const MOST: usize = 8 * 1024;
    let mut batches: Vec<String> = Vec::new();
    let mut current = String::new();
    for name in names {
        let name = encode(name);
        if !current.is_empty() && current.len() + name.len() + 1 > MOST {
            batches.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(',');
        }
        current.push_str(&name);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn client_command(cli: &Cli) -> anyhow::Result<i32> {
    let socket = socket(cli)?;
    let client = Client::new(&socket);
    let result = match &cli.command {
        // The read-only commands people run in loops answer without a runtime: building one
        // and an HTTP stack costs more than the exchange itself.
        Command::Status(StatusArgs { json, targets }) => status(&client, *json, targets),
        Command::Health(HealthArgs { json, targets }) => health(&client, *json, targets),
        _ => client_runtime()?.block_on(async {
            match &cli.command {
                Command::Start(StartArgs { targets }) => {
                    action(&client, "start", targets, None).await
                }
                Command::Stop(StopArgs { targets }) => action(&client, "stop", targets, None).await,
                Command::Restart(RestartArgs { targets }) => {
                    action(&client, "restart", targets, None).await
                }
                Command::Reload(ReloadArgs { targets }) => {
                    action(&client, "reload", targets, None).await
                }
                Command::Signal(SignalArgs { signal, targets }) => {
                    action(&client, "signal", targets, Some(signal.clone())).await
                }
                Command::Scale(ScaleArgs { service, instances }) => {
                    scale(&client, service, *instances).await
                }
                Command::Logs(LogsArgs {
                    follow,
                    lines,
                    since,
                    stream,
                    no_prefix,
                    targets,
                }) => {
                    let request = LogRequest {
                        follow: *follow,
                        lines: *lines,
                        since: since.as_deref(),
                        stream: stream.as_deref(),
                        prefix: !no_prefix,
                        targets,
                    };
                    logs(&client, request).await
                }
                Command::Events(EventsArgs {
                    service,
                    since,
                    limit,
                    json,
                }) => events(&client, service.as_deref(), since, *limit, *json).await,
                Command::Summary(SummaryArgs { window, json }) => {
                    summary(&client, window, *json).await
                }
                Command::Down => down(&client).await,
                Command::Upgrade(UpgradeArgs { binary }) => {
                    upgrade(&client, binary.as_deref()).await
                }
                Command::Diff(DiffArgs { json }) => diff(&client, *json).await,
                Command::Apply(ApplyArgs { json }) => apply(&client, *json).await,
                _ => unreachable!("offline commands are handled before"),
            }
        }),
    };
    // diff(1)'s convention: 1 says "there are changes", so trouble is 2.
    let failed = if matches!(cli.command, Command::Diff(_)) {
        2
    } else {
        1
    };
    match result {
        Err(ClientError::NotRunning(path)) => {
            eprintln!("tend: not running (no daemon at {})", path.display());
            Ok(failed)
        }
        Err(ClientError::Api {
            status: 422,
            message,
        }) => {
            // The manifest does not read: every error, one a line, as `tend check` prints them.
            let count = message.lines().count();
            eprintln!("{message}");
            eprintln!("{count} error(s) in the manifest: nothing was changed");
            Ok(failed)
        }
        Err(e) => {
            eprintln!("tend: {e}");
            Ok(failed)
        }
        Ok(code) => Ok(code),
    }
}

/// `tend upgrade`: a refusal is the daemon's answer; a successful upgrade ends the
/// connection (the exec), and the new image then says how it went in `info`.
async fn upgrade(client: &Client, binary: Option<&Path>) -> Result<i32, ClientError> {
    let info = format!("{API}/info");
    let before: DaemonInfo = client.get(&info).await?;
    let binary = match binary {
        Some(path) => Some(
            std::path::absolute(path)
                .map_err(|e| ClientError::Transport(format!("{}: {e}", path.display())))?
                .display()
                .to_string(),
        ),
        None => None,
    };
    let request = UpgradeRequest { binary };
    match client
        .post::<_, serde_json::Value>(&format!("{API}/actions/upgrade"), &request)
        .await
    {
        Err(ClientError::Api { message, .. }) => {
            eprintln!("tend: {message}");
            return Ok(1);
        }
        Err(ClientError::NotRunning(path)) => return Err(ClientError::NotRunning(path)),
        // The connection closed: the daemon executed the binary.
        Err(ClientError::Transport(_)) | Ok(_) => {}
    }
    let before_number = before.last_upgrade.as_ref().map_or(0, |u| u.number);
    // The listening socket lives through the exec: this waits in its backlog until the new
    // image answers, and only takes long on a very busy machine.
    let started = Instant::now();
    let after = loop {
        match client.get::<DaemonInfo>(&info).await {
            Ok(after)
                if after
                    .last_upgrade
                    .as_ref()
                    .is_some_and(|u| u.number > before_number) =>
            {
                break after;
            }
            Ok(after) if after.pid != before.pid => {
                eprintln!(
                    "tend: the daemon was replaced by another (pid {})",
                    after.pid
                );
                return Ok(1);
            }
            Ok(_) | Err(ClientError::Transport(_)) => {}
            Err(e) => {
                eprintln!("tend: the daemon did not come back after the upgrade: {e}");
                return Ok(1);
            }
        }
        if started.elapsed() > Duration::from_secs(60) {
            eprintln!("tend: the daemon did not say how the upgrade went within 60 s");
            return Ok(1);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let last = after.last_upgrade.expect("UNWRAP: matched above");
    if after.pid != before.pid {
        eprintln!(
            "tend: the daemon's pid changed ({} -> {})",
            before.pid, after.pid
        );
        return Ok(1);
    }
    if last.ok {
        println!(
            "tend upgraded in place: {} -> {} (pid {}, {})",
            last.from_version, last.version, after.pid, last.binary
        );
        Ok(0)
    } else {
        eprintln!(
            "tend: not upgraded: {}",
            last.error
                .as_deref()
                .unwrap_or("the new binary did not take over")
        );
        eprintln!("tend {} runs on (pid {})", last.version, after.pid);
        Ok(1)
    }
}

/// `tend diff`: the plan; exit 1 when there is anything to apply (`[tend]` changes too).
async fn diff(client: &Client, json: bool) -> Result<i32, ClientError> {
    let plan: PlanReport = client.get(&format!("{API}/plan")).await?;
    let changes = plan.changes_services() || !plan.daemon_changes.is_empty();
    let mut out = std::io::stdout().lock();
    if json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&plan).unwrap_or_default()
        );
    } else {
        let _ = out.write_all(render_plan(&plan).as_bytes());
    }
    Ok(i32::from(changes))
}

/// `tend apply`: the plan as carried out, then what was stopped and started; exit 1 when
/// an instance did not start.
async fn apply(client: &Client, json: bool) -> Result<i32, ClientError> {
    let report: ApplyReport = client
        .post(&format!("{API}/apply"), &serde_json::json!({}))
        .await?;
    let code = i32::from(!report.ok);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        return Ok(code);
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(render_plan(&report.plan).as_bytes());
    if !report.stopped.is_empty() {
        let _ = writeln!(out, "stopped: {}", report.stopped.join(", "));
    }
    let started: Vec<&str> = report
        .started
        .iter()
        .filter(|r| r.ok)
        .map(|r| r.instance.as_str())
        .collect();
    if !started.is_empty() {
        let _ = writeln!(out, "started: {}", started.join(", "));
    }
    let reloaded: Vec<&str> = report
        .reloaded
        .iter()
        .filter(|r| r.ok)
        .map(|r| r.instance.as_str())
        .collect();
    if !reloaded.is_empty() {
        let _ = writeln!(out, "reloaded: {}", reloaded.join(", "));
    }
    drop(out);
    for failed in report.started.iter().filter(|r| !r.ok) {
        eprintln!(
            "{}: {}",
            failed.instance,
            failed.error.as_deref().unwrap_or("did not start")
        );
    }
    for failed in report.reloaded.iter().filter(|r| !r.ok) {
        eprintln!(
            "{}: not reloaded, the old process runs with the previous settings: {}",
            failed.instance,
            failed.error.as_deref().unwrap_or("failed")
        );
    }
    Ok(code)
}

/// One line per service: `+` added, `-` removed, `~` changed (the settings, and what
/// happens), `=` unchanged; then the `[tend]` settings that wait for a restart of tend.
pub fn render_plan(plan: &PlanReport) -> String {
    let mut text = String::new();
    for name in &plan.added {
        text.push_str(&format!("+ {name} (added)\n"));
    }
    for name in &plan.removed {
        text.push_str(&format!("- {name} (removed)\n"));
    }
    for change in &plan.changed {
        let how = match (change.action.as_str(), change.instances) {
            ("scale", Some(scale)) => format!(
                "scale from {} to {} instances, the others untouched",
                scale.from, scale.to
            ),
            ("update", _) => "update, nothing restarts".to_string(),
            ("reload", _) => {
                "reload: a new process beside each running instance, the old one stopped once it is ready"
                    .to_string()
            }
            (action, _) => action.to_string(),
        };
        text.push_str(&format!(
            "~ {}: {} changed ({how})\n",
            change.name,
            change.settings.join(", ")
        ));
    }
    for name in &plan.unchanged {
        text.push_str(&format!("= {name} unchanged\n"));
    }
    for kept in &plan.kept_counts {
        text.push_str(&format!(
            "  {} keeps its {}, set by {} (the manifest says {})\n",
            kept.name,
            count_of(kept.instances),
            kept.by,
            kept.manifest
        ));
    }
    for key in &plan.daemon_changes {
        text.push_str(&format!(
            "! {key} changed: not applied while tend runs (`tend down && tend up`)\n"
        ));
    }
    if plan.is_empty() {
        text.push_str("no changes\n");
    }
    text
}

/// The instances the targets name (all of them for none), as the daemon sees them now.
fn instances(client: &Client, targets: &[String]) -> Result<Vec<InstanceInfo>, ClientError> {
    client.get_blocking(&format!(
        "{API}/instances?targets={}",
        encode(&targets.join(","))
    ))
}

fn status(client: &Client, json: bool, targets: &[String]) -> Result<i32, ClientError> {
    let mut out = std::io::stdout().lock();
    if json {
        let instances = instances(client, targets)?;
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&instances).unwrap_or_default()
        );
        return Ok(0);
    }
    // One request for the table and, under it, the counts set while tend runs (the one
    // thing the table cannot show): every round trip is a good part of the command's time.
    let mut services: Vec<ServiceInfo> = client.get_blocking(&format!(
        "{API}/services?targets={}",
        encode(&targets.join(","))
    ))?;
    let instances: Vec<InstanceInfo> = services
        .iter_mut()
        .flat_map(|service| std::mem::take(&mut service.instances))
        .collect();
    let _ = out.write_all(render_status(&instances).as_bytes());
    let _ = out.write_all(render_counts(&services, &instances).as_bytes());
    Ok(0)
}

/// A line per shown service whose count is not simply the manifest's: scaled by `tend
/// scale`, or autoscaled.
pub fn render_counts(services: &[ServiceInfo], shown: &[InstanceInfo]) -> String {
    let mut text = String::new();
    // Looked up, not searched: thousands of services each searching thousands of
    // instances made `tend status` quadratic.
    let shown: std::collections::HashSet<&str> = shown.iter().map(|i| i.service.as_str()).collect();
    for service in services {
        if !shown.contains(service.name.as_str()) {
            continue;
        }
        let count = service.count;
        match (&service.autoscale, &service.scaled) {
            (Some(auto), scaled) => {
                text.push_str(&format!(
                    "{}: {}, autoscaled between {} and {} at {}% CPU per instance",
                    service.name,
                    count_of(count),
                    auto.min,
                    auto.max,
                    auto.cpu_percent
                ));
                if let Some(scaled) = scaled {
                    text.push_str(&format!("; last change: {}", scaled.reason));
                }
                text.push('\n');
            }
            (None, Some(scaled)) => text.push_str(&format!(
                "{}: {}, set by {} (the manifest says {})\n",
                service.name,
                count_of(count),
                scaled.by,
                scaled.manifest
            )),
            (None, None) => {}
        }
    }
    text
}

/// The `tend status` table.
pub fn render_status(instances: &[InstanceInfo]) -> String {
    let rows: Vec<[String; 10]> = instances
        .iter()
        .map(|i| {
            let last_exit = match (i.exit_code, &i.exit_signal) {
                (Some(code), _) => format!("code {code}"),
                (None, Some(signal)) => signal.clone(),
                _ => "-".into(),
            };
            let info = if i.state == "running" {
                let mut notes: Vec<String> = Vec::new();
                if i.health == "unhealthy" {
                    notes.push("unhealthy".into());
                }
                notes.extend(i.warning.clone());
                // A reload under way, or one that failed: the old release still runs.
                if i.reason.starts_with("reloading") || i.reason.starts_with("reload failed") {
                    notes.push(i.reason.clone());
                }
                notes.extend(i.notify_phase.clone());
                notes.extend(i.status_text.clone());
                notes.join("; ")
            } else {
                i.reason.clone()
            };
            let ready = match (i.state.as_str(), i.ready) {
                ("running", true) => "yes",
                ("running", false) => "no",
                _ => "-",
            };
            [
                i.name.clone(),
                i.state.clone(),
                ready.into(),
                i.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                i.cpu_percent
                    .map(|c| format!("{c:.0}%"))
                    .unwrap_or_else(|| "-".into()),
                i.rss_bytes.map(human_bytes).unwrap_or_else(|| "-".into()),
                i.uptime_ms
                    .map(human_duration)
                    .unwrap_or_else(|| "-".into()),
                i.restarts.to_string(),
                last_exit,
                info,
            ]
        })
        .collect();
    let header = [
        "NAME",
        "STATE",
        "READY",
        "PID",
        "CPU",
        "MEM",
        "UPTIME",
        "RESTARTS",
        "LAST EXIT",
        "INFO",
    ];
    table(&header, rows.into_iter().map(Vec::from).collect())
}

/// Columns padded to their widest cell, two spaces apart.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(header).chain(rows) {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}", w = *w))
            .collect();
        text.push_str(line.join("  ").trim_end());
        text.push('\n');
    }
    text
}

/// `tend events`: the history, oldest first.
async fn events(
    client: &Client,
    service: Option<&str>,
    since: &str,
    limit: usize,
    json: bool,
) -> Result<i32, ClientError> {
    let mut path = format!("{API}/events?since={}&limit={limit}", encode(since));
    if let Some(service) = service {
        path.push_str(&format!("&service={}", encode(service)));
    }
    let rows: Vec<EventRow> = client.get(&path).await?;
    let mut out = std::io::stdout().lock();
    if json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        );
        return Ok(0);
    }
    let _ = out.write_all(render_events(&rows).as_bytes());
    Ok(0)
}

/// The `tend events` table: time (local clock of the daemon's host, UTC), instance, what.
pub fn render_events(rows: &[EventRow]) -> String {
    let rows = rows
        .iter()
        .map(|e| {
            let mut time = Vec::new();
            crate::logs::line::rfc3339_millis(
                &mut time,
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(e.at_ms.max(0) as u64),
            );
            let what = match e.kind.as_str() {
                "state" => format!(
                    "{} -> {}",
                    e.from_state.as_deref().unwrap_or("?"),
                    e.to_state.as_deref().unwrap_or("?")
                ),
                "spawn" => format!("spawned pid {}", e.pid.unwrap_or(0)),
                "reload" => format!("reload {}", e.to_state.as_deref().unwrap_or("?")),
                "exit" => match (e.exit_code, &e.signal) {
                    (Some(code), _) => {
                        format!("pid {} exited with code {code}", e.pid.unwrap_or(0))
                    }
                    (None, Some(signal)) => {
                        format!("pid {} killed by {signal}", e.pid.unwrap_or(0))
                    }
                    _ => "exited".into(),
                },
                "probe" => format!(
                    "{} {}",
                    e.probe.as_deref().unwrap_or("probe"),
                    if e.passing == Some(true) {
                        "passing"
                    } else {
                        "failing"
                    }
                ),
                other => other.to_string(),
            };
            vec![
                String::from_utf8_lossy(&time).into_owned(),
                e.instance.clone(),
                what,
                e.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(&["TIME", "INSTANCE", "EVENT", "REASON"], rows)
}

/// `tend summary`: per service over a window.
async fn summary(client: &Client, window: &str, json: bool) -> Result<i32, ClientError> {
    let report: SummaryReport = client
        .get(&format!("{API}/summary?window={}", encode(window)))
        .await?;
    let mut out = std::io::stdout().lock();
    if json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        return Ok(0);
    }
    let _ = out.write_all(render_summary(&report).as_bytes());
    Ok(0)
}

pub fn render_summary(report: &SummaryReport) -> String {
    let rows = report
        .services
        .iter()
        .map(|s| {
            let last = s
                .last_failure
                .as_ref()
                .map(|e| {
                    let ago = (report.until_ms - e.at_ms).max(0) as u64;
                    let what = match (e.exit_code, &e.signal, &e.to_state) {
                        (Some(code), _, _) => format!("exit code {code}"),
                        (None, Some(signal), _) => signal.clone(),
                        (_, _, Some(state)) => state.clone(),
                        _ => e.kind.clone(),
                    };
                    format!("{what}, {} ago ({})", human_duration(ago), e.instance)
                })
                .unwrap_or_else(|| "-".into());
            vec![
                s.service.clone(),
                s.uptime_percent
                    .map(|u| format!("{u:.2}%"))
                    .unwrap_or_else(|| "-".into()),
                s.restarts.to_string(),
                last,
            ]
        })
        .collect();
    table(&["SERVICE", "UPTIME", "RESTARTS", "LAST FAILURE"], rows)
}

/// `tend health`: each probe of each instance with its last result.
fn health(client: &Client, json: bool, targets: &[String]) -> Result<i32, ClientError> {
    let instances = instances(client, targets)?;
    let mut out = std::io::stdout().lock();
    if json {
        let probes: Vec<serde_json::Value> = instances
            .iter()
            .map(|i| {
                serde_json::json!({
                    "name": i.name, "ready": i.ready, "health": i.health, "probes": i.probes
                })
            })
            .collect();
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&probes).unwrap_or_default()
        );
        return Ok(0);
    }
    let _ = out.write_all(render_health(&instances, std::time::SystemTime::now()).as_bytes());
    Ok(0)
}

/// The `tend health` table: one row per probe.
pub fn render_health(instances: &[InstanceInfo], now: std::time::SystemTime) -> String {
    let now_ms = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut text = String::new();
    for i in instances {
        let ready = if i.ready { "ready" } else { "not ready" };
        text.push_str(&format!(
            "{}  {}  {ready}, health {}\n",
            i.name, i.state, i.health
        ));
        if i.probes.is_empty() {
            text.push_str("  no probes: ready once up for min_uptime\n");
        }
        for p in &i.probes {
            let verdict = match p.passing {
                Some(true) => "passing",
                Some(false) => "failing",
                None => "pending",
            };
            let last = match (p.last_ok, p.at_ms) {
                (Some(ok), Some(at)) => format!(
                    "{} {}{} in {:.1}ms, {} ago",
                    if ok { "ok" } else { "failed" },
                    p.detail,
                    if p.fallback { " (fallback)" } else { "" },
                    p.took_ms.unwrap_or(0.0),
                    human_duration(now_ms.saturating_sub(at))
                ),
                _ if !p.detail.is_empty() => p.detail.clone(),
                _ => "no result yet".into(),
            };
            text.push_str(&format!(
                "  {:<9}  {:<6}  {verdict:<7}  {last}\n",
                p.role, p.kind
            ));
        }
    }
    text
}

/// 1.2G, 35M, 800K: binary units, short, for a table column.
pub(crate) fn human_bytes(bytes: u64) -> String {
    let units = [("G", 1u64 << 30), ("M", 1 << 20), ("K", 1 << 10)];
    for (unit, size) in units {
        if bytes >= size {
            let value = bytes as f64 / size as f64;
            return if value < 10.0 {
                format!("{value:.1}{unit}")
            } else {
                format!("{value:.0}{unit}")
            };
        }
    }
    format!("{bytes}B")
}

pub(crate) fn human_duration(ms: u64) -> String {
    let secs = ms / 1000;
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{}s", secs / 60, secs % 60),
        3600..86400 => format!("{}h{}m", secs / 3600, (secs % 3600) / 60),
        _ => format!("{}d{}h", secs / 86400, (secs % 86400) / 3600),
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b',' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn action(
    client: &Client,
    verb: &str,
    targets: &[String],
    signal: Option<String>,
) -> Result<i32, ClientError> {
    let request = ActionRequest {
        targets: targets.to_vec(),
        signal,
    };
    let response: ActionResponse = client
        .post(&format!("{API}/actions/{verb}"), &request)
        .await?;
    let mut code = 0;
    for result in &response.results {
        match &result.error {
            None => println!("{}: {}", result.instance, past_tense(verb)),
            Some(error) => {
                eprintln!("{}: {error}", result.instance);
                code = 1;
            }
        }
    }
    Ok(code)
}

/// `tend scale SERVICE N`: what changed, then each instance stopped and started; exit 1
/// when one did not start.
async fn scale(client: &Client, service: &str, instances: u32) -> Result<i32, ClientError> {
    let request = ScaleRequest {
        service: service.to_string(),
        instances,
    };
    let done: ScaleResponse = client
        .post(&format!("{API}/actions/scale"), &request)
        .await?;
    print!("{}", render_scale(&done));
    let mut code = 0;
    for failed in done.started.iter().filter(|r| !r.ok) {
        eprintln!(
            "{}: {}",
            failed.instance,
            failed.error.as_deref().unwrap_or("did not start")
        );
        code = 1;
    }
    Ok(code)
}

/// `1 instance`, `3 instances`.
fn count_of(n: u32) -> String {
    if n == 1 {
        "1 instance".into()
    } else {
        format!("{n} instances")
    }
}

/// `web: 2 → 4 instances (the manifest says 2)`, then the instances stopped and started.
pub fn render_scale(done: &ScaleResponse) -> String {
    let mut text = if done.from == done.to {
        format!("{}: already {}", done.service, count_of(done.to))
    } else {
        format!("{}: {} → {}", done.service, done.from, count_of(done.to))
    };
    if done.manifest != done.to {
        text.push_str(&format!(
            " (the manifest says {}: an apply that changes it takes it back)",
            done.manifest
        ));
    }
    text.push('\n');
    for name in &done.stopped {
        text.push_str(&format!("{name}: stopped\n"));
    }
    for started in done.started.iter().filter(|r| r.ok) {
        text.push_str(&format!("{}: started\n", started.instance));
    }
    if done.to > done.from && !done.running {
        text.push_str(&format!(
            "{} is not running: the new instances are stopped (`tend start {}`)\n",
            done.service, done.service
        ));
    }
    text
}

fn past_tense(verb: &str) -> &'static str {
    match verb {
        "start" => "started",
        "stop" => "stopped",
        "restart" => "restarted",
        "reload" => "reloaded",
        _ => "signalled",
    }
}

struct LogRequest<'a> {
    follow: bool,
    lines: usize,
    since: Option<&'a str>,
    stream: Option<&'a str>,
    prefix: bool,
    targets: &'a [String],
}

async fn logs(client: &Client, request: LogRequest<'_>) -> Result<i32, ClientError> {
    let mut path = format!(
        "{API}/logs?targets={}&lines={}&follow={}",
        encode(&request.targets.join(",")),
        request.lines,
        request.follow
    );
    if let Some(stream) = request.stream {
        path.push_str(&format!("&stream={stream}"));
    }
    if let Some(since) = request.since {
        match config::duration::parse(since) {
            Ok(duration) => path.push_str(&format!("&since={}", duration.as_secs_f64())),
            Err(message) => {
                eprintln!("tend: --since: {message}");
                return Ok(1);
            }
        }
    }
    let colour = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::io::stdout().is_terminal();
    let mut printer = LinePrinter {
        colour,
        prefix: request.prefix,
        pending: Vec::new(),
        width: 0,
        last: None,
        skip: None,
    };
    let info = format!("{API}/info");
    let mut daemon: Option<DaemonInfo> = match request.follow {
        true => Some(client.get(&info).await?),
        false => None,
    };
    loop {
        let ended = client.stream(&path, |chunk| printer.feed(chunk)).await;
        // An upgrade ends every connection with the old image: the same daemon answers
        // again, having upgraded, and the following goes on from its tail (which the new
        // image took over), skipping what was printed.
        let Some(before) = daemon.take() else {
            return ended.map(|()| 0);
        };
        if !matches!(ended, Ok(()) | Err(ClientError::Transport(_))) {
            return ended.map(|()| 0);
        }
        let Some(after) = upgraded(client, &before).await else {
            return ended.map(|()| 0);
        };
        printer.pending.clear();
        printer.skip = printer.last.clone();
        path = path.replace(
            &format!("lines={}", request.lines),
            &format!("lines={FOLLOW_AGAIN_LINES}"),
        );
        daemon = Some(after);
    }
}

/// Lines per instance asked for when following again after an upgrade: the tail the new
/// image took over holds what was written meanwhile, and what was printed is skipped.
const FOLLOW_AGAIN_LINES: usize = 100_000;

/// The daemon as it answers after `before` ended a connection, if that was an upgrade (same
/// pid, a newer `last_upgrade`); None when it stopped or is another daemon.
async fn upgraded(client: &Client, before: &DaemonInfo) -> Option<DaemonInfo> {
    let number = |info: &DaemonInfo| info.last_upgrade.as_ref().map_or(0, |u| u.number);
    // The listening socket outlives the exec: a request waits in its backlog for the new
    // image, so this is answered at once after an upgrade and refused after a `down`.
    let after: DaemonInfo = client.get(&format!("{API}/info")).await.ok()?;
    (after.pid == before.pid && number(&after) > number(before)).then_some(after)
}

/// Prints the daemon's NDJSON log lines as `instance | line`.
struct LinePrinter {
    colour: bool,
    prefix: bool,
    pending: Vec<u8>,
    width: usize,
    /// The time of the last line printed (RFC 3339 in UTC with milliseconds: its order is
    /// the text's) and every line printed at that time.
    last: Option<(String, Vec<(String, String)>)>,
    /// Following again after an upgrade: what was printed already, as `last` was then; the
    /// lines before that time, and these at it (each once), are not printed again.
    skip: Option<(String, Vec<(String, String)>)>,
}

impl LinePrinter {
    fn feed(&mut self, chunk: &[u8]) {
        self.pending.extend_from_slice(chunk);
        let Some(end) = self.pending.iter().rposition(|b| *b == b'\n') else {
            return;
        };
        let complete: Vec<u8> = self.pending.drain(..=end).collect();
        let mut out = std::io::stdout().lock();
        for record in complete.split(|b| *b == b'\n').filter(|r| !r.is_empty()) {
            let Ok(value) = serde_json::from_slice::<serde_json::Value>(record) else {
                continue;
            };
            let instance = value["instance"].as_str().unwrap_or("?");
            let line = value["line"].as_str().unwrap_or("");
            if !self.is_new(value["time"].as_str().unwrap_or(""), instance, line) {
                continue;
            }
            if self.prefix {
                self.width = self.width.max(instance.len());
                let padded = format!("{instance:<width$}", width = self.width);
                if self.colour {
                    let _ = write!(out, "\x1b[{}m{padded} |\x1b[0m ", colour_of(instance));
                } else {
                    let _ = write!(out, "{padded} | ");
                }
            }
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
    }

    /// Whether a line was not printed yet (lines come in time order), remembering it.
    fn is_new(&mut self, time: &str, instance: &str, line: &str) -> bool {
        let seen = (instance.to_string(), line.to_string());
        if let Some((until, printed)) = &mut self.skip {
            if time < until.as_str() {
                return false;
            }
            if time == until.as_str()
                && let Some(at) = printed.iter().position(|p| *p == seen)
            {
                printed.swap_remove(at);
                return false;
            }
            if time > until.as_str() {
                self.skip = None;
            }
        }
        match &mut self.last {
            Some((last, printed)) if time == last.as_str() => printed.push(seen),
            _ => self.last = Some((time.to_string(), vec![seen])),
        }
        true
    }
}

/// A stable colour per instance name.
fn colour_of(instance: &str) -> &'static str {
    const PALETTE: [&str; 6] = ["36", "33", "32", "35", "34", "31"];
    let hash = instance
        .bytes()
        .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
    PALETTE[hash % PALETTE.len()]
}

async fn down(client: &Client) -> Result<i32, ClientError> {
    let info: DaemonInfo = client.get(&format!("{API}/info")).await?;
    let _: serde_json::Value = client
        .post(&format!("{API}/shutdown"), &serde_json::json!({}))
        .await?;
    // The daemon answers before it stops; wait for it to be gone so `down` means down.
    let pid = nix::unistd::Pid::from_raw(info.pid as i32);
    while nix::sys::signal::kill(pid, None).is_ok()
        && Path::new(&format!("/proc/{}", info.pid)).exists()
    {
        if is_zombie(info.pid) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!("tend stopped");
    Ok(0)
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with('Z')))
        .unwrap_or(false)
}

#[cfg(test)]
mod wait_batch_tests {
    use super::wait_batches;

    #[test]
    fn ten_thousand_names_wait_in_batches_that_fit_a_uri() {
        let names: Vec<String> = (0..10_000).map(|i| format!("svc-{i:05}")).collect();
        let batches = wait_batches(&names);
        assert!(batches.len() > 1);
        assert!(batches.iter().all(|b| b.len() <= 8 * 1024));
        let back: Vec<&str> = batches.iter().flat_map(|b| b.split(',')).collect();
        assert_eq!(back, names.iter().map(String::as_str).collect::<Vec<_>>());
    }

    #[test]
    fn a_few_names_are_one_batch_and_none_is_no_batch() {
        let names = vec!["web".to_string(), "db:0".to_string()];
        assert_eq!(wait_batches(&names), ["web,db%3A0"]);
        assert!(wait_batches(&[]).is_empty());
    }
}
