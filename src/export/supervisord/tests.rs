//! Unit tests: how values are quoted, and what the sections hold. The expected strings
//! were checked against supervisord 4.3.0 itself (its `ServerOptions` reading the file;
//! see tests/oracle.rs for the same done on generated manifests).

use super::*;
use crate::config::load;
use crate::config::model::Growth;

fn plain(s: &str) -> String {
    ini_value(&chars(s), PLAIN).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

fn command(argv: &[&str]) -> String {
    let argv: Vec<Vec<Tok>> = argv.iter().map(|a| chars(a)).collect();
    ini_value(&shell_quote(&argv), PLAIN).unwrap()
}

fn env(key: &str, value: &str) -> Result<String, String> {
    env_pair(key, &chars(value)).map(|t| ini_value(&t, PLAIN).unwrap())
}

#[test]
fn percent_is_doubled_once_per_expansion() {
    assert_eq!(plain("50%"), "50%%");
    assert_eq!(plain("%(x)s"), "%%(x)s");
    assert_eq!(
        ini_value(&chars("/l/%d.log"), LOGFILE).unwrap(),
        "/l/%%%%d.log"
    );
    assert_eq!(ini_value(&chars("%"), NO_HERE).unwrap(), "%%");
}

#[test]
fn a_literal_here_expansion_is_broken_up() {
    // supervisord replaces the text `%(here)s` in every raw value before expanding.
    assert_eq!(plain("%(here)s"), "%%(here)%(here).0ss");
    assert_eq!(
        ini_value(&chars("%(here)s"), LOGFILE).unwrap(),
        "%%%%(here)%(here).0ss"
    );
    assert!(ini_value(&chars("%(here)s"), NO_HERE).is_err());
    // Nothing to do where it is not that text.
    assert_eq!(plain("(here)s"), "(here)s");
}

#[test]
fn comments_and_stripped_whitespace_are_guarded() {
    assert_eq!(plain("a #b"), "a %(here).0s#b");
    assert_eq!(plain("a\t;b"), "a\t%(here).0s;b");
    assert_eq!(plain("a#b;c"), "a#b;c", "no whitespace before: no comment");
    assert_eq!(plain(" lead"), "%(here).0s lead");
    assert_eq!(plain("trail "), "trail %(here).0s");
    assert_eq!(plain("#first"), "#first", "the key comes first on the line");
    assert_eq!(
        plain("\u{1f}"),
        "%(here).0s\u{1f}%(here).0s",
        "Python's isspace"
    );
    assert_eq!(plain(""), "");
    assert!(ini_value(&chars("a #b"), NO_HERE).is_err());
    assert_eq!(ini_value(&chars("a#b"), NO_HERE).unwrap(), "a#b");
}

#[test]
fn newlines_become_continuation_lines() {
    assert_eq!(plain("a\nb"), "a\n  b");
    assert_eq!(plain("a \n b"), "a %(here).0s\n  %(here).0s b");
    assert_eq!(plain("a\n\nb"), "a\n  %(here).0s\n  b", "no blank line");
    assert_eq!(plain("a\n#b"), "a\n  %(here).0s#b", "no comment line");
    assert_eq!(plain("a\n"), "a\n  %(here).0s", "no trailing blank line");
    assert_eq!(plain("\na"), "%(here).0s\n  a");
    assert!(ini_value(&chars("a\rb"), PLAIN).is_err());
    assert!(ini_value(&chars("a\0b"), PLAIN).is_err());
}

#[test]
fn argv_is_quoted_for_python_shlex_split() {
    assert_eq!(command(&["/bin/echo", "plain-1.0"]), "/bin/echo plain-1.0");
    assert_eq!(command(&["a b", ""]), "'a b' ''");
    assert_eq!(command(&["it's"]), r"'it'\''s'");
    assert_eq!(command(&[r#"say "hi""#]), r#"'say "hi"'"#);
    assert_eq!(command(&["$HOME", "${X}", "`id`"]), "'$HOME' '${X}' '`id`'");
    assert_eq!(command(&[r"a\b", r"\\"]), r"'a\b' '\\'");
    assert_eq!(command(&["100%", "%(x)s"]), "100%% '%%(x)s'");
    assert_eq!(command(&["a #b", ";"]), "'a %(here).0s#b' ';'");
    assert_eq!(command(&["x\n y"]), "'x\n  %(here).0s y'");
}

#[test]
fn placeholders_become_process_num() {
    let argv = vec![template("--id={instance}", Mode::Instances)];
    assert_eq!(
        ini_value(&shell_quote(&argv), PLAIN).unwrap(),
        "--id=%(process_num)d"
    );
    let argv = vec![template("{port} {instance}", Mode::Ports)];
    assert_eq!(
        ini_value(&shell_quote(&argv), PLAIN).unwrap(),
        "'%(process_num)d {instance}'"
    );
    let fixed = Mode::Fixed {
        index: 2,
        port: Some(8002),
    };
    assert_eq!(template("{instance}:{port}", fixed), chars("2:8002"));
    let no_port = Mode::Fixed {
        index: 0,
        port: None,
    };
    assert_eq!(template("{port}", no_port), chars("{port}"));
}

#[test]
fn environment_values_are_quoted_for_non_posix_shlex() {
    assert_eq!(env("A", "plain").unwrap(), "A='plain'");
    assert_eq!(env("A", "").unwrap(), "A=''");
    assert_eq!(
        env("A", r#"say "hi" $X \ %"#).unwrap(),
        r#"A='say "hi" $X \ %%'"#
    );
    assert_eq!(env("A", r"it's \\").unwrap(), r#"A="it's \\""#);
    assert_eq!(env("A", "a #b").unwrap(), "A='a %(here).0s#b'");
    assert_eq!(env("A", "l1\n l2").unwrap(), "A='l1\n  %(here).0s l2'");
    assert_eq!(env("A", r#"a'b"c"#).unwrap(), r#"A=a'b"c"#, "bare word");
    assert_eq!(env("A.b-c(1):2/3+4", "x").unwrap(), "A.b-c(1):2/3+4='x'");
    // What supervisord cannot read back.
    assert!(env("A", "'quoted'").is_err());
    assert!(env("A", "x\"").is_err());
    assert!(env("A", r#"a'b "c"#).is_err());
    assert!(env("A B", "x").is_err());
    assert!(env("A%", "x").is_err());
    assert!(env("", "x").is_err());
}

#[test]
fn supervisord_backoff_is_linear_from_one_second_without_jitter() {
    let linear = BackoffSpec {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(3),
        factor: 2.0,
        jitter: 0.0,
        growth: Growth::Linear,
    };
    assert!(supervisord_backoff(&linear, 3));
    assert!(!supervisord_backoff(&linear, 4), "capped at 3 s");
    assert!(!supervisord_backoff(
        &BackoffSpec {
            jitter: 0.1,
            ..linear.clone()
        },
        1
    ));
    let exponential = BackoffSpec {
        growth: Growth::Exponential,
        max: Duration::from_secs(30),
        ..linear.clone()
    };
    assert!(supervisord_backoff(&exponential, 2), "1 s, 2 s");
    assert!(!supervisord_backoff(&exponential, 3), "then 4 s, not 3 s");
    let huge = BackoffSpec {
        max: Duration::from_secs(u64::from(u32::MAX)),
        ..linear
    };
    assert!(supervisord_backoff(&huge, u32::MAX - 1));
    assert!(
        supervisord_backoff(&exponential, 0),
        "no retries: nothing to compare"
    );
}

// ---------------------------------------------------------------------------------------
// Whole manifests
// ---------------------------------------------------------------------------------------

fn export_toml(toml: &str) -> (Export, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tend.toml");
    std::fs::write(&path, toml).unwrap();
    let manifest = load(&path).unwrap_or_else(|e| panic!("{e}"));
    let export = export_supervisord(&manifest, &[]);
    let conf = export.files[0].1.clone();
    (export, conf)
}

fn section<'c>(conf: &'c str, name: &str) -> &'c str {
    let start = conf
        .find(&format!("[{name}]\n"))
        .unwrap_or_else(|| panic!("no [{name}] in\n{conf}"));
    let rest = &conf[start..];
    let end = rest[1..].find("\n[").map_or(rest.len(), |e| e + 1);
    &rest[..end]
}

fn notes_of<'e>(export: &'e Export, service: &str) -> Vec<&'e str> {
    export
        .unmapped
        .iter()
        .filter(|(s, _, _)| s == service)
        .map(|(_, k, _)| k.as_str())
        .collect()
}

#[test]
fn a_plain_service() {
    let (export, conf) = export_toml(
        r#"
[services.web]
command = "server --port 80"
restart = "on-failure"
restart_limit = "unstable"
max_restarts = 5
backoff = { initial = "1s", max = "5s", growth = "linear", jitter = 0.0 }
exit_codes = [0, 2]
stop_signal = "INT"
stop_timeout = "3s"
umask = "027"
priority = 5
"#,
    );
    let web = section(&conf, "program:web");
    for line in [
        "command=server --port 80\n",
        "autorestart=unexpected\n",
        "exitcodes=0,2\n",
        "startsecs=1\n",
        "startretries=5\n",
        "stopsignal=INT\n",
        "stopwaitsecs=3\n",
        "stopasgroup=true\n",
        "killasgroup=true\n",
        "umask=027\n",
        "priority=5\n",
        "redirect_stderr=false\n",
        "stdout_logfile=AUTO\n",
        "stdout_logfile_maxbytes=50000000\n",
        "stderr_logfile_backups=10\n",
        "autostart=true\n",
    ] {
        assert!(web.contains(line), "{line:?} not in\n{web}");
    }
    assert!(web.contains("directory=/"), "{web}");
    assert!(notes_of(&export, "web").is_empty(), "{:?}", export.unmapped);
    for needed in [
        "[unix_http_server]",
        "[supervisord]",
        "nodaemon=true",
        "[rpcinterface:supervisor]",
        "[supervisorctl]",
        "serverurl=unix:///",
    ] {
        assert!(conf.contains(needed), "{needed}");
    }
    assert!(conf.contains(&format!("supervisor.rpcinterface_factory={RPC_FACTORY}")));
}

#[test]
fn tend_defaults_are_reported_where_supervisord_differs() {
    let (export, conf) = export_toml("[services.a]\ncommand = \"a\"\n");
    let a = section(&conf, "program:a");
    assert!(a.contains("autorestart=true\n"));
    assert!(a.contains("startretries=10\n"));
    let notes = notes_of(&export, "a");
    assert_eq!(notes, ["restart_limit", "backoff"]);
}

#[test]
fn instances_use_numprocs_and_process_num() {
    let (export, conf) = export_toml(
        r#"
[services.w]
args = ["worker", "--id", "{instance}"]
instances = 3
env = { SLOT = "slot-{instance}" }
cwd = "/srv/{instance}"
"#,
    );
    let w = section(&conf, "program:w");
    assert!(w.contains("command=worker --id %(process_num)d\n"), "{w}");
    assert!(w.contains("process_name=%(program_name)s_%(process_num)d\nnumprocs=3\n"));
    assert!(
        w.contains("environment=SLOT='slot-%(process_num)d'\n"),
        "{w}"
    );
    assert!(w.contains("directory=/srv/%(process_num)d\n"), "{w}");
    assert!(!notes_of(&export, "w").contains(&"instances"));
}

#[test]
fn ports_number_the_processes_or_split_them() {
    let (export, conf) = export_toml(
        r#"
[services.one]
command = "srv --port {port} --i {instance}"
port_base = 7000

[services.p]
command = "srv --port {port}"
instances = 2
port_base = 8000

[services.both]
command = "srv --port {port} --i {instance}"
instances = 2
port_base = 9000
"#,
    );
    let one = section(&conf, "program:one");
    assert!(one.contains("command=srv --port 7000 --i 0\n"), "{one}");
    assert!(one.contains("environment=PORT='7000'\n"), "{one}");
    let p = section(&conf, "program:p");
    assert!(p.contains("numprocs=2\nnumprocs_start=8000\n"), "{p}");
    assert!(p.contains("command=srv --port %(process_num)d\n"));
    assert!(p.contains("environment=PORT='%(process_num)d'\n"));
    assert_eq!(notes_of(&export, "p")[0], "port_base");
    let b1 = section(&conf, "program:both_1");
    assert!(b1.contains("command=srv --port 9001 --i 1\n"), "{b1}");
    assert!(b1.contains("environment=PORT='9001'\n"));
    let g = section(&conf, "group:both");
    assert!(g.contains("programs=both_0,both_1\n"), "{g}");
    assert_eq!(notes_of(&export, "both")[0], "instances");
}

#[test]
fn dependencies_order_by_priority_and_are_reported() {
    let (export, conf) = export_toml(
        r#"
[services.db]
command = "db"
priority = 10

[services.api]
command = "api"
depends_on = { db = "healthy" }

[services.web]
command = "web"
depends_on = ["api"]
priority = 50
"#,
    );
    assert!(section(&conf, "program:db").contains("priority=10\n"));
    let api = section(&conf, "program:api");
    assert!(api.contains("priority=11\n"), "{api}");
    assert!(api.contains("depends_on=db\n"), "{api}");
    let web = section(&conf, "program:web");
    assert!(web.contains("priority=50\n"));
    assert!(web.contains("depends_on=api\n"));
    let api_notes = notes_of(&export, "api");
    assert!(api_notes.contains(&"priority"));
    assert!(api_notes.contains(&"depends_on"));
    assert!(api_notes.contains(&"depends_on.condition"));
    assert!(!notes_of(&export, "web").contains(&"priority"));
}

#[test]
fn groups_listeners_logs_and_the_daemon() {
    let (export, conf) = export_toml(
        r#"
[tend]
min_fds = 4096
http = { listen = "127.0.0.1:9001", basic_auth = { username = "u", password = "p #1%" } }

[services.a]
command = "a"
groups = ["front", "back"]
shell = true
logs = { merge = true, stdout = "/var/log/a%.log", max_size = "1MiB", backups = 2, syslog = true }

[services.b]
command = "b"
groups = ["front"]
priority = -5
logs = { stdout = "inherit", stderr = "null", events = ["stdout"] }

[services.l]
command = "listen"
event_listener = { events = ["PROCESS_STATE_FATAL", "TICK_60"], buffer_size = 3 }
"#,
    );
    let a = section(&conf, "program:a");
    assert!(a.contains("command=/bin/sh -c a\n"), "{a}");
    assert!(a.contains("redirect_stderr=true\n"));
    assert!(a.contains("stdout_logfile=/var/log/a%%%%.log\n"), "{a}");
    assert!(a.contains("stdout_logfile_maxbytes=1048576\nstdout_logfile_backups=2\n"));
    assert!(!a.contains("stderr_logfile"));
    assert!(a.contains("stdout_syslog=true\n") && !a.contains("stderr_syslog"));
    assert!(notes_of(&export, "a").contains(&"groups"));
    let b = section(&conf, "program:b");
    assert!(
        b.contains("stdout_logfile=/dev/stdout\nstdout_logfile_maxbytes=0\n"),
        "{b}"
    );
    assert!(b.contains("stderr_logfile=NONE\n"));
    assert!(b.contains("stdout_events_enabled=true\n"));
    let front = section(&conf, "group:front");
    assert!(front.contains("programs=b,a\npriority=-5\n"), "{front}");
    let l = section(&conf, "eventlistener:l");
    assert!(
        l.contains("events=PROCESS_STATE_FATAL,TICK_60\nbuffer_size=3\n"),
        "{l}"
    );
    // No `%(here)` in [inet_http_server]: the ` #` of the password cannot be protected, and
    // a server without its credentials would serve anyone, so none is written.
    assert!(!conf.contains("[inet_http_server]"));
    assert!(
        export
            .unmapped
            .iter()
            .any(|(s, k, _)| s == DAEMON && k == "http.basic_auth")
    );
    let sd = section(&conf, "supervisord");
    assert!(sd.contains("minfds=4096\n"));
}

#[test]
fn unknown_services_are_reported_and_subsets_bring_their_dependencies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tend.toml");
    std::fs::write(
        &path,
        "[services.db]\ncommand = \"db\"\n[services.api]\ncommand = \"api\"\ndepends_on = [\"db\"]\n",
    )
    .unwrap();
    let manifest = load(&path).unwrap();
    let export = export_supervisord(&manifest, &["api".into(), "nope".into()]);
    let conf = &export.files[0].1;
    assert!(conf.contains("[program:db]"));
    assert!(section(conf, "program:api").contains("depends_on=db\n"));
    assert!(
        export
            .unmapped
            .iter()
            .any(|(s, k, _)| s == "nope" && k.is_empty())
    );
    assert!(
        !export
            .unmapped
            .iter()
            .any(|(_, _, w)| w.contains("not exported"))
    );
}

#[test]
fn what_cannot_be_written_is_reported_not_corrupted() {
    let (export, conf) = export_toml(
        r#"
[services.a]
args = ["x", "carriage\rreturn"]

[services.b]
command = "b"
env = { GOOD = "ok", BAD = "'edge'", "NOT OK" = "x" }
"#,
    );
    assert!(!conf.contains("[program:a]"));
    assert!(
        export
            .unmapped
            .iter()
            .any(|(s, k, _)| s == "a" && k == "args")
    );
    let b = section(&conf, "program:b");
    assert!(b.contains("environment=GOOD='ok'\n"), "{b}");
    let notes = notes_of(&export, "b");
    assert!(
        notes.contains(&"env.BAD") && notes.contains(&"env.NOT OK"),
        "{notes:?}"
    );
}

#[test]
fn basic_auth_becomes_the_inet_http_server() {
    let (export, conf) = export_toml(
        r#"
[tend]
http = { listen = "127.0.0.1:9001", basic_auth = { username = "admin", password = "s3cr%t#x" }, max_connections = 8 }
"#,
    );
    let inet = section(&conf, "inet_http_server");
    assert_eq!(
        inet,
        "[inet_http_server]\nport=127.0.0.1:9001\nusername=admin\npassword=s3cr%%t#x\n"
    );
    let daemon: Vec<&str> = notes_of(&export, DAEMON);
    assert_eq!(daemon, ["http.max_connections"]);
}

#[test]
fn schedules_and_watches_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tend.toml");
    std::fs::write(
        &path,
        "[services.web]\ncommand = \"web\"\ncron_restart = \"@daily\"\nwatch = \"src\"\n\
         [services.job]\nkind = \"task\"\ncommand = \"job\"\nschedule = \"*/5 * * * *\"\n",
    )
    .unwrap();
    let manifest = load(&path).unwrap();
    let export = export_supervisord(&manifest, &[]);
    let notes: Vec<(&str, &str, &str)> = export
        .unmapped
        .iter()
        .map(|(s, k, why)| (s.as_str(), k.as_str(), why.as_str()))
        .collect();
    for (service, setting, hint) in [
        (
            "web",
            "cron_restart",
            "supervisorctl restart NAME` at \"@daily\"",
        ),
        ("web", "watch", "does not watch"),
        ("job", "schedule", "supervisorctl start NAME"),
    ] {
        assert!(
            notes
                .iter()
                .any(|(s, k, why)| *s == service && *k == setting && why.contains(hint)),
            "{service}.{setting}: {notes:?}"
        );
    }
}
