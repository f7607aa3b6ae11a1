//! The pod's sandbox: what every container of the pod shares and the shim
//! sets up before the first one starts (the pod cgroup, the network
//! namespace and its CNI attachment, /dev/shm, /etc/hosts and friends, the
//! pause process holding the namespaces, the emptyDir volumes), and
//! `release`, which takes it all down again, for the shim as for `delete`
//! and `gc` when no shim is left.

use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use k8s_openapi::api::core::v1::{Container, Volume};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::cgroups::{self, Limits};
use crate::config::Config;
use crate::container;
use crate::lifecycle;
use crate::mutants::Mutant;
use crate::network;
use crate::sandbox;
use crate::store::{now_time, PodDir};
use crate::sys::{self, ProcessId, Sys};
use crate::testhook::{self, Stage};

use super::spawn::read_all;
use super::{io, pod_limits, podlab_command, spawn_with_fds, Error, RuntimeState, Shim};

impl Shim {
    /// The pod cgroup, the network namespace and the pod's IP, /dev/shm and
    /// the /etc files, then the pause process that holds the namespaces.
    pub(super) fn create_sandbox(&mut self) -> Result<(), Error> {
        let spec = self.pod.spec.clone().unwrap_or_default();
        let host_network = spec.host_network.unwrap_or(false);
        let limits = pod_limits(&self.pod)?;
        let pod_cg = self.cgroups.create_pod(&self.uid, &limits)?;
        self.state.cgroup_mode = Some(self.cgroups.mode());
        self.state.pod_cgroup = Some(format!("podlab/pod-{}", self.uid));
        let pause_leaf =
            pod_cg.create_leaf("pause", &Limits::default(), self.device_policy(false))?;
        self.pod_cgroup = Some(pod_cg);

        let own_netns = match self.mutant {
            Some(Mutant::HostNetworkIgnored) => true,
            Some(Mutant::PodsInHostNetns) => false,
            _ => !host_network,
        };
        let netns = if own_netns {
            Some(sandbox::create_netns(&self.uid)?)
        } else {
            None
        };
        self.state.netns = netns.clone();
        self.save_state()?;

        let mut pod_ip = None;
        if let Some(ns) = &netns {
            let ports = if self.mutant == Some(Mutant::HostPortIgnored) {
                Vec::new()
            } else {
                network::port_mappings(&self.pod)
            };
            let attached = network::attach(&self.config, &self.uid, ns, ports)?;
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
            if self.mutant == Some(Mutant::NoPodIp) {
                self.status.pod_ip = None;
                self.status.pod_ips = None;
            }
        } else {
            // hostNetwork: the pod's IP is the node's, as in Kubernetes.
            self.status.pod_ip = self.status.host_ip.clone();
            self.status.pod_ips = self.status.host_ips.as_ref().map(|h| {
                h.iter()
                    .map(|x| k8s_openapi::api::core::v1::PodIP { ip: x.ip.clone() })
                    .collect()
            });
        }
        sandbox::mount_shm(self.sys, &self.dir.shm_dir())?;
        let hostname = if host_network {
            network::node_name()
        } else if self.mutant == Some(Mutant::WrongHostname) {
            "podlab-mutant".to_string()
        } else {
            spec.hostname
                .clone()
                .or_else(|| self.pod.metadata.name.clone())
                .unwrap_or_default()
        };
        let node_hosts = if host_network {
            // The node's file as it is now, as the kubelet copies it.
            Some(fs::read_to_string("/etc/hosts").unwrap_or_default())
        } else {
            None
        };
        let hosts = crate::etc_files::hosts_file(
            &self.pod,
            &hostname,
            pod_ip.as_deref(),
            node_hosts.as_deref(),
            self.mutant != Some(Mutant::NoHostAliases),
        );
        let resolv = crate::etc_files::resolv_conf(
            &self.pod,
            &fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        );
        sandbox::write_etc_files(&self.dir.etc_dir(), &hostname, &hosts, &resolv)?;
        testhook::stall_at(Stage::ShimSandbox);

        let (ready_r, ready_w) = sandbox::pipe()?;
        let mut cmd = podlab_command();
        cmd.arg("__pause");
        if let Some(n) = &netns {
            cmd.arg("--netns").arg(n);
        }
        cmd.arg("--hostname").arg(&hostname);
        if self.state.share_pid {
            cmd.arg("--share-pid");
        }
        if self.state.host_ipc {
            cmd.arg("--host-ipc");
        }
        let sysctls = spec
            .security_context
            .as_ref()
            .and_then(|sc| sc.sysctls.as_ref());
        for s in sysctls.into_iter().flatten() {
            cmd.arg("--sysctl").arg(format!("{}={}", s.name, s.value));
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

    /// The pod's `spec.volumes`.
    fn volumes(&self) -> &[Volume] {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.as_deref())
            .unwrap_or_default()
    }

    /// Creates the pod's emptyDir volumes: a directory under the pod's
    /// data (on disk), or a tmpfs for `medium: Memory` (sized by `sizeLimit`).
    pub(super) fn prepare_volumes(&mut self) -> Result<(), Error> {
        use std::os::unix::fs::PermissionsExt;
        let fs_group = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.security_context.as_ref())
            .and_then(|sc| sc.fs_group)
            .and_then(|g| u32::try_from(g).ok())
            .filter(|_| self.mutant != Some(Mutant::FsGroupIgnored));
        for v in self.volumes() {
            if let Some(source) = &v.downward_api {
                self.write_downward_volume(&v.name, source)?;
                continue;
            }
            let Some(empty) = &v.empty_dir else { continue };
            let path = volume_dir(&self.dir, &v.name);
            fs::create_dir_all(&path).map_err(io(format!("mkdir {}", path.display())))?;
            if empty.medium.as_deref() == Some("Memory") {
                let mut data = String::from("mode=0777");
                let size_limit = empty.size_limit.as_ref().map(|q| q.0.as_str());
                let size = super::limits::memory_volume_size(&self.pod, size_limit)?
                    .filter(|_| self.mutant != Some(Mutant::NoTmpfsSize));
                if let Some(size) = size {
                    data.push_str(&format!(",size={size}"));
                }
                mount_memory_volume(self.sys, &path, &data)?;
            } else {
                // Any user of any container may write to an emptyDir.
                fs::set_permissions(&path, fs::Permissions::from_mode(0o777))
                    .map_err(io(format!("chmod {}", path.display())))?;
            }
            if let Some(gid) = fs_group {
                // As the kubelet does for fsGroup: the volume belongs to the
                // group, and setgid makes what is created in it belong too.
                std::os::unix::fs::chown(&path, None, Some(gid))
                    .map_err(io(format!("chown {}", path.display())))?;
                fs::set_permissions(&path, fs::Permissions::from_mode(0o2777))
                    .map_err(io(format!("chmod {}", path.display())))?;
            }
        }
        Ok(())
    }

    /// The container's volume mounts as host directories, parents first.
    /// Each subPath is opened beneath its volume (and made if missing) here,
    /// so one that leads out of it keeps the container waiting with
    /// CreateContainerConfigError, as the kubelet does; the init opens it
    /// again and mounts what it opened.
    pub(super) fn volume_mounts(
        &self,
        spec: &Container,
    ) -> Result<Vec<container::VolumeMount>, super::start::CreateFailure> {
        use super::start::CreateFailure;
        use std::os::fd::AsFd;
        let volumes = self.volumes();
        let mut mounts = Vec::new();
        for m in spec.volume_mounts.iter().flatten() {
            let Some(v) = volumes.iter().find(|v| {
                v.name == m.name
                    && (v.empty_dir.is_some() || v.downward_api.is_some() || v.host_path.is_some())
            }) else {
                return Err(CreateFailure::error(format!(
                    "volume {:?} is not an emptyDir, downwardAPI or hostPath volume of this pod",
                    m.name
                )));
            };
            // A hostPath is checked (and made) each time a container that
            // mounts it is created, as the kubelet sets a volume up.
            let host_path = match &v.host_path {
                Some(h) => Some(
                    crate::hostpath::prepare(Path::new(&h.path), h.type_.as_deref().unwrap_or(""))
                        .map_err(|e| CreateFailure::mount(&v.name, crate::error::chain(&e)))?,
                ),
                None => None,
            };
            let mut source = match &v.host_path {
                Some(h) => PathBuf::from(&h.path),
                None => volume_dir(&self.dir, &v.name),
            };
            let mut sub_path = m.sub_path.clone().filter(|s| !s.is_empty());
            if let Some(sub) = sub_path.as_deref() {
                if self.mutant == Some(Mutant::SubpathFollowsSymlinks) {
                    source = source.join(sub);
                    fs::create_dir_all(&source).map_err(|e| {
                        CreateFailure::error(format!("subPath {sub}: {}", crate::error::chain(&e)))
                    })?;
                    sub_path = None;
                } else {
                    let refused = |e: String| {
                        CreateFailure::config(format!(
                            "failed to prepare subPath for volumeMount {:?} of container {:?}: {e}",
                            m.name, spec.name
                        ))
                    };
                    if host_path == Some(crate::hostpath::Kind::File) {
                        return Err(refused(format!("{} is not a directory", source.display())));
                    }
                    let volume = sys::open_dir_path(&source)
                        .map_err(|e| refused(crate::error::chain(&e)))?;
                    crate::safepath::open_dir(
                        volume.as_fd(),
                        sub,
                        sys::Scope::Beneath,
                        true,
                        0o777,
                    )
                    .map_err(|e| refused(crate::error::chain(&e)))?;
                }
            }
            mounts.push(container::VolumeMount {
                source,
                sub_path,
                target: m.mount_path.clone(),
                // The kubelet mounts a downwardAPI volume read-only.
                readonly: (m.read_only.unwrap_or(false)
                    && self.mutant != Some(Mutant::ReadOnlyMountWritable))
                    || v.downward_api.is_some(),
                host_path,
                propagation: crate::hostpath::Propagation::of(m.mount_propagation.as_deref()),
                recursive_readonly: crate::hostpath::RecursiveReadOnly::of(
                    m.recursive_read_only.as_deref(),
                ),
            });
        }
        mounts.sort_by_key(|m| m.target.split('/').filter(|s| !s.is_empty()).count());
        Ok(mounts)
    }
}

impl Shim {
    /// The pod as the downward API reads it (the `wrong-downward-value`
    /// mutant gives it another uid).
    pub(super) fn downward_pod(&self) -> std::borrow::Cow<'_, k8s_openapi::api::core::v1::Pod> {
        if self.mutant != Some(Mutant::WrongDownwardValue) {
            return std::borrow::Cow::Borrowed(&self.pod);
        }
        let mut pod = self.pod.clone();
        pod.metadata.uid = Some("00000000-0000-0000-0000-000000000000".into());
        std::borrow::Cow::Owned(pod)
    }

    /// What the downward API takes from the node and the pod's status.
    pub(super) fn downward_facts(&self) -> crate::downward::PodFacts {
        crate::downward::PodFacts {
            pod_ip: self.status.pod_ip.clone(),
            host_ip: self.status.host_ip.clone(),
            node_name: self.state.node.clone(),
            allocatable: crate::node::allocatable(&self.config.data_root)
                .unwrap_or_else(|_| crate::node::capacity()),
        }
    }

    /// Writes the files of a downwardAPI volume into its directory, which
    /// containers mount read-only; again after an update of the pod's
    /// labels or annotations (each file replaced by rename, so a reader
    /// sees the old or the new content).
    pub(super) fn write_downward_volume(
        &self,
        volume: &str,
        source: &k8s_openapi::api::core::v1::DownwardAPIVolumeSource,
    ) -> Result<(), Error> {
        let dir = volume_dir(&self.dir, volume);
        fs::create_dir_all(&dir).map_err(io(format!("mkdir {}", dir.display())))?;
        let files =
            crate::downward::volume_files(&self.downward_pod(), source, &self.downward_facts())
                .map_err(|source| Error::Downward {
                    volume: volume.into(),
                    source,
                })?;
        for f in files {
            // Validation refused absolute paths and `..`.
            let path = dir.join(&f.path);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(io(format!("mkdir {}", parent.display())))?;
            }
            crate::atomic_file::write_from(&path, &mut f.content.as_bytes(), f.mode & 0o777)
                .map_err(io(format!("write {}", path.display())))?;
        }
        Ok(())
    }
}

/// The `wrong-pod-ip` mutant: report a neighbouring address.
fn wrong_ip(ip: &str) -> String {
    match ip.parse::<std::net::Ipv4Addr>() {
        Ok(v4) => std::net::Ipv4Addr::from(u32::from(v4).wrapping_add(1)).to_string(),
        Err(_) => ip.to_string(),
    }
}

/// Mounts the tmpfs of a `medium: Memory` emptyDir (`data` holds its mode
/// and size) unless it is mounted already.
fn mount_memory_volume(sys: &dyn Sys, path: &Path, data: &str) -> Result<(), Error> {
    crate::sys::mount_tmpfs_once(
        sys,
        "podlab-emptydir",
        path,
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        data,
    )?;
    Ok(())
}

/// The directory of a pod's emptyDir volume.
pub fn volume_dir(dir: &PodDir, volume: &str) -> PathBuf {
    dir.volumes_dir().join(volume)
}

/// True while one of the pod's memory-backed volumes is mounted.
pub fn volumes_mounted(sys: &dyn Sys, dir: &PodDir) -> bool {
    fs::read_dir(dir.volumes_dir())
        .map(|entries| entries.flatten().any(|e| sys.is_mount_point(&e.path())))
        .unwrap_or(false)
}

/// Unmounts the pod's memory-backed volumes (their directories go with the
/// pod's record). Safe to repeat; returns the errors.
pub fn release_volumes(sys: &dyn Sys, dir: &PodDir) -> Vec<String> {
    let mut errors = Vec::new();
    let Ok(entries) = fs::read_dir(dir.volumes_dir()) else {
        return errors;
    };
    for e in entries.flatten() {
        if let Err(err) = crate::sys::unmount_all(sys, &e.path()) {
            errors.push(crate::error::chain(&err));
        }
    }
    errors
}

/// Unmounts what the sandbox mounted on the host, in the reverse order of
/// setup: the memory-backed volumes, then the pod's /dev/shm. Safe to
/// repeat; returns the errors.
pub fn release_mounts(sys: &dyn Sys, dir: &PodDir) -> Vec<String> {
    let mut errors = release_volumes(sys, dir);
    if let Err(e) = sandbox::unmount_shm(sys, &dir.shm_dir()) {
        errors.push(crate::error::chain(&e));
    }
    errors
}

/// Releases every host resource of a pod, in an order that is safe to repeat:
/// processes (through the cgroups), the pod's mounts (volumes, /dev/shm),
/// its network namespace. Returns the errors; an empty list means clean.
pub fn release(
    sys: &dyn Sys,
    config: &Config,
    cgroups: &cgroups::Manager,
    dir: &PodDir,
    uid: &str,
) -> Vec<String> {
    if uid.is_empty() {
        // No uid, so no cgroup or netns was made: only mounts may be left.
        return release_mounts(sys, dir);
    }
    let mut errors = Vec::new();
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
        errors.push(crate::error::chain(&e));
    }
    errors.extend(release_mounts(sys, dir));
    // DEL before the namespace goes: the plugins release the veth and the
    // IP lease (DEL tolerates a netns that is already gone).
    if let Err(e) = network::detach(config, uid, &sandbox::netns_path(uid)) {
        errors.push(crate::error::chain(&e));
    }
    if let Err(e) = sandbox::remove_netns(sys, uid) {
        errors.push(crate::error::chain(&e));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::PodKey;
    use crate::sys::{Call, Recording};
    use nix::mount::MsFlags;

    fn pod_dir(tmp: &Path) -> PodDir {
        PodDir {
            key: PodKey::new("default", "web"),
            dir: tmp.join("state"),
            root: tmp.to_path_buf(),
            data: tmp.join("data"),
        }
    }

    fn tmpfs(source: &str, target: &Path, flags: MsFlags, data: &str) -> Call {
        Call::Mount {
            source: Some(source.into()),
            target: target.to_path_buf(),
            fstype: Some("tmpfs".into()),
            flags,
            data: Some(data.into()),
        }
    }

    /// The sandbox's host-side mounts as the shim makes them: /dev/shm in
    /// `create_sandbox`, then the memory-backed emptyDirs in
    /// `prepare_volumes` (a disk-backed one is a plain directory).
    fn set_up(sys: &dyn Sys, dir: &PodDir) -> (PathBuf, PathBuf) {
        let memory = volume_dir(dir, "cache");
        let disk = volume_dir(dir, "scratch");
        fs::create_dir_all(&memory).unwrap();
        fs::create_dir_all(&disk).unwrap();
        sandbox::mount_shm(sys, &dir.shm_dir()).unwrap();
        mount_memory_volume(sys, &memory, "mode=0777,size=1048576").unwrap();
        (memory, disk)
    }

    #[test]
    fn host_mounts_come_down_in_the_reverse_order_of_setup() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = pod_dir(tmp.path());
        let rec = Recording::new();
        let (memory, disk) = set_up(&rec, &dir);
        let shm = dir.shm_dir();
        assert_eq!(
            rec.calls(),
            [
                tmpfs(
                    "podlab-shm",
                    &shm,
                    MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                    "mode=1777,size=65536k",
                ),
                tmpfs(
                    "podlab-emptydir",
                    &memory,
                    MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                    "mode=0777,size=1048576",
                ),
            ]
        );
        assert!(volumes_mounted(&rec, &dir));
        assert!(!rec.is_mount_point(&disk));

        assert_eq!(release_mounts(&rec, &dir), Vec::<String>::new());
        assert_eq!(
            rec.calls()[2..],
            [Call::Unmount(memory.clone()), Call::Unmount(shm.clone())]
        );
        assert!(!volumes_mounted(&rec, &dir));
        assert!(!rec.is_mount_point(&shm));

        // Teardown is safe to repeat: nothing is left to unmount.
        assert_eq!(release_mounts(&rec, &dir), Vec::<String>::new());
        assert_eq!(rec.calls().len(), 4);
    }

    #[test]
    fn setup_does_not_stack_a_second_mount() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = pod_dir(tmp.path());
        let rec = Recording::new();
        set_up(&rec, &dir);
        set_up(&rec, &dir);
        assert_eq!(rec.calls().len(), 2, "{:?}", rec.calls());
    }

    #[test]
    fn teardown_removes_every_mount_stacked_on_shm_and_volumes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = pod_dir(tmp.path());
        let rec = Recording::new();
        let (memory, _) = set_up(&rec, &dir);
        // Stacked by hand (a crash between check and mount, an operator).
        rec.bind(&memory, &memory, false).unwrap();
        rec.bind(&dir.shm_dir(), &dir.shm_dir(), false).unwrap();
        assert!(release_mounts(&rec, &dir).is_empty());
        let unmounts: Vec<Call> = rec.calls()[4..].to_vec();
        assert_eq!(
            unmounts,
            [
                Call::Unmount(memory.clone()),
                Call::Unmount(memory),
                Call::Unmount(dir.shm_dir()),
                Call::Unmount(dir.shm_dir()),
            ]
        );
    }

    #[test]
    fn a_failed_unmount_is_reported_and_the_rest_still_comes_down() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = pod_dir(tmp.path());
        let rec = Recording::failing(|c| matches!(c, Call::Unmount(_)));
        let (memory, _) = set_up(&rec, &dir);
        let errors = release_mounts(&rec, &dir);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("cache"), "{errors:?}");
        assert!(errors[1].contains("shm"), "{errors:?}");
        // One attempt each: a mount that will not go does not loop.
        assert_eq!(
            rec.calls()[2..],
            [Call::Unmount(memory), Call::Unmount(dir.shm_dir())]
        );
    }

    #[test]
    fn a_missing_netns_needs_no_unmount() {
        let rec = Recording::new();
        sandbox::remove_netns(&rec, "no-such-pod-uid-for-a-unit-test").unwrap();
        assert!(rec.calls().is_empty());
    }
}
