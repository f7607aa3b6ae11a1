//! The CRI adapter: the suite's pods on any runtime that serves the
//! Kubernetes Container Runtime Interface (v1) on a unix socket, such as
//! containerd's CRI plugin, driven the way a kubelet drives it.
//!
//! A CRI runtime runs sandboxes and containers; the pod around them is the
//! kubelet's. So this adapter does the kubelet's part for each pod it
//! creates: a [`worker`] thread runs the sandbox, the init containers in
//! order, the app containers, and restarts per `restartPolicy`; the status
//! is computed from the runtime's reports as kubelet computes it
//! ([`status`]); the v1 spec becomes CRI configs as kuberuntime translates
//! it ([`spec`]); images are pulled (PullImage) as imagePullPolicy says,
//! from wherever the runtime's own registry configuration points. What a
//! kubelet does and this adapter does not: pull secrets, schedule (no node
//! resources are checked), probes, volumes other than emptyDir.

mod client;
mod kubelet;
pub mod node;
mod spec;
mod status;
mod subpath;
mod worker;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::{json, Value};

use crate::adapters::host::{node_addresses, processes_naming, remove_cgroup_tree};
use crate::runtime::{Capabilities, Error, ExecOutput, PidsLimits, Runtime};
use client::Client;
use spec::PodIdentity;
use status::{ContainerRecord, ContainerView, PodView};
pub use worker::Backoff;
use worker::{PodEntry, PodState};

#[derive(Clone, Debug)]
pub struct CriConfig {
    /// The runtime's CRI socket.
    pub socket: PathBuf,
    /// The probe image reference; it must be in the runtime's image store.
    pub probe_image: String,
    /// Pods' cgroups go under one parent of this name, in the form of the
    /// runtime's cgroup driver (see [`node::CgroupLayout`]).
    pub cgroup_root: String,
    /// The runtime handler pods run with (`runtime_handler`); `None` for
    /// the runtime's default.
    pub runtime_handler: Option<String>,
    /// What the runtime supports, when the user says (`--caps`) instead of
    /// the adapter's declaration for containerd.
    pub capabilities: Option<Capabilities>,
    pub backoff: Backoff,
    /// A test registry the runtime is configured to pull from
    /// (`HOST:PORT`), declared as the `registry` capability.
    pub registry: Option<String>,
}

impl CriConfig {
    pub fn new(socket: PathBuf) -> CriConfig {
        CriConfig {
            socket,
            probe_image: "podlab.local/probe:latest".into(),
            cgroup_root: "podlab-cri".into(),
            runtime_handler: None,
            capabilities: None,
            backoff: Backoff {
                base: Duration::from_millis(500),
                max: Duration::from_secs(10),
            },
            registry: None,
        }
    }
}

/// A pod this adapter created, and its worker.
struct Tracked {
    entry: Arc<PodEntry>,
    worker: JoinHandle<()>,
}

pub struct Cri {
    config: CriConfig,
    client: Arc<Client>,
    /// "containerd 1.6.20 (CRI v1)", for reports.
    version: String,
    /// `cri-<runtime>-<handler>`: the report's and the expectations' name.
    run_name: String,
    layout: node::CgroupLayout,
    /// Container logs and emptyDir volumes; removed on drop.
    dir: tempfile::TempDir,
    pods: Mutex<HashMap<String, Tracked>>,
    /// Pods being deleted: their containers get their grace period and,
    /// as in Kubernetes, can still be exec'd into until they stop.
    terminating: Mutex<HashMap<String, Arc<PodEntry>>>,
    node_memory: u64,
    /// The cgroup root directories that did not exist before this run.
    new_cgroup_roots: Vec<PathBuf>,
}

impl Cri {
    /// Connects to the runtime and checks that the probe image is there.
    pub fn new(config: CriConfig) -> Result<Cri, Error> {
        let (client, reply) = Client::connect(&config.socket)?;
        let layout = node::CgroupLayout {
            driver: node::cgroup_driver(client.runtime_config()?.as_ref()),
            root: config.cgroup_root.clone(),
        };
        let handler = config
            .runtime_handler
            .clone()
            .or_else(|| node::default_handler(client.status().ok().as_ref()));
        let run_name = node::run_name(&reply, handler.as_deref());
        let client = client.with_handler(config.runtime_handler.as_deref().unwrap_or(""));
        let version = format!(
            "{} {} (CRI {}), handler {}, cgroup driver {:?}",
            reply.runtime_name,
            reply.runtime_version,
            reply.runtime_api_version,
            handler.as_deref().unwrap_or("default"),
            layout.driver
        );
        if !client.image_present(&config.probe_image)? {
            return Err(Error::Other(format!(
                "the probe image {} is not in the runtime's image store: import it first \
                 (`cargo xtask conformance --runtime cri` imports the fixtures into its containerd)",
                config.probe_image
            )));
        }
        let dir = tempfile::Builder::new()
            .prefix("podlab-conformance-cri-")
            .tempdir()
            .map_err(|e| Error::Other(format!("cannot create a state directory: {e}")))?;
        let new_cgroup_roots = cgroup_roots(&layout.root_dir())
            .into_iter()
            .filter(|p| !p.exists())
            .collect();
        Ok(Cri {
            config,
            client: Arc::new(client),
            version,
            run_name,
            layout,
            dir,
            pods: Mutex::new(HashMap::new()),
            terminating: Mutex::new(HashMap::new()),
            node_memory: node_memory(),
            new_cgroup_roots,
        })
    }

    /// The runtime's name and version, as it reports them.
    pub fn version(&self) -> &str {
        &self.version
    }

    fn pods(&self) -> std::sync::MutexGuard<'_, HashMap<String, Tracked>> {
        self.pods.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn entry(&self, name: &str) -> Option<Arc<PodEntry>> {
        self.pods().get(name).map(|t| Arc::clone(&t.entry))
    }

    fn cgroup_parent(&self, uid: &str) -> String {
        self.layout.pod_parent(uid)
    }

    /// Unmounts the pod's memory-backed volumes and removes its volumes.
    fn release_volumes(&self, uid: &str) {
        let dir = self.dir.path().join("volumes").join(uid);
        subpath::unmount_entries(&dir);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// The pod's emptyDir volumes, created on the host (nothing is left of
    /// them when one fails), and its hostPath volumes, checked.
    fn volumes(&self, pod: &Pod, uid: &str) -> Result<HashMap<String, PathBuf>, Error> {
        let made = self.make_volumes(pod, uid);
        if made.is_err() {
            self.release_volumes(uid);
        }
        made
    }

    fn make_volumes(&self, pod: &Pod, uid: &str) -> Result<HashMap<String, PathBuf>, Error> {
        let mut out = HashMap::new();
        let spec_volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_ref());
        for v in spec_volumes.into_iter().flatten() {
            if let Some(h) = &v.host_path {
                // The kubelet's part: the type check (and making what the
                // ...OrCreate types ask for); the node path is the volume.
                let path = PathBuf::from(&h.path);
                podlab_kube::hostpath::prepare(&path, h.type_.as_deref().unwrap_or("")).map_err(
                    |e| {
                        Error::Other(format!(
                            "volume {:?}: {}",
                            v.name,
                            podlab_kube::error::chain(&e)
                        ))
                    },
                )?;
                out.insert(v.name.clone(), path);
                continue;
            }
            if v.empty_dir.is_none() {
                return Err(Error::Unsupported(format!(
                    "spec.volumes[{}]: the CRI adapter provides emptyDir and hostPath volumes only",
                    v.name
                )));
            }
            let dir = self.dir.path().join("volumes").join(uid).join(&v.name);
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::Other(format!("cannot create {}: {e}", dir.display())))?;
            let empty_dir = v.empty_dir.as_ref();
            if empty_dir.and_then(|e| e.medium.as_deref()) == Some("Memory") {
                // As the kubelet mounts it: a tmpfs of the sizeLimit, capped
                // by the pod's memory limit.
                let size_limit = empty_dir.and_then(|e| e.size_limit.as_ref());
                let size = pod
                    .spec
                    .as_ref()
                    .map(|s| spec::memory_volume_size(s, size_limit))
                    .transpose()
                    .map_err(Error::Other)?
                    .flatten();
                subpath::mount_tmpfs(&dir, size).map_err(Error::Other)?;
            }
            // As the kubelet makes them: writable by any user, and with
            // fsGroup owned by that group with setgid.
            let fs_group = pod
                .spec
                .as_ref()
                .and_then(|s| s.security_context.as_ref())
                .and_then(|sc| sc.fs_group)
                .and_then(|g| u32::try_from(g).ok());
            let mode = if fs_group.is_some() { 0o2777 } else { 0o777 };
            let setup = std::os::unix::fs::chown(&dir, None, fs_group).and_then(|()| {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))
            });
            setup.map_err(|e| Error::Other(format!("cannot prepare {}: {e}", dir.display())))?;
            out.insert(v.name.clone(), dir);
        }
        Ok(out)
    }

    /// The pod as the runtime reports it now, with the worker's records.
    fn view(&self, entry: &PodEntry) -> Result<PodView, Error> {
        // A container the worker replaced between our copy of its record and
        // our question to the runtime is gone: look again with the new
        // record. One lost for good shows what its record says.
        let mut tries = 0;
        loop {
            let (view, vanished) = self.view_once(entry)?;
            tries += 1;
            if !vanished || tries == 3 {
                return Ok(view);
            }
        }
    }

    /// One look, and whether a container the records name was gone.
    fn view_once(&self, entry: &PodEntry) -> Result<(PodView, bool), Error> {
        let (init, app, pod_ip, created_at) = {
            let state = entry.lock();
            (
                state.init.clone(),
                state.app.clone(),
                state.pod_ip.clone(),
                state.created_at,
            )
        };
        let spec = spec::spec(&entry.pod).map_err(Error::Other)?;
        let mut vanished = false;
        let mut views = |records: Vec<ContainerRecord>, containers: &[Container]| {
            let mut out = Vec::new();
            for (record, c) in records.into_iter().zip(containers) {
                let observed = match &record.id {
                    Some(id) => {
                        let status = self.client.container_status(id)?;
                        vanished |= status.is_none();
                        status
                    }
                    None => None,
                };
                out.push(ContainerView {
                    name: c.name.clone(),
                    image: c.image.clone().unwrap_or_default(),
                    record,
                    observed,
                });
            }
            Ok::<_, Error>(out)
        };
        let init = views(init, spec.init_containers.as_deref().unwrap_or(&[]))?;
        let app = views(app, &spec.containers)?;
        let view = PodView {
            restart_policy: spec
                .restart_policy
                .clone()
                .unwrap_or_else(|| "Always".into()),
            init,
            app,
            pod_ip,
            host_ip: entry.host_ip.clone(),
            created_at,
        };
        Ok((view, vanished))
    }

    /// Stops the pod's worker, then its containers (SIGTERM, SIGKILL after
    /// `grace`), then its sandbox, and releases what the adapter made.
    fn delete(&self, name: &str, grace: u32) -> Result<(), Error> {
        let Some(tracked) = self.pods().remove(name) else {
            return Ok(());
        };
        let entry = tracked.entry;
        self.terminating
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), Arc::clone(&entry));
        let result = self.stop_and_remove(&entry, tracked.worker, grace);
        self.terminating
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        result
    }

    /// Stops the worker, gives every container its grace period, then
    /// removes the sandbox and the pod's cgroup parent.
    fn stop_and_remove(
        &self,
        entry: &Arc<PodEntry>,
        worker: JoinHandle<()>,
        grace: u32,
    ) -> Result<(), Error> {
        entry.stop.store(true, Ordering::SeqCst);
        // The worker checks the flag every tick; a call in flight finishes.
        let _ = worker.join();
        let (ids, sandbox) = {
            let state = entry.lock();
            let ids: Vec<String> = state
                .init
                .iter()
                .chain(&state.app)
                .filter_map(|r| r.id.clone())
                .collect();
            (ids, state.sandbox_id.clone())
        };
        // Like kubelet: every container gets its grace period at once.
        let results: Vec<Result<(), Error>> = std::thread::scope(|s| {
            let handles: Vec<_> = ids
                .iter()
                .map(|id| s.spawn(move || self.client.stop_container(id, grace)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(Error::Other("a stop thread panicked".into())))
                })
                .collect()
        });
        let mut first_error = results
            .into_iter()
            .filter_map(Result::err)
            .find(|e| !client::is_not_found(e));
        if let Some(id) = sandbox {
            for result in [
                self.client.stop_pod_sandbox(&id),
                self.client.remove_pod_sandbox(&id),
            ] {
                if let Err(e) = result {
                    if !client::is_not_found(&e) {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        // The runtime removes the containers' cgroups; the pod's parent
        // (kubelet's job) is ours.
        for root in cgroup_roots(&self.layout.root_dir()) {
            remove_cgroup_tree(&root.join(self.layout.pod_dir(&entry.id.uid)));
        }
        // The prepared subPaths are bind mounts into the volumes: unmounted first.
        subpath::release(&entry.subpaths);
        self.release_volumes(&entry.id.uid);
        let _ = std::fs::remove_file(&entry.etc_hosts);
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn leftovers_now(&self) -> Vec<String> {
        let mut left = Vec::new();
        match self.client.list_pod_sandboxes() {
            Ok(list) => left.extend(list.iter().map(|s| {
                let name = s.metadata.as_ref().map(|m| m.name.as_str()).unwrap_or("");
                format!("the runtime still has the sandbox of pod {name} ({})", s.id)
            })),
            Err(e) => left.push(e.to_string()),
        }
        match self.client.list_containers() {
            Ok(list) => left.extend(list.iter().map(|c| {
                let name = c.metadata.as_ref().map(|m| m.name.as_str()).unwrap_or("");
                format!("the runtime still has container {name} ({})", c.id)
            })),
            Err(e) => left.push(e.to_string()),
        }
        for root in cgroup_roots(&self.layout.root_dir()) {
            let Ok(entries) = std::fs::read_dir(&root) else {
                continue;
            };
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    left.push(format!("{} is still there", e.path().display()));
                }
            }
        }
        // The runtime's shims name its socket on their command lines.
        let mark = self.config.socket.to_string_lossy().into_owned();
        left.extend(processes_naming(Path::new("/proc"), &mark));
        left
    }
}

impl Runtime for Cri {
    fn name(&self) -> &str {
        &self.run_name
    }

    /// The file the runtime writes for the run (`<container>/<attempt>.log`
    /// under the sandbox's log directory), read as the kubelet reads it:
    /// the text of its CRI-format lines, partial ones joined.
    fn logs(
        &self,
        pod: &str,
        container: &str,
        tail: Option<usize>,
        previous: bool,
    ) -> Result<String, Error> {
        let entry = self
            .entry(pod)
            .ok_or_else(|| Error::NotFound(pod.to_string()))?;
        let restarts = {
            let state = entry.lock();
            let names = entry
                .pod
                .spec
                .iter()
                .flat_map(|s| {
                    s.init_containers
                        .iter()
                        .flatten()
                        .chain(s.containers.iter())
                })
                .map(|c| c.name.clone());
            let records = state.init.iter().chain(state.app.iter());
            names
                .zip(records)
                .find(|(n, _)| n == container)
                .map(|(_, r)| r.restarts)
                .ok_or_else(|| Error::Other(format!("pod {pod} has no container {container}")))?
        };
        let attempt = if previous {
            restarts.checked_sub(1).ok_or_else(|| {
                Error::Other(format!(
                    "container {container} of pod {pod} has not restarted: no previous run"
                ))
            })?
        } else {
            restarts
        };
        let path = Path::new(&entry.sandbox_config.log_directory)
            .join(container)
            .join(format!("{attempt}.log"));
        let raw = std::fs::read_to_string(&path)
            .map_err(|e| Error::Other(format!("cannot read {}: {e}", path.display())))?;
        let mut lines = cri_log_text(&raw);
        if let Some(n) = tail {
            lines.drain(..lines.len().saturating_sub(n));
        }
        Ok(lines.iter().map(|l| format!("{l}\n")).collect())
    }

    fn capabilities(&self) -> Capabilities {
        if let Some(caps) = &self.config.capabilities {
            let mut caps = caps.clone();
            caps.registry = caps.registry.or_else(|| self.config.registry.clone());
            return caps;
        }
        Capabilities {
            pod_ip: true,
            privileged: true,
            // runc on cgroup v1 mounts each container's own cgroup at
            // /sys/fs/cgroup/<controller>; on v2 kubelet's cgroupns does.
            cgroup_visible: true,
            pending_observable: true,
            share_process_namespace: true,
            same_kernel: true,
            // The pod bridge has no address on the node (no gateway), so
            // the node cannot reach pods: nothing leaves the pod network.
            node_reaches_pods: false,
            pids: PidsLimits {
                pod_field: false,
                per_container: None,
            },
            init_containers: true,
            restart_policy: true,
            // There is no scheduler between the suite and the runtime.
            unschedulable: false,
            oom_reason: true,
            // Probes are the kubelet's, and this adapter does not run them.
            probes: false,
            // Hooks too are the kubelet's, and this adapter does not run them.
            hooks: false,
            // Eviction is the kubelet's: containerd measures nothing against
            // ephemeral-storage limits.
            storage_eviction: false,
            // containerd writes what the kubelet asks; rotation is the kubelet's.
            log_bound: None,
            host_ports: false,
            host_paths: true,
            // ExecSync carries the timeout; the runtime kills the command.
            exec_timeout: true,
            seccomp_root: Some(spec::KUBELET_SECCOMP_ROOT.into()),
            registry: self.config.registry.clone(),
        }
    }

    fn probe_image(&self) -> String {
        self.config.probe_image.clone()
    }

    /// One sandbox, run and removed: its pause container is the first thing
    /// the OCI runtime starts, so a runtime that cannot run here says so.
    fn preflight(&self) -> Result<(), Error> {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "podlab-preflight"},
            "spec": {"containers": [{"name": "app", "image": self.config.probe_image}]},
        }))
        .map_err(|e| Error::Other(format!("the preflight pod: {e}")))?;
        let id = PodIdentity {
            name: "podlab-preflight".into(),
            namespace: "default".into(),
            uid: new_uid()?,
        };
        let logs = self
            .dir
            .path()
            .join("logs")
            .join(format!("preflight_{}", id.uid));
        std::fs::create_dir_all(&logs)
            .map_err(|e| Error::Other(format!("cannot create {}: {e}", logs.display())))?;
        let config = spec::sandbox_config(&pod, &id, &logs, &self.cgroup_parent(&id.uid))
            .map_err(Error::Other)?;
        let outcome = self.client.run_pod_sandbox(config);
        if let Ok(sandbox) = &outcome {
            let _ = self.client.stop_pod_sandbox(sandbox);
            let _ = self.client.remove_pod_sandbox(sandbox);
        }
        // A refused sandbox can still leave its sandbox record behind.
        if let Ok(list) = self.client.list_pod_sandboxes() {
            for s in list
                .iter()
                .filter(|s| s.metadata.as_ref().is_some_and(|m| m.uid == id.uid))
            {
                let _ = self.client.stop_pod_sandbox(&s.id);
                let _ = self.client.remove_pod_sandbox(&s.id);
            }
        }
        for root in cgroup_roots(&self.layout.root_dir()) {
            remove_cgroup_tree(&root.join(self.layout.pod_dir(&id.uid)));
        }
        let _ = std::fs::remove_dir_all(&logs);
        outcome.map(|_| ())
    }

    fn create_pod(&self, manifest_yaml: &str) -> Result<(), Error> {
        let pod: Pod = serde_norway::from_str(manifest_yaml).map_err(|e| Error::Parse {
            command: "the pod manifest".into(),
            detail: e.to_string(),
        })?;
        let name = pod
            .metadata
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| Error::Other("the manifest has no metadata.name".into()))?;
        let spec = spec::spec(&pod).map_err(Error::Other)?;
        if self.pods().contains_key(&name) {
            return Err(Error::Other(format!("pod {name} already exists")));
        }
        let id = PodIdentity {
            name: name.clone(),
            namespace: pod
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
            uid: new_uid()?,
        };
        let logs = self
            .dir
            .path()
            .join("logs")
            .join(format!("{}_{}_{}", id.namespace, id.name, id.uid));
        std::fs::create_dir_all(&logs)
            .map_err(|e| Error::Other(format!("cannot create {}: {e}", logs.display())))?;
        let mut sandbox_config =
            spec::sandbox_config(&pod, &id, &logs, &self.cgroup_parent(&id.uid))
                .map_err(Error::Other)?;
        // The kubelet's part of the sandbox: DNS and host ports.
        let node_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        sandbox_config.dns_config = Some(kubelet::dns_config(spec, &node_resolv));
        sandbox_config.port_mappings = kubelet::port_mappings(spec);
        // Refuse what cannot run before anything is created.
        spec::qos_class(spec).map_err(Error::Other)?;
        let volumes = self.volumes(&pod, &id.uid)?;
        let records = |n: usize| vec![ContainerRecord::default(); n];
        let state = PodState {
            rejected: kubelet::forbidden_sysctl(spec),
            sandbox_id: None,
            sandbox_error: None,
            pod_ip: None,
            init: records(spec.init_containers.as_ref().map_or(0, Vec::len)),
            app: records(spec.containers.len()),
            transitions: HashMap::new(),
            created_at: now_nanos(),
        };
        let subpaths = self.dir.path().join("subpaths").join(&id.uid);
        let etc_hosts = self.dir.path().join("etc-hosts").join(&id.uid);
        let entry = Arc::new(PodEntry {
            pod: pod.clone(),
            id,
            sandbox_config,
            volumes,
            subpaths,
            etc_hosts,
            state: Mutex::new(state),
            stop: Default::default(),
            node_memory: self.node_memory,
            host_ip: host_ip(),
        });
        let (e, client, backoff) = (
            Arc::clone(&entry),
            Arc::clone(&self.client),
            self.config.backoff,
        );
        let worker = match std::thread::Builder::new()
            .name(format!("pod-{name}"))
            .spawn(move || worker::run(e, client, backoff))
        {
            Ok(w) => w,
            Err(e) => {
                self.release_volumes(&entry.id.uid);
                return Err(Error::Other(format!("cannot start the pod worker: {e}")));
            }
        };
        self.pods().insert(name, Tracked { entry, worker });
        Ok(())
    }

    fn get_pod(&self, name: &str) -> Result<Option<Pod>, Error> {
        let Some(entry) = self.entry(name) else {
            return Ok(None);
        };
        let view = self.view(&entry)?;
        let uid = entry.id.uid.clone();
        let (mut status, conds) = status::pod_status(&view);
        let conditions = {
            let mut state = entry.lock();
            let now = now_nanos();
            let created = state.created_at;
            let mut condition = |kind: &'static str, holds: bool| {
                let (was, since) = state.transitions.entry(kind).or_insert((holds, now));
                if *was != holds {
                    *was = holds;
                    *since = now;
                }
                json!({
                    "type": kind,
                    "status": if holds { "True" } else { "False" },
                    "lastTransitionTime": status::timestamp(*since),
                })
            };
            let scheduled = json!({"type": "PodScheduled", "status": "True",
                "lastTransitionTime": status::timestamp(created)});
            vec![
                scheduled,
                condition("Initialized", conds.initialized),
                condition("ContainersReady", conds.containers_ready),
                condition("Ready", conds.containers_ready),
            ]
        };
        status.insert("conditions".into(), Value::Array(conditions));
        if let Some(message) = entry.lock().rejected.clone() {
            // Refused by the kubelet's admission: Failed, nothing started.
            status.insert("phase".into(), json!("Failed"));
            status.insert("reason".into(), json!("SysctlForbidden"));
            status.insert("message".into(), json!(message));
        }
        let mut pod = serde_json::to_value(&entry.pod).map_err(|e| Error::Parse {
            command: format!("pod {name}"),
            detail: e.to_string(),
        })?;
        pod["metadata"]["uid"] = json!(uid);
        pod["metadata"]["namespace"] = json!(entry.id.namespace);
        pod["status"] = Value::Object(status);
        serde_json::from_value(pod)
            .map(Some)
            .map_err(|e| Error::Parse {
                command: format!("pod {name}"),
                detail: format!("the computed status is not a v1 Pod status: {e}"),
            })
    }

    fn exec(
        &self,
        pod: &str,
        container: &str,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, Error> {
        let terminating = || {
            self.terminating
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(pod)
                .cloned()
        };
        let entry = self
            .entry(pod)
            .or_else(terminating)
            .ok_or_else(|| Error::NotFound(pod.to_string()))?;
        let id = {
            let spec = spec::spec(&entry.pod).map_err(Error::Other)?;
            let state = entry.lock();
            let index = |list: Option<&Vec<Container>>| {
                list.and_then(|l| l.iter().position(|c| c.name == container))
            };
            index(Some(&spec.containers))
                .and_then(|i| state.app[i].id.clone())
                .or_else(|| {
                    index(spec.init_containers.as_ref()).and_then(|i| state.init[i].id.clone())
                })
        };
        let id = id.ok_or_else(|| {
            Error::Other(format!("container {container} of pod {pod} is not running"))
        })?;
        let out = self.client.exec_sync(&id, argv, timeout)?;
        Ok(ExecOutput {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            exit_code: out.exit_code,
        })
    }

    fn delete_pod(&self, name: &str) -> Result<(), Error> {
        self.delete(name, 0)
    }

    fn delete_pod_with_grace(&self, name: &str, seconds: u32) -> Result<(), Error> {
        self.delete(name, seconds)
    }

    fn leftovers(&self) -> Vec<String> {
        crate::runtime::settled_leftovers(|| self.leftovers_now())
    }
}

impl Drop for Cri {
    /// Deletes what a failed run left, then the cgroup roots it created.
    fn drop(&mut self) {
        let names: Vec<String> = self.pods().keys().cloned().collect();
        for name in names {
            let _ = self.delete(&name, 0);
        }
        for root in &self.new_cgroup_roots {
            // rmdir of a cgroup only succeeds when it has no children or tasks.
            let _ = std::fs::remove_dir(root);
        }
    }
}

/// `/sys/fs/cgroup/<hierarchy>/<root>` for every mounted hierarchy.
fn cgroup_roots(root: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path().join(root))
        .collect();
    // On a unified (v2) host the hierarchy is /sys/fs/cgroup itself.
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        dirs.push(Path::new("/sys/fs/cgroup").join(root));
    }
    dirs.sort();
    dirs
}

/// The node's IP as kubelet picks it: the IPv4 address of the interface
/// the default route leaves by (read from /proc/net/route, no packet sent),
/// else the first IPv4 address that is not loopback.
fn host_ip() -> Option<String> {
    let routes = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let default_iface = routes.lines().skip(1).find_map(|l| {
        let mut f = l.split_whitespace();
        let iface = f.next()?;
        (f.next()? == "00000000").then(|| iface.to_string())
    });
    let addresses = node_addresses().ok()?;
    let v4: Vec<_> = addresses
        .iter()
        .filter(|(_, ip)| ip.is_ipv4() && !ip.is_loopback())
        .collect();
    v4.iter()
        .find(|(name, _)| default_iface.as_deref() == Some(name.as_str()))
        .or(v4.first())
        .map(|(_, ip)| ip.to_string())
}

/// A pod UID, as the API server would assign one.
fn new_uid() -> Result<String, Error> {
    std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .map(|s| s.trim().to_string())
        .map_err(|e| Error::Other(format!("cannot make a pod UID: {e}")))
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The node's memory in bytes (MemTotal), for Burstable oom_score_adj.
fn node_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().find_map(|l| {
                l.strip_prefix("MemTotal:")
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
        })
        .map(|kib| kib * 1024)
        .unwrap_or(1 << 30)
}

/// The text of a CRI-format log (`TIME STREAM P|F TEXT` per record): one
/// line per full record, partial (`P`) records joined to the next.
fn cri_log_text(raw: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut partial = String::new();
    for record in raw.lines() {
        let mut parts = record.splitn(4, ' ');
        let (_, _, tag) = (parts.next(), parts.next(), parts.next());
        let text = parts.next().unwrap_or("");
        partial.push_str(text);
        if tag != Some("P") {
            out.push(std::mem::take(&mut partial));
        }
    }
    out
}

#[cfg(test)]
mod log_tests {
    #[test]
    fn cri_log_records_become_lines() {
        let raw = "2024-01-01T00:00:00Z stdout F one\n\
                   2024-01-01T00:00:00Z stderr P tw\n\
                   2024-01-01T00:00:00Z stderr F o\n";
        assert_eq!(super::cri_log_text(raw), ["one", "two"]);
    }
}
