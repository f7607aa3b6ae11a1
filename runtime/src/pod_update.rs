//! What an update may change in a stored pod, as the API server allows
//! it: labels and annotations, the containers' and init containers'
//! images, `activeDeadlineSeconds` (set, or shortened), tolerations
//! (additions only), `terminationGracePeriodSeconds` (to 1 from a negative
//! value). The rest of the spec is fixed once the pod exists; what the
//! server owns (uid, creation time, binding, status) is kept from the
//! stored pod whatever the update says.

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use crate::manifest::{self, FieldError, FieldErrorKind};

/// The detail of the error for any other change (Kubernetes' words, so
/// scripts and users that know them recognise it).
pub const FORBIDDEN: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// What an accepted update changes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Containers (init or app) whose image changed, by name.
    pub images: Vec<String>,
    pub deadline: bool,
    pub tolerations: bool,
    pub grace: bool,
    /// Labels, annotations or other metadata a client owns.
    pub metadata: bool,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }

    /// Something the pod's shim acts on changed.
    pub fn reaches_shim(&self) -> bool {
        !self.images.is_empty() || self.deadline || self.metadata || self.grace
    }
}

fn problem(path: &str, kind: FieldErrorKind, value: Option<String>, detail: &str) -> FieldError {
    FieldError {
        path: path.to_string(),
        kind,
        value,
        detail: detail.to_string(),
    }
}

/// The JSON paths under `path` where `a` and `b` differ, for the error's
/// listing of what may not change.
fn differences(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let null = Value::Null;
                differences(
                    &format!("{path}.{k}"),
                    x.get(k).unwrap_or(&null),
                    y.get(k).unwrap_or(&null),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                differences(&format!("{path}[{i}]"), p, q, out);
            }
        }
        _ if a != b => out.push(path.to_string()),
        _ => {}
    }
}

/// The spec with what may change blanked, to compare the rest.
fn fixed_part(pod: &Pod) -> Value {
    let mut spec =
        serde_json::to_value(pod.spec.clone().unwrap_or_default()).unwrap_or(Value::Null);
    if let Some(o) = spec.as_object_mut() {
        for k in [
            "activeDeadlineSeconds",
            "tolerations",
            "nodeName",
            "terminationGracePeriodSeconds",
        ] {
            o.remove(k);
        }
        for list in ["containers", "initContainers"] {
            for c in o
                .get_mut(list)
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if let Some(c) = c.as_object_mut() {
                    c.remove("image");
                }
            }
        }
    }
    spec
}

/// Checks `new` against the stored `old` and returns the pod to store
/// (with what the server owns taken from `old`) and what changed; an
/// `Invalid` error with one problem per refused field otherwise.
pub fn check(old: &Pod, new: Pod) -> Result<(Pod, Changes), manifest::Error> {
    let name = old.metadata.name.clone().unwrap_or_default();
    let mut problems = Vec::new();
    let mut changes = Changes::default();

    let (a, b) = (fixed_part(old), fixed_part(&new));
    if a != b {
        let mut paths = Vec::new();
        differences("spec", &a, &b, &mut paths);
        let detail = format!("{FORBIDDEN}\n  (podlab: changed {})", paths.join(", "));
        problems.push(problem("spec", FieldErrorKind::Forbidden, None, &detail));
    }
    for (field, given, kept) in [
        ("metadata.uid", &new.metadata.uid, &old.metadata.uid),
        ("metadata.name", &new.metadata.name, &old.metadata.name),
    ] {
        if given.is_some() && given != kept {
            problems.push(problem(
                field,
                FieldErrorKind::Invalid,
                given.as_deref().map(|g| format!("{g:?}")),
                "field is immutable",
            ));
        }
    }

    let old_spec = old.spec.clone().unwrap_or_default();
    let new_spec = new.spec.clone().unwrap_or_default();
    match (
        old_spec.active_deadline_seconds,
        new_spec.active_deadline_seconds,
    ) {
        (Some(_), None) => problems.push(problem(
            "spec.activeDeadlineSeconds",
            FieldErrorKind::Invalid,
            Some("\"null\"".into()),
            "must not update from a positive integer to nil value",
        )),
        (Some(o), Some(n)) if n > o => problems.push(problem(
            "spec.activeDeadlineSeconds",
            FieldErrorKind::Invalid,
            Some(n.to_string()),
            "must be less than or equal to previous value",
        )),
        (o, n) => changes.deadline = o != n,
    }
    let old_tol = old_spec.tolerations.clone().unwrap_or_default();
    let new_tol = new_spec.tolerations.clone().unwrap_or_default();
    if old_tol.iter().any(|t| !new_tol.contains(t)) {
        problems.push(problem(
            "spec.tolerations",
            FieldErrorKind::Forbidden,
            None,
            "existing toleration can not be modified except its tolerationSeconds",
        ));
    }
    changes.tolerations = old_tol != new_tol;
    match (
        old_spec.termination_grace_period_seconds,
        new_spec.termination_grace_period_seconds,
    ) {
        (o, n) if o == n => {}
        (Some(o), Some(1)) if o < 0 => changes.grace = true,
        // Left out of an update: the stored value stays.
        (_, None) => {}
        _ if a == b => problems.push(problem("spec", FieldErrorKind::Forbidden, None, FORBIDDEN)),
        _ => {}
    }
    if !problems.is_empty() {
        return Err(manifest::Error::Invalid {
            kind: "Pod",
            name,
            problems,
        });
    }

    let images = |spec: &k8s_openapi::api::core::v1::PodSpec| -> Vec<(String, Option<String>)> {
        spec.init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
            .map(|c| (c.name.clone(), c.image.clone()))
            .collect()
    };
    changes.images = images(&old_spec)
        .into_iter()
        .zip(images(&new_spec))
        .filter(|(o, n)| o != n)
        .map(|(_, (name, _))| name)
        .collect();

    let mut pod = new;
    let meta = &mut pod.metadata;
    let kept = &old.metadata;
    meta.name = kept.name.clone();
    meta.namespace = kept.namespace.clone();
    meta.uid = kept.uid.clone();
    meta.creation_timestamp = kept.creation_timestamp.clone();
    meta.deletion_timestamp = kept.deletion_timestamp.clone();
    meta.deletion_grace_period_seconds = kept.deletion_grace_period_seconds;
    meta.resource_version = kept.resource_version.clone();
    meta.generation = kept.generation;
    meta.managed_fields = None;
    changes.metadata = pod.metadata != old.metadata;
    let spec_changed =
        !changes.images.is_empty() || changes.deadline || changes.tolerations || changes.grace;
    if spec_changed {
        // A new generation for the kubelet to observe.
        pod.metadata.generation = Some(kept.generation.unwrap_or(1) + 1);
    }
    if let Some(spec) = pod.spec.as_mut() {
        spec.node_name = old_spec.node_name.clone();
        if spec.termination_grace_period_seconds.is_none() {
            spec.termination_grace_period_seconds = old_spec.termination_grace_period_seconds;
        }
    }
    pod.status = None;
    Ok((pod, changes))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(extra: Value) -> Pod {
        let mut v = json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u1",
                "labels": {"app": "web"}, "generation": 1, "resourceVersion": "7"},
            "spec": {
                "nodeName": "node",
                "terminationGracePeriodSeconds": 30,
                "activeDeadlineSeconds": 100,
                "tolerations": [{"key": "a", "operator": "Exists"}],
                "initContainers": [{"name": "init", "image": "busybox"}],
                "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "9"]}]
            }
        });
        crate::patch::merge(&mut v, &extra);
        serde_json::from_value(v).unwrap()
    }

    fn refused(extra: Value) -> Vec<(String, FieldErrorKind)> {
        match check(&pod(json!({})), pod(extra)) {
            Err(manifest::Error::Invalid { problems, .. }) => {
                problems.into_iter().map(|p| (p.path, p.kind)).collect()
            }
            other => panic!("expected refusal, got {other:?}"),
        }
    }

    #[test]
    fn labels_images_and_a_shorter_deadline_may_change() {
        let (got, changes) = check(
            &pod(json!({})),
            pod(json!({
                "metadata": {"labels": {"app": "web", "new": "x"}, "uid": null, "resourceVersion": null},
                "spec": {"nodeName": null, "activeDeadlineSeconds": 50,
                    "tolerations": [{"key": "a", "operator": "Exists"}, {"key": "b"}],
                    "containers": [{"name": "main", "image": "probe", "command": ["sleep", "9"]}]}
            })),
        )
        .unwrap();
        assert_eq!(changes.images, ["main"]);
        assert!(changes.deadline && changes.tolerations && changes.metadata);
        assert!(changes.reaches_shim());
        // What the server owns is kept; a spec change is a new generation.
        assert_eq!(got.metadata.uid.as_deref(), Some("u1"));
        assert_eq!(got.metadata.generation, Some(2));
        assert_eq!(
            got.spec.as_ref().unwrap().node_name.as_deref(),
            Some("node")
        );
        let (_, init) = check(
            &pod(json!({})),
            pod(json!({"spec": {"initContainers": [{"name": "init", "image": "probe"}]}})),
        )
        .unwrap();
        assert_eq!(init.images, ["init"]);
        let (same, none) = check(&pod(json!({})), pod(json!({}))).unwrap();
        assert!(none.is_empty(), "{none:?}");
        assert_eq!(same.metadata.generation, Some(1));
        let (_, labels) = check(
            &pod(json!({})),
            pod(json!({"metadata": {"annotations": {"a": "b"}}})),
        )
        .unwrap();
        assert!(labels.metadata && labels.images.is_empty() && !labels.deadline);
    }

    #[test]
    fn other_changes_are_forbidden_with_kubernetes_words() {
        let err = check(
            &pod(json!({})),
            pod(json!({"spec": {"containers": [{"name": "main", "image": "busybox", "command": ["sleep", "1"]}]}})),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("The Pod \"web\" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"),
            "{err}"
        );
        assert!(err.contains("spec.containers[0].command[1]"), "{err}");
        assert_eq!(
            refused(json!({"spec": {"restartPolicy": "Never"}})),
            [("spec".to_string(), FieldErrorKind::Forbidden)]
        );
        assert_eq!(
            refused(json!({"spec": {"activeDeadlineSeconds": 200}})),
            [(
                "spec.activeDeadlineSeconds".to_string(),
                FieldErrorKind::Invalid
            )]
        );
        assert_eq!(
            refused(json!({"spec": {"activeDeadlineSeconds": null}})),
            [(
                "spec.activeDeadlineSeconds".to_string(),
                FieldErrorKind::Invalid
            )]
        );
        assert_eq!(
            refused(json!({"spec": {"tolerations": [{"key": "b"}]}})),
            [("spec.tolerations".to_string(), FieldErrorKind::Forbidden)]
        );
        assert_eq!(
            refused(json!({"spec": {"terminationGracePeriodSeconds": 5}})),
            [("spec".to_string(), FieldErrorKind::Forbidden)]
        );
        assert_eq!(
            refused(json!({"metadata": {"uid": "other"}})),
            [("metadata.uid".to_string(), FieldErrorKind::Invalid)]
        );
        // Adding a container is a change of the fixed part too.
        assert_eq!(
            refused(
                json!({"spec": {"containers": [{"name": "main", "image": "busybox", "command": ["sleep", "9"]}, {"name": "b", "image": "x"}]}})
            ),
            [("spec".to_string(), FieldErrorKind::Forbidden)]
        );
    }

    #[test]
    fn a_negative_grace_period_may_become_one() {
        let old = pod(json!({"spec": {"terminationGracePeriodSeconds": -1}}));
        let (_, c) = check(
            &old,
            pod(json!({"spec": {"terminationGracePeriodSeconds": 1}})),
        )
        .unwrap();
        assert!(c.grace);
    }
}
