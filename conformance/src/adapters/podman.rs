//! The podman adapter: pods through `podman kube play` of the suite's own
//! manifests, status from `podman pod inspect` + `podman inspect` mapped to
//! a v1 Pod, `podman exec`, `podman pod rm`.
//!
//! Every podman process of a run uses private storage, run and temporary
//! directories and a private containers.conf (CONTAINERS_CONF) in one
//! temporary directory: the host's podman configuration, images and
//! containers are neither read for state nor changed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::adapters::host::{processes_naming, remove_cgroup_tree, unmount_under};
use crate::adapters::process::{check_status, run_with_timeout};
use crate::runtime::{Capabilities, Error, ExecOutput, PidsLimits, Runtime};

/// How long a management command (play, inspect, rm) may take; the first
/// `kube play` also builds podman's pause image.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// Podman's configuration for this run: the OCI runtime asked for (runc
/// by default: crun 1.8 refuses a hybrid cgroup hierarchy); ulimits within
/// the hard limits, because podman's defaults need CAP_SYS_RESOURCE; file
/// locks in the private tmpdir, so the host's shared-memory lock table is
/// never used.
fn containers_conf(oci_runtime: &str) -> String {
    format!(
        r#"# Written by the podlab conformance suite for one run.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "{oci_runtime}"
lock_type = "file"
"#
    )
}

/// registries.conf for one run: no search registries (a short name is
/// never looked up on the network), and the test registry, when there is
/// one, listed as insecure as its user would list a plain-HTTP registry.
fn registries_conf(registry: Option<&str>) -> String {
    let mut conf = String::from(
        "# Written by the podlab conformance suite for one run.\nunqualified-search-registries = []\n",
    );
    if let Some(address) = registry {
        conf.push_str(&format!(
            "\n[[registry]]\nlocation = \"{address}\"\ninsecure = true\n"
        ));
    }
    conf
}

/// Where podman puts pod cgroups with the cgroupfs manager.
const CGROUP_PARENT: &str = "libpod_parent";

#[derive(Clone, Debug)]
pub struct PodmanConfig {
    /// The `podman` binary.
    pub bin: PathBuf,
    /// OCI image layouts to load; each is tagged with its
    /// `org.opencontainers.image.ref.name` annotation.
    pub layouts: Vec<PathBuf>,
    /// The probe image reference (one of the layouts' names).
    pub probe_image: String,
    /// The OCI runtime podman runs containers with; the run is named
    /// `podman-<runtime>` after it.
    pub oci_runtime: String,
    /// A test registry on loopback (`HOST:PORT`), listed as insecure in
    /// this run's registries.conf and declared as the `registry` capability.
    pub registry: Option<String>,
}

impl PodmanConfig {
    pub fn new(bin: PathBuf) -> PodmanConfig {
        PodmanConfig {
            bin,
            layouts: Vec::new(),
            probe_image: "podlab.local/probe:latest".into(),
            oci_runtime: "runc".into(),
            registry: None,
        }
    }
}

pub struct Podman {
    config: PodmanConfig,
    /// `podman-<OCI runtime>`.
    name: String,
    /// Storage, run state, temp dir, containers.conf and manifests; removed on drop.
    dir: tempfile::TempDir,
    /// The manifests of the pods this adapter created, by name: podman
    /// keeps no v1 spec, so `get_pod` returns the one it was given.
    specs: Mutex<HashMap<String, Value>>,
    /// The podman pod id of every pod seen, by name, to remove and look
    /// for its leftover cgroups.
    pod_ids: Mutex<HashMap<String, String>>,
    /// The cgroup parent directories that did not exist before this run.
    new_cgroup_parents: Vec<PathBuf>,
}

impl Podman {
    /// Prepares the private directories and loads the image layouts.
    pub fn new(config: PodmanConfig) -> Result<Podman, Error> {
        let dir = tempfile::Builder::new()
            .prefix("podlab-conformance-podman-")
            .tempdir()
            .map_err(|e| Error::Other(format!("cannot create a state directory: {e}")))?;
        for sub in ["root", "runroot", "tmp", "net", "volumes", "manifests"] {
            std::fs::create_dir_all(dir.path().join(sub))
                .map_err(|e| Error::Other(format!("cannot create {sub}: {e}")))?;
        }
        let conf = dir.path().join("containers.conf");
        std::fs::write(&conf, containers_conf(&config.oci_runtime))
            .map_err(|e| Error::Other(format!("cannot write {}: {e}", conf.display())))?;
        let registries = dir.path().join("registries.conf");
        std::fs::write(&registries, registries_conf(config.registry.as_deref()))
            .map_err(|e| Error::Other(format!("cannot write {}: {e}", registries.display())))?;
        let new_cgroup_parents = cgroup_parents()
            .into_iter()
            .filter(|p| !p.exists())
            .collect();
        let podman = Podman {
            name: format!("podman-{}", config.oci_runtime),
            config,
            dir,
            specs: Mutex::new(HashMap::new()),
            pod_ids: Mutex::new(HashMap::new()),
            new_cgroup_parents,
        };
        for layout in podman.config.layouts.clone() {
            podman.load(&layout)?;
        }
        Ok(podman)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Loads one OCI layout and tags it with the reference it carries.
    fn load(&self, layout: &Path) -> Result<(), Error> {
        let reference = layout_reference(layout)?;
        let source = format!("oci:{}", layout.display());
        let out = self.run(&["pull", "--quiet", &source], COMMAND_TIMEOUT)?;
        check_status(&out, &format!("podman pull --quiet {source}"))?;
        let id = out.stdout.trim();
        if id.is_empty() {
            return Err(Error::Parse {
                command: format!("podman pull --quiet {source}"),
                detail: "no image id printed".into(),
            });
        }
        let out = self.run(&["tag", id, &reference], COMMAND_TIMEOUT)?;
        check_status(&out, &format!("podman tag {id} {reference}"))
    }

    fn command(&self, args: &[&str]) -> Command {
        let d = self.dir.path();
        let mut cmd = Command::new(&self.config.bin);
        cmd.arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("runroot"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .arg("--network-config-dir")
            .arg(d.join("net"))
            .arg("--volumepath")
            .arg(d.join("volumes"))
            .arg("--cgroup-manager=cgroupfs")
            .arg("--events-backend=file");
        cmd.args(args);
        cmd.env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", d.join("registries.conf"));
        // conmon of `podman exec` notes an OOM kill by creating a file
        // `oom` in its working directory (measured: the suite's own).
        cmd.current_dir(d);
        cmd.stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str], timeout: Duration) -> Result<ExecOutput, Error> {
        let shown = format!("podman {}", args.join(" "));
        run_with_timeout(self.command(args), None, timeout, &shown)
    }

    fn remember_pod_id(&self, name: &str, id: &str) {
        self.pod_ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), id.to_string());
    }

    /// The pod's podman id, from an earlier look or by asking.
    fn pod_id(&self, name: &str) -> Option<String> {
        let known = self
            .pod_ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned();
        known.or_else(|| {
            let out = self
                .run(
                    &["pod", "inspect", "--format", "{{.Id}}", name],
                    COMMAND_TIMEOUT,
                )
                .ok()?;
            let id = out.stdout.trim();
            (out.exit_code == 0 && !id.is_empty()).then(|| id.to_string())
        })
    }

    /// One look at the pod: `None` when podman does not know it.
    fn inspect(&self, name: &str) -> Result<Option<Pod>, Error> {
        let out = self.run(&["pod", "inspect", name], COMMAND_TIMEOUT)?;
        if out.exit_code != 0 {
            if out.stderr.contains("no such pod") {
                return Ok(None);
            }
            check_status(&out, &format!("podman pod inspect {name}"))?;
        }
        let pod = parse_pod_inspect(&out.stdout).map_err(|detail| Error::Parse {
            command: format!("podman pod inspect {name}"),
            detail,
        })?;
        self.remember_pod_id(name, &pod.id);
        let ids: Vec<&str> = pod
            .containers
            .iter()
            .filter(|c| c.id != pod.infra_container_id)
            .map(|c| c.id.as_str())
            .collect();
        let containers = if ids.is_empty() {
            Vec::new()
        } else {
            let mut args = vec!["inspect", "--type", "container"];
            args.extend(&ids);
            let out = self.run(&args, COMMAND_TIMEOUT)?;
            check_status(&out, &format!("podman inspect {name}'s containers"))?;
            serde_json::from_str::<Vec<CtrInspect>>(&out.stdout).map_err(|e| Error::Parse {
                command: format!("podman inspect {name}'s containers"),
                detail: e.to_string(),
            })?
        };
        let spec = self
            .specs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned();
        let value = to_v1_pod(name, spec.as_ref(), &pod, &containers);
        serde_json::from_value(value)
            .map(Some)
            .map_err(|e| Error::Parse {
                command: format!("podman pod inspect {name}"),
                detail: format!("the mapped pod is not a v1 Pod: {e}"),
            })
    }
}

impl Runtime for Podman {
    fn name(&self) -> &str {
        &self.name
    }

    /// One container of the probe image, run and removed: the OCI runtime
    /// starts it, so one that cannot run here says so.
    fn preflight(&self) -> Result<(), Error> {
        let out = self.run(
            &[
                "run",
                "--rm",
                "--network",
                "none",
                &self.config.probe_image,
                "true",
            ],
            COMMAND_TIMEOUT,
        )?;
        check_status(&out, "podman run --rm (preflight)")
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            // `--network none`: pods have loopback only, no pod address.
            pod_ip: false,
            privileged: true,
            // Measured: runc with cgroup namespaces off shows a container its
            // own cgroup's files at /sys/fs/cgroup/<controller>/.
            cgroup_visible: true,
            // `kube play` pulls every image before it creates the pod and
            // fails as a whole: a pod that cannot start is never reported.
            pending_observable: false,
            share_process_namespace: true,
            same_kernel: true,
            // No pod network (`--network none`), so nothing to reach.
            node_reaches_pods: false,
            pids: PidsLimits {
                // kube play ignores pod-level resources, and on cgroup v1
                // podman sets no pids limit by default (measured: pids.max
                // is "max" even with pids_limit in containers.conf).
                pod_field: false,
                per_container: None,
            },
            // Not verified on podman: the tests that need these skip.
            // Measured for init containers (podman 4.3.1, kube play, restartPolicy
            // Always): an init container that exited 0 is run again and again
            // (`ln -s` ran 200 times) and the app container stays Created. kube
            // play also ignores an emptyDir mount's subPath: the whole volume is
            // mounted at mountPath, so the ESC subPath tests could not attack it.
            init_containers: false,
            restart_policy: false,
            unschedulable: false,
            oom_reason: false,
            // kube play turns a liveness probe into a podman healthcheck, with
            // no restart of its own and no readiness: not the kubelet's probes.
            probes: false,
            // Not verified on podman 4.3.1's kube play.
            hooks: false,
            // podman has no eviction: nothing measures a pod's disk use.
            storage_eviction: false,
            log_bound: None,
            host_ports: false,
            host_paths: true,
            // `podman exec` has no timeout: the adapter can only kill the
            // client, and the command goes on in the container.
            exec_timeout: false,
            seccomp_root: None,
            registry: self.config.registry.clone(),
        }
    }

    fn probe_image(&self) -> String {
        self.config.probe_image.clone()
    }

    fn create_pod(&self, manifest_yaml: &str) -> Result<(), Error> {
        let manifest: Value = serde_norway::from_str(manifest_yaml).map_err(|e| Error::Parse {
            command: "the pod manifest".into(),
            detail: e.to_string(),
        })?;
        let name = manifest
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty() && !n.contains('/'))
            .ok_or_else(|| Error::Other("the manifest has no usable metadata.name".into()))?
            .to_string();
        let file = self
            .dir
            .path()
            .join("manifests")
            .join(format!("{name}.yaml"));
        std::fs::write(&file, manifest_yaml)
            .map_err(|e| Error::Other(format!("cannot write {}: {e}", file.display())))?;
        self.specs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name, manifest);
        let file = file.to_string_lossy();
        let args = ["kube", "play", "--network", "none", file.as_ref()];
        let out = self.run(&args, COMMAND_TIMEOUT)?;
        check_status(&out, &format!("podman {}", args.join(" ")))
    }

    fn get_pod(&self, name: &str) -> Result<Option<Pod>, Error> {
        // A container can vanish between the two inspects while the pod is
        // being removed: look once more before calling that an error.
        match self.inspect(name) {
            Err(Error::Command { .. }) => self.inspect(name),
            other => other,
        }
    }

    fn exec(
        &self,
        pod: &str,
        container: &str,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, Error> {
        // kube play names containers <pod>-<container>; podman exec stops
        // parsing its own options at the container name.
        let target = format!("{pod}-{container}");
        let mut args = vec!["exec", target.as_str()];
        args.extend(argv.iter().map(String::as_str));
        self.run(&args, timeout)
    }

    fn delete_pod(&self, name: &str) -> Result<(), Error> {
        let id = self.pod_id(name);
        let args = ["pod", "rm", "--force", "--time", "0", "--ignore", name];
        let out = self.run(&args, COMMAND_TIMEOUT)?;
        check_status(&out, &format!("podman {}", args.join(" ")))?;
        if let Some(id) = id {
            remove_pod_cgroups(&cgroup_parents(), &id);
        }
        self.specs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        Ok(())
    }

    fn leftovers(&self) -> Vec<String> {
        crate::runtime::settled_leftovers(|| self.leftovers_now())
    }

    /// `podman logs [--tail N] <pod>-<container>`. podman 4.3.1's `logs`
    /// has no `--previous`: a previous run's log cannot be asked for.
    fn logs(
        &self,
        pod: &str,
        container: &str,
        tail: Option<usize>,
        previous: bool,
    ) -> Result<String, Error> {
        if previous {
            return Err(Error::Unsupported(
                "podman 4.3.1's `podman logs` has no --previous option (measured: `podman logs --help`), so the adapter cannot ask for a previous run's log".into(),
            ));
        }
        let target = format!("{pod}-{container}");
        let tail = tail.map(|n| n.to_string());
        let mut args = vec!["logs"];
        if let Some(n) = &tail {
            args.extend(["--tail", n.as_str()]);
        }
        args.push(&target);
        let out = self.run(&args, COMMAND_TIMEOUT)?;
        check_status(&out, &format!("podman {}", args.join(" ")))?;
        // podman prints the container's stderr on its own stderr.
        Ok(format!("{}{}", out.stdout, out.stderr))
    }
}

impl Podman {
    fn leftovers_now(&self) -> Vec<String> {
        let mut left = Vec::new();
        for (what, args) in [
            ("pod", &["pod", "ps", "--format", "{{.Name}}"][..]),
            ("container", &["ps", "--all", "--format", "{{.Names}}"][..]),
        ] {
            match self.run(args, COMMAND_TIMEOUT) {
                Ok(out) if out.exit_code == 0 => left.extend(
                    out.stdout
                        .lines()
                        .filter(|l| !l.trim().is_empty())
                        .map(|l| format!("podman still lists {what} {}", l.trim())),
                ),
                Ok(out) => left.push(format!("podman {}: {}", args.join(" "), out.stderr.trim())),
                Err(e) => left.push(e.to_string()),
            }
        }
        let ids: Vec<String> = self
            .pod_ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for parent in cgroup_parents() {
            for id in &ids {
                let d = parent.join(id);
                if d.exists() {
                    left.push(format!("{} is still there", d.display()));
                }
            }
        }
        // conmon, the containers' processes' keepers, names our directory.
        let mark = self.dir.path().to_string_lossy().into_owned();
        left.extend(processes_naming(Path::new("/proc"), &mark));
        left
    }
}

impl Drop for Podman {
    /// Removes everything in the private store so its overlay mounts are
    /// released before the directory goes, then the cgroup parents this
    /// run created (empty by then).
    fn drop(&mut self) {
        let quiet = Duration::from_secs(60);
        let _ = self.run(&["pod", "rm", "--all", "--force", "--time", "0"], quiet);
        let parents = cgroup_parents();
        let ids = self
            .pod_ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for id in ids.values() {
            remove_pod_cgroups(&parents, id);
        }
        let _ = self.run(&["rm", "--all", "--force", "--time", "0"], quiet);
        let _ = self.run(&["rmi", "--all", "--force"], quiet);
        unmount_under(self.dir.path());
        for p in &self.new_cgroup_parents {
            // rmdir of a cgroup only succeeds when it has no children or tasks.
            let _ = std::fs::remove_dir(p);
        }
    }
}

/// `/sys/fs/cgroup/<hierarchy>/libpod_parent` for every v1 hierarchy (and
/// the unified one).
fn cgroup_parents() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path().join(CGROUP_PARENT))
        .collect();
    dirs.sort();
    dirs
}

/// Removes what is left of a removed pod's cgroups.
///
/// podman 4.3 with the cgroupfs manager on a v1 hybrid host removes the
/// pod's cgroup from the v1 controllers but leaves the empty copies in the
/// `name=systemd` and unified hierarchies (measured: two directories per
/// pod, forever). They are empty once `pod rm` returns, and rmdir removes
/// nothing else: a cgroup with processes or children refuses it.
fn remove_pod_cgroups(parents: &[PathBuf], pod_id: &str) {
    if pod_id.is_empty() || pod_id.contains('/') {
        return;
    }
    for parent in parents {
        remove_cgroup_tree(&parent.join(pod_id));
    }
}

/// The reference an OCI layout's index names its (first) image by.
fn layout_reference(layout: &Path) -> Result<String, Error> {
    let path = layout.join("index.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::Other(format!("cannot read {}: {e}", path.display())))?;
    let index: Value = serde_json::from_str(&text).map_err(|e| Error::Parse {
        command: path.display().to_string(),
        detail: e.to_string(),
    })?;
    index
        .pointer("/manifests/0/annotations/org.opencontainers.image.ref.name")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| Error::Parse {
            command: path.display().to_string(),
            detail: "no org.opencontainers.image.ref.name annotation".into(),
        })
}

/// What `podman pod inspect` says that the mapping uses.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PodInspect {
    id: String,
    #[serde(default)]
    created: String,
    #[serde(default)]
    infra_container_id: String,
    #[serde(default)]
    containers: Vec<PodMember>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PodMember {
    id: String,
}

/// What `podman inspect` says about one container that the mapping uses.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CtrInspect {
    id: String,
    name: String,
    image: String,
    image_name: String,
    restart_count: i32,
    state: CtrState,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CtrState {
    status: String,
    #[serde(rename = "OOMKilled")]
    oom_killed: bool,
    exit_code: i32,
    error: String,
    started_at: String,
    finished_at: String,
}

/// podman 4 prints one object, podman 5 a one-element array.
fn parse_pod_inspect(stdout: &str) -> Result<PodInspect, String> {
    let v: Value = serde_json::from_str(stdout).map_err(|e| e.to_string())?;
    let v = match v {
        Value::Array(mut items) if !items.is_empty() => items.swap_remove(0),
        Value::Array(_) => return Err("an empty list".into()),
        other => other,
    };
    serde_json::from_value(v).map_err(|e| e.to_string())
}

/// Go's zero time means "never".
fn time(t: &str) -> Option<&str> {
    (!t.is_empty() && !t.starts_with("0001-01-01")).then_some(t)
}

/// The latest of some RFC 3339 times (compared as times: fractions of a
/// second vary in length, so the strings do not sort).
fn latest<'a>(times: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    times
        .filter_map(|t| {
            t.parse::<k8s_openapi::jiff::Timestamp>()
                .ok()
                .map(|ts| (ts, t))
        })
        .max_by_key(|(ts, _)| *ts)
        .map(|(_, t)| t)
}

/// A container's state as podman sees it, in Kubernetes terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Created but never started.
    Waiting,
    Running,
    Terminated,
}

fn kind(c: &CtrInspect) -> Kind {
    match c.state.status.as_str() {
        // A paused container still has its processes.
        "running" | "paused" | "stopping" => Kind::Running,
        "exited" | "stopped" => Kind::Terminated,
        // created, configured, initialized, removing, unknown
        _ => Kind::Waiting,
    }
}

fn state_json(c: &CtrInspect) -> Value {
    let container_id = format!("podman://{}", c.id);
    match kind(c) {
        Kind::Running => {
            json!({"running": {"startedAt": time(&c.state.started_at)}})
        }
        Kind::Terminated => {
            let reason = if c.state.oom_killed {
                "OOMKilled"
            } else if c.state.exit_code == 0 {
                "Completed"
            } else {
                "Error"
            };
            let mut t = json!({
                "exitCode": c.state.exit_code,
                "reason": reason,
                "containerID": container_id,
                "startedAt": time(&c.state.started_at),
                "finishedAt": time(&c.state.finished_at),
            });
            if !c.state.error.is_empty() {
                t["message"] = json!(c.state.error);
            }
            json!({ "terminated": t })
        }
        Kind::Waiting => {
            let mut w = json!({"reason": "ContainerCreating"});
            if !c.state.error.is_empty() {
                w = json!({"reason": "CreateContainerError", "message": c.state.error});
            }
            json!({ "waiting": w })
        }
    }
}

fn status_json(name: &str, c: &CtrInspect) -> Value {
    let running = kind(c) == Kind::Running;
    json!({
        "name": name,
        "image": c.image_name,
        "imageID": format!("sha256:{}", c.image),
        "containerID": format!("podman://{}", c.id),
        // No readiness probes: a running container is ready, as in Kubernetes.
        "ready": running,
        "started": running,
        "restartCount": c.restart_count,
        "state": state_json(c),
    })
}

/// The names of a manifest's containers or init containers.
fn names(spec: Option<&Value>, field: &str) -> Vec<String> {
    spec.and_then(|s| s.pointer(&format!("/spec/{field}")))
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a terminated container will be started again under `policy`.
fn restarts(policy: &str, c: &CtrInspect) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => c.state.exit_code != 0,
        _ => true,
    }
}

/// Maps what podman reports to a v1 Pod. `spec` is the manifest the pod
/// was created from (when this adapter created it).
fn to_v1_pod(name: &str, spec: Option<&Value>, pod: &PodInspect, ctrs: &[CtrInspect]) -> Value {
    let prefix = format!("{name}-");
    let short = |c: &CtrInspect| c.name.strip_prefix(&prefix).unwrap_or(&c.name).to_string();
    let by_name: HashMap<String, &CtrInspect> = ctrs.iter().map(|c| (short(c), c)).collect();
    let init_names = names(spec, "initContainers");
    let mut app_names = names(spec, "containers");
    if spec.is_none() {
        // A pod someone else created: every non-infra container is an app container.
        app_names = ctrs.iter().map(short).collect();
        app_names.sort();
    }
    let policy = spec
        .and_then(|s| s.pointer("/spec/restartPolicy"))
        .and_then(Value::as_str)
        .unwrap_or("Always");

    let statuses = |names: &[String]| -> Vec<Value> {
        names
            .iter()
            .filter_map(|n| by_name.get(n).map(|c| status_json(n, c)))
            .collect()
    };
    let inits: Vec<Option<&CtrInspect>> =
        init_names.iter().map(|n| by_name.get(n).copied()).collect();
    let apps: Vec<Option<&CtrInspect>> =
        app_names.iter().map(|n| by_name.get(n).copied()).collect();

    let init_done = |c: &Option<&CtrInspect>| {
        c.is_some_and(|c| kind(c) == Kind::Terminated && c.state.exit_code == 0)
    };
    let initialized = inits.iter().all(init_done);
    let init_failed = inits.iter().any(|c| {
        c.is_some_and(|c| {
            kind(c) == Kind::Terminated && c.state.exit_code != 0 && !restarts(policy, c)
        })
    });
    let all_started = apps
        .iter()
        .all(|c| c.is_some_and(|c| kind(c) != Kind::Waiting));
    let phase =
        if init_failed {
            "Failed"
        } else if !initialized || apps.is_empty() || !all_started {
            "Pending"
        } else if apps.iter().flatten().any(|c| {
            kind(c) == Kind::Running || (kind(c) == Kind::Terminated && restarts(policy, c))
        }) {
            "Running"
        } else if apps.iter().flatten().all(|c| c.state.exit_code == 0) {
            "Succeeded"
        } else {
            "Failed"
        };

    let created = time(&pod.created);
    let init_time = latest(
        inits
            .iter()
            .flatten()
            .filter_map(|c| time(&c.state.finished_at)),
    )
    .or(created);
    let all_ready = !apps.is_empty()
        && apps
            .iter()
            .all(|c| c.is_some_and(|c| kind(c) == Kind::Running));
    // Ready since the last container started.
    let ready_time = latest(
        apps.iter()
            .flatten()
            .filter_map(|c| time(&c.state.started_at)),
    )
    .or(created);
    let condition = |kind: &str, ok: bool, at: Option<&str>, reason: &str| {
        let mut c = json!({"type": kind, "status": if ok { "True" } else { "False" }});
        if let Some(at) = at {
            c["lastTransitionTime"] = json!(at);
        }
        if !ok {
            c["reason"] = json!(reason);
        }
        c
    };
    let conditions = vec![
        condition("PodScheduled", true, created, ""),
        condition(
            "Initialized",
            initialized,
            init_time,
            "ContainersNotInitialized",
        ),
        condition(
            "ContainersReady",
            all_ready,
            ready_time,
            "ContainersNotReady",
        ),
        condition("Ready", all_ready, ready_time, "ContainersNotReady"),
    ];

    let mut status = Map::new();
    status.insert("phase".into(), json!(phase));
    status.insert("conditions".into(), Value::Array(conditions));
    status.insert(
        "containerStatuses".into(),
        Value::Array(statuses(&app_names)),
    );
    if !init_names.is_empty() {
        status.insert(
            "initContainerStatuses".into(),
            Value::Array(statuses(&init_names)),
        );
    }
    if let Some(t) = created {
        status.insert("startTime".into(), json!(t));
    }

    let mut metadata = spec
        .and_then(|s| s.get("metadata"))
        .cloned()
        .unwrap_or_else(|| json!({}));
    metadata["name"] = json!(name);
    metadata["uid"] = json!(pod.id);
    if metadata.get("namespace").is_none() {
        metadata["namespace"] = json!("default");
    }
    if let Some(t) = created {
        metadata["creationTimestamp"] = json!(t);
    }
    let pod_spec = spec.and_then(|s| s.get("spec")).cloned().unwrap_or_else(
        || json!({"containers": app_names.iter().map(|n| json!({"name": n})).collect::<Vec<_>>()}),
    );
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": pod_spec,
        "status": Value::Object(status),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{container_state, container_statuses, describe, phase};

    const CREATED: &str = "2026-11-28T04:10:07.727710417Z";

    fn pod_inspect() -> PodInspect {
        parse_pod_inspect(&format!(
            r#"{{"Id": "p1", "Name": "web", "Created": "{CREATED}", "InfraContainerID": "infra",
                "Containers": [{{"Id": "infra"}}, {{"Id": "c1"}}, {{"Id": "c2"}}]}}"#
        ))
        .unwrap()
    }

    fn ctr(name: &str, status: &str, exit: i32, started: &str) -> CtrInspect {
        serde_json::from_value(json!({
            "Id": format!("id-{name}"), "Name": format!("web-{name}"), "Image": "abc",
            "ImageName": "podlab.local/probe:latest", "RestartCount": 0,
            "State": {"Status": status, "ExitCode": exit, "OOMKilled": false, "Error": "",
                      "StartedAt": started, "FinishedAt": "0001-01-01T00:00:00Z"}
        }))
        .unwrap()
    }

    fn spec(policy: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"a": "b"}},
               "spec": {"restartPolicy": policy,
                        "containers": [{"name": "app", "image": "x"}, {"name": "sidecar", "image": "x"}]}})
    }

    fn map(policy: &str, ctrs: &[CtrInspect]) -> Pod {
        serde_json::from_value(to_v1_pod("web", Some(&spec(policy)), &pod_inspect(), ctrs)).unwrap()
    }

    const T1: &str = "2026-11-28T04:10:08.5Z";
    // Later than T1, though it sorts first as a string.
    const T2: &str = "2026-11-28T04:10:08.51Z";
    const ZERO: &str = "0001-01-01T00:00:00Z";

    #[test]
    fn registries_conf_lists_the_test_registry_as_insecure() {
        let none = registries_conf(None);
        assert!(none.contains("unqualified-search-registries = []"));
        assert!(!none.contains("[[registry]]"));
        let some = registries_conf(Some("127.0.0.1:5000"));
        assert!(
            some.contains("[[registry]]\nlocation = \"127.0.0.1:5000\"\ninsecure = true"),
            "{some}"
        );
    }

    #[test]
    fn a_running_pod_is_running_and_ready() {
        let p = map(
            "Always",
            &[
                ctr("app", "running", 0, T1),
                ctr("sidecar", "running", 0, T2),
            ],
        );
        assert_eq!(phase(&p), "Running");
        assert_eq!(
            describe(&p),
            "phase Running; app: running; sidecar: running"
        );
        assert_eq!(p.metadata.uid.as_deref(), Some("p1"));
        assert_eq!(p.spec.as_ref().unwrap().containers.len(), 2);
        let conds = p.status.as_ref().unwrap().conditions.clone().unwrap();
        let ready = conds.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "True");
        assert_eq!(
            ready.last_transition_time.as_ref().unwrap().0.to_string(),
            "2026-11-28T04:10:08.51Z"
        );
        assert!(container_statuses(&p).iter().all(|c| c.ready));
    }

    #[test]
    fn a_container_not_started_yet_keeps_the_pod_pending() {
        let p = map(
            "Always",
            &[
                ctr("app", "running", 0, T1),
                ctr("sidecar", "created", 0, ZERO),
            ],
        );
        assert_eq!(phase(&p), "Pending");
        assert_eq!(
            describe(&p),
            "phase Pending; app: running; sidecar: waiting (ContainerCreating)"
        );
        // A container podman has not created yet is missing, not running.
        let p = map("Always", &[ctr("app", "running", 0, T1)]);
        assert_eq!(phase(&p), "Pending");
        let conds = p.status.unwrap().conditions.unwrap();
        assert_eq!(
            conds.iter().find(|c| c.type_ == "Ready").unwrap().status,
            "False"
        );
    }

    #[test]
    fn ended_pods_follow_the_restart_policy() {
        let ended = [ctr("app", "exited", 0, T1), ctr("sidecar", "exited", 3, T2)];
        assert_eq!(phase(&map("Never", &ended)), "Failed");
        assert_eq!(phase(&map("OnFailure", &ended)), "Running");
        assert_eq!(phase(&map("Always", &ended)), "Running");
        let ok = [ctr("app", "exited", 0, T1), ctr("sidecar", "exited", 0, T2)];
        assert_eq!(phase(&map("Never", &ok)), "Succeeded");
        assert_eq!(phase(&map("OnFailure", &ok)), "Succeeded");
        assert_eq!(
            describe(&map("Never", &ended)),
            "phase Failed; app: terminated (exit 0, Completed); sidecar: terminated (exit 3, Error)"
        );
    }

    #[test]
    fn an_oom_kill_is_reported_as_such() {
        let mut small = ctr("app", "exited", 137, T1);
        small.state.oom_killed = true;
        let p = map("Never", &[small, ctr("sidecar", "running", 0, T2)]);
        assert_eq!(phase(&p), "Running");
        assert_eq!(
            container_state(&container_statuses(&p)[0]),
            "terminated (exit 137, OOMKilled)"
        );
    }

    #[test]
    fn init_containers_gate_initialized() {
        let mut s = spec("Always");
        s["spec"]["initContainers"] = json!([{"name": "init", "image": "x"}]);
        let pod = pod_inspect();
        let mut init = ctr("init", "running", 0, T1);
        let v = to_v1_pod("web", Some(&s), &pod, &[init.clone()]);
        let p: Pod = serde_json::from_value(v).unwrap();
        assert_eq!(phase(&p), "Pending");
        assert_eq!(p.status.unwrap().init_container_statuses.unwrap().len(), 1);
        init.state.status = "exited".into();
        init.state.finished_at = T1.into();
        let v = to_v1_pod(
            "web",
            Some(&s),
            &pod,
            &[
                init,
                ctr("app", "running", 0, T2),
                ctr("sidecar", "running", 0, T2),
            ],
        );
        let p: Pod = serde_json::from_value(v).unwrap();
        assert_eq!(phase(&p), "Running");
        let conds = p.status.unwrap().conditions.unwrap();
        let init = conds.iter().find(|c| c.type_ == "Initialized").unwrap();
        assert_eq!(init.status, "True");
    }

    #[test]
    fn podman_5_arrays_and_foreign_pods() {
        let pod = parse_pod_inspect(r#"[{"Id": "p2", "Containers": []}]"#).unwrap();
        assert_eq!(pod.id, "p2");
        assert!(parse_pod_inspect("[]").is_err());
        let v = to_v1_pod("web", None, &pod, &[ctr("app", "running", 0, T1)]);
        let p: Pod = serde_json::from_value(v).unwrap();
        assert_eq!(p.spec.unwrap().containers[0].name, "app");
    }

    #[test]
    fn layout_reference_is_the_ref_name_annotation() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("index.json"),
            r#"{"manifests":[{"annotations":{"org.opencontainers.image.ref.name":"podlab.local/probe:latest"}}]}"#,
        )
        .unwrap();
        assert_eq!(
            layout_reference(dir.path()).unwrap(),
            "podlab.local/probe:latest"
        );
        std::fs::write(dir.path().join("index.json"), r#"{"manifests":[{}]}"#).unwrap();
        assert!(layout_reference(dir.path()).is_err());
    }

    #[test]
    fn only_the_pods_cgroup_directories_go() {
        let dir = tempfile::tempdir().unwrap();
        let parents = [
            dir.path().join("systemd/libpod_parent"),
            dir.path().join("unified/libpod_parent"),
        ];
        for p in &parents {
            std::fs::create_dir_all(p.join("pod1/libpod-ctr")).unwrap();
            std::fs::create_dir_all(p.join("pod2")).unwrap();
        }
        // A directory with a file stands for a cgroup rmdir refuses.
        std::fs::write(parents[1].join("pod1/busy"), "").unwrap();
        remove_pod_cgroups(&parents, "pod1");
        assert!(!parents[0].join("pod1").exists());
        assert!(parents[1].join("pod1").exists());
        assert!(!parents[1].join("pod1/libpod-ctr").exists());
        assert!(parents[0].join("pod2").exists());
        remove_pod_cgroups(&parents, "");
        assert!(parents[0].exists());
    }

    #[test]
    fn leftover_processes_name_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        for (pid, cmd) in [
            (
                "10",
                &b"conmon\0-b\0/tmp/podlab-conformance-podman-x/root\0"[..],
            ),
            ("11", b"sleep\x003600\0"),
        ] {
            std::fs::create_dir_all(dir.path().join(pid)).unwrap();
            std::fs::write(dir.path().join(pid).join("cmdline"), cmd).unwrap();
        }
        assert_eq!(
            processes_naming(dir.path(), "/tmp/podlab-conformance-podman-x"),
            ["process 10 is still running: conmon -b /tmp/podlab-conformance-podman-x/root"]
        );
    }
}
