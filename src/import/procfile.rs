//! Procfiles, as foreman and honcho read them, to tend services.
//!
//! | Procfile | tend |
//! |---|---|
//! | `name: command` (`^([A-Za-z0-9_-]+):\s*(.+)$`) | `[services.name]` with `command` and `shell = true` |
//! | the k-th type (0-based, file order) gets PORT = base + 100·k, instance i gets + i | `port_base = base + 100·k` (tend sets `PORT = port_base + instance`) |
//! | base port: `PORT` in `.env`, else in the environment, else 5000 | the same, fixed at import time |
//! | `.env` beside the Procfile | `env_file = [".env"]`, with a warning for each line the two dialects read differently |
//! | `$PS` (foreman: `web.1`) | `env.PS = "NAME.1"` when a command uses it |
//!
//! Lines that are not blank, not comments and not `name: command` are ignored by both
//! foreman and honcho; here each is a warning with its line. A file with no process at all
//! is an error (foreman refuses it).

use std::path::Path;

use super::tree::{self, Names, Report};
use super::{Diagnostic, Imported, ReadFile, dotenv, read_from_disk};

/// The port foreman and honcho count from when nothing sets `PORT`.
const DEFAULT_BASE_PORT: i64 = 5000;

/// Import a Procfile, reading a `.env` beside it from the disk.
pub fn import(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Imported, Vec<Diagnostic>> {
    import_with(path, text, env, &read_from_disk)
}

/// [`import`] with the file reader given (tests pass one that never touches the disk).
pub fn import_with(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    read: ReadFile<'_>,
) -> Result<Imported, Vec<Diagnostic>> {
    let mut report = Report::new(path);
    let entries = parse(text, &mut report);
    if entries.is_empty() {
        report.error(
            1,
            "Procfile",
            "no `name: command` line: foreman refuses a Procfile without processes",
        );
        return Err(report.errors);
    }

    let env_path = path.parent().unwrap_or(Path::new("")).join(".env");
    let dotenv_text = read(&env_path);
    let base = base_port(dotenv_text.as_deref(), env, &env_path, &mut report);
    let dotenv_port = dotenv_text
        .as_deref()
        .is_some_and(|t| dotenv::tend_values(t).contains_key("PORT"));
    if let Some(text) = &dotenv_text {
        for (line, key, message) in dotenv::differences(text) {
            report.warn_in(&env_path, line, &key, message);
        }
    }

    let mut names = Names::default();
    let mut services = tree::table(1);
    for (k, entry) in entries.iter().enumerate() {
        let (name, renamed) = names.assign(&entry.name);
        if renamed {
            let why = if entries[..k].iter().any(|e| e.name == entry.name) {
                "is a second process of that name (foreman runs both, honcho refuses the file)"
            } else {
                "is not a valid tend name (letters, digits, `_`, `.`, `-`, starting with a letter or digit, not `all`)"
            };
            report.warn(
                entry.line,
                &entry.name,
                format!("`{}` {why}: imported as `{name}`", entry.name),
            );
        }
        let line = entry.line;
        let mut service = tree::table(line);
        for placeholder in tree::placeholders_in(&entry.command) {
            report.warn(
                line,
                &entry.name,
                format!("the command contains `{placeholder}`, which tend replaces per instance"),
            );
        }
        // The shell must see the command exactly as written: `$PORT` passes tend's
        // interpolation untouched, `${PORT:-3000}` needs `$${`.
        tree::set(
            &mut service,
            "command",
            line,
            tree::string(line, tree::tend_literal(&entry.command)),
        );
        tree::set(&mut service, "shell", line, tree::boolean(line, true));
        if dotenv_text.is_some() {
            tree::set(
                &mut service,
                "env_file",
                line,
                tree::array(line, vec![tree::string(line, ".env")]),
            );
        }
        let port = base + 100 * k as i64;
        if (1..=65535).contains(&port) {
            tree::set(&mut service, "port_base", line, tree::integer(line, port));
        } else {
            report.warn(
                line,
                &entry.name,
                format!("foreman would give it PORT={port}, which is not a port; no `port_base`"),
            );
        }
        let mut env = tree::table(line);
        if dotenv_port {
            // tend lets an env file's PORT win over port_base's; foreman sets PORT per
            // process on top of `.env`. An explicit `env` entry wins over both.
            tree::set(&mut env, "PORT", line, tree::string(line, "{port}"));
        }
        if uses_variable(&entry.command, "PS") {
            tree::set(
                &mut env,
                "PS",
                line,
                tree::string(line, format!("{}.1", entry.name)),
            );
        }
        if env.entries().is_some_and(|e| !e.is_empty()) {
            tree::set(&mut service, "env", line, env);
        }
        tree::set(&mut services, &name, line, service);
    }

    let mut root = tree::table(1);
    tree::set(&mut root, "services", 1, services);
    let mut warnings = report.warnings;
    // In file order: the Procfile's notes first, then the `.env`'s.
    warnings.sort_by_key(|a| (a.file != path, a.line));
    Ok(Imported {
        tree: root,
        warnings,
    })
}

/// One `name: command` line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProcfileEntry {
    line: usize,
    name: String,
    command: String,
}

/// The entries, in file order, by foreman's rule; a warning for every other non-blank,
/// non-comment line.
fn parse(text: &str, report: &mut Report) -> Vec<ProcfileEntry> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut entries = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line = i + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let name_len = raw
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(raw.len());
        let name = &raw[..name_len];
        let rest = &raw[name_len..];
        let key = if name.is_empty() { "line" } else { name };
        let Some(after_colon) = rest.strip_prefix(':').filter(|_| !name.is_empty()) else {
            let why = if raw.starts_with(char::is_whitespace) {
                "is indented"
            } else {
                "is not `name: command` (names are letters, digits, `_` and `-`)"
            };
            report.warn(
                line,
                key,
                format!("this line {why}; foreman and honcho ignore it"),
            );
            continue;
        };
        let command = after_colon.trim_start();
        if command.is_empty() {
            report.warn(
                line,
                key,
                "no command after the colon; foreman and honcho ignore this line",
            );
            continue;
        }
        entries.push(ProcfileEntry {
            line,
            name: name.to_string(),
            command: command.to_string(),
        });
    }
    entries
}

/// foreman's base port: `PORT` from `.env`, else from the environment, else 5000.
fn base_port(
    dotenv_text: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    env_path: &Path,
    report: &mut Report,
) -> i64 {
    let from_file = dotenv_text.and_then(|t| {
        dotenv::foreman(t)
            .into_iter()
            .rev()
            .find(|a| a.key == "PORT")
    });
    if let Some(a) = from_file {
        match a.value.trim().parse::<i64>() {
            Ok(port) => return port,
            Err(_) => {
                report.warn_in(
                    env_path,
                    a.line,
                    "PORT",
                    format!(
                        "`{}` is not a number: counting ports from {DEFAULT_BASE_PORT}",
                        a.value
                    ),
                );
                return DEFAULT_BASE_PORT;
            }
        }
    }
    if let Some(value) = env("PORT") {
        return match value.trim().parse::<i64>() {
            Ok(port) => {
                report.warn(
                    1,
                    "PORT",
                    format!(
                        "PORT={port} in the environment is foreman's base port: port_base values count from it, fixed now"
                    ),
                );
                port
            }
            Err(_) => DEFAULT_BASE_PORT,
        };
    }
    DEFAULT_BASE_PORT
}

/// Whether `command` refers to `$NAME` or `${NAME...}`.
fn uses_variable(command: &str, name: &str) -> bool {
    command.match_indices('$').any(|(i, _)| {
        let rest = &command[i + 1..];
        let rest = rest.strip_prefix('{').unwrap_or(rest);
        rest.strip_prefix(name).is_some_and(|after| {
            !after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::PathBuf;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn no_files(_: &Path) -> Option<String> {
        None
    }

    fn run(text: &str) -> Imported {
        import_with(Path::new("app/Procfile"), text, &no_env, &no_files)
            .unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn each_line_is_a_shell_service_with_foremans_ports() {
        let got =
            run("web: bundle exec puma -p $PORT\nworker: sidekiq\n\nrelease: rake db:migrate\n");
        assert_eq!(
            got.tree.to_json(),
            json!({"services": {
                "web": {"command": "bundle exec puma -p $PORT", "shell": true, "port_base": 5000},
                "worker": {"command": "sidekiq", "shell": true, "port_base": 5100},
                "release": {"command": "rake db:migrate", "shell": true, "port_base": 5200},
            }})
        );
        assert!(got.warnings.is_empty(), "{:?}", got.warnings);
        let services = got.tree.get("services").unwrap();
        assert_eq!(services.entry("release").unwrap().line, 4);
        assert_eq!(
            services.get("worker").unwrap().get("command").unwrap().line,
            2
        );
    }

    #[test]
    fn braced_expansions_reach_the_shell_untouched() {
        let got = run("web: rails s -p ${PORT:-3000} -b ${HOST}\n");
        let command = got
            .tree
            .get("services")
            .unwrap()
            .get("web")
            .unwrap()
            .get("command")
            .unwrap();
        assert_eq!(
            command.to_json(),
            json!("rails s -p $${PORT:-3000} -b $${HOST}")
        );
    }

    #[test]
    fn odd_lines_are_reported_not_imported() {
        let text = "# comment\nweb: a\n  indented: b\nbad line\nempty:\nempty2:   \n.dot: c\r\nok:no-space\r\n";
        let got = run(text);
        let services = got.tree.get("services").unwrap();
        let names: Vec<&str> = services
            .entries()
            .unwrap()
            .iter()
            .map(|e| e.key.as_str())
            .collect();
        assert_eq!(names, ["web", "ok"]);
        assert_eq!(
            services
                .get("ok")
                .unwrap()
                .get("command")
                .unwrap()
                .to_json(),
            json!("no-space")
        );
        let lines: Vec<usize> = got.warnings.iter().map(|w| w.line).collect();
        assert_eq!(lines, [3, 4, 5, 6, 7], "{:?}", got.warnings);
        assert!(got.warnings[0].message.contains("indented"));
        assert_eq!(
            got.warnings[0].to_string(),
            "app/Procfile:3: line: this line is indented; foreman and honcho ignore it"
        );
    }

    #[test]
    fn names_tend_refuses_are_renamed_and_duplicates_kept() {
        let got = run("web: a\n_private: b\nweb: c\nall: d\n");
        let services = got.tree.get("services").unwrap();
        let names: Vec<&str> = services
            .entries()
            .unwrap()
            .iter()
            .map(|e| e.key.as_str())
            .collect();
        assert_eq!(names, ["web", "private", "web-2", "all-process"]);
        assert_eq!(got.warnings.len(), 3);
        assert!(got.warnings[1].message.contains("foreman runs both"));
        // The duplicate keeps its own port, as foreman gives it one.
        assert_eq!(
            services
                .get("web-2")
                .unwrap()
                .get("port_base")
                .unwrap()
                .to_json(),
            json!(5200)
        );
    }

    #[test]
    fn an_empty_procfile_is_an_error() {
        let errors =
            import_with(Path::new("Procfile"), "# nothing\n\n", &no_env, &no_files).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].message.contains("without processes"));
    }

    #[test]
    fn dotenv_beside_the_procfile_becomes_env_file_and_sets_the_base_port() {
        let files =
            |p: &Path| (p == Path::new("app/.env")).then(|| "PORT=3000\nexport X=1\n".to_string());
        let got = import_with(
            Path::new("app/Procfile"),
            "web: a\nworker: b $PS\n",
            &no_env,
            &files,
        )
        .unwrap();
        assert_eq!(
            got.tree.to_json(),
            json!({"services": {
                "web": {"command": "a", "shell": true, "env_file": [".env"], "port_base": 3000,
                        "env": {"PORT": "{port}"}},
                "worker": {"command": "b $PS", "shell": true, "env_file": [".env"], "port_base": 3100,
                           "env": {"PORT": "{port}", "PS": "worker.1"}},
            }})
        );
        assert_eq!(got.warnings.len(), 1, "{:?}", got.warnings);
        assert_eq!(got.warnings[0].file, PathBuf::from("app/.env"));
        assert_eq!(got.warnings[0].line, 2);
    }

    #[test]
    fn port_from_the_environment_is_the_base() {
        let env = |k: &str| (k == "PORT").then(|| "8000".to_string());
        let got = import_with(Path::new("Procfile"), "web: a\n", &env, &no_files).unwrap();
        let web = got.tree.get("services").unwrap().get("web").unwrap();
        assert_eq!(web.get("port_base").unwrap().to_json(), json!(8000));
        assert_eq!(got.warnings.len(), 1);
    }

    #[test]
    fn placeholders_in_commands_are_reported() {
        let got = run("web: echo {port}\n");
        assert_eq!(got.warnings.len(), 1);
        assert!(got.warnings[0].message.contains("{port}"));
    }

    #[test]
    fn uses_variable_matches_whole_names() {
        assert!(uses_variable("echo $PS", "PS"));
        assert!(uses_variable("echo ${PS}", "PS"));
        assert!(!uses_variable("echo $PSX $XPS", "PS"));
    }
}
