//! The importer end to end: INI files written to temporary directories, imported, and
//! the tree, warnings and errors checked (values and lines).

use std::path::{Path, PathBuf};

use serde_json::json;

use super::*;

fn env(name: &str) -> Option<String> {
    match name {
        "HOME" => Some("/home/me".into()),
        "NAME" => Some("world".into()),
        "PORT" => Some("8080".into()),
        "DIR" => Some("/srv/app".into()),
        "PCT" => Some("100%".into()),
        "SPACED" => Some("a b".into()),
        _ => None,
    }
}

const HOST: &str = "testhost";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// Import `text` as `supervisord.conf` in a fresh directory.
fn run(text: &str) -> (tempfile::TempDir, Result<Imported, Vec<Diagnostic>>) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "supervisord.conf", text);
    let result = import(&path, &env, HOST);
    (dir, result)
}

fn ok(text: &str) -> Imported {
    let (_dir, result) = run(text);
    result.unwrap_or_else(|errors| {
        panic!(
            "import failed:\n{}",
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

fn err(text: &str) -> Vec<Diagnostic> {
    let (_dir, result) = run(text);
    match result {
        Ok(imported) => panic!("expected errors, got {:#}", imported.tree.to_json()),
        Err(errors) => errors,
    }
}

fn service(imported: &Imported, name: &str) -> serde_json::Value {
    imported.tree.to_json()["services"][name].clone()
}

fn node<'a>(imported: &'a Imported, path: &[&str]) -> &'a Node {
    let mut node = &imported.tree;
    for key in path {
        node = node
            .get(key)
            .unwrap_or_else(|| panic!("no `{key}` in {path:?}: {:#}", imported.tree.to_json()));
    }
    node
}

fn line_of(imported: &Imported, path: &[&str]) -> usize {
    let segments: Vec<Segment> = path.iter().map(|k| Segment::Key(k.to_string())).collect();
    imported.tree.line_of(&segments)
}

/// The warnings about `key` (section.key), as (line, message).
fn warnings_for(imported: &Imported, key: &str) -> Vec<(usize, String)> {
    imported
        .warnings
        .iter()
        .filter(|w| w.key == key)
        .map(|w| (w.line, w.message.clone()))
        .collect()
}

fn has_warning(imported: &Imported, key: &str, line: usize, needle: &str) -> bool {
    warnings_for(imported, key)
        .iter()
        .any(|(l, m)| *l == line && m.contains(needle))
}

fn error_at<'a>(errors: &'a [Diagnostic], key: &str) -> &'a Diagnostic {
    errors
        .iter()
        .find(|e| e.key == key)
        .unwrap_or_else(|| panic!("no error for {key}: {errors:#?}"))
}

const SUPERVISORD: &str = "[supervisord]\nnodaemon=true\n";

// ---------------------------------------------------------------------------------------
// The basic shape and lines
// ---------------------------------------------------------------------------------------

#[test]
fn a_minimal_program() {
    let imported = ok("[supervisord]\n\n[program:web]\ncommand=/usr/bin/web --port 80\n");
    assert_eq!(
        imported.tree.to_json(),
        json!({
            "tend": {},
            "services": {
                "web": {
                    "command": "/usr/bin/web --port 80",
                    "restart": "on-failure",
                    "max_restarts": 3,
                    "restart_limit": "unstable",
                    "backoff": {"initial": "1s", "max": "3s", "growth": "linear", "jitter": 0.0},
                }
            }
        })
    );
    assert!(imported.warnings.is_empty(), "{:?}", imported.warnings);
    assert_eq!(line_of(&imported, &["services", "web"]), 3);
    assert_eq!(line_of(&imported, &["services", "web", "command"]), 4);
    // Values from defaults point at the section header.
    assert_eq!(line_of(&imported, &["services", "web", "restart"]), 3);
    assert_eq!(imported.files.len(), 1);
    assert!(imported.files[0].ends_with("supervisord.conf"));
    assert_eq!(
        imported.processes,
        [ProcessName {
            group: "web".into(),
            name: "web".into(),
            service: "web".into(),
            instance: None
        }]
    );
}

#[test]
fn every_program_key_maps() {
    let imported = ok(r#"[supervisord]
[program:api]
command=/srv/api serve
directory=/srv
environment=A="1",B='two words',C=x
user=www-data
umask=022
priority=10
autostart=false
autorestart=true
exitcodes=0,2
startsecs=5
startretries=2
stopsignal=INT
stopwaitsecs=30
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile=/var/log/api.log
stdout_logfile_maxbytes=1MB
stdout_logfile_backups=3
stdout_syslog=true
depends_on=db, cache
[program:db]
command=postgres
[program:cache]
command=redis-server
"#);
    assert_eq!(
        service(&imported, "api"),
        json!({
            "command": "/srv/api serve",
            "cwd": "/srv",
            "env": {"A": "1", "B": "two words", "C": "x"},
            "user": "www-data",
            "umask": "022",
            "autostart": false,
            "priority": 10,
            "restart": "always",
            "exit_codes": [0, 2],
            "min_uptime": "5s",
            "max_restarts": 2,
            // waits 1 + 2, two runs under 5s, and a second
            "restart_limit": "unstable",
            "backoff": {"initial": "1s", "max": "2s", "growth": "linear", "jitter": 0.0},
            "stop_signal": "INT",
            "stop_timeout": "30s",
            "depends_on": ["db", "cache"],
            "logs": {
                "merge": true,
                "stdout": "/var/log/api.log",
                "max_size": "1MiB",
                "backups": 3,
                "syslog": true,
            },
        })
    );
    // A priority anywhere gives every service one (supervisord's default is 999).
    assert_eq!(service(&imported, "db")["priority"], json!(999));
    assert!(imported.warnings.is_empty(), "{:?}", imported.warnings);
    for (key, line) in [
        ("command", 3),
        ("cwd", 4),
        ("env", 5),
        ("user", 6),
        ("umask", 7),
        ("priority", 8),
        ("autostart", 9),
        ("restart", 10),
        ("exit_codes", 11),
        ("min_uptime", 12),
        ("max_restarts", 13),
        ("stop_signal", 14),
        ("stop_timeout", 15),
        ("depends_on", 23),
        ("logs", 18),
    ] {
        assert_eq!(line_of(&imported, &["services", "api", key]), line, "{key}");
    }
    assert_eq!(
        line_of(&imported, &["services", "api", "logs", "stdout"]),
        19
    );
    assert_eq!(
        line_of(&imported, &["services", "api", "logs", "max_size"]),
        20
    );
    assert_eq!(line_of(&imported, &["services", "api", "env", "B"]), 5);
}

#[test]
fn autorestart_values_and_exit_codes() {
    let imported = ok(
        "[program:a]\ncommand=a\nautorestart=unexpected\nexitcodes=1\n[program:b]\ncommand=b\nautorestart=false\n[program:c]\ncommand=c\nautorestart=TRUE\n",
    );
    assert_eq!(service(&imported, "a")["restart"], json!("on-failure"));
    assert_eq!(service(&imported, "a")["exit_codes"], json!([1]));
    // autorestart=false still retries failed starts, as supervisord does.
    let b = service(&imported, "b");
    assert_eq!(b["restart"], json!("never"));
    assert_eq!(b["restart_limit"], json!("unstable"));
    assert_eq!(b["max_restarts"], json!(3));
    assert_eq!(service(&imported, "c")["restart"], json!("always"));
}

#[test]
fn startretries_map_to_supervisords_own_rules() {
    let imported = ok(
        "[program:a]\ncommand=a\nstartsecs=0\nautorestart=true\n[program:b]\ncommand=b\nstartretries=0\n[program:c]\ncommand=c\nstartretries=1000000\nstartsecs=2\n",
    );
    let a = service(&imported, "a");
    // startsecs=0: every run is a good start, so supervisord never gives up; with
    // restart_limit = "unstable" neither does tend.
    assert_eq!(a["min_uptime"], json!("0s"));
    assert_eq!(a["restart_limit"], json!("unstable"));
    assert_eq!(a["backoff"]["growth"], json!("linear"));
    let b = service(&imported, "b");
    assert_eq!(b["max_restarts"], json!(0));
    assert_eq!(b["backoff"]["max"], json!("1s"));
    let c = service(&imported, "c");
    assert_eq!(c["max_restarts"], json!(1000000));
    assert_eq!(c["backoff"]["max"], json!("1000000s"));
    assert!(
        imported
            .warnings
            .iter()
            .all(|w| !w.key.ends_with("startretries"))
    );
}

// ---------------------------------------------------------------------------------------
// The INI dialect, through the importer
// ---------------------------------------------------------------------------------------

#[test]
fn inline_comments_need_whitespace() {
    let imported = ok(
        "[program:a]\ncommand=bash -c 'echo a;echo b' ; a comment\nenvironment=URL=\"http://h/#x\"  # note\n",
    );
    assert_eq!(
        service(&imported, "a")["command"],
        json!("bash -c 'echo a;echo b'")
    );
    assert_eq!(service(&imported, "a")["env"]["URL"], json!("http://h/#x"));
    // supervisord's documented trap: ` ;` cuts a value even inside quotes.
    let errors = err("[program:a]\ncommand=bash -c 'a ; b'\n");
    assert!(
        error_at(&errors, "program:a.command")
            .message
            .contains("closing")
    );
}

#[test]
fn multi_line_values_keep_their_lines() {
    let imported = ok(
        "[program:a]\ncommand=/bin/a\n  --flag\n  --other\nenvironment=\n  A=1,\n  ; a comment line\n  B=2\n",
    );
    assert_eq!(
        service(&imported, "a")["command"],
        json!("/bin/a\n--flag\n--other")
    );
    assert_eq!(line_of(&imported, &["services", "a", "env", "A"]), 6);
    assert_eq!(line_of(&imported, &["services", "a", "env", "B"]), 8);
}

#[test]
fn section_names_are_case_sensitive_keys_are_not() {
    let imported = ok("[Program:a]\ncommand=x\n[program:b]\nCOMMAND=y\nAutoStart=false\n");
    assert!(service(&imported, "a").is_null());
    assert_eq!(service(&imported, "b")["command"], json!("y"));
    assert_eq!(service(&imported, "b")["autostart"], json!(false));
    assert!(has_warning(&imported, "Program:a", 1, "case-sensitive"));
}

#[test]
fn duplicate_sections_and_keys_merge_later_wins() {
    let imported = ok("[program:a]\ncommand=x\nuser=me\n[program:a]\ncommand=y\n");
    assert_eq!(service(&imported, "a")["command"], json!("y"));
    assert_eq!(service(&imported, "a")["user"], json!("me"));
    assert_eq!(line_of(&imported, &["services", "a", "command"]), 5);
    assert_eq!(line_of(&imported, &["services", "a"]), 1);
}

#[test]
fn default_section_values_reach_programs() {
    let imported = ok("[DEFAULT]\nautostart=false\nbogus=1\n[program:a]\ncommand=x\n");
    assert_eq!(service(&imported, "a")["autostart"], json!(false));
    assert_eq!(line_of(&imported, &["services", "a", "autostart"]), 2);
    assert!(has_warning(&imported, "DEFAULT.bogus", 3, "not an option"));
}

#[test]
fn syntax_errors_are_all_reported_with_lines() {
    let errors = err("[program:a]\ncommand=x\nthis is not a key\n=nokey\n[program:b]\ncommand=y\n");
    let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [3, 4]);
    let errors = err("command=x\n[program:a]\n");
    assert_eq!(errors[0].line, 1);
    assert!(errors[0].message.contains("before any [section]"));
}

// ---------------------------------------------------------------------------------------
// Expansions
// ---------------------------------------------------------------------------------------

#[test]
fn every_expansion_name() {
    let imported = ok(r#"[supervisord]
environment=GLOBAL="g-%(ENV_NAME)s"
[group:grp]
programs=w
[program:w]
command=/bin/w %(program_name)s %(group_name)s %(host_node_name)s %(numprocs)d %(ENV_GLOBAL)s %(ENV_LOCAL)s 100%%
environment=LOCAL="%(ENV_HOME)s/%(program_name)s"
directory=%(here)s/app
stdout_logfile=%(ENV_DIR)s/%(program_name)s.log
"#);
    let w = service(&imported, "w");
    assert_eq!(
        w["command"],
        json!("/bin/w w grp testhost 1 g-world /home/me/w 100%")
    );
    let here = imported.files[0]
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(w["cwd"], json!(format!("{here}/app")));
    assert_eq!(w["logs"]["stdout"], json!("/srv/app/w.log"));
    assert_eq!(
        w["env"],
        json!({"GLOBAL": "g-world", "LOCAL": "/home/me/w"})
    );
}

#[test]
fn process_num_formats() {
    let imported = ok(
        "[program:w]\ncommand=/bin/w --id %(process_num)d\nprocess_name=%(program_name)s_%(process_num)03d\nnumprocs=3\n",
    );
    let w = service(&imported, "w");
    assert_eq!(w["command"], json!("/bin/w --id {instance}"));
    assert_eq!(w["instances"], json!(3));
    let names: Vec<String> = imported.processes.iter().map(|p| p.namespec()).collect();
    assert_eq!(names, ["w:w_000", "w:w_001", "w:w_002"]);
    let tend: Vec<String> = imported.processes.iter().map(|p| p.tend_name()).collect();
    assert_eq!(tend, ["w:0", "w:1", "w:2"]);
    assert!(has_warning(
        &imported,
        "program:w.process_name",
        3,
        "`w:0` … `w:2`"
    ));
}

#[test]
fn unknown_names_and_bad_formats_are_errors() {
    let errors = err(
        "[program:a]\ncommand=%(ENV_MISSING)s\n[program:b]\ncommand=%(nope)s\n[program:c]\ncommand=50%\n[program:d]\ncommand=x\npriority=%(process_num)d\n[program:e]\ncommand=%(ENV_NAME)d\n",
    );
    assert!(
        error_at(&errors, "program:a.command")
            .message
            .contains("`MISSING` is not set")
    );
    let b = error_at(&errors, "program:b.command");
    assert!(b.message.contains("program_name"), "{}", b.message);
    assert_eq!(b.line, 4);
    assert!(
        error_at(&errors, "program:c.command")
            .message
            .contains("incomplete")
    );
    // process_num is not available to keys supervisord reads before its per-process loop.
    assert!(
        error_at(&errors, "program:d.priority")
            .message
            .contains("cannot be expanded")
    );
    assert!(
        error_at(&errors, "program:e.command")
            .message
            .contains("needs a number")
    );
}

#[test]
fn expanded_values_are_not_expanded_again_except_log_files() {
    // An environment value with a `%` is inserted as it is...
    let imported = ok("[program:a]\ncommand=/bin/a %(ENV_PCT)s\n");
    assert_eq!(service(&imported, "a")["command"], json!("/bin/a 100%"));
    // ...but log file names go through the expansion twice, as in supervisord.
    let errors = err("[program:a]\ncommand=a\nstdout_logfile=/var/log/100%%.log\n");
    assert!(
        error_at(&errors, "program:a.stdout_logfile")
            .message
            .contains("twice")
    );
    let imported = ok("[program:a]\ncommand=a\nstdout_logfile=/var/log/100%%%%.log\n");
    assert_eq!(
        service(&imported, "a")["logs"]["stdout"],
        json!("/var/log/100%.log")
    );
}

#[test]
fn supervisord_section_keys_do_not_see_host_node_name() {
    let errors = err("[supervisord]\nlogfile=/var/log/%(host_node_name)s.log\n");
    assert!(
        error_at(&errors, "supervisord.logfile")
            .message
            .contains("cannot be expanded")
    );
    // ...while its environment does.
    let imported = ok("[supervisord]\nenvironment=H=%(host_node_name)s\n[program:a]\ncommand=a\n");
    assert_eq!(service(&imported, "a")["env"]["H"], json!("testhost"));
}

#[test]
fn tend_interpolation_is_escaped() {
    let imported = ok(
        "[program:a]\ncommand=sh -c 'echo ${HOME} $PATH'\nenvironment=X=\"${Y}\"\ndirectory=/srv/${Z}\n",
    );
    let a = service(&imported, "a");
    assert_eq!(a["command"], json!("sh -c 'echo $${HOME} $PATH'"));
    assert_eq!(a["env"]["X"], json!("$${Y}"));
    assert_eq!(a["cwd"], json!("/srv/$${Z}"));
}

// ---------------------------------------------------------------------------------------
// environment=
// ---------------------------------------------------------------------------------------

#[test]
fn environment_quoting() {
    let imported = ok(r#"[supervisord]
environment=SHARED="s",OVER="global"
[program:a]
command=a
environment=OVER="local",PATH="/usr/bin:/bin",Q="it's",E="",COMMA="a,b",ESC="x\"
"#);
    assert_eq!(
        service(&imported, "a")["env"],
        json!({"SHARED": "s", "OVER": "local", "PATH": "/usr/bin:/bin", "Q": "it's", "E": "", "COMMA": "a,b", "ESC": "x\\"})
    );
    assert_eq!(line_of(&imported, &["services", "a", "env", "SHARED"]), 2);
    assert_eq!(line_of(&imported, &["services", "a", "env", "OVER"]), 5);
    assert_eq!(
        imported
            .server
            .supervisord
            .as_ref()
            .unwrap()
            .environment_vars
            .len(),
        2
    );
}

#[test]
fn environment_surprises() {
    // An unquoted `?` cuts the value: supervisord reads A=http://x and y=1.
    let imported = ok("[program:a]\ncommand=a\nenvironment=A=http://x?y=1\n");
    assert_eq!(
        service(&imported, "a")["env"],
        json!({"A": "http://x", "y": "1"})
    );
    assert!(has_warning(
        &imported,
        "program:a.environment",
        3,
        "quote values"
    ));
    let errors = err("[program:a]\ncommand=a\nenvironment=A=1,B\n");
    assert!(
        error_at(&errors, "program:a.environment")
            .message
            .contains("KEY=value")
    );
    let errors = err("[program:a]\ncommand=a\nenvironment=A=\"1\n");
    assert!(
        error_at(&errors, "program:a.environment")
            .message
            .contains("closing")
    );
}

/// supervisord reads `environment=` with Python's shlex in non-POSIX mode and strips
/// quote characters from both ends of each value; every expected value here is what
/// supervisord 4.3.0 gives the child (or refuses).
#[test]
fn environment_is_read_as_supervisord_reads_it() {
    let imported = ok(r#"[program:a]
command=a
environment=TWO="it's \\",ONE="it's \",MIXED=a'b"c,STRIP="'x'",HASH="x#y",
  BARE=/usr/bin:/bin,EMPTY=''
"#);
    assert_eq!(
        service(&imported, "a")["env"],
        json!({"TWO": "it's \\\\", "ONE": "it's \\", "MIXED": "a'b\"c", "STRIP": "x", "HASH": "x#y", "BARE": "/usr/bin:/bin", "EMPTY": ""})
    );
    assert_eq!(line_of(&imported, &["services", "a", "env", "BARE"]), 4);
    // `command=` is still split by `shlex.split`, in POSIX mode: quotes are removed and
    // escapes work (`"\$x"` keeps its backslash there, unlike in sh, hence `args`).
    let imported = ok(r#"[program:a]
command=/bin/echo "it's \"x\"" a'b' "\$x"
"#);
    assert_eq!(
        service(&imported, "a")["args"],
        json!(["/bin/echo", "it's \"x\"", "ab", "\\$x"])
    );

    // Refused by supervisord ("Unexpected end of key/value pairs"): a quoted token ends
    // at its closing quote, and `é` is no word character there. The error says where.
    for (value, odd) in [(r#"A="a"'b',B=1"#, "'b'"), ("A=aé,B=1", "é")] {
        let errors = err(&format!(
            "[supervisord]\n[program:a]\ncommand=a\nenvironment={value}\n"
        ));
        let error = error_at(&errors, "program:a.environment");
        assert_eq!(error.line, 4, "{value}");
        assert!(error.file.ends_with("supervisord.conf"), "{value}");
        assert!(
            error.message.contains("Unexpected end of key/value pairs"),
            "{value}: {}",
            error.message
        );
        assert!(
            error
                .message
                .contains(&format!("`{odd}` after the value of `A`")),
            "{value}: {}",
            error.message
        );
    }
    // No escapes: `"x\"` is a whole token, and `y"` after it is skipped as the separator.
    let imported = ok("[program:a]\ncommand=a\nenvironment=A=\"x\\\"y\"\n");
    assert_eq!(service(&imported, "a")["env"], json!({"A": "x\\"}));
    assert!(has_warning(
        &imported,
        "program:a.environment",
        3,
        "`y\"` where a `,` belongs"
    ));
    let errors = err("[program:a]\ncommand=a\nenvironment=A=1,B=\"x\n");
    let error = error_at(&errors, "program:a.environment");
    assert!(error.message.contains("no closing quotation"));
    assert_eq!(error.line, 3);
}

// ---------------------------------------------------------------------------------------
// command=
// ---------------------------------------------------------------------------------------

#[test]
fn commands_split_like_python_shlex() {
    // Same argv under tend's splitter: kept as `command`.
    let imported = ok("[program:a]\ncommand=/bin/sh -c \"echo 'hi there'\"\n");
    assert_eq!(
        service(&imported, "a")["command"],
        json!("/bin/sh -c \"echo 'hi there'\"")
    );
    // ` #z` is an INI comment, so a `#` can never start a word of the command.
    let imported = ok("[program:b]\ncommand=/bin/echo x \\#y #z\n");
    assert_eq!(
        service(&imported, "b")["command"],
        json!("/bin/echo x \\#y")
    );
    // A backslash in double quotes before another character than `"` or `\` is kept by
    // supervisord (sh drops it before `$`): written as `args`.
    let imported = ok("[program:c]\ncommand=/bin/echo \"a\\$b\"\n");
    assert_eq!(
        service(&imported, "c")["args"],
        json!(["/bin/echo", "a\\$b"])
    );
    let errors = err("[program:d]\ncommand=\n[program:e]\nautostart=true\n");
    assert!(
        error_at(&errors, "program:d.command")
            .message
            .contains("empty")
    );
    assert!(
        error_at(&errors, "program:e")
            .message
            .contains("no `command`")
    );
}

// ---------------------------------------------------------------------------------------
// numprocs, process_name
// ---------------------------------------------------------------------------------------

#[test]
fn identical_processes_become_instances() {
    let imported = ok(
        "[program:worker]\ncommand=/bin/worker\nprocess_name=%(program_name)s_%(process_num)02d\nnumprocs=4\n",
    );
    let w = service(&imported, "worker");
    assert_eq!(w["command"], json!("/bin/worker"));
    assert_eq!(w["instances"], json!(4));
    assert_eq!(line_of(&imported, &["services", "worker", "instances"]), 4);
    assert_eq!(imported.processes[3].name, "worker_03");
    assert_eq!(imported.processes[3].instance, Some(3));
}

#[test]
fn process_num_everywhere_tend_expands_becomes_instance() {
    let imported = ok(
        "[program:w]\ncommand=/bin/w --port 80%(process_num)d\nprocess_name=w%(process_num)d\nnumprocs=2\nenvironment=SLOT=\"%(process_num)d\"\ndirectory=/srv/%(process_num)d\n",
    );
    let w = service(&imported, "w");
    assert_eq!(w["command"], json!("/bin/w --port 80{instance}"));
    assert_eq!(w["env"]["SLOT"], json!("{instance}"));
    assert_eq!(w["cwd"], json!("/srv/{instance}"));
    assert_eq!(w["instances"], json!(2));
}

/// `${` is escaped as `$${` for tend; the template must be checked against the processes
/// as tend reads it back, or `$%(process_num)d` (`$${instance}`, `$0` for instance 0)
/// looks like `$$0` and the program is split.
#[test]
fn dollar_before_process_num_becomes_instance() {
    let imported = ok(
        "[program:p]\ncommand=/bin/echo $%(process_num)d\nnumprocs=2\nprocess_name=%(program_name)s_%(process_num)d\nenvironment=N=\"${%(process_num)d}\",M=\"$${x}\"\ndirectory=/srv/$%(process_num)d\n",
    );
    let services = imported.tree.to_json()["services"].clone();
    assert_eq!(
        services.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["p"]
    );
    let p = &services["p"];
    assert_eq!(p["instances"], json!(2));
    assert_eq!(p["command"], json!("/bin/echo $${instance}"));
    assert_eq!(p["env"]["N"], json!("$${{instance}}"));
    assert_eq!(p["env"]["M"], json!("$$${x}"));
    assert_eq!(p["cwd"], json!("/srv/$${instance}"));
    assert!(
        imported
            .warnings
            .iter()
            .all(|w| !w.key.ends_with("numprocs")),
        "{:?}",
        imported.warnings
    );
}

#[test]
fn padded_process_num_is_split_into_services() {
    let imported = ok(
        "[program:w]\ncommand=/bin/w --name w%(process_num)02d\nprocess_name=%(program_name)s_%(process_num)02d\nnumprocs=2\n",
    );
    let services = imported.tree.to_json()["services"].clone();
    assert_eq!(
        services,
        json!({
            "w_00": {"command": "/bin/w --name w00", "restart": "on-failure", "max_restarts": 3, "restart_limit": "unstable",
                     "backoff": {"initial": "1s", "max": "3s", "growth": "linear", "jitter": 0.0}, "groups": ["w"]},
            "w_01": {"command": "/bin/w --name w01", "restart": "on-failure", "max_restarts": 3, "restart_limit": "unstable",
                     "backoff": {"initial": "1s", "max": "3s", "growth": "linear", "jitter": 0.0}, "groups": ["w"]},
        })
    );
    assert!(has_warning(
        &imported,
        "program:w.numprocs",
        4,
        "imported as 2 services w_00, w_01"
    ));
    assert_eq!(imported.processes[1].service, "w_01");
    assert_eq!(imported.processes[1].instance, None);
}

#[test]
fn numprocs_start_only_in_names_is_fine_elsewhere_splits() {
    let imported = ok(
        "[program:w]\ncommand=/bin/w\nprocess_name=w%(process_num)d\nnumprocs=2\nnumprocs_start=1\n",
    );
    assert_eq!(service(&imported, "w")["instances"], json!(2));
    assert!(has_warning(
        &imported,
        "program:w.numprocs_start",
        5,
        "from 0"
    ));
    assert_eq!(imported.processes[0].name, "w1");

    let imported = ok(
        "[program:w]\ncommand=/bin/w %(process_num)d\nprocess_name=w%(process_num)d\nnumprocs=2\nnumprocs_start=1\n",
    );
    assert_eq!(service(&imported, "w1")["command"], json!("/bin/w 1"));
    assert_eq!(service(&imported, "w2")["command"], json!("/bin/w 2"));
}

#[test]
fn per_process_log_files_split() {
    let imported = ok(
        "[program:w]\ncommand=/bin/w\nprocess_name=w%(process_num)d\nnumprocs=2\nstdout_logfile=/var/log/w%(process_num)d.log\n",
    );
    assert_eq!(
        service(&imported, "w0")["logs"]["stdout"],
        json!("/var/log/w0.log")
    );
    assert_eq!(
        service(&imported, "w1")["logs"]["stdout"],
        json!("/var/log/w1.log")
    );
    assert!(has_warning(&imported, "program:w.numprocs", 4, "`logs`"));
}

/// tend writes log file names as they are (no `{instance}` there), so a literal
/// `{instance}` in one is the same file for every process, as under supervisord: it does
/// not stop the rest from becoming `{instance}`.
#[test]
fn literal_instance_in_a_shared_log_file_is_kept() {
    let imported = ok(
        "[program:p]\ncommand=/bin/true\nnumprocs=2\nprocess_name=%(program_name)s_%(process_num)d\nenvironment=N='%(process_num)d'\nstdout_logfile=/dir/{instance}.log\nstderr_logfile=/dir/%(program_name)s-{instance}.err\n",
    );
    let services = imported.tree.to_json()["services"].clone();
    assert_eq!(
        services.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["p"]
    );
    let p = &services["p"];
    assert_eq!(p["instances"], json!(2));
    assert_eq!(p["env"]["N"], json!("{instance}"));
    assert_eq!(p["logs"]["stdout"], json!("/dir/{instance}.log"));
    assert_eq!(p["logs"]["stderr"], json!("/dir/p-{instance}.err"));
    assert_eq!(imported.processes[1].instance, Some(1));
}

#[test]
fn numprocs_errors() {
    let errors = err(
        "[program:a]\ncommand=a\nnumprocs=0\n[program:b]\ncommand=b\nnumprocs=2\n[program:c]\ncommand=c\nnumprocs=two\n",
    );
    assert_eq!(error_at(&errors, "program:a.numprocs").line, 3);
    let b = error_at(&errors, "program:b.process_name");
    assert!(b.message.contains("%(process_num)"));
    assert_eq!(b.line, 6);
    assert!(
        error_at(&errors, "program:c.numprocs")
            .message
            .contains("not an integer")
    );
}

#[test]
fn process_name_for_one_process() {
    let imported = ok("[program:a]\ncommand=a\nprocess_name=alpha\n");
    assert!(has_warning(
        &imported,
        "program:a.process_name",
        3,
        "`alpha`"
    ));
    assert_eq!(imported.processes[0].namespec(), "a:alpha");
    let errors = err("[program:a]\ncommand=a\nprocess_name=has space\n");
    assert!(
        error_at(&errors, "program:a.process_name")
            .message
            .contains("space")
            || error_at(&errors, "program:a.process_name")
                .message
                .contains("` `")
    );
}

// ---------------------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------------------

#[test]
fn log_destinations() {
    let imported = ok(r#"[program:a]
command=a
stdout_logfile=/dev/stdout
stdout_logfile_maxbytes=0
stderr_logfile=/dev/fd/2
[program:b]
command=b
stdout_logfile=NONE
stderr_logfile=AUTO
[program:c]
command=c
stdout_logfile=/dev/stderr
stderr_logfile=/dev/null
[program:d]
command=d
stdout_logfile=/var/log/d.log
stderr_logfile=/var/log/d.log
[program:e]
command=e
stdout_logfile=syslog
"#);
    assert_eq!(
        service(&imported, "a")["logs"],
        json!({"stdout": "inherit", "stderr": "inherit"})
    );
    assert_eq!(service(&imported, "b")["logs"], json!({"stdout": "null"}));
    assert_eq!(
        service(&imported, "c")["logs"],
        json!({"stdout": "inherit", "stderr": "null"})
    );
    assert!(has_warning(
        &imported,
        "program:c.stdout_logfile",
        12,
        "tend's own stdout"
    ));
    assert_eq!(
        service(&imported, "d")["logs"],
        json!({"merge": true, "stdout": "/var/log/d.log"})
    );
    assert_eq!(
        service(&imported, "e")["logs"],
        json!({"stdout": "null", "syslog": true})
    );
    assert!(has_warning(
        &imported,
        "program:e.stdout_logfile",
        20,
        "deprecated"
    ));
}

#[test]
fn rotation_settings_are_one_for_both_streams() {
    let imported = ok(
        "[program:a]\ncommand=a\nstdout_logfile=/l/out\nstderr_logfile=/l/err\nstdout_logfile_maxbytes=10MB\nstderr_logfile_maxbytes=20MB\nstderr_logfile_backups=2\n",
    );
    let logs = &service(&imported, "a")["logs"];
    assert_eq!(logs["max_size"], json!("10MiB"));
    assert_eq!(logs["backups"], json!(2));
    assert!(has_warning(
        &imported,
        "program:a.stderr_logfile_maxbytes",
        6,
        "one `logs.max_size`"
    ));
    // stdout's backups were supervisord's default 10, tend uses stderr's 2 for both.
    assert!(has_warning(
        &imported,
        "program:a.stdout_logfile_backups",
        1,
        "gets stderr's 2"
    ));
    // A stream that writes no file does not count.
    let imported = ok(
        "[program:b]\ncommand=b\nstdout_logfile=/dev/stdout\nstdout_logfile_maxbytes=0\nstderr_logfile_maxbytes=5MB\n",
    );
    assert_eq!(service(&imported, "b")["logs"]["max_size"], json!("5MiB"));
    assert!(warnings_for(&imported, "program:b.stdout_logfile_maxbytes").is_empty());
}

#[test]
fn redirected_stderr_file_is_ignored_with_a_warning() {
    let imported =
        ok("[program:a]\ncommand=a\nredirect_stderr=true\nstderr_logfile=/var/log/err.log\n");
    assert_eq!(service(&imported, "a")["logs"], json!({"merge": true}));
    assert!(has_warning(
        &imported,
        "program:a.stderr_logfile",
        4,
        "redirect_stderr"
    ));
}

#[test]
fn log_paths_relative_and_home() {
    let imported =
        ok("[program:a]\ncommand=a\nstdout_logfile=~/logs/a.log\nstderr_logfile=logs/a.err\n");
    assert_eq!(
        service(&imported, "a")["logs"]["stdout"],
        json!("/home/me/logs/a.log")
    );
    assert!(has_warning(
        &imported,
        "program:a.stderr_logfile",
        4,
        "relative"
    ));
}

// ---------------------------------------------------------------------------------------
// Signals, groups, users, and the keys tend cannot honour
// ---------------------------------------------------------------------------------------

#[test]
fn signals() {
    let imported =
        ok("[program:a]\ncommand=a\nstopsignal=sigquit\n[program:b]\ncommand=b\nstopsignal=9\n");
    assert_eq!(service(&imported, "a")["stop_signal"], json!("QUIT"));
    assert_eq!(service(&imported, "b")["stop_signal"], json!("KILL"));
    let errors =
        err("[program:a]\ncommand=a\nstopsignal=BOGUS\n[program:b]\ncommand=b\nstopsignal=SYS\n");
    assert_eq!(error_at(&errors, "program:a.stopsignal").line, 3);
    assert!(
        error_at(&errors, "program:b.stopsignal")
            .message
            .contains("tend can only send")
    );
}

#[test]
fn invalid_values_are_errors_with_lines() {
    let errors = err(
        "[program:a]\ncommand=a\nautostart=maybe\nautorestart=sometimes\nstartsecs=-1\nexitcodes=0,300\numask=9\nstopasgroup=true\nkillasgroup=false\nstdout_logfile_maxbytes=lots\nstdout_logfile_backups=-2\n",
    );
    for (key, line) in [
        ("autostart", 3),
        ("autorestart", 4),
        ("startsecs", 5),
        ("exitcodes", 6),
        ("umask", 7),
        ("killasgroup", 9),
        ("stdout_logfile_maxbytes", 10),
        ("stdout_logfile_backups", 11),
    ] {
        let e = error_at(&errors, &format!("program:a.{key}"));
        assert_eq!(e.line, line, "{key}: {e}");
        assert!(e.file.ends_with("supervisord.conf"));
    }
}

#[test]
fn groups_become_tend_groups() {
    let imported = ok(
        "[group:front]\nprograms=web, api\npriority=5\n[program:web]\ncommand=w\n[program:api]\ncommand=a\n[program:other]\ncommand=o\n",
    );
    assert_eq!(service(&imported, "web")["groups"], json!(["front"]));
    assert_eq!(service(&imported, "api")["groups"], json!(["front"]));
    assert!(service(&imported, "other").get("groups").is_none());
    assert_eq!(line_of(&imported, &["services", "web", "groups"]), 2);
    assert!(has_warning(
        &imported,
        "group:front.priority",
        3,
        "no group priority"
    ));
    assert_eq!(imported.processes[0].namespec(), "front:web");
    let errors = err("[group:g]\nprograms=web,ghost\n[program:web]\ncommand=w\n");
    assert!(
        error_at(&errors, "group:g.programs")
            .message
            .contains("ghost")
    );
}

#[test]
fn a_group_named_like_a_service_is_dropped() {
    let imported = ok(
        "[group:web]\nprograms=web,worker\n[program:web]\ncommand=w\n[program:worker]\ncommand=k\n",
    );
    assert!(service(&imported, "worker").get("groups").is_none());
    assert!(has_warning(
        &imported,
        "program:worker",
        2,
        "name of a service"
    ));
}

#[test]
fn depends_on_follows_split_programs() {
    let imported = ok(
        "[program:app]\ncommand=a\ndepends_on=w db\n[program:w]\ncommand=/bin/w %(process_num)02d\nprocess_name=w%(process_num)d\nnumprocs=2\n",
    );
    assert_eq!(
        service(&imported, "app")["depends_on"],
        json!(["w0", "w1", "db"])
    );
}

#[test]
fn unsupported_keys_are_warnings_with_lines() {
    let imported = ok(
        "[program:a]\ncommand=a\nstdout_events_enabled=true\nstderr_capture_maxbytes=1MB\nserverurl=http://x\nauto_start=true\nstopasgroup=false\nstdout_events_enabled_2=1\n",
    );
    // PROCESS_LOG events are supported: no warning, a `logs.events` entry instead.
    assert!(
        !imported
            .warnings
            .iter()
            .any(|w| w.key.ends_with("events_enabled"))
    );
    assert_eq!(service(&imported, "a")["logs"]["events"], json!(["stdout"]));
    assert!(has_warning(
        &imported,
        "program:a.stderr_capture_maxbytes",
        4,
        "capture mode"
    ));
    assert!(has_warning(
        &imported,
        "program:a.serverurl",
        5,
        "SUPERVISOR_SERVER_URL"
    ));
    assert!(has_warning(
        &imported,
        "program:a.auto_start",
        6,
        "did you mean `autostart`"
    ));
    assert!(has_warning(
        &imported,
        "program:a.stopasgroup",
        7,
        "whole process group"
    ));
    assert!(has_warning(
        &imported,
        "program:a.stdout_events_enabled_2",
        8,
        "not a [program:x] option"
    ));
    // Defaults written out do not warn.
    let imported = ok(
        "[supervisord]\n[program:a]\ncommand=a\nstdout_events_enabled=false\nstdout_capture_maxbytes=0\nserverurl=AUTO\n",
    );
    assert!(imported.warnings.is_empty(), "{:?}", imported.warnings);
}

#[test]
fn names_tend_cannot_take_are_changed_with_a_warning() {
    let imported = ok("[program:my@app]\ncommand=a\n");
    assert_eq!(service(&imported, "my_app")["command"], json!("a"));
    assert!(has_warning(&imported, "program:my@app", 1, "`my_app`"));
    let errors = err("[program:a b]\ncommand=a\n");
    assert!(error_at(&errors, "program:a b").message.contains("` `"));
}

#[test]
fn literal_instance_placeholder_warns() {
    let imported = ok("[program:a]\ncommand=echo {instance}\n");
    assert!(has_warning(&imported, "program:a.command", 2, "{instance}"));
}

// ---------------------------------------------------------------------------------------
// Other sections
// ---------------------------------------------------------------------------------------

#[test]
fn server_settings_are_kept() {
    let imported = ok(r#"[unix_http_server]
file=%(here)s/supervisor.sock
chmod=0770
chown=nobody:nogroup
username=%(ENV_NAME)s
password=secret
[inet_http_server]
port=*:9001
[supervisord]
logfile=/var/log/supervisord.log
logfile_maxbytes=5MB
logfile_backups=3
pidfile=/run/supervisord.pid
nodaemon=true
identifier=box
minfds=4096
environment=A=1
[supervisorctl]
serverurl=unix://%(here)s/supervisor.sock
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
"#);
    let here = imported.files[0]
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let unix = &imported.server.unix_http_servers[0];
    assert_eq!(unix.file.value, format!("{here}/supervisor.sock"));
    assert_eq!(unix.file.raw, "%(here)s/supervisor.sock");
    assert_eq!(unix.file.line, 2);
    assert_eq!(unix.mode, 0o770);
    assert_eq!(unix.username.as_ref().unwrap().value, "world");
    let inet = &imported.server.inet_http_servers[0];
    assert_eq!((inet.host.as_str(), inet.port_number), ("", 9001));
    let sd = imported.server.supervisord.as_ref().unwrap();
    assert!(sd.nodaemon_flag);
    assert_eq!(sd.identifier.as_ref().unwrap().value, "box");
    assert_eq!(sd.pidfile.as_ref().unwrap().line, 13);
    assert_eq!(
        imported
            .server
            .supervisorctl
            .as_ref()
            .unwrap()
            .serverurl
            .as_ref()
            .unwrap()
            .value,
        format!("unix://{here}/supervisor.sock")
    );
    assert_eq!(
        imported.tree.to_json()["tend"],
        json!({"log": {"max_size": "5MiB", "backups": 3}, "min_fds": 4096})
    );
    assert_eq!(line_of(&imported, &["tend", "log", "backups"]), 12);
    assert!(has_warning(
        &imported,
        "supervisord.logfile",
        10,
        "tend.log"
    ));
    assert!(has_warning(
        &imported,
        "supervisord.pidfile",
        13,
        "tend.pid"
    ));
    assert_eq!(line_of(&imported, &["tend", "min_fds"]), 16);
    assert!(warnings_for(&imported, "supervisord.minfds").is_empty());
    assert!(warnings_for(&imported, "supervisord.nodaemon").is_empty());
    assert!(warnings_for(&imported, "rpcinterface:supervisor").is_empty());
}

#[test]
fn server_errors() {
    let errors = err(
        "[supervisord]\n[unix_http_server]\nchmod=0777\nusername=u\n[inet_http_server]\nport=host:99999\n",
    );
    assert!(
        error_at(&errors, "unix_http_server")
            .message
            .contains("`file`")
            || errors.iter().any(|e| e.message.contains("`file`"))
    );
    assert!(
        errors
            .iter()
            .any(|e| e.message.contains("username and password"))
    );
    assert_eq!(error_at(&errors, "inet_http_server.port").line, 6);
    let errors = err("[supervisord]\nloglevel=loud\nnodaemon=perhaps\n");
    assert_eq!(error_at(&errors, "supervisord.loglevel").line, 2);
    assert_eq!(error_at(&errors, "supervisord.nodaemon").line, 3);
}

#[test]
fn plugins_and_unknown_sections_warn() {
    let imported = ok(
        "[supervisord]\n[rpcinterface:other]\nx.factory=a:b\n[ctlplugin:c]\nf=1\n[whatever]\nk=v\n",
    );
    assert!(has_warning(&imported, "rpcinterface:other", 2, "plugins"));
    assert!(has_warning(&imported, "ctlplugin:c", 4, "plugins"));
    assert!(has_warning(&imported, "whatever", 6, "unknown section"));
}

#[test]
fn a_fragment_without_supervisord_warns() {
    let imported = ok("[program:a]\ncommand=a\n");
    assert!(has_warning(&imported, "supervisord", 1, "conf.d fragment"));
    let imported = ok(&format!("{SUPERVISORD}[program:a]\ncommand=a\n"));
    assert!(warnings_for(&imported, "supervisord").is_empty());
}

#[test]
fn event_listeners_are_parsed_apart_from_programs() {
    let imported = ok(
        "[eventlistener:watch]\ncommand=/bin/watch\nevents=PROCESS_STATE_FATAL, tick_60\nbuffer_size=20\nresult_handler=my.module:handler\n[program:a]\ncommand=a\n",
    );
    assert!(service(&imported, "watch").is_null());
    let listener = &imported.listeners[0];
    assert_eq!(listener.events, ["PROCESS_STATE_FATAL", "TICK_60"]);
    assert_eq!(listener.buffer_size, 20);
    assert_eq!(listener.priority, -1);
    assert_eq!(
        listener.services.to_json()["watch"]["command"],
        json!("/bin/watch")
    );
    assert!(has_warning(
        &imported,
        "eventlistener:watch.result_handler",
        5,
        "Python code"
    ));
    let errors = err(
        "[eventlistener:w]\ncommand=w\nevents=NOPE\nredirect_stderr=true\n[eventlistener:v]\ncommand=v\n",
    );
    assert!(
        error_at(&errors, "eventlistener:w.events")
            .message
            .contains("NOPE")
    );
    assert!(
        error_at(&errors, "eventlistener:w.redirect_stderr")
            .message
            .contains("not allowed")
    );
    assert!(
        error_at(&errors, "eventlistener:v")
            .message
            .contains("events")
    );
}

#[test]
fn fcgi_programs_map_with_a_socket_warning() {
    let imported = ok(
        "[fcgi-program:php]\ncommand=/usr/bin/php-cgi\nsocket=unix:///run/%(program_name)s.sock\nsocket_mode=0700\n",
    );
    assert_eq!(
        service(&imported, "php")["command"],
        json!("/usr/bin/php-cgi")
    );
    assert!(has_warning(
        &imported,
        "fcgi-program:php.socket",
        3,
        "/run/php.sock"
    ));
    let errors =
        err("[fcgi-program:a]\ncommand=a\nsocket=tcp://host\n[fcgi-program:b]\ncommand=b\n");
    assert!(
        error_at(&errors, "fcgi-program:a.socket")
            .message
            .contains("tcp://host:port")
    );
    assert!(
        error_at(&errors, "fcgi-program:b")
            .message
            .contains("`socket`")
    );
}

// ---------------------------------------------------------------------------------------
// [include]
// ---------------------------------------------------------------------------------------

#[test]
fn includes_are_globbed_sorted_and_relative_to_the_main_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let main = write(
        d,
        "etc/supervisord.conf",
        "[supervisord]\n[include]\nfiles = conf.d/*.conf extra/one.ini missing/*.conf\n",
    );
    write(d, "etc/conf.d/b.conf", "[program:b]\ncommand=%(here)s/b\n");
    write(
        d,
        "etc/conf.d/a.conf",
        "\n[program:a]\ncommand=a\nuser=nobody\n",
    );
    write(
        d,
        "etc/conf.d/.hidden.conf",
        "[program:hidden]\ncommand=h\n",
    );
    write(d, "etc/conf.d/ignored.txt", "[program:txt]\ncommand=t\n");
    write(
        d,
        "etc/extra/one.ini",
        "[program:a]\nuser=root\n[include]\nfiles=*.never\n",
    );
    let imported = import(&main, &env, HOST).unwrap();
    let names: Vec<String> = imported
        .files
        .iter()
        .map(|f| f.strip_prefix(d).unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "etc/supervisord.conf",
            "etc/conf.d/a.conf",
            "etc/conf.d/b.conf",
            "etc/extra/one.ini"
        ]
    );
    let services = imported.tree.to_json()["services"].clone();
    let keys: Vec<&String> = services.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["a", "b"]);
    // `here` is the directory of the file that holds the value.
    assert_eq!(
        services["b"]["command"],
        json!(format!("{}/etc/conf.d/b", d.display()))
    );
    // A later file overrides; the lines and files follow the values.
    assert_eq!(services["a"]["user"], json!("root"));
    let user = [
        Segment::Key("services".into()),
        Segment::Key("a".into()),
        Segment::Key("user".into()),
    ];
    let (file, line) = imported.locate(&user);
    assert!(file.ends_with("etc/extra/one.ini"));
    assert_eq!(line, 2);
    let command = [
        Segment::Key("services".into()),
        Segment::Key("a".into()),
        Segment::Key("command".into()),
    ];
    let (file, line) = imported.locate(&command);
    assert!(file.ends_with("etc/conf.d/a.conf"));
    assert_eq!(line, 3);
    assert!(has_warning(&imported, "include.files", 3, "missing/*.conf"));
    let nested = imported
        .warnings
        .iter()
        .find(|w| w.key == "include")
        .unwrap();
    assert!(nested.file.ends_with("etc/extra/one.ini"));
    assert_eq!(nested.line, 3);
}

#[test]
fn include_errors() {
    // No `files`.
    let errors = err("[supervisord]\n[include]\n");
    assert!(error_at(&errors, "include").message.contains("files"));
    // A missing plain file is a warning, as in supervisord (glob finds nothing).
    let (_dir, result) = run("[supervisord]\n[include]\nfiles=nothere.conf\n");
    let imported = result.unwrap();
    assert!(has_warning(&imported, "include.files", 3, "nothere.conf"));
    // A syntax error in an included file points into that file.
    let dir = tempfile::tempdir().unwrap();
    let main = write(
        dir.path(),
        "main.conf",
        "[supervisord]\n[include]\nfiles=bad.conf\n",
    );
    write(dir.path(), "bad.conf", "[program:x]\ncommand=x\noops\n");
    let errors = import(&main, &env, HOST).unwrap_err();
    assert!(errors[0].file.ends_with("bad.conf"));
    assert_eq!(errors[0].line, 3);
}

#[test]
fn unreadable_main_file() {
    let errors = import(Path::new("/nonexistent/supervisord.conf"), &env, HOST).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].line, 0);
    assert!(errors[0].message.contains("cannot read"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bin.conf");
    std::fs::write(&path, b"[program:a]\ncommand=\xff\n").unwrap();
    let errors = import(&path, &env, HOST).unwrap_err();
    assert!(errors[0].message.contains("UTF-8"));
}

#[test]
fn diagnostics_display_like_tend() {
    let d = Diagnostic {
        file: PathBuf::from("/etc/supervisord.conf"),
        line: 7,
        key: "program:web.stdout_events_enabled".into(),
        message: "not supported".into(),
    };
    assert_eq!(
        d.to_string(),
        "/etc/supervisord.conf:7: program:web.stdout_events_enabled: not supported"
    );
}

#[test]
fn node_lines_match_the_document_type() {
    let imported = ok("[program:a]\n\ncommand=a\n");
    let a = node(&imported, &["services", "a"]);
    assert_eq!(a.line, 1);
    assert_eq!(a.entry("command").unwrap().line, 3);
    assert_eq!(a.get("command").unwrap().line, 3);
}
