//! exec into a container: the command runs as one of the container's own
//! processes (its environment, user and working directory), and only while
//! the container runs.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::pods::{PodGuard, PodManifest, RawPod};
use crate::runtime::{self, Error, Runtime};
use crate::suite::{fail, skip, Check, Ctx, TestCase};
use crate::tests::cmd::{entrypoint_image, nonroot_image, start_pods};

pub const CASES: &[TestCase] = &[
    case!("EXEC-001", exec_gets_the_container_env_and_cwd,
        must: "A command exec'd into a container MUST run with the container's environment (the image's Env merged with the container's env) and in the container's working directory.",
        method: "Runs the entrypoint fixture image (Env IMAGE_ONLY=from-image, SHARED=from-image) with env SHARED=from-pod, POD_ONLY=from-pod and workingDir /tmp; an exec'd `probe env` must report IMAGE_ONLY=from-image, SHARED=from-pod, POD_ONLY=from-pod and cwd /tmp."),
    case!("EXEC-002", exec_runs_as_the_container_user,
        must: "A command exec'd into a container MUST run as the container's user and group: the image's User when the pod sets none, runAsUser and runAsGroup when set.",
        method: "Two pods at once: the nonroot fixture image (User 4321:4321) without securityContext, and the probe image with runAsUser 1234 and runAsGroup 2345; an exec'd `probe caps` must read uid 4321 gid 4321 in the first and uid 1234 gid 2345 in the second."),
    case!("EXEC-003", exec_into_an_exited_container_fails,
        must: "An exec into a container that has exited MUST fail with an error, promptly, without running the command.",
        method: "Two pods at once under restartPolicy Never: one whose container app exits 0 beside a sleeping sidecar (the pod stays Running), one whose only container exits 0 (the pod Succeeds). Once app is terminated, exec `echo TOKEN` into it with a 20 s deadline must end before the deadline with an error or a non-zero exit status carrying a message, and must not print the token. Skipped when the runtime does not declare restart-policy."),
    case!("EXEC-004", exec_timeout_ends_the_command,
        must: "A command exec'd with a timeout MUST be ended once the timeout passes, the exec failing and no process of the command left in the container.",
        method: "In a running pod, exec `sleep 31337` with a 2 s timeout: the call must not return before 2 s nor succeed (an error or a non-zero exit status); then the container's processes, read from /proc/*/cmdline by an exec'd shell, must show no `sleep 31337` within 10 s. Skipped when the runtime does not declare exec-timeout."),
];

fn exec_gets_the_container_env_and_cwd(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let container = json!({
        "image": entrypoint_image(ctx),
        "env": [{"name": "SHARED", "value": "from-pod"}, {"name": "POD_ONLY", "value": "from-pod"}],
        "workingDir": "/tmp",
    });
    let pods = start_pods(rt, ctx, "exec-env", vec![container])?;
    let pod = &pods[0];
    let v = pod.probe(ctx, "app", &["env"])?;
    for (name, want) in [
        ("IMAGE_ONLY", "from-image"),
        ("SHARED", "from-pod"),
        ("POD_ONLY", "from-pod"),
    ] {
        if v["env"][name] != want {
            return Err(fail(format!(
                "pod {}: the exec'd command sees {name}={} instead of {want:?}; the environment it got: {}",
                pod.name, v["env"][name], v["env"]
            )));
        }
    }
    if v["cwd"] != "/tmp" {
        return Err(fail(format!(
            "pod {}: the exec'd command runs in {} instead of the container's workingDir /tmp",
            pod.name, v["cwd"]
        )));
    }
    Ok(())
}

fn exec_runs_as_the_container_user(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let specs = vec![
        json!({"image": nonroot_image(ctx), "command": ["sleep", "3600"]}),
        json!({"image": ctx.probe_image, "command": ["sleep", "3600"],
               "securityContext": {"runAsUser": 1234, "runAsGroup": 2345}}),
    ];
    let pods = start_pods(rt, ctx, "exec-user", specs)?;
    for (pod, (uid, gid), whose) in [
        (&pods[0], (4321, 4321), "the image's User 4321:4321"),
        (&pods[1], (1234, 2345), "runAsUser 1234, runAsGroup 2345"),
    ]
    .iter()
    .map(|(p, ids, w)| (*p, *ids, *w))
    {
        let v = pod.probe(ctx, "app", &["caps"])?;
        if v["uid"] != uid || v["gid"] != gid {
            return Err(fail(format!(
                "pod {}: the exec'd command runs as uid {} gid {}, not as the container's user ({whose})",
                pod.name, v["uid"], v["gid"]
            )));
        }
    }
    Ok(())
}

fn exec_into_an_exited_container_fails(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    if !ctx.caps.restart_policy {
        return Err(skip(
            "the runtime does not declare restart-policy: an exited container may be restarted",
        ));
    }
    let exits = json!({"name": "app", "image": ctx.probe_image, "command": ["true"]});
    let sleeps = json!({"name": "side", "image": ctx.probe_image, "command": ["sleep", "3600"]});
    let pods = [
        RawPod::create(
            rt,
            ctx,
            "exec-exited",
            json!({"restartPolicy": "Never", "containers": [exits, sleeps]}),
        )?,
        RawPod::create(
            rt,
            ctx,
            "exec-ended",
            json!({"restartPolicy": "Never", "containers": [exits]}),
        )?,
    ];
    let deadline = Duration::from_secs(20);
    for pod in &pods {
        runtime::wait_for(
            rt,
            &pod.name,
            "container app terminated",
            ctx.timeouts.start,
            |p| {
                let app = runtime::container_statuses(p)
                    .iter()
                    .find(|c| c.name == "app")?;
                app.state.as_ref()?.terminated.as_ref().map(|_| Ok(()))
            },
        )
        .map_err(|e| fail(e.to_string()))?;
        let token = ctx.token();
        let argv = ["echo".to_string(), token.clone()];
        let started = Instant::now();
        let what = format!("pod {}: exec into its exited container app", pod.name);
        match rt.exec(&pod.name, "app", &argv, deadline) {
            Err(Error::Timeout { .. }) => {
                return Err(fail(format!(
                    "{what} did not end within {deadline:?}: it hangs instead of failing"
                )))
            }
            Err(e) if e.to_string().trim().is_empty() => {
                return Err(fail(format!("{what} failed without a message")))
            }
            Err(_) => {}
            Ok(out) if out.stdout.contains(&token) => {
                return Err(fail(format!(
                "{what} ran the command (stdout {:?}, exit {}) although the container has exited",
                out.stdout, out.exit_code
            )))
            }
            Ok(out) if out.exit_code == 0 || out.stderr.trim().is_empty() => {
                return Err(fail(format!(
                    "{what} ended with exit status {} and stderr {:?}: it must fail with a message",
                    out.exit_code, out.stderr
                )))
            }
            Ok(_) => {}
        }
        if started.elapsed() >= deadline {
            return Err(fail(format!(
                "{what} took {:?}, past the {deadline:?} deadline",
                started.elapsed()
            )));
        }
    }
    Ok(())
}

/// The command lines of the container's processes, one per line.
const LIST_PROCESSES: &str =
    "for f in /proc/[0-9]*/cmdline; do tr '\\000' ' ' < \"$f\" 2>/dev/null; echo; done";

fn exec_timeout_ends_the_command(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    if !ctx.caps.exec_timeout {
        return Err(skip(
            "the runtime does not declare exec-timeout: a timed-out exec may go on in the container",
        ));
    }
    let pod = PodGuard::start(
        rt,
        ctx,
        &PodManifest::sleepers(ctx, "exec-timeout", &["app"]),
    )?;
    let argv = ["sleep".to_string(), "31337".to_string()];
    let limit = Duration::from_secs(2);
    let started = Instant::now();
    let result = rt.exec(&pod.name, "app", &argv, limit);
    let took = started.elapsed();
    let what = format!(
        "pod {}: exec `sleep 31337` with a {limit:?} timeout",
        pod.name
    );
    match &result {
        Ok(out) if out.exit_code == 0 => {
            return Err(fail(format!(
                "{what} succeeded after {took:?}: the timeout did not end it"
            )))
        }
        _ if took < limit - Duration::from_millis(100) => {
            return Err(fail(format!(
                "{what} returned after {took:?}, before its timeout ({result:?}): the command did not run"
            )))
        }
        _ => {}
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = pod.exec("app", &["sh", "-c", LIST_PROCESSES])?;
        let left = out.stdout.lines().any(|l| l.trim() == "sleep 31337");
        if !left {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(fail(format!(
                "{what} ended after {took:?} ({result:?}), but `sleep 31337` still runs in the \
                 container 10 s later: the timeout ended the client, not the command"
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
