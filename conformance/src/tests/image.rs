//! What a container takes from its image besides the files: the pull
//! policy that may forbid fetching it, and the image config's User and
//! WorkingDir when the pod does not override them; and, with a test
//! registry (capability `registry`), pulls themselves: an image only the
//! registry has, a name it does not have, and a tag moved to a new digest.

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use crate::pods::RawPod;
use crate::registry;
use crate::runtime::{self, Runtime};
use crate::suite::{ensure, fail, skip, Check, Ctx, Outcome, TestCase};
use crate::tests::cmd::{nonroot_image, start_pods};
use crate::tests::lifecycle::{find, pull_failure_stays_pending, waiting_reason, watch};

pub const CASES: &[TestCase] = &[
    case!("IMAGE-001", never_pull_of_a_missing_image,
        must: "A container with imagePullPolicy Never whose image is not on the node MUST wait with reason ErrImageNeverPull while its pod stays Pending.",
        method: "Creates a pod whose only container has imagePullPolicy Never and an image under the never-resolving `.invalid` domain; polls until the container waits with reason ErrImageNeverPull, then a few seconds more: every observation must be Pending and, once reported, the reason must stay ErrImageNeverPull. Skipped when the runtime cannot report a pod that does not start."),
    case!("IMAGE-002", image_user_and_workdir_apply,
        must: "A container whose pod sets no user or working directory MUST run as the image config's User and in its WorkingDir, and runAsUser MUST override the image's User.",
        method: "Two pods at once from the nonroot fixture image (User 4321:4321, WorkingDir /home/app), no command given (the image's Cmd sleeps): one without securityContext or workingDir, one with runAsUser 1234. `probe caps --pid 1` by exec must read uid 4321 gid 4321 in the first and uid 1234 in the second; `readlink /proc/1/cwd` must print /home/app in the first."),
    case!("IMAGE-003", image_only_in_the_registry_is_pulled,
        must: "A container whose image is not on the node but in a registry the node pulls from MUST have it pulled and run, whether the image is named by tag, by digest or with no tag.",
        method: "Tags the probe image in the test registry under a name of this run only (so no node holds it) and as `latest`, then starts three pods at once (imagePullPolicy IfNotPresent, command sleep): one naming the new tag, one the manifest's digest (`repo@sha256:…`), one the repository with no tag (`:latest` implied); each must run, and `command -v probe` by exec must find the image's probe in each. Skipped without a test registry (capability `registry`)."),
    case!("IMAGE-004", never_pull_of_an_image_in_the_registry,
        must: "A container with imagePullPolicy Never whose image is only in a registry MUST wait with reason ErrImageNeverPull, without pulling it, while its pod stays Pending.",
        method: "Tags the busybox image in the test registry under a name of this run only and creates a pod of it with imagePullPolicy Never; as IMAGE-001, the container must wait with ErrImageNeverPull and the pod stay Pending for a few seconds more (a pull would let it run). Skipped without a test registry or when the runtime cannot report a pod that does not start."),
    case!("IMAGE-005", name_missing_from_the_registry,
        must: "A container whose image name the registry does not have MUST wait with reason ErrImagePull or ImagePullBackOff while its pod stays Pending.",
        method: "Creates a pod of a tag of this run that the test registry was never given (the registry answers manifest unknown); as LIFE-010, the container must wait with ErrImagePull or ImagePullBackOff, and keep to those, while the pod stays Pending. Skipped without a test registry or when the runtime cannot report a pod that does not start."),
    case!("IMAGE-006", always_pulls_a_moved_tag,
        must: "A container with imagePullPolicy Always MUST run the image its tag names in the registry when it starts, even when the node holds an older image under that tag.",
        method: "Tags the busybox image in the test registry under a name of this run only and runs a pod of it with imagePullPolicy Always (`command -v probe` finds nothing), deletes it, moves the tag to the probe image and creates the pod again: the new pod must run the probe image (`command -v probe` finds it). Skipped without a test registry."),
];

/// The test registry's address, or the skip when the run has none.
fn test_registry(ctx: &Ctx) -> Result<&str, Outcome> {
    ctx.caps.registry.as_deref().ok_or_else(|| {
        skip("no test registry (capability `registry`, the runner's --registry HOST:PORT)")
    })
}

/// `source`'s image in the test registry under a tag of this run only.
fn fresh_tag(ctx: &Ctx, address: &str, prefix: &str, source: &str) -> Result<String, Outcome> {
    let tag = ctx.unique_name(prefix);
    registry::tag(address, source, &tag)
        .map_err(|e| fail(format!("tagging the test image: {e}")))?;
    Ok(registry::reference(address, &tag))
}

fn never_pull_of_a_missing_image(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    if !ctx.caps.pending_observable {
        return Err(skip(
            "the runtime cannot report a pod whose containers do not start",
        ));
    }
    // .invalid never resolves (RFC 2606): nothing can hold it.
    never_pull_stays_pending(
        rt,
        ctx,
        "image-never",
        "podlab-conformance.invalid/never-pulled:0",
    )
}

fn never_pull_of_an_image_in_the_registry(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let address = test_registry(ctx)?;
    if !ctx.caps.pending_observable {
        return Err(skip(
            "the runtime cannot report a pod whose containers do not start",
        ));
    }
    let image = fresh_tag(ctx, address, "never", registry::BUSYBOX_TAG)?;
    never_pull_stays_pending(rt, ctx, "image-never-reg", &image)
}

fn name_missing_from_the_registry(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let address = test_registry(ctx)?;
    if !ctx.caps.pending_observable {
        return Err(skip(
            "the runtime cannot report a pod whose containers do not start",
        ));
    }
    // A tag of this run that nothing ever pushed.
    let image = registry::reference(address, &ctx.unique_name("absent"));
    pull_failure_stays_pending(rt, ctx, "image-absent", &image)
}

fn image_only_in_the_registry_is_pulled(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let address = test_registry(ctx)?;
    let tagged = fresh_tag(ctx, address, "pulled", registry::PROBE_TAG)?;
    let digest = registry::tag(address, registry::PROBE_TAG, "latest")
        .map_err(|e| fail(format!("tagging the test image: {e}")))?;
    let images = [
        tagged,
        registry::pinned(address, &digest),
        format!("{address}/{}", registry::REPOSITORY),
    ];
    let specs = images
        .iter()
        .map(|image| json!({"image": image, "command": ["sleep", "3600"]}))
        .collect();
    let pods = start_pods(rt, ctx, "image-pulled", specs)?;
    for (pod, image) in pods.iter().zip(&images) {
        let found = pod.sh(ctx, "app", "command -v probe || true")?;
        ensure(!found.trim().is_empty(), || {
            format!(
                "pod {} runs, but `command -v probe` found no probe: not the probe image {image} was run",
                pod.name
            )
        })?;
    }
    Ok(())
}

fn always_pulls_a_moved_tag(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let address = test_registry(ctx)?;
    let image = fresh_tag(ctx, address, "moved", registry::BUSYBOX_TAG)?;
    let spec = json!({"image": image, "imagePullPolicy": "Always", "command": ["sleep", "3600"]});
    {
        let first = start_pods(rt, ctx, "image-always", vec![spec.clone()])?;
        let found = first[0].sh(ctx, "app", "command -v probe || true")?;
        ensure(found.trim().is_empty(), || {
            format!(
                "pod {} of {image} (the busybox image) found a probe at {:?}: the tag did not name busybox",
                first[0].name,
                found.trim()
            )
        })?;
    }
    let tag = image.rsplit(':').next().unwrap_or_default();
    registry::tag(address, registry::PROBE_TAG, tag)
        .map_err(|e| fail(format!("moving the tag to the probe image: {e}")))?;
    let second = start_pods(rt, ctx, "image-always", vec![spec])?;
    let found = second[0].sh(ctx, "app", "command -v probe || true")?;
    ensure(!found.trim().is_empty(), || {
        format!(
            "pod {} (imagePullPolicy Always) ran the old busybox image of {image}: the tag had moved to the probe image, whose probe `command -v probe` did not find",
            second[0].name
        )
    })
}

/// Creates a pod whose only container has imagePullPolicy Never and an
/// image the node does not hold; it must wait with ErrImageNeverPull (and
/// keep to it) while the pod stays Pending.
fn never_pull_stays_pending(rt: &dyn Runtime, ctx: &Ctx, prefix: &str, image: &str) -> Check {
    let pod = RawPod::create(
        rt,
        ctx,
        prefix,
        json!({"containers": [{
            "name": "app",
            "image": image,
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
            "pod {} (imagePullPolicy Never, image {image} not on the node) never reported ErrImageNeverPull within {:?}",
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
