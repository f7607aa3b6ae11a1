//! The pod worker: the part of a kubelet that drives one pod through a CRI
//! runtime. It runs the sandbox, then the init containers one at a time,
//! each to success, then the app containers, and restarts containers as
//! `restartPolicy` says with a doubling back-off, until the pod is deleted.
//!
//! The runtime has no notion of init order, restart policy or image
//! failures: those live here and in the records the status is built from.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Container, Pod};

use super::client::Client;
use super::spec::{self, PodIdentity};
use super::status::{ContainerRecord, Terminated, Waiting};

/// The container's imagePullPolicy, or the API server's default for it:
/// Always for `:latest` or no tag (and no digest), else IfNotPresent.
fn pull_policy(c: &Container) -> String {
    if let Some(policy) = &c.image_pull_policy {
        return policy.clone();
    }
    let image = c.image.as_deref().unwrap_or_default();
    let name = image.rsplit('/').next().unwrap_or(image);
    let latest =
        !image.contains('@') && name.split_once(':').is_none_or(|(_, tag)| tag == "latest");
    if latest { "Always" } else { "IfNotPresent" }.into()
}

/// How often the worker looks at its containers.
const TICK: Duration = Duration::from_millis(100);

/// Restart and pull back-off: kubelet starts at 10 s and caps at 5 min; the
/// suite waits seconds, not minutes, so this adapter is quicker.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

/// What the worker and the status readers share about one pod.
#[derive(Debug)]
pub struct PodState {
    /// Why the kubelet's admission refused the pod (a forbidden sysctl):
    /// then nothing is created and the pod is Failed.
    pub rejected: Option<String>,
    pub sandbox_id: Option<String>,
    /// Why the sandbox could not be created, while it could not.
    pub sandbox_error: Option<String>,
    pub pod_ip: Option<String>,
    pub init: Vec<ContainerRecord>,
    pub app: Vec<ContainerRecord>,
    /// Each condition's status and when it last changed (unix ns).
    pub transitions: HashMap<&'static str, (bool, i64)>,
    pub created_at: i64,
}

/// One pod the adapter created.
pub struct PodEntry {
    pub pod: Pod,
    pub id: PodIdentity,
    pub sandbox_config: cri::PodSandboxConfig,
    /// emptyDir volumes by name (host directories).
    pub volumes: HashMap<String, PathBuf>,
    /// Where the containers' subPaths are bind-mounted for the runtime.
    pub subpaths: PathBuf,
    /// The /etc/hosts file written for the pod and mounted into each container.
    pub etc_hosts: PathBuf,
    pub state: Mutex<PodState>,
    pub stop: AtomicBool,
    pub node_memory: u64,
    /// The node's address: `status.hostIP`, and the pod IP of a
    /// hostNetwork pod (the runtime reports none for those).
    pub host_ip: Option<String>,
}

impl PodEntry {
    pub fn lock(&self) -> MutexGuard<'_, PodState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn host_network(&self) -> bool {
        self.pod.spec.as_ref().and_then(|s| s.host_network) == Some(true)
    }

    fn restart_policy(&self) -> &str {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref())
            .unwrap_or("Always")
    }

    fn containers(&self, kind: Kind) -> &[Container] {
        let Some(spec) = self.pod.spec.as_ref() else {
            return &[];
        };
        match kind {
            Kind::Init => spec.init_containers.as_deref().unwrap_or(&[]),
            Kind::App => &spec.containers,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Init,
    App,
}

/// A container's place in the records, and its back-off.
struct Slot {
    kind: Kind,
    index: usize,
    backoff: Duration,
    not_before: Instant,
}

/// Where one container stands after a tick.
#[derive(Debug, PartialEq, Eq)]
enum Progress {
    /// Not running yet (creating, pulling, backing off).
    NotStarted,
    Running,
    /// Ended and will not be restarted.
    Done(i32),
}

pub fn run(entry: Arc<PodEntry>, client: Arc<Client>, backoff: Backoff) {
    let worker = Worker {
        entry,
        client,
        backoff,
    };
    if worker.entry.lock().rejected.is_some() {
        return;
    }
    if worker.sandbox() {
        worker.containers();
    }
}

struct Worker {
    entry: Arc<PodEntry>,
    client: Arc<Client>,
    backoff: Backoff,
}

impl Worker {
    fn pause(&self) {
        std::thread::sleep(TICK);
    }

    /// Runs the sandbox, retrying with back-off; false once deleted.
    fn sandbox(&self) -> bool {
        let mut delay = self.backoff.base;
        loop {
            if self.entry.stopped() {
                return false;
            }
            match self
                .client
                .run_pod_sandbox(self.entry.sandbox_config.clone())
            {
                Ok(id) => {
                    let ip = self
                        .client
                        .pod_sandbox_status(&id)
                        .ok()
                        .flatten()
                        .and_then(|s| s.network)
                        .map(|n| n.ip)
                        .filter(|ip| !ip.is_empty())
                        .or_else(|| {
                            self.entry
                                .host_network()
                                .then(|| self.entry.host_ip.clone())
                                .flatten()
                        });
                    // The kubelet's hosts file, once the pod's IP is known.
                    let node_hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
                    let hosts =
                        super::kubelet::hosts_file(&self.entry.pod, ip.as_deref(), &node_hosts);
                    let written = self
                        .entry
                        .etc_hosts
                        .parent()
                        .map_or(Ok(()), std::fs::create_dir_all)
                        .and_then(|()| std::fs::write(&self.entry.etc_hosts, hosts));
                    let mut state = self.entry.lock();
                    if let Err(e) = written {
                        state.sandbox_error = Some(format!(
                            "cannot write {}: {e}",
                            self.entry.etc_hosts.display()
                        ));
                    }
                    state.sandbox_id = Some(id);
                    state.sandbox_error = None;
                    state.pod_ip = ip;
                    return true;
                }
                Err(e) => {
                    let message = format!("failed to create the pod sandbox: {e}");
                    let mut guard = self.entry.lock();
                    let state = &mut *guard;
                    state.sandbox_error = Some(message.clone());
                    for c in state.init.iter_mut().chain(state.app.iter_mut()) {
                        c.waiting = Some(Waiting::new("ContainerCreating", message.clone()));
                    }
                }
            }
            let until = Instant::now() + delay;
            while Instant::now() < until {
                if self.entry.stopped() {
                    return false;
                }
                self.pause();
            }
            delay = (delay * 2).min(self.backoff.max);
        }
    }

    fn containers(&self) {
        let slot = |kind, index| Slot {
            kind,
            index,
            backoff: self.backoff.base,
            not_before: Instant::now(),
        };
        // Init containers: one at a time, each until it succeeds.
        for index in 0..self.entry.containers(Kind::Init).len() {
            let mut s = slot(Kind::Init, index);
            loop {
                if self.entry.stopped() {
                    return;
                }
                match self.tick(&mut s) {
                    Progress::Done(0) => break,
                    // Failed for good (restartPolicy Never): the pod has failed.
                    Progress::Done(_) => return self.idle(),
                    _ => self.pause(),
                }
            }
        }
        let mut slots: Vec<Slot> = (0..self.entry.containers(Kind::App).len())
            .map(|i| slot(Kind::App, i))
            .collect();
        while !self.entry.stopped() {
            for s in &mut slots {
                if self.entry.stopped() {
                    return;
                }
                self.tick(s);
            }
            self.pause();
        }
    }

    /// Nothing more to do until the pod is deleted.
    fn idle(&self) {
        while !self.entry.stopped() {
            self.pause();
        }
    }

    fn record(&self, s: &Slot) -> ContainerRecord {
        let state = self.entry.lock();
        let list = match s.kind {
            Kind::Init => &state.init,
            Kind::App => &state.app,
        };
        list[s.index].clone()
    }

    fn update(&self, s: &Slot, f: impl FnOnce(&mut ContainerRecord)) {
        let mut state = self.entry.lock();
        let list = match s.kind {
            Kind::Init => &mut state.init,
            Kind::App => &mut state.app,
        };
        f(&mut list[s.index]);
    }

    fn back_off(&self, s: &mut Slot) -> Duration {
        let delay = s.backoff;
        s.not_before = Instant::now() + delay;
        s.backoff = (s.backoff * 2).min(self.backoff.max);
        delay
    }

    fn restarts_after(&self, kind: Kind, exit_code: i32) -> bool {
        match (kind, self.entry.restart_policy()) {
            // A succeeded init container has done its job.
            (Kind::Init, _) if exit_code == 0 => false,
            (_, "Never") => false,
            (_, "OnFailure") => exit_code != 0,
            _ => true,
        }
    }

    /// Moves one container one step: start it, or look at it and restart
    /// it when it ended and the policy says so.
    fn tick(&self, s: &mut Slot) -> Progress {
        let record = self.record(s);
        let Some(id) = record.id else {
            if Instant::now() >= s.not_before {
                self.start(s, record.restarts);
            }
            return Progress::NotStarted;
        };
        let status = match self.client.container_status(&id) {
            Ok(Some(status)) => status,
            // Gone or unreadable: look again next tick.
            _ => return Progress::NotStarted,
        };
        if status.state == cri::ContainerState::ContainerRunning as i32 {
            return Progress::Running;
        }
        if status.state != cri::ContainerState::ContainerExited as i32 {
            return Progress::NotStarted;
        }
        let ended = Terminated::from_cri(&status);
        if !self.restarts_after(s.kind, ended.exit_code) {
            return Progress::Done(ended.exit_code);
        }
        let delay = self.back_off(s);
        // The record first, then the removal: a status read in between
        // still finds the exited container, never a container that is gone.
        self.update(s, |r| {
            r.id = None;
            r.restarts += 1;
            r.last = Some(ended);
            r.waiting = Some(Waiting::new(
                "CrashLoopBackOff",
                format!("back-off {delay:?} restarting failed container"),
            ));
        });
        // Kubelet keeps the dead container for its logs; this adapter keeps
        // what the status needs and removes it, so nothing piles up.
        let _ = self.client.remove_container(&id);
        Progress::NotStarted
    }

    fn start(&self, s: &mut Slot, attempt: u32) {
        let c = &self.entry.containers(s.kind)[s.index];
        let image = c.image.clone().unwrap_or_default();
        let present = match self.client.image_present(&image) {
            Ok(present) => present,
            Err(e) => return self.failed_start(s, "ErrImagePull", e.to_string()),
        };
        let pull = match pull_policy(c).as_str() {
            "Always" => true,
            "Never" => false,
            _ => !present,
        };
        if !pull && !present {
            // The kubelet does not try to pull: the container waits until
            // the image appears, looked for again after the back-off.
            self.back_off(s);
            self.update(s, |r| {
                r.waiting = Some(Waiting::new(
                    "ErrImageNeverPull",
                    format!("container image {image:?} is not present with pull policy of Never"),
                ));
            });
            return;
        }
        if pull {
            // The worker waits for the pull as the kubelet's start does.
            if let Err(e) = self.client.pull_image(&image, &self.entry.sandbox_config) {
                let delay = self.back_off(s);
                self.update(s, |r| {
                    let reason = match r.waiting.as_ref().map(|w| w.reason.as_str()) {
                        Some("ErrImagePull" | "ImagePullBackOff") => "ImagePullBackOff",
                        _ => "ErrImagePull",
                    };
                    r.waiting = Some(Waiting::new(
                        reason,
                        format!("pulling image {image:?}: {e}; next try in {delay:?}"),
                    ));
                });
                return;
            }
        }
        // The kubelet refuses runAsNonRoot itself: the runtime does not.
        if let Some(pod_spec) = self.entry.pod.spec.as_ref() {
            let user = match self.client.image_user(&image) {
                Ok(u) => u.unwrap_or_default(),
                Err(e) => return self.failed_start(s, "CreateContainerConfigError", e.to_string()),
            };
            if let Err(e) = spec::verify_run_as_non_root(pod_spec, c, user.0, &user.1) {
                return self.failed_start(s, "CreateContainerConfigError", e);
            }
        }
        let sandbox_id = self.entry.lock().sandbox_id.clone().unwrap_or_default();
        let subpaths = match self.prepare_subpaths(c, attempt) {
            Ok(m) => m,
            Err(e) => return self.failed_start(s, "CreateContainerConfigError", e),
        };
        let mut config = match spec::container_config(
            &self.entry.pod,
            &self.entry.id,
            c,
            attempt,
            &self.entry.volumes,
            &subpaths,
            self.entry.node_memory,
        ) {
            Ok(config) => config,
            Err(e) => return self.failed_start(s, "CreateContainerConfigError", e),
        };
        // The kubelet mounts its hosts file unless the container mounts one.
        if !config
            .mounts
            .iter()
            .any(|m| m.container_path == "/etc/hosts")
        {
            config.mounts.push(cri::Mount {
                container_path: "/etc/hosts".into(),
                host_path: self.entry.etc_hosts.to_string_lossy().into_owned(),
                ..Default::default()
            });
        }
        let id = match self.client.create_container(
            &sandbox_id,
            config,
            self.entry.sandbox_config.clone(),
        ) {
            Ok(id) => id,
            Err(e) => return self.failed_start(s, "CreateContainerError", e.to_string()),
        };
        if let Err(e) = self.client.start_container(&id) {
            let _ = self.client.remove_container(&id);
            return self.failed_start(s, "RunContainerError", e.to_string());
        }
        self.update(s, |r| {
            r.id = Some(id);
            r.waiting = None;
        });
    }

    /// Each subPath of the container, opened beneath its volume and
    /// bind-mounted where the runtime mounts it from, by mount index.
    fn prepare_subpaths(
        &self,
        c: &k8s_openapi::api::core::v1::Container,
        attempt: u32,
    ) -> Result<HashMap<usize, PathBuf>, String> {
        let mut out = HashMap::new();
        for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
            let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) else {
                continue;
            };
            let Some(volume) = self.entry.volumes.get(&m.name) else {
                continue; // container_config names the missing volume
            };
            let at = self
                .entry
                .subpaths
                .join(format!("{}-{attempt}-{i}", c.name));
            super::subpath::prepare(volume, sub, &at).map_err(|e| {
                format!(
                    "failed to prepare subPath for volumeMount {:?} of container {:?}: {e}",
                    m.name, c.name
                )
            })?;
            out.insert(i, at);
        }
        Ok(out)
    }

    fn failed_start(&self, s: &mut Slot, reason: &str, message: String) {
        self.back_off(s);
        self.update(s, |r| r.waiting = Some(Waiting::new(reason, message)));
    }
}
