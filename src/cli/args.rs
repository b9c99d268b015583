//! The command line, defined once: parsing, `--help`, completions and the man page all come
//! from these types.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "tend", version, about = "A small, fast process supervisor", long_about = None)]
pub struct Cli {
    /// The manifest (default: tend.toml in this directory or a parent).
    #[arg(short = 'c', long = "config", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The format of the -c file when its name and content do not say.
    #[arg(long, global = true, value_name = "FORMAT",
          value_parser = ["tend", "supervisord", "pm2", "procfile", "process-compose"])]
    pub from: Option<String>,

    /// PM2 ecosystem files: merge `env_NAME` over `env`, as `pm2 start --env NAME`.
    #[arg(long, global = true, value_name = "NAME")]
    pub env: Option<String>,

    /// The daemon's control socket (default: the manifest's `[tend] socket`, else tend.sock in
    /// its state_dir).
    #[arg(
        long,
        global = true,
        env = "TEND_SOCKET",
        value_name = "PATH",
        hide_env_values = true
    )]
    pub socket: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the daemon with the manifest and its autostart services (or the named ones).
    Up {
        /// Detach: return once every service is running or has failed.
        #[arg(short = 'd', long)]
        detach: bool,
        /// With -d: also wait until each instance is ready (up for its min_uptime).
        #[arg(long, requires = "detach")]
        wait: bool,
        /// Start only these services (and what they depend on).
        services: Vec<String>,
        /// Run until this service (or task) ends for good, then stop everything and exit with
        /// its exit code (128+N for a signal): for CI and one-shot jobs.
        #[arg(long, value_name = "SERVICE", conflicts_with = "detach")]
        exit_with: Option<String>,
        /// Internal: this process is the detached daemon.
        #[arg(long, hide = true)]
        daemonized: bool,
    },
    /// Show instances: state, pid, uptime, restarts, last exit.
    #[command(visible_alias = "ps")]
    Status {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
        /// Services, instances (web:2), groups or `all` (default: all).
        targets: Vec<String>,
    },
    /// A full-screen terminal UI: live instances, their logs and probes, and keys to start,
    /// stop, restart, reload and scale them (`?` inside lists the keys).
    Top,
    /// Show each probe's last result: readiness, liveness and startup, with timings.
    Health {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Services, instances (web:2), groups or `all` (default: all).
        targets: Vec<String>,
    },
    /// Start targets (and their dependencies); waits until each has been up for its min_uptime.
    Start {
        #[arg(required = true)]
        targets: Vec<String>,
    },
    /// Stop targets, dependents first; waits until their whole process trees are gone.
    Stop {
        #[arg(required = true)]
        targets: Vec<String>,
    },
    /// Stop and start targets again, skipping any backoff delay; waits like `start`.
    Restart {
        #[arg(required = true)]
        targets: Vec<String>,
    },
    /// Replace targets' processes without downtime: with `[sockets]`, a new process starts
    /// beside each instance (max_surge at a time) and the old one stops once the new one is
    /// ready; with `reload_signal`, that signal is sent; otherwise a rolling restart. Exits 1
    /// naming each instance not reloaded, and why.
    Reload {
        #[arg(required = true)]
        targets: Vec<String>,
    },
    /// Change a service's number of instances while tend runs: new indices start (when the
    /// service runs), the highest stop. Kept until the manifest's `instances` changes.
    Scale {
        service: String,
        /// The number of instances, 1 or more (`tend stop SERVICE` stops them all).
        #[arg(value_parser = clap::value_parser!(u32).range(1..=10_000))]
        instances: u32,
    },
    /// Send a signal (HUP, SIGUSR1, 10, ...) to targets' process groups.
    Signal {
        signal: String,
        #[arg(required = true)]
        targets: Vec<String>,
    },
    /// Print captured output: the last lines of each target, merged in time order.
    Logs {
        /// Keep following new output (across restarts and rotation) until Ctrl-C.
        #[arg(short = 'f', long)]
        follow: bool,
        /// How many recent lines per instance.
        #[arg(short = 'n', long = "lines", default_value_t = 100)]
        lines: usize,
        /// Only lines read within this long, e.g. 10m.
        #[arg(long, value_name = "DURATION")]
        since: Option<String>,
        /// Only one stream: out or err.
        #[arg(long, value_parser = ["out", "err"])]
        stream: Option<String>,
        /// Print lines without the instance prefix.
        #[arg(long)]
        no_prefix: bool,
        /// Services, instances, groups or `all` (default: all).
        targets: Vec<String>,
    },
    /// Show the event history: state changes, exits, probe verdicts, warnings.
    Events {
        /// Only this service's events.
        #[arg(long, short = 's')]
        service: Option<String>,
        /// How far back, e.g. 30m, 1h, 7d.
        #[arg(long, default_value = "1h", value_name = "DURATION")]
        since: String,
        /// At most this many (the newest).
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        /// Print one JSON array of event objects.
        #[arg(long)]
        json: bool,
    },
    /// Per service over a window of the history: uptime %, restarts, last failure.
    Summary {
        /// The window, back from now, e.g. 1h, 24h, 7d.
        #[arg(long, default_value = "24h", value_name = "DURATION")]
        window: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show what `tend apply` would do: the daemon reads its manifest again and compares it
    /// with what it runs. Exit status as diff(1): 0 no changes, 1 changes, 2 trouble.
    Diff {
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Carry out the changes of the manifest (also SIGHUP to the daemon): add, remove and
    /// restart only what changed; an invalid manifest changes nothing.
    Apply {
        /// Print what was done as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop everything and exit the daemon.
    Down,
    /// Replace the running daemon by a binary (by default the one it was started from,
    /// perhaps a newer version installed there) without stopping any service: same pid,
    /// same children, no output lost. A binary that cannot take over is refused and
    /// nothing changes; exits 1 saying why.
    Upgrade {
        /// The binary to run instead of the one tend was started from.
        #[arg(long, value_name = "PATH")]
        binary: Option<PathBuf>,
    },
    /// Internal: print the handover versions this binary reads, after reading the manifest
    /// (a running daemon asks a binary this before upgrading to it).
    #[command(hide = true)]
    UpgradeCheck,
    /// Validate the manifest without starting anything (also a foreign file: see `import`).
    Check,
    /// Print a supervisord.conf, PM2 ecosystem file, Procfile or process-compose file as an
    /// equivalent, commented tend.toml, with what did not translate and why.
    Import {
        /// The file to translate.
        file: PathBuf,
    },
    /// Write the manifest as systemd units, Kubernetes objects, a Compose file, a PM2
    /// ecosystem file or a supervisord.conf. What the target cannot express is reported on
    /// stderr, per service and setting.
    Export {
        /// The target.
        format: ExportFormat,
        /// Write the files into this directory (created; files there are replaced) instead
        /// of printing them.
        #[arg(short = 'o', long = "output", value_name = "DIR")]
        output: Option<PathBuf>,
        /// kubernetes, compose: the container image the programs run in.
        #[arg(long, value_name = "IMAGE")]
        image: Option<String>,
        /// kubernetes: the namespace written into every object.
        #[arg(long, value_name = "NAMESPACE")]
        namespace: Option<String>,
        /// systemd: the version the units are for (RestartSteps= needs 254).
        #[arg(long, value_name = "VERSION", default_value_t = 254)]
        systemd_version: u32,
        /// Export only these services (and what they depend on).
        services: Vec<String>,
    },
    /// Write a systemd unit that runs `tend up` for this manifest at boot (Type=notify: tend
    /// tells systemd when its services are up), then say how to enable it.
    Startup {
        /// A user unit (~/.config/systemd/user, `systemctl --user`) instead of a system one
        /// (/etc/systemd/system).
        #[arg(long)]
        user: bool,
        /// Print the unit instead of writing it.
        #[arg(long)]
        print: bool,
    },
    /// Print the JSON Schema of the manifest (for editor completion).
    Schema,
    /// Print a shell completion script.
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff).
    Man,
}

/// What `tend export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Systemd,
    #[value(alias = "k8s")]
    Kubernetes,
    Compose,
    Pm2,
    Supervisord,
}
