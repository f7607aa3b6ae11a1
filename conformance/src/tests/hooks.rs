//! Container lifecycle hooks, as the kubelet runs them: postStart before
//! the container counts as running (a failing one kills it), preStop
//! before SIGTERM and inside the grace period.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use serde_json::{json, Value};

use crate::pods::{exec_until, RawPod};
use crate::runtime::{self, Runtime};
use crate::suite::{ensure, fail, skip, Check, Ctx, TestCase};

pub const CASES: &[TestCase] = &[
    case!("HOOK-001", post_start_before_running,
        must: "A container MUST NOT be reported running before its postStart hook has completed.",
        method: "A container's postStart exec hook sleeps 2 s and then creates /tmp/hooked; the suite polls the pod and, at the first observation of the container running, execs `test -e /tmp/hooked`: the file must be there. Skipped when the runtime does not declare hooks."),
    case!("HOOK-002", failed_post_start_kills,
        must: "A container whose postStart hook fails MUST be killed (and restarted as its restartPolicy says).",
        method: "A container's postStart exec hook exits 1 under restartPolicy Always; the container must be reported terminated, or with its earlier run in lastState.terminated, or restarted, within the start timeout. Skipped when the runtime does not declare hooks."),
    case!("HOOK-003", pre_stop_before_term,
        must: "Deleting a pod MUST run each container's preStop hook to completion before the container gets SIGTERM, inside the grace period.",
        method: "A container whose SIGTERM trap appends `term` to /tmp/log (and keeps running) has a preStop exec hook that appends `prestop`; the pod is deleted with a grace period of 5 s while the suite execs into it: /tmp/log must come to read `prestop` then `term`. Skipped when the runtime does not declare hooks or cannot delete with a grace period."),
];

fn need_hooks(ctx: &Ctx) -> Check {
    if ctx.caps.hooks {
        Ok(())
    } else {
        Err(skip(
            "the runtime does not declare that it runs lifecycle hooks",
        ))
    }
}

fn app(ctx: &Ctx, script: &str, lifecycle: Value) -> Value {
    json!({"name": "app", "image": ctx.probe_image, "command": ["sh", "-c", script],
           "lifecycle": lifecycle})
}

fn exec_hook(script: &str) -> Value {
    json!({"exec": {"command": ["sh", "-c", script]}})
}

fn app_status(pod: &Pod) -> Option<&ContainerStatus> {
    runtime::container_statuses(pod)
        .iter()
        .find(|c| c.name == "app")
}

fn post_start_before_running(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    need_hooks(ctx)?;
    let pod = RawPod::create(
        rt,
        ctx,
        "hook-poststart",
        json!({"containers": [app(ctx, "exec sleep 3600",
            json!({"postStart": exec_hook("sleep 2; touch /tmp/hooked")}))]}),
    )?;
    runtime::wait_for(
        rt,
        &pod.name,
        "container app running",
        ctx.timeouts.start + Duration::from_secs(5),
        |p| {
            app_status(p)
                .and_then(|c| c.state.as_ref()?.running.as_ref())
                .map(|_| Ok(()))
        },
    )
    .map_err(|e| fail(e.to_string()))?;
    let seen = pod.sh(
        ctx,
        "app",
        "test -e /tmp/hooked && echo done || echo missing",
    )?;
    ensure(seen.trim() == "done", || {
        format!(
            "pod {}: container app was reported running while its postStart hook (sleep 2, then touch /tmp/hooked) had not completed",
            pod.name
        )
    })
}

fn failed_post_start_kills(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    need_hooks(ctx)?;
    let pod = RawPod::create(
        rt,
        ctx,
        "hook-poststart-fail",
        json!({"restartPolicy": "Always",
               "containers": [app(ctx, "exec sleep 3600", json!({"postStart": exec_hook("exit 1")}))]}),
    )?;
    runtime::wait_for(
        rt,
        &pod.name,
        "container app killed after its postStart hook failed",
        ctx.timeouts.start + Duration::from_secs(10),
        |p| {
            let c = app_status(p)?;
            let killed = c.restart_count >= 1
                || c.state.as_ref().is_some_and(|s| s.terminated.is_some())
                || c.last_state
                    .as_ref()
                    .is_some_and(|s| s.terminated.is_some());
            killed.then_some(Ok(()))
        },
    )
    .map_err(|e| fail(e.to_string()))
}

fn pre_stop_before_term(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    need_hooks(ctx)?;
    let pod = RawPod::create(
        rt,
        ctx,
        "hook-prestop",
        json!({"terminationGracePeriodSeconds": 5,
               "containers": [app(ctx,
                   "trap 'echo term >> /tmp/log' TERM; while :; do sleep 0.1; done",
                   json!({"preStop": exec_hook("echo prestop >> /tmp/log")}))]}),
    )?;
    runtime::wait_running(rt, &pod.name, ctx.timeouts.start)
        .map_err(|e| fail(format!("pod {} did not start: {e}", pod.name)))?;
    let (deleted, log) = std::thread::scope(|s| {
        let delete = s.spawn(|| rt.delete_pod_with_grace(&pod.name, 5));
        // Until the log shows the SIGTERM, or the grace period is nearly over.
        let log = exec_until(
            rt,
            ctx,
            &pod.name,
            "app",
            &["cat", "/tmp/log"],
            Duration::from_millis(4500),
            |out| out.contains("term"),
        );
        let deleted = delete
            .join()
            .unwrap_or_else(|_| Err(runtime::Error::Other("the delete thread panicked".into())));
        (deleted, log)
    });
    match deleted {
        Err(runtime::Error::Unsupported(why)) => return Err(skip(why)),
        Err(e) => {
            return Err(fail(format!(
                "deleting pod {} with grace 5 s: {e}",
                pod.name
            )))
        }
        Ok(()) => {}
    }
    let log = log.map_err(|last| {
        fail(format!(
            "pod {}: during its deletion /tmp/log never showed the SIGTERM (the last exec: {last})",
            pod.name
        ))
    })?;
    let lines: Vec<&str> = log.lines().collect();
    ensure(
        lines.first() == Some(&"prestop") && lines.contains(&"term"),
        || {
            format!(
            "pod {}: during its deletion /tmp/log read {lines:?}; the preStop hook must run (and end) before SIGTERM",
            pod.name
        )
        },
    )
}
