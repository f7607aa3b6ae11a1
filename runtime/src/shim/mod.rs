//! The pod's shim: one supervisor process per pod (a re-exec of `podlab`)
//! that outlives the CLI, as a kubelet + containerd-shim would. It builds the
//! sandbox, starts the containers in their cgroups, reaps them, writes the
//! pod's status when it changes, and tears everything down on delete.
//!
//! The shim is single-threaded on purpose: it forks (through
//! `std::process::Command`) and its children join namespaces.
//!
//! This file holds the `Shim` and its event loop: `run` waits on a
//! signalfd with the nearest timer as its timeout, `sync` starts what the
//! pod's progress calls for, `tick` handles what became due. The rest is
//! one `impl Shim` block per concern:
//!
//! | file | owns |
//! |---|---|
//! | `pod_sandbox.rs` | pod cgroup, netns, pause, /dev/shm, emptyDir volumes; `release` |
//! | `start.rs` | starting a container; image and create errors; postStart; probes begin |
//! | `supervise.rs` | reaping, exits, OOM kills, restarts with back-off, sandbox death |
//! | `probes.rs` | probe and hook helper processes and their verdicts |
//! | `terminate.rs` | preStop, SIGTERM, SIGKILL; stop order; delete's grace period |
//! | `deadline.rs` | `activeDeadlineSeconds`: the pod fails with DeadlineExceeded |
//! | `status.rs` | the pod's status, the runtime record, apply's notification |
//! | `ctr.rs` | one container's state (`Ctr`) and its role in the pod |
//! | `limits.rs` | cgroup limits from `resources` |
//! | `update.rs` | a changed record (SIGHUP): new images restart, deadline, downward volumes |
//! | `spawn.rs` | re-executing podlab (shim, pause, init, helpers); `shim.json` |

use std::fs::File;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::cgroups;
use crate::config::Config;
use crate::container;
use crate::lifecycle;
use crate::mutants::Mutant;
use crate::network;
use crate::quantity;
use crate::sandbox;
use crate::store::{self, now_time, Event, PodDir, PodKey, Store};
use crate::sys::{self, ProcessId};

mod ctr;
mod deadline;
mod limits;
mod logpipe;
mod pod_sandbox;
mod probes;
mod spawn;
mod start;
mod status;
mod storage;
mod supervise;
mod terminate;
mod update;

pub use crate::container::{ContainerRuntime, RuntimeState};
use ctr::{Ctr, Role};
pub use limits::{container_limits, pod_limits};
pub use pod_sandbox::{release, release_volumes, volume_dir, volumes_mounted};
pub use spawn::{
    is_shim_alive, podlab_command, read_shim, schedule_and_start, shim_file, spawn, spawn_with_fds,
    start_bound, unblock_signals_on_exec,
};
use terminate::AFTER_HOOK;
pub use update::notify_update;

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
    #[error(transparent)]
    Scheduler(#[from] crate::scheduler::Error),
    #[error(transparent)]
    Sys(#[from] sys::Error),
    #[error(transparent)]
    Logs(#[from] crate::logs::Error),
    #[error(transparent)]
    Termination(#[from] crate::termination::Error),
    #[error("encode the request of a podlab helper")]
    HelperRequest(#[source] serde_json::Error),
    #[error("downwardAPI volume {volume:?}")]
    Downward {
        volume: String,
        source: crate::downward::Error,
    },
    #[error("{what}")]
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

/// The supervisor of one pod: what it was asked to run, what it holds on
/// the host, and the state of each container.
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
    /// The host-side mounts and unmounts of the pod's sandbox go through it.
    sys: &'static dyn sys::Sys,
    /// Init containers (in order), then app containers.
    ctrs: Vec<Ctr>,
    /// Every init container has completed (sidecars: started) once.
    initialized: bool,
    /// Deletion in progress: everything must be gone by this instant.
    terminating: Option<Instant>,
    /// The pod finished and the scheduler was told.
    released_requests: bool,
    /// When the next ephemeral-storage scan is due (none without limits).
    next_storage_scan: Option<Instant>,
    /// When `activeDeadlineSeconds` runs out (none without one).
    active_deadline: Option<Instant>,
    /// When the pod started on the node: deadlines count from it.
    run_started: Option<Instant>,
    notify: Option<File>,
    mutant: Option<Mutant>,
    /// The `delete-keeps-idle` mutant: the record goes a moment late.
    remove_late: bool,
}

/// Entry point of `podlab __shim NAMESPACE NAME`.
/// Where the logins of a pod's pull secrets wait for container
/// `container`'s pull helper (mode 0600; removed when the pull ends).
fn pull_logins_path(dir: &PodDir, container: &str) -> std::path::PathBuf {
    dir.dir
        .join("probes")
        .join(format!("{container}{PULL_LOGINS_SUFFIX}"))
}

const PULL_LOGINS_SUFFIX: &str = ".pull-logins.json";

/// Removes pull logins a shim that died left behind (for `podlab gc`);
/// one line per file removed.
pub fn remove_pull_logins(dir: &PodDir) -> Vec<String> {
    let probes = dir.dir.join("probes");
    let Ok(entries) = std::fs::read_dir(&probes) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .ends_with(PULL_LOGINS_SUFFIX)
        })
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .map(|e| format!("removed the pull logins {}", e.path().display()))
        .collect()
}

pub fn shim_main(config: Config, key: PodKey) -> i32 {
    // `podlab apply` passes the notify pipe at NOTIFY_FD.
    let notify = match crate::sys::inherited(NOTIFY_FD) {
        Ok(fd) => File::from(fd),
        Err(e) => {
            eprintln!("podlab shim: notify pipe: {}", crate::error::chain(&e));
            return 1;
        }
    };
    match claim(&config, &key) {
        Ok(true) => {}
        Ok(false) => {
            eprintln!(
                "podlab shim: not recorded as the shim of pod {key} (podlab apply died \
                 before recording it): exiting without running it"
            );
            return 0;
        }
        Err(e) => {
            eprintln!("podlab shim: {}", crate::error::chain(&e));
            return 1;
        }
    }
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let result = signal_fd().and_then(|sigfd| {
        let mut shim = Shim::new(config, key, notify)?;
        match shim.run(&sigfd) {
            Ok(()) => Ok(()),
            // Like a kubelet whose sandbox cannot be created, the shim keeps
            // the pod Pending with the reason, and waits to be deleted.
            Err(e) => {
                shim.fail(&crate::error::chain(&e));
                shim.wait_for_delete(&sigfd)
            }
        }
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("podlab shim: {}", crate::error::chain(&e));
            1
        }
    }
}

/// Whether `shim.json` names this process. The one who spawned the shim
/// records it there while holding the store lock; waiting for that lock
/// means waiting until it recorded us or died trying. A shim nobody recorded
/// would run a pod that delete cannot stop and gc would release under it,
/// so it runs nothing, and the pod is reported ApplyAbandoned.
fn claim(config: &Config, key: &PodKey) -> Result<bool, Error> {
    let store = Store::of(config)?;
    let _lock = store.lock()?;
    let dir = store.get(key)?;
    Ok(read_shim(&dir).is_some_and(|s| s.pid == std::process::id() as i32))
}

/// Signals arrive through a signalfd, so the shim needs no handlers and no
/// sleeps: it waits on one descriptor with a timeout.
fn signal_fd() -> Result<SignalFd, Error> {
    let mut mask = SigSet::empty();
    // SIGHUP: the pod's record changed (an update through the API).
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
    ] {
        mask.add(s);
    }
    mask.thread_block()
        .map_err(|e| io("block signals")(e.into()))?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| io("signalfd")(e.into()))
}

/// Go's duration format, as kubelet messages print back-offs (`10s`, `5m0s`).
fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs();
    let frac = if ms.is_multiple_of(1000) {
        String::new()
    } else {
        format!(".{:03}", ms % 1000)
            .trim_end_matches('0')
            .to_string()
    };
    match (secs / 3600, secs % 3600 / 60, secs % 60) {
        (0, 0, s) => format!("{s}{frac}s"),
        (0, m, s) => format!("{m}m{s}{frac}s"),
        (h, m, s) => format!("{h}h{m}m{s}{frac}s"),
    }
}

impl Shim {
    fn new(config: Config, key: PodKey, notify: File) -> Result<Shim, Error> {
        let store = Store::of(&config)?;
        let dir = store.get(&key)?;
        let mut pod = dir.read_pod()?;
        let mutant = Mutant::from_env();
        if mutant == Some(Mutant::RestartNeverIgnored) {
            if let Some(spec) = pod.spec.as_mut() {
                spec.restart_policy = Some("Always".into());
            }
        }
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let status = dir
            .read_status()?
            .unwrap_or_else(|| lifecycle::initial_status(&pod, &now_time()));
        let spec = pod.spec.clone().unwrap_or_default();
        let init = spec.init_containers.clone().unwrap_or_default();
        let has_init = !init.is_empty();
        let ctrs = init
            .into_iter()
            .map(|c| {
                let role = if lifecycle::is_sidecar(&c) {
                    Role::Sidecar
                } else {
                    Role::Init
                };
                Ctr::new(role, c, &config, has_init)
            })
            .chain(
                spec.containers
                    .into_iter()
                    .map(|c| Ctr::new(Role::App, c, &config, has_init)),
            )
            .collect();
        let share_pid =
            spec.share_process_namespace.unwrap_or(false) || mutant == Some(Mutant::SharedPid);
        let state = RuntimeState {
            uid: uid.clone(),
            node: network::node_name(),
            shim: ProcessId::of(std::process::id() as i32),
            share_pid,
            host_pid: spec.host_pid.unwrap_or(false) && mutant != Some(Mutant::HostPidIgnored),
            host_ipc: spec.host_ipc.unwrap_or(false),
            ..Default::default()
        };
        Ok(Shim {
            cgroups: cgroups::Manager::new()?,
            mutant,
            remove_late: false,
            config,
            store,
            dir,
            pod,
            uid,
            state,
            status,
            written: None,
            pod_cgroup: None,
            sys: &sys::Kernel,
            ctrs,
            initialized: false,
            terminating: None,
            released_requests: false,
            next_storage_scan: None,
            active_deadline: None,
            run_started: None,
            notify: Some(notify),
        })
    }

    fn event(&self, e: Event) {
        let _ = self.dir.record_event(&e);
    }

    /// `name_namespace(uid)`, as kubelet names a pod in its messages.
    fn pod_ref(&self) -> String {
        format!(
            "{}_{}({})",
            self.dir.key.name, self.dir.key.namespace, self.uid
        )
    }

    fn sandbox_lost(&self) -> bool {
        self.status.reason.as_deref() == Some("SandboxDied")
    }

    fn grace(&self) -> Duration {
        let secs = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30);
        Duration::from_secs(secs.max(0) as u64)
    }

    /// The pod's life: sandbox, volumes, then a loop that waits on the
    /// signalfd with the nearest of the pod's timers (restarts, retries,
    /// probes, hooks, grace periods) as its timeout.
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
        self.prepare_volumes()?;
        self.next_storage_scan = self.first_storage_scan();
        self.run_started = Some(Instant::now());
        self.active_deadline = self.first_deadline();

        loop {
            self.sync()?;
            self.save_status()?;
            if let Some(deadline) = self.terminating {
                // Past the grace period (and the two seconds kubelet adds
                // after a preStop hook) release() kills what is left.
                if !self.ctrs.iter().any(Ctr::running) || Instant::now() >= deadline + AFTER_HOOK {
                    self.pump_logs();
                    return self.finish_termination();
                }
            }
            let timeout = self
                .next_deadline()
                .map(|t| t.saturating_duration_since(Instant::now()));
            sys::wait_readable_any(sigfd, &self.log_fds(), timeout)
                .map_err(io("wait for signals and output"))?;
            self.pump_logs();
            let mut terminate = false;
            let mut updated = false;
            while let Ok(Some(info)) = sigfd.read_signal() {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGCHLD) => self.reap()?,
                    Ok(Signal::SIGTERM) | Ok(Signal::SIGINT) => terminate = true,
                    Ok(Signal::SIGHUP) => updated = true,
                    _ => {}
                }
            }
            if updated && self.terminating.is_none() {
                if let Err(e) = self.pod_updated() {
                    self.event(Event::warning(
                        "FailedUpdate",
                        "kubelet",
                        crate::error::chain(&e),
                    ));
                }
            }
            // Every exit is shown before anything restarts it.
            self.save_status()?;
            if terminate {
                self.begin_termination();
                // Report the deletion's generation as observed.
                self.save_status()?;
            }
            self.tick(Instant::now())?;
        }
    }

    /// The nearest instant something is due.
    fn next_deadline(&self) -> Option<Instant> {
        let mut all: Vec<Instant> = self
            .terminating
            .map(|d| d + AFTER_HOOK)
            .into_iter()
            .collect();
        all.extend(self.next_storage_scan.filter(|_| !self.evicted()));
        all.extend(self.active_deadline);
        for c in &self.ctrs {
            all.extend(c.restart_at);
            all.extend(c.retry_at);
            all.extend(c.pull_backoff_at);
            all.extend(c.post_start.as_ref().and_then(|h| h.deadline));
            if let Some(s) = &c.stopping {
                all.push(s.deadline);
                all.extend(s.pre_stop.as_ref().and_then(|h| h.deadline));
            }
            for p in &c.probes {
                match &p.helper {
                    Some(h) => all.extend(h.deadline),
                    None if c.probe_active(p.kind) => all.push(p.next_at),
                    None => {}
                }
            }
        }
        all.into_iter().min()
    }

    /// Starts what the pod's progress calls for: the next init container,
    /// then the app containers (one after another while a postStart hook
    /// runs); stops the sidecars once the app containers are done for good.
    fn sync(&mut self) -> Result<(), Error> {
        if self.terminating.is_some() || self.pod_terminal() || self.failed_by_node() {
            self.stop_in_order();
            return Ok(());
        }
        if self.sandbox_lost() {
            return Ok(());
        }
        if !self.initialized {
            for i in 0..self.ctrs.len() {
                let failure_ignored = self.mutant == Some(Mutant::InitFailureIgnored);
                let done = |c: &Ctr| match c.role {
                    Role::Init => c.completed() || (failure_ignored && c.has_terminated()),
                    Role::Sidecar => c.is_started(),
                    Role::App => true,
                };
                if done(&self.ctrs[i]) {
                    continue;
                }
                let c = &self.ctrs[i];
                if !c.running() && !c.waiting_for_timer() && !c.finished {
                    self.start_container(i)?;
                }
                if !done(&self.ctrs[i]) && self.mutant != Some(Mutant::InitUnordered) {
                    return Ok(());
                }
            }
            self.initialized = true;
        }
        for i in 0..self.ctrs.len() {
            let c = &self.ctrs[i];
            if c.role != Role::App {
                continue;
            }
            // kubelet starts app containers in order, each after the
            // postStart hook of the one before.
            if c.post_start.is_some() {
                break;
            }
            if !c.ran && !c.running() && !c.waiting_for_timer() && !c.finished {
                self.start_container(i)?;
                if self.ctrs[i].post_start.is_some() {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Handles what became due: hook and probe timers, grace periods,
    /// retries and restarts.
    fn tick(&mut self, now: Instant) -> Result<(), Error> {
        self.scan_storage(now);
        self.check_deadline(now);
        for i in 0..self.ctrs.len() {
            self.tick_stopping(i, now);
            if self.ctrs[i]
                .post_start
                .as_ref()
                .is_some_and(|h| h.pid.is_none() && h.deadline.is_some_and(|d| d <= now))
            {
                self.post_start_done(i, Ok(()));
            }
            self.tick_probes(i, now);
            if let Some(msg) = self.ctrs[i].pull_backoff_due(now) {
                self.event(Event::normal("BackOff", "kubelet", msg));
                self.event(Event::warning(
                    "Failed",
                    "kubelet",
                    "Error: ImagePullBackOff",
                ));
            }
            if self.terminating.is_some() {
                continue;
            }
            let c = &mut self.ctrs[i];
            let due = |t: &mut Option<Instant>| {
                let d = t.is_some_and(|t| t <= now);
                if d {
                    *t = None;
                }
                d
            };
            let retry = due(&mut c.retry_at);
            let restart = due(&mut c.restart_at);
            if (retry || restart) && !c.running() {
                self.start_container(i)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_offs_print_like_go_durations() {
        let ms = Duration::from_millis;
        assert_eq!(go_duration(ms(200)), "200ms");
        assert_eq!(go_duration(ms(10_000)), "10s");
        assert_eq!(go_duration(ms(80_000)), "1m20s");
        assert_eq!(go_duration(ms(300_000)), "5m0s");
        assert_eq!(go_duration(ms(1_500)), "1.5s");
        assert_eq!(go_duration(ms(3_600_000)), "1h0m0s");
    }
}
