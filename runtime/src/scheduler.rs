//! The scheduler of a one-node cluster: admits a pod when the node's
//! allocatable CPU and memory still hold its requests.
//!
//! Allocatable is the [node](crate::node)'s capacity minus a reserve for
//! the system. A pod is bound to the node by setting `spec.nodeName`; the
//! requests of bound pods that have not finished (phase neither Succeeded
//! nor Failed) are in use. A pod that does not fit is stored unbound, with
//! `PodScheduled=False`, reason `Unschedulable`, and no shim.
//!
//! Pending pods are scheduled again, in the order they were queued, whenever room may have
//! freed up: after `podlab delete`, after `podlab gc`, and when a pod's
//! shim sees the pod finish. Every decision happens under the store lock, so
//! two `apply`s cannot both take the last of the node's memory.

use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};

use crate::lifecycle;
use crate::mutants::Mutant;
use crate::network;
use crate::node::{self, Resources};
use crate::quantity;
use crate::store::{self, now_time, Event, PodDir, PodKey, Store, StoreLock};
use crate::testhook::{self, Stage};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Quantity(#[from] quantity::Error),
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Node(#[from] node::Error),
}

fn container_requests(c: &Container) -> Result<Resources, quantity::Error> {
    let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref());
    let get = |k: &str| requests.and_then(|m| m.get(k)).map(|q| q.0.clone());
    Ok(Resources {
        cpu_millis: get("cpu")
            .map(|q| quantity::cpu_millis(&q))
            .transpose()?
            .unwrap_or(0),
        memory_bytes: get("memory")
            .map(|q| quantity::memory_bytes(&q))
            .transpose()?
            .unwrap_or(0),
        ephemeral_bytes: get("ephemeral-storage")
            .map(|q| quantity::memory_bytes(&q))
            .transpose()?
            .unwrap_or(0),
    })
}

/// The pod's effective request, by Kubernetes' rule: the app containers
/// and sidecars together, or the largest init container (plus the sidecars
/// started before it) if that is more. Pod-level requests, when given,
/// replace the per-container sum for their resource.
pub fn pod_requests(pod: &Pod) -> Result<Resources, quantity::Error> {
    let Some(spec) = &pod.spec else {
        return Ok(Resources::default());
    };
    let mut total = Resources::default();
    for c in &spec.containers {
        total = total + container_requests(c)?;
    }
    let (mut sidecars, mut init_peak) = (Resources::default(), Resources::default());
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c)?;
        if lifecycle::is_sidecar(c) {
            total = total + r;
            sidecars = sidecars + r;
            init_peak = init_peak.max(sidecars);
        } else {
            init_peak = init_peak.max(r + sidecars);
        }
    }
    total = total.max(init_peak);
    let pod_level = spec.resources.as_ref().and_then(|r| r.requests.as_ref());
    if let Some(q) = pod_level.and_then(|m| m.get("cpu")) {
        total.cpu_millis = quantity::cpu_millis(&q.0)?;
    }
    if let Some(q) = pod_level.and_then(|m| m.get("memory")) {
        total.memory_bytes = quantity::memory_bytes(&q.0)?;
    }
    Ok(total)
}

/// The resources the request does not fit in, in Kubernetes' order and
/// words (`cpu`, `memory`); empty when it fits. A resource the pod does not
/// request never blocks it.
pub fn insufficient(
    allocatable: Resources,
    used: Resources,
    request: Resources,
) -> Vec<&'static str> {
    let mut short = Vec::new();
    if request.cpu_millis > 0 && used.cpu_millis + request.cpu_millis > allocatable.cpu_millis {
        short.push("cpu");
    }
    if request.memory_bytes > 0
        && used.memory_bytes + request.memory_bytes > allocatable.memory_bytes
    {
        short.push("memory");
    }
    if request.ephemeral_bytes > 0
        && used.ephemeral_bytes + request.ephemeral_bytes > allocatable.ephemeral_bytes
    {
        short.push("ephemeral-storage");
    }
    short
}

/// The scheduler's message for a pod that fits nowhere.
pub fn unschedulable_message(short: &[&str]) -> String {
    let reasons: Vec<String> = short
        .iter()
        .map(|r| format!("1 Insufficient {r}"))
        .collect();
    nodes_unavailable(&reasons)
}

pub fn is_bound(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty())
}

/// Whether a stored pod waits for the scheduler (rather than having been
/// abandoned half-way by a crashed `apply`, which gc collects).
pub fn is_unschedulable(status: &PodStatus) -> bool {
    status.conditions.iter().flatten().any(|c| {
        c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
    })
}

/// The bound pods that still hold what they asked for (phase neither
/// Succeeded nor Failed), `except` one.
fn active_bound(store: &Store, except: Option<&PodKey>) -> Result<Vec<Pod>, Error> {
    let mut out = Vec::new();
    for dir in store.list(None)? {
        if Some(&dir.key) == except {
            continue;
        }
        let Ok(pod) = dir.read_pod() else { continue };
        if !is_bound(&pod) {
            continue;
        }
        let phase = dir.read_status().ok().flatten().and_then(|s| s.phase);
        if matches!(
            phase.as_deref(),
            Some(lifecycle::SUCCEEDED) | Some(lifecycle::FAILED)
        ) {
            continue;
        }
        out.push(pod);
    }
    Ok(out)
}

/// The requests of the bound pods that still hold them, `except` one.
pub fn in_use(store: &Store, except: Option<&PodKey>) -> Result<Resources, Error> {
    // A record podlab wrote cannot have bad quantities; skip rather than
    // block the node on one.
    Ok(active_bound(store, except)?
        .iter()
        .fold(Resources::default(), |used, pod| {
            used + pod_requests(pod).unwrap_or_default()
        }))
}

/// One host port a pod takes: (host IP, protocol, port); an empty IP or
/// 0.0.0.0 means every address of the node.
pub type HostPort = (String, String, i32);

/// The host ports a pod asks for (`ports[].hostPort` of its containers).
pub fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let spec = pod.spec.iter();
    spec.flat_map(|s| s.init_containers.iter().flatten().chain(&s.containers))
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.is_some_and(|h| h > 0))
        .map(|p| {
            let ip = p.host_ip.clone().unwrap_or_default();
            let ip = if ip == "0.0.0.0" { String::new() } else { ip };
            let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            (ip, proto, p.host_port.unwrap_or_default())
        })
        .collect()
}

/// The container ports with a hostPort, as `describe` shows them
/// (`8080->80/TCP`, `127.0.0.1:53->53/UDP`).
pub fn host_ports_described(spec: &k8s_openapi::api::core::v1::PodSpec) -> Vec<String> {
    spec.containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let host = p.host_port.filter(|h| *h > 0)?;
            let ip = p
                .host_ip
                .as_deref()
                .filter(|ip| !ip.is_empty())
                .map(|ip| format!("{ip}:"))
                .unwrap_or_default();
            let proto = p.protocol.as_deref().unwrap_or("TCP");
            Some(format!("{ip}{host}->{}/{proto}", p.container_port))
        })
        .collect()
}

/// Whether two host ports clash as the scheduler's NodePorts check sees it:
/// same protocol and port, on the same address or one of them on all.
pub fn ports_clash(a: &HostPort, b: &HostPort) -> bool {
    a.1 == b.1 && a.2 == b.2 && (a.0.is_empty() || b.0.is_empty() || a.0 == b.0)
}

/// The decision for one pod:/// The decision for one pod: `None` when it fits, else why not.
/// The caller holds the store lock.
pub fn decide(store: &Store, pod: &Pod, key: &PodKey) -> Result<Option<String>, Error> {
    let request = pod_requests(pod)?;
    let wanted = host_ports(pod);
    let mutant = Mutant::from_env();
    if mutant == Some(Mutant::AdmitAll) {
        return Ok(None);
    }
    let mut short: Vec<&str> = Vec::new();
    if request != Resources::default() {
        short = insufficient(
            node::allocatable(store.data_root())?,
            in_use(store, Some(key))?,
            request,
        );
    }
    let mut ports_taken = false;
    if !wanted.is_empty() && mutant != Some(Mutant::PortConflictAdmitted) {
        let taken: Vec<HostPort> = active_bound(store, Some(key))?
            .iter()
            .flat_map(host_ports)
            .collect();
        ports_taken = wanted
            .iter()
            .any(|w| taken.iter().any(|t| ports_clash(w, t)));
    }
    let mut reasons: Vec<String> = short
        .iter()
        .map(|r| format!("1 Insufficient {r}"))
        .collect();
    if ports_taken {
        reasons.push(format!("1 {PORTS_TAKEN}"));
    }
    Ok((!reasons.is_empty()).then(|| nodes_unavailable(&reasons)))
}

/// The scheduler's words for a node whose host ports a pod wants are taken.
pub const PORTS_TAKEN: &str = "node(s) didn't have free ports for the requested pod ports";

fn nodes_unavailable(reasons: &[String]) -> String {
    format!("0/1 nodes are available: {}.", reasons.join(", "))
}

/// Records a pod the node cannot hold now: Pending, `PodScheduled=False`.
pub fn mark_unschedulable(dir: &PodDir, message: &str) -> Result<(), Error> {
    let pod = dir.read_pod()?;
    let mut status = dir
        .read_status()?
        .unwrap_or_else(|| lifecycle::initial_status(&pod, &now_time()));
    let already = is_unschedulable(&status)
        && status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "PodScheduled" && c.message.as_deref() == Some(message));
    if already {
        return Ok(());
    }
    let queued = queue_file(dir);
    if !queued.exists() {
        // The scheduling queue's order, finer than creationTimestamp's seconds.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        store::write_json_atomic(&queued, &nanos)?;
    }
    status.phase = Some(lifecycle::PENDING.into());
    lifecycle::set_condition_with_message(
        &mut status,
        "PodScheduled",
        false,
        Some("Unschedulable"),
        Some(message.to_string()),
        &now_time(),
    );
    dir.write_status(&status)?;
    dir.record_event(&Event::warning(
        "FailedScheduling",
        "default-scheduler",
        message,
    ))?;
    Ok(())
}

/// When the pod joined the scheduling queue (nanoseconds since the epoch).
fn queue_file(dir: &PodDir) -> std::path::PathBuf {
    dir.dir.join("queued.json")
}

/// Why the kubelet's admission refuses a pod bound to its node: a sysctl
/// off the safe list (SysctlForbidden), as (reason, message); None admits.
pub fn kubelet_rejects(pod: &Pod) -> Option<(&'static str, String)> {
    if Mutant::from_env() == Some(Mutant::UnsafeSysctlAllowed) {
        return None;
    }
    let sysctls = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|sc| sc.sysctls.as_ref());
    let unsafe_one = sysctls
        .into_iter()
        .flatten()
        .find(|s| !crate::manifest::is_safe_sysctl(&s.name))?;
    Some((
        SYSCTL_FORBIDDEN,
        format!(
            "Pod was rejected: forbidden sysctl: {:?} is not on the kubelet's safe list ({})",
            unsafe_one.name,
            crate::manifest::SAFE_SYSCTLS.join(", ")
        ),
    ))
}

pub const SYSCTL_FORBIDDEN: &str = "SysctlForbidden";

/// Whether a bound pod is for the kubelet to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Bound {
    /// Admitted: start it (the shim does; the scheduler sits below it).
    Admitted,
    /// Refused by the kubelet's admission: already Failed, nothing to run.
    Refused,
}

/// Binds a stored pod to this node: nodeName, PodScheduled and the
/// Scheduled event. A pod the kubelet's admission refuses is Failed at once.
pub fn bind(dir: &PodDir, pod: &mut Pod) -> Result<Bound, Error> {
    let node = network::node_name();
    if let Some(spec) = pod.spec.as_mut() {
        spec.node_name = Some(node.clone());
    }
    dir.write_pod(pod)?;
    let mut status = dir
        .read_status()?
        .unwrap_or_else(|| lifecycle::initial_status(pod, &now_time()));
    lifecycle::set_condition(&mut status, "PodScheduled", true, None, &now_time());
    dir.write_status(&status)?;
    dir.record_event(&Event::normal(
        "Scheduled",
        "default-scheduler",
        format!("Successfully assigned {} to {node}", dir.key),
    ))?;
    if let Some((reason, message)) = kubelet_rejects(pod) {
        status.phase = Some(lifecycle::FAILED.into());
        status.reason = Some(reason.into());
        status.message = Some(message.clone());
        dir.write_status(&status)?;
        dir.record_event(&Event::warning(reason, "kubelet", message))?;
        return Ok(Bound::Refused);
    }
    testhook::stall_at(Stage::ApplyBound);
    Ok(Bound::Admitted)
}

/// Schedules the pods that wait for room, oldest first; each that fits now
/// is bound. Returns the bound pods the kubelet admitted, for the caller to
/// start. The caller holds the store lock.
pub fn schedule_pending(store: &Store, _lock: &StoreLock) -> Result<Vec<PodDir>, Error> {
    let mut waiting = Vec::new();
    for dir in store.list(None)? {
        let Ok(pod) = dir.read_pod() else { continue };
        if is_bound(&pod) || pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if !dir
            .read_status()
            .ok()
            .flatten()
            .is_some_and(|s| is_unschedulable(&s))
        {
            continue;
        }
        let queued: u128 = store::read_json_opt(&queue_file(&dir))
            .ok()
            .flatten()
            .unwrap_or(0);
        waiting.push((queued, dir, pod));
    }
    waiting.sort_by(|a, b| (a.0, &a.1.key).cmp(&(b.0, &b.1.key)));
    let mut admitted = Vec::new();
    for (_, dir, mut pod) in waiting {
        match decide(store, &pod, &dir.key)? {
            None => {
                if bind(&dir, &mut pod)? == Bound::Admitted {
                    admitted.push(dir);
                }
            }
            Some(message) => mark_unschedulable(&dir, &message)?,
        }
    }
    Ok(admitted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn host_ports_clash_on_protocol_port_and_address() {
        let p = pod(
            serde_json::json!({"spec": {"containers": [{"name": "a", "ports": [
                {"containerPort": 80, "hostPort": 8080},
                {"containerPort": 53, "hostPort": 5353, "protocol": "UDP", "hostIP": "127.0.0.1"},
                {"containerPort": 81},
            ]}]}}),
        );
        let ports = host_ports(&p);
        assert_eq!(
            ports,
            vec![
                (String::new(), "TCP".into(), 8080),
                ("127.0.0.1".into(), "UDP".into(), 5353)
            ]
        );
        let all = |proto: &str, port| (String::new(), proto.to_string(), port);
        assert!(ports_clash(&ports[0], &all("TCP", 8080)));
        assert!(!ports_clash(&ports[0], &all("UDP", 8080)));
        assert!(!ports_clash(&ports[0], &all("TCP", 8081)));
        assert!(ports_clash(&ports[1], &all("UDP", 5353)));
        let other_ip = ("10.0.0.1".to_string(), "UDP".to_string(), 5353);
        assert!(!ports_clash(&ports[1], &other_ip));
        assert!(PORTS_TAKEN.contains("didn't have free ports"));
    }

    fn res(cpu: i64, mem_mi: i64) -> Resources {
        Resources {
            cpu_millis: cpu,
            memory_bytes: mem_mi << 20,
            ephemeral_bytes: 0,
        }
    }

    #[test]
    fn requests_follow_the_kubernetes_formula() {
        let r = |cpu: &str, mem: &str| serde_json::json!({"requests": {"cpu": cpu, "memory": mem}});
        let disk = |d: &str| serde_json::json!({"requests": {"ephemeral-storage": d}});
        let p = pod(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {
                "initContainers": [
                    {"name": "big-init", "resources": r("2", "64Mi")},
                    {"name": "side", "restartPolicy": "Always", "resources": r("100m", "32Mi")},
                    {"name": "late-init", "resources": r("500m", "512Mi")}
                ],
                "containers": [
                    {"name": "a", "resources": r("250m", "128Mi")},
                    {"name": "b", "resources": r("250m", "128Mi")},
                    {"name": "none"}
                ]
            }
        }));
        // cpu: max(app 500m + side 100m, big-init 2000m) = 2000m;
        // memory: max(256Mi + 32Mi, late-init 512Mi + side 32Mi) = 544Mi.
        assert_eq!(pod_requests(&p).unwrap(), res(2000, 544));
        let mut with_pod_level = p.clone();
        with_pod_level.spec.as_mut().unwrap().resources =
            serde_json::from_value(serde_json::json!({"requests": {"memory": "1Gi"}})).unwrap();
        assert_eq!(pod_requests(&with_pod_level).unwrap(), res(2000, 1024));
        let empty = pod(
            serde_json::json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}}),
        );
        assert_eq!(pod_requests(&empty).unwrap(), Resources::default());
        let disks = pod(
            serde_json::json!({"metadata": {"name": "p"}, "spec": {"containers": [
                {"name": "a", "resources": disk("1Gi")}, {"name": "b", "resources": disk("512Mi")}
            ]}}),
        );
        assert_eq!(pod_requests(&disks).unwrap().ephemeral_bytes, 1536 << 20);
    }

    #[test]
    fn fit_checks_each_requested_resource() {
        let node = res(2000, 1024);
        assert!(insufficient(node, res(1000, 512), res(1000, 512)).is_empty());
        assert_eq!(insufficient(node, res(1000, 512), res(0, 600)), ["memory"]);
        assert_eq!(
            insufficient(node, res(1900, 1000), res(200, 100)),
            ["cpu", "memory"]
        );
        // No request: fits even a full node.
        assert!(insufficient(node, res(2000, 1024), res(0, 0)).is_empty());
        // Ephemeral storage counts like the others.
        let disk = |gi: i64| Resources {
            ephemeral_bytes: gi << 30,
            ..res(0, 0)
        };
        let node = Resources {
            ephemeral_bytes: 10 << 30,
            ..node
        };
        assert!(insufficient(node, disk(4), disk(6)).is_empty());
        assert_eq!(insufficient(node, disk(5), disk(6)), ["ephemeral-storage"]);
        assert_eq!(
            unschedulable_message(&["ephemeral-storage"]),
            "0/1 nodes are available: 1 Insufficient ephemeral-storage."
        );
        assert_eq!(
            unschedulable_message(&["memory"]),
            "0/1 nodes are available: 1 Insufficient memory."
        );
        assert_eq!(
            unschedulable_message(&["cpu", "memory"]),
            "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory."
        );
    }

    #[test]
    fn pods_in_use_are_the_bound_unfinished_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), tmp.path().join("data")).unwrap();
        let lock = store.lock().unwrap();
        let mk = |name: &str, bound: bool, phase: &str| {
            let mut p = pod(serde_json::json!({
                "metadata": {"name": name},
                "spec": {"containers": [{"name": "a", "resources": {"requests": {"memory": "100Mi", "cpu": "1"}}}]}
            }));
            if bound {
                p.spec.as_mut().unwrap().node_name = Some("n".into());
            }
            let key = PodKey::new("default", name);
            let dir = store.create(&lock, &key, &p).unwrap();
            let mut st = lifecycle::initial_status(&p, &now_time());
            st.phase = Some(phase.into());
            dir.write_status(&st).unwrap();
            key
        };
        let running = mk("running", true, lifecycle::RUNNING);
        mk("done", true, lifecycle::SUCCEEDED);
        mk("failed", true, lifecycle::FAILED);
        mk("waiting", false, lifecycle::PENDING);
        assert_eq!(in_use(&store, None).unwrap(), res(1000, 100));
        assert_eq!(
            in_use(&store, Some(&running)).unwrap(),
            Resources::default()
        );
    }

    #[test]
    fn unschedulable_pods_are_marked_once_per_message() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), tmp.path().join("data")).unwrap();
        let lock = store.lock().unwrap();
        let p = pod(
            serde_json::json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}}),
        );
        let dir = store
            .create(&lock, &PodKey::new("default", "p"), &p)
            .unwrap();
        let msg = unschedulable_message(&["memory"]);
        mark_unschedulable(&dir, &msg).unwrap();
        mark_unschedulable(&dir, &msg).unwrap();
        let st = dir.read_status().unwrap().unwrap();
        assert!(is_unschedulable(&st));
        assert_eq!(st.phase.as_deref(), Some(lifecycle::PENDING));
        let events = dir.read_events().unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].reason, "FailedScheduling");
        assert_eq!(events[0].message, msg);
    }
}
