use std::time::Duration;

use crate::harness::*;

/// A service whose leader starts a grandchild in its group and one that escapes it with
/// setsid from a subshell that exits (so the escaped one is re-parented to tend).
fn escaping_service(cgroups: &str) -> String {
    format!(
        r#"
[tend]
cgroups = "{cgroups}"

[services.forker]
command = "sh -c 'sleep 1000 & echo $! > inner.pid; (setsid sleep 1000 & echo $! > escaped.pid); exec sleep 1000'"
stop_timeout = "2s"
"#
    )
}

fn read_pid(p: &Project, name: &str) -> i32 {
    wait_until(Duration::from_secs(5), name, || {
        !p.read(name).trim().is_empty()
    });
    p.read(name).trim().parse().unwrap()
}

fn stop_takes_the_whole_tree(cgroups: &str) {
    let p = Project::new(&escaping_service(cgroups));
    let _d = p.up();
    let leader = p.instance("forker")["pid"].as_i64().unwrap() as i32;
    let inner = read_pid(&p, "inner.pid");
    let escaped = read_pid(&p, "escaped.pid");
    assert!(alive(leader) && alive(inner) && alive(escaped));
    // The escaped process really left the group.
    let pgid = |pid: i32| unsafe { libc::getpgid(pid) };
    wait_until(
        Duration::from_secs(5),
        "the escape (setsid) to happen",
        || pgid(escaped) != pgid(leader),
    );

    let out = p.tend(&["stop", "forker"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for (what, pid) in [
        ("leader", leader),
        ("grandchild", inner),
        ("escaped grandchild", escaped),
    ] {
        wait_until(Duration::from_secs(5), &format!("{what} gone"), || {
            !alive(pid)
        });
    }
}

#[test]
fn stop_takes_the_whole_tree_with_cgroups() {
    stop_takes_the_whole_tree("auto");
}

#[test]
fn stop_takes_the_whole_tree_without_cgroups() {
    stop_takes_the_whole_tree("off");
}

#[test]
fn leftovers_of_a_crashed_leader_are_stopped_before_the_restart() {
    let p = Project::new(
        r#"
[tend]
cgroups = "off"

[services.leaky]
command = "sh -c 'sleep 1000 & echo $! >> children; sleep 0.3; exit 1'"
backoff = { initial = "0s", max = "0s" }
max_restarts = 2
"#,
    );
    let _d = p.up_allow_failure();
    p.wait_state("leaky", "fatal", Duration::from_secs(20));
    let children: Vec<i32> = p
        .read("children")
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(children.len(), 3);
    for pid in children {
        wait_until(Duration::from_secs(5), "leftover gone", || !alive(pid));
    }
}

#[test]
fn no_zombies_from_adopted_orphans() {
    let p = Project::new(
        r#"
[services.parent]
command = "sh -c 'for i in 1 2 3 4 5; do (sleep 0.05 &) ; done; exec sleep 1000'"
"#,
    );
    let d = p.up();
    let tend = d.pid().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    wait_until(Duration::from_secs(5), "no zombie children of tend", || {
        !std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                return false;
            };
            let Some(i) = stat.rfind(')') else {
                return false;
            };
            let fields: Vec<&str> = stat[i + 2..].split(' ').collect();
            fields[0] == "Z" && fields[1] == tend.to_string()
        })
    });
}

#[test]
fn down_stops_unclaimed_orphans_too() {
    // Without cgroups, an escaped grandchild that also cleared its environment cannot be
    // traced to its instance; it is still tend's (adopted) child, and does not outlive tend.
    let p = Project::new(
        r#"
[tend]
cgroups = "off"

[services.sneaky]
command = "sh -c '(env -i setsid sleep 1000 & echo $! > escaped.pid); exec sleep 1000'"
"#,
    );
    let d = p.up();
    let escaped = read_pid(&p, "escaped.pid");
    wait_until(
        Duration::from_secs(5),
        "the orphan to be adopted by tend",
        || {
            std::fs::read_to_string(format!("/proc/{escaped}/stat"))
                .ok()
                .and_then(|s| {
                    s[s.rfind(')').unwrap() + 2..]
                        .split(' ')
                        .nth(1)
                        .map(|f| f.parse::<i32>().unwrap())
                })
                == d.pid()
        },
    );
    let out = p.tend(&["down"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait_until(Duration::from_secs(5), "the orphan gone", || {
        !alive(escaped)
    });
}
