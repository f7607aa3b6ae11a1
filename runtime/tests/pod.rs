//! The pod, end to end through the real `podlab` binary (needs root).
//! Issue 2's "done when": shared net/UTS/IPC, private mnt/pid, hostname,
//! shared /dev/shm, private /tmp, localhost between containers, per-container
//! memory limits, and nothing left on the host after delete or gc.

mod common;

use std::time::Duration;

use common::*;

fn ns_of(p: &Podlab, pod: &str, c: &str) -> serde_json::Value {
    p.probe(pod, c, &["ns"])
}

#[test]
fn containers_share_net_uts_ipc_and_keep_their_own_mnt_pid() {
    require_root!();
    let p = Podlab::new();
    let a = unique("share");
    let b = unique("other");
    let sleep: &[&str] = &["sleep", "3600"];
    let _ga = p.pod(
        &a,
        &manifest(
            &a,
            &[("one", PROBE, sleep, None), ("two", PROBE, sleep, None)],
        ),
    );
    let _gb = p.pod(&b, &manifest(&b, &[("one", PROBE, sleep, None)]));

    let one = ns_of(&p, &a, "one");
    let two = ns_of(&p, &a, "two");
    let other = ns_of(&p, &b, "one");
    let host = |k: &str| {
        std::fs::read_link(format!("/proc/self/ns/{k}"))
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };
    for k in ["net", "uts", "ipc"] {
        assert_eq!(
            one[k], two[k],
            "{k} differs between containers of {a}: {one} vs {two}"
        );
        assert_ne!(one[k], other[k], "{k} shared between pods {a} and {b}");
        assert_ne!(one[k].as_str(), Some(host(k).as_str()), "{k} is the host's");
    }
    for k in ["mnt", "pid"] {
        assert_ne!(
            one[k], two[k],
            "{k} shared between containers of {a}: {one}"
        );
    }
    // Own PID namespace: the container's command is PID 1 and nothing of the host is visible.
    let ps = p.probe(&a, "one", &["ps"]);
    let pids = ps["pids"].as_array().unwrap();
    assert!(pids.len() <= 3, "container sees foreign processes: {ps}");
    assert!(pids.iter().any(|x| x == 1), "{ps}");
}

#[test]
fn hostname_is_the_pod_name_or_spec_hostname() {
    require_root!();
    let p = Podlab::new();
    let a = unique("host");
    let _g = p.pod(
        &a,
        &manifest(
            &a,
            &[
                ("one", BUSYBOX, &["sleep", "3600"], None),
                ("two", BUSYBOX, &["sleep", "3600"], None),
            ],
        ),
    );
    assert_eq!(p.exec_ok(&a, "one", &["hostname"]).trim(), a);
    assert_eq!(p.exec_ok(&a, "two", &["cat", "/etc/hostname"]).trim(), a);
    let b = unique("named");
    let m = manifest(&b, &[("one", BUSYBOX, &["sleep", "3600"], None)])
        .replace("spec:\n", "spec:\n  hostname: custom-host\n");
    let _g2 = p.pod(&b, &m);
    assert_eq!(p.exec_ok(&b, "one", &["hostname"]).trim(), "custom-host");
}

#[test]
fn dev_shm_is_shared_in_the_pod_and_tmp_is_not() {
    require_root!();
    let p = Podlab::new();
    let a = unique("shm");
    let b = unique("shm-other");
    let sleep: &[&str] = &["sleep", "3600"];
    let _ga = p.pod(
        &a,
        &manifest(
            &a,
            &[("one", BUSYBOX, sleep, None), ("two", BUSYBOX, sleep, None)],
        ),
    );
    let _gb = p.pod(&b, &manifest(&b, &[("one", BUSYBOX, sleep, None)]));
    p.exec_ok(
        &a,
        "one",
        &[
            "sh",
            "-c",
            "echo pod-token > /dev/shm/t && echo private > /tmp/t",
        ],
    );
    assert_eq!(
        p.exec_ok(&a, "two", &["cat", "/dev/shm/t"]).trim(),
        "pod-token"
    );
    assert!(
        !p.exec(&a, "two", &["cat", "/tmp/t"]).status.success(),
        "/tmp is shared between containers"
    );
    assert!(
        !p.exec(&b, "one", &["cat", "/dev/shm/t"]).status.success(),
        "/dev/shm leaks to another pod"
    );
}

#[test]
fn tcp_over_localhost_between_containers_and_not_across_pods() {
    require_root!();
    let p = Podlab::new();
    let a = unique("tcp");
    let b = unique("tcp-other");
    let server: &[&str] = &[
        "probe",
        "listen",
        "--proto",
        "tcp",
        "--addr",
        "127.0.0.1",
        "--port",
        "7070",
        "--token",
        "tok-42",
        "--count",
        "1000",
        "--timeout-ms",
        "600000",
    ];
    let _ga = p.pod(
        &a,
        &manifest(
            &a,
            &[
                ("server", PROBE, server, None),
                ("client", PROBE, &["sleep", "3600"], None),
            ],
        ),
    );
    let _gb = p.pod(
        &b,
        &manifest(&b, &[("client", PROBE, &["sleep", "3600"], None)]),
    );
    let got = eventually(Duration::from_secs(20), || {
        let r = p.probe(
            &a,
            "client",
            &[
                "connect",
                "--proto",
                "tcp",
                "--addr",
                "127.0.0.1",
                "--port",
                "7070",
            ],
        );
        (r["ok"] == true).then_some(r)
    })
    .expect("client never reached the server over 127.0.0.1");
    assert_eq!(got["data"], "tok-42");
    let r = p.probe(
        &b,
        "client",
        &[
            "connect",
            "--proto",
            "tcp",
            "--addr",
            "127.0.0.1",
            "--port",
            "7070",
        ],
    );
    assert_eq!(r["error"], "ECONNREFUSED", "another pod reached it: {r}");
    let r = p.probe(
        &a,
        "client",
        &[
            "bind",
            "--proto",
            "tcp",
            "--addr",
            "127.0.0.1",
            "--port",
            "7070",
        ],
    );
    assert_eq!(r["error"], "EADDRINUSE", "{r}");
}

#[test]
fn memory_limits_are_per_container() {
    require_root!();
    let p = Podlab::new();
    let a = unique("mem");
    let sleep: &[&str] = &["sleep", "3600"];
    let _g = p.pod(
        &a,
        &manifest(
            &a,
            &[
                ("small", PROBE, sleep, Some("64Mi")),
                ("large", PROBE, sleep, Some("256Mi")),
            ],
        ),
    );
    let small = p.exec(&a, "small", &["probe", "alloc", "120"]);
    assert_eq!(
        small.status.code(),
        Some(137),
        "120 MiB in a 64Mi container was not OOM-killed: {small:?}"
    );
    let large = p.probe(&a, "large", &["alloc", "120"]);
    assert_eq!(large["allocated_mib"], 120, "{large}");
    let cg = p.probe(&a, "small", &["cgroup"]);
    if cg["visible"] == true {
        assert_eq!(cg["memory_limit_bytes"], 64 * 1024 * 1024, "{cg}");
    }
}

#[test]
fn delete_leaves_nothing_on_the_host() {
    require_root!();
    let p = Podlab::new();
    let a = unique("del");
    let g = p.pod(
        &a,
        &manifest(
            &a,
            &[
                ("one", BUSYBOX, &["sleep", "3600"], None),
                ("two", BUSYBOX, &["sleep", "3600"], None),
            ],
        ),
    );
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
    let _g = p.pod(
        &a,
        &manifest(&a, &[("one", BUSYBOX, &["sleep", "3600"], None)]),
    );
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
    let m = manifest(
        &a,
        &[
            ("one", BUSYBOX, &["sleep", "3601"], None),
            ("two", BUSYBOX, &["sleep", "3602"], None),
        ],
    )
    .replace("spec:\n", "spec:\n  shareProcessNamespace: true\n");
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
