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
