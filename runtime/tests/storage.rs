//! Where a pod's bytes go (issue 22), end to end through the real `podlab`
//! binary (needs root): what containers write lands under the data root on
//! disk, the state root keeps only records, and delete and gc clean both.
//! Eviction past an emptyDir's sizeLimit and a fresh writable layer after a
//! restart are the suite's STOR-003 and STOR-004, which CI runs on podlab.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use common::*;

/// Bytes in regular files under `dir`, not crossing into other filesystems
/// (a mount point under it is somebody else's bytes).
fn bytes_under(dir: &Path) -> u64 {
    let Ok(top) = std::fs::symlink_metadata(dir) else {
        return 0;
    };
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.dev() != top.dev() {
                continue;
            }
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() {
                total += m.blocks() * 512;
            }
        }
    }
    total
}

const MIB: u64 = 1 << 20;

fn writer(name: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: c
    image: {BUSYBOX}
    command: [sh, -c, 'echo the last line; exec sleep 3600']
    resources:
      limits:
        memory: 64Mi
    volumeMounts:
    - {{name: disk, mountPath: /disk}}
    - {{name: mem, mountPath: /mem}}
    - {{name: podmem, mountPath: /podmem}}
  volumes:
  - name: disk
    emptyDir: {{}}
  - name: mem
    emptyDir: {{medium: Memory, sizeLimit: 4Mi}}
  - name: podmem
    emptyDir: {{medium: Memory}}
"
    )
}

#[test]
fn what_a_container_writes_goes_to_the_data_root_and_delete_cleans_both() {
    require_root!();
    let p = Podlab::new();
    let a = unique("bytes");
    let g = p.pod(&a, &writer(&a));
    let uid = p.uid(&a);
    // Issue 22's done-when: 200 MB to /tmp leaves nothing under the state root.
    p.exec_ok(
        &a,
        "c",
        &["dd", "if=/dev/zero", "of=/tmp/big", "bs=1M", "count=200"],
    );
    p.exec_ok(
        &a,
        "c",
        &["dd", "if=/dev/zero", "of=/disk/big", "bs=1M", "count=20"],
    );
    let state = bytes_under(&p.pod_dir(&a));
    assert!(state < MIB, "{state} bytes under the state root");
    let data = p.data_dir(&a);
    let layer = bytes_under(&data.join("containers/c/upper"));
    assert!(layer >= 200 * MIB, "{layer} bytes in the writable layer");
    let volume = bytes_under(&data.join("volumes/disk"));
    assert!(volume >= 20 * MIB, "{volume} bytes in the emptyDir");
    // The log is on disk too.
    let log = eventually(Duration::from_secs(10), || {
        std::fs::read_to_string(data.join("logs/c/0.log"))
            .ok()
            .filter(|l| l.contains("the last line"))
    });
    assert!(log.is_some(), "no log under {}", data.display());
    assert!(!p.pod_dir(&a).join("logs").exists());

    // Memory-backed volumes stay tmpfs, sized by sizeLimit or else by the
    // pod's memory limit (64Mi here).
    let df = p.exec_ok(&a, "c", &["df", "-k", "/mem", "/podmem"]);
    let sizes: Vec<&str> = df
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(sizes, ["4096", "65536"], "{df}");
    let over = p.exec(
        &a,
        "c",
        &["dd", "if=/dev/zero", "of=/mem/f", "bs=1M", "count=8"],
    );
    assert!(!over.status.success(), "8 MiB fit a 4Mi memory volume");

    let out = p.run(&["delete", "pod", &a]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(leftovers(&uid, &p.pod_dir(&a)), Vec::<String>::new());
    assert!(!data.exists(), "{} survived delete", data.display());
    drop(g);
}

#[test]
fn gc_removes_data_whose_record_is_gone() {
    require_root!();
    let p = Podlab::new();
    let a = unique("orphan");
    let g = p.pod(&a, &sleepers(&a, BUSYBOX, &["c"]));
    let keep = p.data_dir(&a);
    assert!(keep.join("logs").exists());
    // The state root is a tmpfs that a reboot wipes: its records go, the
    // data on disk stays.
    let ghost = p.data.join("pods/default/ghost");
    std::fs::create_dir_all(ghost.join("logs/c")).unwrap();
    std::fs::write(ghost.join("logs/c/0.log"), b"old\n").unwrap();
    let out = p.run(&["gc"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("removed the data of pod/ghost"), "{stdout}");
    assert!(!ghost.exists());
    // A live pod's data is not an orphan.
    assert!(keep.join("logs").exists());
    drop(g);
    assert!(!keep.exists());
}

#[test]
fn a_data_root_is_not_shared_by_two_state_roots() {
    require_root!();
    let p = Podlab::new();
    let other = Podlab::new();
    assert!(p.run(&["get", "pods"]).status.success());
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("podlab"))
        .arg("--root")
        .arg(other.root.path())
        .arg("--data-root")
        .arg(&p.data)
        .args(["get", "pods"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("belongs to the state root"), "{stderr}");
}

/// Issue 22's done-when: a container that logs 60 MB leaves at most 50 MiB
/// of logs (the kubelet's 10Mi x 5) and `logs --tail 1` shows its last line.
#[test]
fn a_log_past_rotation_stays_bounded_and_shows_its_tail() {
    require_root!();
    let p = Podlab::new();
    let a = unique("chatty");
    // 60 000 lines of 1000 bytes, then the last line.
    let script =
        "l=x; for i in 1 2 3 4 5 6 7 8 9 10; do l=$l$l; done; l=$(echo $l | cut -c1-999); \
                  i=0; while [ $i -lt 60 ]; do yes $l | head -n 1000; i=$((i+1)); done; \
                  echo the-last-line; exec sleep 3600";
    let _g = p.pod(
        &a,
        &PodManifest::named(&a)
            .container(ContainerSpec::of("c", BUSYBOX).sh(script))
            .to_yaml(),
    );
    let tail = eventually(Duration::from_secs(120), || {
        let out = p.run(&["logs", &a, "--tail", "1"]);
        let s = String::from_utf8_lossy(&out.stdout).into_owned();
        (s == "the-last-line\n").then_some(s)
    });
    let logs = p.data_dir(&a).join("logs/c");
    let files: Vec<String> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(tail.is_some(), "no last line; files {files:?}");
    let total = bytes_under(&logs);
    assert!(total <= 50 * MIB, "{total} bytes of logs: {files:?}");
    assert_eq!(files.len(), 5, "{files:?}");
    // Records in the CRI format, the newest lines kept.
    let out = p.run(&["logs", &a, "--tail", "2", "--timestamps"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[1].ends_with("Z the-last-line"), "{text}");
    assert!(lines[0].ends_with(&"x".repeat(999)), "{text}");
    let current = std::fs::read_to_string(logs.join("0.log")).unwrap();
    let last = current.lines().last().unwrap();
    assert!(last.contains(" stdout F the-last-line"), "{last}");
    // --since filters by the records' times.
    let none = p.run(&["logs", &a, "--since", "1h"]);
    assert!(String::from_utf8_lossy(&none.stdout).ends_with("the-last-line\n"));
}

#[test]
fn previous_shows_the_last_start_and_refuses_without_one() {
    require_root!();
    let p = Podlab::new();
    let a = unique("prev");
    let _g = p.pod(
        &a,
        &PodManifest::named(&a)
            .container(
                ContainerSpec::of("c", BUSYBOX)
                    .sh("echo run $(cat /proc/sys/kernel/random/uuid); exec sleep 3600"),
            )
            .to_yaml(),
    );
    let out = p.run(&["logs", &a, "--previous"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("previous terminated container"));
    let first = eventually(Duration::from_secs(10), || {
        let s = String::from_utf8_lossy(&p.run(&["logs", &a]).stdout).into_owned();
        s.starts_with("run ").then_some(s)
    })
    .expect("first start's log");
    let pid = p.runtime_state(&a)["containers"]["c"]["pid"]["pid"]
        .as_i64()
        .unwrap();
    // SAFETY: kill(2) of the container this test started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let second = eventually(Duration::from_secs(20), || {
        let s = String::from_utf8_lossy(&p.run(&["logs", &a]).stdout).into_owned();
        (s.starts_with("run ") && s != first).then_some(s)
    });
    assert!(second.is_some(), "no second start's log");
    let prev = p.run(&["logs", &a, "-p"]);
    assert_eq!(String::from_utf8_lossy(&prev.stdout), first);
}

#[test]
fn follow_prints_what_the_container_writes_until_it_stops() {
    require_root!();
    let p = Podlab::new();
    let a = unique("follow");
    let manifest = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {a}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 0
  containers:
  - name: c
    image: {BUSYBOX}
    command: [sh, -c, 'echo one; sleep 1; echo two; sleep 1; echo three']
"
    );
    let _g = p.pod(&a, &manifest);
    let child = spawnable(&p)
        .args(["logs", &a, "-f"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i64;
    // It ends by itself when the container stops.
    let ended = eventually(Duration::from_secs(30), || (!alive(pid)).then_some(()));
    if ended.is_none() {
        // SAFETY: kill(2) of the podlab logs this test started.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    let out = child.wait_with_output().unwrap();
    assert!(ended.is_some(), "logs -f did not end: {out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "one\ntwo\nthree\n");
}

/// Applies with the storage scan every 200 ms (the shim inherits it).
fn apply_scanned<'a>(p: &'a Podlab, name: &str, manifest: &str) -> PodGuard<'a> {
    let out = p
        .cmd()
        .env("PODLAB_STORAGE_SCAN_MS", "200")
        .args(["apply", "-f", "-", "--wait-ready=60s"])
        .write_stdin(manifest.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "apply: {out:?}");
    PodGuard {
        podlab: p,
        name: name.to_string(),
    }
}

fn evicted(p: &Podlab, name: &str) -> Option<serde_json::Value> {
    eventually(Duration::from_secs(60), || {
        let st = p.pod_json(name)["status"].clone();
        (st["phase"] == "Failed").then_some(st)
    })
}

fn events(p: &Podlab, name: &str) -> String {
    std::fs::read_to_string(p.pod_dir(name).join("events.jsonl")).unwrap_or_default()
}

#[test]
fn a_container_past_its_ephemeral_storage_limit_is_evicted() {
    require_root!();
    let p = Podlab::new();
    let a = unique("ephemeral");
    let manifest = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {a}
spec:
  terminationGracePeriodSeconds: 30
  containers:
  - name: writer
    image: {BUSYBOX}
    command: [sh, -c, 'sleep 1; dd if=/dev/zero of=/tmp/big bs=1M count=50; exec sleep 3600']
    resources:
      requests:
        ephemeral-storage: 10Mi
      limits:
        ephemeral-storage: 20Mi
  - name: idle
    image: {BUSYBOX}
    command: [sleep, '3600']
    resources:
      limits:
        ephemeral-storage: 1Gi
"
    );
    let _g = apply_scanned(&p, &a, &manifest);
    let st = evicted(&p, &a).expect("not evicted");
    assert_eq!(st["reason"], "Evicted", "{st}");
    assert_eq!(
        st["message"],
        "Container writer exceeded its local ephemeral storage limit \"20Mi\". "
    );
    let ev = events(&p, &a);
    assert!(ev.contains("\"reason\":\"Evicted\""), "{ev}");
    // Every container killed at once (the pod's 30 s grace period is not
    // waited for) and not restarted.
    let st = eventually(Duration::from_secs(10), || {
        let st = p.pod_json(&a)["status"].clone();
        st["containerStatuses"]
            .as_array()?
            .iter()
            .all(|cs| cs["state"]["terminated"].is_object())
            .then_some(st)
    })
    .expect("containers still running after the eviction");
    for cs in st["containerStatuses"].as_array().unwrap() {
        assert_eq!(cs["restartCount"], 0, "{st}");
    }
    assert_eq!(st["phase"], "Failed", "{st}");
}

#[test]
fn a_pod_within_its_limits_is_not_evicted() {
    require_root!();
    let p = Podlab::new();
    let a = unique("within");
    let manifest = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {a}
spec:
  terminationGracePeriodSeconds: 0
  restartPolicy: Never
  containers:
  - name: writer
    image: {BUSYBOX}
    command: [sh, -c, 'dd if=/dev/zero of=/scratch/f bs=1M count=5; dd if=/dev/zero of=/tmp/f bs=1M count=5; sleep 2']
    resources:
      limits:
        ephemeral-storage: 20Mi
    volumeMounts:
    - {{name: scratch, mountPath: /scratch}}
  volumes:
  - name: scratch
    emptyDir: {{sizeLimit: 10Mi}}
"
    );
    let _g = apply_scanned(&p, &a, &manifest);
    let st = eventually(Duration::from_secs(30), || {
        let st = p.pod_json(&a)["status"].clone();
        (st["phase"] == "Succeeded" || st["phase"] == "Failed").then_some(st)
    })
    .expect("the pod did not finish");
    assert_eq!(st["phase"], "Succeeded", "{st}");
}

#[test]
fn the_scheduler_counts_ephemeral_storage_requests() {
    require_root!();
    let p = Podlab::new();
    let a = unique("huge");
    let manifest = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {a}
spec:
  containers:
  - name: c
    image: {BUSYBOX}
    command: [sleep, '3600']
    resources:
      requests:
        ephemeral-storage: 1000Ti
"
    );
    let out = p
        .cmd()
        .args(["apply", "-f", "-"])
        .write_stdin(manifest)
        .output()
        .unwrap();
    let _g = PodGuard {
        podlab: &p,
        name: a.clone(),
    };
    assert!(out.status.success(), "{out:?}");
    let st = p.pod_json(&a)["status"].clone();
    assert_eq!(st["phase"], "Pending", "{st}");
    let cond = st["conditions"].to_string();
    assert!(
        cond.contains("0/1 nodes are available: 1 Insufficient ephemeral-storage."),
        "{cond}"
    );
}

/// A container that prints without pause keeps its log bounded and does not
/// keep the shim from its work: delete still stops the pod.
#[test]
fn a_container_that_never_stops_printing_is_bounded_and_deletable() {
    require_root!();
    let p = Podlab::new();
    let a = unique("yes");
    let g = p.pod(
        &a,
        &PodManifest::named(&a)
            .container(ContainerSpec::of("c", BUSYBOX).command(&["yes"]))
            .to_yaml(),
    );
    let uid = p.uid(&a);
    let logs = p.data_dir(&a).join("logs/c");
    // Past one rotation of a 10Mi file.
    let rotated = eventually(Duration::from_secs(60), || {
        logs.join("0.log.1").exists().then_some(())
    });
    assert!(rotated.is_some(), "no rotation in {}", logs.display());
    let out = p.run(&["logs", &a, "--tail", "3"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "y\ny\ny\n");
    let total = bytes_under(&logs);
    assert!(total <= 50 * MIB, "{total} bytes of logs");
    let out = p.run(&["delete", "pod", &a]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(leftovers(&uid, &p.pod_dir(&a)), Vec::<String>::new());
    drop(g);
}
