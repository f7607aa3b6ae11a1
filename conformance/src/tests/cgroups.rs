//! Cgroups: every container has its own limits, and the kernel enforces them.

use serde_json::Value;

use crate::pods::{error_name, num_field, ok, ContainerSpec, PodGuard, PodManifest};
use crate::runtime::{self, Runtime};
use crate::suite::{fail, skip, Check, Ctx, Outcome, TestCase};

pub const CASES: &[TestCase] = &[
    case!("CGR-001", memory_limit_per_container,
        must: "Each container MUST run in a cgroup whose memory limit is its own resources.limits.memory.",
        method: "Starts containers with 64Mi and 96Mi memory limits and reads the limit of the cgroup each sits in from inside; skipped when the runtime does not declare cgroup-visible; fails when it does and a container sees no cgroup."),
    case!("CGR-002", cpu_limit_per_container,
        must: "Each container MUST run in a cgroup whose CPU quota is its own resources.limits.cpu.",
        method: "Starts containers with 250m and 500m CPU limits and reads the CFS quota and period of each container's cgroup from inside (quota/period must equal the limit); skipped when the runtime does not declare cgroup-visible; fails when it does and a container sees no cgroup."),
    case!("CGR-003", pids_limit_per_container,
        must: "Each container MUST run in a cgroup with the pids limit the runtime declares for containers.",
        method: "Reads pids.max of each container's cgroup from inside and compares it with the per-container pids limit the adapter declares; skipped when the runtime declares no per-container limit or does not declare cgroup-visible."),
    case!("CGR-004", memory_limit_enforced,
        must: "A container that uses more memory than its limit MUST be OOM-killed, while a container of the same pod with a larger limit keeps running.",
        method: "In a pod with containers small (64Mi) and large (256Mi), the probe allocates and touches 128 MiB in each: in small it must be killed by SIGKILL (exit status 137), in large it must succeed, and large must still be running without restarts."),
    case!("CGR-005", pod_pids_limit_enforced,
        must: "Processes in a pod MUST NOT outnumber the pod's pids limit.",
        method: "In a pod with spec.resources.limits.pids 64, container holder keeps 40 sleep processes (the test waits until it sees them) while the probe in container app forks until fork fails (at most 200 children); it must fail (EAGAIN) before 24 children, so a limit applied to each container alone fails. Skipped when the runtime does not honour a pod-level pids limit."),
    case!("CGR-006", container_pids_limit_enforced,
        must: "Processes in a container MUST NOT outnumber the container's pids limit.",
        method: "The probe forks until fork fails, up to 64 more children than the per-container pids limit the adapter declares; it must fail, with EAGAIN, before reaching the limit. Skipped when the runtime declares no per-container pids limit."),
    case!("CGR-007", cpu_limit_enforced,
        must: "A container MUST NOT use more CPU time than its CPU limit allows over the wall time it runs.",
        method: "In a container limited to 250m, the probe spins for 2 s of wall time and reports its CPU time, which must stay within 0.25 × wall time × 1.25 + 100 ms (an upper bound only, so a busy machine cannot fail it). Runs alone.",
        exclusive: true),
];

fn need_visible_cgroups(ctx: &Ctx) -> Check {
    if !ctx.caps.cgroup_visible {
        return Err(skip("containers of this runtime cannot see their cgroup"));
    }
    Ok(())
}

/// `probe cgroup` in a container. Callers run only when the runtime
/// declares cgroup-visible, so a container that sees no cgroupfs fails.
fn cgroup(pod: &PodGuard, container: &str) -> Result<Value, Outcome> {
    let v = pod.probe(container, &["cgroup"])?;
    if v.get("visible").and_then(Value::as_bool) != Some(true) {
        return Err(fail(format!(
            "container {container} of pod {} cannot read its cgroup limits under /sys/fs/cgroup although the runtime declares cgroup-visible ({v})",
            pod.name
        )));
    }
    Ok(v)
}

fn source(v: &Value, key: &str) -> String {
    v.get("sources")
        .and_then(|s| s.get(key))
        .and_then(Value::as_str)
        .map(|s| format!(" (read from {s})"))
        .unwrap_or_default()
}

fn memory_limit_per_container(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    need_visible_cgroups(ctx)?;
    let limits = [
        ("app", "64Mi", 64u64 << 20),
        ("sidecar", "96Mi", 96u64 << 20),
    ];
    let manifest = limits
        .iter()
        .fold(PodManifest::new(ctx, "cgr-mem"), |m, (c, q, _)| {
            m.container(ContainerSpec::new(ctx, c).limit("memory", q))
        });
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    for (c, quantity, bytes) in limits {
        let v = cgroup(&pod, c)?;
        let got = v.get("memory_limit_bytes").and_then(Value::as_u64);
        if got != Some(bytes) {
            return Err(fail(format!(
                "container {c} of pod {} has memory limit {} in its cgroup{}, expected {bytes} ({quantity}): \
                 each container needs its own cgroup with its own limit",
                pod.name,
                got.map_or("none".into(), |g| g.to_string()),
                source(&v, "memory_limit_bytes")
            )));
        }
    }
    Ok(())
}

fn cpu_limit_per_container(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    need_visible_cgroups(ctx)?;
    let limits = [("app", "250m", 250u64), ("sidecar", "500m", 500u64)];
    let manifest = limits
        .iter()
        .fold(PodManifest::new(ctx, "cgr-cpu"), |m, (c, q, _)| {
            m.container(ContainerSpec::new(ctx, c).limit("cpu", q))
        });
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    for (c, quantity, millis) in limits {
        let v = cgroup(&pod, c)?;
        let quota = v.get("cpu_quota_us").and_then(Value::as_u64);
        let period = v.get("cpu_period_us").and_then(Value::as_u64);
        let matches = match (quota, period) {
            (Some(q), Some(p)) if p > 0 => q * 1000 == millis * p,
            _ => false,
        };
        if !matches {
            return Err(fail(format!(
                "container {c} of pod {} has CPU quota {} per period {} µs in its cgroup{}, expected {quantity} \
                 (quota/period = {})",
                pod.name,
                quota.map_or("none".into(), |q| format!("{q} µs")),
                period.map_or("?".into(), |p| p.to_string()),
                source(&v, "cpu_quota_us"),
                millis as f64 / 1000.0
            )));
        }
    }
    Ok(())
}

fn pids_limit_per_container(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    need_visible_cgroups(ctx)?;
    let Some(limit) = ctx.caps.pids.per_container else {
        return Err(skip("the runtime declares no per-container pids limit"));
    };
    let pod = PodGuard::start(
        rt,
        ctx,
        &PodManifest::sleepers(ctx, "cgr-pids", &["app", "sidecar"]),
    )?;
    for c in ["app", "sidecar"] {
        let v = cgroup(&pod, c)?;
        let got = v.get("pids_max").and_then(Value::as_u64);
        if got != Some(limit) {
            return Err(fail(format!(
                "container {c} of pod {} has pids limit {} in its cgroup{}, expected {limit}",
                pod.name,
                got.map_or("max (none)".into(), |g| g.to_string()),
                source(&v, "pids_max")
            )));
        }
    }
    Ok(())
}

fn memory_limit_enforced(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let manifest = PodManifest::new(ctx, "cgr-oom")
        .container(ContainerSpec::new(ctx, "small").limit("memory", "64Mi"))
        .container(ContainerSpec::new(ctx, "large").limit("memory", "256Mi"));
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    let restarts_before = restarts(&pod.get()?, "large");

    let small = pod.exec("small", &["probe", "alloc", "128"])?;
    if small.exit_code != 137 {
        let what = if small.exit_code == 0 {
            "succeeded".to_string()
        } else {
            format!("ended with exit status {}", small.exit_code)
        };
        return Err(fail(format!(
            "allocating 128 MiB in container small of pod {} (limit 64Mi) {what} instead of being OOM-killed (exit status 137); \
             the memory limit is not enforced on the container (stdout {:?}; stderr {:?})",
            pod.name,
            small.stdout.trim(),
            small.stderr.trim()
        )));
    }

    let v = pod.probe("large", &["alloc", "128"])?;
    if !ok(&v) {
        return Err(fail(format!(
            "allocating 128 MiB in container large of pod {} (limit 256Mi) failed: {v}",
            pod.name
        )));
    }
    let status = pod.get()?;
    let large = runtime::container_statuses(&status)
        .iter()
        .find(|c| c.name == "large")
        .map(runtime::container_state)
        .unwrap_or_else(|| "missing".into());
    if large != "running" || restarts(&status, "large") != restarts_before {
        return Err(fail(format!(
            "container large of pod {} did not keep running after container small was OOM-killed: {}",
            pod.name,
            runtime::describe(&status)
        )));
    }
    Ok(())
}

fn restarts(pod: &k8s_openapi::api::core::v1::Pod, container: &str) -> i32 {
    runtime::container_statuses(pod)
        .iter()
        .find(|c| c.name == container)
        .map(|c| c.restart_count)
        .unwrap_or(0)
}

/// Forks until fork fails, at most `max` children; the number forked.
fn fork_until_fail(pod: &PodGuard, container: &str, max: u64) -> Result<(i64, Value), Outcome> {
    let max = max.to_string();
    let v = pod.probe(container, &["fork-until-fail", "--max", &max])?;
    let forked = num_field(&v, "forked", "fork-until-fail")?;
    Ok((forked, v))
}

fn pod_pids_limit_enforced(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    if !ctx.caps.pids.pod_field {
        return Err(skip(
            "the runtime does not honour a pod-level pids limit (spec.resources.limits.pids)",
        ));
    }
    // One container holds HELD processes, so a limit that is really per
    // container (64 each) lets app fork far more than the pod has left.
    let hold = format!("i=0; while [ $i -lt {HELD} ]; do sleep 3600 & i=$((i+1)); done; wait");
    let manifest = PodManifest::new(ctx, "cgr-podpids")
        .container(ContainerSpec::new(ctx, "holder").command(&["sh", "-c", &hold]))
        .container(ContainerSpec::new(ctx, "app"))
        .pod_limit("pids", "64");
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    wait_holding(&pod, "holder", HELD, ctx.timeouts.start)?;
    let (forked, v) = fork_until_fail(&pod, "app", 200)?;
    let room = 64 - HELD;
    if ok(&v) || forked >= room {
        return Err(fail(format!(
            "container app of pod {} forked {forked} processes while container holder held {HELD}, \
             with a pod pids limit of 64 (at most {room} left){}: the limit is not enforced on the pod as a whole",
            pod.name,
            if ok(&v) { " and fork never failed" } else { "" }
        )));
    }
    if error_name(&v) != "EAGAIN" {
        return Err(fail(format!(
            "fork in pod {} failed after {forked} children with {} instead of EAGAIN ({v})",
            pod.name,
            error_name(&v)
        )));
    }
    Ok(())
}

/// How many processes CGR-005's holder container keeps alive.
const HELD: i64 = 40;

/// Polls until `container` runs at least `count` processes besides its
/// PID 1 and the exec'd shell that counts them (builtins only, so the count
/// adds no process of its own).
fn wait_holding(
    pod: &PodGuard,
    container: &str,
    count: i64,
    within: std::time::Duration,
) -> Result<(), Outcome> {
    let script = "set -- /proc/[0-9]*; echo $(($# - 2))";
    let deadline = std::time::Instant::now() + within;
    loop {
        let out = pod.exec(container, &["sh", "-c", script])?;
        let seen: i64 = out.stdout.trim().parse().unwrap_or(-1);
        if seen >= count {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(fail(format!(
                "container {container} of pod {} runs {seen} processes besides its PID 1, not the {count} it starts (stdout {:?}, stderr {:?})",
                pod.name, out.stdout, out.stderr
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn container_pids_limit_enforced(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let Some(limit) = ctx.caps.pids.per_container else {
        return Err(skip("the runtime declares no per-container pids limit"));
    };
    let pod = PodGuard::start(
        rt,
        ctx,
        &PodManifest::sleepers(ctx, "cgr-ctrpids", &["app"]),
    )?;
    let (forked, v) = fork_until_fail(&pod, "app", limit + 64)?;
    if ok(&v) || forked as u64 >= limit {
        return Err(fail(format!(
            "container app of pod {} forked {forked} processes with a container pids limit of {limit}{}: the limit is not enforced",
            pod.name,
            if ok(&v) { " and fork never failed" } else { "" }
        )));
    }
    if error_name(&v) != "EAGAIN" {
        return Err(fail(format!(
            "fork in container app of pod {} failed after {forked} children with {} instead of EAGAIN ({v})",
            pod.name,
            error_name(&v)
        )));
    }
    Ok(())
}

/// Quota over wall time may be exceeded by this factor plus [`CPU_SLACK_MS`]:
/// CFS hands out quota per period, so a run can end on a period's fresh quota.
const CPU_FACTOR: f64 = 1.25;
const CPU_SLACK_MS: f64 = 100.0;

/// The most CPU a container limited to `millicores` may use in `wall_ms`.
pub fn cpu_bound_ms(millicores: u64, wall_ms: u64) -> f64 {
    millicores as f64 / 1000.0 * wall_ms as f64 * CPU_FACTOR + CPU_SLACK_MS
}

fn cpu_limit_enforced(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let manifest = PodManifest::new(ctx, "cgr-cpuburn")
        .container(ContainerSpec::new(ctx, "app").limit("cpu", "250m"));
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    let v = pod.probe("app", &["cpu-burn", "--ms", "2000"])?;
    let wall = num_field(&v, "wall_ms", "cpu-burn")?.max(0) as u64;
    let cpu = num_field(&v, "cpu_ms", "cpu-burn")?.max(0) as u64;
    let bound = cpu_bound_ms(250, wall);
    if cpu as f64 > bound {
        return Err(fail(format!(
            "container app of pod {} (CPU limit 250m) used {cpu} ms of CPU in {wall} ms of wall time, \
             more than the {bound:.0} ms its quota allows: the CPU limit is not enforced",
            pod.name
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_bound_is_quota_times_wall_plus_tolerance() {
        assert_eq!(cpu_bound_ms(250, 2000), 725.0);
        assert_eq!(cpu_bound_ms(1000, 0), 100.0);
        // An unlimited busy loop (one full CPU) is well above the bound.
        assert!(2000.0 > cpu_bound_ms(250, 2000) * 2.0);
    }
}
