//! The defaults the API server fills in before validating a pod, limited to
//! the fields podlab acts on. Each default is set only where the manifest
//! left the field out, so what the user wrote always wins.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, EmptyDirVolumeSource, Pod, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::Error;

/// Where the container's termination message is read from; Kubernetes'
/// default, which images and tools expect.
pub const TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";

/// An object's namespace from `-n` when the manifest names none; both must
/// agree otherwise (kubectl refuses to move an object to another namespace
/// silently). Every object lives in one; kubectl's default context uses
/// "default".
pub fn default_namespace(meta: &mut ObjectMeta, namespace: Option<&str>) -> Result<(), Error> {
    match (
        meta.namespace.as_deref().filter(|n| !n.is_empty()),
        namespace,
    ) {
        (Some(manifest), Some(requested)) if manifest != requested => {
            Err(Error::NamespaceMismatch {
                manifest: manifest.to_string(),
                requested: requested.to_string(),
            })
        }
        (Some(_), _) => Ok(()),
        (None, requested) => {
            meta.namespace = Some(requested.unwrap_or("default").to_string());
            Ok(())
        }
    }
}

/// Fills in Kubernetes' defaults. `namespace` is the `-n` flag: it is used
/// when the manifest names no namespace, and must agree with it otherwise
/// (kubectl refuses to move an object to another namespace silently).
pub fn default_pod(pod: &mut Pod, namespace: Option<&str>) -> Result<(), Error> {
    default_namespace(&mut pod.metadata, namespace)?;

    let Some(spec) = pod.spec.as_mut() else {
        // Nothing to default; validation reports the missing containers.
        return Ok(());
    };
    // Kubernetes restarts containers unless told otherwise.
    spec.restart_policy
        .get_or_insert_with(|| "Always".to_string());
    // How long `delete` waits between SIGTERM and SIGKILL.
    spec.termination_grace_period_seconds.get_or_insert(30);
    // Decides which resolv.conf the pod gets.
    spec.dns_policy
        .get_or_insert_with(|| "ClusterFirst".to_string());
    // A hostNetwork pod listens on the node itself: each container port
    // is also a host port the scheduler must keep free, as Kubernetes defaults it.
    if spec.host_network == Some(true) {
        let containers = spec.init_containers.iter_mut().flatten();
        for c in containers.chain(spec.containers.iter_mut()) {
            for p in c.ports.iter_mut().flatten() {
                if p.host_port.unwrap_or(0) == 0 {
                    p.host_port = Some(p.container_port);
                }
            }
        }
    }
    for volume in spec.volumes.iter_mut().flatten() {
        // A volume that names no source is an emptyDir in Kubernetes.
        if serde_json::to_value(&*volume)
            .ok()
            .and_then(|v| v.as_object().map(|o| o.keys().all(|k| k == "name")))
            .unwrap_or(false)
        {
            volume.empty_dir = Some(EmptyDirVolumeSource::default());
        }
    }
    for container in spec
        .init_containers
        .iter_mut()
        .flatten()
        .chain(spec.containers.iter_mut())
    {
        default_container(container);
    }
    if let Some(resources) = spec.resources.as_mut() {
        // Pod-level requests follow the limits like container ones do, for
        // the resources that have requests (podlab's `pids` is a limit only).
        requests_from_limits(resources, &["cpu", "memory"]);
    }
    Ok(())
}

fn default_container(container: &mut Container) {
    if container.image_pull_policy.is_none() {
        // A moving tag must be pulled each time to mean what it says.
        let policy = match image_tag(container.image.as_deref().unwrap_or("")) {
            ImageTag::Latest => "Always",
            ImageTag::Pinned => "IfNotPresent",
        };
        container.image_pull_policy = Some(policy.to_string());
    }
    container
        .termination_message_path
        .get_or_insert_with(|| TERMINATION_MESSAGE_PATH.to_string());
    container
        .termination_message_policy
        .get_or_insert_with(|| "File".to_string());
    for port in container.ports.iter_mut().flatten() {
        port.protocol.get_or_insert_with(|| "TCP".to_string());
    }
    if let Some(resources) = container.resources.as_mut() {
        // A limit without a request means "reserve exactly the limit": this
        // makes a pod with only limits Guaranteed, as in Kubernetes.
        requests_from_limits(resources, &[]);
    }
}

/// Copies each limit into the requests where no request is given (only the
/// resources in `only`, unless it is empty).
fn requests_from_limits(resources: &mut ResourceRequirements, only: &[&str]) {
    let Some(limits) = resources.limits.as_ref() else {
        return;
    };
    let missing: BTreeMap<String, Quantity> = limits
        .iter()
        .filter(|(name, _)| only.is_empty() || only.contains(&name.as_str()))
        .filter(|(name, _)| {
            !resources
                .requests
                .as_ref()
                .is_some_and(|r| r.contains_key(*name))
        })
        .map(|(name, q)| (name.clone(), q.clone()))
        .collect();
    if !missing.is_empty() {
        resources
            .requests
            .get_or_insert_with(BTreeMap::new)
            .extend(missing);
    }
}

#[derive(Debug, PartialEq, Eq)]
enum ImageTag {
    /// `:latest`, or no tag and no digest (which means latest).
    Latest,
    /// Any other tag, or a digest.
    Pinned,
}

/// Reads the tag of an image reference the way Kubernetes decides the pull
/// policy: the colon of a registry port (`localhost:5000/app`) is no tag.
fn image_tag(image: &str) -> ImageTag {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.split_once(':') {
        Some((_, "latest")) => ImageTag::Latest,
        Some(_) => ImageTag::Pinned,
        None if digest.is_some() => ImageTag::Pinned,
        None => ImageTag::Latest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_with_ports() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n"},
            "spec": {"hostNetwork": true, "containers": [{"name": "a", "ports": [
                {"containerPort": 8080}, {"containerPort": 90, "hostPort": 9000}]}]}
        }))
        .unwrap()
    }
    use k8s_openapi::api::core::v1::{ContainerPort, PodSpec, Volume};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use rstest::rstest;

    fn pod(namespace: Option<&str>, containers: Vec<Container>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: namespace.map(String::from),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers,
                ..Default::default()
            }),
            status: None,
        }
    }

    fn container(image: &str) -> Container {
        Container {
            name: "app".into(),
            image: Some(image.into()),
            ..Default::default()
        }
    }

    #[rstest]
    #[case("nginx", "Always")]
    #[case("nginx:latest", "Always")]
    #[case("docker.io/library/nginx", "Always")]
    #[case("localhost:5000/app", "Always")] // a port is not a tag
    #[case("localhost:5000/app:latest", "Always")]
    #[case("nginx:1.27", "IfNotPresent")]
    #[case("localhost:5000/app:v2", "IfNotPresent")]
    #[case("nginx@sha256:0123abcd", "IfNotPresent")]
    #[case("nginx:latest@sha256:0123abcd", "Always")]
    #[case("nginx:1.27@sha256:0123abcd", "IfNotPresent")]
    fn pull_policy_follows_the_tag(#[case] image: &str, #[case] policy: &str) {
        let mut p = pod(None, vec![container(image)]);
        default_pod(&mut p, None).unwrap();
        let c = &p.spec.unwrap().containers[0];
        assert_eq!(c.image_pull_policy.as_deref(), Some(policy), "{image}");
    }

    #[test]
    fn fills_pod_and_container_defaults() {
        let mut c = container("busybox:1.36");
        c.ports = Some(vec![ContainerPort {
            container_port: 80,
            ..Default::default()
        }]);
        let mut p = pod(None, vec![c.clone()]);
        p.spec.as_mut().unwrap().init_containers = Some(vec![Container {
            name: "init".into(),
            ..c
        }]);
        p.spec.as_mut().unwrap().volumes = Some(vec![Volume {
            name: "scratch".into(),
            ..Default::default()
        }]);
        default_pod(&mut p, None).unwrap();

        assert_eq!(p.metadata.namespace.as_deref(), Some("default"));
        let spec = p.spec.unwrap();
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
        assert_eq!(spec.termination_grace_period_seconds, Some(30));
        assert_eq!(spec.dns_policy.as_deref(), Some("ClusterFirst"));
        let mut hostnet = pod_with_ports();
        default_pod(&mut hostnet, None).unwrap();
        let ports = hostnet.spec.unwrap().containers[0].ports.clone().unwrap();
        assert_eq!(
            ports[0].host_port,
            Some(8080),
            "hostNetwork: hostPort = containerPort"
        );
        assert_eq!(ports[1].host_port, Some(9000), "a given hostPort stays");
        assert_eq!(
            spec.volumes.unwrap()[0].empty_dir,
            Some(EmptyDirVolumeSource::default())
        );
        for c in spec.init_containers.unwrap().iter().chain(&spec.containers) {
            assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
            assert_eq!(
                c.termination_message_path.as_deref(),
                Some(TERMINATION_MESSAGE_PATH)
            );
            assert_eq!(c.termination_message_policy.as_deref(), Some("File"));
            assert_eq!(
                c.ports.as_ref().unwrap()[0].protocol.as_deref(),
                Some("TCP")
            );
        }
    }

    #[test]
    fn keeps_what_the_manifest_says() {
        let mut c = container("nginx");
        c.image_pull_policy = Some("Never".into());
        c.termination_message_path = Some("/tmp/msg".into());
        let mut p = pod(Some("team"), vec![c]);
        let spec = p.spec.as_mut().unwrap();
        spec.restart_policy = Some("Never".into());
        spec.termination_grace_period_seconds = Some(0);
        spec.dns_policy = Some("Default".into());
        spec.volumes = Some(vec![Volume {
            name: "cache".into(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".into()),
                ..Default::default()
            }),
            ..Default::default()
        }]);
        let before = p.clone();
        default_pod(&mut p, Some("team")).unwrap();
        let (spec, before) = (p.spec.unwrap(), before.spec.unwrap());
        assert_eq!(p.metadata.namespace.as_deref(), Some("team"));
        assert_eq!(spec.restart_policy, before.restart_policy);
        assert_eq!(spec.termination_grace_period_seconds, Some(0));
        assert_eq!(spec.dns_policy, before.dns_policy);
        assert_eq!(spec.volumes, before.volumes);
        assert_eq!(
            spec.containers[0].image_pull_policy.as_deref(),
            Some("Never")
        );
        assert_eq!(
            spec.containers[0].termination_message_path.as_deref(),
            Some("/tmp/msg")
        );
    }

    #[rstest]
    #[case(None, None, Ok("default"))]
    #[case(None, Some("dev"), Ok("dev"))]
    #[case(Some(""), Some("dev"), Ok("dev"))]
    #[case(Some("dev"), None, Ok("dev"))]
    #[case(Some("dev"), Some("dev"), Ok("dev"))]
    #[case(Some("prod"), Some("dev"), Err(("prod", "dev")))]
    fn namespace_flag_and_manifest(
        #[case] manifest: Option<&str>,
        #[case] flag: Option<&str>,
        #[case] expected: Result<&str, (&str, &str)>,
    ) {
        let mut p = pod(manifest, vec![container("nginx")]);
        match (default_pod(&mut p, flag), expected) {
            (Ok(()), Ok(ns)) => assert_eq!(p.metadata.namespace.as_deref(), Some(ns)),
            (
                Err(Error::NamespaceMismatch {
                    manifest,
                    requested,
                }),
                Err((m, r)),
            ) => {
                assert_eq!((manifest.as_str(), requested.as_str()), (m, r));
            }
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn namespace_mismatch_names_both() {
        let mut p = pod(Some("prod"), vec![container("nginx")]);
        let err = default_pod(&mut p, Some("dev")).unwrap_err().to_string();
        assert!(err.contains("\"prod\"") && err.contains("\"dev\""), "{err}");
        assert!(err.contains("--namespace=prod"), "{err}");
    }

    #[test]
    fn requests_default_to_limits() {
        let q = |s: &str| Quantity(s.into());
        let mut c = container("nginx");
        c.resources = Some(ResourceRequirements {
            limits: Some(BTreeMap::from([
                ("cpu".into(), q("500m")),
                ("memory".into(), q("1Gi")),
            ])),
            requests: Some(BTreeMap::from([("cpu".into(), q("100m"))])),
            ..Default::default()
        });
        let mut p = pod(None, vec![c]);
        p.spec.as_mut().unwrap().resources = Some(ResourceRequirements {
            limits: Some(BTreeMap::from([
                ("memory".into(), q("2Gi")),
                ("pids".into(), q("64")),
            ])),
            ..Default::default()
        });
        default_pod(&mut p, None).unwrap();
        let spec = p.spec.unwrap();
        let requests = spec.containers[0]
            .resources
            .as_ref()
            .unwrap()
            .requests
            .clone();
        assert_eq!(
            requests,
            Some(BTreeMap::from([
                ("cpu".into(), q("100m")),   // given: kept
                ("memory".into(), q("1Gi")), // from the limit
            ]))
        );
        let pod_requests = spec.resources.unwrap().requests;
        assert_eq!(
            pod_requests,
            Some(BTreeMap::from([("memory".into(), q("2Gi"))])),
            "pids is a limit only"
        );
    }

    #[test]
    fn a_pod_without_spec_only_gets_a_namespace() {
        let mut p = Pod::default();
        default_pod(&mut p, None).unwrap();
        assert_eq!(p.metadata.namespace.as_deref(), Some("default"));
        assert!(p.spec.is_none());
    }
}
