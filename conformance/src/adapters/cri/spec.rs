//! A v1 Pod as a kubelet hands it to a CRI runtime: one sandbox config and
//! one container config per container, with resources, security context,
//! namespaces and volumes translated the way kubelet's kuberuntime does.
//! Pure functions, so the translation is unit-tested without a runtime.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, SeccompProfile};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use podlab_kube::qos::QosClass;
use podlab_kube::{expansion, quantity};

/// The labels kubelet puts on every sandbox and container.
pub const POD_NAME: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const POD_UID: &str = "io.kubernetes.pod.uid";
pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";

/// CFS period kubelet uses for every container (100 ms).
const CPU_PERIOD_US: i64 = 100_000;
/// The smallest `cpu.shares` the kernel accepts; kubelet's BestEffort value.
const MIN_SHARES: i64 = 2;
/// Kubelet's OOM score adjustments per QoS class.
const GUARANTEED_OOM_SCORE_ADJ: i64 = -997;
const BEST_EFFORT_OOM_SCORE_ADJ: i64 = 1000;

/// Who the pod is to the runtime.
#[derive(Clone, Debug)]
pub struct PodIdentity {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

impl PodIdentity {
    fn labels(&self) -> HashMap<String, String> {
        HashMap::from([
            (POD_NAME.to_string(), self.name.clone()),
            (POD_NAMESPACE.to_string(), self.namespace.clone()),
            (POD_UID.to_string(), self.uid.clone()),
        ])
    }
}

pub fn spec(pod: &Pod) -> Result<&PodSpec, String> {
    pod.spec
        .as_ref()
        .ok_or_else(|| "the pod has no spec".to_string())
}

/// The sandbox: the pod's namespaces, hostname, cgroup parent and logs.
pub fn sandbox_config(
    pod: &Pod,
    id: &PodIdentity,
    log_dir: &Path,
    cgroup_parent: &str,
) -> Result<cri::PodSandboxConfig, String> {
    let spec = spec(pod)?;
    let host_network = spec.host_network.unwrap_or(false);
    // With hostNetwork the pod keeps the node's UTS namespace and name.
    let hostname = if host_network {
        String::new()
    } else {
        spec.hostname.clone().unwrap_or_else(|| id.name.clone())
    };
    let pod_sc = spec.security_context.as_ref();
    let sysctls = pod_sc
        .and_then(|sc| sc.sysctls.as_ref())
        .map(|s| {
            s.iter()
                .map(|s| (s.name.clone(), s.value.clone()))
                .collect()
        })
        .unwrap_or_default();
    let mut labels: HashMap<String, String> = pod
        .metadata
        .labels
        .as_ref()
        .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    labels.extend(id.labels());
    Ok(cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: id.name.clone(),
            uid: id.uid.clone(),
            namespace: id.namespace.clone(),
            attempt: 0,
        }),
        hostname,
        log_directory: log_dir.to_string_lossy().into_owned(),
        labels,
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent.to_string(),
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(namespace_options(spec)),
                run_as_user: pod_sc.and_then(|sc| sc.run_as_user).map(int64),
                run_as_group: pod_sc.and_then(|sc| sc.run_as_group).map(int64),
                supplemental_groups: supplemental_groups(spec),
                supplemental_groups_policy: supplemental_groups_policy(spec),
                seccomp: Some(seccomp(pod_sc.and_then(|sc| sc.seccomp_profile.as_ref()))),
                // containerd refuses a privileged container in a sandbox
                // that is not privileged itself.
                privileged: all_containers(spec).any(is_privileged),
                ..Default::default()
            }),
            sysctls,
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// One container of the pod, as its `attempt`-th run.
pub fn container_config(
    pod: &Pod,
    id: &PodIdentity,
    c: &Container,
    attempt: u32,
    volumes: &HashMap<String, PathBuf>,
    subpaths: &HashMap<usize, PathBuf>,
    node_memory: u64,
) -> Result<cri::ContainerConfig, String> {
    let spec = spec(pod)?;
    let vars = c.env.as_deref().unwrap_or_default();
    if let Some(e) = vars.iter().find(|e| e.value_from.is_some()) {
        return Err(format!(
            "containers[{}].env[{}].valueFrom is not supported by the CRI adapter",
            c.name, e.name
        ));
    }
    // The kubelet expands `$(VAR)` before the runtime sees the container.
    let env = expansion::container_env(vars, |_| None);
    let command = expansion::expand_all(c.command.as_deref().unwrap_or_default(), &env);
    let args = expansion::expand_all(c.args.as_deref().unwrap_or_default(), &env);
    let envs = env
        .into_iter()
        .map(|(key, value)| cri::KeyValue { key, value })
        .collect();
    let mut mounts = Vec::new();
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let volume = volumes.get(&m.name).ok_or_else(|| {
            format!(
                "containers[{}].volumeMounts: volume {:?} is not an emptyDir or hostPath \
                 volume of the pod",
                c.name, m.name
            )
        })?;
        // A subPath is mounted from where the worker prepared it, never
        // by joining it to the volume's path.
        let host = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) => subpaths.get(&i).ok_or_else(|| {
                format!("containers[{}]: subPath {sub:?} was not prepared", c.name)
            })?,
            None => volume,
        };
        let propagation = match m.mount_propagation.as_deref() {
            Some("HostToContainer") => cri::MountPropagation::PropagationHostToContainer,
            Some("Bidirectional") => cri::MountPropagation::PropagationBidirectional,
            _ => cri::MountPropagation::PropagationPrivate,
        };
        mounts.push(cri::Mount {
            container_path: m.mount_path.clone(),
            host_path: host.to_string_lossy().into_owned(),
            readonly: m.read_only.unwrap_or(false),
            propagation: propagation as i32,
            // The kubelet asks IfPossible only of a runtime handler that
            // reports the feature, which this adapter does not read.
            recursive_read_only: m.recursive_read_only.as_deref() == Some("Enabled"),
            ..Default::default()
        });
    }
    let mut labels = id.labels();
    labels.insert(CONTAINER_NAME.to_string(), c.name.clone());
    let mut resources = resources(c)?;
    resources.oom_score_adj = oom_score_adj(spec, c, node_memory)?;
    Ok(cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: c.name.clone(),
            attempt,
        }),
        image: Some(cri::ImageSpec {
            image: c.image.clone().unwrap_or_default(),
            ..Default::default()
        }),
        command,
        args,
        working_dir: c.working_dir.clone().unwrap_or_default(),
        envs,
        mounts,
        labels,
        log_path: format!("{}/{attempt}.log", c.name),
        linux: Some(cri::LinuxContainerConfig {
            resources: Some(resources),
            security_context: Some(security_context(spec, c)),
        }),
        ..Default::default()
    })
}

fn namespace_options(spec: &PodSpec) -> cri::NamespaceOption {
    let mode = |node: Option<bool>, pod: bool| {
        if node.unwrap_or(false) {
            cri::NamespaceMode::Node
        } else if pod {
            cri::NamespaceMode::Pod
        } else {
            cri::NamespaceMode::Container
        }
    };
    cri::NamespaceOption {
        network: mode(spec.host_network, true) as i32,
        pid: mode(spec.host_pid, spec.share_process_namespace.unwrap_or(false)) as i32,
        ipc: mode(spec.host_ipc, true) as i32,
        ..Default::default()
    }
}

fn security_context(spec: &PodSpec, c: &Container) -> cri::LinuxContainerSecurityContext {
    let pod_sc = spec.security_context.as_ref();
    let sc = c.security_context.as_ref();
    let caps = sc.and_then(|sc| sc.capabilities.as_ref());
    let names = |list: Option<&Vec<String>>| list.cloned().unwrap_or_default();
    cri::LinuxContainerSecurityContext {
        capabilities: caps.map(|c| cri::Capability {
            add_capabilities: names(c.add.as_ref()),
            drop_capabilities: names(c.drop.as_ref()),
            ..Default::default()
        }),
        privileged: is_privileged(c),
        namespace_options: Some(namespace_options(spec)),
        run_as_user: sc
            .and_then(|sc| sc.run_as_user)
            .or(pod_sc.and_then(|sc| sc.run_as_user))
            .map(int64),
        run_as_group: sc
            .and_then(|sc| sc.run_as_group)
            .or(pod_sc.and_then(|sc| sc.run_as_group))
            .map(int64),
        readonly_rootfs: sc.and_then(|sc| sc.read_only_root_filesystem) == Some(true),
        no_new_privs: sc.and_then(|sc| sc.allow_privilege_escalation) == Some(false),
        supplemental_groups: supplemental_groups(spec),
        supplemental_groups_policy: supplemental_groups_policy(spec),
        seccomp: Some(seccomp(
            sc.and_then(|sc| sc.seccomp_profile.as_ref())
                .or(pod_sc.and_then(|sc| sc.seccomp_profile.as_ref())),
        )),
        // The kubelet names them for procMount Default: containerd's CRI
        // starts from a spec without them (measured on 1.6.20: with none
        // sent, /proc/keys, /proc/timer_list and /sys/firmware were
        // readable). The runtime leaves them out for a privileged container.
        masked_paths: MASKED_PATHS.iter().map(|p| p.to_string()).collect(),
        readonly_paths: READONLY_PATHS.iter().map(|p| p.to_string()).collect(),
        ..Default::default()
    }
}

/// What the kubelet masks for procMount Default (the OCI runtime default).
const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// What the kubelet makes read-only for procMount Default.
const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The pod's supplementalGroups and its fsGroup, as the kubelet gives them
/// to every container.
/// The pod's supplementalGroupsPolicy as the CRI's enum (Merge when unset).
fn supplemental_groups_policy(spec: &PodSpec) -> i32 {
    let strict = spec
        .security_context
        .as_ref()
        .and_then(|sc| sc.supplemental_groups_policy.as_deref())
        == Some("Strict");
    if strict {
        cri::SupplementalGroupsPolicy::Strict as i32
    } else {
        cri::SupplementalGroupsPolicy::Merge as i32
    }
}

fn supplemental_groups(spec: &PodSpec) -> Vec<i64> {
    let sc = spec.security_context.as_ref();
    let mut groups: Vec<i64> = sc
        .and_then(|sc| sc.supplemental_groups.clone())
        .unwrap_or_default();
    groups.extend(sc.and_then(|sc| sc.fs_group));
    groups
}

/// Where the kubelet (and so this adapter) finds Localhost profiles:
/// its root directory's seccomp/.
pub const KUBELET_SECCOMP_ROOT: &str = "/var/lib/kubelet/seccomp";

/// The kubelet's seccomp field: Unconfined when nothing is set (its default).
fn seccomp(profile: Option<&SeccompProfile>) -> cri::SecurityProfile {
    use cri::security_profile::ProfileType;
    let (kind, reference) = match profile.map(|p| p.type_.as_str()) {
        Some("RuntimeDefault") => (ProfileType::RuntimeDefault, String::new()),
        Some("Localhost") => (
            ProfileType::Localhost,
            format!(
                "{KUBELET_SECCOMP_ROOT}/{}",
                profile
                    .and_then(|p| p.localhost_profile.as_deref())
                    .unwrap_or_default()
            ),
        ),
        _ => (ProfileType::Unconfined, String::new()),
    };
    cri::SecurityProfile {
        profile_type: kind as i32,
        localhost_ref: reference,
    }
}

/// The kubelet's runAsNonRoot check, given the image's user as the runtime
/// reports it (`uid`, or a `username` it could not make a number of).
pub fn verify_run_as_non_root(
    spec: &PodSpec,
    c: &Container,
    image_uid: Option<i64>,
    image_username: &str,
) -> Result<(), String> {
    let pod_sc = spec.security_context.as_ref();
    let sc = c.security_context.as_ref();
    let non_root = sc
        .and_then(|s| s.run_as_non_root)
        .or(pod_sc.and_then(|s| s.run_as_non_root))
        .unwrap_or(false);
    if !non_root {
        return Ok(());
    }
    let run_as_user = sc
        .and_then(|s| s.run_as_user)
        .or(pod_sc.and_then(|s| s.run_as_user));
    match (run_as_user, image_uid) {
        (Some(0), _) => Err(format!(
            "container's runAsUser breaks non-root policy (container: {})",
            c.name
        )),
        (Some(_), _) => Ok(()),
        (None, Some(uid)) if uid != 0 => Ok(()),
        (None, None) if !image_username.is_empty() => Err(format!(
            "container has runAsNonRoot and image has non-numeric user ({image_username}), cannot verify user is non-root (container: {})",
            c.name
        )),
        (None, _) => Err(format!(
            "container has runAsNonRoot and image will run as root (container: {})",
            c.name
        )),
    }
}

fn int64(value: i64) -> cri::Int64Value {
    cri::Int64Value { value }
}

fn is_privileged(c: &Container) -> bool {
    c.security_context.as_ref().and_then(|sc| sc.privileged) == Some(true)
}

fn all_containers(spec: &PodSpec) -> impl Iterator<Item = &Container> {
    spec.init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
}

/// Requests and limits of cpu (millicores) and memory (bytes); a request
/// left out defaults to the limit, as the API server defaults it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Amounts {
    cpu_request: Option<i64>,
    cpu_limit: Option<i64>,
    memory_request: Option<i64>,
    memory_limit: Option<i64>,
}

fn amounts(c: &Container) -> Result<Amounts, String> {
    let empty = BTreeMap::new();
    let res = c.resources.as_ref();
    let requests = res.and_then(|r| r.requests.as_ref()).unwrap_or(&empty);
    let limits = res.and_then(|r| r.limits.as_ref()).unwrap_or(&empty);
    let get = |map: &BTreeMap<String, Quantity>,
               kind: &str,
               key: &str,
               exact: fn(&str) -> Result<i64, quantity::Error>| {
        map.get(key)
            .map(|q| {
                let field = format!("containers[{}].resources.{kind}.{key}", c.name);
                match exact(&q.0) {
                    Ok(v) if v < 0 => Err(format!("{field}: {:?} is negative", q.0)),
                    Ok(v) => Ok(v),
                    Err(e) => Err(format!("{field}: {e}")),
                }
            })
            .transpose()
    };
    let cpu_limit = get(limits, "limits", "cpu", quantity::cpu_millis)?;
    let memory_limit = get(limits, "limits", "memory", quantity::memory_bytes)?;
    Ok(Amounts {
        cpu_request: get(requests, "requests", "cpu", quantity::cpu_millis)?.or(cpu_limit),
        cpu_limit,
        memory_request: get(requests, "requests", "memory", quantity::memory_bytes)?
            .or(memory_limit),
        memory_limit,
    })
}

/// The container's cgroup settings, computed as kubelet does.
pub fn resources(c: &Container) -> Result<cri::LinuxContainerResources, String> {
    let a = amounts(c)?;
    let shares = a
        .cpu_request
        .map(|m| m * 1024 / 1000)
        .unwrap_or(0)
        .max(MIN_SHARES);
    let (cpu_period, cpu_quota) = match a.cpu_limit {
        // The kernel refuses a quota under 1 ms.
        Some(m) => (CPU_PERIOD_US, (m * CPU_PERIOD_US / 1000).max(1000)),
        None => (0, 0),
    };
    Ok(cri::LinuxContainerResources {
        cpu_period,
        cpu_quota,
        cpu_shares: shares,
        memory_limit_in_bytes: a.memory_limit.unwrap_or(0),
        ..Default::default()
    })
}

/// The size of a `medium: Memory` emptyDir's tmpfs as the kubelet sizes
/// it: the sizeLimit, capped by the pod's memory limit (its pod-level
/// limit, else the sum of its containers' when each has one); None leaves
/// the kernel's default.
pub fn memory_volume_size(
    spec: &PodSpec,
    size_limit: Option<&Quantity>,
) -> Result<Option<i64>, String> {
    let size = size_limit
        .map(|q| quantity::memory_bytes(&q.0))
        .transpose()
        .map_err(|e| format!("emptyDir sizeLimit: {e}"))?;
    let pod_level = spec
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get("memory"))
        .map(|q| quantity::memory_bytes(&q.0))
        .transpose()
        .map_err(|e| format!("resources.limits.memory: {e}"))?;
    let pod_limit = match pod_level {
        Some(m) => Some(m),
        None => spec
            .containers
            .iter()
            .map(|c| amounts(c).map(|a| a.memory_limit))
            .collect::<Result<Option<Vec<i64>>, String>>()?
            .map(|limits| limits.iter().sum()),
    };
    Ok(match (size, pod_limit) {
        (Some(s), Some(p)) => Some(s.min(p)),
        (s, p) => s.or(p),
    })
}

/// The pod's QoS class, by the rule the runtime under test also uses.
pub fn qos_class(spec: &PodSpec) -> Result<QosClass, String> {
    podlab_kube::qos::qos_class(spec).map_err(|e| podlab_kube::error::chain(&e))
}

/// The container's oom_score_adj: by QoS class, and for Burstable pods the
/// more memory a container requests the less likely it is killed.
fn oom_score_adj(spec: &PodSpec, c: &Container, node_memory: u64) -> Result<i64, String> {
    Ok(match qos_class(spec)? {
        QosClass::Guaranteed => GUARANTEED_OOM_SCORE_ADJ,
        QosClass::BestEffort => BEST_EFFORT_OOM_SCORE_ADJ,
        QosClass::Burstable => {
            let request = amounts(c)?.memory_request.unwrap_or(0).max(0) as u128;
            let capacity = u128::from(node_memory.max(1));
            let adj = 1000 - (1000 * request / capacity).min(1000) as i64;
            adj.clamp(2, 999)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn a_memory_volume_is_its_size_limit_capped_by_the_pod_limit() {
        let spec = |limits: Value| -> PodSpec {
            serde_json::from_value(json!({"containers": [
                {"name": "a", "resources": {"limits": limits}},
                {"name": "b", "resources": {"limits": {"memory": "16Mi"}}},
            ]}))
            .unwrap()
        };
        let q = |s: &str| Quantity(s.into());
        let unbounded = spec(json!({}));
        assert_eq!(memory_volume_size(&unbounded, None).unwrap(), None);
        assert_eq!(
            memory_volume_size(&unbounded, Some(&q("10Mi"))).unwrap(),
            Some(10 << 20)
        );
        let bounded = spec(json!({"memory": "8Mi"}));
        assert_eq!(memory_volume_size(&bounded, None).unwrap(), Some(24 << 20));
        assert_eq!(
            memory_volume_size(&bounded, Some(&q("1Gi"))).unwrap(),
            Some(24 << 20)
        );
        assert!(memory_volume_size(&bounded, Some(&q("ten"))).is_err());
    }

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": spec,
        }))
        .unwrap()
    }

    fn id() -> PodIdentity {
        PodIdentity {
            name: "web".into(),
            namespace: "default".into(),
            uid: "u-1".into(),
        }
    }

    #[test]
    fn quantities_are_exact() {
        let with = |requests: &[(&str, &str)]| -> Container {
            let requests: serde_json::Map<String, Value> = requests
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect();
            serde_json::from_value(json!({"name": "app", "resources": {"requests": requests}}))
                .unwrap()
        };
        // Every millicore count maps to the kubelet's integer shares; a
        // floating-point parse once gave 10 shares for "9m".
        for m in 1..=8000i64 {
            let r = resources(&with(&[("cpu", &format!("{m}m"))])).unwrap();
            assert_eq!(r.cpu_shares, (m * 1024 / 1000).max(MIN_SHARES), "{m}m");
        }
        let r = resources(&with(&[("memory", "1.5Ki")])).unwrap();
        assert_eq!(r.memory_limit_in_bytes, 0, "a request is no limit");
        let c = with(&[("memory", "-1")]);
        let err = resources(&c).unwrap_err();
        assert!(
            err.contains("resources.requests.memory") && err.contains("negative"),
            "{err}"
        );
        let err = resources(&with(&[("cpu", "lots")])).unwrap_err();
        assert!(err.contains("resources.requests.cpu"), "{err}");
    }

    #[test]
    fn limits_become_cgroup_settings_like_kubelet_sets_them() {
        let p = pod(serde_json::json!({"containers": [
            {"name": "a", "image": "i", "resources": {"limits": {"cpu": "250m", "memory": "64Mi"}}},
            {"name": "b", "image": "i"},
        ]}));
        let spec = p.spec.as_ref().unwrap();
        let a = resources(&spec.containers[0]).unwrap();
        assert_eq!((a.cpu_period, a.cpu_quota), (100_000, 25_000));
        assert_eq!(a.cpu_shares, 256);
        assert_eq!(a.memory_limit_in_bytes, 64 << 20);
        let b = resources(&spec.containers[1]).unwrap();
        assert_eq!(
            (b.cpu_quota, b.cpu_shares, b.memory_limit_in_bytes),
            (0, 2, 0)
        );
        assert_eq!(qos_class(spec).unwrap(), QosClass::Burstable);
        let bad = pod(serde_json::json!({"containers": [
            {"name": "a", "image": "i", "resources": {"limits": {"memory": "lots"}}}]}));
        let err = resources(&bad.spec.as_ref().unwrap().containers[0]).unwrap_err();
        assert!(
            err.contains("containers[a].resources.limits.memory"),
            "{err}"
        );
    }

    #[test]
    fn qos_decides_the_oom_score() {
        let guaranteed = pod(
            serde_json::json!({"containers": [{"name": "a", "image": "i",
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}),
        );
        let best_effort = pod(serde_json::json!({"containers": [{"name": "a", "image": "i"}]}));
        let burstable = pod(
            serde_json::json!({"containers": [{"name": "a", "image": "i",
            "resources": {"requests": {"memory": "1Gi"}}}]}),
        );
        let adj = |p: &Pod| {
            let s = p.spec.as_ref().unwrap();
            oom_score_adj(s, &s.containers[0], 4 << 30).unwrap()
        };
        assert_eq!(adj(&guaranteed), -997);
        assert_eq!(adj(&best_effort), 1000);
        assert_eq!(adj(&burstable), 750);
    }

    #[test]
    fn the_sandbox_carries_the_pod_namespaces_and_hostname() {
        let p = pod(
            serde_json::json!({"shareProcessNamespace": true, "hostname": "h1",
            "containers": [{"name": "a", "image": "i", "securityContext": {"privileged": true}}]}),
        );
        let s = sandbox_config(&p, &id(), Path::new("/logs"), "/podlab-cri/podu-1").unwrap();
        assert_eq!(s.hostname, "h1");
        assert_eq!(s.labels[POD_UID], "u-1");
        assert_eq!(s.labels["app"], "web");
        let linux = s.linux.unwrap();
        assert_eq!(linux.cgroup_parent, "/podlab-cri/podu-1");
        let sc = linux.security_context.unwrap();
        assert!(sc.privileged);
        let ns = sc.namespace_options.unwrap();
        assert_eq!(ns.network, cri::NamespaceMode::Pod as i32);
        assert_eq!(ns.pid, cri::NamespaceMode::Pod as i32);
        assert_eq!(ns.ipc, cri::NamespaceMode::Pod as i32);

        let host = pod(serde_json::json!({"hostNetwork": true,
            "containers": [{"name": "a", "image": "i"}]}));
        let s = sandbox_config(&host, &id(), Path::new("/logs"), "/x").unwrap();
        assert_eq!(s.hostname, "");
        let ns = s
            .linux
            .unwrap()
            .security_context
            .unwrap()
            .namespace_options
            .unwrap();
        assert_eq!(ns.network, cri::NamespaceMode::Node as i32);
        assert_eq!(ns.pid, cri::NamespaceMode::Container as i32);
    }

    #[test]
    fn containers_get_command_env_mounts_and_security_context() {
        let p = pod(
            serde_json::json!({"containers": [{"name": "a", "image": "img",
            "command": ["sh"], "args": ["-c", "true"],
            "env": [{"name": "K", "value": "V"}],
            "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
            "securityContext": {"capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
                                "runAsUser": 1000, "readOnlyRootFilesystem": true,
                                "allowPrivilegeEscalation": false}}]}),
        );
        let volumes = HashMap::from([("scratch".to_string(), PathBuf::from("/v/scratch"))]);
        let c = &p.spec.as_ref().unwrap().containers[0];
        let cfg = container_config(&p, &id(), c, 2, &volumes, &HashMap::new(), 1 << 30).unwrap();
        assert_eq!(cfg.metadata.as_ref().unwrap().attempt, 2);
        assert_eq!(cfg.image.as_ref().unwrap().image, "img");
        assert_eq!(
            (cfg.command.clone(), cfg.args.clone()),
            (
                vec!["sh".to_string()],
                vec!["-c".to_string(), "true".to_string()]
            )
        );
        assert_eq!(cfg.envs[0].key, "K");
        assert_eq!(cfg.mounts[0].host_path, "/v/scratch");
        assert_eq!(cfg.log_path, "a/2.log");
        assert_eq!(cfg.labels[CONTAINER_NAME], "a");
        let sc = cfg.linux.unwrap().security_context.unwrap();
        assert_eq!(sc.capabilities.unwrap().add_capabilities, vec!["NET_ADMIN"]);
        assert_eq!(sc.run_as_user.unwrap().value, 1000);
        assert!(sc.readonly_rootfs && sc.no_new_privs && !sc.privileged);

        let err = container_config(&p, &id(), c, 0, &HashMap::new(), &HashMap::new(), 1 << 30)
            .unwrap_err();
        assert!(err.contains("volume \"scratch\""), "{err}");
    }

    #[test]
    fn references_are_expanded_as_the_kubelet_does() {
        let p = pod(
            serde_json::json!({"containers": [{"name": "a", "image": "img",
            "command": ["echo", "$(B)"], "args": ["$$(A)", "$(NOPE)"],
            "env": [{"name": "A", "value": "x"}, {"name": "B", "value": "$(A)y"}]}]}),
        );
        let c = &p.spec.as_ref().unwrap().containers[0];
        let cfg =
            container_config(&p, &id(), c, 0, &HashMap::new(), &HashMap::new(), 1 << 30).unwrap();
        assert_eq!(cfg.command, ["echo", "xy"]);
        assert_eq!(cfg.args, ["$(A)", "$(NOPE)"]);
        assert_eq!(cfg.envs[1].value, "xy");
    }

    #[test]
    fn security_contexts_merge_and_carry_seccomp_and_groups() {
        use cri::security_profile::ProfileType;
        let p = pod(serde_json::json!({
        "securityContext": {"runAsUser": 1000, "runAsGroup": 1001, "supplementalGroups": [5],
                            "fsGroup": 2000, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {"name": "a", "image": "i", "securityContext": {"runAsUser": 2000}},
            {"name": "b", "image": "i", "securityContext": {"seccompProfile": {"type": "Unconfined"}}},
        ]}));
        let spec = p.spec.as_ref().unwrap();
        let a = security_context(spec, &spec.containers[0]);
        assert_eq!(a.run_as_user.map(|v| v.value), Some(2000));
        assert_eq!(a.run_as_group.map(|v| v.value), Some(1001));
        assert_eq!(a.supplemental_groups, [5, 2000]);
        assert_eq!(
            a.seccomp.unwrap().profile_type,
            ProfileType::RuntimeDefault as i32
        );
        let b = security_context(spec, &spec.containers[1]);
        assert_eq!(b.run_as_user.map(|v| v.value), Some(1000));
        assert_eq!(
            b.seccomp.unwrap().profile_type,
            ProfileType::Unconfined as i32
        );
        let plain = pod(serde_json::json!({"containers": [{"name": "a", "image": "i"}]}));
        let s = plain.spec.as_ref().unwrap();
        let c = security_context(s, &s.containers[0]);
        assert_eq!(
            c.seccomp.unwrap().profile_type,
            ProfileType::Unconfined as i32,
            "the kubelet's default"
        );
    }

    #[test]
    fn run_as_non_root_is_checked_like_the_kubelet() {
        let p = pod(
            serde_json::json!({"securityContext": {"runAsNonRoot": true},
            "containers": [{"name": "a", "image": "i"}, {"name": "b", "image": "i", "securityContext": {"runAsUser": 0}},
                           {"name": "c", "image": "i", "securityContext": {"runAsUser": 7}}]}),
        );
        let s = p.spec.as_ref().unwrap();
        let check = |i: usize, uid: Option<i64>, name: &str| {
            verify_run_as_non_root(s, &s.containers[i], uid, name)
        };
        assert!(check(0, None, "")
            .unwrap_err()
            .contains("image will run as root"));
        assert!(check(0, Some(0), "")
            .unwrap_err()
            .contains("image will run as root"));
        assert!(check(0, None, "app")
            .unwrap_err()
            .contains("non-numeric user (app)"));
        assert!(check(0, Some(10), "").is_ok());
        assert!(check(1, Some(10), "")
            .unwrap_err()
            .contains("runAsUser breaks non-root policy"));
        assert!(check(2, None, "").is_ok());
    }
}
