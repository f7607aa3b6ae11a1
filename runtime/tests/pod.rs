//! The pod, end to end through the real `podlab` binary (needs root): what
//! only podlab's own tests can see. Nothing is left on the host after
//! delete or gc, and a shared PID namespace has podlab's pause as PID 1.
//! The pod's shared and private namespaces, hostname, /dev/shm, /tmp,
//! localhost and memory limits are the suite's NET, UTS, IPC, ISO and CGR
//! tests, which CI runs on podlab.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn delete_leaves_nothing_on_the_host() {
    require_root!();
    let p = Podlab::new();
    let a = unique("del");
    let g = p.pod(&a, &sleepers(&a, BUSYBOX, &["one", "two"]));
    let uid = p.uid(&a);
    let state = p.runtime_state(&a);
    let mut pids = vec![state["pause"]["pid"].as_i64().unwrap()];
    for c in ["one", "two"] {
        pids.push(state["containers"][c]["pid"]["pid"].as_i64().unwrap());
    }
    assert!(pids.iter().all(|&pid| alive(pid)));
    assert!(
        !leftovers(&uid, &p.pod_dir(&a)).is_empty(),
        "the leftover check sees nothing of a live pod"
    );
    let out = p.run(&["delete", "pod", &a]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("pod \"{a}\" deleted")
    );
    assert_eq!(leftovers(&uid, &p.pod_dir(&a)), Vec::<String>::new());
    assert!(
        pids.iter().all(|&pid| !alive(pid)),
        "processes survive delete: {pids:?}"
    );
    let out = p.run(&["get", "pod", &a]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("not found"));
    drop(g);
}

#[test]
fn gc_cleans_up_after_a_killed_shim() {
    require_root!();
    let p = Podlab::new();
    let a = unique("gc");
    let _g = p.pod(&a, &sleepers(&a, BUSYBOX, &["one"]));
    let uid = p.uid(&a);
    let state = p.runtime_state(&a);
    let shim = state["shim"]["pid"].as_i64().unwrap();
    let pause = state["pause"]["pid"].as_i64().unwrap();
    // SAFETY: kill(2) of the shim this test's podlab started.
    unsafe { libc::kill(shim as i32, libc::SIGKILL) };
    assert!(eventually(Duration::from_secs(10), || (!alive(shim)).then_some(())).is_some());
    let phase = p.pod_json(&a)["status"]["phase"].clone();
    assert_eq!(
        phase, "Unknown",
        "a pod without its shim must not look Running"
    );
    let out = p.run(&["gc"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&a));
    let mut left = leftovers(&uid, &p.pod_dir(&a));
    left.retain(|l| !l.starts_with("record") && !l.starts_with("data"));
    assert_eq!(left, Vec::<String>::new());
    assert!(!alive(pause));
    assert_eq!(p.pod_json(&a)["status"]["phase"], "Failed");
    let again = p.run(&["gc"]);
    assert_eq!(
        String::from_utf8_lossy(&again.stdout).trim(),
        "nothing to collect"
    );
    assert!(p.run(&["delete", "pod", &a]).status.success());
    assert_eq!(leftovers(&uid, &p.pod_dir(&a)), Vec::<String>::new());
}

#[test]
fn share_process_namespace_lets_containers_see_each_other() {
    require_root!();
    let p = Podlab::new();
    let a = unique("sharepid");
    let m = PodManifest::named(&a)
        .container(ContainerSpec::of("one", BUSYBOX).command(&["sleep", "3601"]))
        .container(ContainerSpec::of("two", BUSYBOX).command(&["sleep", "3602"]))
        .share_process_namespace()
        .to_yaml();
    let _g = p.pod(&a, &m);
    let ps = p.exec_ok(&a, "two", &["ps", "-o", "pid,args"]);
    assert!(
        ps.contains("sleep 3601"),
        "two does not see one's process:\n{ps}"
    );
    // PID 1 is the pod's pause, which reaps every container's zombies.
    let first = ps.lines().nth(1).unwrap_or("");
    assert!(
        first.trim_start().starts_with("1 ") && first.contains("__pause"),
        "{ps}"
    );
}
