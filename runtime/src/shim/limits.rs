//! The cgroup limits of a pod and of its containers, from their
//! `resources` (and podlab's pod-level `pids`), as the shim creates the
//! cgroups; plus the mutants that drop one limit on purpose. Pure functions
//! of the spec, so they are unit-tested here without a pod.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::cgroups::{Devices, Limits};
use crate::mutants::Mutant;
use crate::quantity;

use super::Shim;

/// The cgroup limits of one container from its `resources`, with the
/// configured default pids limit.
pub fn container_limits(c: &Container, default_pids: i64) -> Result<Limits, quantity::Error> {
    let res = c.resources.as_ref();
    let get = |which: fn(
        &k8s_openapi::api::core::v1::ResourceRequirements,
    ) -> Option<
        &BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >,
               key: &str| {
        res.and_then(which)
            .and_then(|m| m.get(key))
            .map(|q| q.0.clone())
    };
    let cpu_limit = get(|r| r.limits.as_ref(), "cpu")
        .map(|q| quantity::cpu_millis(&q))
        .transpose()?;
    let cpu_request = get(|r| r.requests.as_ref(), "cpu")
        .map(|q| quantity::cpu_millis(&q))
        .transpose()?;
    let memory = get(|r| r.limits.as_ref(), "memory")
        .map(|q| quantity::memory_bytes(&q))
        .transpose()?;
    Ok(Limits::from_millis(
        cpu_limit,
        cpu_request,
        memory,
        Some(default_pids),
    ))
}

/// Pod-level limits from `spec.resources.limits` (cpu, memory, and podlab's `pids`).
pub fn pod_limits(pod: &Pod) -> Result<Limits, quantity::Error> {
    let limits = pod
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.limits.as_ref());
    let get = |k: &str| limits.and_then(|m| m.get(k)).map(|q| q.0.clone());
    let cpu = get("cpu").map(|q| quantity::cpu_millis(&q)).transpose()?;
    let memory = get("memory")
        .map(|q| quantity::memory_bytes(&q))
        .transpose()?;
    let pids = get("pids").map(|q| quantity::count(&q)).transpose()?;
    if cpu.is_none() && memory.is_none() && pids.is_none() {
        return Ok(Limits::default());
    }
    Ok(Limits::from_millis(cpu, None, memory, pids))
}

/// The pod's memory limit as the kubelet computes it for a memory-backed
/// emptyDir: the pod-level limit, else the sum of the app containers'
/// limits when every one has a limit; None when the pod is unbounded.
pub fn pod_memory_limit(pod: &Pod) -> Result<Option<i64>, quantity::Error> {
    if let Some(m) = pod_limits(pod)?.memory_bytes {
        return Ok(Some(m));
    }
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(None);
    };
    let mut sum: i64 = 0;
    for c in &spec.containers {
        match container_limits(c, 0)?.memory_bytes {
            Some(m) => sum = sum.saturating_add(m),
            None => return Ok(None),
        }
    }
    Ok((!spec.containers.is_empty()).then_some(sum))
}

/// The size of a `medium: Memory` emptyDir's tmpfs: its sizeLimit, capped by
/// the pod's memory limit (its pages are charged to the pod); None leaves
/// the kernel's default (half of RAM).
pub fn memory_volume_size(
    pod: &Pod,
    size_limit: Option<&str>,
) -> Result<Option<i64>, quantity::Error> {
    let size = size_limit.map(quantity::memory_bytes).transpose()?;
    let pod_limit = pod_memory_limit(pod)?;
    Ok(match (size, pod_limit) {
        (Some(s), Some(p)) => Some(s.min(p)),
        (s, p) => s.or(p),
    })
}

impl Shim {
    /// The `no-*-limit` mutants: one limit left out of the container's cgroup.
    pub(super) fn mutant_limits(&self, limits: &mut Limits) {
        match self.mutant {
            Some(Mutant::NoMemoryLimit) => limits.memory_bytes = None,
            Some(Mutant::NoPidsLimit) => limits.pids_max = None,
            Some(Mutant::NoCpuLimit) => limits.cpu_quota_us = None,
            _ => {}
        }
    }

    /// A leaf's device rules: everything for a privileged container (and
    /// for every leaf under the `no-device-cgroup` mutant), else the
    /// Kubernetes runtimes' allowlist.
    pub(super) fn device_policy(&self, privileged: bool) -> Devices {
        if privileged || self.mutant == Some(Mutant::NoDeviceCgroup) {
            Devices::All
        } else {
            Devices::Allowlist
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn container_resources_become_cgroup_limits() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a", "resources": {
                "limits": {"memory": "64Mi", "cpu": "250m"},
                "requests": {"cpu": "100m"}
            }}]}
        }));
        let c = &p.spec.as_ref().unwrap().containers[0];
        let l = container_limits(c, 1024).unwrap();
        assert_eq!(l.memory_bytes, Some(64 << 20));
        assert_eq!(l.cpu_quota_us, Some(25_000));
        assert_eq!(l.cpu_period_us, Some(100_000));
        assert_eq!(l.cpu_shares, Some(102));
        assert_eq!(l.pids_max, Some(1024));
    }

    #[test]
    fn no_resources_means_only_the_default_pids_limit() {
        let p = pod(
            serde_json::json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}}),
        );
        let l = container_limits(&p.spec.as_ref().unwrap().containers[0], 77).unwrap();
        assert_eq!(l.memory_bytes, None);
        assert_eq!(l.cpu_quota_us, None);
        assert_eq!(l.pids_max, Some(77));
        assert_eq!(pod_limits(&p).unwrap(), Limits::default());
    }

    #[test]
    fn a_pod_pids_limit_is_a_count_not_rounded_like_bytes() {
        let with_pids = |q: &str| {
            pod(serde_json::json!({
                "metadata": {"name": "p"},
                "spec": {"resources": {"limits": {"pids": q}}, "containers": [{"name": "a"}]}
            }))
        };
        assert_eq!(pod_limits(&with_pids("1k")).unwrap().pids_max, Some(1000));
        assert_eq!(pod_limits(&with_pids("2e2")).unwrap().pids_max, Some(200));
        for fraction in ["1.5", "500m", "64.1"] {
            let err = pod_limits(&with_pids(fraction)).unwrap_err();
            assert_eq!(err.reason(), "is not a whole number", "{fraction}");
        }
        assert_eq!(
            pod_limits(&with_pids("-64")).unwrap_err().reason(),
            "is negative"
        );
    }

    #[test]
    fn a_memory_volume_is_sized_by_its_limit_or_the_pods() {
        let c = |m: Option<&str>| match m {
            Some(m) => serde_json::json!({"name": "a", "resources": {"limits": {"memory": m}}}),
            None => serde_json::json!({"name": "a"}),
        };
        let two =
            pod(serde_json::json!({"spec": {"containers": [c(Some("64Mi")), c(Some("32Mi"))]}}));
        assert_eq!(memory_volume_size(&two, None).unwrap(), Some(96 << 20));
        assert_eq!(
            memory_volume_size(&two, Some("10Mi")).unwrap(),
            Some(10 << 20)
        );
        assert_eq!(
            memory_volume_size(&two, Some("1Gi")).unwrap(),
            Some(96 << 20)
        );
        // One container without a limit: the pod is unbounded.
        let open = pod(serde_json::json!({"spec": {"containers": [c(Some("64Mi")), c(None)]}}));
        assert_eq!(memory_volume_size(&open, None).unwrap(), None);
        assert_eq!(
            memory_volume_size(&open, Some("8Mi")).unwrap(),
            Some(8 << 20)
        );
        let pod_level = pod(serde_json::json!({"spec": {
            "resources": {"limits": {"memory": "16Mi"}}, "containers": [c(None)]}}));
        assert_eq!(
            memory_volume_size(&pod_level, None).unwrap(),
            Some(16 << 20)
        );
    }

    #[test]
    fn pod_level_limits_include_pids() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"resources": {"limits": {"pids": "64", "memory": "1Gi"}}, "containers": [{"name": "a"}]}
        }));
        let l = pod_limits(&p).unwrap();
        assert_eq!(l.pids_max, Some(64));
        assert_eq!(l.memory_bytes, Some(1 << 30));
    }
}
