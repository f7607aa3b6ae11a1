//! The downward API: facts about the pod (`fieldRef`) and a container's
//! resources (`resourceFieldRef`) given to its containers as environment
//! variables and as files of a `downwardAPI` volume, valued as the kubelet
//! values them. Which paths are allowed where is shared with validation.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, DownwardAPIVolumeSource, EnvVar, ObjectFieldSelector, Pod, ResourceFieldSelector,
};

use crate::node::Resources;
use crate::quantity;

/// The pod fields an environment variable may take (besides one label or
/// annotation, `metadata.labels['KEY']`).
pub const ENV_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// The pod fields a downwardAPI volume file may hold (besides one label or
/// annotation).
pub const VOLUME_FIELDS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
];

/// The resources a `resourceFieldRef` may name.
pub const RESOURCES: &[&str] = &[
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
];

/// The divisors a CPU resource may be divided by.
pub const CPU_DIVISORS: &[&str] = &["1m", "1"];
/// The divisors a memory or storage resource may be divided by.
pub const BYTE_DIVISORS: &[&str] = &[
    "1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei",
];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    #[error("unsupported fieldPath {0:?}")]
    Field(String),
    #[error("unsupported resource {0:?}")]
    Resource(String),
    #[error("resourceFieldRef names container {0:?}, which the pod does not have")]
    NoContainer(String),
    #[error("{what}: {reason}")]
    Quantity { what: String, reason: String },
    #[error("{0} is not supported: podlab has no ConfigMaps or Secrets")]
    Source(String),
}

/// `metadata.labels['KEY']` → ("metadata.labels", "KEY").
pub fn subscript(path: &str) -> Option<(&str, &str)> {
    let (base, rest) = path.split_once("['")?;
    let key = rest.strip_suffix("']")?;
    matches!(base, "metadata.labels" | "metadata.annotations").then_some((base, key))
}

/// Whether `path` may be used in an environment variable (`env`) or a
/// volume file (not `env`).
pub fn field_allowed(path: &str, env: bool) -> bool {
    subscript(path).is_some_and(|(_, key)| !key.is_empty())
        || if env { ENV_FIELDS } else { VOLUME_FIELDS }.contains(&path)
}

/// What the runtime knows of the pod besides its manifest.
#[derive(Clone, Debug, Default)]
pub struct PodFacts {
    pub pod_ip: Option<String>,
    pub host_ip: Option<String>,
    pub node_name: String,
    /// What the node can give pods: a limit that is not set defaults to it.
    pub allocatable: Resources,
}

/// Labels or annotations as the kubelet writes them in a file: one
/// `key="value"` line each, sorted, the value quoted.
fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The value of a pod field.
pub fn field_value(
    pod: &Pod,
    facts: &PodFacts,
    sel: &ObjectFieldSelector,
) -> Result<String, Error> {
    let meta = &pod.metadata;
    let path = sel.field_path.as_str();
    if let Some((base, key)) = subscript(path) {
        let map = if base == "metadata.labels" {
            meta.labels.as_ref()
        } else {
            meta.annotations.as_ref()
        };
        return Ok(map.and_then(|m| m.get(key)).cloned().unwrap_or_default());
    }
    let spec = pod.spec.as_ref();
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_else(|| "default".into()),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "spec.nodeName" => spec
            .and_then(|s| s.node_name.clone())
            .unwrap_or_else(|| facts.node_name.clone()),
        // What the ServiceAccount admission gives a pod that names none.
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into()),
        "status.hostIP" | "status.hostIPs" => facts.host_ip.clone().unwrap_or_default(),
        "status.podIP" | "status.podIPs" => facts.pod_ip.clone().unwrap_or_default(),
        other => return Err(Error::Field(other.into())),
    })
}

/// The value of one of `container`'s resources divided by the divisor and
/// rounded up; a limit the container does not set is the node's allocatable.
pub fn resource_value(
    container: &Container,
    sel: &ResourceFieldSelector,
    facts: &PodFacts,
) -> Result<String, Error> {
    let (which, resource) = sel
        .resource
        .split_once('.')
        .filter(|_| RESOURCES.contains(&sel.resource.as_str()))
        .ok_or_else(|| Error::Resource(sel.resource.clone()))?;
    let set = container
        .resources
        .as_ref()
        .and_then(|r| {
            if which == "limits" {
                &r.limits
            } else {
                &r.requests
            }
            .as_ref()
        })
        .and_then(|m| m.get(resource))
        .map(|q| q.0.clone());
    let divisor = sel
        .divisor
        .as_ref()
        .map(|d| d.0.as_str())
        .filter(|d| !d.is_empty());
    let cpu = resource == "cpu";
    let (value, divisor) = if cpu {
        let value = match set {
            Some(q) => quantity::cpu_millis(&q).map_err(bad(&sel.resource))?,
            None if which == "limits" => facts.allocatable.cpu_millis,
            None => 0,
        };
        let d = divisor
            .map(quantity::cpu_millis)
            .transpose()
            .map_err(bad("divisor"))?
            .unwrap_or(1000);
        (value, d)
    } else {
        let value = match set {
            Some(q) => quantity::memory_bytes(&q).map_err(bad(&sel.resource))?,
            None if which == "limits" && resource == "memory" => facts.allocatable.memory_bytes,
            None if which == "limits" => facts.allocatable.ephemeral_bytes,
            None => 0,
        };
        let d = divisor
            .map(quantity::memory_bytes)
            .transpose()
            .map_err(bad("divisor"))?
            .unwrap_or(1);
        (value, d)
    };
    let divisor = divisor.max(1);
    Ok(((value + divisor - 1).div_euclid(divisor)).to_string())
}

/// A quantity that would not parse (validation refuses them first).
fn bad(what: &str) -> impl FnOnce(quantity::Error) -> Error + '_ {
    move |e| Error::Quantity {
        what: what.to_string(),
        reason: e.reason(),
    }
}

/// The container the selector names, `own` when it names none.
fn named<'a>(pod: &'a Pod, own: &'a Container, name: Option<&str>) -> Result<&'a Container, Error> {
    match name.filter(|n| !n.is_empty()) {
        None => Ok(own),
        Some(n) => pod
            .spec
            .iter()
            .flat_map(|s| {
                s.init_containers
                    .iter()
                    .flatten()
                    .chain(s.containers.iter())
            })
            .find(|c| c.name == n)
            .ok_or_else(|| Error::NoContainer(n.into())),
    }
}

/// The container's environment with every `valueFrom` replaced by its
/// value, so `$(VAR)` references to it expand as to any other variable.
pub fn resolve_env(
    pod: &Pod,
    container: &Container,
    facts: &PodFacts,
) -> Result<Vec<EnvVar>, Error> {
    let mut out = Vec::new();
    for var in container.env.iter().flatten() {
        let Some(from) = &var.value_from else {
            out.push(var.clone());
            continue;
        };
        let value = if let Some(f) = &from.field_ref {
            field_value(pod, facts, f)?
        } else if let Some(r) = &from.resource_field_ref {
            resource_value(
                named(pod, container, r.container_name.as_deref())?,
                r,
                facts,
            )?
        } else if from.config_map_key_ref.is_some() {
            return Err(Error::Source(format!("env {}: configMapKeyRef", var.name)));
        } else {
            return Err(Error::Source(format!("env {}: secretKeyRef", var.name)));
        };
        out.push(EnvVar {
            name: var.name.clone(),
            value: Some(value),
            value_from: None,
        });
    }
    Ok(out)
}

/// One file of a downwardAPI volume.
#[derive(Debug, PartialEq)]
pub struct File {
    pub path: String,
    pub content: String,
    pub mode: u32,
}

/// The files of a downwardAPI volume.
pub fn volume_files(
    pod: &Pod,
    source: &DownwardAPIVolumeSource,
    facts: &PodFacts,
) -> Result<Vec<File>, Error> {
    let default_mode = source.default_mode.unwrap_or(0o644) as u32;
    let mut out = Vec::new();
    for item in source.items.iter().flatten() {
        let content = if let Some(f) = &item.field_ref {
            field_value(pod, facts, f)?
        } else if let Some(r) = &item.resource_field_ref {
            let own = pod
                .spec
                .as_ref()
                .and_then(|s| s.containers.first())
                .ok_or_else(|| Error::NoContainer(String::new()))?;
            resource_value(named(pod, own, r.container_name.as_deref())?, r, facts)?
        } else {
            String::new()
        };
        out.push(File {
            path: item.path.clone(),
            content,
            mode: item.mode.map_or(default_mode, |m| m as u32),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "team", "uid": "u-1",
                         "labels": {"b": "2", "a": "one \"1\""},
                         "annotations": {"note": "x"}},
            "spec": {"nodeName": "node-a", "containers": [
                {"name": "app", "image": "i", "resources": {
                    "limits": {"cpu": "1250m", "memory": "64Mi"},
                    "requests": {"cpu": "250m", "memory": "32Mi"}}},
                {"name": "bare", "image": "i"}]}
        }))
        .unwrap()
    }

    fn facts() -> PodFacts {
        PodFacts {
            pod_ip: Some("10.0.0.5".into()),
            host_ip: Some("192.168.1.2".into()),
            node_name: "node-b".into(),
            allocatable: Resources {
                cpu_millis: 2000,
                memory_bytes: 8 << 30,
                ephemeral_bytes: 100 << 30,
            },
        }
    }

    fn field(path: &str) -> String {
        let sel = ObjectFieldSelector {
            field_path: path.into(),
            api_version: None,
        };
        field_value(&pod(), &facts(), &sel).unwrap()
    }

    fn resource(container: usize, res: &str, divisor: Option<&str>) -> String {
        let p = pod();
        let sel = ResourceFieldSelector {
            resource: res.into(),
            divisor: divisor
                .map(|d| k8s_openapi::apimachinery::pkg::api::resource::Quantity(d.into())),
            container_name: None,
        };
        resource_value(
            &p.spec.as_ref().unwrap().containers[container],
            &sel,
            &facts(),
        )
        .unwrap()
    }

    #[test]
    fn pod_fields_have_their_values() {
        assert_eq!(field("metadata.name"), "web");
        assert_eq!(field("metadata.namespace"), "team");
        assert_eq!(field("metadata.uid"), "u-1");
        assert_eq!(field("spec.nodeName"), "node-a");
        assert_eq!(field("status.podIP"), "10.0.0.5");
        assert_eq!(field("status.hostIP"), "192.168.1.2");
        assert_eq!(field("metadata.labels['b']"), "2");
        assert_eq!(field("metadata.annotations['none']"), "");
        assert_eq!(field("metadata.labels"), "a=\"one \\\"1\\\"\"\nb=\"2\"");
        assert_eq!(field("spec.serviceAccountName"), "default");
    }

    #[test]
    fn resources_are_divided_and_rounded_up() {
        assert_eq!(resource(0, "limits.cpu", None), "2");
        assert_eq!(resource(0, "limits.cpu", Some("1m")), "1250");
        assert_eq!(resource(0, "requests.cpu", Some("1m")), "250");
        assert_eq!(resource(0, "limits.memory", Some("1Mi")), "64");
        assert_eq!(resource(0, "requests.memory", None), "33554432");
        // No limit: the node's allocatable; no request: nothing.
        assert_eq!(resource(1, "limits.cpu", None), "2");
        assert_eq!(resource(1, "limits.memory", Some("1Gi")), "8");
        assert_eq!(resource(1, "requests.memory", None), "0");
    }

    #[test]
    fn paths_are_allowed_where_kubernetes_allows_them() {
        assert!(field_allowed("status.podIP", true));
        assert!(!field_allowed("status.podIP", false));
        assert!(field_allowed("metadata.labels", false));
        assert!(!field_allowed("metadata.labels", true));
        assert!(field_allowed("metadata.labels['x']", true));
        assert!(!field_allowed("metadata.labels['']", true));
        assert!(!field_allowed("spec.foo", true));
    }

    #[test]
    fn env_and_volume_values_follow_the_selectors() {
        let mut p = pod();
        let c = &mut p.spec.as_mut().unwrap().containers[1];
        c.env = Some(
            serde_json::from_value(serde_json::json!([
                {"name": "A", "value": "plain"},
                {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "M", "valueFrom": {"resourceFieldRef": {
                    "containerName": "app", "resource": "limits.memory", "divisor": "1Mi"}}},
            ]))
            .unwrap(),
        );
        let c = p.spec.as_ref().unwrap().containers[1].clone();
        let env = resolve_env(&p, &c, &facts()).unwrap();
        let values: Vec<_> = env.iter().map(|e| e.value.clone().unwrap()).collect();
        assert_eq!(values, ["plain", "web", "64"]);
        let source: DownwardAPIVolumeSource = serde_json::from_value(serde_json::json!({
            "items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                      {"path": "cpu", "mode": 0o600,
                       "resourceFieldRef": {"containerName": "app", "resource": "requests.cpu", "divisor": "1m"}}]
        }))
        .unwrap();
        let files = volume_files(&p, &source, &facts()).unwrap();
        assert_eq!(files[1].content, "250");
        assert_eq!(files[1].mode, 0o600);
        assert_eq!(files[0].mode, 0o644);
    }
}
