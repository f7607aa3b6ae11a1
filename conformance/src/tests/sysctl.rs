//! SYSCTL: spec.securityContext.sysctls. The kubelet's safe sysctls take
//! effect in the pod's own namespaces only; any other is refused by the
//! kubelet's admission (pod Failed, reason SysctlForbidden). ESC-026 checks
//! net.ipv4.ip_local_port_range; these cover the other safe ones.

use std::time::Duration;

use serde_json::json;

use crate::pods::{ok, PodGuard, PodManifest};
use crate::runtime::{self, Runtime};
use crate::suite::{fail, skip, Check, Ctx, Outcome};

pub const CASES: &[crate::suite::TestCase] = &[
    case!("SYSCTL-001", safe_sysctls_apply_inside,
        must: "The safe sysctls kernel.shm_rmid_forced, net.ipv4.ip_unprivileged_port_start and net.ipv4.ping_group_range set in spec.securityContext.sysctls MUST take effect inside the pod and MUST NOT change the node's values.",
        method: "Reads the three values on the node, starts a pod setting each to a value different from both the node's and the kernel's default for a new namespace, reads them back with `probe read-file /proc/sys/...` in the container, then reads the node's again: unchanged. Skipped when pods do not run on the suite's kernel."),
    case!("SYSCTL-002", unsafe_sysctl_is_forbidden,
        must: "A pod setting a namespaced sysctl outside the kubelet's safe set MUST end Failed with reason SysctlForbidden and none of its containers started.",
        method: "Creates a pod setting kernel.msgmax (namespaced, not safe) and waits for it to leave Pending: it must be Failed with status.reason SysctlForbidden and no container running or terminated; a runtime that refuses the pod at creation, or runs it, fails."),
    case!("SYSCTL-003", sysctls_stay_in_their_pod,
        must: "A sysctl set by one pod MUST NOT be seen by another pod on the node.",
        method: "Starts pod a setting net.ipv4.ip_unprivileged_port_start to 1001 and pod b setting nothing, at the same time; pod b must read a value other than 1001 in /proc/sys/net/ipv4/ip_unprivileged_port_start, pod a 1001."),
];

/// Safe sysctls, their /proc/sys files, a value differing from the kernel's
/// default in a new namespace, and another for a node that already has it.
const SAFE: &[(&str, &str, &str, &str)] = &[
    (
        "kernel.shm_rmid_forced",
        "/proc/sys/kernel/shm_rmid_forced",
        "1",
        "1",
    ),
    (
        "net.ipv4.ip_unprivileged_port_start",
        "/proc/sys/net/ipv4/ip_unprivileged_port_start",
        "1001",
        "1002",
    ),
    (
        "net.ipv4.ping_group_range",
        "/proc/sys/net/ipv4/ping_group_range",
        "0 2147483647",
        "0 1000",
    ),
];

fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn node_value(path: &str) -> Result<String, Outcome> {
    std::fs::read_to_string(path)
        .map(|t| words(&t))
        .map_err(|e| fail(format!("cannot read the node's {path}: {e}")))
}

fn pod_value(pod: &PodGuard, path: &str) -> Result<String, Outcome> {
    let v = pod.probe("app", &["read-file", path])?;
    if !ok(&v) {
        return Err(fail(format!("cannot read {path} in pod {}: {v}", pod.name)));
    }
    Ok(words(v["data"].as_str().unwrap_or_default()))
}

fn same_kernel(ctx: &Ctx) -> Check {
    if ctx.caps.same_kernel {
        Ok(())
    } else {
        Err(skip(
            "the runtime's pods do not run on this suite's kernel, so the node's values cannot be read",
        ))
    }
}

fn safe_sysctls_apply_inside(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    same_kernel(ctx)?;
    let mut wanted = Vec::new();
    for (name, path, value, other) in SAFE {
        let node = node_value(path)?;
        let v = if node == *value { other } else { value };
        wanted.push((*name, *path, node, v.to_string()));
    }
    let sysctls: Vec<_> = wanted
        .iter()
        .map(|(name, _, _, v)| json!({"name": name, "value": v}))
        .collect();
    let manifest = PodManifest::sleepers(ctx, "sysctl-safe", &["app"])
        .spec_field("securityContext", json!({ "sysctls": sysctls }));
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    for (name, path, node_before, v) in &wanted {
        let inside = pod_value(&pod, path)?;
        if inside != *v {
            return Err(fail(format!(
                "pod {} set {name} to {v:?} but reads {inside:?} in {path}",
                pod.name
            )));
        }
        let node_after = node_value(path)?;
        if node_after != *node_before {
            return Err(fail(format!(
                "pod {}'s sysctl {name} changed the node's value from {node_before:?} to {node_after:?}",
                pod.name
            )));
        }
    }
    Ok(())
}

fn unsafe_sysctl_is_forbidden(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let manifest = PodManifest::sleepers(ctx, "sysctl-unsafe", &["app"]).spec_field(
        "securityContext",
        json!({"sysctls": [{"name": "kernel.msgmax", "value": "9000"}]}),
    );
    let pod = PodGuard::create(rt, ctx, &manifest)?;
    let seen = runtime::wait_for(
        rt,
        &pod.name,
        "the pod to leave Pending",
        ctx.timeouts.start + Duration::from_secs(5),
        |p| {
            (runtime::phase(p) != "Pending" && !runtime::phase(p).is_empty()).then(|| Ok(p.clone()))
        },
    )
    .map_err(|e| fail(format!("pod {} setting kernel.msgmax: {e}", pod.name)))?;
    let phase = runtime::phase(&seen);
    let reason = seen
        .status
        .as_ref()
        .and_then(|s| s.reason.clone())
        .unwrap_or_default();
    if phase != "Failed" || reason != "SysctlForbidden" {
        return Err(fail(format!(
            "pod {} sets kernel.msgmax, which is not a safe sysctl: it is {phase} with reason {reason:?}, \
             expected Failed with reason SysctlForbidden: {}",
            pod.name,
            runtime::describe(&seen)
        )));
    }
    let started: Vec<_> = runtime::container_statuses(&seen)
        .iter()
        .filter(|c| {
            c.state
                .as_ref()
                .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
        })
        .map(|c| c.name.clone())
        .collect();
    if !started.is_empty() {
        return Err(fail(format!(
            "pod {} was refused for its sysctl, yet containers {started:?} started",
            pod.name
        )));
    }
    Ok(())
}

fn sysctls_stay_in_their_pod(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    const PATH: &str = "/proc/sys/net/ipv4/ip_unprivileged_port_start";
    let a = PodManifest::sleepers(ctx, "sysctl-a", &["app"]).spec_field(
        "securityContext",
        json!({"sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "1001"}]}),
    );
    let b = PodManifest::sleepers(ctx, "sysctl-b", &["app"]);
    let pods = PodGuard::start_all(rt, ctx, &[&a, &b])?;
    let (in_a, in_b) = (pod_value(&pods[0], PATH)?, pod_value(&pods[1], PATH)?);
    if in_a != "1001" {
        return Err(fail(format!(
            "pod {} set net.ipv4.ip_unprivileged_port_start to 1001 but reads {in_a:?}",
            pods[0].name
        )));
    }
    if in_b == in_a {
        return Err(fail(format!(
            "pod {} never set net.ipv4.ip_unprivileged_port_start but reads pod {}'s value {in_b:?}",
            pods[1].name, pods[0].name
        )));
    }
    Ok(())
}
