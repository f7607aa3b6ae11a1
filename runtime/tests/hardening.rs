//! Reliability under churn, crashes and concurrency: podlab never leaves a
//! host dirty and never loses track of a pod. PODLAB_CHURN sets the number
//! of create/delete cycles (default 25 here; the full run uses 1000).

mod common;

use std::time::Duration;

use common::*;

fn sleeper(name: &str) -> String {
    manifest(
        name,
        &[
            ("one", BUSYBOX, &["sleep", "3600"], None),
            ("two", BUSYBOX, &["sleep", "3600"], None),
        ],
    )
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
                let out = p.apply(&manifest(n, &[("one", BUSYBOX, &["sleep", "3600"], None)]));
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
