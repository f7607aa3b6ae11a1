//! HOSTNS: hostPID and hostIPC put a pod's containers in the node's PID
//! and IPC namespaces; pods without them get their own (IPC-008 checks
//! that host IPC objects stay invisible; these compare namespace ids).

use serde_json::json;

use super::ipc::{host_object, Mechanism};
use super::util::namespace;
use crate::pods::{ok, PodGuard, PodManifest};
use crate::runtime::Runtime;
use crate::suite::{fail, skip, Check, Ctx, Outcome};

pub const CASES: &[crate::suite::TestCase] = &[
    case!("HOSTNS-001", host_pid_shares_node_pid_namespace,
        must: "The containers of a pod with hostPID MUST be in the node's PID namespace and see the node's processes.",
        method: "Starts a hostPID pod; the PID namespace link (/proc/self/ns/pid) in its container must equal the suite process's own (the suite runs on the node), and /proc/<suite pid>/status must be readable in the container. Skipped when pods do not run on the suite's kernel."),
    case!("HOSTNS-002", host_ipc_shares_node_ipc_namespace,
        must: "The containers of a pod with hostIPC MUST be in the node's IPC namespace and see its SysV IPC objects.",
        method: "Creates a SysV shared-memory segment on the node under a random key (removed afterwards), starts a hostIPC pod; the IPC namespace link in its container must equal the suite process's and `probe shm-read --key K` must find the segment. Skipped when pods do not run on the suite's kernel."),
    case!("HOSTNS-003", own_pid_and_ipc_namespaces,
        must: "The containers of a pod without hostPID and hostIPC MUST NOT be in the node's PID or IPC namespace.",
        method: "Starts a plain pod; its container's PID and IPC namespace links must both differ from the suite process's, and /proc/<suite pid> must not exist in it. Skipped when pods do not run on the suite's kernel."),
];

/// The suite's own namespace link (`pid:[4026531836]`): the node's.
fn node_ns(kind: &str) -> Result<String, Outcome> {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(|e| fail(format!("cannot read the suite's /proc/self/ns/{kind}: {e}")))
}

fn same_kernel(ctx: &Ctx) -> Check {
    if ctx.caps.same_kernel {
        Ok(())
    } else {
        Err(skip(
            "the runtime's pods do not run on this suite's kernel, so their namespaces cannot be compared with the node's",
        ))
    }
}

/// Whether `/proc/<suite pid>/status` is readable in the pod's container.
fn sees_suite(pod: &PodGuard) -> Result<bool, Outcome> {
    let path = format!("/proc/{}/status", std::process::id());
    Ok(ok(&pod.probe("app", &["read-file", &path])?))
}

fn host_pid_shares_node_pid_namespace(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    same_kernel(ctx)?;
    let node = node_ns("pid")?;
    let manifest =
        PodManifest::sleepers(ctx, "hostns-pid", &["app"]).spec_field("hostPID", json!(true));
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    let inside = namespace(&pod, "app", "pid")?;
    if inside != node {
        return Err(fail(format!(
            "container app of hostPID pod {} is in PID namespace {inside}, the node's is {node}",
            pod.name
        )));
    }
    if !sees_suite(&pod)? {
        return Err(fail(format!(
            "container app of hostPID pod {} cannot see the node's process {} (the suite)",
            pod.name,
            std::process::id()
        )));
    }
    Ok(())
}

fn host_ipc_shares_node_ipc_namespace(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    same_kernel(ctx)?;
    let node = node_ns("ipc")?;
    // The host object first: it is removed after the pod (drop order).
    let (_shm, key) = host_object(ctx, Mechanism::Shm)?;
    let manifest =
        PodManifest::sleepers(ctx, "hostns-ipc", &["app"]).spec_field("hostIPC", json!(true));
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    let inside = namespace(&pod, "app", "ipc")?;
    if inside != node {
        return Err(fail(format!(
            "container app of hostIPC pod {} is in IPC namespace {inside}, the node's is {node}",
            pod.name
        )));
    }
    let args = Mechanism::Shm.read(key);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let v = pod.probe("app", &args)?;
    if !ok(&v) {
        return Err(fail(format!(
            "container app of hostIPC pod {} does not find the node's {} (key {key}): {v}",
            pod.name,
            Mechanism::Shm.describe()
        )));
    }
    Ok(())
}

fn own_pid_and_ipc_namespaces(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    same_kernel(ctx)?;
    let pod = PodGuard::start(rt, ctx, &PodManifest::sleepers(ctx, "hostns-own", &["app"]))?;
    for kind in ["pid", "ipc"] {
        let (node, inside) = (node_ns(kind)?, namespace(&pod, "app", kind)?);
        if inside == node {
            return Err(fail(format!(
                "container app of pod {} (no hostPID, no hostIPC) is in the node's {kind} namespace {node}",
                pod.name
            )));
        }
    }
    if sees_suite(&pod)? {
        return Err(fail(format!(
            "container app of pod {} (no hostPID) sees the node's process {} (the suite)",
            pod.name,
            std::process::id()
        )));
    }
    Ok(())
}
