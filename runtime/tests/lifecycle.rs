//! The pod lifecycle as Kubernetes reports it, through the real binary
//! (needs root): init containers and sidecars, restart policies and the
//! back-off, OOM kills, hooks, probes, scheduling, images, volumes, watch,
//! as podlab reports them (the STATUS column, events, messages). That
//! restartPolicy Always restarts a container that exited 0 is the suite's
//! LIFE-013, which CI runs on podlab.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

/// Applies without waiting for Running (the shim goes on in the background).
fn apply_nowait(p: &Podlab, manifest: &str) {
    let out = p
        .cmd()
        .args(["apply", "-f", "-"])
        .write_stdin(manifest.to_string())
        .output()
        .expect("apply");
    assert!(out.status.success(), "apply failed: {out:?}");
}

fn guard<'a>(p: &'a Podlab, name: &str) -> PodGuard<'a> {
    PodGuard {
        podlab: p,
        name: name.to_string(),
    }
}

fn status(p: &Podlab, name: &str) -> Value {
    p.pod_json(name)["status"].clone()
}

/// The STATUS column of `podlab get pods NAME`.
fn shown(p: &Podlab, name: &str) -> String {
    let out = p.run(&["get", "pods", name]);
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    table
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or("")
        .to_string()
}

fn container<'a>(st: &'a Value, list: &str, name: &str) -> &'a Value {
    st[list]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name))
        .unwrap_or(&Value::Null)
}

fn condition(st: &Value, t: &str) -> Value {
    st["conditions"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["type"] == t))
        .cloned()
        .unwrap_or(Value::Null)
}

fn events(p: &Podlab, name: &str) -> Vec<Value> {
    let path = p.pod_dir(name).join("events.jsonl");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn has_event(p: &Podlab, name: &str, reason: &str, needle: &str) -> bool {
    events(p, name)
        .iter()
        .any(|e| e["reason"] == reason && e["message"].as_str().is_some_and(|m| m.contains(needle)))
}

/// Polls the pod's status until `f` accepts it; panics with the last one.
fn wait_status(
    p: &Podlab,
    name: &str,
    secs: u64,
    what: &str,
    mut f: impl FnMut(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    let found = eventually(Duration::from_secs(secs), || {
        last = status(p, name);
        f(&last).then(|| last.clone())
    });
    found.unwrap_or_else(|| panic!("{name}: never {what}; last status: {last:#}"))
}

const BB: &str = BUSYBOX;

fn pod(
    name: &str,
    policy: &str,
    init: &[ContainerSpec],
    containers: &[ContainerSpec],
) -> PodManifest {
    let m = PodManifest::named(name).restart_policy(policy);
    let m = init.iter().cloned().fold(m, PodManifest::init_container);
    containers.iter().cloned().fold(m, PodManifest::container)
}

fn pod_yaml(
    name: &str,
    policy: &str,
    init: &[ContainerSpec],
    containers: &[ContainerSpec],
) -> String {
    pod(name, policy, init, containers).to_yaml()
}

/// A busybox container running `sh -c SCRIPT`, with the container fields
/// of `extra` (YAML, indented as in a pod's container list).
fn ctr(name: &str, script: &str, extra: &str) -> ContainerSpec {
    let extra: Vec<&str> = extra
        .lines()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect();
    ContainerSpec::of(name, BB)
        .sh(script)
        .fields_yaml(&extra.join("\n"))
}

#[test]
fn init_containers_run_in_order_and_keep_the_pod_pending() {
    require_root!();
    let p = Podlab::new();
    let a = unique("init");
    let init = [
        ctr("first", "echo first >> /dev/shm/order; sleep 2", ""),
        ctr("second", "echo second >> /dev/shm/order", ""),
    ];
    let app = ctr("app", "echo app >> /dev/shm/order; exec sleep 3600", "");
    apply_nowait(&p, &pod_yaml(&a, "Always", &init, &[app]));
    let _g = guard(&p, &a);

    // While the first init container runs: Pending, Init:0/2, not initialized.
    let st = wait_status(&p, &a, 10, "ran its first init container", |s| {
        container(s, "initContainerStatuses", "first")["state"]["running"].is_object()
    });
    assert_eq!(st["phase"], "Pending", "{st:#}");
    assert_eq!(shown(&p, &a), "Init:0/2");
    assert_eq!(condition(&st, "Initialized")["status"], "False");
    assert_eq!(
        condition(&st, "Initialized")["reason"],
        "ContainersNotInitialized"
    );
    assert_eq!(
        container(&st, "containerStatuses", "app")["state"]["waiting"]["reason"],
        "PodInitializing",
        "{st:#}"
    );

    let st = wait_status(&p, &a, 20, "became Running", |s| s["phase"] == "Running");
    for name in ["first", "second"] {
        let c = container(&st, "initContainerStatuses", name);
        assert_eq!(c["state"]["terminated"]["reason"], "Completed", "{c}");
        assert_eq!(c["state"]["terminated"]["exitCode"], 0, "{c}");
    }
    assert_eq!(
        p.exec_ok(&a, "app", &["cat", "/dev/shm/order"]),
        "first\nsecond\napp\n"
    );
    // Conditions became true in order.
    let time = |t: &str| {
        condition(&st, t)["lastTransitionTime"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert!(time("PodScheduled") <= time("Initialized"), "{st:#}");
    assert!(time("Initialized") <= time("ContainersReady"), "{st:#}");
    assert!(time("ContainersReady") <= time("Ready"), "{st:#}");
    assert_eq!(shown(&p, &a), "Running");
    // The init container's own log and `exec -c` refusal once it is done.
    let logs = p.run(&["logs", &a, "-c", "first"]);
    assert!(logs.status.success(), "{logs:?}");
}

#[test]
fn a_failing_init_container_fails_the_pod_under_never() {
    require_root!();
    let p = Podlab::new();
    let a = unique("initfail");
    let init = [ctr("setup", "exit 3", "")];
    let app = ctr("app", "echo app-ran > /dev/shm/ran; exec sleep 3600", "");
    apply_nowait(&p, &pod_yaml(&a, "Never", &init, &[app]));
    let _g = guard(&p, &a);
    let st = wait_status(&p, &a, 20, "Failed", |s| s["phase"] == "Failed");
    let c = container(&st, "initContainerStatuses", "setup");
    assert_eq!(c["state"]["terminated"]["exitCode"], 3, "{c}");
    assert_eq!(c["state"]["terminated"]["reason"], "Error", "{c}");
    assert_eq!(c["restartCount"], 0, "{c}");
    assert_eq!(shown(&p, &a), "Init:Error");
    let app = container(&st, "containerStatuses", "app");
    assert!(app["state"]["waiting"].is_object(), "app started: {app}");
    assert_eq!(app["restartCount"], 0);
}

#[test]
fn a_failing_init_container_is_retried_until_it_succeeds() {
    require_root!();
    let p = Podlab::new();
    let a = unique("initretry");
    // Fails twice (pod-wide /dev/shm remembers the tries), then succeeds.
    let script = "n=$(cat /dev/shm/tries 2>/dev/null || echo 0); echo $((n+1)) > /dev/shm/tries; [ $n -ge 2 ]";
    let init = [ctr("flaky", script, "")];
    let app = ctr("app", "exec sleep 3600", "");
    apply_nowait(&p, &pod_yaml(&a, "OnFailure", &init, &[app]));
    let _g = guard(&p, &a);
    // The second failure waits out a back-off: Init:CrashLoopBackOff.
    let mut seen = Vec::new();
    let st = wait_status(&p, &a, 30, "became Running", |s| {
        let st = shown(&p, &a);
        if seen.last() != Some(&st) {
            seen.push(st);
        }
        s["phase"] == "Running"
    });
    let c = container(&st, "initContainerStatuses", "flaky");
    assert_eq!(c["restartCount"], 2, "{c}");
    assert_eq!(c["lastState"]["terminated"]["exitCode"], 1, "{c}");
    assert_eq!(p.exec_ok(&a, "app", &["cat", "/dev/shm/tries"]).trim(), "3");
    assert!(
        has_event(
            &p,
            &a,
            "BackOff",
            "Back-off restarting failed container flaky"
        ),
        "{:#?}",
        events(&p, &a)
    );
    // Before the shim's first report the pod is plain Pending; between
    // the last init container and the app's start, PodInitializing.
    assert!(
        seen.iter().all(|s| s.starts_with("Init:")
            || ["Running", "Pending", "PodInitializing"].contains(&s.as_str())),
        "{seen:?}"
    );
}

#[test]
fn sidecars_start_in_order_run_beside_the_app_and_are_restarted() {
    require_root!();
    let p = Podlab::new();
    let a = unique("sidecar");
    let init = [
        ctr(
            "side",
            "echo side >> /dev/shm/order; exec sleep 3600",
            "    restartPolicy: Always\n",
        ),
        ctr("after", "echo after >> /dev/shm/order", ""),
    ];
    let app = ctr("app", "echo app >> /dev/shm/order; exec sleep 3600", "");
    let _g = p.pod(&a, &pod_yaml(&a, "Never", &init, &[app]));
    let st = status(&p, &a);
    assert_eq!(st["phase"], "Running");
    let side = container(&st, "initContainerStatuses", "side");
    assert!(side["state"]["running"].is_object(), "{side}");
    assert_eq!(side["started"], true);
    assert_eq!(side["ready"], true);
    assert_eq!(
        p.exec_ok(&a, "app", &["cat", "/dev/shm/order"]),
        "side\nafter\napp\n"
    );
    // READY counts the sidecar, as kubectl does.
    let out = String::from_utf8(p.run(&["get", "pods", &a]).stdout).unwrap();
    assert!(out.contains(" 2/2 "), "{out}");

    // Killed, it comes back even though the pod's policy is Never.
    let pid = p.runtime_state(&a)["containers"]["side"]["pid"]["pid"]
        .as_i64()
        .unwrap();
    // SAFETY: kill(2) of a container process this test's podlab started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let st = wait_status(&p, &a, 20, "restarted the sidecar", |s| {
        let c = container(s, "initContainerStatuses", "side");
        c["restartCount"] == 1 && c["state"]["running"].is_object()
    });
    assert_eq!(st["phase"], "Running");
    assert_eq!(condition(&st, "Initialized")["status"], "True");
    let app = container(&st, "containerStatuses", "app");
    assert_eq!(
        app["restartCount"], 0,
        "the app container was disturbed: {app}"
    );
}

#[test]
fn sidecars_stop_when_the_app_containers_are_done() {
    require_root!();
    let p = Podlab::new();
    let a = unique("sidedone");
    let init = [ctr(
        "side",
        "exec sleep 3600",
        "    restartPolicy: Always\n",
    )];
    let app = ctr("job", "sleep 1; exit 0", "");
    apply_nowait(&p, &pod_yaml(&a, "Never", &init, &[app]));
    let _g = guard(&p, &a);
    let st = wait_status(&p, &a, 30, "Succeeded", |s| s["phase"] == "Succeeded");
    let side = wait_status(&p, &a, 30, "stopped the sidecar", |s| {
        container(s, "initContainerStatuses", "side")["state"]["terminated"].is_object()
    });
    let side = container(&side, "initContainerStatuses", "side").clone();
    assert_eq!(side["restartCount"], 0, "the sidecar was restarted: {side}");
    assert_eq!(condition(&st, "Ready")["reason"], "PodCompleted");
    assert_eq!(shown(&p, &a), "Completed");
}

#[test]
fn restart_policy_never_gives_succeeded_or_failed() {
    require_root!();
    let p = Podlab::new();
    let ok = unique("never-ok");
    let bad = unique("never-bad");
    apply_nowait(&p, &pod_yaml(&ok, "Never", &[], &[ctr("c", "exit 0", "")]));
    let _g1 = guard(&p, &ok);
    apply_nowait(&p, &pod_yaml(&bad, "Never", &[], &[ctr("c", "exit 7", "")]));
    let _g2 = guard(&p, &bad);
    let st = wait_status(&p, &ok, 20, "Succeeded", |s| s["phase"] == "Succeeded");
    let c = container(&st, "containerStatuses", "c");
    assert_eq!(c["state"]["terminated"]["reason"], "Completed", "{c}");
    assert_eq!(c["restartCount"], 0);
    assert_eq!(shown(&p, &ok), "Completed");
    let st = wait_status(&p, &bad, 20, "Failed", |s| s["phase"] == "Failed");
    let c = container(&st, "containerStatuses", "c");
    assert_eq!(c["state"]["terminated"]["exitCode"], 7, "{c}");
    assert_eq!(c["state"]["terminated"]["reason"], "Error", "{c}");
    assert!(c["state"]["terminated"]["finishedAt"].is_string(), "{c}");
    assert_eq!(c["restartCount"], 0);
    assert_eq!(shown(&p, &bad), "Error");
    // It stays that way: nothing restarts it.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(status(&p, &bad)["phase"], "Failed");
}

#[test]
fn on_failure_restarts_with_a_growing_back_off() {
    require_root!();
    let p = Podlab::new();
    let a = unique("onfail");
    apply_nowait(
        &p,
        &pod_yaml(&a, "OnFailure", &[], &[ctr("c", "exit 1", "")]),
    );
    let _g = guard(&p, &a);
    let mut messages: Vec<String> = Vec::new();
    let st = wait_status(&p, &a, 30, "restarted three times", |s| {
        let c = container(s, "containerStatuses", "c");
        if let Some(m) = c["state"]["waiting"]["message"].as_str() {
            if !messages.iter().any(|x| x == m) {
                messages.push(m.to_string());
            }
        }
        c["restartCount"].as_i64() >= Some(3)
    });
    assert_eq!(
        st["phase"], "Running",
        "OnFailure keeps a failing pod Running"
    );
    let c = container(&st, "containerStatuses", "c");
    assert_eq!(c["lastState"]["terminated"]["exitCode"], 1, "{c}");
    let joined = messages.join("\n");
    // The first restart is immediate; then 200ms, 400ms, ... (base 200ms in tests).
    assert!(
        joined.contains("back-off 200ms restarting failed container=c pod="),
        "{joined}"
    );
    assert!(joined.contains("back-off 400ms"), "{joined}");
    assert!(has_event(
        &p,
        &a,
        "BackOff",
        "Back-off restarting failed container c"
    ));

    // Completing successfully ends the pod.
    let b = unique("onfail-ok");
    apply_nowait(
        &p,
        &pod_yaml(&b, "OnFailure", &[], &[ctr("c", "exit 0", "")]),
    );
    let _g2 = guard(&p, &b);
    let st = wait_status(&p, &b, 20, "Succeeded", |s| s["phase"] == "Succeeded");
    assert_eq!(container(&st, "containerStatuses", "c")["restartCount"], 0);
}

/// A shim outlives the binary that started it (podlab rebuilt or upgraded
/// under running pods): it must go on restarting containers with its own.
#[test]
fn a_shim_restarts_containers_after_its_binary_is_replaced() {
    require_root!();
    let p = Podlab::new();
    let a = unique("rebuilt");
    let bin_dir = tempfile::tempdir().expect("tempdir");
    let copy = bin_dir.path().join("podlab");
    std::fs::copy(assert_cmd::cargo::cargo_bin("podlab"), &copy).expect("copy podlab");
    let mut apply = std::process::Command::new(&copy);
    apply
        .args(spawnable(&p).get_args())
        .args(["apply", "-f", "-"]);
    apply.env("PODLAB_BACKOFF_BASE_MS", "200");
    let out = assert_cmd::Command::from_std(apply)
        .write_stdin(pod_yaml(&a, "Always", &[], &[ctr("c", "sleep 0.2", "")]))
        .output()
        .expect("apply through the copy");
    let _g = guard(&p, &a);
    assert!(out.status.success(), "apply failed: {out:?}");
    wait_status(&p, &a, 30, "ran its container", |s| s["phase"] == "Running");
    std::fs::remove_file(&copy).expect("remove the copy");
    let st = wait_status(&p, &a, 30, "restarted after the binary went", |s| {
        container(s, "containerStatuses", "c")["restartCount"].as_i64() >= Some(2)
    });
    assert_eq!(st["phase"], "Running");
}
#[test]
fn the_back_off_starts_over_after_a_long_enough_run() {
    require_root!();
    let p = Podlab::new();
    // Back-off 300ms..400ms: a container that ran 800ms (twice the cap)
    // since its last restart is restarted at once, as after ten minutes
    // with kubelet's defaults.
    let env = [
        ("PODLAB_BACKOFF_BASE_MS", "300"),
        ("PODLAB_BACKOFF_MAX_MS", "400"),
    ];
    let apply = |name: &str, script: &str| {
        let out = p
            .cmd()
            .envs(env)
            .args(["apply", "-f", "-"])
            .write_stdin(pod_yaml(name, "OnFailure", &[], &[ctr("c", script, "")]))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    let slow = unique("reset-slow");
    let fast = unique("reset-fast");
    apply(&slow, "sleep 1; exit 1");
    let _g1 = guard(&p, &slow);
    apply(&fast, "exit 1");
    let _g2 = guard(&p, &fast);
    wait_status(&p, &slow, 30, "restarted 3 times", |s| {
        container(s, "containerStatuses", "c")["restartCount"].as_i64() >= Some(3)
    });
    assert!(
        !has_event(&p, &slow, "BackOff", ""),
        "a container running longer than twice the cap still backed off: {:#?}",
        events(&p, &slow)
    );
    assert!(
        has_event(&p, &fast, "BackOff", ""),
        "a crash-looping container was never backed off"
    );
}

#[test]
fn a_container_past_its_memory_limit_is_oom_killed() {
    require_root!();
    let p = Podlab::new();
    let a = unique("oom");
    let m = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {a}\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: hog\n    image: {PROBE}\n    command: [probe, alloc, \"200\"]\n    resources:\n      limits:\n        memory: 64Mi\n"
    );
    apply_nowait(&p, &m);
    let _g = guard(&p, &a);
    let st = wait_status(&p, &a, 30, "Failed", |s| s["phase"] == "Failed");
    let c = container(&st, "containerStatuses", "hog");
    assert_eq!(c["state"]["terminated"]["reason"], "OOMKilled", "{c}");
    assert_eq!(c["state"]["terminated"]["exitCode"], 137, "{c}");
    assert_eq!(shown(&p, &a), "OOMKilled");
    assert!(
        has_event(&p, &a, "OOMKilling", "hog"),
        "{:#?}",
        events(&p, &a)
    );
}

/// A container entry with a `lifecycle:` block.
fn with_hooks(
    name: &str,
    script: &str,
    post_start: Option<&str>,
    pre_stop: Option<&str>,
) -> ContainerSpec {
    let mut hooks = serde_json::Map::new();
    for (hook, cmd) in [("postStart", post_start), ("preStop", pre_stop)] {
        if let Some(cmd) = cmd {
            hooks.insert(
                hook.into(),
                serde_json::json!({"exec": {"command": ["sh", "-c", cmd]}}),
            );
        }
    }
    ctr(name, script, "").field("lifecycle", Value::Object(hooks))
}

#[test]
fn post_start_runs_before_the_container_counts_as_running() {
    require_root!();
    let p = Podlab::new();
    let a = unique("poststart");
    let c = with_hooks(
        "app",
        "exec sleep 3600",
        Some("sleep 1; echo hooked > /dev/shm/hook"),
        None,
    );
    apply_nowait(&p, &pod_yaml(&a, "Always", &[], &[c]));
    let _g = guard(&p, &a);
    let st = wait_status(&p, &a, 10, "showed the container", |s| {
        container(s, "containerStatuses", "app")["state"].is_object()
    });
    assert_eq!(
        st["phase"], "Pending",
        "Running before postStart ended: {st:#}"
    );
    let st = wait_status(&p, &a, 20, "Running", |s| s["phase"] == "Running");
    assert_eq!(container(&st, "containerStatuses", "app")["ready"], true);
    assert_eq!(p.exec_ok(&a, "app", &["cat", "/dev/shm/hook"]), "hooked\n");
}

#[test]
fn a_failing_post_start_hook_kills_the_container() {
    require_root!();
    let p = Podlab::new();
    let a = unique("poststart-bad");
    let c = with_hooks("app", "exec sleep 3600", Some("echo nope; exit 1"), None);
    apply_nowait(&p, &pod_yaml(&a, "Always", &[], &[c]));
    let _g = guard(&p, &a);
    wait_status(&p, &a, 30, "restarted the container", |s| {
        container(s, "containerStatuses", "app")["restartCount"].as_i64() >= Some(1)
    });
    assert!(
        has_event(&p, &a, "FailedPostStartHook", "nope"),
        "{:#?}",
        events(&p, &a)
    );
    assert!(has_event(&p, &a, "Killing", "FailedPostStartHook"));
}

/// Deletes the pod in the background and collects what `cat FILE` in the
/// container shows until it is gone; returns the outputs and how long
/// the delete took.
fn delete_and_watch(
    p: &Podlab,
    pod: &str,
    file: &str,
    grace: Option<&str>,
) -> (Vec<String>, Duration) {
    let start = std::time::Instant::now();
    std::thread::scope(|s| {
        let deleter = s.spawn(|| {
            let mut args = vec!["delete", "pod", pod];
            if let Some(g) = grace {
                args.extend(["--grace-period", g]);
            }
            let out = p.run(&args);
            assert!(out.status.success(), "{out:?}");
            start.elapsed()
        });
        let mut seen: Vec<String> = Vec::new();
        while !deleter.is_finished() {
            let out = p.exec(pod, "app", &["cat", file]);
            if out.status.success() {
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                if seen.last() != Some(&text) {
                    seen.push(text);
                }
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        (seen, deleter.join().unwrap())
    })
}

#[test]
fn delete_runs_pre_stop_then_sigterm() {
    require_root!();
    let p = Podlab::new();
    let a = unique("prestop");
    let app = with_hooks(
        "app",
        "trap 'echo term >> /dev/shm/log; sleep 0.3; exit 0' TERM; while :; do sleep 0.1; done",
        None,
        Some("echo prestop >> /dev/shm/log; sleep 1"),
    );
    let m = pod(&a, "Always", &[], &[app]).grace_period(20).to_yaml();
    let _g = p.pod(&a, &m);
    let uid = p.uid(&a);
    let (seen, took) = delete_and_watch(&p, &a, "/dev/shm/log", None);
    assert!(
        seen.iter().any(|s| s == "prestop\n"),
        "the preStop hook did not run before SIGTERM: {seen:?}"
    );
    assert!(
        seen.iter().any(|s| s == "prestop\nterm\n"),
        "SIGTERM did not follow the preStop hook: {seen:?}"
    );
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(
        took < Duration::from_secs(10),
        "the pod waited out its grace period although it exited: {took:?}"
    );
    assert_eq!(leftovers(&uid, &p.pod_dir(&a)), Vec::<String>::new());
}

#[test]
fn delete_sends_sigkill_only_after_the_grace_period() {
    require_root!();
    let p = Podlab::new();
    let a = unique("grace");
    let app = ctr(
        "app",
        "trap 'echo term >> /dev/shm/log' TERM; while :; do sleep 0.1; done",
        "",
    );
    let m = pod(&a, "Always", &[], &[app]).grace_period(30).to_yaml();
    let _g = p.pod(&a, &m);
    let uid = p.uid(&a);
    let pid = p.runtime_state(&a)["containers"]["app"]["pid"]["pid"]
        .as_i64()
        .unwrap();
    let (seen, took) = delete_and_watch(&p, &a, "/dev/shm/log", Some("2"));
    assert!(
        seen.iter().any(|s| s == "term\n"),
        "no SIGTERM first: {seen:?}"
    );
    assert!(
        took >= Duration::from_secs(2),
        "killed before the grace period ended: {took:?}"
    );
    assert!(took < Duration::from_secs(8), "{took:?}");
    assert!(!alive(pid));
    assert_eq!(leftovers(&uid, &p.pod_dir(&a)), Vec::<String>::new());
}

#[test]
fn a_sleep_pre_stop_hook_delays_sigterm() {
    require_root!();
    let p = Podlab::new();
    let a = unique("prestop-sleep");
    let app = ctr(
        "app",
        "trap 'exit 0' TERM; while :; do sleep 0.1; done",
        "    lifecycle:\n      preStop:\n        sleep:\n          seconds: 1\n",
    );
    let m = pod(&a, "Always", &[], &[app]).grace_period(20).to_yaml();
    let _g = p.pod(&a, &m);
    let start = std::time::Instant::now();
    assert!(p.run(&["delete", "pod", &a]).status.success());
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_secs(8),
        "{took:?}"
    );
}

fn ready(st: &Value, name: &str) -> bool {
    container(st, "containerStatuses", name)["ready"] == true
}

#[test]
fn an_exec_readiness_probe_drives_ready() {
    require_root!();
    let p = Podlab::new();
    let a = unique("ready-exec");
    let c = ctr(
        "app",
        "exec sleep 3600",
        "    readinessProbe:\n      exec:\n        command: [test, -e, /dev/shm/ready]\n      periodSeconds: 1\n      failureThreshold: 1\n",
    );
    let _g = p.pod(&a, &pod_yaml(&a, "Always", &[], &[c]));
    let st = status(&p, &a);
    assert_eq!(st["phase"], "Running");
    assert!(!ready(&st, "app"), "ready before its probe passed: {st:#}");
    assert_eq!(condition(&st, "Ready")["status"], "False");
    let out = String::from_utf8(p.run(&["get", "pods", &a]).stdout).unwrap();
    assert!(out.contains(" 0/1 "), "{out}");
    p.exec_ok(&a, "app", &["touch", "/dev/shm/ready"]);
    let st = wait_status(&p, &a, 10, "ready", |s| ready(s, "app"));
    assert_eq!(condition(&st, "Ready")["status"], "True");
    assert_eq!(condition(&st, "ContainersReady")["status"], "True");
    p.exec_ok(&a, "app", &["rm", "/dev/shm/ready"]);
    let st = wait_status(&p, &a, 10, "unready again", |s| !ready(s, "app"));
    assert_eq!(condition(&st, "Ready")["status"], "False");
    assert!(has_event(&p, &a, "Unhealthy", "Readiness probe failed"));
    assert_eq!(
        container(&st, "containerStatuses", "app")["restartCount"],
        0
    );
}

#[test]
fn a_tcp_readiness_probe_waits_for_the_port() {
    require_root!();
    let p = Podlab::new();
    let a = unique("ready-tcp");
    let c = ctr(
        "app",
        "sleep 2; exec httpd -f -p 9090 -h /",
        "    readinessProbe:\n      tcpSocket:\n        port: 9090\n      periodSeconds: 1\n",
    );
    let _g = p.pod(&a, &pod_yaml(&a, "Always", &[], &[c]));
    assert!(!ready(&status(&p, &a), "app"));
    wait_status(&p, &a, 15, "ready", |s| ready(s, "app"));
    assert!(
        has_event(&p, &a, "Unhealthy", "connection refused"),
        "{:#?}",
        events(&p, &a)
    );
}

#[test]
fn a_failing_http_liveness_probe_restarts_the_container() {
    require_root!();
    let p = Podlab::new();
    let a = unique("live-http");
    let c = ctr(
        "app",
        "mkdir -p /www && echo ok > /www/healthz && exec httpd -f -p 8080 -h /www",
        "    ports:\n    - name: web\n      containerPort: 8080\n    livenessProbe:\n      httpGet:\n        path: /healthz\n        port: web\n      periodSeconds: 1\n      failureThreshold: 2\n",
    );
    let _g = p.pod(&a, &pod_yaml(&a, "Always", &[], &[c]));
    std::thread::sleep(Duration::from_millis(1500));
    let st = status(&p, &a);
    assert_eq!(
        container(&st, "containerStatuses", "app")["restartCount"],
        0,
        "a healthy container was restarted: {:#?}",
        events(&p, &a)
    );
    p.exec_ok(&a, "app", &["rm", "/www/healthz"]);
    let st = wait_status(&p, &a, 20, "restarted after failing liveness", |s| {
        let c = container(s, "containerStatuses", "app");
        c["restartCount"] == 1 && c["state"]["running"].is_object()
    });
    assert_eq!(st["phase"], "Running");
    assert!(
        has_event(
            &p,
            &a,
            "Unhealthy",
            "Liveness probe failed: HTTP probe failed with statuscode: 404"
        ),
        "{:#?}",
        events(&p, &a)
    );
    assert!(has_event(
        &p,
        &a,
        "Killing",
        "Container app failed liveness probe, will be restarted"
    ));
    // The new run is healthy again (its command recreated the file).
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        container(&status(&p, &a), "containerStatuses", "app")["restartCount"],
        1
    );
}

#[test]
fn a_startup_probe_holds_back_liveness_until_it_passes() {
    require_root!();
    let p = Podlab::new();
    let a = unique("startup");
    let c = ctr(
        "app",
        "exec sleep 3600",
        "    startupProbe:\n      exec:\n        command: [test, -e, /dev/shm/up]\n      periodSeconds: 1\n      failureThreshold: 60\n    livenessProbe:\n      exec:\n        command: [\"false\"]\n      periodSeconds: 1\n      failureThreshold: 1\n",
    );
    let _g = p.pod(&a, &pod_yaml(&a, "Always", &[], &[c]));
    std::thread::sleep(Duration::from_millis(2500));
    let st = status(&p, &a);
    let app = container(&st, "containerStatuses", "app");
    assert_eq!(app["started"], false, "{app}");
    assert_eq!(app["ready"], false, "{app}");
    assert_eq!(app["restartCount"], 0, "liveness ran before startup passed");
    p.exec_ok(&a, "app", &["touch", "/dev/shm/up"]);
    wait_status(&p, &a, 20, "killed by liveness once started", |s| {
        container(s, "containerStatuses", "app")["restartCount"].as_i64() >= Some(1)
    });
}

#[test]
fn a_failing_startup_probe_restarts_the_container() {
    require_root!();
    let p = Podlab::new();
    let a = unique("startup-bad");
    let c = ctr(
        "app",
        "exec sleep 3600",
        "    startupProbe:\n      exec:\n        command: [sh, -c, \"echo not yet; exit 1\"]\n      periodSeconds: 1\n      failureThreshold: 2\n",
    );
    let _g = p.pod(&a, &pod_yaml(&a, "Always", &[], &[c]));
    wait_status(&p, &a, 20, "restarted", |s| {
        container(s, "containerStatuses", "app")["restartCount"].as_i64() >= Some(1)
    });
    assert!(has_event(
        &p,
        &a,
        "Unhealthy",
        "Startup probe failed: not yet"
    ));
    assert!(has_event(
        &p,
        &a,
        "Killing",
        "Container app failed startup probe, will be restarted"
    ));
}

#[test]
fn a_probe_that_outlives_its_timeout_fails() {
    require_root!();
    let p = Podlab::new();
    let a = unique("probe-timeout");
    let c = ctr(
        "app",
        "exec sleep 3600",
        "    readinessProbe:\n      exec:\n        command: [sleep, \"30\"]\n      timeoutSeconds: 1\n      periodSeconds: 1\n",
    );
    let _g = p.pod(&a, &pod_yaml(&a, "Always", &[], &[c]));
    let found = eventually(Duration::from_secs(10), || {
        has_event(&p, &a, "Unhealthy", "timed out").then_some(())
    });
    assert!(found.is_some(), "{:#?}", events(&p, &a));
    assert!(!ready(&status(&p, &a), "app"));
    // The timed-out command was killed, not left behind in the container.
    let ps = p.exec_ok(&a, "app", &["ps"]);
    assert!(
        ps.lines().filter(|l| l.contains("sleep 30")).count() <= 1,
        "{ps}"
    );
}

/// A reserve that leaves exactly `mib` MiB of this host's memory to pods.
fn reserve_leaving(mib: i64) -> String {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let total: i64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    (total * 1024 - (mib << 20)).to_string()
}

fn requesting(name: &str, memory: &str) -> String {
    pod_yaml(
        name,
        "Always",
        &[],
        &[ctr(
            "app",
            "exec sleep 3600",
            &format!("    resources:\n      requests:\n        memory: {memory}\n"),
        )],
    )
}

#[test]
fn an_unschedulable_pod_stays_pending_until_room_frees_up() {
    require_root!();
    let p = Podlab::new();
    let reserve = reserve_leaving(300);
    let run = |args: &[&str], stdin: Option<String>| {
        let mut c = p.cmd();
        c.env("PODLAB_RESERVED_MEMORY", &reserve).args(args);
        if let Some(s) = stdin {
            c.write_stdin(s);
        }
        c.output().unwrap()
    };
    let big = unique("sched-big");
    let waiting = unique("sched-wait");
    let small = unique("sched-small");
    let out = run(
        &["apply", "-f", "-", "--wait-ready=30s"],
        Some(requesting(&big, "200Mi")),
    );
    assert!(out.status.success(), "{out:?}");
    let _g1 = guard(&p, &big);
    let out = run(&["apply", "-f", "-"], Some(requesting(&waiting, "200Mi")));
    assert!(out.status.success(), "{out:?}");
    let _g2 = guard(&p, &waiting);
    let st = status(&p, &waiting);
    assert_eq!(st["phase"], "Pending", "{st:#}");
    let c = condition(&st, "PodScheduled");
    assert_eq!(c["status"], "False", "{st:#}");
    assert_eq!(c["reason"], "Unschedulable");
    assert_eq!(
        c["message"],
        "0/1 nodes are available: 1 Insufficient memory."
    );
    assert!(has_event(
        &p,
        &waiting,
        "FailedScheduling",
        "Insufficient memory"
    ));
    assert!(p.pod_json(&waiting)["spec"]["nodeName"].is_null());
    assert!(
        !p.pod_dir(&waiting).join("runtime.json").exists(),
        "a shim started"
    );
    // --wait-ready on a pod that cannot be scheduled times out naming why.
    let out = run(
        &["apply", "-f", "-", "--wait-ready=1s"],
        Some(requesting(&small, "200Mi")),
    );
    let _g3 = guard(&p, &small);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("did not become Running within 1s"), "{err}");
    assert!(err.contains("Insufficient memory"), "{err}");
    // gc leaves waiting pods alone.
    let out = run(&["gc"], None);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "nothing to collect"
    );
    assert_eq!(status(&p, &waiting)["phase"], "Pending");

    // Deleting the big pod makes room for the oldest waiting pod only.
    let out = run(&["delete", "pod", &big, "--grace-period", "0"], None);
    assert!(out.status.success(), "{out:?}");
    let st = wait_status(&p, &waiting, 20, "Running", |s| s["phase"] == "Running");
    assert_eq!(condition(&st, "PodScheduled")["status"], "True");
    assert!(has_event(
        &p,
        &waiting,
        "Scheduled",
        "Successfully assigned"
    ));
    assert_eq!(status(&p, &small)["phase"], "Pending");
    assert!(p.pod_json(&waiting)["spec"]["nodeName"].is_string());
}

#[test]
fn a_finished_pod_frees_its_requests() {
    require_root!();
    let p = Podlab::new();
    let reserve = reserve_leaving(300);
    let apply = |m: String| {
        let out = p
            .cmd()
            .env("PODLAB_RESERVED_MEMORY", &reserve)
            .args(["apply", "-f", "-"])
            .write_stdin(m)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    let job = unique("sched-job");
    let next = unique("sched-next");
    let m = pod_yaml(
        &job,
        "Never",
        &[],
        &[ctr(
            "app",
            "sleep 1",
            "    resources:\n      requests:\n        memory: 200Mi\n",
        )],
    );
    apply(m);
    let _g1 = guard(&p, &job);
    apply(requesting(&next, "200Mi"));
    let _g2 = guard(&p, &next);
    assert_eq!(status(&p, &next)["phase"], "Pending");
    wait_status(&p, &job, 20, "Succeeded", |s| s["phase"] == "Succeeded");
    wait_status(&p, &next, 20, "Running", |s| s["phase"] == "Running");
}

/// Removes an image name from the shared fixture store when dropped.
struct ImageTag<'a> {
    p: &'a Podlab,
    name: String,
}

impl Drop for ImageTag<'_> {
    fn drop(&mut self) {
        let _ = self.p.run(&["image", "rm", &self.name]);
    }
}

fn with_image(name: &str, image: &str, policy: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: app\n    image: {image}\n    imagePullPolicy: {policy}\n    command: [sleep, \"3600\"]\n"
    )
}

#[test]
fn a_missing_image_backs_off_and_starts_once_imported() {
    require_root!();
    let p = Podlab::new();
    let a = unique("noimage");
    let image = format!("podlab.local/{}:v1", unique("late"));
    apply_nowait(&p, &with_image(&a, &image, "IfNotPresent"));
    let _g = guard(&p, &a);
    let mut reasons: Vec<String> = Vec::new();
    let st = wait_status(&p, &a, 20, "ImagePullBackOff", |s| {
        let w = &container(s, "containerStatuses", "app")["state"]["waiting"];
        if let Some(r) = w["reason"].as_str() {
            if reasons.last().map(String::as_str) != Some(r) {
                reasons.push(r.to_string());
            }
        }
        w["reason"] == "ImagePullBackOff"
    });
    assert_eq!(st["phase"], "Pending");
    assert!(reasons.contains(&"ErrImagePull".to_string()), "{reasons:?}");
    let w = &container(&st, "containerStatuses", "app")["state"]["waiting"];
    assert_eq!(w["message"], format!("Back-off pulling image \"{image}\""));
    assert!(has_event(&p, &a, "Failed", "not in podlab's store"));
    assert!(has_event(&p, &a, "Failed", "Error: ErrImagePull"));
    assert!(has_event(&p, &a, "BackOff", "Back-off pulling image"));
    assert_eq!(shown(&p, &a), "ImagePullBackOff");
    assert_eq!(
        container(&st, "containerStatuses", "app")["restartCount"],
        0
    );

    // Imported (here: tagged) later, the image is picked up by the next retry.
    let out = p.run(&["image", "tag", BUSYBOX, &image]);
    assert!(out.status.success(), "{out:?}");
    let _tag = ImageTag {
        p: &p,
        name: image.clone(),
    };
    let st = wait_status(&p, &a, 30, "Running", |s| s["phase"] == "Running");
    assert_eq!(
        container(&st, "containerStatuses", "app")["restartCount"],
        0
    );
}

#[test]
fn pull_policies_on_a_missing_image() {
    require_root!();
    let p = Podlab::new();
    let always = unique("pull-always");
    let never = unique("pull-never");
    let image = format!("podlab.local/{}:v1", unique("absent"));
    apply_nowait(&p, &with_image(&always, &image, "Always"));
    let _g1 = guard(&p, &always);
    apply_nowait(&p, &with_image(&never, &image, "Never"));
    let _g2 = guard(&p, &never);
    let st = wait_status(&p, &always, 20, "failed to pull", |s| {
        container(s, "containerStatuses", "app")["state"]["waiting"]["reason"]
            .as_str()
            .is_some_and(|r| r == "ErrImagePull" || r == "ImagePullBackOff")
    });
    assert_eq!(st["phase"], "Pending");
    assert!(
        has_event(
            &p,
            &always,
            "Failed",
            "podlab.local images are never pulled"
        ),
        "{:#?}",
        events(&p, &always)
    );
    let st = wait_status(&p, &never, 20, "ErrImageNeverPull", |s| {
        container(s, "containerStatuses", "app")["state"]["waiting"]["reason"]
            == "ErrImageNeverPull"
    });
    assert_eq!(
        container(&st, "containerStatuses", "app")["state"]["waiting"]["message"],
        format!("Container image \"{image}\" is not present with pull policy of Never")
    );
    // apply --wait-ready does not hang on a pod that cannot start: it says why.
    let c = unique("pull-wait");
    let out = p
        .cmd()
        .args(["apply", "-f", "-", "--wait-ready=30s"])
        .write_stdin(with_image(&c, &image, "IfNotPresent"))
        .output()
        .unwrap();
    let _g3 = guard(&p, &c);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ErrImagePull"), "{err}");
}

#[test]
fn empty_dir_volumes_are_shared_and_removed_with_the_pod() {
    require_root!();
    let p = Podlab::new();
    let a = unique("emptydir");
    let m = format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {a}
spec:
  terminationGracePeriodSeconds: 0
  volumes:
  - name: shared
    emptyDir: {{}}
  - name: fast
    emptyDir:
      medium: Memory
      sizeLimit: 1Mi
  initContainers:
  - name: seed
    image: {BB}
    command: [sh, -c, "echo seeded > /work/seed && mkdir -p /work/sub && echo inner > /work/sub/file"]
    volumeMounts:
    - {{name: shared, mountPath: /work}}
  containers:
  - name: writer
    image: {BB}
    command: [sleep, "3600"]
    volumeMounts:
    - {{name: shared, mountPath: /data}}
    - {{name: fast, mountPath: /fast}}
  - name: reader
    image: {BB}
    command: [sleep, "3600"]
    volumeMounts:
    - {{name: shared, mountPath: /data, readOnly: true}}
    - {{name: shared, mountPath: /only-sub, subPath: sub}}
"#
    );
    let g = p.pod(&a, &m);
    let uid = p.uid(&a);
    assert_eq!(p.exec_ok(&a, "reader", &["cat", "/data/seed"]), "seeded\n");
    p.exec_ok(&a, "writer", &["sh", "-c", "echo hello > /data/msg"]);
    assert_eq!(p.exec_ok(&a, "reader", &["cat", "/data/msg"]), "hello\n");
    let ro = p.exec(&a, "reader", &["sh", "-c", "echo x > /data/nope"]);
    assert!(!ro.status.success(), "a readOnly mount was writable");
    assert!(
        String::from_utf8_lossy(&ro.stderr).contains("Read-only"),
        "{ro:?}"
    );
    assert_eq!(
        p.exec_ok(&a, "reader", &["cat", "/only-sub/file"]),
        "inner\n"
    );
    // medium: Memory is a tmpfs of sizeLimit.
    let mounts = p.exec_ok(&a, "writer", &["cat", "/proc/mounts"]);
    let fast = mounts
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("/fast"))
        .unwrap_or_else(|| panic!("/fast not mounted: {mounts}"));
    assert!(
        fast.contains("tmpfs") && fast.contains("size=1024k"),
        "{fast}"
    );
    let full = p.exec(
        &a,
        "writer",
        &[
            "dd",
            "if=/dev/zero",
            "of=/fast/big",
            "bs=1024",
            "count=2048",
        ],
    );
    assert!(!full.status.success(), "wrote 2 MiB into a 1Mi emptyDir");
    // Not visible to the containers' own root filesystems or other paths.
    assert!(!p
        .exec(&a, "writer", &["test", "-e", "/only-sub"])
        .status
        .success());

    assert!(p.run(&["delete", "pod", &a]).status.success());
    assert_eq!(leftovers(&uid, &p.pod_dir(&a)), Vec::<String>::new());
    drop(g);
}

/// Starts `podlab get pod NAME -w [args]` and collects its stdout lines
/// until it exits.
fn spawn_watch(
    p: &Podlab,
    name: &str,
    args: &[&str],
) -> std::thread::JoinHandle<(Vec<String>, bool)> {
    use std::io::BufRead;
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("podlab"))
        .arg("--root")
        .arg(p.root.path())
        .arg("--image-root")
        .arg(image_root())
        .arg("--data-root")
        .arg(&p.data)
        .args(["get", "pod", name, "-w"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn watch");
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        let lines: Vec<String> = std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect();
        let ok = child.wait().map(|s| s.success()).unwrap_or(false);
        (lines, ok)
    })
}

#[test]
fn watch_shows_pending_then_running_and_ends_with_the_pod() {
    require_root!();
    let p = Podlab::new();
    let a = unique("watch");
    let init = [ctr("slow", "sleep 2", "")];
    let app = ctr("app", "exec sleep 3600", "");
    apply_nowait(&p, &pod_yaml(&a, "Always", &init, &[app]));
    let _g = guard(&p, &a);
    let json = spawn_watch(&p, &a, &["-o", "json"]);
    let table = spawn_watch(&p, &a, &[]);
    wait_status(&p, &a, 20, "Running", |s| s["phase"] == "Running");
    std::thread::sleep(Duration::from_millis(300));
    assert!(p.run(&["delete", "pod", &a]).status.success());

    let (lines, ok) = json.join().unwrap();
    assert!(ok, "the watch failed: {lines:?}");
    let pods: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(pods
        .iter()
        .all(|p| p["kind"] == "Pod" && p["metadata"]["name"] == a.as_str()));
    let phases: Vec<&str> = pods
        .iter()
        .map(|p| p["status"]["phase"].as_str().unwrap_or(""))
        .collect();
    let first_running = phases.iter().position(|p| *p == "Running");
    assert!(
        first_running.is_some_and(|i| i > 0 && phases[..i].iter().all(|p| *p == "Pending")),
        "not Pending then Running: {phases:?}"
    );
    assert!(
        phases[first_running.unwrap_or(0)..]
            .iter()
            .all(|p| *p == "Running"),
        "went back: {phases:?}"
    );
    assert!(
        pods.iter().any(|p| {
            p["status"]["initContainerStatuses"][0]["state"]["running"].is_object()
                && p["status"]["phase"] == "Pending"
        }),
        "the init container was never seen running: {phases:?}"
    );
    assert!(
        pods.last()
            .is_some_and(|p| p["metadata"]["deletionTimestamp"].is_string()),
        "the deletion was not shown"
    );

    let (rows, ok) = table.join().unwrap();
    assert!(ok);
    assert!(rows[0].starts_with("NAME "), "{rows:?}");
    assert!(!rows[1..].iter().any(|r| r.starts_with("NAME")), "{rows:?}");
    let statuses: Vec<&str> = rows[1..]
        .iter()
        .filter_map(|r| r.split_whitespace().nth(2))
        .collect();
    assert!(statuses.contains(&"Running"), "{rows:?}");
    assert_eq!(statuses.last(), Some(&"Terminating"), "{rows:?}");
}

#[test]
fn get_events_lists_what_happened_to_pods() {
    require_root!();
    let p = Podlab::new();
    let a = unique("events");
    let _g = p.pod(
        &a,
        &pod_yaml(&a, "Always", &[], &[ctr("app", "exec sleep 3600", "")]),
    );
    let out = p.run(&["get", "events"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let header: Vec<&str> = text
        .lines()
        .next()
        .unwrap_or("")
        .split("   ")
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    assert_eq!(
        header,
        ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        "{text}"
    );
    for reason in ["Scheduled", "Pulled", "Created", "Started"] {
        assert!(
            text.lines()
                .any(|l| l.contains(reason) && l.contains(&format!("pod/{a}"))),
            "no {reason} event: {text}"
        );
    }
    let json: Value =
        serde_json::from_slice(&p.run(&["get", "events", "-o", "json"]).stdout).unwrap();
    assert_eq!(json["kind"], "List");
    assert_eq!(json["items"][0]["involvedObject"]["name"], a.as_str());
    assert_eq!(json["items"][0]["reason"], "Scheduled");
    let other = p.run(&["get", "events", "-n", "elsewhere"]);
    assert!(String::from_utf8_lossy(&other.stderr)
        .contains("No resources found in elsewhere namespace."));
}

#[test]
fn apply_warns_about_fields_podlab_ignores() {
    require_root!();
    let p = Podlab::new();
    let a = unique("warn");
    let m = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {a}\nspec:\n  terminationGracePeriodSeconds: 0\n  nodeSelector:\n    disktype: ssd\n  tolerations:\n  - {{key: example, operator: Exists, effect: NoSchedule}}\n  affinity:\n    nodeAffinity: {{}}\n  containers:\n  - name: app\n    image: {BB}\n    command: [sleep, \"3600\"]\n    envFrom:\n    - configMapRef: {{name: settings}}\n"
    );
    let out = p
        .cmd()
        .args(["apply", "-f", "-", "--wait-ready=30s"])
        .write_stdin(m)
        .output()
        .unwrap();
    let _g = guard(&p, &a);
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    for field in [
        "spec.affinity",
        "spec.nodeSelector",
        "spec.tolerations",
        "spec.containers[0].envFrom",
    ] {
        assert!(
            err.lines()
                .any(|l| l == format!("Warning: podlab ignores {field}")),
            "no warning for {field}: {err}"
        );
    }
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("pod/{a} created")
    );
    // A plain pod gets no warning.
    let b = unique("nowarn");
    let out = p.apply(&pod_yaml(
        &b,
        "Always",
        &[],
        &[ctr("app", "exec sleep 3600", "")],
    ));
    let _g2 = guard(&p, &b);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn a_documentation_style_manifest_with_a_sidecar_runs() {
    require_root!();
    let p = Podlab::new();
    let a = unique("docs");
    // Comments, flow style, a leading document separator, a native sidecar
    // sharing an emptyDir, and pod-level resources.
    let m = format!(
        r#"---
# A web app with a log-shipping sidecar.
apiVersion: v1
kind: Pod
metadata:
  name: {a}
  labels: {{app: web}}
spec:
  terminationGracePeriodSeconds: 0
  resources:
    limits: {{memory: 256Mi, cpu: "1"}}
  initContainers:
  - name: shipper   # restarts with the pod, runs beside the app
    image: {BB}
    restartPolicy: Always
    command: ['sh', '-c', 'touch /var/log/app.log; exec tail -F /var/log/app.log']
    volumeMounts: [{{name: logs, mountPath: /var/log}}]
  containers:
  - name: web
    image: {BB}
    command: ['sh', '-c', 'while true; do echo served >> /var/log/app.log; sleep 0.2; done']
    volumeMounts: [{{name: logs, mountPath: /var/log}}]
  volumes:
  - {{name: logs, emptyDir: {{}}}}
"#
    );
    let _g = p.pod(&a, &m);
    let logs = eventually(Duration::from_secs(10), || {
        let out = p.run(&["logs", &a, "-c", "shipper"]);
        let s = String::from_utf8_lossy(&out.stdout).into_owned();
        s.contains("served").then_some(s)
    });
    assert!(logs.is_some(), "the sidecar never shipped the app's log");
    let out = String::from_utf8(p.run(&["get", "pods", &a]).stdout).unwrap();
    assert!(out.contains(" 2/2 ") && out.contains("Running"), "{out}");
}
