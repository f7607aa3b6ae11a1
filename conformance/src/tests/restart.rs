//! Restart policies as the kubelet applies them: every policy against a
//! clean exit and a failure, the reasons it records, and the crash back-off.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStatus, Pod};
use serde_json::json;

use crate::pods::RawPod;
use crate::runtime::{self, Runtime};
use crate::suite::{fail, skip, Check, Ctx, TestCase};

pub const CASES: &[TestCase] = &[
    case!("RESTART-001", policy_by_exit_code,
        must: "Each restartPolicy MUST treat a container's exit as Kubernetes does: Always restarts after exit 0 and exit 1, OnFailure only after exit 1, Never never; each run that ended MUST be recorded terminated with its exit code and reason Completed (exit 0) or Error (exit 1).",
        method: "Six pods at once, one per policy (Always, OnFailure, Never) and exit code (0, 1), whose container exits after 0.5 s. Those that must restart are waited for until restartCount ≥ 1 with lastState.terminated carrying the exit code and reason; those that must not are waited for until they end (Succeeded for exit 0, Failed for exit 1) with restartCount 0 and state.terminated carrying the exit code and reason. Skipped when the runtime does not declare restart-policy."),
    case!("RESTART-002", crash_loop_back_off,
        must: "A container that keeps failing under restartPolicy Always MUST be held back between restarts, reported waiting with reason CrashLoopBackOff.",
        method: "A container exits 1 at once under restartPolicy Always; polls until its state is waiting with reason CrashLoopBackOff after at least one terminated run. Skipped when the runtime does not declare restart-policy."),
];

fn need_policies(ctx: &Ctx) -> Check {
    if ctx.caps.restart_policy {
        Ok(())
    } else {
        Err(skip("the runtime does not declare restart-policy"))
    }
}

fn app(pod: &Pod) -> Option<&ContainerStatus> {
    runtime::container_statuses(pod)
        .iter()
        .find(|c| c.name == "app")
}

fn reason_for(code: i32) -> &'static str {
    if code == 0 {
        "Completed"
    } else {
        "Error"
    }
}

/// `t` carries `code` and the reason Kubernetes gives it.
fn recorded(t: Option<&ContainerStateTerminated>, code: i32) -> bool {
    t.is_some_and(|t| t.exit_code == code && t.reason.as_deref() == Some(reason_for(code)))
}

fn policy_by_exit_code(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    need_policies(ctx)?;
    let cases = [
        ("Always", 0, true),
        ("Always", 1, true),
        ("OnFailure", 0, false),
        ("OnFailure", 1, true),
        ("Never", 0, false),
        ("Never", 1, false),
    ];
    let mut pods = Vec::new();
    for (policy, code, _) in cases {
        let prefix = format!("restart-{}-{code}", policy.to_lowercase());
        let spec = json!({
            "restartPolicy": policy,
            "containers": [{"name": "app", "image": ctx.probe_image,
                            "command": ["sh", "-c", format!("sleep 0.5; exit {code}")]}],
        });
        pods.push(RawPod::create(rt, ctx, &prefix, spec)?);
    }
    let within = ctx.timeouts.start + Duration::from_secs(20);
    for ((policy, code, restarts), pod) in cases.into_iter().zip(&pods) {
        let what = if restarts {
            format!("restartPolicy {policy}: a restart after exit {code}, recorded in lastState.terminated with reason {}", reason_for(code))
        } else {
            format!("restartPolicy {policy}: the pod ends after exit {code}, recorded in state.terminated with reason {}", reason_for(code))
        };
        let name = pod.name.clone();
        runtime::wait_for(rt, &pod.name, &what, within, |p| {
            let c = app(p)?;
            let phase = runtime::phase(p);
            if restarts {
                if phase == "Succeeded" || phase == "Failed" {
                    return Some(Err(runtime::Error::Other(format!(
                        "pod {name} (restartPolicy {policy}, exit {code}) ended {phase} instead of restarting: {}",
                        runtime::describe(p)
                    ))));
                }
                let last = c.last_state.as_ref().and_then(|s| s.terminated.as_ref());
                (c.restart_count >= 1 && recorded(last, code)).then_some(Ok(()))
            } else {
                if c.restart_count > 0 {
                    return Some(Err(runtime::Error::Other(format!(
                        "pod {name} (restartPolicy {policy}, exit {code}) restarted its container: {}",
                        runtime::describe(p)
                    ))));
                }
                let want = if code == 0 { "Succeeded" } else { "Failed" };
                let now = c.state.as_ref().and_then(|s| s.terminated.as_ref());
                (phase == want && recorded(now, code)).then_some(Ok(()))
            }
        })
        .map_err(|e| fail(e.to_string()))?;
    }
    Ok(())
}

fn crash_loop_back_off(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    need_policies(ctx)?;
    let pod = RawPod::create(
        rt,
        ctx,
        "restart-backoff",
        json!({"restartPolicy": "Always",
               "containers": [{"name": "app", "image": ctx.probe_image,
                               "command": ["sh", "-c", "exit 1"]}]}),
    )?;
    runtime::wait_for(
        rt,
        &pod.name,
        "container app waiting with reason CrashLoopBackOff after a failed run",
        ctx.timeouts.start + Duration::from_secs(30),
        |p| {
            let c = app(p)?;
            let waiting = c.state.as_ref()?.waiting.as_ref()?;
            let failed_before = c
                .last_state
                .as_ref()
                .is_some_and(|s| s.terminated.is_some());
            (waiting.reason.as_deref() == Some("CrashLoopBackOff") && failed_before)
                .then_some(Ok(()))
        },
    )
    .map(drop)
    .map_err(|e| fail(e.to_string()))
}
