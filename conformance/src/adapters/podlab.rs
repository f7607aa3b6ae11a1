//! The podlab adapter: podlab is one kubectl-shaped binary, so this is the
//! [CLI adapter](crate::adapters::cli) pointed at `podlab` with a state
//! directory of its own per suite run (it never sees or disturbs pods
//! anyone else created), plus what only a local runtime allows: checking
//! the host for the netns, cgroups and processes a pod left behind.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use crate::adapters::cli::{Cli, CliConfig};
use crate::runtime::{Capabilities, Error, ExecOutput, PidsLimits, Runtime};
use podlab_testkit::host;

/// The pids limit the adapter asks podlab to give every container
/// (`PODLAB_PIDS_LIMIT`), so the pids tests know what to expect.
pub const CONTAINER_PIDS_LIMIT: u64 = 512;

/// The restart back-off base the adapter asks podlab for (`PODLAB_BACKOFF_BASE_MS`).
const BACKOFF_BASE_MS: u64 = 200;

/// How long `podlab get pods` may take when looking for leftovers.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);

#[derive(Clone, Debug)]
pub struct PodlabConfig {
    /// The `podlab` binary.
    pub bin: PathBuf,
    /// The image store holding the probe image; podlab's default when None.
    pub image_root: Option<PathBuf>,
    /// The probe image reference.
    pub probe_image: String,
    /// Extra environment for every podlab process (the shims inherit it),
    /// e.g. `PODLAB_MUTANT`.
    pub env: Vec<(String, String)>,
    /// A test registry podlab pulls from (`HOST:PORT` on loopback, which
    /// podlab speaks plain HTTP to), declared as the `registry` capability.
    pub registry: Option<String>,
}

impl PodlabConfig {
    pub fn new(bin: PathBuf) -> PodlabConfig {
        PodlabConfig {
            bin,
            image_root: None,
            probe_image: "podlab.local/probe:latest".into(),
            env: Vec::new(),
            registry: None,
        }
    }
}

pub struct Podlab {
    cli: Cli,
    /// This run's private state directory (`--root`), removed on drop.
    root: tempfile::TempDir,
    /// This run's private data directory (`--data-root`: writable layers,
    /// emptyDirs, logs), removed on drop.
    data: tempfile::TempDir,
    /// Every pod uid this adapter saw, to look for leftovers.
    uids: Mutex<Vec<String>>,
}

impl Podlab {
    pub fn new(config: PodlabConfig) -> Result<Podlab, Error> {
        let root = tempfile::Builder::new()
            .prefix("podlab-conformance-")
            .tempdir()
            .map_err(|e| Error::Other(format!("cannot create a state directory: {e}")))?;
        // On disk, where podlab's default data root is: the STOR tests
        // write tens of MB, too much for a tmpfs /tmp.
        let data = tempfile::Builder::new()
            .prefix("podlab-conformance-data-")
            .tempdir_in(std::env::temp_dir())
            .map_err(|e| Error::Other(format!("cannot create a data directory: {e}")))?;
        // Global options come before the subcommand: after `exec ... --`
        // they would be the command's.
        // Localhost seccomp profiles: a directory of this run's own, where
        // the SEC tests write theirs.
        let seccomp = root.path().join("seccomp");
        let mut global_args = vec![
            "--root".into(),
            root.path().display().to_string(),
            "--data-root".into(),
            data.path().display().to_string(),
            "--seccomp-root".into(),
            seccomp.display().to_string(),
        ];
        if let Some(images) = &config.image_root {
            global_args.extend(["--image-root".into(), images.display().to_string()]);
        }
        let mut env = vec![
            (
                "PODLAB_PIDS_LIMIT".to_string(),
                CONTAINER_PIDS_LIMIT.to_string(),
            ),
            // Restart back-off in fractions of a second, so restart tests
            // do not wait out the kubelet's ten seconds.
            (
                "PODLAB_BACKOFF_BASE_MS".to_string(),
                BACKOFF_BASE_MS.to_string(),
            ),
            // The ephemeral-storage scan every half second instead of the
            // kubelet's ten, so eviction tests end quickly.
            ("PODLAB_STORAGE_SCAN_MS".to_string(), "500".to_string()),
            ("PODLAB_LOG_MAX_SIZE".to_string(), LOG_MAX_SIZE.to_string()),
            (
                "PODLAB_LOG_MAX_FILES".to_string(),
                LOG_MAX_FILES.to_string(),
            ),
        ];
        env.extend(config.env);
        let cli = CliConfig {
            bin: config.bin,
            global_args,
            context: None,
            capabilities: capabilities(seccomp, config.registry),
            probe_image: config.probe_image,
            env,
        };
        Ok(Podlab {
            cli: Cli::named("podlab".into(), cli),
            root,
            data,
            uids: Mutex::new(Vec::new()),
        })
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    fn remember_uid(&self, pod: &Pod) {
        if let Some(uid) = &pod.metadata.uid {
            let mut uids = self.uids.lock().unwrap_or_else(|e| e.into_inner());
            if !uids.contains(uid) {
                uids.push(uid.clone());
            }
        }
    }

    fn leftovers_now(&self) -> Vec<String> {
        let mut left = Vec::new();
        match self
            .cli
            .run(&["get", "pods", "-A", "-o", "name"], None, COMMAND_TIMEOUT)
        {
            Ok(out) if out.exit_code == 0 => {
                left.extend(
                    out.stdout
                        .lines()
                        .filter(|l| !l.trim().is_empty())
                        .map(|l| format!("podlab still lists {}", l.trim())),
                );
            }
            Ok(out) => left.push(format!("podlab get pods failed: {}", out.stderr.trim())),
            Err(e) => left.push(e.to_string()),
        }
        let mut marks = self.uids.lock().unwrap_or_else(|e| e.into_inner()).clone();
        left.extend(host_leftovers(&marks));
        left.extend(nat_rule_leftovers(&host::nat_rules(), &marks));
        left.extend(store_leftovers(
            &[self.root.path(), self.data.path()],
            &std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default(),
        ));
        // Processes: a shim names our state directory, a pause its pod's
        // netns (by uid), a container process sits in its pod's cgroup.
        marks.push(self.root.path().to_string_lossy().into_owned());
        left.extend(process_leftovers(Path::new("/proc"), &marks));
        left
    }
}

/// What podlab offers the suite.
fn capabilities(seccomp_root: PathBuf, registry: Option<String>) -> Capabilities {
    Capabilities {
        // Every pod is attached to the podlab0 bridge, where the node
        // is the gateway.
        pod_ip: true,
        // A privileged container keeps every capability, CAP_SYS_ADMIN too.
        privileged: true,
        cgroup_visible: true,
        pending_observable: true,
        share_process_namespace: true,
        same_kernel: true,
        node_reaches_pods: true,
        pids: PidsLimits {
            pod_field: true,
            per_container: Some(CONTAINER_PIDS_LIMIT),
        },
        init_containers: true,
        restart_policy: true,
        unschedulable: true,
        oom_reason: true,
        probes: true,
        hooks: true,
        storage_eviction: true,
        log_bound: Some(LOG_MAX_SIZE * LOG_MAX_FILES),
        // hostPort through the portmap plugin podlab chains after bridge.
        host_ports: true,
        host_paths: true,
        // `podlab exec --timeout`, which the adapter passes.
        exec_timeout: true,
        seccomp_root: Some(seccomp_root),
        registry,
    }
}

/// The log rotation the adapter asks podlab for (`PODLAB_LOG_MAX_SIZE`,
/// `PODLAB_LOG_MAX_FILES`): small, so STOR-001 writes a few MB, not 60.
const LOG_MAX_SIZE: u64 = 1 << 20;
const LOG_MAX_FILES: u64 = 3;

/// Bytes of the files under `dir` (a container's log directory).
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

impl Runtime for Podlab {
    fn name(&self) -> &str {
        self.cli.name()
    }

    fn capabilities(&self) -> Capabilities {
        self.cli.capabilities()
    }

    fn probe_image(&self) -> String {
        self.cli.probe_image()
    }

    fn create_pod(&self, manifest_yaml: &str) -> Result<(), Error> {
        self.cli.create_pod(manifest_yaml)
    }

    fn get_pod(&self, name: &str) -> Result<Option<Pod>, Error> {
        let pod = self.cli.get_pod(name)?;
        if let Some(pod) = &pod {
            self.remember_uid(pod);
        }
        Ok(pod)
    }

    fn exec(
        &self,
        pod: &str,
        container: &str,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, Error> {
        self.cli.exec(pod, container, argv, timeout)
    }

    fn delete_pod(&self, name: &str) -> Result<(), Error> {
        self.cli.delete_pod(name)
    }

    fn delete_pod_with_grace(&self, name: &str, seconds: u32) -> Result<(), Error> {
        self.cli.delete_pod_with_grace(name, seconds)
    }

    fn leftovers(&self) -> Vec<String> {
        crate::runtime::settled_leftovers(|| self.leftovers_now())
    }

    fn logs(
        &self,
        pod: &str,
        container: &str,
        tail: Option<usize>,
        previous: bool,
    ) -> Result<String, Error> {
        self.cli.logs(pod, container, tail, previous)
    }

    /// What is in the container's log directory under the data root, over
    /// every namespace (the current start's files and the previous one's).
    fn log_bytes(&self, pod: &str, container: &str) -> Result<u64, Error> {
        let pods = self.data.path().join("pods");
        let mut total = 0;
        let mut found = false;
        for ns in std::fs::read_dir(&pods).into_iter().flatten().flatten() {
            let dir = ns.path().join(pod).join("logs").join(container);
            if dir.is_dir() {
                found = true;
                total += dir_bytes(&dir);
            }
        }
        if !found {
            return Err(Error::NotFound(format!(
                "{pod} (no log directory of {container})"
            )));
        }
        Ok(total)
    }
}

/// Network namespaces and cgroup directories on the host that still
/// carry the uid of one of our pods.
fn host_leftovers(uids: &[String]) -> Vec<String> {
    host::named_leftovers(Path::new("/run/netns"), Path::new("/sys/fs/cgroup"), uids)
}

/// hostPort rules (CNI portmap tags each with its container id, podlab's
/// pod uid) still there for one of our pods.
fn nat_rule_leftovers(rules: &str, uids: &[String]) -> Vec<String> {
    host::nat_rules_naming(rules, uids)
        .into_iter()
        .map(|l| format!("iptables nat rule {l:?} is still there"))
        .collect()
}

/// Pod directories left under the state or the data root (`pods/NS/NAME`),
/// and mounts still under either (`mountinfo` is /proc/self/mountinfo).
fn store_leftovers(roots: &[&Path], mountinfo: &str) -> Vec<String> {
    let mut left = Vec::new();
    for root in roots {
        let pods = root.join("pods");
        for ns in std::fs::read_dir(&pods).into_iter().flatten().flatten() {
            for pod in std::fs::read_dir(ns.path()).into_iter().flatten().flatten() {
                left.push(format!("{} is still there", pod.path().display()));
            }
        }
        let prefix = format!("{}/", root.display());
        for line in mountinfo.lines() {
            // The mount point is the fifth field.
            if line
                .split(' ')
                .nth(4)
                .is_some_and(|m| m.starts_with(&prefix))
            {
                left.push(format!("still mounted: {line}"));
            }
        }
    }
    left.sort();
    left
}

/// Processes whose command line or cgroup membership mentions one of `marks`.
fn process_leftovers(proc_root: &Path, marks: &[String]) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let mut left = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let cmdline = std::fs::read(e.path().join("cmdline"))
            .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
            .unwrap_or_default();
        let cgroup = std::fs::read_to_string(e.path().join("cgroup")).unwrap_or_default();
        if marks
            .iter()
            .any(|m| !m.is_empty() && (cmdline.contains(m.as_str()) || cgroup.contains(m.as_str())))
        {
            left.push(format!(
                "process {name} is still running: {}",
                cmdline.trim()
            ));
        }
    }
    left.sort();
    left
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portmap_rules_of_our_pods_are_leftovers() {
        let rules = "-N CNI-HOSTPORT-DNAT\n\
            -A CNI-HOSTPORT-DNAT -p tcp -m comment --comment \"dnat name: \\\"podlab\\\" id: \\\"u-1\\\"\" -j CNI-DN-x\n\
            -A CNI-HOSTPORT-DNAT -m comment --comment \"id: \\\"other\\\"\" -j CNI-DN-y\n";
        let left = nat_rule_leftovers(rules, &["u-1".to_string()]);
        assert_eq!(left.len(), 1, "{left:?}");
        assert!(left[0].contains("CNI-DN-x"));
        assert!(nat_rule_leftovers(rules, &[]).is_empty());
    }

    #[test]
    fn store_leftovers_are_pod_dirs_and_mounts_under_either_root() {
        let dir = tempfile::tempdir().unwrap();
        let (state, data) = (dir.path().join("state"), dir.path().join("data"));
        std::fs::create_dir_all(state.join("pods/default")).unwrap();
        std::fs::create_dir_all(data.join("pods")).unwrap();
        assert_eq!(store_leftovers(&[&state, &data], ""), Vec::<String>::new());
        std::fs::create_dir_all(data.join("pods/default/web/volumes/v")).unwrap();
        let mounts = format!(
            "40 30 0:50 / {}/pods/default/web/volumes/v rw - tmpfs podlab-emptydir rw\n\
             41 30 0:51 / /elsewhere rw - tmpfs x rw",
            data.display()
        );
        let left = store_leftovers(&[&state, &data], &mounts);
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(
            left[0].contains("data/pods/default/web is still there"),
            "{left:?}"
        );
        assert!(left[1].starts_with("still mounted: 40 "), "{left:?}");
    }

    #[test]
    fn leftover_processes_are_found_by_command_line_or_cgroup() {
        let dir = tempfile::tempdir().unwrap();
        let proc_root = dir.path();
        let write = |pid: &str, cmdline: &[u8], cgroup: &str| {
            std::fs::create_dir_all(proc_root.join(pid)).unwrap();
            std::fs::write(proc_root.join(pid).join("cmdline"), cmdline).unwrap();
            std::fs::write(proc_root.join(pid).join("cgroup"), cgroup).unwrap();
        };
        write(
            "10",
            b"podlab\0__pause\0--netns\0/run/netns/podlab-uid-1\0",
            "4:memory:/\n",
        );
        write(
            "11",
            b"sleep\x003600\0",
            "4:memory:/podlab/pod-uid-1/ctr-app\n",
        );
        write(
            "12",
            b"sleep\x003600\0",
            "4:memory:/podlab/pod-uid-9/ctr-app\n",
        );
        std::fs::create_dir_all(proc_root.join("self")).unwrap();
        let left = process_leftovers(proc_root, &["uid-1".to_string()]);
        assert_eq!(
            left,
            [
                "process 10 is still running: podlab __pause --netns /run/netns/podlab-uid-1",
                "process 11 is still running: sleep 3600"
            ]
        );
    }
}
