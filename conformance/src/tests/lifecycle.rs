//! Lifecycle: what a watcher of the pod's status may observe.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use serde_json::{json, Value};

use crate::pods::{exec_until, ContainerSpec, PodGuard, PodManifest, RawPod};
use crate::runtime::{self, Runtime};
use crate::suite::{ensure, fail, skip, Check, Ctx, Outcome, TestCase};

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
    case!("LIFE-005", pending_while_init_runs,
        must: "A pod whose init container is still running MUST be reported Pending, with no app container started.",
        method: "Creates a pod whose init container sleeps 2 s before an app container; polls the status until the app runs: at least one observation must show phase Pending with the init container running, and no observation may show phase Running or a started app container while the init container runs. Skipped when the runtime does not run init containers."),
    case!("LIFE-006", init_containers_in_order,
        must: "Init containers MUST run one after another in their order, each to completion, before any app container starts.",
        method: "Two init containers append their name to a file on a shared emptyDir volume, the first after sleeping 1 s; the app container copies the file when it starts; the copy read back through exec must be exactly `first` then `second`. Skipped when the runtime does not run init containers."),
    case!("LIFE-007", restart_never_ends_the_pod,
        must: "With restartPolicy Never, a pod whose container exits 0 MUST end Succeeded and one whose container exits non-zero MUST end Failed with that exit code, neither restarted.",
        method: "Creates two pods with restartPolicy Never whose container runs `sh -c 'exit 0'` and `sh -c 'exit 3'`; waits for each to end, failing at once on a restart, then watches a few seconds more: phases Succeeded and Failed, the second container terminated with exitCode 3, restartCount 0. Skipped when the runtime does not honour restart policies."),
    case!("LIFE-008", on_failure_restarts,
        must: "With restartPolicy OnFailure, a container that exits non-zero MUST be restarted, and a pod whose container exits 0 MUST end Succeeded without a restart.",
        method: "Creates a pod with restartPolicy OnFailure whose container exits 1 after 0.3 s; waits until its restartCount is at least 1 with the earlier run recorded as terminated with exit code 1, and the pod never Failed. Then a pod with restartPolicy OnFailure whose container exits 0 must end Succeeded and stay so, restartCount 0, for a few seconds. Skipped when the runtime does not honour restart policies."),
    case!("LIFE-013", always_restarts_after_success,
        must: "With restartPolicy Always, a container that exits 0 MUST be restarted.",
        method: "Creates a pod with restartPolicy Always whose container exits 0 after 0.3 s; waits until its restartCount is at least 1 with the earlier run recorded as terminated with exit code 0, and the pod never Succeeded or Failed. Skipped when the runtime does not honour restart policies."),
    case!("LIFE-009", oom_killed_is_reported,
        must: "A container whose process the OOM killer killed for going past the container's memory limit MUST be reported terminated with reason OOMKilled, whether that process was its first one or a child of it.",
        method: "One pod with restartPolicy Never: container app runs `probe alloc 200` (touches 200 MiB) as its only process under a 64Mi limit; container child runs `sh -c 'head -c 150000000 /dev/zero | tail > /dev/null'` under a 32Mi limit, where the kernel kills `tail` (which buffers the line without end) and the shell exits 137 by itself. Waits until each container's state or lastState is terminated: both need reason OOMKilled, and child exit code 137. Skipped when the runtime does not report the reason."),
    case!("LIFE-010", missing_image_stays_pending,
        must: "A pod whose only image cannot be pulled MUST stay Pending with its container waiting with reason ErrImagePull or ImagePullBackOff.",
        method: "Creates a pod whose image is under the never-resolving `.invalid` domain; polls until the container waits with ErrImagePull or ImagePullBackOff, then a few seconds more: every observation must be Pending, and the reason must stay one of the two. Skipped when the runtime cannot report a pod that does not start."),
    case!("LIFE-011", unschedulable_stays_pending,
        must: "A pod requesting more than the node can allocate MUST stay Pending with condition PodScheduled=False, reason Unschedulable, and no container started.",
        method: "Creates a pod requesting 100Ti of memory; polls for a few seconds: every observation must be Pending with no container running or terminated, and the last one must carry PodScheduled=False with reason Unschedulable. Skipped when the runtime does not schedule against node resources."),
    case!("LIFE-012", delete_terms_then_kills,
        must: "Deleting a pod MUST send its containers SIGTERM first and SIGKILL only once the grace period is over.",
        method: "Runs two pods: one whose shell exits on SIGTERM (grace 30 s), one whose shell notes SIGTERM in a file and keeps running (grace 3 s); deletes each with its grace period and times the delete: the first must be gone well within its grace (under 10 s: it got SIGTERM), the second not before 2.5 s (nothing killed it early) and within 25 s (SIGKILL came). While the second is being deleted, exec into it must show within 2.5 s the note its SIGTERM trap writes (SIGTERM came and the container still runs). Skipped when the adapter cannot delete with a grace period."),
    case!("LIFE-014", deleting_unstarted_and_ended_pods,
        must: "Deleting a pod whose app containers never started, or whose containers have all exited, MUST remove the pod and free its name.",
        method: "Two pods at once: waiting, whose init container sleeps so its app container never starts, and ended (restartPolicy Never), whose only container exits 1 at once. Once the init container runs and the other pod is Failed, each is deleted: the runtime must then report neither, and a new sleeping pod under each name must run. Skipped when the runtime does not run init containers or honour restart policies."),
    case!("LIFE-015", failed_init_blocks_the_app,
        must: "An init container that exits non-zero MUST keep the pod's app containers from starting, the pod ending Failed under restartPolicy Never and staying Pending under Always.",
        method: "Two pods at once whose init container runs `exit 7` before a sleeping app container: never (restartPolicy Never) and always (restartPolicy Always). Polls until never is Failed and always's init container has terminated with exit code 7, then a few seconds more: the app container must never be running or terminated in either, never must end Failed with its init container terminated with exit code 7, and always must be Pending in every observation. Skipped when the runtime does not run init containers or honour restart policies."),
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
pub(crate) fn watch(
    pod: &str,
    rt: &dyn Runtime,
    timeout: Duration,
    linger: Duration,
    mut until: impl FnMut(&Pod) -> bool,
    mut each: impl FnMut(&Pod) -> Check,
) -> Result<bool, Outcome> {
    let start = Instant::now();
    let mut reached_at: Option<Instant> = None;
    loop {
        if let Some(p) = rt.get_pod(pod)? {
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
        &pod.name,
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
        &pod.name,
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
        &pod.name,
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

/// A container of the probe image running `argv`.
fn ctr(ctx: &Ctx, name: &str, argv: &[&str]) -> Value {
    json!({"name": name, "image": ctx.probe_image, "command": argv})
}

pub(super) fn sh(ctx: &Ctx, name: &str, script: &str) -> Value {
    ctr(ctx, name, &["sh", "-c", script])
}

fn init_statuses(p: &Pod) -> &[ContainerStatus] {
    p.status
        .as_ref()
        .and_then(|s| s.init_container_statuses.as_deref())
        .unwrap_or(&[])
}

pub(crate) fn find<'p>(statuses: &'p [ContainerStatus], name: &str) -> Option<&'p ContainerStatus> {
    statuses.iter().find(|c| c.name == name)
}

fn is_running(c: Option<&ContainerStatus>) -> bool {
    c.and_then(|c| c.state.as_ref())
        .is_some_and(|s| s.running.is_some())
}

/// The terminated record of a container: its current state, else its last one.
fn terminated(
    c: &ContainerStatus,
) -> Option<&k8s_openapi::api::core::v1::ContainerStateTerminated> {
    c.state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .or_else(|| c.last_state.as_ref().and_then(|s| s.terminated.as_ref()))
}

pub(crate) fn waiting_reason(c: Option<&ContainerStatus>) -> Option<&str> {
    c.and_then(|c| c.state.as_ref())
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.reason.as_deref())
}

fn pending_while_init_runs(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    if !ctx.caps.init_containers {
        return Err(skip("the runtime does not run init containers"));
    }
    let pod = RawPod::create(
        rt,
        ctx,
        "life-initpend",
        json!({
            "initContainers": [ctr(ctx, "init", &["sleep", "2"])],
            "containers": [ctr(ctx, "app", &["sleep", "3600"])],
        }),
    )?;
    let mut seen_pending_init = false;
    let mut phases: Vec<String> = Vec::new();
    let reached = watch(
        &pod.name,
        rt,
        ctx.timeouts.start,
        Duration::ZERO,
        all_running,
        |p| {
            let phase = runtime::phase(p);
            if phases.last().map(String::as_str) != Some(phase) {
                phases.push(phase.to_string());
            }
            let init = find(init_statuses(p), "init");
            if !is_running(init) {
                return Ok(());
            }
            let app = find(runtime::container_statuses(p), "app");
            if app.is_some_and(has_started) {
                return Err(fail(format!(
                    "pod {}: app container started while init container `init` still runs: {}",
                    pod.name,
                    runtime::describe(p)
                )));
            }
            match phase {
                "Pending" => {
                    seen_pending_init = true;
                    Ok(())
                }
                other => Err(fail(format!(
                    "pod {} is reported {other:?} while its init container still runs: the phase must be Pending",
                    pod.name
                ))),
            }
        },
    )?;
    ensure(reached, || {
        format!(
            "pod {} did not get its app container running within {:?} (phases observed: {})",
            pod.name,
            ctx.timeouts.start,
            phases.join(" → ")
        )
    })?;
    ensure(seen_pending_init, || {
        format!(
            "pod {} was never observed Pending with its 2 s init container running (phases observed: {})",
            pod.name,
            phases.join(" → ")
        )
    })
}

fn init_containers_in_order(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    if !ctx.caps.init_containers {
        return Err(skip("the runtime does not run init containers"));
    }
    let mount = json!([{"name": "work", "mountPath": "/work"}]);
    let with_mount = |mut c: Value| {
        c["volumeMounts"] = mount.clone();
        c
    };
    let pod = RawPod::create(
        rt,
        ctx,
        "life-initorder",
        json!({
            "volumes": [{"name": "work", "emptyDir": {}}],
            "initContainers": [
                with_mount(sh(ctx, "first", "sleep 1; echo first >> /work/order")),
                with_mount(sh(ctx, "second", "echo second >> /work/order")),
            ],
            "containers": [with_mount(sh(
                ctx,
                "app",
                "cat /work/order > /work/seen 2>&1; exec sleep 3600",
            ))],
        }),
    )?;
    runtime::wait_running(rt, &pod.name, ctx.timeouts.start)
        .map_err(|e| fail(format!("pod {} did not start: {e}", pod.name)))?;
    let argv = ["cat".to_string(), "/work/seen".to_string()];
    let out = rt
        .exec(&pod.name, "app", &argv, ctx.timeouts.exec)
        .map_err(|e| fail(format!("exec in {}/app: {e}", pod.name)))?;
    ensure(out.exit_code == 0, || {
        format!(
            "cannot read what the app container of {} saw: `cat /work/seen` exited {} ({})",
            pod.name,
            out.exit_code,
            out.stderr.trim()
        )
    })?;
    let seen: Vec<&str> = out.stdout.lines().collect();
    ensure(seen == ["first", "second"], || {
        format!(
            "when the app container of {} started, the init containers had written {:?}; \
             expected [\"first\", \"second\"]: each init container must finish before the next \
             starts, all before the app",
            pod.name, seen
        )
    })
}

/// Waits for the pod to end; a restart fails at once.
fn wait_ended(rt: &dyn Runtime, ctx: &Ctx, pod: &str) -> Result<Pod, Outcome> {
    runtime::wait_for(
        rt,
        pod,
        "phase Succeeded or Failed",
        ctx.timeouts.start,
        |p| {
            if let Some(c) = runtime::container_statuses(p)
                .iter()
                .find(|c| c.restart_count > 0)
            {
                return Some(Err(runtime::Error::Other(format!(
                    "pod {pod} has restartPolicy Never but container {} was restarted \
                 (restartCount {}): {}",
                    c.name,
                    c.restart_count,
                    runtime::describe(p)
                ))));
            }
            matches!(runtime::phase(p), "Succeeded" | "Failed").then(|| Ok(p.clone()))
        },
    )
    .map_err(|e| fail(e.to_string()))
}

fn restart_never_ends_the_pod(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    if !ctx.caps.restart_policy {
        return Err(skip("the runtime does not honour restartPolicy"));
    }
    let spec = |code: &str| {
        json!({
            "restartPolicy": "Never",
            "containers": [sh(ctx, "app", &format!("exit {code}"))],
        })
    };
    let ok = RawPod::create(rt, ctx, "life-never-ok", spec("0"))?;
    let bad = RawPod::create(rt, ctx, "life-never-bad", spec("3"))?;
    for (pod, want_phase, want_code) in [(&ok, "Succeeded", 0), (&bad, "Failed", 3)] {
        let ended = wait_ended(rt, ctx, &pod.name)?;
        let phase = runtime::phase(&ended);
        ensure(phase == want_phase, || {
            format!(
                "pod {} (restartPolicy Never, container exits {want_code}) ended {phase}, not {want_phase}: {}",
                pod.name,
                runtime::describe(&ended)
            )
        })?;
        let code = find(runtime::container_statuses(&ended), "app")
            .and_then(terminated)
            .map(|t| t.exit_code);
        ensure(code == Some(want_code), || {
            format!(
                "pod {}: container app should be terminated with exitCode {want_code}, got {}",
                pod.name,
                runtime::describe(&ended)
            )
        })?;
    }
    stays_ended(rt, ctx, &[(&ok, "Succeeded"), (&bad, "Failed")], "Never")
}

/// An ended pod stays ended: watched for the settle time, each pod keeps
/// its phase and nothing restarts its containers.
fn stays_ended(rt: &dyn Runtime, ctx: &Ctx, pods: &[(&RawPod, &str)], policy: &str) -> Check {
    let start = Instant::now();
    while start.elapsed() < ctx.timeouts.settle {
        for (pod, want_phase) in pods {
            let Some(p) = rt.get_pod(&pod.name)? else {
                return Err(fail(format!("pod {} disappeared after it ended", pod.name)));
            };
            let restarts: i32 = runtime::container_statuses(&p)
                .iter()
                .map(|c| c.restart_count)
                .sum();
            ensure(runtime::phase(&p) == *want_phase && restarts == 0, || {
                format!(
                    "pod {} ended {want_phase} but later showed {} (restartCount {restarts}): \
                     restartPolicy {policy} must not restart it",
                    pod.name,
                    runtime::describe(&p)
                )
            })?;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

fn on_failure_restarts(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    if !ctx.caps.restart_policy {
        return Err(skip("the runtime does not honour restartPolicy"));
    }
    let pod = RawPod::create(
        rt,
        ctx,
        "life-onfail",
        json!({
            "restartPolicy": "OnFailure",
            "containers": [sh(ctx, "app", "sleep 0.3; exit 1")],
        }),
    )?;
    let name = pod.name.clone();
    runtime::wait_for(
        rt,
        &pod.name,
        "container app restarted after exiting 1",
        ctx.timeouts.start,
        |p| {
            if runtime::phase(p) == "Failed" {
                return Some(Err(runtime::Error::Other(format!(
                    "pod {name} (restartPolicy OnFailure) ended Failed instead of restarting its container: {}",
                    runtime::describe(p)
                ))));
            }
            let app = find(runtime::container_statuses(p), "app")?;
            let exited_1 = terminated(app).is_some_and(|t| t.exit_code == 1);
            (app.restart_count >= 1 && exited_1).then_some(Ok(()))
        },
    )
    .map_err(|e| fail(e.to_string()))?;
    // OnFailure is not Always: a container that exits 0 ends the pod.
    let done = RawPod::create(
        rt,
        ctx,
        "life-onfail-ok",
        json!({
            "restartPolicy": "OnFailure",
            "containers": [sh(ctx, "app", "exit 0")],
        }),
    )?;
    let ended = wait_ended(rt, ctx, &done.name)?;
    ensure(runtime::phase(&ended) == "Succeeded", || {
        format!(
            "pod {} (restartPolicy OnFailure, container exits 0) ended {}, not Succeeded: {}",
            done.name,
            runtime::phase(&ended),
            runtime::describe(&ended)
        )
    })?;
    stays_ended(rt, ctx, &[(&done, "Succeeded")], "OnFailure")
}

fn always_restarts_after_success(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    if !ctx.caps.restart_policy {
        return Err(skip("the runtime does not honour restartPolicy"));
    }
    let pod = RawPod::create(
        rt,
        ctx,
        "life-always",
        json!({
            "restartPolicy": "Always",
            "containers": [sh(ctx, "app", "sleep 0.3; exit 0")],
        }),
    )?;
    let name = pod.name.clone();
    runtime::wait_for(
        rt,
        &pod.name,
        "container app restarted after exiting 0",
        ctx.timeouts.start,
        |p| {
            let phase = runtime::phase(p);
            if phase == "Succeeded" || phase == "Failed" {
                return Some(Err(runtime::Error::Other(format!(
                    "pod {name} (restartPolicy Always) ended {phase} instead of restarting its container: {}",
                    runtime::describe(p)
                ))));
            }
            let app = find(runtime::container_statuses(p), "app")?;
            let exited_0 = terminated(app).is_some_and(|t| t.exit_code == 0);
            (app.restart_count >= 1 && exited_0).then_some(Ok(()))
        },
    )
    .map_err(|e| fail(e.to_string()))
}

fn oom_killed_is_reported(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    if !ctx.caps.oom_reason {
        return Err(skip(
            "the runtime does not report the reason of an OOM kill",
        ));
    }
    let mut app = ctr(ctx, "app", &["probe", "alloc", "200"]);
    app["resources"] = json!({"limits": {"memory": "64Mi"}});
    // tail keeps the last line, and /dev/zero has no line end: it grows
    // until the kernel kills it, not the shell that runs the pipeline.
    let mut child = sh(
        ctx,
        "child",
        "head -c 150000000 /dev/zero | tail > /dev/null",
    );
    child["resources"] = json!({"limits": {"memory": "32Mi"}});
    let pod = RawPod::create(
        rt,
        ctx,
        "life-oom",
        json!({"restartPolicy": "Never", "containers": [app, child]}),
    )?;
    let name = pod.name.clone();
    for (container, what, exit_code) in [
        (
            "app",
            "allocated 200 MiB as its only process under a 64Mi limit",
            None,
        ),
        (
            "child",
            "had the shell's child `tail` killed under a 32Mi limit",
            Some(137),
        ),
    ] {
        runtime::wait_for(
            rt,
            &pod.name,
            &format!("container {container} terminated"),
            ctx.timeouts.start,
            |p| {
                let t = find(runtime::container_statuses(p), container).and_then(terminated)?;
                let reason = t.reason.as_deref();
                Some(
                    if reason == Some("OOMKilled")
                        && exit_code.is_none_or(|code| code == t.exit_code)
                    {
                        Ok(())
                    } else {
                        Err(runtime::Error::Other(format!(
                            "container {container} of pod {name} {what} and ended with exit \
                             code {} and reason {:?}, not OOMKilled{}",
                            t.exit_code,
                            reason.unwrap_or("none"),
                            exit_code.map_or(String::new(), |c| format!(" with exit code {c}"))
                        )))
                    },
                )
            },
        )
        .map_err(|e| fail(e.to_string()))?;
    }
    Ok(())
}

fn missing_image_stays_pending(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    if !ctx.caps.pending_observable {
        return Err(skip(
            "the runtime cannot report a pod whose containers do not start",
        ));
    }
    // .invalid never resolves (RFC 2606), so no runtime can pull it.
    pull_failure_stays_pending(
        rt,
        ctx,
        "life-noimage",
        "podlab-conformance.invalid/missing:0",
    )
}

/// Creates a pod whose only image cannot be pulled and checks that its
/// container waits with ErrImagePull or ImagePullBackOff (and keeps to
/// those) while the pod stays Pending.
pub(crate) fn pull_failure_stays_pending(
    rt: &dyn Runtime,
    ctx: &Ctx,
    prefix: &str,
    image: &str,
) -> Check {
    let pod = RawPod::create(
        rt,
        ctx,
        prefix,
        json!({"containers": [{
            "name": "app",
            "image": image,
            "command": ["sleep", "3600"],
        }]}),
    )?;
    let pull_failed = |p: &Pod| {
        matches!(
            waiting_reason(find(runtime::container_statuses(p), "app")),
            Some("ErrImagePull" | "ImagePullBackOff")
        )
    };
    let mut reported = false;
    let reached = watch(
        &pod.name,
        rt,
        ctx.timeouts.start,
        ctx.timeouts.settle,
        |p| pull_failed(p),
        |p| {
            let phase = runtime::phase(p);
            if phase != "Pending" && !phase.is_empty() {
                return Err(fail(format!(
                    "pod {} cannot pull its only image but is reported {phase}, not Pending: {}",
                    pod.name,
                    runtime::describe(p)
                )));
            }
            // Once reported, the reason stays a pull failure.
            if reported && !pull_failed(p) {
                return Err(fail(format!(
                    "pod {}: after ErrImagePull the container left the pull-failure states: {}",
                    pod.name,
                    runtime::describe(p)
                )));
            }
            reported |= pull_failed(p);
            Ok(())
        },
    )?;
    ensure(reached, || {
        format!(
            "pod {} never reported ErrImagePull or ImagePullBackOff for its missing image {image} within {:?}",
            pod.name, ctx.timeouts.start
        )
    })
}

fn unschedulable_stays_pending(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    if !ctx.caps.unschedulable {
        return Err(skip(
            "the runtime does not schedule pods against node resources",
        ));
    }
    let mut app = ctr(ctx, "app", &["sleep", "3600"]);
    app["resources"] = json!({"requests": {"memory": "100Ti"}});
    let pod = RawPod::create(rt, ctx, "life-unsched", json!({"containers": [app]}))?;
    let mut last = None;
    watch(
        &pod.name,
        rt,
        ctx.timeouts.settle,
        ctx.timeouts.settle,
        |_| true,
        |p| {
            last = Some(p.clone());
            let phase = runtime::phase(p);
            if phase != "Pending" && !phase.is_empty() {
                return Err(fail(format!(
                    "pod {} requests 100Ti of memory but is reported {phase}, not Pending: {}",
                    pod.name,
                    runtime::describe(p)
                )));
            }
            if let Some(c) = runtime::container_statuses(p)
                .iter()
                .find(|c| has_started(c))
            {
                return Err(fail(format!(
                    "pod {} requests 100Ti of memory, more than any node has, yet its container {} started: {}",
                    pod.name,
                    c.name,
                    runtime::describe(p)
                )));
            }
            Ok(())
        },
    )?;
    let last = last.ok_or_else(|| fail(format!("pod {} was never seen", pod.name)))?;
    let scheduled = last
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"));
    match scheduled {
        Some(c) if c.status == "False" && c.reason.as_deref() == Some("Unschedulable") => Ok(()),
        Some(c) => Err(fail(format!(
            "pod {} requests 100Ti of memory: condition PodScheduled is {} with reason {:?}, \
             expected False with reason Unschedulable",
            pod.name,
            c.status,
            c.reason.as_deref().unwrap_or("none")
        ))),
        None => Err(fail(format!(
            "pod {} requests 100Ti of memory but has no PodScheduled condition",
            pod.name
        ))),
    }
}

/// Polls exec into `pod`'s container app, being deleted with a grace
/// period, until the note its SIGTERM trap writes shows up: proof that
/// SIGTERM came and that the container still ran after it.
fn noted_term_while_running(rt: &dyn Runtime, ctx: &Ctx, pod: &str) -> Check {
    let within = Duration::from_millis(2500);
    exec_until(rt, ctx, pod, "app", &["cat", "/tmp/term"], within, |out| {
        out.trim() == "got-term"
    })
    .map(drop)
    .map_err(|last| {
        fail(format!(
            "pod {pod} (grace 3 s), being deleted, never showed that its container got SIGTERM while \
             it still ran (its trap writes /tmp/term; the last exec: {last})"
        ))
    })
}

fn delete_terms_then_kills(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    // Both shells loop on short sleeps so a trap runs within 0.1 s.
    let term = RawPod::create(
        rt,
        ctx,
        "life-term",
        json!({
            "terminationGracePeriodSeconds": 30,
            "containers": [sh(ctx, "app", "trap 'exit 0' TERM; while :; do sleep 0.1; done")],
        }),
    )?;
    let stubborn = RawPod::create(
        rt,
        ctx,
        "life-noterm",
        json!({
            "terminationGracePeriodSeconds": 3,
            // Notes the SIGTERM and goes on running.
            "containers": [sh(ctx, "app", "trap 'echo got-term > /tmp/term' TERM; while :; do sleep 0.1; done")],
        }),
    )?;
    for pod in [&term, &stubborn] {
        runtime::wait_running(rt, &pod.name, ctx.timeouts.start)
            .map_err(|e| fail(format!("pod {} did not start: {e}", pod.name)))?;
    }
    let timed_delete = |name: &str, grace: u32| -> Result<Duration, Outcome> {
        let start = Instant::now();
        match rt.delete_pod_with_grace(name, grace) {
            Ok(()) => Ok(start.elapsed()),
            Err(runtime::Error::Unsupported(why)) => Err(skip(why)),
            Err(e) => Err(fail(format!(
                "deleting pod {name} with grace {grace} s: {e}"
            ))),
        }
    };
    let took = timed_delete(&term.name, 30)?;
    ensure(took < Duration::from_secs(10), || {
        format!(
            "deleting pod {} (grace 30 s), whose container exits on SIGTERM, took {took:.1?}: \
             the container did not get SIGTERM at the start of the grace period",
            term.name
        )
    })?;
    // While the delete waits out the grace period, the container must have
    // been told (SIGTERM) and must still run: exec into it and read its note.
    let (took, during) = std::thread::scope(|s| {
        let delete = s.spawn(|| timed_delete(&stubborn.name, 3));
        let seen = noted_term_while_running(rt, ctx, &stubborn.name);
        let took = delete
            .join()
            .unwrap_or_else(|_| Err(fail("the delete thread panicked")));
        (took, seen)
    });
    let took = took?;
    during?;
    ensure(took >= Duration::from_millis(2500), || {
        format!(
            "deleting pod {} (grace 3 s), whose container ignores SIGTERM, took only {took:.1?}: \
             it was killed before its grace period was over",
            stubborn.name
        )
    })?;
    ensure(took < Duration::from_secs(25), || {
        format!(
            "deleting pod {} (grace 3 s), whose container ignores SIGTERM, took {took:.1?}: \
             SIGKILL must follow when the grace period ends",
            stubborn.name
        )
    })
}

/// Waits until `until` holds for the pod; a diagnosis after the start timeout.
fn wait_until(
    rt: &dyn Runtime,
    ctx: &Ctx,
    pod: &str,
    what: &str,
    until: impl Fn(&Pod) -> bool,
) -> Result<(), Outcome> {
    runtime::wait_for(rt, pod, what, ctx.timeouts.start, |p| {
        until(p).then_some(Ok(()))
    })
    .map_err(|e| fail(e.to_string()))
}

fn deleting_unstarted_and_ended_pods(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    if !ctx.caps.init_containers || !ctx.caps.restart_policy {
        return Err(skip(
            "the runtime does not run init containers or honour restartPolicy",
        ));
    }
    let waiting = RawPod::create(
        rt,
        ctx,
        "life-del-waiting",
        json!({
            "initContainers": [ctr(ctx, "init", &["sleep", "3600"])],
            "containers": [ctr(ctx, "app", &["sleep", "3600"])],
        }),
    )?;
    let ended = RawPod::create(
        rt,
        ctx,
        "life-del-ended",
        json!({"restartPolicy": "Never", "containers": [sh(ctx, "app", "exit 1")]}),
    )?;
    wait_until(rt, ctx, &waiting.name, "init container init running", |p| {
        is_running(find(init_statuses(p), "init"))
    })?;
    wait_until(rt, ctx, &ended.name, "phase Failed", |p| {
        runtime::phase(p) == "Failed"
    })?;
    let mut again = Vec::new();
    for (pod, what) in [
        (&waiting, "whose app container never started"),
        (&ended, "whose container exited"),
    ] {
        rt.delete_pod(&pod.name)
            .map_err(|e| fail(format!("deleting pod {} {what} failed: {e}", pod.name)))?;
        if let Some(p) = rt.get_pod(&pod.name)? {
            return Err(fail(format!(
                "pod {} {what} is still reported after its delete returned: {}",
                pod.name,
                runtime::describe(&p)
            )));
        }
        let mut m = PodManifest::sleepers(ctx, "life-del-again", &["app"]);
        m.name = pod.name.clone();
        again.push(m);
    }
    let again: Vec<&PodManifest> = again.iter().collect();
    // A pod under each freed name must run.
    PodGuard::start_all(rt, ctx, &again).map(drop)
}

fn failed_init_blocks_the_app(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    if !ctx.caps.init_containers || !ctx.caps.restart_policy {
        return Err(skip(
            "the runtime does not run init containers or honour restartPolicy",
        ));
    }
    let spec = |policy: &str| {
        json!({
            "restartPolicy": policy,
            "initContainers": [sh(ctx, "init", "exit 7")],
            "containers": [ctr(ctx, "app", &["sleep", "3600"])],
        })
    };
    let never = RawPod::create(rt, ctx, "life-initfail-never", spec("Never"))?;
    let always = RawPod::create(rt, ctx, "life-initfail-always", spec("Always"))?;
    let init_failed = |p: &Pod| {
        find(init_statuses(p), "init")
            .and_then(terminated)
            .is_some_and(|t| t.exit_code == 7)
    };
    let app_unstarted = |name: &str, p: &Pod| -> Check {
        match find(runtime::container_statuses(p), "app") {
            Some(c) if has_started(c) => Err(fail(format!(
                "pod {name}: app container started although its init container failed: {}",
                runtime::describe(p)
            ))),
            _ => Ok(()),
        }
    };
    let reached = watch(
        &never.name,
        rt,
        ctx.timeouts.start,
        ctx.timeouts.settle,
        |p| runtime::phase(p) == "Failed" && init_failed(p),
        |p| app_unstarted(&never.name, p),
    )?;
    ensure(reached, || {
        format!(
            "pod {} (restartPolicy Never) whose init container exits 7 did not end Failed with \
             that exit code within {:?}",
            never.name, ctx.timeouts.start
        )
    })?;
    let last = rt.get_pod(&never.name)?;
    if let Some(p) = last.filter(|p| runtime::phase(p) != "Failed") {
        return Err(fail(format!(
            "pod {} (restartPolicy Never) left phase Failed after its init container failed: {}",
            never.name,
            runtime::describe(&p)
        )));
    }
    let reached = watch(
        &always.name,
        rt,
        ctx.timeouts.start,
        ctx.timeouts.settle,
        init_failed,
        |p| {
            app_unstarted(&always.name, p)?;
            let phase = runtime::phase(p);
            ensure(phase == "Pending" || phase.is_empty(), || {
                format!(
                    "pod {} (restartPolicy Always) whose init container fails is reported {phase}, \
                     not Pending: {}",
                    always.name,
                    runtime::describe(p)
                )
            })
        },
    )?;
    ensure(reached, || {
        format!(
            "pod {}: init container init never reported terminated with exit code 7 within {:?}",
            always.name, ctx.timeouts.start
        )
    })
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
