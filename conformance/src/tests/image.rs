//! What a container takes from its image besides the files: the pull
//! policy that may forbid fetching it, and the image config's User and
//! WorkingDir when the pod does not override them.

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use crate::pods::RawPod;
use crate::runtime::{self, Runtime};
use crate::suite::{ensure, fail, skip, Check, Ctx, TestCase};
use crate::tests::cmd::{nonroot_image, start_pods};
use crate::tests::lifecycle::{find, waiting_reason, watch};

pub const CASES: &[TestCase] = &[
    case!("IMAGE-001", never_pull_of_a_missing_image,
        must: "A container with imagePullPolicy Never whose image is not on the node MUST wait with reason ErrImageNeverPull while its pod stays Pending.",
        method: "Creates a pod whose only container has imagePullPolicy Never and an image under the never-resolving `.invalid` domain; polls until the container waits with reason ErrImageNeverPull, then a few seconds more: every observation must be Pending and, once reported, the reason must stay ErrImageNeverPull. Skipped when the runtime cannot report a pod that does not start."),
    case!("IMAGE-002", image_user_and_workdir_apply,
        must: "A container whose pod sets no user or working directory MUST run as the image config's User and in its WorkingDir, and runAsUser MUST override the image's User.",
        method: "Two pods at once from the nonroot fixture image (User 4321:4321, WorkingDir /home/app), no command given (the image's Cmd sleeps): one without securityContext or workingDir, one with runAsUser 1234. `probe caps --pid 1` by exec must read uid 4321 gid 4321 in the first and uid 1234 in the second; `readlink /proc/1/cwd` must print /home/app in the first."),
];

fn never_pull_of_a_missing_image(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    if !ctx.caps.pending_observable {
        return Err(skip(
            "the runtime cannot report a pod whose containers do not start",
        ));
    }
    let pod = RawPod::create(
        rt,
        ctx,
        "image-never",
        json!({"containers": [{
            "name": "app",
            // .invalid never resolves (RFC 2606): nothing can hold it.
            "image": "podlab-conformance.invalid/never-pulled:0",
            "imagePullPolicy": "Never",
            "command": ["sleep", "3600"],
        }]}),
    )?;
    let never_pull = |p: &Pod| {
        waiting_reason(find(runtime::container_statuses(p), "app")) == Some("ErrImageNeverPull")
    };
    let mut reported = false;
    let reached = watch(
        &pod.name,
        rt,
        ctx.timeouts.start,
        ctx.timeouts.settle,
        |p| never_pull(p),
        |p| {
            let phase = runtime::phase(p);
            if phase != "Pending" && !phase.is_empty() {
                return Err(fail(format!(
                    "pod {} may not pull its missing image but is reported {phase}, not Pending: {}",
                    pod.name,
                    runtime::describe(p)
                )));
            }
            if reported && !never_pull(p) {
                return Err(fail(format!(
                    "pod {}: after ErrImageNeverPull the container left that state: {}",
                    pod.name,
                    runtime::describe(p)
                )));
            }
            reported |= never_pull(p);
            Ok(())
        },
    )?;
    ensure(reached, || {
        format!(
            "pod {} (imagePullPolicy Never, image not on the node) never reported ErrImageNeverPull within {:?}",
            pod.name, ctx.timeouts.start
        )
    })
}

fn image_user_and_workdir_apply(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let image = nonroot_image(ctx);
    let pods = start_pods(
        rt,
        ctx,
        "image-user",
        vec![
            json!({"image": image}),
            json!({"image": image, "securityContext": {"runAsUser": 1234}}),
        ],
    )?;
    let (plain, overridden) = (&pods[0], &pods[1]);
    let v = plain.probe(ctx, "app", &["caps", "--pid", "1"])?;
    ensure(v["uid"] == 4321 && v["gid"] == 4321, || {
        format!(
            "pod {}: the container's process runs as uid {} gid {}, not as the image's User 4321:4321",
            plain.name, v["uid"], v["gid"]
        )
    })?;
    let cwd = plain.sh(ctx, "app", "readlink /proc/1/cwd")?;
    ensure(cwd.trim() == "/home/app", || {
        format!(
            "pod {}: the container's process runs in {:?}, not in the image's WorkingDir /home/app",
            plain.name,
            cwd.trim()
        )
    })?;
    let v = overridden.probe(ctx, "app", &["caps", "--pid", "1"])?;
    ensure(v["uid"] == 1234, || {
        format!(
            "pod {}: with runAsUser 1234 the container's process runs as uid {}, not 1234 (the image's User is 4321)",
            overridden.name, v["uid"]
        )
    })
}
