//! Lifecycle: what a watcher of the pod's status may observe.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use crate::pods::{ContainerSpec, PodGuard, PodManifest};
use crate::runtime::{self, Runtime};
use crate::suite::{fail, skip, Check, Ctx, Outcome, TestCase};

pub const CASES: &[TestCase] = &[
    case!("LIFE-001", phases_never_go_backwards,
        must: "The phases a watcher observes for a starting pod MUST go forward only, from Pending to Running.",
        method: "Creates a two-container pod and polls its status as fast as the runtime answers until every container runs and one more second after; the sequence of phases seen must never go back (Pending < Running < Succeeded/Failed) and must reach Running."),
    case!("LIFE-002", condition_times_ordered,
        must: "Once a pod is ready, its conditions PodScheduled, Initialized, ContainersReady and Ready MUST all be True with lastTransitionTime ordered PodScheduled ≤ Initialized ≤ ContainersReady ≤ Ready.",
        method: "Starts a two-container pod, waits for condition Ready=True and compares the four conditions' status and lastTransitionTime."),
    case!("LIFE-003", pending_while_a_container_cannot_start,
        must: "A pod with a container that has never started MUST NOT be reported Running.",
        method: "Creates a pod with a container that runs and a container whose image does not exist; polls the status until the runnable container runs and for a few seconds more: the phase must never be Running and must end Pending. Skipped when the runtime cannot report a pod that does not start."),
    case!("LIFE-004", running_means_started,
        must: "Whenever a pod is reported Running, every one of its containers MUST have been started.",
        method: "Creates a two-container pod and polls its status from creation until every container runs; in every observation with phase Running, each container must be running, terminated, or have a last state from an earlier run."),
];

/// How far along the lifecycle a phase is; None for an unknown phase.
pub fn phase_rank(phase: &str) -> Option<u8> {
    match phase {
        "" => Some(0),
        "Pending" => Some(1),
        "Running" => Some(2),
        "Succeeded" | "Failed" => Some(3),
        _ => None,
    }
}

/// The first backward step in a sequence of observed phases, as a diagnosis.
pub fn backward_step(phases: &[String]) -> Option<String> {
    for pair in phases.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        match (phase_rank(a), phase_rank(b)) {
            (Some(ra), Some(rb)) if rb < ra => {
                return Some(format!("went from {a} back to {b}"));
            }
            (_, None) => return Some(format!("reported the unknown phase {b:?}")),
            _ => {}
        }
    }
    None
}

/// Polls the pod until `until` holds (then `linger` more), calling `each`
/// on every observation; stops early with `each`'s error.
fn watch(
    pod: &PodGuard,
    rt: &dyn Runtime,
    timeout: Duration,
    linger: Duration,
    mut until: impl FnMut(&Pod) -> bool,
    mut each: impl FnMut(&Pod) -> Check,
) -> Result<bool, Outcome> {
    let start = Instant::now();
    let mut reached_at: Option<Instant> = None;
    loop {
        if let Some(p) = rt.get_pod(&pod.name)? {
            each(&p)?;
            if reached_at.is_none() && until(&p) {
                reached_at = Some(Instant::now());
            }
        }
        match reached_at {
            Some(t) if t.elapsed() >= linger => return Ok(true),
            None if start.elapsed() >= timeout => return Ok(false),
            _ => {}
        }
        // Status is polled as fast as the runtime answers, but never in a
        // tight loop.
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn all_running(p: &Pod) -> bool {
    let expected = p.spec.as_ref().map_or(0, |s| s.containers.len());
    let statuses = runtime::container_statuses(p);
    runtime::phase(p) == "Running"
        && statuses.len() == expected
        && statuses
            .iter()
            .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
}

fn phases_never_go_backwards(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let pod = PodGuard::create(
        rt,
        ctx,
        &PodManifest::sleepers(ctx, "life-phases", &["app", "sidecar"]),
    )?;
    let mut seen: Vec<String> = Vec::new();
    let reached = watch(
        &pod,
        rt,
        ctx.timeouts.start,
        Duration::from_secs(1),
        all_running,
        |p| {
            let phase = runtime::phase(p).to_string();
            if seen.last() != Some(&phase) {
                seen.push(phase);
            }
            match backward_step(&seen) {
                Some(step) => Err(fail(format!(
                    "pod {} {step} (phases observed: {})",
                    pod.name,
                    seen.join(" → ")
                ))),
                None => Ok(()),
            }
        },
    )?;
    if !reached {
        return Err(fail(format!(
            "pod {} did not reach Running with every container running within {:?} (phases observed: {})",
            pod.name,
            ctx.timeouts.start,
            seen.join(" → ")
        )));
    }
    Ok(())
}

fn condition_times_ordered(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let pod = PodGuard::create(
        rt,
        ctx,
        &PodManifest::sleepers(ctx, "life-conds", &["app", "sidecar"]),
    )?;
    let status = runtime::wait_for(
        rt,
        &pod.name,
        "condition Ready=True",
        ctx.timeouts.start,
        |p| {
            let ready = p
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            ready.then(|| Ok(p.clone()))
        },
    )?;
    check_conditions(&pod.name, &status).map_err(fail)
}

/// The condition ordering check on one status, as a diagnosis when it fails.
pub fn check_conditions(pod: &str, p: &Pod) -> Result<(), String> {
    const ORDER: [&str; 4] = ["PodScheduled", "Initialized", "ContainersReady", "Ready"];
    let conditions = p
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut previous: Option<(&str, k8s_openapi::apimachinery::pkg::apis::meta::v1::Time)> = None;
    for kind in ORDER {
        let Some(c) = conditions.iter().find(|c| c.type_ == kind) else {
            return Err(format!("pod {pod} is ready but has no {kind} condition"));
        };
        if c.status != "True" {
            return Err(format!(
                "pod {pod} is ready but condition {kind} is {} (reason {})",
                c.status,
                c.reason.as_deref().unwrap_or("none")
            ));
        }
        let Some(t) = c.last_transition_time.clone() else {
            return Err(format!(
                "condition {kind} of pod {pod} has no lastTransitionTime"
            ));
        };
        if let Some((prev_kind, prev_t)) = &previous {
            if t < *prev_t {
                return Err(format!(
                    "condition {kind} of pod {pod} became True at {} before {prev_kind} did at {}: \
                     the order must be {}",
                    t.0,
                    prev_t.0,
                    ORDER.join(" ≤ ")
                ));
            }
        }
        previous = Some((kind, t));
    }
    Ok(())
}

/// A container that has run at some point: running, terminated, or with
/// a last state from an earlier run (a restart back-off).
fn has_started(c: &ContainerStatus) -> bool {
    let state = c.state.as_ref();
    state.is_some_and(|s| s.running.is_some() || s.terminated.is_some())
        || c.last_state
            .as_ref()
            .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
}

/// Fails when the pod is Running while a container has never started.
pub fn running_implies_started(name: &str, p: &Pod) -> Result<(), String> {
    if runtime::phase(p) != "Running" {
        return Ok(());
    }
    let expected: Vec<&str> = p
        .spec
        .as_ref()
        .map(|s| s.containers.iter().map(|c| c.name.as_str()).collect())
        .unwrap_or_default();
    let statuses = runtime::container_statuses(p);
    for c in expected {
        match statuses.iter().find(|s| s.name == c) {
            Some(s) if has_started(s) => {}
            Some(s) => {
                return Err(format!(
                    "pod {name} is reported Running while its container {c} has never started: {}",
                    runtime::container_state(s)
                ))
            }
            None => {
                return Err(format!(
                    "pod {name} is reported Running but has no status for its container {c}"
                ))
            }
        }
    }
    Ok(())
}

fn pending_while_a_container_cannot_start(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    if !ctx.caps.pending_observable {
        return Err(skip(
            "the runtime cannot report a pod whose containers do not start",
        ));
    }
    let manifest = PodManifest::new(ctx, "life-pending")
        .container(ContainerSpec::new(ctx, "app"))
        .container(
            // .invalid never resolves (RFC 2606), so no runtime can pull it.
            ContainerSpec::new(ctx, "broken").image("podlab-conformance.invalid/missing:0"),
        );
    let pod = PodGuard::create(rt, ctx, &manifest)?;
    let app_running = |p: &Pod| {
        runtime::container_statuses(p)
            .iter()
            .any(|c| c.name == "app" && c.state.as_ref().is_some_and(|s| s.running.is_some()))
    };
    let mut last = None;
    watch(
        &pod,
        rt,
        ctx.timeouts.start,
        ctx.timeouts.settle,
        app_running,
        |p| {
            last = Some(p.clone());
            running_implies_started(&pod.name, p).map_err(fail)
        },
    )?;
    let last = last.ok_or_else(|| fail(format!("pod {} was never seen", pod.name)))?;
    if runtime::phase(&last) != "Pending" {
        return Err(fail(format!(
            "pod {} has a container that cannot start but its phase is {:?}, not Pending: {}",
            pod.name,
            runtime::phase(&last),
            runtime::describe(&last)
        )));
    }
    Ok(())
}

fn running_means_started(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let pod = PodGuard::create(
        rt,
        ctx,
        &PodManifest::sleepers(ctx, "life-started", &["app", "sidecar"]),
    )?;
    let reached = watch(
        &pod,
        rt,
        ctx.timeouts.start,
        Duration::ZERO,
        all_running,
        |p| running_implies_started(&pod.name, p).map_err(fail),
    )?;
    if !reached {
        return Err(fail(format!(
            "pod {} did not get every container running within {:?}",
            pod.name, ctx.timeouts.start
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    fn seq(phases: &[&str]) -> Vec<String> {
        phases.iter().map(|s| s.to_string()).collect()
    }

    #[rstest]
    #[case(&["Pending", "Running"], None)]
    #[case(&["", "Pending", "Running", "Succeeded"], None)]
    #[case(&["Running"], None)]
    #[case(&["Pending", "Running", "Pending"], Some("went from Running back to Pending"))]
    #[case(&["Failed", "Running"], Some("went from Failed back to Running"))]
    #[case(&["Pending", "Starting"], Some("reported the unknown phase \"Starting\""))]
    fn phase_sequences(#[case] phases: &[&str], #[case] expected: Option<&str>) {
        assert_eq!(backward_step(&seq(phases)).as_deref(), expected);
    }

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "app"}, {"name": "sidecar"}]},
            "status": status,
        }))
        .unwrap()
    }

    fn cond(kind: &str, at: &str) -> serde_json::Value {
        json!({"type": kind, "status": "True", "lastTransitionTime": at})
    }

    #[test]
    fn conditions_in_order_pass_and_out_of_order_fail() {
        let t1 = "2026-01-01T00:00:01Z";
        let t2 = "2026-01-01T00:00:02Z";
        let good = pod(json!({"conditions": [
            cond("Ready", t2), cond("PodScheduled", t1), cond("Initialized", t1), cond("ContainersReady", t2)
        ]}));
        assert_eq!(check_conditions("p", &good), Ok(()));
        let bad = pod(json!({"conditions": [
            cond("Ready", t1), cond("PodScheduled", t1), cond("Initialized", t2), cond("ContainersReady", t2)
        ]}));
        let err = check_conditions("p", &bad).unwrap_err();
        assert!(err.starts_with("condition Ready of pod p became True at 2026-01-01T00:00:01Z before ContainersReady"), "{err}");
        let missing = pod(json!({"conditions": [cond("PodScheduled", t1)]}));
        assert_eq!(
            check_conditions("p", &missing).unwrap_err(),
            "pod p is ready but has no Initialized condition"
        );
    }

    fn ctr(name: &str, state: serde_json::Value) -> serde_json::Value {
        json!({"name": name, "image": "", "imageID": "", "ready": false, "restartCount": 0, "state": state})
    }

    #[test]
    fn running_with_a_waiting_container_is_caught() {
        let early = pod(json!({"phase": "Running", "containerStatuses": [
            ctr("app", json!({"running": {}})),
            ctr("sidecar", json!({"waiting": {"reason": "ContainerCreating"}})),
        ]}));
        assert_eq!(
            running_implies_started("p", &early).unwrap_err(),
            "pod p is reported Running while its container sidecar has never started: waiting (ContainerCreating)"
        );
        let pending = pod(json!({"phase": "Pending", "containerStatuses": [
            ctr("app", json!({"running": {}})),
            ctr("sidecar", json!({"waiting": {"reason": "ErrImagePull"}})),
        ]}));
        assert_eq!(running_implies_started("p", &pending), Ok(()));
        let mut backoff = ctr(
            "sidecar",
            json!({"waiting": {"reason": "CrashLoopBackOff"}}),
        );
        backoff["lastState"] = json!({"terminated": {"exitCode": 1}});
        let restarting = pod(json!({"phase": "Running", "containerStatuses": [
            ctr("app", json!({"running": {}})), backoff,
        ]}));
        assert_eq!(running_implies_started("p", &restarting), Ok(()));
        let no_status = pod(
            json!({"phase": "Running", "containerStatuses": [ctr("app", json!({"running": {}}))]}),
        );
        assert!(running_implies_started("p", &no_status).is_err());
    }
}
