//! `activeDeadlineSeconds`: a pod active on its node longer than its
//! deadline is failed by the node, reason DeadlineExceeded.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::pods::RawPod;
use crate::runtime::{self, Runtime};
use crate::suite::{fail, Check, Ctx, TestCase};

pub const CASES: &[TestCase] = &[case!("DEADLINE-001", deadline_exceeded,
        must: "A pod still running when its activeDeadlineSeconds have passed MUST end in phase Failed with reason DeadlineExceeded, with none of its containers running, and not before the deadline.",
        method: "A pod with activeDeadlineSeconds 2 and two containers that sleep for an hour. It must run first; then it is polled until its phase is Failed with status.reason DeadlineExceeded and no container is running (each terminated), within 20 s of its running; it must not be Failed within the first 2 s after it was created (a lower bound only).")];

fn deadline_exceeded(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let sleeper =
        |name: &str| json!({"name": name, "image": ctx.probe_image, "command": ["sleep", "3600"]});
    let created = Instant::now();
    let pod = RawPod::create(
        rt,
        ctx,
        "deadline",
        json!({"activeDeadlineSeconds": 2,
               "containers": [sleeper("app"), sleeper("side")]}),
    )?;
    runtime::wait_running(rt, &pod.name, ctx.timeouts.start)
        .map_err(|e| fail(format!("pod {} did not start: {e}", pod.name)))?;
    // Far past the 2 s deadline; a kubelet notices it at its next pod sync.
    let within = Duration::from_secs(20);
    let p = runtime::wait_for(
        rt,
        &pod.name,
        "phase Failed, reason DeadlineExceeded, no container running",
        within,
        |p| {
            let reason = p.status.as_ref().and_then(|s| s.reason.as_deref());
            let none_running = runtime::container_statuses(p)
                .iter()
                .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_none()));
            (runtime::phase(p) == "Failed" && reason == Some("DeadlineExceeded") && none_running)
                .then(|| Ok(p.clone()))
        },
    )
    .map_err(|e| fail(e.to_string()))?;
    let after = created.elapsed();
    if after < Duration::from_secs(2) {
        return Err(fail(format!(
            "pod {} was failed for its 2 s deadline {after:?} after it was created: {}",
            pod.name,
            runtime::describe(&p)
        )));
    }
    Ok(())
}
