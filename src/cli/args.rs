//! The command line, defined once: parsing, `--help`, completions and the man page all come
//! from these types and the table of subcommands below.
//!
//! Every run of `tend` parses its arguments, and `tend status` is run in loops: the table
//! lets clap build only the subcommand that was named (`Command::defer`) instead of all of
//! them, and the options every command takes are added to that one subcommand rather than
//! copied into all of them (`global`). Together that saves about 50 page faults and 0.2 ms
//! of every `tend status` (docs/performance.md, "Status").

use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, FromArgMatches, ValueEnum};

/// The parsed command line.
#[derive(Debug)]
pub struct Cli {
    pub options: GlobalOptions,
    pub command: Command,
}

// The options every command takes, before or after the command's name. (Not a doc
// comment: clap would make it the about of every command the options are added to.)
#[derive(Debug, Args)]
pub struct GlobalOptions {
    /// The manifest (default: tend.toml in this directory or a parent).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The format of the -c file when its name and content do not say.
    #[arg(long, value_name = "FORMAT",
          value_parser = ["tend", "supervisord", "pm2", "procfile", "process-compose"])]
    pub from: Option<String>,

    /// PM2 ecosystem files: merge `env_NAME` over `env`, as `pm2 start --env NAME`.
    #[arg(long, value_name = "NAME")]
    pub env: Option<String>,

    /// The daemon's control socket (default: the manifest's `[tend] socket`, else tend.sock in
    /// its state_dir).
    #[arg(long, env = "TEND_SOCKET", value_name = "PATH", hide_env_values = true)]
    pub socket: Option<PathBuf>,
}

impl Cli {
    /// Parses the process's arguments; prints help, version or the error and exits where
    /// clap says so.
    pub fn parse() -> Cli {
        Self::try_parse_from(std::env::args_os()).unwrap_or_else(|error| error.exit())
    }

    pub fn try_parse_from<I, T>(arguments: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Self::command().try_get_matches_from(arguments)?;
        Self::from_matches(&matches).map_err(|error| error.format(&mut Self::command()))
    }

    /// The whole command line as clap sees it. Each subcommand's arguments are added when
    /// clap builds that subcommand: for parsing, only the one named; for help on it, for
    /// completions and for the man page (`Command::build`), all of them.
    pub fn command() -> clap::Command {
        let root = clap::Command::new("tend")
            .version(env!("CARGO_PKG_VERSION"))
            .about("A small, fast process supervisor")
            .long_about(None)
            .subcommand_required(true)
            .arg_required_else_help(true);
        SUBCOMMANDS
            .iter()
            .fold(GlobalOptions::augment_args(root), |root, subcommand| {
                let mut command = clap::Command::new(subcommand.name)
                    .about(subcommand.about)
                    .hide(subcommand.hidden)
                    .defer(subcommand.arguments);
                if let Some(alias) = subcommand.alias {
                    command = command.visible_alias(alias);
                }
                root.subcommand(command)
            })
    }

    fn from_matches(matches: &ArgMatches) -> Result<Cli, clap::Error> {
        let before = GlobalOptions::from_arg_matches(matches)?;
        let Some((name, own)) = matches.subcommand() else {
            return Err(clap::Error::new(clap::error::ErrorKind::MissingSubcommand));
        };
        let subcommand = SUBCOMMANDS
            .iter()
            .find(|subcommand| subcommand.name == name)
            .ok_or_else(|| clap::Error::new(clap::error::ErrorKind::InvalidSubcommand))?;
        let after = GlobalOptions::from_arg_matches(own)?;
        // Given on both sides of the command's name, the later one counts; but both sides
        // read TEND_SOCKET, and `--socket` given before the name beats the variable.
        let typed = |m: &ArgMatches| m.value_source("socket") == Some(ValueSource::CommandLine);
        let socket = if typed(matches) && !typed(own) {
            before.socket
        } else {
            after.socket.or(before.socket)
        };
        Ok(Cli {
            options: GlobalOptions {
                config: after.config.or(before.config),
                from: after.from.or(before.from),
                env: after.env.or(before.env),
                socket,
            },
            command: (subcommand.read)(own)?,
        })
    }
}

/// The one subcommand the command line names, with its arguments.
#[derive(Debug)]
pub enum Command {
    Up(UpArgs),
    Status(StatusArgs),
    Top,
    Health(HealthArgs),
    Start(StartArgs),
    Stop(StopArgs),
    Restart(RestartArgs),
    Reload(ReloadArgs),
    Scale(ScaleArgs),
    Signal(SignalArgs),
    Logs(LogsArgs),
    Events(EventsArgs),
    Summary(SummaryArgs),
    Diff(DiffArgs),
    Apply(ApplyArgs),
    Down,
    Upgrade(UpgradeArgs),
    UpgradeCheck,
    Check,
    Import(ImportArgs),
    Export(ExportArgs),
    Startup(StartupArgs),
    Schema,
    Completions(CompletionsArgs),
    Man,
}

/// A subcommand as `tend --help` lists it, and how to build and read its arguments once it
/// is the one named.
struct Subcommand {
    name: &'static str,
    about: &'static str,
    alias: Option<&'static str>,
    hidden: bool,
    arguments: fn(clap::Command) -> clap::Command,
    read: fn(&ArgMatches) -> Result<Command, clap::Error>,
}

/// In the order `tend --help` lists them.
const SUBCOMMANDS: &[Subcommand] = &[
    Subcommand {
        name: "up",
        about: "Start the daemon with the manifest and its autostart services (or the named ones)",
        alias: None,
        hidden: false,
        arguments: |c| GlobalOptions::augment_args(UpArgs::augment_args(c)),
        read: |m| Ok(Command::Up(UpArgs::from_arg_matches(m)?)),
    },
    Subcommand {
        name: "status",
        about: "Show instances: state, pid, uptime, restarts, last exit",
        alias: Some("ps"),
        hidden: false,
        arguments: |c| GlobalOptions::augment_args(StatusArgs::augment_args(c)),
        read: |m| Ok(Command::Status(StatusArgs::from_arg_matches(m)?)),
    },
    Subcommand {
        name: "top",
        about: "A full-screen terminal UI: live instances, their logs and probes, and keys to \
            start, stop, restart, reload and scale them (`?` inside lists the keys)",
        alias: None,
        hidden: false,
        arguments: GlobalOptions::augment_args,
        read: |_| Ok(Command::Top),
    },
    Subcommand {
        name: "health",
        about: "Show each probe's last result: readiness, liveness and startup, with timings",
        alias: None,
        hidden: false,
        arguments: |c| GlobalOptions::augment_args(HealthArgs::augment_args(c)),
        read: |m| Ok(Command::Health(HealthArgs::from_arg_matches(m)?)),
    },
    Subcommand {
        name: "start",
        about: "Start targets (and their dependencies); waits until each has been up for its \
            min_uptime",
        alias: None,
        hidden: false,
        arguments: |c| GlobalOptions::augment_args(StartArgs::augment_args(c)),
        read: |m| Ok(Command::Start(StartArgs::from_arg_matches(m)?)),
    },
    Subcommand {
        name: "stop",
        about: "Stop targets, dependents first; waits until their whole process trees are gone",
        alias: None,
        hidden: false,
        arguments: |c| GlobalOptions::augment_args(StopArgs::augment_args(c)),
        read: |m| Ok(Command::Stop(StopArgs::from_arg_matches(m)?)),
    },
    Subcommand {
        name: "restart",
        about: "Stop and start targets again, skipping any backoff delay; waits like `start`",
        alias: None,
        hidden: false,
        arguments: |c| GlobalOptions::augment_args(RestartArgs::augment_args(c)),
        read: |m| Ok(Command::Restart(RestartArgs::from_arg_matches(m)?)),
    },
    Subcommand {
        name: "reload",
        about: "Replace targets' processes without downtime: with `[sockets]`, a new process \
            starts beside each instance (max_surge at a time) and the old one stops once \
            the new one is ready; with `reload_signal`, that signal is sent; otherwise a \
            rolling restart. Exits 1 naming each instance not reloaded, and why",
        alias: None,
        hidden: false,
        arguments: |c| GlobalOptions::augment_args(ReloadArgs::augment_args(c)),
        read: |m| Ok(Command::Reload(ReloadArgs::from_arg_matches(m)?)),
    },
    Subcommand {
        name: "scale",
        about: "Change a service's number of instances while tend runs: new indices start \
            (when the service runs), the highest stop. Kept until the manifest's \
            `instances` changes",
        alias: None,
        hidden: false,
        arguments: |c| GlobalOptions::augment_args(ScaleArgs::augment_args(c)),
        read: |m| Ok(Command::Scale(ScaleArgs::from_arg_matches(m)?)),
    },
    Subcommand {
        name: "signal",
        about: "Send a signal (HUP, SIGUSR1, 10, ...) to targets' process groups",
        alias: None,
        hidden: false,
        arguments: |c| GlobalOptions::augment_args(SignalArgs::augment_args(c)),
        read: |m| Ok(Command::Signal(SignalArgs::from_arg_matches(m)?)),
    },
    Subcommand {
        name: "logs",
        about: "Print captured output: the last lines of each target, merged in time order",
        alias: None,
        hidden: false,
        arguments: |c| GlobalOptions::augment_args(LogsArgs::augment_args(c)),
        read: |m| Ok(Command::Logs(LogsArgs::from_arg_matches(m)?)),
    },
    Subcommand {
        name: "events",
        about: "Show the event history: state changes, exits, probe verdicts, warnings",
        alias: None,
        hidden: false,
        arguments: |c| GlobalOptions::augment_args(EventsArgs::augment_args(c)),
        read: |m| Ok(Command::Events(EventsArgs::from_arg_matches(m)?)),
    },
    Subcommand {
        name: "summary",
        about: "Per service over a window of the history: uptime %, restarts, last failure",
        alias: None,
        hidden: false,
        arguments: |c| GlobalOptions::augment_args(SummaryArgs::augment_args(c)),
        read: |m| Ok(Command::Summary(SummaryArgs::from_arg_matches(m)?)),
    },
    Subcommand {
        name: "diff",
        about: "Show what `tend apply` would do: the daemon reads its manifest again and \
            compares it with what it runs. Exit status as diff(1): 0 no changes, 1 \
            changes, 2 trouble",
        alias: None,
        hidden: false,
        arguments: |c| GlobalOptions::augment_args(DiffArgs::augment_args(c)),
        read: |m| Ok(Command::Diff(DiffArgs::from_arg_matches(m)?)),
    },
    Subcommand {
        name: "apply",
        about: "Carry out the changes of the manifest (also SIGHUP to the daemon): add, remove \
            and restart only what changed; an invalid manifest changes nothing",
        alias: None,
        hidden: false,
        arguments: |c| GlobalOptions::augment_args(ApplyArgs::augment_args(c)),
        read: |m| Ok(Command::Apply(ApplyArgs::from_arg_matches(m)?)),
    },
    Subcommand {
        name: "down",
        about: "Stop everything and exit the daemon",
        alias: None,
        hidden: false,
        arguments: GlobalOptions::augment_args,
        read: |_| Ok(Command::Down),
    },
    Subcommand {
        name: "upgrade",
        about: "Replace the running daemon by a binary (by default the one it was started \
            from, perhaps a newer version installed there) without stopping any service: \
            same pid, same children, no output lost. A binary that cannot take over is \
            refused and nothing changes; exits 1 saying why",
        alias: None,
        hidden: false,
        arguments: |c| GlobalOptions::augment_args(UpgradeArgs::augment_args(c)),
        read: |m| Ok(Command::Upgrade(UpgradeArgs::from_arg_matches(m)?)),
    },
    Subcommand {
        name: "upgrade-check",
        about: "Internal: print the handover versions this binary reads, after reading the \
            manifest (a running daemon asks a binary this before upgrading to it)",
        alias: None,
        hidden: true,
        arguments: GlobalOptions::augment_args,
        read: |_| Ok(Command::UpgradeCheck),
    },
    Subcommand {
        name: "check",
        about: "Validate the manifest without starting anything (also a foreign file: see \
            `import`)",
        alias: None,
        hidden: false,
        arguments: GlobalOptions::augment_args,
        read: |_| Ok(Command::Check),
    },
    Subcommand {
        name: "import",
        about: "Print a supervisord.conf, PM2 ecosystem file, Procfile or process-compose file \
            as an equivalent, commented tend.toml, with what did not translate and why",
        alias: None,
        hidden: false,
        arguments: |c| GlobalOptions::augment_args(ImportArgs::augment_args(c)),
        read: |m| Ok(Command::Import(ImportArgs::from_arg_matches(m)?)),
    },
    Subcommand {
        name: "export",
        about: "Write the manifest as systemd units, Kubernetes objects, a Compose file, a PM2 \
            ecosystem file or a supervisord.conf. What the target cannot express is \
            reported on stderr, per service and setting",
        alias: None,
        hidden: false,
        arguments: |c| GlobalOptions::augment_args(ExportArgs::augment_args(c)),
        read: |m| Ok(Command::Export(ExportArgs::from_arg_matches(m)?)),
    },
    Subcommand {
        name: "startup",
        about: "Write a systemd unit that runs `tend up` for this manifest at boot \
            (Type=notify: tend tells systemd when its services are up), then say how to \
            enable it",
        alias: None,
        hidden: false,
        arguments: |c| GlobalOptions::augment_args(StartupArgs::augment_args(c)),
        read: |m| Ok(Command::Startup(StartupArgs::from_arg_matches(m)?)),
    },
    Subcommand {
        name: "schema",
        about: "Print the JSON Schema of the manifest (for editor completion)",
        alias: None,
        hidden: false,
        arguments: GlobalOptions::augment_args,
        read: |_| Ok(Command::Schema),
    },
    Subcommand {
        name: "completions",
        about: "Print a shell completion script",
        alias: None,
        hidden: false,
        arguments: |c| GlobalOptions::augment_args(CompletionsArgs::augment_args(c)),
        read: |m| Ok(Command::Completions(CompletionsArgs::from_arg_matches(m)?)),
    },
    Subcommand {
        name: "man",
        about: "Print the man page (roff)",
        alias: None,
        hidden: false,
        arguments: GlobalOptions::augment_args,
        read: |_| Ok(Command::Man),
    },
];

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Detach: return once every service is running or has failed.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// With -d: also wait until each instance is ready (up for its min_uptime).
    #[arg(long, requires = "detach")]
    pub wait: bool,
    /// Start only these services (and what they depend on).
    pub services: Vec<String>,
    /// Run until this service (or task) ends for good, then stop everything and exit with
    /// its exit code (128+N for a signal): for CI and one-shot jobs.
    #[arg(long, value_name = "SERVICE", conflicts_with = "detach")]
    pub exit_with: Option<String>,
    /// Internal: this process is the detached daemon.
    #[arg(long, hide = true)]
    pub daemonized: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Services, instances (web:2), groups or `all` (default: all).
    pub targets: Vec<String>,
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Services, instances (web:2), groups or `all` (default: all).
    pub targets: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    #[arg(required = true)]
    pub targets: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    #[arg(required = true)]
    pub targets: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RestartArgs {
    #[arg(required = true)]
    pub targets: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ReloadArgs {
    #[arg(required = true)]
    pub targets: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ScaleArgs {
    pub service: String,
    /// The number of instances, 1 or more (`tend stop SERVICE` stops them all).
    #[arg(value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub instances: u32,
}

#[derive(Debug, Args)]
pub struct SignalArgs {
    pub signal: String,
    #[arg(required = true)]
    pub targets: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Keep following new output (across restarts and rotation) until Ctrl-C.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// How many recent lines per instance.
    #[arg(short = 'n', long = "lines", default_value_t = 100)]
    pub lines: usize,
    /// Only lines read within this long, e.g. 10m.
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,
    /// Only one stream: out or err.
    #[arg(long, value_parser = ["out", "err"])]
    pub stream: Option<String>,
    /// Print lines without the instance prefix.
    #[arg(long)]
    pub no_prefix: bool,
    /// Services, instances, groups or `all` (default: all).
    pub targets: Vec<String>,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only this service's events.
    #[arg(long, short = 's')]
    pub service: Option<String>,
    /// How far back, e.g. 30m, 1h, 7d.
    #[arg(long, default_value = "1h", value_name = "DURATION")]
    pub since: String,
    /// At most this many (the newest).
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
    /// Print one JSON array of event objects.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SummaryArgs {
    /// The window, back from now, e.g. 1h, 24h, 7d.
    #[arg(long, default_value = "24h", value_name = "DURATION")]
    pub window: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Print what was done as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct UpgradeArgs {
    /// The binary to run instead of the one tend was started from.
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file to translate.
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The target.
    pub format: ExportFormat,
    /// Write the files into this directory (created; files there are replaced) instead
    /// of printing them.
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// kubernetes, compose: the container image the programs run in.
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// kubernetes: the namespace written into every object.
    #[arg(long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// systemd: the version the units are for (RestartSteps= needs 254).
    #[arg(long, value_name = "VERSION", default_value_t = 254)]
    pub systemd_version: u32,
    /// Export only these services (and what they depend on).
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StartupArgs {
    /// A user unit (~/.config/systemd/user, `systemctl --user`) instead of a system one
    /// (/etc/systemd/system).
    #[arg(long)]
    pub user: bool,
    /// Print the unit instead of writing it.
    #[arg(long)]
    pub print: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    pub shell: clap_complete::Shell,
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn parse(line: &str) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("tend").chain(line.split_whitespace()))
    }

    #[test]
    fn the_whole_command_line_is_consistent() {
        // Builds every deferred subcommand and runs clap's own checks on each.
        Cli::command().debug_assert();
    }

    #[test]
    fn every_subcommand_is_listed_once_and_parses() {
        let names: Vec<&str> = SUBCOMMANDS.iter().map(|s| s.name).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        let mut command = Cli::command();
        command.build();
        for subcommand in SUBCOMMANDS {
            let built = command.find_subcommand(subcommand.name).unwrap();
            assert_eq!(
                built.is_hide_set(),
                subcommand.hidden,
                "{}",
                subcommand.name
            );
            // A doc comment on an arguments struct would replace the table's text once
            // the subcommand is built.
            let about = built.get_about().map(|a| a.to_string());
            assert_eq!(
                about.as_deref(),
                Some(subcommand.about),
                "{}",
                subcommand.name
            );
            // The deferred arguments arrived: every command has at least the shared ones.
            assert!(
                built.get_arguments().any(|a| a.get_id() == "config"),
                "{}",
                subcommand.name
            );
        }
        let help = Cli::command().render_help().to_string();
        assert!(help.contains("status       Show instances"), "{help}");
        assert!(!help.contains("upgrade-check"), "{help}");
    }

    #[test]
    fn shared_options_go_before_or_after_the_command_and_the_later_counts() {
        let before = parse("-c a.toml --from pm2 status").unwrap();
        assert_eq!(before.options.config, Some(PathBuf::from("a.toml")));
        assert_eq!(before.options.from.as_deref(), Some("pm2"));
        let after = parse("status web -c b.toml --env prod --socket /run/t.sock").unwrap();
        assert_eq!(after.options.config, Some(PathBuf::from("b.toml")));
        assert_eq!(after.options.env.as_deref(), Some("prod"));
        assert_eq!(after.options.socket, Some(PathBuf::from("/run/t.sock")));
        assert!(matches!(&after.command, Command::Status(s) if s.targets == ["web"]));
        let both = parse("-c a.toml logs -c b.toml -n 5 web").unwrap();
        assert_eq!(both.options.config, Some(PathBuf::from("b.toml")));
        assert!(matches!(&both.command, Command::Logs(l) if l.lines == 5));
    }

    #[test]
    fn aliases_units_and_values_read_into_their_commands() {
        assert!(matches!(parse("ps --json").unwrap().command, Command::Status(s) if s.json));
        assert!(matches!(parse("down").unwrap().command, Command::Down));
        assert!(matches!(
            parse("upgrade-check").unwrap().command,
            Command::UpgradeCheck
        ));
        let export = parse("export k8s --namespace prod web").unwrap().command;
        assert!(matches!(export, Command::Export(e)
            if e.format == ExportFormat::Kubernetes
                && e.namespace.as_deref() == Some("prod")
                && e.services == ["web"]));
        assert!(
            matches!(parse("scale web 3").unwrap().command, Command::Scale(s)
            if s.service == "web" && s.instances == 3)
        );
    }

    #[test]
    fn mistakes_are_clap_errors_of_the_right_kind() {
        let kind = |line| parse(line).unwrap_err().kind();
        assert_eq!(kind("bogus"), ErrorKind::InvalidSubcommand);
        assert_eq!(kind("start"), ErrorKind::MissingRequiredArgument);
        assert_eq!(kind("scale web 0"), ErrorKind::ValueValidation);
        assert_eq!(kind("up --wait"), ErrorKind::MissingRequiredArgument);
        assert_eq!(kind("status --from nope"), ErrorKind::InvalidValue);
        assert_eq!(
            kind(""),
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        );
    }
}
