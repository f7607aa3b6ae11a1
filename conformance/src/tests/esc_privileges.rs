//! Escapes through privileges a pod asked not to have: a pod written for
//! Kubernetes' "restricted" Pod Security Standard must run as its user,
//! under a seccomp filter, and a pod that cannot keep its promise not to
//! run as root must not run at all.

use serde_json::{json, Value};

use crate::pods::{error_name, ok, ContainerSpec, PodGuard, PodManifest};
use crate::runtime::{self, Runtime};
use crate::suite::{fail, skip, Check, Ctx, Outcome, TestCase};

pub const CASES: &[TestCase] = &[
    case!("ESC-020", restricted_runs_as_its_user,
        must: "A pod with spec.securityContext runAsNonRoot: true and runAsUser: 1000 MUST run its container's main process and every process exec'd into it as uid 1000 with no effective capabilities.",
        method: "Starts the restricted pod (pod-level seccompProfile RuntimeDefault, runAsNonRoot: true, runAsUser: 1000); `probe caps --pid 1` and an exec'd `probe caps` read Uid and CapEff from /proc/PID/status: uid must be 1000 and CapEff 0 for both."),
    case!("ESC-021", restricted_runs_under_seccomp,
        must: "A pod with spec.securityContext.seccompProfile type RuntimeDefault MUST run its container's main process and every process exec'd into it under a seccomp filter.",
        method: "In the restricted pod, `probe caps --pid 1` and an exec'd `probe caps` read the Seccomp field of /proc/PID/status: it must be 2 (filter mode) for both."),
    case!("ESC-022", runtime_default_blocks_escape_calls,
        must: "Under the RuntimeDefault seccomp profile, a container without CAP_SYS_ADMIN MUST get EPERM from unshare(CLONE_NEWUSER), clone(CLONE_NEWUSER) and keyctl, the first steps of many kernel exploits.",
        method: "In the restricted pod (uid 1000, where the kernel alone would allow a new user namespace), exec'd `probe syscall unshare-user`, `probe syscall clone-newuser` and `probe syscall keyctl` make the raw calls; each must fail with EPERM, while `probe syscall getpid` must succeed."),
    case!("ESC-023", run_as_non_root_without_user_never_runs,
        must: "A container with runAsNonRoot: true whose user would be root (no runAsUser and an image without a non-root user) MUST NOT run: the pod is refused or the container waits with reason CreateContainerConfigError.",
        method: "Creates a pod with pod-level runAsNonRoot: true and no runAsUser, its container running the probe image (whose config names no user); the pod must be refused at creation, or its container must reach waiting with reason CreateContainerConfigError without ever being reported running."),
    case!("ESC-024", container_context_overrides_pod_context,
        must: "A container's own securityContext fields MUST override the pod's, field by field: runAsUser and runAsGroup of the container win, the pod's apply where the container sets none, and a container's seccompProfile Unconfined removes the pod's filter.",
        method: "The pod sets runAsUser 1000, runAsGroup 1001 and seccompProfile RuntimeDefault; container app sets runAsUser 2000, container plain sets nothing, container loose sets seccompProfile Unconfined; exec'd `probe caps` must read uid 2000 gid 1001 Seccomp 2 in app, uid 1000 gid 1001 Seccomp 2 in plain, and Seccomp 0 in loose."),
    case!("ESC-025", fs_group_owns_empty_dir,
        must: "With spec.securityContext.fsGroup, a container MUST hold the fsGroup as a supplementary group and files it creates in an emptyDir volume MUST belong to that group.",
        method: "The pod sets runAsUser 1000 and fsGroup 2000 and mounts an emptyDir at /data; an exec'd `probe caps` must list group 2000; `probe write-file /data/f` must succeed as uid 1000, and `stat -c %g /data/f` must print 2000."),
    case!("ESC-026", sysctls_stay_in_the_pod,
        must: "A pod's spec.securityContext.sysctls MUST take effect inside the pod's own namespaces and MUST NOT change the node's values.",
        method: "Reads the node's net.ipv4.ip_local_port_range, then starts a pod setting it (a namespaced sysctl Kubernetes counts as safe) to a range different from the node's; `probe read-file /proc/sys/net/ipv4/ip_local_port_range` in the pod must show the pod's range, and the node's value must be unchanged."),
];

/// The restricted Pod Security Standard's pod-level context.
fn restricted() -> Value {
    json!({"seccompProfile": {"type": "RuntimeDefault"}, "runAsNonRoot": true, "runAsUser": 1000})
}

fn restricted_pod(ctx: &Ctx, prefix: &str) -> PodManifest {
    PodManifest::sleepers(ctx, prefix, &["app"]).spec_field("securityContext", restricted())
}

/// `probe caps` of the container's main process and of an exec'd one.
fn caps_both(pod: &PodGuard, container: &str) -> Result<[(String, Value); 2], Outcome> {
    Ok([
        (
            "the main process (PID 1)".to_string(),
            pod.probe(container, &["caps", "--pid", "1"])?,
        ),
        (
            "an exec'd process".to_string(),
            pod.probe(container, &["caps"])?,
        ),
    ])
}

fn restricted_runs_as_its_user(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let pod = PodGuard::start(rt, ctx, &restricted_pod(ctx, "esc-user"))?;
    for (whose, v) in caps_both(&pod, "app")? {
        if v["uid"] != 1000 {
            return Err(fail(format!(
                "{whose} of container app in pod {} runs as uid {} instead of runAsUser 1000: {v}",
                pod.name, v["uid"]
            )));
        }
        if v["CapEff"] != "0000000000000000" {
            return Err(fail(format!(
                "{whose} of container app in pod {} runs as uid 1000 with effective capabilities {}: a non-root process must hold none",
                pod.name, v["CapEff"]
            )));
        }
    }
    Ok(())
}

fn restricted_runs_under_seccomp(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let pod = PodGuard::start(rt, ctx, &restricted_pod(ctx, "esc-filter"))?;
    for (whose, v) in caps_both(&pod, "app")? {
        if v["Seccomp"] != 2 {
            return Err(fail(format!(
                "{whose} of container app in pod {} has Seccomp {} in /proc/PID/status: seccompProfile RuntimeDefault needs a filter (2)",
                pod.name, v["Seccomp"]
            )));
        }
    }
    Ok(())
}

fn runtime_default_blocks_escape_calls(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let pod = PodGuard::start(rt, ctx, &restricted_pod(ctx, "esc-calls"))?;
    let v = pod.probe("app", &["syscall", "getpid"])?;
    if !ok(&v) {
        return Err(fail(format!(
            "getpid fails in container app of pod {}, so the probe cannot tell a filter from a broken call: {v}",
            pod.name
        )));
    }
    for call in ["unshare-user", "clone-newuser", "keyctl"] {
        let v = pod.probe("app", &["syscall", call])?;
        if ok(&v) {
            return Err(fail(format!(
                "`{call}` succeeds in container app of pod {} under seccompProfile RuntimeDefault: the filter must refuse it with EPERM ({v})",
                pod.name
            )));
        }
        if error_name(&v) != "EPERM" {
            return Err(fail(format!(
                "`{call}` in container app of pod {} failed with {} instead of the filter's EPERM ({v})",
                pod.name,
                error_name(&v)
            )));
        }
    }
    Ok(())
}

fn waiting_reason(pod: &k8s_openapi::api::core::v1::Pod) -> Option<String> {
    runtime::container_statuses(pod)
        .iter()
        .find(|c| c.name == "app")
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.reason.clone())
}

fn run_as_non_root_without_user_never_runs(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let manifest = PodManifest::sleepers(ctx, "esc-nonroot", &["app"])
        .spec_field("securityContext", json!({"runAsNonRoot": true}));
    // A refusal at creation is a correct answer too; the guard deletes
    // whatever was created.
    let guard = match PodGuard::create(rt, ctx, &manifest) {
        Ok(g) => g,
        Err(Outcome::Failed(_)) => return Ok(()),
        Err(other) => return Err(other),
    };
    let seen = runtime::wait_for(
        rt,
        &guard.name,
        "container app waiting with reason CreateContainerConfigError",
        ctx.timeouts.start,
        |p| {
            let running = runtime::container_statuses(p)
                .iter()
                .any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()));
            if running || runtime::phase(p) == "Running" {
                return Some(Err(runtime::Error::Other(format!(
                    "the container runs as root although runAsNonRoot is true: {}",
                    runtime::describe(p)
                ))));
            }
            (waiting_reason(p).as_deref() == Some("CreateContainerConfigError")).then_some(Ok(()))
        },
    );
    seen.map_err(|e| fail(format!("pod {}: {e}", guard.name)))
}

fn container_context_overrides_pod_context(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let manifest = PodManifest::new(ctx, "esc-override")
        .spec_field(
            "securityContext",
            json!({"runAsUser": 1000, "runAsGroup": 1001, "seccompProfile": {"type": "RuntimeDefault"}}),
        )
        .container(
            ContainerSpec::new(ctx, "app").field("securityContext", json!({"runAsUser": 2000})),
        )
        .container(ContainerSpec::new(ctx, "plain"))
        .container(ContainerSpec::new(ctx, "loose").field(
            "securityContext",
            json!({"seccompProfile": {"type": "Unconfined"}}),
        ));
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    for (container, field, want) in [
        ("app", "uid", json!(2000)),
        ("app", "gid", json!(1001)),
        ("app", "Seccomp", json!(2)),
        ("plain", "uid", json!(1000)),
        ("plain", "gid", json!(1001)),
        ("plain", "Seccomp", json!(2)),
        ("loose", "Seccomp", json!(0)),
    ] {
        let v = pod.probe(container, &["caps"])?;
        if v[field] != want {
            return Err(fail(format!(
                "container {container} of pod {} has {field} {} instead of {want}: the container's securityContext must win over the pod's \
                 field by field, and the pod's apply where the container sets nothing ({v})",
                pod.name, v[field]
            )));
        }
    }
    Ok(())
}

fn fs_group_owns_empty_dir(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let manifest = PodManifest::new(ctx, "esc-fsgroup")
        .spec_field(
            "securityContext",
            json!({"runAsUser": 1000, "fsGroup": 2000}),
        )
        .spec_field("volumes", json!([{"name": "data", "emptyDir": {}}]))
        .container(ContainerSpec::new(ctx, "app").field(
            "volumeMounts",
            json!([{"name": "data", "mountPath": "/data"}]),
        ));
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    let v = pod.probe("app", &["caps"])?;
    let groups = v["groups"].as_array().cloned().unwrap_or_default();
    if !groups.contains(&json!(2000)) {
        return Err(fail(format!(
            "container app of pod {} does not hold fsGroup 2000 among its groups {}",
            pod.name, v["groups"]
        )));
    }
    let v = pod.probe("app", &["write-file", "/data/f", "x"])?;
    if !ok(&v) {
        return Err(fail(format!(
            "uid 1000 cannot create a file in the emptyDir of pod {} with fsGroup 2000: {v}",
            pod.name
        )));
    }
    let out = pod.exec("app", &["stat", "-c", "%g", "/data/f"])?;
    if out.exit_code != 0 || out.stdout.trim() != "2000" {
        return Err(fail(format!(
            "a file created in the emptyDir of pod {} belongs to group {:?} instead of fsGroup 2000 (stat exit {}, stderr {:?})",
            pod.name,
            out.stdout.trim(),
            out.exit_code,
            out.stderr.trim()
        )));
    }
    Ok(())
}

const PORT_RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";

/// `a b` from a port-range file, whitespace normalised.
fn port_range(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn sysctls_stay_in_the_pod(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    if !ctx.caps.same_kernel {
        return Err(skip(
            "the runtime's pods do not run on this suite's kernel, so the node's value cannot be read",
        ));
    }
    let node_before = std::fs::read_to_string(PORT_RANGE)
        .map(|t| port_range(&t))
        .map_err(|e| fail(format!("cannot read the node's {PORT_RANGE}: {e}")))?;
    let wanted = if node_before == "40000 50000" {
        "40001 50001"
    } else {
        "40000 50000"
    };
    let manifest = PodManifest::sleepers(ctx, "esc-sysctl", &["app"]).spec_field(
        "securityContext",
        json!({"sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": wanted}]}),
    );
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    let v = pod.probe("app", &["read-file", PORT_RANGE])?;
    let inside = port_range(v["data"].as_str().unwrap_or_default());
    if !ok(&v) || inside != wanted {
        return Err(fail(format!(
            "pod {} set net.ipv4.ip_local_port_range to {wanted:?} but reads {inside:?} inside ({v})",
            pod.name
        )));
    }
    let node_after = std::fs::read_to_string(PORT_RANGE)
        .map(|t| port_range(&t))
        .map_err(|e| fail(format!("cannot read the node's {PORT_RANGE}: {e}")))?;
    if node_after != node_before {
        return Err(fail(format!(
            "pod {}'s sysctl changed the node's net.ipv4.ip_local_port_range from {node_before:?} to {node_after:?}",
            pod.name
        )));
    }
    Ok(())
}
