//! The pod's shim: one supervisor process per pod (a re-exec of `podlab`)
//! that outlives the CLI, as a kubelet + containerd-shim would. It builds the
//! sandbox, starts the containers in their cgroups, reaps them, writes the
//! pod's status when it changes, and tears everything down on delete.
//!
//! The shim is single-threaded on purpose: it forks (through
//! `std::process::Command`) and its children join namespaces.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod, PodStatus};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::cgroups::{self, Limits};
use crate::config::Config;
use crate::container::{self, InitConfig, Process};
use crate::image::ImageStore;
use crate::lifecycle;
use crate::mutants::Mutant;
use crate::network;
use crate::quantity;
use crate::sandbox;
use crate::store::{self, now_time, Event, PodDir, PodKey, Store};
use crate::sys::{self, ProcessId};

/// The descriptor on which `podlab apply` listens for the pod's first outcome.
pub const NOTIFY_FD: i32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Sandbox(#[from] sandbox::Error),
    #[error(transparent)]
    Cgroups(#[from] cgroups::Error),
    #[error(transparent)]
    Image(#[from] crate::image::Error),
    #[error(transparent)]
    Container(#[from] container::Error),
    #[error(transparent)]
    Quantity(#[from] quantity::Error),
    #[error(transparent)]
    Security(#[from] crate::security::Error),
    #[error(transparent)]
    Network(#[from] crate::cni::Error),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// What the shim holds on the host, for `exec`, `describe` and `gc`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RuntimeState {
    pub uid: String,
    pub node: String,
    pub shim: Option<ProcessId>,
    pub pause: Option<ProcessId>,
    pub netns: Option<PathBuf>,
    pub share_pid: bool,
    pub cgroup_mode: Option<cgroups::Mode>,
    pub pod_cgroup: Option<String>,
    pub containers: BTreeMap<String, ContainerRuntime>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ContainerRuntime {
    pub pid: Option<ProcessId>,
    pub process: Process,
    pub cgroup: String,
    pub cgroup_paths: Vec<(String, PathBuf)>,
    pub limits: Limits,
    pub image: String,
    pub image_id: String,
    #[serde(default)]
    pub security: crate::security::Profile,
}

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
    let pids = get("pids")
        .map(|q| quantity::memory_bytes(&q))
        .transpose()?;
    if cpu.is_none() && memory.is_none() && pids.is_none() {
        return Ok(Limits::default());
    }
    Ok(Limits::from_millis(cpu, None, memory, pids))
}

/// The path of the running podlab binary, re-executed for shim, pause and init.
pub fn self_exe() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"))
}

/// Spawns `cmd` with the given descriptors placed at fixed numbers in the child.
pub fn spawn_with_fds(
    cmd: &mut Command,
    fds: &[(i32, i32)],
) -> std::io::Result<std::process::Child> {
    let fds = fds.to_vec();
    // SAFETY: the closure only makes raw syscalls (fcntl, dup2) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // Move every source above the targets first, so one mapping cannot
            // clobber the source of another.
            let mut moved = Vec::with_capacity(fds.len());
            for &(src, dst) in &fds {
                let high = libc::fcntl(src, libc::F_DUPFD_CLOEXEC, 100);
                if high < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                moved.push((high, dst));
            }
            for (high, dst) in moved {
                if libc::dup2(high, dst) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    cmd.spawn()
}

struct Ctr {
    spec: Container,
    leaf: Option<cgroups::Leaf>,
    pid: Option<i32>,
    started: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    oom_base: u64,
    status: ContainerStatus,
    restart_at: Option<Instant>,
    backoff: Duration,
}

pub struct Shim {
    config: Config,
    store: Store,
    dir: PodDir,
    pod: Pod,
    uid: String,
    state: RuntimeState,
    status: PodStatus,
    written: Option<PodStatus>,
    cgroups: cgroups::Manager,
    pod_cgroup: Option<cgroups::PodCgroup>,
    ctrs: Vec<Ctr>,
    notify: Option<File>,
    mutant: Option<Mutant>,
}

/// Entry point of `podlab __shim NAMESPACE NAME`.
pub fn shim_main(config: Config, key: PodKey) -> i32 {
    // SAFETY: `podlab apply` passes the notify pipe at NOTIFY_FD.
    let notify = unsafe { File::from_raw_fd(NOTIFY_FD) };
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let result = signal_fd().and_then(|sigfd| {
        let mut shim = Shim::new(config, key, notify)?;
        match shim.run(&sigfd) {
            Ok(()) => Ok(()),
            // Like a kubelet whose sandbox cannot be created, the shim keeps
            // the pod Pending with the reason, and waits to be deleted.
            Err(e) => {
                shim.fail(&e.to_string());
                shim.wait_for_delete(&sigfd)
            }
        }
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("podlab shim: {e}");
            1
        }
    }
}

/// Signals arrive through a signalfd, so the shim needs no handlers and no
/// sleeps: it waits on one descriptor with a timeout.
fn signal_fd() -> Result<SignalFd, Error> {
    let mut mask = SigSet::empty();
    for s in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT] {
        mask.add(s);
    }
    mask.thread_block()
        .map_err(|e| Error::Other(format!("block signals: {e}")))?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| Error::Other(format!("signalfd: {e}")))
}

impl Shim {
    fn new(config: Config, key: PodKey, notify: File) -> Result<Shim, Error> {
        let store = Store::open(&config.root)?;
        let dir = store.get(&key)?;
        let pod = dir.read_pod()?;
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let status = dir
            .read_status()?
            .unwrap_or_else(|| lifecycle::initial_status(&now_time()));
        let ctrs = pod
            .spec
            .as_ref()
            .map(|s| s.containers.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|spec| Ctr {
                status: ContainerStatus {
                    name: spec.name.clone(),
                    image: spec.image.clone().unwrap_or_default(),
                    state: Some(lifecycle::waiting("ContainerCreating", None)),
                    started: Some(false),
                    ..Default::default()
                },
                spec,
                leaf: None,
                pid: None,
                started: None,
                oom_base: 0,
                restart_at: None,
                backoff: config.backoff_base,
            })
            .collect();
        let share_pid = pod
            .spec
            .as_ref()
            .and_then(|s| s.share_process_namespace)
            .unwrap_or(false);
        let state = RuntimeState {
            uid: uid.clone(),
            node: network::node_name(),
            shim: ProcessId::of(std::process::id() as i32),
            share_pid,
            ..Default::default()
        };
        Ok(Shim {
            cgroups: cgroups::Manager::new()?,
            mutant: Mutant::from_env(),
            config,
            store,
            dir,
            pod,
            uid,
            state,
            status,
            written: None,
            pod_cgroup: None,
            ctrs,
            notify: Some(notify),
        })
    }

    fn event(&self, e: Event) {
        let _ = self.dir.record_event(&e);
    }

    fn notify(&mut self, line: &str) {
        if let Some(mut n) = self.notify.take() {
            let _ = writeln!(n, "{line}");
        }
    }

    fn save_status(&mut self) -> Result<(), Error> {
        self.status.container_statuses = Some(self.ctrs.iter().map(|c| c.status.clone()).collect());
        let expected = self.ctrs.len();
        let statuses: Vec<_> = self.ctrs.iter().map(|c| c.status.clone()).collect();
        let mut phase = lifecycle::phase(lifecycle::restart_policy(&self.pod), &statuses, expected);
        if self.mutant == Some(Mutant::EarlyRunning) && self.state.pause.is_some() {
            phase = lifecycle::RUNNING;
        }
        // A pod whose sandbox died stays Failed: its containers lost the
        // namespaces the pod promised them.
        if self.status.reason.as_deref() == Some("SandboxDied") {
            phase = lifecycle::FAILED;
            self.ctrs.iter_mut().for_each(|c| c.status.ready = false);
            self.status.container_statuses =
                Some(self.ctrs.iter().map(|c| c.status.clone()).collect());
        }
        self.status.phase = Some(phase.into());
        let now = now_time();
        let all_ready = self.ctrs.iter().all(|c| c.status.ready);
        let reason = (!all_ready).then_some("ContainersNotReady");
        lifecycle::set_condition(&mut self.status, "Initialized", true, None, &now);
        lifecycle::set_condition(&mut self.status, "ContainersReady", all_ready, reason, &now);
        lifecycle::set_condition(&mut self.status, "Ready", all_ready, reason, &now);
        if self.written.as_ref() != Some(&self.status) {
            self.dir.write_status(&self.status)?;
            self.written = Some(self.status.clone());
        }
        Ok(())
    }

    fn save_state(&self) -> Result<(), Error> {
        Ok(self.dir.write_runtime(&self.state)?)
    }

    fn run(&mut self, sigfd: &SignalFd) -> Result<(), Error> {
        self.status.start_time = Some(now_time());
        self.status.host_ip = network::host_ip();
        self.status.host_ips = self
            .status
            .host_ip
            .clone()
            .map(|ip| vec![k8s_openapi::api::core::v1::HostIP { ip }]);
        self.save_status()?;
        self.create_sandbox()?;
        for i in 0..self.ctrs.len() {
            self.start_container(i)?;
        }
        self.save_status()?;
        let phase = self.status.phase.clone().unwrap_or_default();
        if phase == lifecycle::RUNNING
            || phase == lifecycle::SUCCEEDED
            || phase == lifecycle::FAILED
        {
            self.notify(&phase);
        } else {
            let why = lifecycle::display_status(&self.pod, &self.status);
            self.notify(&format!("{phase} {why}"));
        }

        loop {
            let next = self.ctrs.iter().filter_map(|c| c.restart_at).min();
            let timeout = next.map(|t| t.saturating_duration_since(Instant::now()));
            sys::wait_readable(sigfd, timeout).map_err(io("wait for signals"))?;
            let mut terminate = false;
            while let Ok(Some(info)) = sigfd.read_signal() {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGCHLD) => self.reap()?,
                    Ok(Signal::SIGTERM) | Ok(Signal::SIGINT) => terminate = true,
                    _ => {}
                }
            }
            if terminate {
                return self.terminate(sigfd);
            }
            let now = Instant::now();
            for i in 0..self.ctrs.len() {
                if self.ctrs[i].restart_at.is_some_and(|t| t <= now) {
                    self.ctrs[i].restart_at = None;
                    self.ctrs[i].status.restart_count += 1;
                    self.start_container(i)?;
                }
            }
            self.save_status()?;
        }
    }

    fn create_sandbox(&mut self) -> Result<(), Error> {
        let spec = self.pod.spec.clone().unwrap_or_default();
        let host_network = spec.host_network.unwrap_or(false);
        let limits = pod_limits(&self.pod)?;
        let pod_cg = self.cgroups.create_pod(&self.uid, &limits)?;
        self.state.cgroup_mode = Some(self.cgroups.mode());
        self.state.pod_cgroup = Some(format!("podlab/pod-{}", self.uid));
        let pause_leaf = pod_cg.create_leaf("pause", &Limits::default())?;
        self.pod_cgroup = Some(pod_cg);

        let netns = if host_network {
            None
        } else {
            Some(sandbox::create_netns(&self.uid)?)
        };
        self.state.netns = netns.clone();
        self.save_state()?;

        let mut pod_ip = None;
        if let Some(ns) = &netns {
            let attached = network::attach(&self.config, &self.uid, ns)?;
            pod_ip = attached.ips.first().cloned();
            if self.mutant == Some(Mutant::WrongPodIp) {
                pod_ip = pod_ip.map(|ip| wrong_ip(&ip));
            }
            self.status.pod_ip = pod_ip.clone();
            self.status.pod_ips = Some(
                attached
                    .ips
                    .iter()
                    .map(|ip| k8s_openapi::api::core::v1::PodIP { ip: ip.clone() })
                    .collect(),
            );
        } else {
            // hostNetwork: the pod's IP is the node's, as in Kubernetes.
            self.status.pod_ip = self.status.host_ip.clone();
            self.status.pod_ips = self.status.host_ips.as_ref().map(|h| {
                h.iter()
                    .map(|x| k8s_openapi::api::core::v1::PodIP { ip: x.ip.clone() })
                    .collect()
            });
        }
        sandbox::mount_shm(&self.dir.shm_dir())?;
        let hostname = if host_network {
            network::node_name()
        } else {
            spec.hostname
                .clone()
                .or_else(|| self.pod.metadata.name.clone())
                .unwrap_or_default()
        };
        sandbox::write_etc_files(&self.dir.etc_dir(), &hostname, pod_ip.as_deref())?;

        let (ready_r, ready_w) = sandbox::pipe()?;
        let mut cmd = Command::new(self_exe());
        cmd.arg("__pause");
        if let Some(n) = &netns {
            cmd.arg("--netns").arg(n);
        }
        cmd.arg("--hostname").arg(&hostname);
        if self.state.share_pid {
            cmd.arg("--share-pid");
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let mut child = spawn_with_fds(&mut cmd, &[(ready_w.as_raw_fd(), sandbox::READY_FD)])
            .map_err(io("spawn pause"))?;
        drop(ready_w);
        let report = read_all(ready_r)?;
        if self.state.share_pid {
            // The reported pid is the pause's own child (PID 1 of the pod),
            // reparented to us; the process we spawned has already exited.
            let _ = child.wait();
        }
        let pid: i32 = match report.trim().parse() {
            Ok(p) => p,
            Err(_) => {
                return Err(Error::Other(format!(
                    "pause failed: {}",
                    report.trim().trim_start_matches("error ")
                )))
            }
        };
        pause_leaf.add_process(pid)?;
        self.state.pause = ProcessId::of(pid);
        self.save_state()?;
        // The child handle is dropped without waiting: the loop reaps it.
        std::mem::forget(child);
        lifecycle::set_condition(
            &mut self.status,
            "PodReadyToStartContainers",
            true,
            None,
            &now_time(),
        );
        Ok(())
    }

    fn start_container(&mut self, i: usize) -> Result<(), Error> {
        let spec = self.ctrs[i].spec.clone();
        let name = spec.name.clone();
        let image_ref = spec.image.clone().unwrap_or_default();
        let images = ImageStore::open(&self.config.image_root)?;
        let image = match images.prepare(&image_ref) {
            Ok(img) => img,
            Err(e) => {
                let msg = format!("Failed to pull image \"{image_ref}\": {e}");
                self.ctrs[i].status.state =
                    Some(lifecycle::waiting("ErrImagePull", Some(msg.clone())));
                self.event(Event::warning("Failed", "kubelet", msg));
                return Ok(());
            }
        };
        if self.ctrs[i].status.restart_count == 0 {
            self.event(Event::normal(
                "Pulled",
                "kubelet",
                format!("Container image \"{image_ref}\" already present on machine"),
            ));
        }
        let mut process = Process::resolve(&spec, &image.config)?;
        let hostname = fs::read_to_string(self.dir.etc_dir().join("hostname")).unwrap_or_default();
        process.env.push(format!("HOSTNAME={}", hostname.trim()));

        let security = crate::security::Profile::from_context(spec.security_context.as_ref())?;
        let mut limits = container_limits(&spec, self.config.default_pids)?;
        self.mutant_limits(&mut limits);
        let pod_cg = self
            .pod_cgroup
            .as_ref()
            .ok_or_else(|| Error::Other("pod cgroup missing".into()))?;
        let leaf_name = format!("ctr-{name}");
        let leaf = match &self.ctrs[i].leaf {
            Some(l) => l.clone(),
            None => pod_cg.create_leaf(&leaf_name, &limits)?,
        };
        self.ctrs[i].oom_base = leaf.oom_kill_count().unwrap_or(0);

        let cdir = self.dir.container_dir(&name);
        let (upper, work, rootfs) = (cdir.join("upper"), cdir.join("work"), cdir.join("rootfs"));
        // A restarted container starts from the image again, as in Kubernetes.
        let _ = fs::remove_dir_all(&upper);
        let _ = fs::remove_dir_all(&work);
        for d in [&upper, &work, &rootfs] {
            fs::create_dir_all(d).map_err(io(format!("mkdir {}", d.display())))?;
        }
        let pause_pid = self.state.pause.map(|p| p.pid).unwrap_or(0);
        let init = InitConfig {
            name: name.clone(),
            process: process.clone(),
            layers: image.layers.clone(),
            upper,
            work,
            rootfs,
            pause_pid,
            share_pid: self.state.share_pid,
            shm: self.dir.shm_dir(),
            etc: self.dir.etc_dir(),
            readonly_rootfs: spec
                .security_context
                .as_ref()
                .and_then(|s| s.read_only_root_filesystem)
                .unwrap_or(false),
            security: security.clone(),
            private_shm: self.mutant == Some(Mutant::PrivateShm),
            private_uts: self.mutant == Some(Mutant::NoSharedUts),
            private_ipc: self.mutant == Some(Mutant::NoSharedIpc),
            private_net: self.mutant == Some(Mutant::NoSharedNet),
        };
        let config_path = cdir.join("config.json");
        store::write_json_atomic(&config_path, &init)?;

        let log_path = self.dir.log_file(&name);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io(format!("open {}", log_path.display())))?;
        let log2 = log.try_clone().map_err(io("dup log"))?;
        let (report_r, report_w) = sandbox::pipe()?;
        let (go_r, go_w) = sandbox::pipe()?;
        let mut cmd = Command::new(self_exe());
        cmd.arg("__init")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        let child = spawn_with_fds(
            &mut cmd,
            &[
                (report_w.as_raw_fd(), container::REPORT_FD),
                (go_r.as_raw_fd(), container::GO_FD),
            ],
        )
        .map_err(io("spawn container init"))?;
        drop(report_w);
        drop(go_r);
        // Into the container's cgroup before it does anything: every process
        // it forks inherits the cgroup, and its limits hold from the start.
        leaf.add_process(child.id() as i32)?;
        let mut go = File::from(go_w);
        let _ = go.write_all(b"g");
        drop(go);
        let report = read_all(report_r)?;
        std::mem::forget(child); // reaped by the loop

        let mut pid = None;
        let mut error = None;
        for line in report.lines() {
            if let Some(p) = line.strip_prefix("pid ") {
                pid = p.trim().parse::<i32>().ok();
            } else if let Some(e) = line.strip_prefix("error ") {
                error = Some(e.to_string());
            }
        }
        let now = now_time();
        let c = &mut self.ctrs[i];
        c.leaf = Some(leaf.clone());
        c.pid = pid;
        c.status.image_id = image.digest.clone();
        c.status.container_id = Some(format!("podlab://{}-{name}", self.uid));
        match (&pid, error) {
            (Some(_), None) => {
                c.started = Some(now.clone());
                c.status.state = Some(lifecycle::running(&now));
                c.status.ready = true;
                c.status.started = Some(true);
            }
            (_, err) => {
                let msg = err.unwrap_or_else(|| "container init exited without reporting".into());
                c.status.state = Some(lifecycle::terminated(
                    128,
                    None,
                    false,
                    Some(now.clone()),
                    &now,
                    Some(msg.clone()),
                ));
                if let Some(t) = c.status.state.as_mut().and_then(|s| s.terminated.as_mut()) {
                    t.reason = Some("StartError".into());
                }
                c.status.ready = false;
                // Its exit is already accounted for: the reaper must not
                // overwrite the StartError.
                c.pid = None;
                self.event(Event::warning(
                    "Failed",
                    "kubelet",
                    format!("Error: failed to start container \"{name}\": {msg}"),
                ));
                self.schedule_restart(i, 128);
            }
        }
        let c = &self.ctrs[i];
        self.state.containers.insert(
            name.clone(),
            ContainerRuntime {
                pid: c.pid.and_then(ProcessId::of),
                process,
                cgroup: leaf.relative_path(),
                cgroup_paths: leaf.paths(),
                limits,
                image: image.reference.clone(),
                image_id: image.digest.clone(),
                security,
            },
        );
        self.save_state()?;
        if c.pid.is_some() && c.status.ready {
            self.event(Event::normal(
                "Created",
                "kubelet",
                format!("Created container {name}"),
            ));
            self.event(Event::normal(
                "Started",
                "kubelet",
                format!("Started container {name}"),
            ));
        }
        Ok(())
    }

    fn mutant_limits(&self, limits: &mut Limits) {
        match self.mutant {
            Some(Mutant::NoMemoryLimit) => limits.memory_bytes = None,
            Some(Mutant::NoPidsLimit) => limits.pids_max = None,
            Some(Mutant::NoCpuLimit) => limits.cpu_quota_us = None,
            _ => {}
        }
    }

    /// Reaps every exited child; container exits become terminated states.
    fn reap(&mut self) -> Result<(), Error> {
        loop {
            let status =
                match nix::sys::wait::waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) | Err(_) => return Ok(()),
                    Ok(s) => s,
                };
            let (pid, code, signal) = match status {
                WaitStatus::Exited(p, c) => (p.as_raw(), c, None),
                WaitStatus::Signaled(p, s, _) => (p.as_raw(), 128 + s as i32, Some(s as i32)),
                _ => continue,
            };
            if self.state.pause.is_some_and(|p| p.pid == pid) {
                self.event(Event::warning(
                    "SandboxChanged",
                    "kubelet",
                    "Pod sandbox died: the pause process exited",
                ));
                self.status.reason = Some("SandboxDied".into());
                self.status.message =
                    Some("the pause process holding the pod's namespaces exited".into());
                // No restarts into namespaces that are gone.
                self.ctrs.iter_mut().for_each(|c| c.restart_at = None);
                continue;
            }
            let Some(i) = self.ctrs.iter().position(|c| c.pid == Some(pid)) else {
                continue;
            };
            let now = now_time();
            let c = &mut self.ctrs[i];
            c.pid = None;
            let oom = c
                .leaf
                .as_ref()
                .and_then(|l| l.oom_kill_count().ok())
                .is_some_and(|n| n > c.oom_base);
            let state = lifecycle::terminated(
                code,
                signal,
                oom && signal == Some(9),
                c.started.clone(),
                &now,
                None,
            );
            if c.status
                .state
                .as_ref()
                .is_some_and(|s| s.terminated.is_none())
            {
                c.status.state = Some(state);
            }
            c.status.ready = false;
            self.schedule_restart(i, code);
        }
    }

    /// Applies the restart policy with the kubelet's back-off: the delay
    /// starts at the configured base and doubles up to five minutes.
    fn schedule_restart(&mut self, i: usize, code: i32) {
        let policy = lifecycle::restart_policy(&self.pod).to_string();
        let sandbox_lost = self.status.reason.as_deref() == Some("SandboxDied");
        let restart = !sandbox_lost && (policy == "Always" || (policy == "OnFailure" && code != 0));
        let c = &mut self.ctrs[i];
        if !restart {
            return;
        }
        let delay = c.backoff;
        c.backoff = (c.backoff * 2).min(Duration::from_secs(300));
        c.restart_at = Some(Instant::now() + delay);
        let last = c.status.state.take();
        c.status.last_state = last;
        let msg = format!(
            "back-off {}s restarting failed container={}",
            delay.as_secs(),
            c.spec.name
        );
        c.status.state = Some(lifecycle::waiting("CrashLoopBackOff", Some(msg)));
    }

    /// Graceful delete: SIGTERM, wait for the grace period, then kill
    /// everything and release the pod's host resources.
    fn terminate(&mut self, sigfd: &SignalFd) -> Result<(), Error> {
        let pod = self.dir.read_pod().unwrap_or_else(|_| self.pod.clone());
        let grace = pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| {
                pod.spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30)
            .max(0) as u64;
        self.ctrs.iter_mut().for_each(|c| c.restart_at = None);
        for c in &self.ctrs {
            if let Some(pid) = c.pid {
                self.event(Event::normal(
                    "Killing",
                    "kubelet",
                    format!("Stopping container {}", c.spec.name),
                ));
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(grace);
        while self.ctrs.iter().any(|c| c.pid.is_some()) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            sys::wait_readable(sigfd, Some(left)).map_err(io("wait for containers"))?;
            while let Ok(Some(_)) = sigfd.read_signal() {}
            self.reap()?;
            self.ctrs.iter_mut().for_each(|c| c.restart_at = None);
        }
        let errors = release(&self.config, &self.cgroups, &self.dir, &self.uid);
        if !errors.is_empty() {
            return Err(Error::Other(errors.join("; ")));
        }
        let lock = self.store.lock()?;
        self.store.remove(&lock, &self.dir.key)?;
        Ok(())
    }

    /// Records a failure the shim cannot recover from, releases what the pod
    /// holds on the host and tells a waiting `apply`.
    fn fail(&mut self, message: &str) {
        self.event(Event::warning(
            "FailedCreatePodSandBox",
            "kubelet",
            message.to_string(),
        ));
        let _ = release(&self.config, &self.cgroups, &self.dir, &self.uid);
        let now = now_time();
        self.status.phase = Some(lifecycle::PENDING.into());
        self.status.reason = None;
        self.status.message = Some(format!("Failed to create pod sandbox: {message}"));
        lifecycle::set_condition(
            &mut self.status,
            "PodReadyToStartContainers",
            false,
            Some("FailedCreatePodSandBox"),
            &now,
        );
        let _ = self.dir.write_status(&self.status);
        self.notify(&format!("Pending Failed to create pod sandbox: {message}"));
    }

    /// After a failure: nothing runs; the next SIGTERM is the pod's delete.
    fn wait_for_delete(&mut self, sigfd: &SignalFd) -> Result<(), Error> {
        loop {
            sys::wait_readable(sigfd, None).map_err(io("wait for signals"))?;
            while let Ok(Some(info)) = sigfd.read_signal() {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGTERM) | Ok(Signal::SIGINT) => return self.terminate(sigfd),
                    _ => {
                        // Reap whatever exited (e.g. a pause that failed).
                        while let Ok(ws) =
                            nix::sys::wait::waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG))
                        {
                            if ws == WaitStatus::StillAlive {
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The `wrong-pod-ip` mutant: report a neighbouring address.
fn wrong_ip(ip: &str) -> String {
    match ip.parse::<std::net::Ipv4Addr>() {
        Ok(v4) => std::net::Ipv4Addr::from(u32::from(v4).wrapping_add(1)).to_string(),
        Err(_) => ip.to_string(),
    }
}

fn read_all(fd: OwnedFd) -> Result<String, Error> {
    let mut s = String::new();
    File::from(fd)
        .read_to_string(&mut s)
        .map_err(io("read helper report"))?;
    Ok(s)
}

/// Releases every host resource of a pod, in an order that is safe to repeat:
/// processes (through the cgroups), the pod's /dev/shm, its network
/// namespace, its cgroups. Returns the errors; an empty list means clean.
pub fn release(
    config: &Config,
    cgroups: &cgroups::Manager,
    dir: &PodDir,
    uid: &str,
) -> Vec<String> {
    let mut errors = Vec::new();
    if uid.is_empty() {
        return errors;
    }
    // The cgroups hold every process of the pod; the recorded pids are
    // killed too, in case a process never made it into its cgroup.
    if let Ok(Some(state)) = dir.read_runtime::<RuntimeState>() {
        let pids = state
            .pause
            .into_iter()
            .chain(state.containers.values().filter_map(|c| c.pid));
        for p in pids.filter(|p| p.is_alive()) {
            let _ = nix::sys::signal::kill(Pid::from_raw(p.pid), Signal::SIGKILL);
        }
    }
    if let Err(e) = cgroups.pod(uid).destroy() {
        errors.push(e.to_string());
    }
    if let Err(e) = sandbox::unmount_shm(&dir.shm_dir()) {
        errors.push(e.to_string());
    }
    // DEL before the namespace goes: the plugins release the veth and the
    // IP lease (DEL tolerates a netns that is already gone).
    if let Err(e) = network::detach(config, uid, &sandbox::netns_path(uid)) {
        errors.push(e.to_string());
    }
    if let Err(e) = sandbox::remove_netns(uid) {
        errors.push(e.to_string());
    }
    errors
}

/// Spawns the pod's shim, detached in its own session, with its output in
/// the pod's `shim.log`. Returns the shim's identity and the notify pipe.
pub fn spawn(config: &Config, dir: &PodDir) -> Result<(ProcessId, File), Error> {
    let (notify_r, notify_w) = sandbox::pipe()?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.shim_log())
        .map_err(io("open shim log"))?;
    let log2 = log.try_clone().map_err(io("dup shim log"))?;
    let mut cmd = Command::new(self_exe());
    cmd.arg("--root")
        .arg(&config.root)
        .arg("--image-root")
        .arg(&config.image_root);
    if let Some(dir) = &config.cni_conf_dir {
        cmd.arg("--cni-conf-dir").arg(dir);
    }
    cmd.arg("__shim")
        .arg(&dir.key.namespace)
        .arg(&dir.key.name)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    // SAFETY: setsid is a raw syscall; it detaches the shim from the CLI's
    // session so a terminal hangup does not reach the pod.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let child =
        spawn_with_fds(&mut cmd, &[(notify_w.as_raw_fd(), NOTIFY_FD)]).map_err(io("spawn shim"))?;
    drop(notify_w);
    let pid = child.id() as i32;
    // The CLI exits soon; the shim is adopted by init and needs no reaping here.
    std::mem::forget(child);
    let id = ProcessId::of(pid)
        .ok_or_else(|| Error::Other("shim exited at once; see shim.log".into()))?;
    Ok((id, File::from(notify_r)))
}

/// Where `podlab apply` records the shim it started.
pub fn shim_file(dir: &PodDir) -> PathBuf {
    dir.dir.join("shim.json")
}

pub fn read_shim(dir: &PodDir) -> Option<ProcessId> {
    store::read_json_opt(&shim_file(dir)).ok().flatten()
}

pub fn is_shim_alive(dir: &PodDir) -> bool {
    read_shim(dir).is_some_and(|p| p.is_alive())
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
