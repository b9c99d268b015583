//! `[supervisord]` and the control-interface sections: kept as written in
//! [`ServerSettings`](super::ServerSettings), validated as supervisord validates them.
//! Only `[supervisord] environment` (into every service's env) and the rotation of its own
//! log (into `[tend.log]`) reach the manifest tree.

use super::mapping::Item;
use super::values;
use super::*;

pub(super) const SUPERVISORD_KEYS: &[&str] = &[
    "logfile",
    "logfile_maxbytes",
    "logfile_backups",
    "loglevel",
    "pidfile",
    "umask",
    "nodaemon",
    "silent",
    "minfds",
    "minprocs",
    "nocleanup",
    "childlogdir",
    "user",
    "directory",
    "strip_ansi",
    "environment",
    "identifier",
];

const MAIN_RPC_FACTORY: &str = "supervisor.rpcinterface:make_main_rpcinterface";

impl Cx<'_> {
    /// `[supervisord]`: sets the global environment and returns the `[tend]` table's items.
    pub(super) fn supervisord(&mut self) -> Vec<Item> {
        let Some(section) = self.ini.section("supervisord").cloned() else {
            return Vec::new();
        };
        // supervisord reads these with `here` and its own environment only.
        let names = Names::default();
        let sink = Sink::Errors;
        let key = |k: &str| format!("supervisord.{k}");
        let mut tend = Vec::new();

        let setting = |cx: &mut Self, k: &str| cx.setting(&section, k, &names, sink);
        let mut settings = SupervisordSettings {
            section: self.section_ref(&section),
            logfile: setting(self, "logfile"),
            logfile_maxbytes: setting(self, "logfile_maxbytes"),
            logfile_backups: setting(self, "logfile_backups"),
            loglevel: setting(self, "loglevel"),
            pidfile: setting(self, "pidfile"),
            umask: setting(self, "umask"),
            nodaemon: setting(self, "nodaemon"),
            silent: setting(self, "silent"),
            minfds: setting(self, "minfds"),
            minprocs: setting(self, "minprocs"),
            nocleanup: setting(self, "nocleanup"),
            childlogdir: setting(self, "childlogdir"),
            user: setting(self, "user"),
            directory: setting(self, "directory"),
            strip_ansi: setting(self, "strip_ansi"),
            environment: None,
            identifier: setting(self, "identifier"),
            environment_vars: Vec::new(),
            nodaemon_flag: false,
        };

        let mut log = Vec::new();
        if let Some(size) = self.typed(
            &section,
            "logfile_maxbytes",
            &names,
            sink,
            values::byte_size,
        ) {
            log.push(Item::leaf(
                "max_size",
                size.line,
                size.file,
                values::tend_size(size.value),
            ));
        }
        if let Some(n) = self.typed(&section, "logfile_backups", &names, sink, |t| {
            values::integer_at_least(t, 0)
        }) {
            log.push(Item::leaf(
                "backups",
                n.line,
                n.file,
                Value::Integer(n.value),
            ));
        }
        if let Some(first) = log.first() {
            let (line, file) = (first.line, first.file);
            tend.push(Item::table("log", line, file, log));
        }

        if settings.logfile.is_some() {
            let (file, line) = self.locate_setting(&section, "logfile");
            self.warn(file, line, &key("logfile"),
                "tend writes its own log to state_dir/tend.log (and to stderr in the foreground); this path is not used");
        }
        if let Some(level) = self.typed(&section, "loglevel", &names, sink, values::log_level) {
            self.warn(
                level.file,
                level.line,
                &key("loglevel"),
                "tend has no log level setting; ignored",
            );
        }
        if settings.pidfile.is_some() {
            let (file, line) = self.locate_setting(&section, "pidfile");
            self.warn(
                file,
                line,
                &key("pidfile"),
                "tend keeps its pid in state_dir/tend.pid; this path is not used",
            );
        }
        // Validated here; every program without its own `umask` gets it (import/mod.rs),
        // as supervisord's children inherit supervisord's.
        self.typed(&section, "umask", &names, sink, values::octal);
        if let Some(flag) = self.typed(&section, "nodaemon", &names, sink, values::boolean) {
            settings.nodaemon_flag = flag.value;
        }
        for (k, message) in [
            ("silent", "tend has no `silent` setting; ignored"),
            (
                "nocleanup",
                "tend keeps its log files; `nocleanup` has no meaning there",
            ),
            (
                "strip_ansi",
                "tend writes output as the program wrote it (no ANSI stripping); ignored",
            ),
        ] {
            if let Some(flag) = self.typed(&section, k, &names, sink, values::boolean)
                && flag.value
            {
                self.warn(flag.file, flag.line, &key(k), message);
            }
        }
        // supervisord raises its limits to these; tend does the same with `min_fds` and
        // `min_procs` (written only when set: supervisord's defaults, 1024 and 200, are
        // below what Linux gives anyway).
        for (k, tend_key) in [("minfds", "min_fds"), ("minprocs", "min_procs")] {
            if let Some(n) = self.typed(&section, k, &names, sink, values::integer)
                && n.value >= 1
            {
                tend.push(Item::leaf(
                    tend_key,
                    n.line,
                    n.file,
                    Value::Integer(n.value),
                ));
            }
        }
        for (k, message) in [
            (
                "childlogdir",
                "tend keeps AUTO logs in state_dir/logs; this directory is not used",
            ),
            (
                "user",
                "tend does not switch its own user; run tend as that user (services can set `user`)",
            ),
            (
                "directory",
                "tend does not change its own directory; relative paths resolve from the manifest's directory",
            ),
        ] {
            if let Some(v) = self.text(&section, k, &names, sink) {
                self.warn(v.file, v.line, &key(k), message);
            }
        }

        // The environment may use host_node_name; its entries become ENV_* names for
        // everything read after it (programs, groups, servers).
        if let Some(raw) = self.value(&section, "environment") {
            let env_names = Names {
                host: true,
                ..Names::default()
            };
            if let Some(text) = self.expand(&raw, &key("environment"), &env_names, sink) {
                settings.environment = Some(Setting {
                    raw: raw.text.clone(),
                    value: text.clone(),
                    file: self.files[raw.file].clone(),
                    line: raw.line,
                });
                let vars = self
                    .environment_vars(&raw, &text, &key("environment"), sink)
                    .unwrap_or_default();
                settings.environment_vars = vars
                    .iter()
                    .map(|v| (v.key.clone(), v.value.clone()))
                    .collect();
                self.global_env = vars;
            }
        }
        self.unknown_keys(&section, SUPERVISORD_KEYS, "[supervisord]");
        self.server.supervisord = Some(settings);
        tend
    }

    pub(super) fn locate_setting(&self, section: &Section, key: &str) -> (usize, usize) {
        self.value(section, key)
            .map_or((section.file, section.line), |v| (v.file, v.line))
    }

    /// Parse an expanded `environment=` value into variables with their lines.
    pub(super) fn environment_vars(
        &mut self,
        raw: &ini::Value,
        text: &str,
        key: &str,
        sink: Sink,
    ) -> Option<Vec<EnvVar>> {
        match shlex::key_value_pairs(text) {
            Ok(pairs) => Some(pairs
                .into_iter()
                .map(|pair| {
                    let line = raw.line_at(text, pair.start);
                    if let Some(odd) = &pair.odd_separator {
                        self.report(
                            if sink == Sink::Quiet { Sink::Quiet } else { Sink::Warnings },
                            raw.file,
                            line,
                            key,
                            format!(
                                "`{}` is followed by `{odd}` where a `,` belongs: supervisord skips that token, so `{}` is `{}` and the text after it is lost or misread; quote values that hold other characters",
                                pair.key, pair.key, pair.value
                            ),
                        );
                    }
                    EnvVar {
                        key: pair.key,
                        value: pair.value,
                        file: raw.file,
                        line,
                    }
                })
                .collect()),
            Err(message) => {
                self.report(sink, raw.file, raw.line, key, format!("{message} (write KEY=\"value\",KEY2=\"value\")"));
                None
            }
        }
    }

    /// The control-interface sections.
    pub(super) fn servers(&mut self) {
        let sections = self.ini.sections.clone();
        // ENV_* here include [supervisord] environment, as when supervisord reads them.
        let names = Names {
            supervisord_env: true,
            ..Names::default()
        };
        for section in &sections {
            let name = section.name.as_str();
            if name == "unix_http_server" || name.starts_with("unix_http_server:") {
                self.unix_http_server(section, &names);
            } else if name == "inet_http_server" || name.starts_with("inet_http_server:") {
                self.inet_http_server(section, &names);
            } else if name == "supervisorctl" {
                self.supervisorctl(section);
            } else if let Some(plugin) = name.strip_prefix("rpcinterface:") {
                self.rpcinterface(section, plugin);
            }
        }
    }

    fn credentials(
        &mut self,
        section: &Section,
        names: &Names,
    ) -> (Option<Setting>, Option<Setting>) {
        let username = self.setting(section, "username", names, Sink::Errors);
        let password = self.setting(section, "password", names, Sink::Errors);
        let written = |k: &str| self.value(section, k).is_some();
        if written("username") != written("password") {
            self.error(
                section.file,
                section.line,
                &section.name,
                "username and password go together: set both or neither (supervisord refuses one alone)",
            );
        }
        (username, password)
    }

    fn unix_http_server(&mut self, section: &Section, names: &Names) {
        let at = |k: &str| format!("{}.{k}", section.name);
        let file = self.setting(section, "file", names, Sink::Errors);
        if self.value(section, "file").is_none() {
            self.error(
                section.file,
                section.line,
                &section.name,
                "has no `file` (the socket path)",
            );
        }
        let chmod = self.setting(section, "chmod", names, Sink::Errors);
        let mode = self
            .typed(section, "chmod", names, Sink::Errors, values::octal)
            .map_or(0o700, |g| g.value);
        let chown = self.setting(section, "chown", names, Sink::Errors);
        if let Some(c) = &chown {
            let bad = c.value.is_empty()
                || c.value.split(':').count() > 2
                || c.value.split(':').any(str::is_empty);
            if bad {
                let (file, line) = self.locate_setting(section, "chown");
                self.error(
                    file,
                    line,
                    &at("chown"),
                    format!("`{}` is not `user` or `user:group`", c.value),
                );
            }
        }
        let (username, password) = self.credentials(section, names);
        self.unknown_keys(
            section,
            &["file", "chmod", "chown", "username", "password"],
            "[unix_http_server]",
        );
        if let Some(file) = file {
            let section = self.section_ref(section);
            self.server.unix_http_servers.push(UnixHttpServer {
                section,
                file,
                mode,
                chmod,
                chown,
                username,
                password,
            });
        }
    }

    fn inet_http_server(&mut self, section: &Section, names: &Names) {
        let port = self.setting(section, "port", names, Sink::Errors);
        let address = self.typed(section, "port", names, Sink::Errors, values::inet_address);
        if self.value(section, "port").is_none() {
            self.error(section.file, section.line, &section.name, "has no `port`");
        }
        let (username, password) = self.credentials(section, names);
        self.unknown_keys(
            section,
            &["port", "username", "password"],
            "[inet_http_server]",
        );
        if let (Some(port), Some(address)) = (port, address) {
            let section = self.section_ref(section);
            self.server.inet_http_servers.push(InetHttpServer {
                section,
                port,
                host: address.value.0,
                port_number: address.value.1,
                username,
                password,
            });
        }
    }

    /// Client settings: supervisord never reads them, so problems are only warnings.
    fn supervisorctl(&mut self, section: &Section) {
        let names = Names::default();
        let sink = Sink::Warnings;
        let settings = SupervisorctlSettings {
            section: self.section_ref(section),
            serverurl: self.setting(section, "serverurl", &names, sink),
            username: self.setting(section, "username", &names, sink),
            password: self.setting(section, "password", &names, sink),
            prompt: self.setting(section, "prompt", &names, sink),
            history_file: self.setting(section, "history_file", &names, sink),
        };
        self.unknown_keys(
            section,
            &[
                "serverurl",
                "username",
                "password",
                "prompt",
                "history_file",
            ],
            "[supervisorctl]",
        );
        self.server.supervisorctl = Some(settings);
    }

    fn rpcinterface(&mut self, section: &Section, plugin: &str) {
        let factory = section.get("supervisor.rpcinterface_factory").cloned();
        let standard = plugin == "supervisor"
            && factory
                .as_ref()
                .is_some_and(|f| f.text.trim() == MAIN_RPC_FACTORY);
        if !standard {
            self.warn(
                section.file,
                section.line,
                &section.name,
                "XML-RPC interface plugins are Python code; tend cannot load this one",
            );
            return;
        }
        for (key, value) in &section.entries {
            if key != "supervisor.rpcinterface_factory" {
                self.warn(
                    value.file,
                    value.line,
                    &format!("{}.{key}", section.name),
                    format!(
                        "`{key}` is not a setting of supervisord's own XML-RPC interface; ignored"
                    ),
                );
            }
        }
    }
}
