//! The kubectl-shaped CLI through the real binary: status objects, tables,
//! exec exit codes, logs, and refused manifests that create nothing.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn get_prints_v1_pod_objects_with_status() {
    require_root!();
    let p = Podlab::new();
    let a = unique("get");
    let _g = p.pod(&a, &sleepers(&a, BUSYBOX, &["one"]));
    let pod = p.pod_json(&a);
    assert_eq!(pod["apiVersion"], "v1");
    assert_eq!(pod["kind"], "Pod");
    assert_eq!(pod["status"]["phase"], "Running");
    assert!(pod["status"]["hostIP"].is_string(), "{pod}");
    let cs = &pod["status"]["containerStatuses"][0];
    assert_eq!(cs["name"], "one");
    assert_eq!(cs["ready"], true);
    assert!(cs["state"]["running"]["startedAt"].is_string(), "{cs}");
    let conds: Vec<(String, String)> = pod["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for t in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
        assert!(
            conds.contains(&(t.to_string(), "True".to_string())),
            "{t} not True: {conds:?}"
        );
    }
    let list: serde_json::Value =
        serde_json::from_slice(&p.run(&["get", "pods", "-o", "json"]).stdout).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"][0]["metadata"]["name"], a.as_str());
    let table = String::from_utf8(p.run(&["get", "pods", "-o", "wide"]).stdout).unwrap();
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED",
            "NODE",
            "READINESS",
            "GATES"
        ]
    );
    assert!(
        table.lines().nth(1).unwrap().starts_with(&format!("{a} ")),
        "{table}"
    );
    assert!(
        table.contains("1/1") && table.contains("Running"),
        "{table}"
    );
}

#[test]
fn exec_returns_the_command_exit_code_and_logs_capture_output() {
    require_root!();
    let p = Podlab::new();
    let a = unique("exec");
    let cmd: &[&str] = &[
        "sh",
        "-c",
        "echo started-$HOSTNAME; echo to-stderr >&2; exec sleep 3600",
    ];
    let _g = p.pod(
        &a,
        &PodManifest::named(&a)
            .container(ContainerSpec::of("one", BUSYBOX).command(cmd))
            .to_yaml(),
    );
    assert_eq!(
        p.exec(&a, "one", &["sh", "-c", "exit 7"]).status.code(),
        Some(7)
    );
    assert_eq!(
        p.exec(&a, "one", &["sh", "-c", "kill -9 $$"]).status.code(),
        Some(137)
    );
    assert_eq!(
        p.exec(&a, "one", &["no-such-command"]).status.code(),
        Some(127)
    );
    // stdin reaches the command with -i only, as with kubectl.
    let cat = |flags: &[&str]| {
        let out = p
            .cmd()
            .arg("exec")
            .args(flags)
            .args([a.as_str(), "--", "cat"])
            .write_stdin("from-stdin")
            .timeout(std::time::Duration::from_secs(30))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(cat(&["-i"]), "from-stdin");
    assert_eq!(cat(&["--stdin"]), "from-stdin");
    assert_eq!(cat(&[]), "");
    assert_eq!(p.exec_ok(&a, "one", &["pwd"]).trim(), "/");
    let logs = eventually(std::time::Duration::from_secs(10), || {
        let out = p.run(&["logs", &a]);
        let s = String::from_utf8_lossy(&out.stdout).into_owned();
        s.contains("to-stderr").then_some(s)
    })
    .expect("logs never showed the container's output");
    assert!(logs.contains(&format!("started-{a}")), "{logs}");
    let missing = p.run(&["exec", &a, "-c", "nope", "--", "true"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("container nope not found"));
}

#[test]
fn bad_manifests_are_refused_and_create_nothing() {
    // Refusal happens before anything privileged, so this runs unprivileged too.
    let p = Podlab::new();
    // Should the refusal regress, the pod must not outlive the test.
    let _guard = PodGuard {
        podlab: &p,
        name: "bad".into(),
    };
    let bad = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  containers:\n  - name: a\n    image: busybox\n    imagee: typo\n";
    let out = p
        .cmd()
        .args(["apply", "-f", "-"])
        .write_stdin(bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("spec.containers[0].imagee"), "{err}");
    let kind = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n";
    let out = p
        .cmd()
        .args(["apply", "-f", "-"])
        .write_stdin(kind)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Deployment"),
        "{out:?}"
    );
    let pods = p.root.path().join("pods");
    let entries = std::fs::read_dir(&pods).map(|d| d.count()).unwrap_or(0);
    assert_eq!(
        entries,
        0,
        "a refused manifest left state in {}",
        pods.display()
    );
}

#[test]
fn unknown_pods_are_not_found() {
    let p = Podlab::new();
    // kubectl's words, whichever command meets the missing pod.
    for args in [
        &["delete", "pod", "ghost"][..],
        &["get", "pod", "ghost"],
        &["get", "pod", "ghost", "-o", "json"],
        &["describe", "pod", "ghost"],
        &["wait", "--for=condition=Ready", "pod/ghost"],
    ] {
        let out = p.run(args);
        assert!(!out.status.success(), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "Error from server (NotFound): pods \"ghost\" not found\n",
            "{args:?}"
        );
    }
    // A missing pod is as deleted as it gets.
    let out = p.run(&["wait", "--for=delete", "pod/ghost", "--timeout=1s"]);
    assert!(out.status.success(), "{out:?}");
    assert!(p
        .run(&["delete", "pod", "ghost", "--ignore-not-found"])
        .status
        .success());
    let out = p.run(&["get", "deployments"]);
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("doesn't have a resource type \"deployments\""));
}

/// The fields the API server and the kubelet add to a v1 Pod: the QoS class,
/// the repo digest as imageID, a resourceVersion that grows with every change
/// (store-wide), and the generation the kubelet reports having observed,
/// bumped by a graceful deletion.
#[test]
fn the_pod_object_carries_qos_image_id_and_versions() {
    require_root!();
    let p = Podlab::new();
    let a = unique("obj");
    let text = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {a}\nspec:\n  terminationGracePeriodSeconds: 30\n  containers:\n  - name: app\n    image: {BUSYBOX}\n    command: [sleep, \"3600\"]\n    resources:\n      limits: {{cpu: 100m, memory: 32Mi}}\n"
    );
    let _g = p.pod(&a, &text);
    let pod = p.pod_json(&a);
    assert_eq!(pod["status"]["qosClass"], "Guaranteed", "{pod}");
    let image_id = pod["status"]["containerStatuses"][0]["imageID"]
        .as_str()
        .unwrap()
        .to_string();
    let (repo, digest) = image_id.split_once('@').expect("repo@digest");
    assert_eq!(repo, "podlab.local/busybox", "{image_id}");
    assert!(
        digest.len() == 71 && digest.starts_with("sha256:"),
        "{image_id}"
    );
    let version = |pod: &serde_json::Value| -> u64 {
        pod["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("resourceVersion: {pod}"))
    };
    let running = version(&pod);
    assert!(running > 1, "the shim's status writes count: {pod}");
    assert_eq!(pod["metadata"]["generation"], 1);
    assert_eq!(pod["status"]["observedGeneration"], 1, "{pod}");
    // An unchanged pod keeps its version.
    assert_eq!(version(&p.pod_json(&a)), running);
    // Applied again with a label, the pod takes it; another change of the
    // spec is refused with Kubernetes' words.
    let relabeled = text.replace(
        &format!("  name: {a}\n"),
        &format!("  name: {a}\n  labels:\n    tier: front\n"),
    );
    let out = p.apply(&relabeled);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("pod/{a} configured")
    );
    let labeled = p.pod_json(&a);
    assert_eq!(labeled["metadata"]["labels"]["tier"], "front");
    assert!(version(&labeled) > running);
    assert_eq!(
        labeled["metadata"]["generation"], 1,
        "labels are not the spec"
    );
    let out = p.apply(&relabeled.replace("\"3600\"", "\"3601\""));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("spec: Forbidden: pod updates may not change fields other than"),
        "{out:?}"
    );
    let running = version(&p.pod_json(&a));

    let b = unique("obj");
    let _gb = p.pod(&b, &sleepers(&b, BUSYBOX, &["app"]));
    let other = p.pod_json(&b);
    assert_eq!(other["status"]["qosClass"], "BestEffort");
    assert!(version(&other) > running, "one counter for the store");

    // sleep as PID 1 ignores SIGTERM: the deletion waits out its grace
    // period, long enough to see the deleting pod.
    let mut delete = spawnable(&p)
        .args(["delete", "pod", &a])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let seen = eventually(Duration::from_secs(10), || {
        let out = p.run(&["get", "pod", &a, "-o", "json"]);
        let pod: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        (pod["status"]["observedGeneration"] == 2).then_some(pod)
    });
    let _ = p.run(&["delete", "pod", &a, "--grace-period", "0"]);
    let _ = delete.wait();
    let deleting = seen.expect("the kubelet observes the deletion's generation");
    assert_eq!(deleting["metadata"]["generation"], 2);
    assert!(deleting["metadata"]["deletionTimestamp"].is_string());
    assert!(version(&deleting) > version(&other), "{deleting}");
}

/// `podlab wait` as kubectl's: a condition met prints `pod/NAME condition
/// met`, one never met times out naming the pod and fails, `--for=delete`
/// returns once the pod is gone.
#[test]
fn wait_for_conditions_and_deletion() {
    require_root!();
    let p = Podlab::new();
    let a = unique("wait");
    let _g = p.pod(&a, &sleepers(&a, BUSYBOX, &["app"]));
    let target = format!("pod/{a}");
    let out = p.run(&["wait", "--for=condition=Ready", &target, "--timeout=30s"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("pod/{a} condition met\n")
    );
    let out = p.run(&[
        "wait",
        "--for=condition=Ready=False",
        &target,
        "--timeout=1s",
    ]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("error: timed out waiting for the condition on pods/{a}\n")
    );
    let out = p.run(&["wait", "--for=ready", &target]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--for"),
        "the error names the flag: {out:?}"
    );
    let waiter = spawnable(&p)
        .args(["wait", "--for=delete", &target, "--timeout=60s"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(p
        .run(&["delete", "pod", &a, "--grace-period", "0"])
        .status
        .success());
    let out = waiter.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("pod/{a} condition met\n")
    );
}

fn graceful(name: &str, grace: u32) -> String {
    PodManifest::named(name)
        .container(ContainerSpec::of("app", BUSYBOX))
        .grace_period(grace)
        .to_yaml()
}

/// `delete pod a b c ...` asks for every deletion before waiting for any, as
/// kubectl does: while the command runs there is a moment where every pod
/// is still there and already marked deleting (one after another, the last
/// would be marked only once the others were gone, a grace period each).
#[test]
fn delete_asks_for_every_deletion_before_waiting() {
    require_root!();
    let p = Podlab::new();
    let names: Vec<String> = (0..3).map(|_| unique("del")).collect();
    let _guards: Vec<_> = names.iter().map(|n| p.pod(n, &graceful(n, 5))).collect();
    let mut args = vec!["delete", "pod"];
    args.extend(names.iter().map(String::as_str));
    let mut delete = spawnable(&p)
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let all_marked = eventually(Duration::from_secs(4), || {
        let marked = names.iter().all(|n| {
            let out = p.run(&["get", "pod", n, "-o", "json"]);
            serde_json::from_slice::<serde_json::Value>(&out.stdout)
                .is_ok_and(|pod| pod["metadata"]["deletionTimestamp"].is_string())
        });
        marked.then_some(())
    });
    // PID 1 ignores SIGTERM: each pod goes at the end of its grace period.
    let status = delete.wait().unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut delete.stdout.take().unwrap(), &mut out).unwrap();
    assert!(all_marked.is_some(), "the pods were not all marked at once");
    assert!(status.success());
    let want: String = names
        .iter()
        .map(|n| format!("pod \"{n}\" deleted\n"))
        .collect();
    assert_eq!(out, want);
    for n in &names {
        assert!(!p.pod_dir(n).exists(), "{n} is still stored");
    }
}

/// `--wait=false` returns once the deletion is asked for; the pod's shim
/// finishes it alone.
#[test]
fn delete_without_waiting_returns_at_once() {
    require_root!();
    let p = Podlab::new();
    let a = unique("nowait");
    let _g = p.pod(&a, &graceful(&a, 30));
    let out = p.run(&["delete", "pod", &a, "--wait=false"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("pod \"{a}\" deleted\n")
    );
    // Still there, deleting: its 30 s grace period has not passed.
    let pod = p.pod_json(&a);
    assert!(pod["metadata"]["deletionTimestamp"].is_string(), "{pod}");
    assert_eq!(pod["metadata"]["deletionGracePeriodSeconds"], 30);
    // A second delete shortens the grace period and waits for the end.
    assert!(p
        .run(&["delete", "pod", &a, "--grace-period", "0"])
        .status
        .success());
    assert!(!p.pod_dir(&a).exists());
}

fn labelled(name: &str, labels: &[(&str, &str)]) -> String {
    labels
        .iter()
        .fold(PodManifest::named(name), |m, (k, v)| m.label(k, v))
        .container(ContainerSpec::of("app", BUSYBOX))
        .to_yaml()
}

/// kubectl's selection and printing flags: `-l` on get, watch and delete,
/// `-o name`, `-o jsonpath=`, `--no-headers`, `--watch-only`.
#[test]
fn selectors_and_output_formats() {
    require_root!();
    let p = Podlab::new();
    let web1 = unique("sel-a");
    let web2 = unique("sel-b");
    let db = unique("sel-c");
    let _g1 = p.pod(
        &web1,
        &labelled(&web1, &[("app", "web"), ("tier", "front")]),
    );
    let _g2 = p.pod(&web2, &labelled(&web2, &[("app", "web")]));
    let _g3 = p.pod(&db, &labelled(&db, &[("app", "db")]));
    let text = |args: &[&str]| {
        let out = p.run(args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let mut web = [web1.clone(), web2.clone()];
    web.sort();
    assert_eq!(
        text(&["get", "pods", "-l", "app=web", "-o", "name"]),
        format!("pod/{}\npod/{}\n", web[0], web[1])
    );
    assert_eq!(
        text(&[
            "get",
            "pods",
            "-l",
            "app in (db, other)",
            "-o",
            "jsonpath={.items[*].metadata.name}"
        ]),
        db
    );
    assert_eq!(
        text(&[
            "get",
            "pods",
            "-l",
            "app=web,!tier",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name}{"\t"}{.status.qosClass}{"\n"}{end}"#
        ]),
        format!("{web2}\tBestEffort\n")
    );
    assert_eq!(
        text(&[
            "get",
            "pod",
            &web1,
            "-o",
            "jsonpath={.metadata.labels.tier}"
        ]),
        "front"
    );
    let rows = text(&["get", "pods", "-l", "app!=db", "--no-headers"]);
    assert_eq!(rows.lines().count(), 2, "{rows}");
    assert!(rows.lines().all(|l| !l.starts_with("NAME")), "{rows}");
    let out = p.run(&["get", "pods", "-l", "app in (web"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("-l/--selector"),
        "the error names the flag: {out:?}"
    );

    // --watch-only: nothing for the pod as it is, one line per change after.
    let watcher = spawnable(&p)
        .args(["get", "pods", "-l", "app=db", "--watch-only", "-o", "json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once it watches the pod's records, changes cannot be missed.
    let watching = eventually(Duration::from_secs(10), || {
        watches_inotify(watcher.id()).then_some(())
    });
    assert!(watching.is_some(), "the watcher never watched");
    assert!(p.run(&["delete", "pod", &db]).status.success());
    let out = watcher.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!lines.is_empty(), "the deletion was not printed");
    for pod in &lines {
        assert_eq!(pod["metadata"]["name"], db.as_str());
        assert!(
            pod["metadata"]["deletionTimestamp"].is_string(),
            "printed before any change: {pod}"
        );
    }

    // delete -l: the web pods go, nothing else is asked to.
    let out = text(&["delete", "pod", "-l", "app=web"]);
    assert_eq!(
        out,
        format!("pod \"{}\" deleted\npod \"{}\" deleted\n", web[0], web[1])
    );
    assert_eq!(text(&["get", "pods", "-o", "name"]), "");
}

/// True when the process holds an inotify descriptor with a watch on it.
fn watches_inotify(pid: u32) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        let inotify = std::fs::read_link(fd.path())
            .is_ok_and(|t| t.to_string_lossy() == "anon_inode:inotify");
        inotify
            && std::fs::read_to_string(format!(
                "/proc/{pid}/fdinfo/{}",
                fd.file_name().to_string_lossy()
            ))
            .is_ok_and(|info| info.contains("inotify wd:"))
    })
}

/// `top pod --containers` reads each container's own cgroup: the one
/// spinning uses CPU, the sleeping one none to speak of, and both hold
/// memory.
#[test]
fn top_reads_each_containers_cgroup() {
    require_root!();
    let p = Podlab::new();
    let a = unique("top");
    let text = PodManifest::named(&a)
        .container(ContainerSpec::of("spin", BUSYBOX).sh("while :; do :; done"))
        .container(ContainerSpec::of("idle", BUSYBOX))
        .to_yaml();
    let _g = p.pod(&a, &text);
    let out = p.run(&["top", "pod", &a, "--containers", "--no-headers"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let row = |name: &str| -> (u64, u64) {
        let r = rows
            .iter()
            .find(|r| r[1] == name)
            .unwrap_or_else(|| panic!("no {name} row: {stdout}"));
        assert_eq!(r[0], a.as_str());
        let cpu = r[2].strip_suffix('m').unwrap().parse().unwrap();
        let mem = r[3].strip_suffix("Mi").unwrap().parse().unwrap();
        (cpu, mem)
    };
    let (spin, _) = row("spin");
    let (idle, _) = row("idle");
    // How much CPU the spinner gets depends on the machine's load; that it
    // gets more than the sleeper does not.
    assert!(spin > idle, "{stdout}");
    let all = String::from_utf8(p.run(&["top", "pod"]).stdout).unwrap();
    assert!(all.starts_with("NAME"), "{all}");
    assert!(
        all.lines().any(|l| l.starts_with(&format!("{a} "))),
        "{all}"
    );
}

/// `describe -o mermaid` draws the real pod: every namespace ID it shows for
/// a PID is the one /proc/PID/ns holds, the pause's are marked held and a
/// container's shared ones joined, and the veth and pod IP are the live ones.
#[test]
fn mermaid_diagram_matches_the_live_pod() {
    require_root!();
    let p = Podlab::new();
    let a = unique("pic");
    let _g = p.pod(
        &a,
        &PodManifest::named(&a)
            .container(ContainerSpec::of("app", BUSYBOX).limit("memory", "32Mi"))
            .to_yaml(),
    );
    let out = p.run(&["describe", "pod", &a, "-o", "mermaid"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("flowchart LR\n"), "{text}");
    let mut checked = 0;
    let mut pids = Vec::new();
    for line in text.lines() {
        let Some((_, rest)) = line.split_once(" · PID ") else {
            continue;
        };
        let pid: i32 = rest.split('<').next().unwrap().parse().unwrap();
        pids.push(pid);
        for entry in rest.split("<br/>").skip(1) {
            let entry = entry.trim_end_matches("\"]");
            let (id, how) = entry.rsplit_once(' ').unwrap();
            let kind = id.split(':').next().unwrap();
            let real = std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).unwrap();
            assert_eq!(id, real.to_string_lossy(), "PID {pid} {kind}: {text}");
            let host = std::fs::read_link(format!("/proc/self/ns/{kind}")).unwrap();
            assert_eq!(how == "host", real == host, "PID {pid} {entry}");
            assert!(["holds", "joins", "own", "host"].contains(&how), "{entry}");
            checked += 1;
        }
    }
    assert_eq!(pids.len(), 2, "the pause and the container: {text}");
    assert!(checked >= 8, "{text}");
    // The container joins the pause's network namespace and has its own mounts.
    let net = |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    assert_eq!(net(pids[0]), net(pids[1]));
    let net_id = net(pids[0]).to_string_lossy().into_owned();
    assert!(text.contains(&format!("{net_id} joins")), "{text}");
    assert!(text.contains(&format!("{net_id} holds")), "{text}");
    let mnt = std::fs::read_link(format!("/proc/{}/ns/mnt", pids[1])).unwrap();
    assert!(
        text.contains(&format!("{} own", mnt.to_string_lossy())),
        "{text}"
    );
    assert!(text.contains("memory 32.0MiB"), "{text}");
    let ip = p.pod_json(&a)["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.contains(&format!("eth0 · {ip}")), "{text}");
    let veths = veths_of(&p.uid(&a));
    assert_eq!(veths.len(), 1, "{veths:?}");
    assert!(text.contains(&format!("host {}", veths[0])), "{text}");
}

#[test]
fn secrets_are_created_listed_applied_collected_and_deleted_without_showing_values() {
    // gc opens the cgroup hierarchy, which needs root.
    require_root!();
    let p = Podlab::new();
    let out = p.run(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        "--docker-server=registry.example:5000",
        "--docker-username=me",
        "--docker-password=hunter2",
        "-n",
        "team",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "secret/regcred created\n"
    );
    let again = p.run(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        "--docker-username=me",
        "--docker-password=x",
        "-n",
        "team",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&again.stderr).trim(),
        "error: secrets \"regcred\" already exists"
    );

    let applied = p
        .cmd()
        .args(["apply", "-n", "team", "-f", "-"])
        .write_stdin("apiVersion: v1\nkind: Secret\nmetadata:\n  name: api\nstringData:\n  token: hunter3\n  user: me\n")
        .output()
        .expect("apply");
    assert_eq!(
        String::from_utf8_lossy(&applied.stdout),
        "secret/api created\n"
    );

    let table = String::from_utf8_lossy(&p.run(&["get", "secrets", "-A"]).stdout).into_owned();
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["NAMESPACE", "NAME", "TYPE", "DATA", "AGE"]);
    assert_eq!(rows[1][..4], ["team", "api", "Opaque", "2"]);
    assert_eq!(
        rows[2][..4],
        ["team", "regcred", "kubernetes.io/dockerconfigjson", "1"]
    );
    assert!(!table.contains("hunter"), "{table}");
    let token = p.run(&[
        "get",
        "secret",
        "api",
        "-n",
        "team",
        "-o",
        "jsonpath={.data.token}",
    ]);
    assert_eq!(String::from_utf8_lossy(&token.stdout), "aHVudGVyMw==");

    // Records only root reads; gc puts a mode right.
    let record = p.root.path().join("secrets/team/api.json");
    use std::os::unix::fs::PermissionsExt;
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&record), 0o600);
    std::fs::set_permissions(&record, std::fs::Permissions::from_mode(0o644)).unwrap();
    let gc = String::from_utf8_lossy(&p.run(&["gc"]).stdout).into_owned();
    assert!(gc.contains("mode 600"), "{gc}");
    assert_eq!(mode(&record), 0o600);

    let deleted = p.run(&["delete", "secret", "api", "regcred", "-n", "team"]);
    assert_eq!(
        String::from_utf8_lossy(&deleted.stdout),
        "secret \"api\" deleted\nsecret \"regcred\" deleted\n"
    );
    let missing = p.run(&["get", "secret", "api", "-n", "team"]);
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr).trim(),
        "Error from server (NotFound): secrets \"api\" not found"
    );
}
