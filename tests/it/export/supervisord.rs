//! The real thing: a manifest full of awkward strings is exported, supervisord 4.3.0 runs
//! the file, and every child writes down its argv, environment and working directory.
//! They must be exactly what the manifest says.
//! supervisord and supervisorctl come from target/tools (./scripts/test installs them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::supervisord_generate::{self as common, toml_str};
use tend::export::export_supervisord;

/// Writes `"$@"` (after the output prefix), the environment it was started with (from
/// /proc: the shell itself would drop names like `A.B`) and the working directory, each
/// NUL-separated, then its pid last (the sign that it is done), then sleeps as itself.
const RECORD: &str = r#"out="$1"
shift
printf '%s\0' "$@" > "$out.args.tmp" && mv "$out.args.tmp" "$out.args"
cat /proc/$$/environ > "$out.env.tmp" && mv "$out.env.tmp" "$out.env"
pwd -P > "$out.cwd.tmp" && mv "$out.cwd.tmp" "$out.cwd"
echo $$ > "$out.pid.tmp" && mv "$out.pid.tmp" "$out.pid"
exec sleep 600
"#;

/// Arguments that break naive quoting: shell and shlex quotes, `$`, `%` and supervisord's
/// expansions, INI comments, whitespace at the ends, newlines, backslashes.
const ARGS: &[&str] = &[
    "it's",
    "say \"hi\"",
    "$HOME ${X} $$ $(id)",
    "100% %(here)s %(program_name)s %%",
    "back\\slash \\\\ \\\" \\'",
    "a #not ; a comment",
    " lead and trail ",
    "multi\nline\n  indented\n",
    "tab\there",
    "",
    "`id` * ~ ?",
    "é€😀",
    "\u{1f}unit separator",
];

/// Environment values of every form the exporter writes: single-quoted, double-quoted (a
/// `'` inside, with backslashes), bare (both quote kinds), with guards.
const ENV: &[(&str, &str)] = &[
    ("AWK_SQ", "say \"hi\" \\ $HOME ${X} `x`"),
    ("AWK_DQ", "it's \\\\ double \\"),
    ("AWK_BARE", "a'b\"c"),
    ("AWK_PCT", "100% %(here)s %%"),
    ("AWK_HASH", "a #b ;c"),
    ("AWK_SPACE", "  spaced  "),
    ("AWK_NL", "line1\n  line2\n"),
    ("AWK_EMPTY", ""),
    ("AWK_UNI", "é€😀"),
    ("AWK_TAB", "\ttab"),
    ("AWK.DOTTED-KEY", "x"),
];

/// The shell line's own value, passed as `"$AWK"`.
const SHELL_AWK: &str = "$(not run) ${X} `x` \"dq\" \\ % #";

/// supervisord, stopped when dropped: SIGTERM, a bounded wait, then SIGKILL.
struct Supervisord {
    child: Child,
}

impl Drop for Supervisord {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("supervisord did not stop on SIGTERM: SIGKILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `pid` is a live process (a zombie counts as gone).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .unwrap_or("");
            state != "Z" && state != "X"
        }
    }
}

fn nul_list(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let mut items: Vec<String> = text.split('\0').map(String::from).collect();
    // The list ends with a NUL.
    assert_eq!(items.pop().as_deref(), Some(""), "{}", path.display());
    items
}

fn env_of(path: &Path) -> BTreeMap<String, String> {
    nul_list(path)
        .into_iter()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// `supervisorctl status`: process name → state.
fn status(ctl: &str, conf: &Path) -> BTreeMap<String, String> {
    let out = Command::new(ctl)
        .arg("-c")
        .arg(conf)
        .arg("status")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            Some((words.next()?.to_string(), words.next()?.to_string()))
        })
        .collect()
}

fn manifest(dir: &Path) -> String {
    let d = dir.to_string_lossy();
    let record = format!("{d}/record.sh");
    let out = |tag: &str| format!("{d}/out/{tag}");
    let list = |items: &[String]| {
        let quoted: Vec<String> = items.iter().map(|s| toml_str(s)).collect();
        format!("[{}]", quoted.join(", "))
    };
    let argv = |tag: &str, rest: &[&str]| {
        let mut v = vec!["/bin/sh".to_string(), record.clone(), out(tag)];
        v.extend(rest.iter().map(|s| s.to_string()));
        list(&v)
    };
    let env: Vec<String> = ENV
        .iter()
        .map(|(k, v)| format!("{} = {}", toml_str(k), toml_str(v)))
        .collect();
    // A script with a comment line and every quote kind; `exec` ends it.
    let shell = format!(
        "true # a comment ; here\nexec /bin/sh '{record}' '{}' \"$AWK\" 'it'\\''s' \"100% #x\" 'back\\slash'\n",
        out("shell")
    );
    format!(
        r#"[tend]
state_dir = "state"

[services.exec]
args = {exec}
env = {{ {env} }}
user = "root"
umask = "027"

[services.shell]
command = {shell}
shell = true
env = {{ AWK = {awk} }}

[services.pool]
args = {pool}
instances = 2
env = {{ SLOT = "slot {{instance}} %" }}
cwd = "sub dir #{{instance}}"

[services.ported]
args = {ported}
instances = 2
port_base = 20000

[services.both]
args = {both}
instances = 2
port_base = 21000

[services.member]
args = {member}
groups = ["grp"]
depends_on = ["exec"]

[services.listener]
args = {listener}
event_listener = {{ events = ["PROCESS_STATE_FATAL", "TICK_60"] }}
"#,
        exec = argv("exec", ARGS),
        env = env.join(", "),
        shell = toml_str(&shell),
        awk = toml_str(SHELL_AWK),
        pool = argv(
            "pool-{instance}",
            &["n={instance}", "%(process_num)d stays"]
        ),
        ported = argv("ported-{port}", &["{port}"]),
        both = argv("both-{instance}", &["{instance}:{port}"]),
        member = argv("member", &["m"]),
        listener = argv("listener", &["l"]),
    )
}

#[test]
fn supervisord_runs_the_export_with_exact_argv_and_environment() {
    let supervisord = super::tool("supervisord").display().to_string();
    let ctl = super::tool("supervisorctl").display().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().canonicalize().unwrap();
    std::fs::write(dir.join("record.sh"), RECORD).unwrap();
    std::fs::create_dir(dir.join("out")).unwrap();
    std::fs::create_dir_all(dir.join("state/logs")).unwrap();
    for i in 0..2 {
        std::fs::create_dir(dir.join(format!("sub dir #{i}"))).unwrap();
    }
    let path = dir.join("tend.toml");
    std::fs::write(&path, manifest(&dir)).unwrap();
    let manifest = tend::config::load(&path).unwrap_or_else(|e| panic!("{e}"));

    let export = export_supervisord(&manifest, &[]);
    let conf = dir.join("supervisord.conf");
    std::fs::write(&conf, &export.files[0].1).unwrap();
    let settings: Vec<&str> = export.unmapped.iter().map(|(_, k, _)| k.as_str()).collect();
    assert!(
        !settings
            .iter()
            .any(|k| k.starts_with("env.") || *k == "args" || *k == "command"),
        "every value here can be written: {:#?}",
        export.unmapped
    );

    let log = std::fs::File::create(dir.join("supervisord.out")).unwrap();
    let child = Command::new(&supervisord)
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut guard = Supervisord { child };

    // supervisord's names: groups for instances and [group:x].
    let expected = [
        "exec",
        "shell",
        "pool:pool_0",
        "pool:pool_1",
        "ported:ported_20000",
        "ported:ported_20001",
        "both:both_0",
        "both:both_1",
        "grp:member",
        "listener",
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    let states = loop {
        let states = status(&ctl, &conf);
        if expected
            .iter()
            .all(|n| states.get(*n).map(String::as_str) == Some("RUNNING"))
        {
            break states;
        }
        if let Ok(Some(code)) = guard.child.try_wait() {
            panic!(
                "supervisord exited ({code}):\n{}\n--- conf\n{}",
                std::fs::read_to_string(dir.join("supervisord.out")).unwrap_or_default(),
                export.files[0].1
            );
        }
        assert!(
            Instant::now() < deadline,
            "not all RUNNING within 60 s: {states:?}\n--- supervisord\n{}\n--- conf\n{}",
            std::fs::read_to_string(dir.join("supervisord.out")).unwrap_or_default(),
            export.files[0].1
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        states.keys().map(String::as_str).collect::<Vec<_>>().len(),
        expected.len(),
        "{states:?}"
    );

    // Each child wrote its files before it became `sleep`, so they are there once it runs
    // (supervisord says RUNNING after startsecs); still, wait for them, bounded.
    let out = dir.join("out");
    let tags = [
        "exec",
        "shell",
        "pool-0",
        "pool-1",
        "ported-20000",
        "ported-20001",
        "both-0",
        "both-1",
        "member",
        "listener",
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    while !tags.iter().all(|t| out.join(format!("{t}.pid")).exists()) {
        assert!(
            Instant::now() < deadline,
            "children did not record themselves"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let args = |tag: &str| nul_list(&out.join(format!("{tag}.args")));
    let env = |tag: &str| env_of(&out.join(format!("{tag}.env")));
    let cwd = |tag: &str| {
        PathBuf::from(
            std::fs::read_to_string(out.join(format!("{tag}.cwd")))
                .unwrap()
                .trim_end_matches('\n'),
        )
    };

    assert_eq!(args("exec"), ARGS, "argv of exec");
    let exec_env = env("exec");
    for (k, v) in ENV {
        assert_eq!(exec_env.get(*k).map(String::as_str), Some(*v), "env {k}");
    }
    assert_eq!(exec_env["SUPERVISOR_PROCESS_NAME"], "exec");
    assert_eq!(cwd("exec"), dir, "no cwd: the manifest's directory");

    assert_eq!(
        args("shell"),
        [SHELL_AWK, "it's", "100% #x", "back\\slash"],
        "the shell line ran as written"
    );

    for i in 0..2 {
        let tag = format!("pool-{i}");
        assert_eq!(
            args(&tag),
            [format!("n={i}"), "%(process_num)d stays".into()]
        );
        assert_eq!(env(&tag)["SLOT"], format!("slot {i} %"));
        assert_eq!(cwd(&tag), dir.join(format!("sub dir #{i}")));
        let port = 20000 + i;
        let tag = format!("ported-{port}");
        assert_eq!(args(&tag), [port.to_string()]);
        assert_eq!(env(&tag)["PORT"], port.to_string());
        let tag = format!("both-{i}");
        assert_eq!(args(&tag), [format!("{i}:{}", 21000 + i)]);
        assert_eq!(env(&tag)["PORT"], (21000 + i).to_string());
    }
    assert_eq!(env("member")["SUPERVISOR_GROUP_NAME"], "grp");
    assert_eq!(args("listener"), ["l"]);

    // The same file through tend's own model: each child got what tend would give it.
    for svc in &manifest.services {
        for i in 0..svc.instances {
            let inst = svc.instance(i);
            let argv = common::argv(&inst.program);
            if argv[1] != "-c" {
                let tag = Path::new(&argv[2])
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                assert_eq!(args(&tag), argv[3..], "{}", inst.name);
                let got = env(&tag);
                for (k, v) in &inst.env {
                    if !k.starts_with("TEND_") {
                        assert_eq!(got.get(k), Some(v), "{} env {k}", inst.name);
                    }
                }
            }
        }
    }

    let pids: Vec<u32> = tags
        .iter()
        .map(|t| {
            std::fs::read_to_string(out.join(format!("{t}.pid")))
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(pids.iter().all(|p| alive(*p)));
    let supervisord_pid = guard.child.id();

    drop(guard);
    // supervisord waits for its children before it exits; nothing may be left behind.
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|p| alive(*p)) || alive(supervisord_pid) {
        assert!(
            Instant::now() < deadline,
            "left running: {:?}",
            pids.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
