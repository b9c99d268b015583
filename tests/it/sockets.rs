//! `[sockets]`: tend binds them, and real children receive them by systemd's protocol
//! (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES, fds from 3) and serve on them.

use std::io::Read;
use std::net::TcpStream;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::harness::*;

/// A server for any number of passed sockets, as a program written for socket activation
/// would be: it checks the variables, takes fds 3… by name, and answers every connection
/// with what it was given.
const SERVER: &str = r#"
import os, selectors, socket, sys
if os.environ.get("LISTEN_PID") != str(os.getpid()):
    sys.exit("LISTEN_PID %r is not my pid %d" % (os.environ.get("LISTEN_PID"), os.getpid()))
n = int(os.environ["LISTEN_FDS"])
names = os.environ["LISTEN_FDNAMES"].split(":")
if len(names) != n:
    sys.exit("LISTEN_FDNAMES %r does not name %d sockets" % (names, n))
socks = [socket.socket(fileno=3 + i) for i in range(n)]
print("serving", names, flush=True)

def answer(conn, name):
    line = "%s %s %d %s %s\n" % (
        name, os.environ["TEND_INSTANCE"], os.getpid(), os.environ["LISTEN_PID"],
        os.environ["LISTEN_FDNAMES"])
    conn.sendall(line.encode())
    conn.close()

if n == 1:
    # Blocking accept: instances sharing the socket queue in the kernel for connections.
    while True:
        conn, _ = socks[0].accept()
        answer(conn, names[0])
selector = selectors.DefaultSelector()
for sock, name in zip(socks, names):
    sock.setblocking(False)
    selector.register(sock, selectors.EVENT_READ, name)
while True:
    for key, _ in selector.select():
        try:
            conn, _ = key.fileobj.accept()
        except BlockingIOError:
            continue
        conn.setblocking(True)
        answer(conn, key.data)
"#;

fn project(manifest: &str) -> Project {
    let p = Project::new(manifest);
    std::fs::write(p.file("serve.py"), SERVER).unwrap();
    p
}

/// The sockets as tend bound them: name → address (`tcp://…`, `unix:…`).
fn bound(p: &Project) -> Vec<(String, String)> {
    let info = p.http("GET", "/api/v1/info", "").json();
    info["sockets"]
        .as_array()
        .unwrap_or_else(|| panic!("no sockets in {info}"))
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["address"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn tcp_address(p: &Project, name: &str) -> String {
    let (_, address) = bound(p)
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("socket {name} not bound"));
    address
        .strip_prefix("tcp://")
        .unwrap_or_else(|| panic!("{address} is not tcp"))
        .to_string()
}

/// One line from a server, read with a bound.
fn read_answer(mut stream: impl Read) -> String {
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read the answer");
    text.trim_end().to_string()
}

fn ask_tcp(address: &str) -> String {
    let stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    read_answer(stream)
}

fn pid_of(p: &Project, instance: &str) -> u64 {
    p.instance(instance)["pid"]
        .as_u64()
        .unwrap_or_else(|| panic!("{instance} has no pid"))
}

#[test]
fn a_child_receives_tcp_and_unix_sockets_with_its_own_listen_pid() {
    let p = project(
        r#"
[sockets.http]
listen = "tcp://127.0.0.1:0"
[sockets.ctl]
listen = "unix:run/ctl.sock"
mode = "600"

[services.web]
args = ["python3", "serve.py"]
sockets = ["http", "ctl"]

[services.plain]
command = "sh -c 'echo \"fds=[$LISTEN_FDS] pid=[$LISTEN_PID] names=[$LISTEN_FDNAMES]\" > plain.out; exec sleep 1000'"
"#,
    );
    let d = p.up();
    let address = tcp_address(&p, "http");
    let pid = pid_of(&p, "web");
    assert_eq!(
        ask_tcp(&address),
        format!("http 0 {pid} {pid} http:ctl"),
        "LISTEN_PID is the child's own pid; the names are in the service's order"
    );
    let socket = p.file("run/ctl.sock");
    let meta = std::fs::metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let stream = UnixStream::connect(&socket).expect("connect to the unix socket");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    assert_eq!(read_answer(stream), format!("ctl 0 {pid} {pid} http:ctl"));

    // A service that names no socket gets none of the variables.
    wait_until(
        Duration::from_secs(10),
        "plain wrote its environment",
        || p.read("plain.out").ends_with('\n'),
    );
    assert_eq!(p.read("plain.out"), "fds=[] pid=[] names=[]\n");
    drop(d);
    assert!(!socket.exists(), "the socket file is removed at shutdown");
}

#[test]
fn instances_share_one_socket_and_the_kernel_spreads_connections() {
    let p = project(
        r#"
[sockets.http]
listen = "tcp://127.0.0.1:0"
backlog = 64

[services.web]
args = ["python3", "serve.py"]
instances = 2
sockets = ["http"]
readiness = { log = "^serving" }
"#,
    );
    // Both accepting before the first connection: a slow interpreter start would leave
    // every connection to the instance that started first.
    let d = p.up_ready();
    let pids = [pid_of(&p, "web:0"), pid_of(&p, "web:1")];
    let fd3 = |pid: u64| std::fs::read_link(format!("/proc/{pid}/fd/3")).expect("fd 3");
    let socket = fd3(pids[0]);
    assert!(
        socket.to_string_lossy().starts_with("socket:["),
        "{socket:?}"
    );
    assert_eq!(fd3(pids[1]), socket, "one socket, not one each");
    let tend = d.pid().expect("tend's pid");
    let held_by_tend = std::fs::read_dir(format!("/proc/{tend}/fd"))
        .unwrap()
        .flatten()
        .any(|fd| std::fs::read_link(fd.path()).ok() == Some(socket.clone()));
    assert!(held_by_tend, "tend keeps its own copy of {socket:?}");

    let address = tcp_address(&p, "http");
    let mut answered = std::collections::BTreeSet::new();
    wait_until(
        Duration::from_secs(20),
        "both instances to answer on the shared socket",
        || {
            let answer = ask_tcp(&address);
            answered.insert(answer.split(' ').nth(1).unwrap_or_default().to_string());
            answered.len() == 2
        },
    );
    assert_eq!(answered.into_iter().collect::<Vec<_>>(), ["0", "1"]);
}

#[test]
fn a_port_in_use_refuses_to_start_and_leaves_nothing_behind() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let p = Project::new(&format!(
        r#"
[sockets.first]
listen = "unix:first.sock"
[sockets.http]
listen = "tcp://127.0.0.1:{port}"

[services.web]
command = "sh -c 'touch started; exec sleep 1000'"
sockets = ["first", "http"]
"#
    ));
    let out = p.tend(&["up", "-d"]);
    let _d = Daemon::attach(&p);
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "started with its port taken: {said}");
    assert!(
        said.contains(&format!(
            "cannot listen on socket `http` (tcp://127.0.0.1:{port})"
        )),
        "{said}"
    );
    assert!(said.contains("in use"), "{said}");
    assert!(!p.file("started").exists(), "a service was started");
    assert!(
        !p.file("first.sock").exists(),
        "a bound socket's file was left"
    );
    assert!(!p.file(".tend/tend.pid").exists());
    assert!(!p.file(".tend/run.json").exists());
    assert!(!p.socket().exists());
}

#[test]
fn a_stopped_service_s_socket_still_queues_connections_for_its_successor() {
    let p = project(
        r#"
[sockets.http]
listen = "tcp://127.0.0.1:0"

[services.web]
args = ["python3", "serve.py"]
sockets = ["http"]
"#,
    );
    let _d = p.up();
    let address = tcp_address(&p, "http");
    let first = pid_of(&p, "web");
    assert!(ask_tcp(&address).starts_with(&format!("http 0 {first} ")));

    let out = p.tend(&["stop", "web"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    p.wait_state("web", "stopped", Duration::from_secs(10));
    // No one accepts now, yet the connection is made: the kernel queues it on the socket
    // tend holds, for whichever process accepts next.
    let waiting = TcpStream::connect(&address).expect("connect while stopped");
    waiting
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();

    let out = p.tend(&["start", "web"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let second = pid_of(&p, "web");
    assert_ne!(first, second);
    assert_eq!(
        read_answer(waiting),
        format!("http 0 {second} {second} http"),
        "the queued connection is served by the new process"
    );
    let out = p.tend(&["restart", "web"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let third = pid_of(&p, "web");
    let answer = ask_tcp(&address);
    assert!(
        answer.starts_with(&format!("http 0 {third} ")),
        "{answer} after restart: first {first}, second {second}, third {third}; {}",
        p.read(".tend/tend.log")
    );
}

#[test]
fn a_stale_socket_file_is_replaced_but_another_file_is_not() {
    let p = Project::new(
        r#"
[sockets.app]
listen = "unix:app.sock"
[services.web]
command = "sleep 1000"
sockets = ["app"]
"#,
    );
    // Bound and closed: a file no one listens on, as a crashed run leaves.
    drop(std::os::unix::net::UnixListener::bind(p.file("app.sock")).unwrap());
    {
        let _d = p.up();
        let stream = UnixStream::connect(p.file("app.sock"));
        assert!(stream.is_ok(), "tend listens on the replaced file");
        assert_eq!(
            std::fs::metadata(p.file("app.sock"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o666,
            "systemd's default mode"
        );
    }
    assert!(!p.file("app.sock").exists());

    std::fs::write(p.file("app.sock"), "precious").unwrap();
    let out = p.tend(&["up", "-d"]);
    let _d = Daemon::attach(&p);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("exists and is not a socket"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(p.read("app.sock"), "precious");
}

#[test]
fn check_warns_about_a_probe_of_the_shared_port() {
    let p = Project::new(
        r#"
[sockets.http]
listen = "tcp://127.0.0.1:18080"
[services.web]
command = "sleep 1000"
instances = 2
sockets = ["http"]
readiness = { tcp = "127.0.0.1:18080" }
"#,
    );
    let out = p.tend(&["check"]);
    assert!(out.status.success(), "a warning is not an error");
    let said = text(&out.stderr);
    assert!(
        said.contains("services.web.readiness.tcp: connects to port 18080 of socket `http`"),
        "{said}"
    );
    assert!(
        text(&out.stdout).contains("1 warning(s)"),
        "{}",
        text(&out.stdout)
    );
}

/// A supervisord XML-RPC call on tend's socket, as supervisorctl makes it.
fn rpc(p: &Project, method: &str, args: &[&str]) -> String {
    let params: String = args
        .iter()
        .map(|a| format!("<param><value><string>{a}</string></value></param>"))
        .collect();
    let body = format!(
        "<?xml version='1.0'?><methodCall><methodName>{method}</methodName><params>{params}</params></methodCall>"
    );
    let stream = UnixStream::connect(p.socket()).unwrap();
    http_over(
        stream,
        "POST",
        "/RPC2",
        &[("Content-Type", "text/xml")],
        &body,
    )
    .body
}

#[test]
fn a_reload_that_changes_the_sockets_is_refused_and_changes_nothing() {
    let manifest = |extra: &str| {
        format!(
            "[sockets.http]\nlisten = \"tcp://127.0.0.1:0\"\n[services.web]\nargs = [\"python3\", \"serve.py\"]\nsockets = [\"http\"]\n{extra}"
        )
    };
    let p = project(&manifest(""));
    let _d = p.up();
    let address = tcp_address(&p, "http");
    let pid = pid_of(&p, "web");

    // A new service on a new socket: read, but not added, since tend cannot bind it now.
    std::fs::write(
        p.manifest(),
        manifest(
            "[sockets.admin]\nlisten = \"unix:admin.sock\"\n[services.api]\ncommand = \"sleep 1000\"\nsockets = [\"admin\"]\n",
        ),
    )
    .unwrap();
    let reread = rpc(&p, "supervisor.reloadConfig", &[]);
    assert!(reread.contains("<string>api</string>"), "{reread}");
    let added = rpc(&p, "supervisor.addProcessGroup", &["api"]);
    assert!(added.contains("<name>faultString</name>"), "{added}");
    assert!(
        added.contains("[sockets] `admin` changed: tend binds its sockets only when it starts"),
        "{added}"
    );
    let restarted = rpc(&p, "supervisor.restart", &[]);
    assert!(restarted.contains("`admin` changed"), "{restarted}");
    assert!(!p.file("admin.sock").exists());
    assert_eq!(pid_of(&p, "web"), pid, "web was left alone");
    assert!(ask_tcp(&address).starts_with(&format!("http 0 {pid} ")));
}
