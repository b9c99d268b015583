//! supervisord itself as the oracle: generated manifests are exported, and supervisord
//! 4.3.0's own configuration reader (`ServerOptions.realize`, in the Python of
//! target/tools) reads the file. Every process must be there under the expected
//! name, with exactly the argv (`shlex.split` of its command), environment, directory and
//! log files tend would give that instance, unless the exporter reported the setting.
//!
//! One Python process serves every case (a conf path in, the processes out), so many cases
//! run in seconds.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use super::supervisord_generate::*;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use tend::config::model::{LogTarget, Manifest, ServiceSpec};
use tend::export::export_supervisord;

/// Reads each conf path from stdin and prints what supervisord made of it, every string
/// hex-encoded (`:` before it; `-` for None), then `END`.
const ORACLE: &str = r#"
import sys, shlex
from supervisor.options import ServerOptions
from supervisor.datatypes import Automatic

def h(s):
    if s is None:
        return '-'
    return ':' + str(s).encode('utf-8', 'surrogateescape').hex()

def lf(v):
    if v is Automatic:
        return 'AUTO'
    if v is None:
        return 'NONE'
    return v

def fail(msg):
    raise ValueError(msg)

for line in sys.stdin:
    conf = line.rstrip('\n')
    out = []
    try:
        o = ServerOptions()
        o.usage = fail
        o.realize(args=['-c', conf])
        out.append('S %s %s' % (h(o.logfile), h(o.pidfile)))
        for sc in o.server_configs:
            where = sc.get('file') or '%s:%s' % (sc.get('host'), sc.get('port'))
            out.append('H %s %s %s' % (h(where), h(sc.get('username')), h(sc.get('password'))))
        for g in o.process_group_configs:
            for p in g.process_configs:
                out.append('P %s %s %s %s %s' % (h(g.name), h(p.name), h(p.directory),
                    h(lf(p.stdout_logfile)), h(lf(p.stderr_logfile))))
                out.append('A ' + ' '.join(h(a) for a in shlex.split(p.command)))
                for k, v in sorted((p.environment or {}).items()):
                    out.append('E %s %s' % (h(k), h(v)))
    except BaseException as e:
        out = ['X ' + h(repr(e))]
    sys.stdout.write('\n'.join(out) + '\nEND\n')
    sys.stdout.flush()
"#;

struct Oracle {
    _child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// The Python that runs supervisord: the interpreter named on its `#!` line.
fn python() -> Option<String> {
    let supervisord = super::tool("supervisord");
    let text = std::fs::read_to_string(&supervisord).ok()?;
    let first = text.lines().next()?;
    Some(first.strip_prefix("#!")?.trim().to_string())
}

fn oracle() -> Option<&'static Mutex<Oracle>> {
    static ORACLE_PROCESS: OnceLock<Option<Mutex<Oracle>>> = OnceLock::new();
    ORACLE_PROCESS
        .get_or_init(|| {
            let python = python()?;
            let mut child = Command::new(python)
                .args(["-c", ORACLE])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("cannot start supervisord's Python");
            let stdin = child.stdin.take().unwrap();
            let stdout = BufReader::new(child.stdout.take().unwrap());
            Some(Mutex::new(Oracle {
                _child: child,
                stdin,
                stdout,
            }))
        })
        .as_ref()
}

fn unhex(field: &str) -> Option<String> {
    let hex = field.strip_prefix(':')?;
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    Some(String::from_utf8(bytes).unwrap())
}

/// One process as supervisord configured it.
#[derive(Debug, Default, Clone, PartialEq)]
struct Proc {
    group: String,
    directory: Option<String>,
    stdout: String,
    stderr: String,
    argv: Vec<String>,
    env: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
struct Read {
    logfile: String,
    servers: Vec<(String, Option<String>, Option<String>)>,
    processes: BTreeMap<String, Proc>,
}

fn read(conf: &Path) -> Result<Read, String> {
    let mut o = oracle().expect("checked by the caller").lock().unwrap();
    writeln!(o.stdin, "{}", conf.display()).unwrap();
    o.stdin.flush().unwrap();
    let mut out = Read::default();
    let mut current: Option<String> = None;
    loop {
        let mut line = String::new();
        assert!(
            o.stdout.read_line(&mut line).unwrap() > 0,
            "the oracle died"
        );
        let line = line.trim_end_matches('\n');
        let f: Vec<&str> = line.split(' ').collect();
        match f[0] {
            "END" => return Ok(out),
            "X" => {
                // Read up to END, so the next case starts clean.
                let why = unhex(f[1]).unwrap_or_default();
                loop {
                    let mut rest = String::new();
                    o.stdout.read_line(&mut rest).unwrap();
                    if rest.trim_end() == "END" {
                        break;
                    }
                }
                return Err(why);
            }
            "S" => out.logfile = unhex(f[1]).unwrap(),
            "H" => out
                .servers
                .push((unhex(f[1]).unwrap(), unhex(f[2]), unhex(f[3]))),
            "P" => {
                let name = unhex(f[2]).unwrap();
                out.processes.insert(
                    name.clone(),
                    Proc {
                        group: unhex(f[1]).unwrap(),
                        directory: unhex(f[3]),
                        stdout: unhex(f[4]).unwrap(),
                        stderr: unhex(f[5]).unwrap(),
                        ..Proc::default()
                    },
                );
                current = Some(name);
            }
            "A" => {
                let p = out.processes.get_mut(current.as_ref().unwrap()).unwrap();
                p.argv = f[1..]
                    .iter()
                    .filter(|a| !a.is_empty())
                    .map(|a| unhex(a).unwrap())
                    .collect();
            }
            "E" => {
                let p = out.processes.get_mut(current.as_ref().unwrap()).unwrap();
                p.env.insert(unhex(f[1]).unwrap(), unhex(f[2]).unwrap());
            }
            other => panic!("unexpected oracle line {other:?}"),
        }
    }
}

/// A log target as supervisord holds it.
fn log_file(target: &LogTarget, stream: &str) -> String {
    match target {
        LogTarget::File(None) => "AUTO".into(),
        LogTarget::File(Some(p)) => p.to_string_lossy().into_owned(),
        LogTarget::Inherit => format!("/dev/{stream}"),
        LogTarget::Null => "NONE".into(),
    }
}

/// supervisord's name for each instance of `svc`, with its group and instance index.
fn processes_of(svc: &ServiceSpec) -> Vec<(String, String, u32)> {
    let n = svc.instances;
    let uses_instance = {
        let p = match &svc.program {
            tend::config::model::Program::Exec(a) => a.join(" "),
            tend::config::model::Program::Shell(l) => l.clone(),
        };
        p.contains("{instance}")
            || svc.env.values().any(|v| v.contains("{instance}"))
            || svc.cwd.as_deref().is_some_and(|c| c.contains("{instance}"))
    };
    let tend_group = (svc.event_listener.is_none())
        .then(|| svc.groups.first().cloned())
        .flatten();
    let group = tend_group.clone().unwrap_or_else(|| svc.name.clone());
    if n == 1 {
        return vec![(group, svc.name.clone(), 0)];
    }
    match svc.port_base {
        None => (0..n)
            .map(|i| (group.clone(), format!("{}_{i}", svc.name), i))
            .collect(),
        Some(base) if !uses_instance => (0..n)
            .map(|i| {
                (
                    group.clone(),
                    format!("{}_{}", svc.name, u32::from(base) + i),
                    i,
                )
            })
            .collect(),
        // One program per instance; a listener pool each (listeners are in no group).
        Some(_) => (0..n)
            .map(|i| {
                let name = format!("{}_{i}", svc.name);
                let g = if svc.event_listener.is_some() {
                    name.clone()
                } else {
                    group.clone()
                };
                (g, name, i)
            })
            .collect(),
    }
}

fn check(manifest: &Manifest, export: &tend::export::Export, read: &Read) -> Vec<String> {
    let notes = notes(export);
    let base = manifest.base_dir();
    let mut diffs = Vec::new();
    let d = &manifest.daemon;
    if read.logfile != d.state_dir.join("supervisord.log").to_string_lossy() {
        diffs.push(format!("logfile {:?}", read.logfile));
    }
    let socket = d.socket.to_string_lossy().into_owned();
    if !read.servers.iter().any(|(w, _, _)| *w == socket) {
        diffs.push(format!("no unix server at {socket:?}: {:?}", read.servers));
    }
    if let Some(http) = &d.http
        && let Some((user, password)) = &http.basic_auth
        && !noted(&notes, "[tend]", "http.basic_auth")
    {
        let want = (
            http.listen.to_string(),
            Some(user.clone()),
            Some(password.clone()),
        );
        if !read.servers.contains(&want) {
            diffs.push(format!("no inet server {want:?}: {:?}", read.servers));
        }
    }

    let mut expected: BTreeMap<String, Proc> = BTreeMap::new();
    for svc in &manifest.services {
        if left_out(&notes, &svc.name) {
            continue;
        }
        let n = |setting: &str| noted(&notes, &svc.name, setting);
        for (group, name, i) in processes_of(svc) {
            let run = run_of(svc, i, &base);
            let mut env = run.env.clone();
            env.retain(|k, _| !n(&format!("env.{k}")));
            let l = &svc.logs;
            let merge = l.merge && svc.event_listener.is_none();
            let stdout = if n("logs.stdout") {
                "AUTO".into()
            } else {
                log_file(&l.stdout, "stdout")
            };
            let stderr = if merge {
                "NONE".into()
            } else if n("logs.stderr") {
                "AUTO".into()
            } else {
                log_file(&l.stderr, "stderr")
            };
            expected.insert(
                name,
                Proc {
                    group,
                    directory: (!n("cwd")).then_some(run.cwd),
                    stdout,
                    stderr,
                    argv: run.argv,
                    env,
                },
            );
        }
    }
    let got: Vec<&String> = read.processes.keys().collect();
    let want: Vec<&String> = expected.keys().collect();
    if got != want {
        diffs.push(format!(
            "processes: expected {want:?}, supervisord has {got:?}"
        ));
        return diffs;
    }
    for (name, want) in &expected {
        let got = &read.processes[name];
        if got != want {
            diffs.push(format!(
                "{name}:\n  expected {want:?}\n  supervisord {got:?}"
            ));
        }
    }
    diffs
}

#[test]
fn supervisord_reads_exactly_what_tend_would_run() {
    assert!(oracle().is_some(), "cannot start supervisord's Python");
    let config = ProptestConfig {
        cases: cases(64),
        ..ProptestConfig::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&manifest(true), |spec| {
        let dir = tempfile::tempdir().unwrap();
        let manifest = load(dir.path(), &spec);
        let export = export_supervisord(&manifest, &[]);
        let conf = write_conf(dir.path(), &export);
        let text = &export.files[0].1;
        let read = read(&conf).map_err(|e| {
            TestCaseError::fail(format!(
                "supervisord refuses the export: {e}\n--- manifest\n{}\n--- conf\n{text}",
                spec.toml()
            ))
        })?;
        let diffs = check(&manifest, &export, &read);
        prop_assert!(
            diffs.is_empty(),
            "{}\n--- manifest\n{}\n--- conf\n{text}\n--- unmapped\n{:#?}",
            diffs.join("\n"),
            spec.toml(),
            export.unmapped
        );
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
