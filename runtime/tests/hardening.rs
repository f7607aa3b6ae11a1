//! Reliability under churn, crashes and concurrency: podlab never leaves a
//! host dirty and never loses track of a pod. PODLAB_CHURN sets the number
//! of create/delete cycles (default 25 here; the full run uses 1000).

mod common;

use std::time::Duration;

use common::*;

fn sleeper(name: &str) -> String {
    sleepers(name, BUSYBOX, &["one", "two"])
}

fn status(p: &Podlab, name: &str) -> serde_json::Value {
    p.pod_json(name)["status"].clone()
}

#[test]
fn churn_leaves_nothing_behind() {
    require_root!();
    let cycles: usize = std::env::var("PODLAB_CHURN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(25);
    let p = Podlab::new();
    let mut seen = Vec::new();
    for i in 0..cycles {
        let name = format!("{}-{i}", unique("churn"));
        let out = p.apply(&sleeper(&name));
        assert!(out.status.success(), "cycle {i}: {out:?}");
        let uid = p.uid(&name);
        let out = p.run(&["delete", "pod", &name, "--grace-period", "0"]);
        assert!(out.status.success(), "cycle {i}: {out:?}");
        seen.push((uid, p.pod_dir(&name)));
    }
    for (uid, dir) in &seen {
        assert_eq!(leftovers(uid, dir), Vec::<String>::new());
    }
    let gc = p.run(&["gc"]);
    assert_eq!(
        String::from_utf8_lossy(&gc.stdout).trim(),
        "nothing to collect"
    );
}

#[test]
fn a_killed_pause_fails_the_pod_and_delete_releases_it() {
    require_root!();
    let p = Podlab::new();
    let a = unique("pausekill");
    let _g = p.pod(&a, &sleeper(&a));
    let uid = p.uid(&a);
    let pause = p.runtime_state(&a)["pause"]["pid"].as_i64().unwrap();
    // SAFETY: kill(2) of the pause this test's podlab started.
    unsafe { libc::kill(pause as i32, libc::SIGKILL) };
    let st = eventually(Duration::from_secs(10), || {
        let s = status(&p, &a);
        (s["phase"] == "Failed").then_some(s)
    })
    .expect("the pod still looks healthy after its pause died");
    assert_eq!(st["reason"], "SandboxDied", "{st}");
    assert!(p.run(&["delete", "pod", &a]).status.success());
    assert_eq!(leftovers(&uid, &p.pod_dir(&a)), Vec::<String>::new());
}

#[test]
fn a_killed_container_is_restarted_and_counted() {
    require_root!();
    let p = Podlab::new();
    let a = unique("ctrkill");
    let _g = p.pod(&a, &sleeper(&a));
    let pid = p.runtime_state(&a)["containers"]["one"]["pid"]["pid"]
        .as_i64()
        .unwrap();
    // SAFETY: kill(2) of the container process this test's podlab started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let st = eventually(Duration::from_secs(20), || {
        let s = status(&p, &a);
        let one = s["containerStatuses"]
            .as_array()?
            .iter()
            .find(|c| c["name"] == "one")?
            .clone();
        (one["restartCount"].as_i64() >= Some(1) && one["state"]["running"].is_object())
            .then_some(one)
    })
    .expect("the killed container was not restarted");
    assert_eq!(st["lastState"]["terminated"]["exitCode"], 137, "{st}");
    assert_eq!(st["lastState"]["terminated"]["signal"], 9, "{st}");
    assert_eq!(status(&p, &a)["phase"], "Running");
}

#[test]
fn an_abandoned_or_torn_record_is_reported_and_collected() {
    require_root!();
    let p = Podlab::new();
    let a = unique("torn");
    let _g = p.pod(&a, &sleeper(&a));
    let dir = p.pod_dir(&a);
    std::fs::write(dir.join("status.json"), b"{\"phase\": \"Runn").unwrap();
    let st = status(&p, &a);
    assert_eq!(st["phase"], "Unknown", "{st}");
    assert_eq!(st["reason"], "CorruptRecord", "{st}");
    // A record whose apply died before handing it to a shim (kill -9 of the
    // CLI mid-apply) holds nothing and is collected as Failed.
    let b = unique("orphan");
    let orphan = p.root.path().join("pods/default").join(&b);
    std::fs::create_dir_all(&orphan).unwrap();
    let mut pod: serde_json::Value = serde_norway::from_str(&sleeper(&b)).unwrap();
    pod["metadata"]["uid"] = serde_json::json!("00000000-0000-4000-8000-00000000podl");
    std::fs::write(orphan.join("pod.json"), serde_json::to_vec(&pod).unwrap()).unwrap();
    let out = p.run(&["gc"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(status(&p, &b)["phase"], "Failed");
    assert!(p.run(&["delete", "pod", &b]).status.success());
    assert!(!orphan.exists());
}

#[test]
fn parallel_applies_and_deletes_lose_nothing() {
    require_root!();
    let p = Podlab::new();
    let names: Vec<String> = (0..20).map(|i| format!("{}-{i}", unique("par"))).collect();
    std::thread::scope(|s| {
        for n in &names {
            let p = &p;
            s.spawn(move || {
                let out = p.apply(&sleepers(n, BUSYBOX, &["one"]));
                assert!(out.status.success(), "{n}: {out:?}");
            });
        }
    });
    let list: serde_json::Value =
        serde_json::from_slice(&p.run(&["get", "pods", "-o", "json"]).stdout).unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 20, "pods were lost");
    let mut uids: Vec<&str> = items
        .iter()
        .map(|i| i["metadata"]["uid"].as_str().unwrap())
        .collect();
    uids.sort();
    uids.dedup();
    assert_eq!(uids.len(), 20);
    assert!(items.iter().all(|i| i["status"]["phase"] == "Running"));
    let dirs: Vec<(String, std::path::PathBuf)> = items
        .iter()
        .map(|i| {
            let n = i["metadata"]["name"].as_str().unwrap();
            (
                i["metadata"]["uid"].as_str().unwrap().to_string(),
                p.pod_dir(n),
            )
        })
        .collect();
    std::thread::scope(|s| {
        for n in &names {
            let p = &p;
            s.spawn(move || {
                let out = p.run(&["delete", "pod", n, "--grace-period", "0"]);
                assert!(out.status.success(), "{n}: {out:?}");
            });
        }
    });
    for (uid, dir) in &dirs {
        assert_eq!(leftovers(uid, dir), Vec::<String>::new());
    }
}

/// kill -9 of `podlab apply` (and, at a shim stage, of the shim too) at a
/// stage the test hook stops it at; then the pod must be reported Failed or
/// Unknown with a reason, and gc plus delete must release every host
/// resource: netns, veth, IP lease, cgroups, mounts, record, processes.
fn kill_mid_apply(stage: &str) {
    let p = Podlab::new();
    let a = unique(stage);
    let dir = p.pod_dir(&a);
    let log = p.root.path().join("apply.stderr");
    let mut cli = spawnable(&p)
        .args(["apply", "-f", "-", "--wait-ready=60s"])
        .env("PODLAB_TEST_STALL_AT", stage)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn apply");
    {
        use std::io::Write;
        let mut stdin = cli.stdin.take().unwrap();
        stdin.write_all(sleeper(&a).as_bytes()).unwrap();
    }
    let cli_pid = i64::from(cli.id());
    let in_shim = stage.starts_with("shim-");
    // The process the hook stops: the CLI, or the shim the CLI recorded.
    let stopped = eventually(Duration::from_secs(30), || {
        let pid = if in_shim {
            let shim: serde_json::Value =
                serde_json::from_slice(&std::fs::read(dir.join("shim.json")).ok()?).ok()?;
            shim["pid"].as_i64()?
        } else {
            cli_pid
        };
        (process_state(pid) == Some('T')).then_some(pid)
    })
    .unwrap_or_else(|| {
        panic!(
            "apply never stalled at {stage}: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    let marker = format!("podlab: test hook: stalled at {stage}");
    let said = if in_shim {
        std::fs::read_to_string(dir.join("shim.log")).unwrap_or_default()
    } else {
        std::fs::read_to_string(&log).unwrap_or_default()
    };
    assert!(said.contains(&marker), "{said}");
    let uid = p.uid(&a);
    let veths = veths_of(&uid);
    if in_shim {
        assert!(!veths.is_empty(), "the sandbox had no veth yet");
        assert!(
            !leases_of(&uid).is_empty(),
            "the sandbox had no IP lease yet"
        );
    }
    for pid in [Some(stopped), Some(cli_pid)].into_iter().flatten() {
        // SAFETY: kill(2) of processes this test started (the CLI) or that
        // its CLI started (the shim, read from the pod's shim.json).
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    let _ = cli.wait();

    // Never Running, never Pending forever: a verdict with a reason.
    let st = eventually(Duration::from_secs(10), || {
        let s = status(&p, &a);
        (s["phase"] == "Failed" || s["phase"] == "Unknown").then_some(s)
    })
    .unwrap_or_else(|| panic!("after kill -9 at {stage} the pod shows {}", status(&p, &a)));
    assert!(st["reason"].as_str().is_some_and(|r| !r.is_empty()), "{st}");

    let gc = p.run(&["gc"]);
    assert!(gc.status.success(), "{gc:?}");
    let st = status(&p, &a);
    assert_eq!(st["phase"], "Failed", "{st}");
    assert!(st["reason"].as_str().is_some_and(|r| !r.is_empty()), "{st}");
    // Nothing of the pod runs any more, nothing holds its network.
    let gone = eventually(Duration::from_secs(10), || {
        let left: Vec<String> = processes_naming(p.root.path())
            .into_iter()
            .chain(leases_of(&uid))
            .chain(veths.iter().filter(|v| link_exists(v)).cloned())
            .collect();
        left.is_empty().then_some(())
    });
    assert!(
        gone.is_some(),
        "after gc: {:?} {:?} {:?}",
        processes_naming(p.root.path()),
        leases_of(&uid),
        veths
    );
    let out = p.run(&["delete", "pod", &a]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(leftovers(&uid, &dir), Vec::<String>::new());
    assert_eq!(processes_naming(p.root.path()), Vec::<String>::new());
    let gc = p.run(&["gc"]);
    assert_eq!(
        String::from_utf8_lossy(&gc.stdout).trim(),
        "nothing to collect"
    );
}

#[test]
fn apply_killed_after_storing_the_record() {
    require_root!();
    kill_mid_apply("apply-stored");
}

#[test]
fn apply_killed_after_binding_the_pod() {
    require_root!();
    kill_mid_apply("apply-bound");
}

#[test]
fn apply_killed_between_starting_and_recording_the_shim() {
    require_root!();
    kill_mid_apply("apply-spawned");
}

#[test]
fn apply_and_shim_killed_with_the_sandbox_half_made() {
    require_root!();
    kill_mid_apply("shim-sandbox");
}
