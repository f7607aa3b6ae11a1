//! Starting a container: its image, its process, security profile, limits
//! and mounts resolved from the spec; its cgroup, overlay and `__init`
//! process; then its postStart hook, after which it counts as running and
//! its probes begin. A start that cannot happen (a missing image, a bad
//! configuration) is shown as a waiting reason and retried with back-off.

use std::fs::{self, File};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::container::{self, InitConfig, Process};
use crate::image::ImageStore;
use crate::lifecycle;
use crate::mutants::Mutant;
use crate::probe;
use crate::sandbox;
use crate::store::{self, now_time, Event};
use crate::sys::ProcessId;
use k8s_openapi::api::core::v1::SeccompProfile;

use super::probes::{Helper, ProbeKind, ProbeRun};
use super::spawn::read_all;
use super::{container_limits, io, podlab_command, spawn_with_fds, ContainerRuntime, Error, Shim};

/// The node's file behind a container's terminationMessagePath, in its
/// directory of the state root.
pub(super) const TERMINATION_LOG: &str = "termination-log";

impl Shim {
    /// Creates and starts container `i` (or records why it cannot start:
    /// a missing image, a bad configuration). Errors are only those the
    /// shim cannot go on after (its own records).
    pub(super) fn start_container(&mut self, i: usize) -> Result<(), Error> {
        let spec = self.ctrs[i].spec.clone();
        let name = spec.name.clone();
        {
            // The state of the previous run becomes the last state.
            let c = &mut self.ctrs[i];
            if c.status
                .state
                .as_ref()
                .is_some_and(|s| s.terminated.is_some())
            {
                c.status.last_state = c.status.state.take();
            }
        }
        let image_ref = spec.image.clone().unwrap_or_default();
        let pulled_now = std::mem::take(&mut self.ctrs[i].pull_done);
        if !pulled_now && self.pull_first(i, &image_ref) {
            return Ok(());
        }
        let image = match ImageStore::open(&self.config.image_root)
            .and_then(|images| images.prepare(&image_ref))
        {
            Ok(img) => img,
            Err(e) => {
                self.image_failed(i, image_failure(&self.ctrs[i], &e));
                return Ok(());
            }
        };
        self.ctrs[i].pull_backoff_at = None;
        if !self.ctrs[i].pulled && !pulled_now {
            self.ctrs[i].pulled = true;
            self.event(Event::normal(
                "Pulled",
                "kubelet",
                format!("Container image \"{image_ref}\" already present on machine"),
            ));
        }
        let prepared = (|| -> Result<_, CreateFailure> {
            // The downward API's values first: `$(VAR)` may refer to them.
            let env =
                crate::downward::resolve_env(&self.downward_pod(), &spec, &self.downward_facts())
                    .map_err(|e| {
                    CreateFailure::config(format!("container {name}: {}", crate::error::chain(&e)))
                })?;
            let resolved = k8s_openapi::api::core::v1::Container {
                env: Some(env),
                ..spec.clone()
            };
            let mut process =
                Process::resolve(&resolved, &image.config).map_err(CreateFailure::of)?;
            let hostname =
                fs::read_to_string(self.dir.etc_dir().join("hostname")).unwrap_or_default();
            process.env.push(format!("HOSTNAME={}", hostname.trim()));
            let security = self.security_profile(&spec, &image)?;
            let mut limits =
                container_limits(&spec, self.config.default_pids).map_err(CreateFailure::of)?;
            self.mutant_limits(&mut limits);
            let mounts = self.volume_mounts(&spec)?;
            Ok((process, security, limits, mounts))
        })();
        let (process, security, limits, mounts) = match prepared {
            Ok(p) => p,
            Err(f) => {
                self.create_failed(i, f);
                return Ok(());
            }
        };
        let pod_cg = self
            .pod_cgroup
            .as_ref()
            .ok_or_else(|| Error::Other("pod cgroup missing".into()))?;
        let leaf = match &self.ctrs[i].leaf {
            Some(l) => l.clone(),
            None => match pod_cg.create_leaf(
                &format!("ctr-{name}"),
                &limits,
                self.device_policy(security.privileged),
            ) {
                Ok(l) => l,
                Err(e) => {
                    self.create_failed(i, CreateFailure::of(e));
                    return Ok(());
                }
            },
        };
        self.ctrs[i].leaf = Some(leaf.clone());
        self.ctrs[i].oom_base = leaf.oom_kill_count().unwrap_or(0);

        let cdir = self.dir.container_dir(&name);
        let layer = self.dir.layer_dir(&name);
        let (upper, work, rootfs) = (layer.join("upper"), layer.join("work"), cdir.join("rootfs"));
        // A restarted container starts from the image again, as in Kubernetes.
        if self.mutant != Some(Mutant::RootfsKeptOnRestart) {
            let _ = fs::remove_dir_all(&upper);
            let _ = fs::remove_dir_all(&work);
        }
        for d in [&upper, &work, &rootfs] {
            fs::create_dir_all(d).map_err(io(format!("mkdir {}", d.display())))?;
        }
        // A new file for each start, as the kubelet makes one per container.
        let termination_log = match spec
            .termination_message_path
            .as_deref()
            .filter(|p| !p.is_empty())
        {
            Some(target) => {
                let source = cdir.join(TERMINATION_LOG);
                crate::termination::prepare(&source)?;
                Some(container::FileMount {
                    source,
                    target: target.to_string(),
                })
            }
            None => None,
        };
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
            host_pid: self.state.host_pid,
            // hostIPC: the node's /dev/shm goes with the node's IPC namespace.
            shm: if self.state.host_ipc {
                std::path::PathBuf::from("/dev/shm")
            } else {
                self.dir.shm_dir()
            },
            etc: self.dir.etc_dir(),
            readonly_rootfs: spec
                .security_context
                .as_ref()
                .and_then(|s| s.read_only_root_filesystem)
                .unwrap_or(false),
            security: security.clone(),
            mounts,
            termination_log,
            private_shm: self.mutant == Some(Mutant::PrivateShm),
            private_uts: self.mutant == Some(Mutant::NoSharedUts),
            private_ipc: self.mutant == Some(Mutant::NoSharedIpc),
            private_net: self.mutant == Some(Mutant::NoSharedNet),
        };
        let config_path = cdir.join("config.json");
        store::write_json_atomic(&config_path, &init)?;

        // What is left of the last start's output goes to its own log.
        if let Some(mut old) = self.ctrs[i].log.take() {
            let _ = old.pump();
        }
        let start_number = if self.ctrs[i].ran {
            self.ctrs[i].status.restart_count.max(0) as u32 + 1
        } else {
            0
        };
        let (ctr_log, log, log2) = super::logpipe::CtrLog::open(self, &name, start_number)?;
        self.ctrs[i].log = Some(ctr_log);
        let (report_r, report_w) = sandbox::pipe()?;
        let (go_r, go_w) = sandbox::pipe()?;
        let mut cmd = podlab_command();
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
        let instant = Instant::now();
        let c = &mut self.ctrs[i];
        if c.ran {
            c.status.restart_count += 1;
            c.backoff.step(instant);
        }
        c.ran = true;
        c.status.image_id = image.image_id();
        c.status.container_id = Some(format!("podlab://{}-{name}", self.uid));
        let started = match (pid, error) {
            (Some(p), None) => {
                c.pid = Some(p);
                c.started_at = Some(now.clone());
                c.run_since = Some(instant);
                c.probe_started = false;
                c.probe_ready = false;
                // Running, but shown as created until its postStart hook is done.
                c.status.state = Some(lifecycle::waiting("ContainerCreating", None));
                true
            }
            (_, err) => {
                let msg = err.unwrap_or_else(|| "container init exited without reporting".into());
                let mut state = lifecycle::terminated(
                    128,
                    None,
                    false,
                    Some(now.clone()),
                    &now,
                    Some(msg.clone()),
                );
                if let Some(t) = state.terminated.as_mut() {
                    t.reason = Some("StartError".into());
                }
                c.status.state = Some(state);
                // Its exit is already accounted for: the reaper must not
                // overwrite the StartError.
                c.pid = None;
                self.event(Event::warning(
                    "Failed",
                    "kubelet",
                    format!("Error: failed to start container \"{name}\": {msg}"),
                ));
                false
            }
        };
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
        if !started {
            self.schedule_restart(i, 128);
            return Ok(());
        }
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
        self.start_post_start(i);
        Ok(())
    }

    /// The container's process runs: its postStart hook (a helper, or a
    /// timer for `sleep`), or straight on to running when it has none.
    fn start_post_start(&mut self, i: usize) {
        let now = Instant::now();
        let c = &self.ctrs[i];
        let name = c.spec.name.clone();
        let hook = c
            .spec
            .lifecycle
            .as_ref()
            .and_then(|l| l.post_start.clone())
            .map(|h| probe::hook_action(&h, &c.spec, self.status.pod_ip.as_deref()));
        match hook {
            None => self.on_running(i),
            Some(Ok(probe::Hook::Sleep(d))) => {
                self.ctrs[i].post_start = Some(Helper {
                    pid: None,
                    deadline: Some(now + d),
                    output: PathBuf::new(),
                    started: now,
                });
            }
            Some(Ok(probe::Hook::Run(action))) => {
                let request = probe::Request {
                    container: name.clone(),
                    timeout_ms: None,
                    action,
                };
                match self.spawn_helper(&name, "poststart", &request, None) {
                    Ok(h) => {
                        if self.mutant == Some(Mutant::PostStartNotAwaited) {
                            if let Some(t) = &self.ctrs[i].started_at {
                                self.ctrs[i].status.state = Some(lifecycle::running(t));
                            }
                        }
                        self.ctrs[i].post_start = Some(h)
                    }
                    Err(e) => self.post_start_done(i, Err(crate::error::chain(&e))),
                }
            }
            Some(Err(e)) => self.post_start_done(i, Err(e)),
        }
    }

    /// The container runs (its postStart hook done): its probes begin.
    pub(super) fn on_running(&mut self, i: usize) {
        let pod_ip = self.status.pod_ip.clone();
        let c = &mut self.ctrs[i];
        let since = c.run_since.unwrap_or_else(Instant::now);
        if let Some(t) = &c.started_at {
            c.status.state = Some(lifecycle::running(t));
        }
        let mut ignored = Vec::new();
        c.probes.clear();
        for (kind, spec) in [
            (ProbeKind::Startup, c.spec.startup_probe.clone()),
            (ProbeKind::Liveness, c.spec.liveness_probe.clone()),
            (ProbeKind::Readiness, c.spec.readiness_probe.clone()),
        ] {
            let Some(spec) = spec else { continue };
            match probe::probe_action(&spec, &c.spec, pod_ip.as_deref()) {
                Ok(action) => {
                    let timing = probe::Timing::of(&spec);
                    c.probes.push(ProbeRun {
                        kind,
                        timing,
                        action,
                        grace: spec.termination_grace_period_seconds,
                        next_at: since + timing.initial_delay,
                        helper: None,
                        successes: 0,
                        failures: 0,
                    });
                }
                Err(why) => ignored.push(format!(
                    "podlab ignores the {} probe of container {}: {why}",
                    kind.title().to_lowercase(),
                    c.spec.name
                )),
            }
        }
        let has = |k: ProbeKind| c.probes.iter().any(|p| p.kind == k);
        c.probe_started =
            !has(ProbeKind::Startup) || self.mutant == Some(Mutant::StartupNotAwaited);
        c.probe_ready = !has(ProbeKind::Readiness) || self.mutant == Some(Mutant::ReadinessIgnored);
        c.refresh();
        for msg in ignored {
            self.event(Event::warning("Unhealthy", "kubelet", msg));
        }
    }

    /// Starts a pull when imagePullPolicy calls for one (Always; or
    /// IfNotPresent and the image is not in the store): true when the start
    /// now waits for it, or failed already (a bad name, Never and absent).
    ///
    /// The pull runs in a `podlab image pull` helper the shim reaps like a
    /// probe: its HTTP client's runtime starts threads, and the shim forks.
    fn pull_first(&mut self, i: usize, image: &str) -> bool {
        let reference = match crate::image::Reference::parse(image) {
            Ok(r) => r,
            Err(e) => {
                self.image_failed(i, image_failure(&self.ctrs[i], &e));
                return true;
            }
        };
        if reference.registry == crate::image::LOCAL_REGISTRY {
            return false;
        }
        let policy = pull_policy(&self.ctrs[i].spec);
        let present = ImageStore::open(&self.config.image_root)
            .and_then(|s| s.lookup(image))
            .is_ok_and(|found| found.is_some());
        let pull = match (policy.as_str(), Mutant::from_env()) {
            ("Always", Some(Mutant::AlwaysKeepsStored)) => !present,
            ("Always", _) => true,
            ("Never", Some(Mutant::NeverPullsAnyway)) => !present,
            ("Never", _) => false,
            _ => !present,
        };
        if !pull {
            return false;
        }
        let name = self.ctrs[i].spec.name.clone();
        match self.spawn_pull(&name, image) {
            Ok(helper) => {
                self.ctrs[i].pull = Some(helper);
                self.event(Event::normal(
                    "Pulling",
                    "kubelet",
                    format!("Pulling image \"{image}\""),
                ));
            }
            Err(e) => self.image_failed(
                i,
                ImageFailure::pull(image, &format!("cannot start the pull: {e}")),
            ),
        }
        true
    }

    fn spawn_pull(&mut self, container: &str, image: &str) -> Result<Helper, String> {
        let logins = self.pull_logins(container)?;
        let mut args = vec!["image", "pull", "--quiet"];
        let path;
        if let Some(p) = logins {
            path = p.to_string_lossy().into_owned();
            args.extend(["--logins-from", path.as_str()]);
        }
        args.extend(["--", image]);
        self.spawn_podlab(
            &format!("{container}.pull.out"),
            &args,
            "podlab image pull",
            // Like the kubelet, no deadline: a slow pull is not a failed one.
            None,
        )
        .map_err(|e| crate::error::chain(&e))
    }

    /// The logins of the pod's image pull secrets, read now (a secret made
    /// or changed since the pod started counts), handed to the pull helper
    /// in a file only root may read: never on its command line or in its
    /// environment, both of which /proc shows. A listed secret that is not
    /// there is a warning, and the pull goes on without it, as with the kubelet.
    fn pull_logins(&mut self, container: &str) -> Result<Option<PathBuf>, String> {
        let names: Vec<String> = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.image_pull_secrets.as_ref())
            .into_iter()
            .flatten()
            .map(|r| r.name.clone())
            .filter(|n| !n.is_empty())
            .collect();
        if names.is_empty() {
            return Ok(None);
        }
        let auths = crate::secrets::pull_auths(&self.config, &self.dir.key.namespace, &names);
        if !auths.missing.is_empty() {
            self.event(Event::warning(
                "FailedToRetrieveImagePullSecret",
                "kubelet",
                format!(
                    "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.",
                    auths.missing.join(", ")
                ),
            ));
        }
        if auths.configs.is_empty() {
            return Ok(None);
        }
        let path = super::pull_logins_path(&self.dir, container);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| format!("mkdir {}: {e}", parent.display()))?;
        }
        let bytes = serde_json::to_vec(&auths.configs).map_err(|e| crate::error::chain(&e))?;
        crate::atomic_file::write_private(&path, &bytes)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Some(path))
    }

    /// The pull helper of container `i` ended with `result` (its error
    /// output when it failed): the kubelet's Pulled event and the start,
    /// or ErrImagePull and a retry with back-off.
    pub(super) fn pull_finished(
        &mut self,
        i: usize,
        result: Result<(), String>,
    ) -> Result<(), Error> {
        let Some(helper) = self.ctrs[i].pull.take() else {
            return Ok(());
        };
        // The helper read its logins at its start; none stay behind.
        let _ = fs::remove_file(super::pull_logins_path(&self.dir, &self.ctrs[i].spec.name));
        let image = self.ctrs[i].spec.image.clone().unwrap_or_default();
        match result {
            Ok(()) => {
                let took = super::go_duration(helper.started.elapsed());
                let size = ImageStore::open(&self.config.image_root)
                    .and_then(|s| s.lookup(&image))
                    .ok()
                    .flatten()
                    .map_or(0, |info| info.size);
                self.event(Event::normal(
                    "Pulled",
                    "kubelet",
                    format!("Successfully pulled image \"{image}\" in {took} ({took} including waiting). Image size: {size} bytes."),
                ));
                let c = &mut self.ctrs[i];
                c.pulled = true;
                c.pull_done = true;
                if self.terminating.is_none() && !self.sandbox_lost() {
                    self.start_container(i)?;
                }
            }
            Err(message) => {
                let message = message
                    .strip_prefix("error: ")
                    .unwrap_or(&message)
                    .to_string();
                self.image_failed(i, ImageFailure::pull(&image, &message));
            }
        }
        Ok(())
    }

    /// The image is not usable: the container waits (ErrImagePull, then
    /// ImagePullBackOff; InvalidImageName; ErrImageNeverPull) and the shim
    /// tries again with back-off.
    fn image_failed(&mut self, i: usize, failure: ImageFailure) {
        let now = Instant::now();
        let ImageFailure { reason, message } = failure;
        let c = &mut self.ctrs[i];
        c.status.state = Some(lifecycle::waiting(reason, Some(message.clone())));
        let delay = c.retry_backoff.step(now);
        c.retry_at = Some(now + delay);
        if reason == "ErrImagePull" {
            c.pull_backoff_at = Some(now + (delay / 2).min(Duration::from_secs(1)));
        }
        match reason {
            "ErrImagePull" => {
                self.event(Event::warning("Failed", "kubelet", message));
                self.event(Event::warning("Failed", "kubelet", "Error: ErrImagePull"));
            }
            "InvalidImageName" => self.event(Event::warning("InspectFailed", "kubelet", message)),
            _ => self.event(Event::warning(reason, "kubelet", message)),
        }
    }

    /// The container's user, groups, capabilities and seccomp filter from
    /// the pod's and its own securityContext and its image. A runAsNonRoot
    /// the container breaks is the kubelet's CreateContainerConfigError.
    fn security_profile(
        &self,
        spec: &k8s_openapi::api::core::v1::Container,
        image: &crate::image::PreparedImage,
    ) -> Result<crate::security::Profile, CreateFailure> {
        use crate::security::{Error as SecError, Inputs, Profile};
        let pod_sc = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.security_context.as_ref());
        // The mutants that forget a field do so before anything reads it.
        let mut pod_sc = pod_sc.cloned();
        let mut ctr_sc = spec.security_context.clone();
        match self.mutant {
            Some(Mutant::NonRootUnchecked) => {
                pod_sc.iter_mut().for_each(|s| s.run_as_non_root = None);
                ctr_sc.iter_mut().for_each(|s| s.run_as_non_root = None);
            }
            Some(Mutant::FsGroupIgnored) => pod_sc.iter_mut().for_each(|s| s.fs_group = None),
            Some(Mutant::CapsAddIgnored) => ctr_sc
                .iter_mut()
                .filter_map(|s| s.capabilities.as_mut())
                .for_each(|c| c.add = None),
            Some(Mutant::NoNewPrivsIgnored) => ctr_sc
                .iter_mut()
                .for_each(|s| s.allow_privilege_escalation = None),
            Some(Mutant::LocalhostProfileIgnored) => {
                let forget = |p: &mut Option<SeccompProfile>| {
                    if p.as_ref().is_some_and(|p| p.type_ == "Localhost") {
                        *p = None;
                    }
                };
                pod_sc
                    .iter_mut()
                    .for_each(|s| forget(&mut s.seccomp_profile));
                ctr_sc
                    .iter_mut()
                    .for_each(|s| forget(&mut s.seccomp_profile));
            }
            Some(Mutant::ImageGroupsIgnored) => {
                pod_sc
                    .get_or_insert_with(Default::default)
                    .supplemental_groups_policy = Some("Strict".into());
            }
            Some(Mutant::StrictGroupsIgnored) => pod_sc
                .iter_mut()
                .for_each(|s| s.supplemental_groups_policy = None),
            Some(Mutant::NilProfileConfined) => {
                let set = |p: Option<&SeccompProfile>| p.is_some();
                if !set(pod_sc.as_ref().and_then(|s| s.seccomp_profile.as_ref()))
                    && !set(ctr_sc.as_ref().and_then(|s| s.seccomp_profile.as_ref()))
                {
                    ctr_sc.get_or_insert_with(Default::default).seccomp_profile =
                        Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            localhost_profile: None,
                        });
                }
            }
            _ => {}
        }
        let resolved = Profile::resolve(&Inputs {
            pod: pod_sc.as_ref(),
            container: ctr_sc.as_ref(),
            image_user: image
                .config
                .user
                .as_deref()
                .filter(|_| self.mutant != Some(Mutant::ImageUserIgnored)),
            layers: &image.layers,
            seccomp_root: &self.config.seccomp_root,
        });
        let mut profile = match resolved {
            Ok(p) => p,
            Err(e @ SecError::NonRoot(_)) => {
                let pod = format!(
                    "{}_{}({})",
                    self.pod.metadata.name.as_deref().unwrap_or_default(),
                    self.pod.metadata.namespace.as_deref().unwrap_or("default"),
                    self.uid
                );
                return Err(CreateFailure::config(format!(
                    "{e} (pod: {pod:?}, container: {})",
                    spec.name
                )));
            }
            Err(
                e @ (SecError::ImageUser { .. }
                | SecError::InvalidId { .. }
                | SecError::TooManyGroups(_)
                | SecError::UnknownCapability(_)),
            ) => return Err(CreateFailure::config(crate::error::chain(&e))),
            Err(e) => return Err(CreateFailure::of(e)),
        };
        match self.mutant {
            Some(Mutant::SeccompIgnored) => profile.seccomp = None,
            Some(Mutant::PrivilegedSeccompKept) if profile.privileged => {
                let sp = ctr_sc
                    .as_ref()
                    .and_then(|c| c.seccomp_profile.as_ref())
                    .or(pod_sc.as_ref().and_then(|p| p.seccomp_profile.as_ref()));
                if let Some(sp) = sp {
                    profile.seccomp = crate::security::seccomp_program(
                        sp,
                        profile.caps,
                        &self.config.seccomp_root,
                    )
                    .map_err(CreateFailure::of)?;
                }
            }
            Some(Mutant::RunAsRoot) => {
                profile.uid = Some(0);
                profile.gid = Some(0);
            }
            _ => {}
        }
        Ok(profile)
    }

    /// The container could not be created from its spec: it waits with
    /// the failure's reason and is tried again with back-off.
    fn create_failed(&mut self, i: usize, failure: CreateFailure) {
        let now = Instant::now();
        let c = &mut self.ctrs[i];
        let CreateFailure {
            reason,
            message,
            volume,
        } = failure;
        c.status.state = Some(lifecycle::waiting(reason, Some(message.clone())));
        let delay = c.retry_backoff.step(now);
        c.retry_at = Some(now + delay);
        let event = match volume {
            Some(volume) => Event::warning(
                "FailedMount",
                "kubelet",
                format!("MountVolume.SetUp failed for volume {volume:?} : {message}"),
            ),
            None => Event::warning("Failed", "kubelet", format!("Error: {message}")),
        };
        self.event(event);
    }
}

/// Why a container cannot be created, as the kubelet reports it: its
/// waiting reason and message.
#[derive(Debug)]
pub(super) struct CreateFailure {
    pub reason: &'static str,
    pub message: String,
    /// The volume that could not be set up, when that is the failure.
    pub volume: Option<String>,
}

impl CreateFailure {
    /// CreateContainerError: the runtime could not create it.
    pub fn error(message: String) -> CreateFailure {
        CreateFailure {
            reason: "CreateContainerError",
            message,
            volume: None,
        }
    }

    pub fn of(e: impl std::error::Error) -> CreateFailure {
        CreateFailure::error(crate::error::chain(&e))
    }

    /// CreateContainerConfigError: its configuration cannot be honoured
    /// (a subPath that leads out of its volume).
    pub fn config(message: String) -> CreateFailure {
        CreateFailure {
            reason: "CreateContainerConfigError",
            message,
            volume: None,
        }
    }

    /// A volume could not be set up (a hostPath that fails its type
    /// check): the container waits in ContainerCreating, as the kubelet
    /// leaves a pod whose volumes are not mounted yet.
    pub fn mount(volume: &str, message: String) -> CreateFailure {
        CreateFailure {
            reason: "ContainerCreating",
            message,
            volume: Some(volume.to_string()),
        }
    }
}

/// A waiting reason and its message, as the kubelet words them.
struct ImageFailure {
    reason: &'static str,
    message: String,
}

impl ImageFailure {
    fn pull(image: &str, why: &str) -> ImageFailure {
        ImageFailure {
            reason: "ErrImagePull",
            message: format!("Failed to pull image \"{image}\": {why}"),
        }
    }
}

/// The pod's imagePullPolicy, or the API server's default when unset
/// (Always for `:latest` or no tag, else IfNotPresent).
fn pull_policy(spec: &k8s_openapi::api::core::v1::Container) -> String {
    if let Some(p) = &spec.image_pull_policy {
        return p.clone();
    }
    let image = spec.image.as_deref().unwrap_or_default();
    match crate::image::Reference::parse(image) {
        Ok(r) if r.digest.is_none() && r.tag.as_deref() == Some("latest") => "Always".into(),
        _ => "IfNotPresent".into(),
    }
}

/// Why the store could not give a container its image.
fn image_failure(c: &super::ctr::Ctr, err: &crate::image::Error) -> ImageFailure {
    let image = c.spec.image.clone().unwrap_or_default();
    match err {
        crate::image::Error::NotFound(_) if pull_policy(&c.spec) == "Never" => ImageFailure {
            reason: "ErrImageNeverPull",
            message: format!("Container image \"{image}\" is not present with pull policy of Never"),
        },
        crate::image::Error::InvalidReference { reason, .. } => ImageFailure {
            reason: "InvalidImageName",
            message: format!("Failed to apply default image tag \"{image}\": couldn't parse image name \"{image}\": {reason}"),
        },
        crate::image::Error::NotFound(_)
            if crate::image::Reference::parse(&image)
                .is_ok_and(|r| r.registry == crate::image::LOCAL_REGISTRY) =>
        {
            ImageFailure::pull(
                &image,
                &format!("{} images are never pulled and this one is not in podlab's store; import it with `podlab image import`", crate::image::LOCAL_REGISTRY),
            )
        }
        e => ImageFailure::pull(&image, &crate::error::chain(&e)),
    }
}
