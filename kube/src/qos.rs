//! A pod's quality-of-service class, as the API server sets
//! `status.qosClass` and the kubelet uses it (OOM score, cgroup tier).
//!
//! Only cpu and memory count, and zero quantities count as absent. A pod is
//! BestEffort when nothing asks for either, Guaranteed when every container
//! limits both and the summed requests equal the summed limits, Burstable
//! otherwise. Pod-level `spec.resources`, when it names cpu or memory,
//! decides alone. A request left out defaults to its limit, as the API
//! server defaults it before classifying.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::quantity;

/// The resources the class is computed from.
const COMPUTE: [&str; 2] = ["cpu", "memory"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    /// The name `status.qosClass` carries.
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }
}

impl std::fmt::Display for QosClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{field}")]
pub struct Error {
    /// The field holding the bad quantity (`spec.containers[0].resources.limits.cpu`).
    pub field: String,
    pub source: quantity::Error,
}

/// Summed non-zero amounts per resource, in nano-units.
type Amounts = BTreeMap<&'static str, i128>;

/// The class of a pod with this spec.
pub fn qos_class(spec: &PodSpec) -> Result<QosClass, Error> {
    if let Some(res) = &spec.resources {
        let (requests, limits, _) = amounts(res, "spec.resources")?;
        if !requests.is_empty() || !limits.is_empty() {
            return Ok(classify(&requests, &limits, has_all(&limits)));
        }
    }
    let mut requests = Amounts::new();
    let mut limits = Amounts::new();
    let mut all_limited = true;
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| (format!("spec.initContainers[{i}]"), c))
        .chain(
            spec.containers
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("spec.containers[{i}]"), c)),
        );
    for (path, c) in containers {
        let Some(res) = &c.resources else {
            all_limited = false;
            continue;
        };
        let (r, l, limited) = amounts(res, &format!("{path}.resources"))?;
        all_limited &= limited;
        for (name, v) in r {
            *requests.entry(name).or_default() += v;
        }
        for (name, v) in l {
            *limits.entry(name).or_default() += v;
        }
    }
    Ok(classify(&requests, &limits, all_limited))
}

fn classify(requests: &Amounts, limits: &Amounts, all_limited: bool) -> QosClass {
    if requests.is_empty() && limits.is_empty() {
        QosClass::BestEffort
    } else if all_limited && requests == limits {
        QosClass::Guaranteed
    } else {
        QosClass::Burstable
    }
}

fn has_all(limits: &Amounts) -> bool {
    COMPUTE.iter().all(|r| limits.contains_key(r))
}

/// One `resources` block: its requests (defaulted from the limits) and
/// limits, and whether it limits both cpu and memory.
fn amounts(res: &ResourceRequirements, path: &str) -> Result<(Amounts, Amounts, bool), Error> {
    let empty = BTreeMap::new();
    let read = |which: &str, map: &BTreeMap<String, Quantity>| -> Result<Amounts, Error> {
        let mut out = Amounts::new();
        for name in COMPUTE {
            let Some(q) = map.get(name) else { continue };
            let parsed = quantity::parse(&q.0).map_err(|source| Error {
                field: format!("{path}.{which}.{name}"),
                source,
            })?;
            if !parsed.is_zero() {
                out.insert(name, parsed.nano_value());
            }
        }
        Ok(out)
    };
    let limits = read("limits", res.limits.as_ref().unwrap_or(&empty))?;
    let mut requests = read("requests", res.requests.as_ref().unwrap_or(&empty))?;
    let asked = res.requests.as_ref().unwrap_or(&empty);
    for (name, v) in &limits {
        if !asked.contains_key(*name) {
            requests.insert(name, *v);
        }
    }
    let limited = has_all(&limits);
    Ok((requests, limits, limited))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).unwrap()
    }

    fn ctr(resources: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"name": "c", "image": "i", "resources": resources})
    }

    #[rstest]
    #[case::nothing(serde_json::json!({}), QosClass::BestEffort)]
    #[case::zero_is_nothing(serde_json::json!({"requests": {"cpu": "0"}}), QosClass::BestEffort)]
    #[case::other_resources_do_not_count(
        serde_json::json!({"limits": {"ephemeral-storage": "1Gi"}}), QosClass::BestEffort)]
    #[case::limits_only(serde_json::json!({"limits": {"cpu": "1", "memory": "1Gi"}}), QosClass::Guaranteed)]
    #[case::equal(serde_json::json!({"limits": {"cpu": "500m", "memory": "1Gi"},
        "requests": {"cpu": "0.5", "memory": "1024Mi"}}), QosClass::Guaranteed)]
    #[case::request_below_limit(serde_json::json!({"limits": {"cpu": "1", "memory": "1Gi"},
        "requests": {"cpu": "500m"}}), QosClass::Burstable)]
    #[case::memory_only(serde_json::json!({"limits": {"memory": "1Gi"}}), QosClass::Burstable)]
    #[case::request_only(serde_json::json!({"requests": {"memory": "1Gi"}}), QosClass::Burstable)]
    fn one_container(#[case] resources: serde_json::Value, #[case] class: QosClass) {
        let s = spec(serde_json::json!({"containers": [ctr(resources)]}));
        assert_eq!(qos_class(&s).unwrap(), class);
    }

    #[test]
    fn every_container_counts_init_ones_too() {
        let full = serde_json::json!({"limits": {"cpu": "1", "memory": "1Gi"}});
        let s = spec(serde_json::json!({"containers": [ctr(full.clone()), ctr(full.clone())]}));
        assert_eq!(qos_class(&s).unwrap(), QosClass::Guaranteed);
        let s = spec(serde_json::json!({"containers": [ctr(full.clone()),
            {"name": "bare", "image": "i"}]}));
        assert_eq!(qos_class(&s).unwrap(), QosClass::Burstable);
        let s = spec(serde_json::json!({"containers": [ctr(full.clone())],
            "initContainers": [ctr(serde_json::json!({"requests": {"cpu": "1"}}))]}));
        assert_eq!(qos_class(&s).unwrap(), QosClass::Burstable);
    }

    #[test]
    fn pod_level_resources_decide_alone() {
        let s = spec(serde_json::json!({
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
            "containers": [{"name": "c", "image": "i"}]}));
        assert_eq!(qos_class(&s).unwrap(), QosClass::Guaranteed);
        // podlab's pod-level pids limit is not a QoS resource.
        let s = spec(serde_json::json!({
            "resources": {"limits": {"pids": "64"}},
            "containers": [{"name": "c", "image": "i"}]}));
        assert_eq!(qos_class(&s).unwrap(), QosClass::BestEffort);
    }

    #[test]
    fn a_bad_quantity_names_its_field() {
        let s = spec(
            serde_json::json!({"containers": [ctr(serde_json::json!({"limits": {"memory": "lots"}}))]}),
        );
        let err = crate::error::chain(&qos_class(&s).unwrap_err());
        assert!(
            err.starts_with("spec.containers[0].resources.limits.memory: "),
            "{err}"
        );
    }
}
