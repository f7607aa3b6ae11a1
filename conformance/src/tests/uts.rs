//! UTS namespace: the pod's hostname, shared by its containers.

use super::util::{different_namespace, same_namespace};
use crate::pods::{error_name, ok, str_field, ContainerSpec, PodGuard, PodManifest};
use crate::runtime::Runtime;
use crate::suite::{fail, skip, Check, Ctx, Outcome, TestCase};

pub const CASES: &[TestCase] = &[
    case!("UTS-001", hostname_is_pod_name,
        must: "The hostname in every container of a pod MUST be the pod's name when spec.hostname is not set.",
        method: "Starts a pod with containers app and sidecar and compares gethostname(2) in each with metadata.name."),
    case!("UTS-002", hostname_from_spec,
        must: "The hostname in every container of a pod MUST be spec.hostname when it is set.",
        method: "Starts a pod whose spec.hostname is a random name different from the pod's name and compares gethostname(2) in each container with it."),
    case!("UTS-003", shared_uts_namespace,
        must: "All containers of a pod MUST be in the same UTS namespace.",
        method: "Compares the UTS namespace link (/proc/self/ns/uts) in containers app and sidecar."),
    case!("UTS-004", uts_per_pod,
        must: "Two pods MUST be in different UTS namespaces with different hostnames.",
        method: "Starts two pods and compares the UTS namespace link and the hostname of their containers."),
    case!("UTS-005", sethostname_is_shared,
        must: "A hostname change made in one container of a pod MUST be seen by the pod's other containers.",
        method: "Container app (privileged when the runtime allows it) sets a random hostname with sethostname(2); container sidecar must read it. Skipped when the container may not change the hostname (EPERM) and the runtime declares no privileged containers; with privileged declared, EPERM fails."),
];

fn hostname(pod: &PodGuard, container: &str) -> Result<String, Outcome> {
    let v = pod.probe(container, &["hostname"])?;
    Ok(str_field(
        &v,
        "hostname",
        &format!("probe hostname in {}/{container}", pod.name),
    )?
    .to_string())
}

fn expect_hostname(pod: &PodGuard, containers: &[&str], expected: &str, source: &str) -> Check {
    for c in containers {
        let got = hostname(pod, c)?;
        if got != expected {
            return Err(fail(format!(
                "container {c} of pod {} has hostname {got:?}, expected {expected:?} ({source})",
                pod.name
            )));
        }
    }
    Ok(())
}

fn hostname_is_pod_name(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let pod = PodGuard::start(
        rt,
        ctx,
        &PodManifest::sleepers(ctx, "uts-name", &["app", "sidecar"]),
    )?;
    let name = pod.name.clone();
    expect_hostname(&pod, &["app", "sidecar"], &name, "the pod's name")
}

fn hostname_from_spec(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let wanted = format!("host-{:08x}", ctx.random() as u32);
    let manifest = PodManifest::sleepers(ctx, "uts-spec", &["app", "sidecar"]).hostname(&wanted);
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    expect_hostname(&pod, &["app", "sidecar"], &wanted, "spec.hostname")
}

fn shared_uts_namespace(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let pod = PodGuard::start(
        rt,
        ctx,
        &PodManifest::sleepers(ctx, "uts-shared", &["app", "sidecar"]),
    )?;
    same_namespace(&pod, &["app", "sidecar"], "uts", "UTS")
}

fn uts_per_pod(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let a = PodManifest::sleepers(ctx, "uts-pod-a", &["app"]);
    let b = PodManifest::sleepers(ctx, "uts-pod-b", &["app"]);
    let pods = PodGuard::start_all(rt, ctx, &[&a, &b])?;
    different_namespace(&pods[0], &pods[1], "app", "uts", "UTS")?;
    let (ha, hb) = (hostname(&pods[0], "app")?, hostname(&pods[1], "app")?);
    if ha == hb {
        return Err(fail(format!(
            "pods {} and {} both have hostname {ha:?}",
            pods[0].name, pods[1].name
        )));
    }
    Ok(())
}

fn sethostname_is_shared(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let manifest = PodManifest::new(ctx, "uts-set")
        .container(ContainerSpec::new(ctx, "app").privileged(ctx.caps.privileged))
        .container(ContainerSpec::new(ctx, "sidecar"));
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    let wanted = format!("changed-{:08x}", ctx.random() as u32);
    let v = pod.probe("app", &["sethostname", &wanted])?;
    if !ok(&v) {
        if error_name(&v) == "EPERM" && !ctx.caps.privileged {
            return Err(skip(format!(
                "container app of pod {} may not change its hostname (EPERM): it lacks CAP_SYS_ADMIN and the runtime declares no privileged containers",
                pod.name
            )));
        }
        return Err(fail(format!(
            "sethostname({wanted:?}) in container app of pod {} failed: {v}",
            pod.name
        )));
    }
    expect_hostname(
        &pod,
        &["app", "sidecar"],
        &wanted,
        "set by sethostname in container app",
    )
}
