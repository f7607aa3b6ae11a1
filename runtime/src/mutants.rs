//! Deliberately broken runtime variants, to prove the conformance suite can
//! fail (issue 3). Compiled in only with the `mutants` cargo feature; in a
//! normal build `Mutant::from_env` is always `None`, whatever the environment.

/// One pod property podlab breaks on purpose, chosen by `PODLAB_MUTANT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutant {
    NoSharedNet,
    NoSharedUts,
    NoSharedIpc,
    PrivateShm,
    NoMemoryLimit,
    NoPidsLimit,
    NoCpuLimit,
    EarlyRunning,
    WrongPodIp,
    /// Init containers all start at once and app containers do not wait.
    InitUnordered,
    /// `restartPolicy` Never and OnFailure behave like Always.
    RestartNeverIgnored,
    /// Delete kills with SIGKILL at once, ignoring the grace period.
    NoGrace,
    /// The scheduler admits every pod, whatever it requests.
    AdmitAll,
    /// A container that exited is never restarted, whatever the policy.
    NoRestart,
    /// An OOM kill is reported with reason Error instead of OOMKilled.
    OomUnreported,
    /// The container init holds a host directory (`/sys/fs/cgroup`, as
    /// runc's CVE-2024-21626 leaked one) without O_CLOEXEC and does not
    /// close inherited descriptors at exec: the container starts with it.
    LeakHostFd,
    /// The container's PID 1 stays the podlab binary and runs the command
    /// as its child: the host binary is reachable through /proc/1/exe (the
    /// class of runc CVE-2019-5736).
    RuntimeInContainer,
    /// The container starts with the shim's signalfd mask (SIGCHLD, SIGTERM,
    /// SIGINT blocked), so it never sees the SIGTERM of a delete.
    SignalsBlocked,
    /// The pod gets its address, but status.podIP and podIPs stay unset:
    /// a runtime that declares pod IPs and does not report them.
    NoPodIp,
    /// Every pod's hostname is the same fixed name.
    WrongHostname,
    /// `hostNetwork: true` is ignored: the pod gets its own network namespace.
    HostNetworkIgnored,
    /// Pods that do not ask for hostNetwork run in the node's network
    /// namespace (with the pod's own hostname and status as before).
    PodsInHostNetns,
    /// The pause keeps the node's IPC namespace instead of creating one.
    HostIpc,
    /// Containers share the pause's PID namespace although the pod does
    /// not set shareProcessNamespace.
    SharedPid,
    /// A subPath is the volume's path joined with it and made with
    /// create_dir_all, then mounted by path: a symlink the pod planted in
    /// the volume is followed to the host (Kubernetes CVE-2017-1002101).
    SubpathFollowsSymlinks,
    /// A mount target is the rootfs path joined with it and mounted by
    /// path: a symlink planted in a shared volume sends the mount to a host
    /// path instead of the place it names inside the container.
    MountTargetHostPath,
    /// No device rules: every container (and the pause) may create and
    /// open any host device, as podlab did before issue 21.
    NoDeviceCgroup,
    /// No seccomp filter is installed, whatever seccompProfile says.
    SeccompIgnored,
    /// runAsUser and runAsGroup are ignored: the container runs as root.
    RunAsRoot,
    /// runAsNonRoot is never checked: a container whose user is root runs.
    NonRootUnchecked,
    /// fsGroup is ignored: emptyDirs keep root's group, no container holds it.
    FsGroupIgnored,
    /// A failing liveness probe never restarts the container.
    LivenessIgnored,
    /// A container is ready as soon as it runs, whatever its readiness probe says.
    ReadinessIgnored,
    /// Liveness and readiness probes run before the startup probe succeeded.
    StartupNotAwaited,
    /// The container is reported running while its postStart hook runs.
    PostStartNotAwaited,
    /// A failing postStart hook is ignored.
    PostStartFailureIgnored,
    /// preStop hooks are not run: SIGTERM comes at once.
    PreStopIgnored,
    /// Every ended run is recorded with reason Error, exit 0 too.
    WrongExitReason,
    /// A failing container is restarted at once, every time: no back-off,
    /// no CrashLoopBackOff.
    NoCrashBackoff,
    /// No ephemeral-storage eviction: a pod past a container's
    /// ephemeral-storage limit or an emptyDir's sizeLimit keeps running.
    NoStorageEviction,
    /// Container logs are never rotated: they grow without bound.
    UnboundedLogs,
    /// A restarted container keeps the writable layer of its last run.
    RootfsKeptOnRestart,
    /// `$(VAR)` references in env values, command and args stay as written.
    NoVarExpansion,
    /// The image's Entrypoint is dropped when the container sets no
    /// command: args (or the image's Cmd) run on their own.
    ImageEntrypointIgnored,
    /// exec runs with an empty environment in `/`, not with the
    /// container's environment and working directory.
    ExecWithoutEnv,
    /// The image's User is ignored: without runAsUser the container runs as root.
    ImageUserIgnored,
    /// The terminationMessagePath file is never read: no message.
    NoTerminationMessage,
    /// `activeDeadlineSeconds` is ignored: the pod runs on.
    DeadlineIgnored,
    /// The downward API gives a wrong `metadata.uid`.
    WrongDownwardValue,
    /// A restart removes the previous run's log.
    PreviousLogLost,
    /// A `medium: Memory` emptyDir's tmpfs is mounted without a size: the
    /// kernel's default (half of RAM) instead of its sizeLimit.
    NoTmpfsSize,
    /// `readOnly: true` of a volumeMount is ignored: the mount is writable.
    ReadOnlyMountWritable,
    /// `capabilities.add` is ignored (drop still applies).
    CapsAddIgnored,
    /// `allowPrivilegeEscalation: false` is ignored: no_new_privs stays off.
    NoNewPrivsIgnored,
    /// spec.hostAliases are left out of the pod's /etc/hosts.
    NoHostAliases,
    /// Namespaced sysctls off the kubelet's safe list are set like safe ones
    /// instead of failing the pod with SysctlForbidden.
    UnsafeSysctlAllowed,
    /// `hostPID: true` is ignored: the pod gets its own PID namespaces.
    HostPidIgnored,
    /// hostPort mappings are not passed to CNI: nothing reaches the pod.
    HostPortIgnored,
    /// The scheduler ignores host ports: two pods asking for the same
    /// hostPort both run.
    PortConflictAdmitted,
    /// The pod's loopback interface is never brought up: no 127.0.0.1 in
    /// the pod (the course's stage 2 solution, which lacks stage 3).
    LoopbackDown,
    /// `mountPropagation` is ignored: every volume mount is rprivate.
    PropagationIgnored,
    /// `recursiveReadOnly` is ignored: only a readOnly volume's own mount
    /// is read-only, mounts below it stay writable.
    RecursiveReadOnlyIgnored,
    /// Deleting a pod none of whose app containers runs (never started, or
    /// all exited) returns at once, while the pod is still there.
    DeleteKeepsIdle,
    /// An init container that exits non-zero counts as done: the app
    /// containers start after it.
    InitFailureIgnored,
    /// `exec --timeout` is ignored: the command runs on past it.
    ExecTimeoutIgnored,
    /// `logs -c NAME` shows the log of the pod's first container.
    LogsFirstContainer,
    /// A `Localhost` seccomp profile is treated as Unconfined.
    LocalhostProfileIgnored,
    /// Privileged containers get their seccomp profile too.
    PrivilegedSeccompKept,
    /// A container without any seccompProfile gets RuntimeDefault.
    NilProfileConfined,
    /// The groups the image's /etc/group gives the user are left out.
    ImageGroupsIgnored,
    /// supplementalGroupsPolicy Strict is ignored: image groups are merged.
    StrictGroupsIgnored,
    /// imagePullPolicy Never pulls an image that is not in the store, as
    /// IfNotPresent would.
    NeverPullsAnyway,
    /// imagePullPolicy Always uses the stored image when there is one, as
    /// IfNotPresent would: a new digest under the tag is never seen.
    AlwaysKeepsStored,
}

impl Mutant {
    pub const ALL: [(&'static str, Mutant); 73] = [
        ("no-shared-net", Mutant::NoSharedNet),
        ("no-shared-uts", Mutant::NoSharedUts),
        ("no-shared-ipc", Mutant::NoSharedIpc),
        ("private-shm", Mutant::PrivateShm),
        ("no-memory-limit", Mutant::NoMemoryLimit),
        ("no-pids-limit", Mutant::NoPidsLimit),
        ("no-cpu-limit", Mutant::NoCpuLimit),
        ("early-running", Mutant::EarlyRunning),
        ("wrong-pod-ip", Mutant::WrongPodIp),
        ("init-unordered", Mutant::InitUnordered),
        ("restart-never-ignored", Mutant::RestartNeverIgnored),
        ("no-grace", Mutant::NoGrace),
        ("admit-all", Mutant::AdmitAll),
        ("no-restart", Mutant::NoRestart),
        ("oom-unreported", Mutant::OomUnreported),
        ("leak-host-fd", Mutant::LeakHostFd),
        ("runtime-in-container", Mutant::RuntimeInContainer),
        ("signals-blocked", Mutant::SignalsBlocked),
        ("no-pod-ip", Mutant::NoPodIp),
        ("wrong-hostname", Mutant::WrongHostname),
        ("host-network-ignored", Mutant::HostNetworkIgnored),
        ("pods-in-host-netns", Mutant::PodsInHostNetns),
        ("host-ipc", Mutant::HostIpc),
        ("shared-pid", Mutant::SharedPid),
        ("subpath-follows-symlinks", Mutant::SubpathFollowsSymlinks),
        ("mount-target-host-path", Mutant::MountTargetHostPath),
        ("no-device-cgroup", Mutant::NoDeviceCgroup),
        ("seccomp-ignored", Mutant::SeccompIgnored),
        ("run-as-root", Mutant::RunAsRoot),
        ("non-root-unchecked", Mutant::NonRootUnchecked),
        ("fs-group-ignored", Mutant::FsGroupIgnored),
        ("liveness-ignored", Mutant::LivenessIgnored),
        ("readiness-ignored", Mutant::ReadinessIgnored),
        ("startup-not-awaited", Mutant::StartupNotAwaited),
        ("post-start-not-awaited", Mutant::PostStartNotAwaited),
        (
            "post-start-failure-ignored",
            Mutant::PostStartFailureIgnored,
        ),
        ("pre-stop-ignored", Mutant::PreStopIgnored),
        ("wrong-exit-reason", Mutant::WrongExitReason),
        ("no-crash-backoff", Mutant::NoCrashBackoff),
        ("no-storage-eviction", Mutant::NoStorageEviction),
        ("unbounded-logs", Mutant::UnboundedLogs),
        ("rootfs-kept-on-restart", Mutant::RootfsKeptOnRestart),
        ("no-var-expansion", Mutant::NoVarExpansion),
        ("image-entrypoint-ignored", Mutant::ImageEntrypointIgnored),
        ("exec-without-env", Mutant::ExecWithoutEnv),
        ("image-user-ignored", Mutant::ImageUserIgnored),
        ("no-termination-message", Mutant::NoTerminationMessage),
        ("deadline-ignored", Mutant::DeadlineIgnored),
        ("wrong-downward-value", Mutant::WrongDownwardValue),
        ("previous-log-lost", Mutant::PreviousLogLost),
        ("no-tmpfs-size", Mutant::NoTmpfsSize),
        ("read-only-mount-writable", Mutant::ReadOnlyMountWritable),
        ("caps-add-ignored", Mutant::CapsAddIgnored),
        ("no-new-privs-ignored", Mutant::NoNewPrivsIgnored),
        ("no-host-aliases", Mutant::NoHostAliases),
        ("unsafe-sysctl-allowed", Mutant::UnsafeSysctlAllowed),
        ("host-pid-ignored", Mutant::HostPidIgnored),
        ("host-port-ignored", Mutant::HostPortIgnored),
        ("port-conflict-admitted", Mutant::PortConflictAdmitted),
        ("loopback-down", Mutant::LoopbackDown),
        ("propagation-ignored", Mutant::PropagationIgnored),
        (
            "recursive-read-only-ignored",
            Mutant::RecursiveReadOnlyIgnored,
        ),
        ("delete-keeps-idle", Mutant::DeleteKeepsIdle),
        ("init-failure-ignored", Mutant::InitFailureIgnored),
        ("exec-timeout-ignored", Mutant::ExecTimeoutIgnored),
        ("logs-first-container", Mutant::LogsFirstContainer),
        ("localhost-profile-ignored", Mutant::LocalhostProfileIgnored),
        ("privileged-seccomp-kept", Mutant::PrivilegedSeccompKept),
        ("nil-profile-confined", Mutant::NilProfileConfined),
        ("image-groups-ignored", Mutant::ImageGroupsIgnored),
        ("strict-groups-ignored", Mutant::StrictGroupsIgnored),
        ("never-pulls-anyway", Mutant::NeverPullsAnyway),
        ("always-keeps-stored", Mutant::AlwaysKeepsStored),
    ];

    pub fn parse(name: &str) -> Option<Mutant> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, m)| *m)
    }

    #[cfg(feature = "mutants")]
    pub fn from_env() -> Option<Mutant> {
        std::env::var("PODLAB_MUTANT")
            .ok()
            .and_then(|v| Self::parse(&v))
    }

    #[cfg(not(feature = "mutants"))]
    pub fn from_env() -> Option<Mutant> {
        None
    }
}

/// [`Mutant::LeakHostFd`]: opens a host directory without O_CLOEXEC, before
/// the container's root replaces the host's.
pub fn leak_host_dir() {
    use nix::fcntl::OFlag;
    use std::os::fd::IntoRawFd;
    // Leaked on purpose: no O_CLOEXEC and never closed.
    if let Ok(fd) = nix::fcntl::open(
        "/sys/fs/cgroup",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        nix::sys::stat::Mode::empty(),
    ) {
        let _ = fd.into_raw_fd();
    }
}

/// [`Mutant::SignalsBlocked`]: blocks what the shim blocks for its signalfd.
pub fn block_shim_signals() {
    use nix::sys::signal::{SigSet, Signal};
    let mut mask = SigSet::empty();
    for s in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT] {
        mask.add(s);
    }
    let _ = mask.thread_block();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for (name, m) in Mutant::ALL {
            assert_eq!(Mutant::parse(name), Some(m));
        }
        assert_eq!(Mutant::parse("nope"), None);
    }

    #[cfg(not(feature = "mutants"))]
    #[test]
    fn normal_builds_ignore_the_environment() {
        assert_eq!(Mutant::from_env(), None);
    }
}
