//! What the containers of a pod do NOT share: filesystems and, by default, processes.

use serde_json::Value;

use crate::pods::{error_name, ok, ContainerSpec, PodGuard, PodManifest};
use crate::runtime::Runtime;
use crate::suite::{fail, skip, Check, Ctx, Outcome, TestCase};

use super::util::namespace;

pub const CASES: &[TestCase] = &[
    case!("ISO-001", separate_mount_namespaces,
        must: "Each container of a pod MUST have its own mount namespace, so a file one container writes to /tmp is not in another container's /tmp.",
        method: "Compares the mount namespace links of containers app and sidecar; app writes a random token to a file in /tmp and sidecar reading the same path must get ENOENT."),
    case!("ISO-002", separate_pid_namespaces,
        must: "Without shareProcessNamespace, a container MUST NOT see the processes of the pod's other containers.",
        method: "Container app runs `sleep N` with a random N; container sidecar lists /proc and must not find that command line, and the two containers' PID namespace links must differ."),
    case!("ISO-003", shared_process_namespace,
        must: "With shareProcessNamespace: true, every container of the pod MUST see the processes of the pod's other containers.",
        method: "In a pod with shareProcessNamespace: true, container app runs `sleep N` with a random N; container sidecar lists /proc and must find that command line."),
];

fn separate_mount_namespaces(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let pod = PodGuard::start(
        rt,
        ctx,
        &PodManifest::sleepers(ctx, "iso-mnt", &["app", "sidecar"]),
    )?;
    let (ma, mb) = (
        namespace(&pod, "app", "mnt")?,
        namespace(&pod, "sidecar", "mnt")?,
    );
    if ma == mb {
        return Err(fail(format!(
            "containers app and sidecar of pod {} share the mount namespace {ma}: each container needs its own",
            pod.name
        )));
    }
    let token = ctx.token();
    let path = format!("/tmp/podlab-conformance-{token}");
    let v = pod.probe("app", &["write-file", &path, &token])?;
    if !ok(&v) {
        return Err(fail(format!(
            "container app of pod {} cannot write {path}: {v}",
            pod.name
        )));
    }
    let v = pod.probe("sidecar", &["read-file", &path])?;
    if ok(&v) {
        return Err(fail(format!(
            "container sidecar of pod {} reads {path}, which container app wrote: the containers share a /tmp",
            pod.name
        )));
    }
    if error_name(&v) != "ENOENT" {
        return Err(fail(format!(
            "reading {path} in container sidecar of pod {} gave {} instead of ENOENT ({v})",
            pod.name,
            error_name(&v)
        )));
    }
    Ok(())
}

/// A pod whose container app runs a command line no other process has.
fn marked_pod(ctx: &Ctx, prefix: &str, share: bool) -> (PodManifest, String) {
    let seconds = (3_600_000 + ctx.random() % 1_000_000).to_string();
    let mut m = PodManifest::new(ctx, prefix)
        .container(ContainerSpec::new(ctx, "app").command(&["sleep", &seconds]))
        .container(ContainerSpec::new(ctx, "sidecar"));
    if share {
        m = m.share_process_namespace();
    }
    (m, format!("sleep {seconds}"))
}

/// The command lines of the processes a container sees.
fn command_lines(pod: &PodGuard, container: &str) -> Result<Vec<String>, Outcome> {
    let v = pod.probe(container, &["ps"])?;
    let map = v
        .get("cmdlines")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            fail(format!(
                "probe ps in {}/{container} listed no command lines: {v}",
                pod.name
            ))
        })?;
    Ok(map
        .values()
        .filter_map(Value::as_str)
        .map(String::from)
        .collect())
}

fn separate_pid_namespaces(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let (manifest, marker) = marked_pod(ctx, "iso-pid", false);
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    let seen = command_lines(&pod, "sidecar")?;
    if seen.contains(&marker) {
        return Err(fail(format!(
            "container sidecar of pod {} sees `{marker}`, the process of container app, without shareProcessNamespace: \
             each container needs its own PID namespace (sidecar sees: {})",
            pod.name,
            seen.join(" | ")
        )));
    }
    let (pa, pb) = (
        namespace(&pod, "app", "pid")?,
        namespace(&pod, "sidecar", "pid")?,
    );
    if pa == pb {
        return Err(fail(format!(
            "containers app and sidecar of pod {} share the PID namespace {pa} without shareProcessNamespace",
            pod.name
        )));
    }
    Ok(())
}

fn shared_process_namespace(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    if !ctx.caps.share_process_namespace {
        return Err(skip(
            "the runtime does not support spec.shareProcessNamespace",
        ));
    }
    let (manifest, marker) = marked_pod(ctx, "iso-sharepid", true);
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    let seen = command_lines(&pod, "sidecar")?;
    if !seen.contains(&marker) {
        return Err(fail(format!(
            "with shareProcessNamespace: true, container sidecar of pod {} does not see `{marker}`, the process of container app \
             (sidecar sees: {}): the containers must share one PID namespace",
            pod.name,
            seen.join(" | ")
        )));
    }
    Ok(())
}
