//! What the API server, the scheduler and the kubelet's front door do for a
//! one-node cluster: validate and store a pod, bind it to this node, hand it
//! to its shim; delete it gracefully; garbage-collect pods whose shim died;
//! enter a container for `exec`. Every front (the CLI, the API server)
//! reads and writes through here; the submodules hold what a front needs
//! beyond pods: describe's runtime facts, images, secrets, the pure
//! presentation helpers, and the hidden re-exec entry points.

mod describe;
pub mod entry;
mod images;
pub mod present;
mod secrets;

pub use describe::{describe, ContainerFacts, PodDescription, ProcessFacts, SandboxFacts};
pub use images::{
    import_image, list_images, pull_image, remove_image, tag_image, ImageInfo, PullProgress,
    DOCKER_HUB_AUTH_KEY,
};
pub use secrets::{create_docker_registry_secret, delete_secret, get_secret, list_secrets};

/// What fronts name pods, events, log lines and limits by.
pub use crate::cgroups::Limits;
pub use crate::logs::{render as log_text, Line as LogLine};
pub use crate::network::HostLinks;
pub use crate::store::{unix_now, Event, PodKey};

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::cgroups;
use crate::config::Config;
use crate::container;
use crate::lifecycle;
use crate::manifest;
use crate::scheduler;
use crate::shim::{self, RuntimeState};
use crate::store::{self, now_time, PodDir, Store};
use crate::sys::{self, Sys};
use crate::testhook::{self, Stage};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Manifest(#[from] manifest::Error),
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Shim(#[from] shim::Error),
    #[error(transparent)]
    Cgroups(#[from] cgroups::Error),
    #[error(transparent)]
    Container(#[from] container::Error),
    #[error(transparent)]
    Namespaces(#[from] crate::namespaces::Error),
    #[error(transparent)]
    Scheduler(#[from] scheduler::Error),
    #[error(transparent)]
    Secrets(#[from] crate::secrets::Error),
    #[error(transparent)]
    Image(#[from] crate::image::Error),
    /// The shim's hand-over of a pod's pull secrets could not be read.
    #[error("reading the pull logins {}", path.display())]
    ReadPullLogins {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("the pull logins {} are not a JSON list", path.display())]
    BadPullLogins {
        path: std::path::PathBuf,
        source: serde_json::Error,
    },
    /// An update named a resource version that is no longer the pod's.
    #[error("Operation cannot be fulfilled on pods \"{name}\": the object has been modified; please apply your changes to the latest version and try again")]
    Conflict { name: String },
    #[error("pod {key} did not become Running within {timeout:?}: {status}")]
    WaitTimeout {
        key: PodKey,
        timeout: Duration,
        status: String,
    },
    #[error("pod {key} failed to start: {message}")]
    StartFailed { key: PodKey, message: String },
    #[error("container {container} not found in pod {key}")]
    NoSuchContainer { key: PodKey, container: String },
    #[error("cannot exec into container {container} of pod {key}: it is not running")]
    NotRunning { key: PodKey, container: String },
    #[error("command timed out after {0:?}")]
    ExecTimeout(Duration),
    #[error("error: no objects passed to apply")]
    NoObjects,
    /// A failure with no single cause (several cleanups, missing metrics).
    #[error("{0}")]
    Io(String),
    /// A host operation (watching, reading logs, waiting) that failed.
    #[error("{what}")]
    Host {
        what: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The asked-for log does not exist (yet): kubectl's wording.
    #[error("{0}")]
    NoLog(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// What kind of failure an [`Error`] is, as the Kubernetes API names its
/// reasons: what a front maps to its own words (kubectl's messages, HTTP
/// statuses) without looking into the layers below.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// An API object (a pod, a secret) that does not exist.
    NotFound,
    /// Creating an object whose name is taken.
    AlreadyExists,
    /// An object that fails validation.
    Invalid,
    /// An update against a version that is no longer the object's.
    Conflict,
    /// A request that cannot be served as asked (no such container, no
    /// log yet, nothing to apply, a manifest that does not parse).
    BadRequest,
    /// A deadline passed.
    Timeout,
    /// Anything else: the node failed to do what was asked.
    Internal,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        use crate::secrets::Error as Sec;
        use store::Error as St;
        match self {
            Error::Store(St::AlreadyExists { .. }) | Error::Secrets(Sec::AlreadyExists { .. }) => {
                ErrorKind::AlreadyExists
            }
            Error::Manifest(manifest::Error::Invalid { .. }) => ErrorKind::Invalid,
            Error::Secrets(Sec::Manifest(e)) if matches!(**e, manifest::Error::Invalid { .. }) => {
                ErrorKind::Invalid
            }
            Error::Conflict { .. } => ErrorKind::Conflict,
            Error::WaitTimeout { .. } | Error::ExecTimeout(_) => ErrorKind::Timeout,
            _ if self.names_a_missing_object() => ErrorKind::NotFound,
            Error::Manifest(_)
            | Error::Secrets(Sec::Manifest(_))
            | Error::NoSuchContainer { .. }
            | Error::NotRunning { .. }
            | Error::NoObjects
            | Error::NoLog(_) => ErrorKind::BadRequest,
            _ => ErrorKind::Internal,
        }
    }

    /// A missing pod or secret, here or among the causes (a lower layer
    /// that looked the pod up on the way).
    fn names_a_missing_object(&self) -> bool {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = cause {
            let missing = matches!(
                e.downcast_ref::<Error>(),
                Some(Error::Store(store::Error::NotFound { .. }))
                    | Some(Error::Secrets(crate::secrets::Error::NotFound { .. }))
            ) || matches!(
                e.downcast_ref::<store::Error>(),
                Some(store::Error::NotFound { .. })
            ) || matches!(
                e.downcast_ref::<crate::secrets::Error>(),
                Some(crate::secrets::Error::NotFound { .. })
            );
            if missing {
                return true;
            }
            cause = e.source();
        }
        false
    }
}

/// What `apply` did with one pod or secret, as kubectl prints it.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Created(PodKey),
    /// An existing pod took the change (labels, an image, ...).
    Configured(PodKey),
    Unchanged(PodKey),
    /// A secret (namespace and name), and what storing it did.
    Secret(PodKey, crate::secrets::Outcome),
}

impl std::fmt::Display for Applied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::secrets::Outcome;
        match self {
            Applied::Created(k) => write!(f, "pod/{} created", k.name),
            Applied::Configured(k) => write!(f, "pod/{} configured", k.name),
            Applied::Unchanged(k) => write!(f, "pod/{} unchanged", k.name),
            Applied::Secret(k, outcome) => {
                let done = match outcome {
                    Outcome::Created => "created",
                    Outcome::Configured => "configured",
                    Outcome::Unchanged => "unchanged",
                };
                write!(f, "secret/{} {done}", k.name)
            }
        }
    }
}

/// Validates every document first (a bad document 2 leaves nothing of
/// document 1 behind), then stores the secrets and then stores and starts
/// each pod (so a pod finds the pull secrets applied with it). With
/// `wait`, returns once every created pod is Running, or fails naming why not.
pub fn apply(
    config: &Config,
    text: &str,
    source: &str,
    namespace: Option<&str>,
    wait: Option<Duration>,
    warn: &mut dyn FnMut(String),
) -> Result<Vec<Applied>> {
    apply_with(config, text, source, namespace, wait, warn, true)
}

/// `create` rather than `apply`: an existing pod is an AlreadyExists
/// error, never updated.
pub fn create_new(
    config: &Config,
    text: &str,
    source: &str,
    namespace: Option<&str>,
    warn: &mut dyn FnMut(String),
) -> Result<Vec<Applied>> {
    apply_with(config, text, source, namespace, None, warn, false)
}

fn apply_with(
    config: &Config,
    text: &str,
    source: &str,
    namespace: Option<&str>,
    wait: Option<Duration>,
    warn: &mut dyn FnMut(String),
    update_existing: bool,
) -> Result<Vec<Applied>> {
    let mut pods = Vec::new();
    let mut secrets = Vec::new();
    let mut warnings = Vec::new();
    for doc in manifest::parse(text, source)? {
        match doc.object {
            manifest::Object::Pod(pod) => {
                let mut pod = *pod;
                // What the user wrote, before defaults fill anything in.
                warnings.extend(ignored_fields(&pod));
                manifest::default_pod(&mut pod, namespace)?;
                manifest::validate(&pod)?;
                pods.push(pod);
            }
            manifest::Object::Secret(secret) => {
                let mut secret = *secret;
                crate::secrets::prepare(&mut secret, namespace)?;
                secrets.push(secret);
            }
        }
    }
    for w in warnings {
        warn(w);
    }
    if pods.is_empty() && secrets.is_empty() {
        return Err(Error::NoObjects);
    }
    let mut out = Vec::new();
    for secret in secrets {
        let (stored, outcome) = crate::secrets::store(config, secret, update_existing)?;
        let key = PodKey::new(
            stored.metadata.namespace.clone().unwrap_or_default(),
            stored.metadata.name.clone().unwrap_or_default(),
        );
        out.push(Applied::Secret(key, outcome));
    }
    if pods.is_empty() {
        return Ok(out);
    }
    let store = Store::of(config)?;
    let mut waiting = Vec::new();
    for pod in pods {
        let key = PodKey::new(
            pod.metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
            pod.metadata.name.clone().unwrap_or_default(),
        );
        let lock = store.lock()?;
        if let Ok(existing) = store.get(&key) {
            if !update_existing {
                return Err(store::Error::AlreadyExists {
                    namespace: key.namespace,
                    name: key.name,
                }
                .into());
            }
            // What the manifest leaves out of metadata stays as stored.
            let current = existing.read_pod()?;
            let mut pod = pod;
            if pod.metadata.annotations.is_none() {
                pod.metadata.annotations = current.metadata.annotations.clone();
            }
            let changed = update_locked(&existing, pod, None)?;
            drop(lock);
            out.push(if changed {
                Applied::Configured(key)
            } else {
                Applied::Unchanged(key)
            });
            continue;
        }
        let (dir, notify) = create(config, &store, &lock, &key, pod)?;
        drop(lock);
        out.push(Applied::Created(key));
        waiting.push((dir, notify));
    }
    if let Some(timeout) = wait {
        let deadline = Instant::now() + timeout;
        for (dir, notify) in waiting {
            let left = deadline.saturating_duration_since(Instant::now());
            match notify {
                Some(notify) => wait_running(&dir, notify, left, timeout)?,
                // Not scheduled yet: follow its records until it runs.
                None => wait_watching(&dir, left, timeout)?,
            }
        }
    }
    Ok(out)
}

/// Replaces a stored pod with `new`, as far as Kubernetes lets a pod
/// change (see [`crate::pod_update`]); `resource_version`, when given,
/// must still be the pod's (409 Conflict otherwise). An image change
/// restarts that container with the new image, a new deadline reaches the
/// pod's shim, new labels reach its downwardAPI volumes. Returns the pod.
pub fn update(
    config: &Config,
    key: &PodKey,
    mut new: Pod,
    resource_version: Option<&str>,
) -> Result<Pod> {
    manifest::default_pod(&mut new, Some(&key.namespace))?;
    let store = Store::of(config)?;
    let lock = store.lock()?;
    let dir = store.get(key)?;
    update_locked(&dir, new, resource_version)?;
    drop(lock);
    pod_object(&dir)
}

/// [`update`] under the store lock; whether anything changed.
fn update_locked(dir: &PodDir, new: Pod, resource_version: Option<&str>) -> Result<bool> {
    let (current, _) = current_status(dir)?;
    if let Some(rv) = resource_version.filter(|v| !v.is_empty()) {
        if current.metadata.resource_version.as_deref() != Some(rv) {
            return Err(Error::Conflict {
                name: dir.key.name.clone(),
            });
        }
    }
    let stored = dir.read_pod()?;
    let (pod, changes) = crate::pod_update::check(&stored, new)?;
    manifest::validate(&pod)?;
    if changes.is_empty() {
        return Ok(false);
    }
    dir.write_pod(&pod)?;
    if changes.reaches_shim() {
        shim::notify_update(dir);
    }
    Ok(true)
}

/// Pod fields podlab runs as Kubernetes does; any other field that is set
/// gets a warning on apply, never silence.
const SPEC_FIELDS: &[&str] = &[
    "containers",
    "initContainers",
    "volumes",
    "restartPolicy",
    "terminationGracePeriodSeconds",
    "hostname",
    "hostNetwork",
    "shareProcessNamespace",
    "subdomain",
    "hostAliases",
    "dnsPolicy",
    "dnsConfig",
    "hostPID",
    "hostIPC",
    "resources",
    "securityContext",
    "activeDeadlineSeconds",
    // Read by the shim before each pull (see crate::secrets).
    "imagePullSecrets",
];
const CONTAINER_FIELDS: &[&str] = &[
    "name",
    "image",
    "imagePullPolicy",
    "command",
    "args",
    "env",
    "workingDir",
    "resources",
    "volumeMounts",
    // Informational in Kubernetes, but for hostPort (mapped through CNI's
    // portmap, and checked for conflicts by the scheduler).
    "ports",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
    "restartPolicy",
    "securityContext",
    "terminationMessagePath",
    "terminationMessagePolicy",
];
const SECURITY_FIELDS: &[&str] = &[
    "privileged",
    "capabilities",
    "runAsUser",
    "runAsGroup",
    "runAsNonRoot",
    "seccompProfile",
    "allowPrivilegeEscalation",
    "readOnlyRootFilesystem",
    // Refused by validation unless they ask for nothing.
    "appArmorProfile",
    "seLinuxOptions",
    "procMount",
];
const POD_SECURITY_FIELDS: &[&str] = &[
    "runAsUser",
    "runAsGroup",
    "runAsNonRoot",
    "supplementalGroups",
    "supplementalGroupsPolicy",
    "fsGroup",
    "fsGroupChangePolicy",
    "seccompProfile",
    "sysctls",
    "appArmorProfile",
    "seLinuxOptions",
];
const PROBE_HANDLERS: &[&str] = &["exec", "httpGet", "tcpSocket"];
const PROBE_FIELDS: &[&str] = &[
    "initialDelaySeconds",
    "periodSeconds",
    "timeoutSeconds",
    "successThreshold",
    "failureThreshold",
    "terminationGracePeriodSeconds",
];
const HOOK_FIELDS: &[&str] = &["exec", "httpGet", "tcpSocket", "sleep"];
const MOUNT_FIELDS: &[&str] = &[
    "name",
    "mountPath",
    "readOnly",
    "subPath",
    "mountPropagation",
    "recursiveReadOnly",
];

/// The fields of a manifest's pod that podlab accepts but does not act on
/// (`spec.affinity`, `spec.containers[0].envFrom`, ...), as warnings.
pub fn ignored_fields(pod: &Pod) -> Vec<String> {
    use serde_json::Value;
    let mut out = Vec::new();
    let Some(spec) = pod.spec.as_ref().and_then(|s| serde_json::to_value(s).ok()) else {
        return out;
    };
    fn check(out: &mut Vec<String>, path: &str, v: &Value, known: &[&str]) {
        for key in v.as_object().into_iter().flat_map(|o| o.keys()) {
            if !known.contains(&key.as_str()) {
                out.push(format!("Warning: podlab ignores {path}.{key}"));
            }
        }
    }
    check(&mut out, "spec", &spec, SPEC_FIELDS);
    check(
        &mut out,
        "spec.securityContext",
        &spec["securityContext"],
        POD_SECURITY_FIELDS,
    );
    for list in ["initContainers", "containers"] {
        for (i, c) in spec[list].as_array().into_iter().flatten().enumerate() {
            let path = format!("spec.{list}[{i}]");
            check(&mut out, &path, c, CONTAINER_FIELDS);
            check(
                &mut out,
                &format!("{path}.securityContext"),
                &c["securityContext"],
                SECURITY_FIELDS,
            );
            for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                let known: Vec<&str> = PROBE_HANDLERS.iter().chain(PROBE_FIELDS).copied().collect();
                check(&mut out, &format!("{path}.{probe}"), &c[probe], &known);
                let scheme = c[probe]["httpGet"]["scheme"].as_str();
                if scheme.is_some_and(|s| s != "HTTP") {
                    out.push(format!(
                        "Warning: podlab ignores {path}.{probe}.httpGet.scheme: {} (probes use plain HTTP)",
                        scheme.unwrap_or_default()
                    ));
                }
            }
            for hook in ["postStart", "preStop"] {
                check(
                    &mut out,
                    &format!("{path}.lifecycle.{hook}"),
                    &c["lifecycle"][hook],
                    HOOK_FIELDS,
                );
            }
            check(
                &mut out,
                &format!("{path}.lifecycle"),
                &c["lifecycle"],
                &["postStart", "preStop"],
            );
            for (j, m) in c["volumeMounts"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                check(
                    &mut out,
                    &format!("{path}.volumeMounts[{j}]"),
                    m,
                    MOUNT_FIELDS,
                );
            }
            for (j, e) in c["env"].as_array().into_iter().flatten().enumerate() {
                check(
                    &mut out,
                    &format!("{path}.env[{j}]"),
                    e,
                    &["name", "value", "valueFrom"],
                );
                // podlab has no ConfigMaps or Secrets: such a container
                // cannot be created (CreateContainerConfigError).
                check(
                    &mut out,
                    &format!("{path}.env[{j}].valueFrom"),
                    &e["valueFrom"],
                    &["fieldRef", "resourceFieldRef"],
                );
            }
            for which in ["limits", "requests"] {
                check(
                    &mut out,
                    &format!("{path}.resources.{which}"),
                    &c["resources"][which],
                    &["cpu", "memory", "ephemeral-storage"],
                );
            }
            check(
                &mut out,
                &format!("{path}.resources"),
                &c["resources"],
                &["limits", "requests"],
            );
        }
    }
    out
}

/// The spec without the scheduler's binding, to compare what users apply.
fn unbound(mut spec: k8s_openapi::api::core::v1::PodSpec) -> k8s_openapi::api::core::v1::PodSpec {
    spec.node_name = None;
    spec
}

/// Stores the pod and asks the scheduler: bound to this node, its shim is
/// started (and the pipe it reports on returned); if the node cannot hold
/// it, it stays Pending and unbound until room frees up. On any failure
/// the record is removed again: nothing half-created stays.
fn create(
    config: &Config,
    store: &Store,
    lock: &store::StoreLock,
    key: &PodKey,
    mut pod: Pod,
) -> Result<(PodDir, Option<File>)> {
    let now = now_time();
    pod.metadata.uid = Some(store::new_uid());
    pod.metadata.creation_timestamp = Some(now.clone());
    // The API server starts a pod at generation 1; the store sets its version.
    pod.metadata.generation = Some(1);
    // The scheduler binds pods; a nodeName in the manifest is not obeyed.
    pod.spec = pod.spec.map(unbound);
    pod.status = None;
    let dir = store.create(lock, key, &pod)?;
    testhook::stall_at(Stage::ApplyStored);
    let started = (|| -> Result<Option<File>> {
        match scheduler::decide(store, &pod, key)? {
            None => match scheduler::bind(&dir, &mut pod)? {
                scheduler::Bound::Admitted => Ok(Some(shim::start_bound(config, &dir)?)),
                scheduler::Bound::Refused => Ok(None),
            },
            Some(message) => {
                scheduler::mark_unschedulable(&dir, &message)?;
                Ok(None)
            }
        }
    })();
    match started {
        Ok(notify) => Ok((dir, notify)),
        Err(e) => {
            let _ = store.remove(lock, key);
            Err(e)
        }
    }
}

/// Waits, by watching its records, until the pod runs (or finishes).
fn wait_watching(dir: &PodDir, left: Duration, timeout: Duration) -> Result<()> {
    let mut outcome = None;
    let end = watch(dir, Some(left), |pod| {
        let status = pod.status.clone().unwrap_or_default();
        match status.phase.as_deref() {
            Some(lifecycle::RUNNING) | Some(lifecycle::SUCCEEDED) => outcome = Some(Ok(())),
            Some(lifecycle::FAILED) => {
                outcome = Some(Err(lifecycle::display_status(pod, &status)));
            }
            _ => return true,
        }
        false
    })?;
    match (outcome, end) {
        (Some(Ok(())), _) => Ok(()),
        (Some(Err(message)), _) => Err(Error::StartFailed {
            key: dir.key.clone(),
            message,
        }),
        (None, WatchEnd::Deleted) => Err(Error::StartFailed {
            key: dir.key.clone(),
            message: "the pod was deleted".into(),
        }),
        (None, _) => Err(Error::WaitTimeout {
            key: dir.key.clone(),
            timeout,
            status: current_status(dir)
                .map(|(p, s)| {
                    let shown = lifecycle::display_status(&p, &s);
                    match s
                        .conditions
                        .iter()
                        .flatten()
                        .find(|c| c.status == "False" && c.type_ == "PodScheduled")
                    {
                        Some(c) => format!("{shown}: {}", c.message.clone().unwrap_or_default()),
                        None => shown,
                    }
                })
                .unwrap_or_default(),
        }),
    }
}

/// Why [`watch`] returned.
#[derive(Debug, PartialEq, Eq)]
pub enum WatchEnd {
    /// The callback asked to stop.
    Stopped,
    /// The pod's record is gone.
    Deleted,
    /// The timeout passed.
    TimedOut,
}

/// The pod as `get -o json` shows it: the stored object with its status.
pub fn pod_object(dir: &PodDir) -> Result<Pod> {
    let (mut pod, status) = current_status(dir)?;
    pod.status = Some(status);
    Ok(pod)
}

/// How a process of a pod is in one namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NsHow {
    /// The pause's own: the pod's shared namespace.
    Holds,
    /// A container in the pause's namespace.
    Joins,
    /// A container's own namespace.
    Own,
    /// The host's (the namespace podlab itself runs in).
    Host,
}

impl NsHow {
    pub fn as_str(self) -> &'static str {
        match self {
            NsHow::Holds => "holds",
            NsHow::Joins => "joins",
            NsHow::Own => "own",
            NsHow::Host => "host",
        }
    }
}

/// A process of a live pod and the namespaces it is in (`net:[4026532…]`,
/// as /proc/PID/ns names them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessPicture {
    pub pid: i32,
    /// (kind, id, how).
    pub namespaces: Vec<(String, String, NsHow)>,
}

/// One container of a live pod: its process, cgroup and limits.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerPicture {
    pub name: String,
    pub process: Option<ProcessPicture>,
    pub cgroup: String,
    pub limits: cgroups::Limits,
}

/// What a live pod is on this host, for `describe -o mermaid`.
#[derive(Clone, Debug, PartialEq)]
pub struct PodPicture {
    pub key: PodKey,
    pub uid: String,
    pub pod_ip: Option<String>,
    pub pause: Option<ProcessPicture>,
    pub pod_cgroup: Option<String>,
    pub containers: Vec<ContainerPicture>,
    pub ifname: String,
    pub links: crate::network::HostLinks,
}

/// Reads a live pod's processes, namespaces, cgroups and network links.
pub fn picture(config: &Config, key: &PodKey) -> Result<PodPicture> {
    use crate::namespaces::{ns_id, Kind};
    let store = Store::of(config)?;
    let dir = store.get(key)?;
    let (_, status) = current_status(&dir)?;
    let state: RuntimeState = dir.read_runtime()?.unwrap_or_default();
    let ids_of = |pid: Option<i32>| -> Vec<(Kind, Option<String>)> {
        Kind::ALL
            .iter()
            .map(|k| (*k, pid.and_then(|p| ns_id(p, *k))))
            .collect()
    };
    let pause_ids = ids_of(state.pause.map(|p| p.pid));
    let host_ids = ids_of(Some(std::process::id() as i32));
    let same = |ids: &[(Kind, Option<String>)], k: Kind, id: &str| {
        ids.iter()
            .any(|(ik, i)| *ik == k && i.as_deref() == Some(id))
    };
    let process = |pid: i32, is_pause: bool| ProcessPicture {
        pid,
        namespaces: Kind::ALL
            .iter()
            .filter_map(|k| {
                let id = ns_id(pid, *k)?;
                let how = if same(&host_ids, *k, &id) {
                    NsHow::Host
                } else if is_pause {
                    NsHow::Holds
                } else if same(&pause_ids, *k, &id) {
                    NsHow::Joins
                } else {
                    NsHow::Own
                };
                Some((k.proc_name().to_string(), id, how))
            })
            .collect(),
    };
    let containers = state
        .containers
        .iter()
        .map(|(name, c)| ContainerPicture {
            name: name.clone(),
            process: c
                .pid
                .filter(|p| p.is_alive())
                .map(|p| process(p.pid, false)),
            cgroup: c.cgroup.clone(),
            limits: c.limits.clone(),
        })
        .collect();
    Ok(PodPicture {
        key: key.clone(),
        uid: state.uid.clone(),
        pod_ip: status.pod_ip.clone(),
        pause: state
            .pause
            .filter(|p| p.is_alive())
            .map(|p| process(p.pid, true)),
        pod_cgroup: state.pod_cgroup.clone(),
        containers,
        ifname: crate::network::POD_IFNAME.to_string(),
        links: crate::network::host_links(config, &state.uid),
    })
}

/// One container's use, as `kubectl top pod --containers` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerUsage {
    pub name: String,
    pub cpu_millis: u64,
    pub memory_bytes: u64,
}

/// One pod's use: its whole cgroup (the pause included) and each container's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodUsage {
    pub key: PodKey,
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub containers: Vec<ContainerUsage>,
}

/// CPU and memory use of the pods, read from their cgroups: memory as the
/// working set now, CPU as the average over `window` (two readings of the
/// CPU time used, as metrics-server takes them, over a shorter window).
/// Pods without a cgroup (not started, or finished) are left out; a pod
/// asked for by name has no metrics then.
pub fn top(
    config: &Config,
    namespace: Option<&str>,
    name: Option<&str>,
    selector: &crate::selector::Selector,
    window: Duration,
) -> Result<Vec<PodUsage>> {
    let manager = cgroups::Manager::new()?;
    let pods: Vec<Pod> = match (name, namespace) {
        (Some(n), ns) => {
            let store = Store::of(config)?;
            vec![pod_object(
                &store.get(&PodKey::new(ns.unwrap_or("default"), n))?,
            )?]
        }
        (None, ns) => list(config, ns, selector)?,
    };
    struct Sample {
        key: PodKey,
        pod: cgroups::PodCgroup,
        leaves: Vec<(String, cgroups::Leaf)>,
    }
    let mut samples = Vec::new();
    for pod in &pods {
        let key = PodKey::new(
            pod.metadata.namespace.clone().unwrap_or_default(),
            pod.metadata.name.clone().unwrap_or_default(),
        );
        let cg = manager.pod(pod.metadata.uid.as_deref().unwrap_or_default());
        if pod.metadata.uid.is_none() || !cg.exists() {
            if name.is_some() {
                return Err(Error::Io(format!("Metrics not available for pod {key}")));
            }
            continue;
        }
        let leaves = cg
            .leaves()?
            .into_iter()
            .filter_map(|l| {
                let ctr = l.strip_prefix("ctr-")?.to_string();
                Some((ctr, cg.leaf(&l)))
            })
            .collect();
        samples.push(Sample {
            key,
            pod: cg,
            leaves,
        });
    }
    let read = |s: &Sample| -> Result<(cgroups::Usage, Vec<cgroups::Usage>)> {
        let pod = s.pod.usage()?;
        let leaves = s
            .leaves
            .iter()
            .map(|(_, l)| l.usage())
            .collect::<std::result::Result<_, _>>()?;
        Ok((pod, leaves))
    };
    let before: Vec<_> = samples.iter().map(read).collect::<Result<_>>()?;
    let start = Instant::now();
    if !samples.is_empty() {
        std::thread::sleep(window);
    }
    let after: Vec<_> = samples.iter().map(read).collect::<Result<_>>()?;
    let elapsed_ns = start.elapsed().as_nanos().max(1) as u64;
    let millis = |a: &cgroups::Usage, b: &cgroups::Usage| {
        b.cpu_ns.saturating_sub(a.cpu_ns).saturating_mul(1000) / elapsed_ns
    };
    Ok(samples
        .iter()
        .zip(before.iter().zip(&after))
        .map(|(s, ((p0, l0), (p1, l1)))| PodUsage {
            key: s.key.clone(),
            cpu_millis: millis(p0, p1),
            memory_bytes: p1.working_set_bytes,
            containers: s
                .leaves
                .iter()
                .zip(l0.iter().zip(l1))
                .map(|((name, _), (a, b))| ContainerUsage {
                    name: name.clone(),
                    cpu_millis: millis(a, b),
                    memory_bytes: b.working_set_bytes,
                })
                .collect(),
        })
        .collect())
}

/// The pods of one namespace (or all) whose labels match, as `get` shows them.
pub fn list(
    config: &Config,
    namespace: Option<&str>,
    selector: &crate::selector::Selector,
) -> Result<Vec<Pod>> {
    let store = Store::of(config)?;
    let mut out = Vec::new();
    for dir in store.list(namespace)? {
        let pod = match pod_object(&dir) {
            Ok(pod) => pod,
            // Deleted since the listing.
            Err(_) if !dir.pod_file().exists() => continue,
            Err(e) => return Err(e),
        };
        if selector.matches(pod.metadata.labels.as_ref()) {
            out.push(pod);
        }
    }
    Ok(out)
}

/// Follows one pod: calls `on_change` with the pod (status included) now
/// and after each change, until it returns false, the pod is deleted, or
/// `timeout` passes. Changes are noticed through inotify on the pod's
/// directory (its records are replaced by rename) and a pidfd on its shim
/// (whose death turns the pod Unknown): no polling.
pub fn watch(
    dir: &PodDir,
    timeout: Option<Duration>,
    mut on_change: impl FnMut(&Pod) -> bool,
) -> Result<WatchEnd> {
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    use std::os::fd::AsFd;
    let ioe = |what: &str, e: nix::Error| Error::Host {
        what: format!("watch {}: {what}", dir.key),
        source: e.into(),
    };
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
        .map_err(|e| ioe("inotify", e))?;
    inotify
        .add_watch(
            &dir.dir,
            AddWatchFlags::IN_MOVED_TO
                | AddWatchFlags::IN_CLOSE_WRITE
                | AddWatchFlags::IN_DELETE
                | AddWatchFlags::IN_DELETE_SELF
                | AddWatchFlags::IN_MOVE_SELF,
        )
        .map_err(|e| match e {
            nix::Error::ENOENT => Error::Store(store::Error::NotFound {
                namespace: dir.key.namespace.clone(),
                name: dir.key.name.clone(),
            }),
            e => ioe("add watch", e),
        })?;
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut last: Option<Pod> = None;
    let mut had_status = false;
    let mut shim: Option<(sys::ProcessId, std::os::fd::OwnedFd)> = None;
    loop {
        // A record half-removed by a delete is a deleted pod.
        let gone = !dir.pod_file().exists() || (had_status && !dir.status_file().exists());
        if gone {
            return Ok(WatchEnd::Deleted);
        }
        had_status |= dir.status_file().exists();
        match pod_object(dir) {
            Ok(pod) => {
                if last.as_ref() != Some(&pod) {
                    if !on_change(&pod) {
                        return Ok(WatchEnd::Stopped);
                    }
                    last = Some(pod);
                }
            }
            Err(_) if !dir.pod_file().exists() => return Ok(WatchEnd::Deleted),
            Err(e) => return Err(e),
        }
        // The shim may have been started (or replaced) since the last look.
        let current = shim::read_shim(dir).filter(|s| s.is_alive());
        if current.map(|s| s.pid) != shim.as_ref().map(|(s, _)| s.pid) {
            shim = current.and_then(|s| sys::pidfd_open(s.pid).ok().map(|fd| (s, fd)));
        }
        let fds: Vec<_> = std::iter::once(inotify.as_fd())
            .chain(shim.as_ref().map(|(_, fd)| fd.as_fd()))
            .collect();
        let timeout = match deadline {
            None => None,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(WatchEnd::TimedOut);
                }
                Some(left.max(Duration::from_millis(1)))
            }
        };
        let ready = sys::poll_readable(&fds, timeout).map_err(|err| Error::Host {
            what: format!("watch {}: poll", dir.key),
            source: err.into(),
        })?;
        if ready.get(1) == Some(&true) {
            // The shim exited: the pod is recomputed (Unknown, or gone).
            shim = None;
        }
        if ready[0] {
            // Only "something changed" matters; the events themselves not.
            while let Ok(events) = inotify.read_events() {
                if events.is_empty() {
                    break;
                }
            }
        }
    }
}

/// Follows several pods at once, one thread each, until every one is
/// deleted or its callback returns false: `follow` makes each pod's
/// callback (see [`watch`]). Every pod is looked up first, so a missing
/// one fails before anything is followed.
pub fn watch_pods<F>(
    config: &Config,
    keys: &[PodKey],
    mut follow: impl FnMut(&PodKey) -> F,
) -> Result<()>
where
    F: FnMut(&Pod) -> bool + Send,
{
    let store = Store::of(config)?;
    let dirs = keys
        .iter()
        .map(|k| store.get(k))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let watchers: Vec<_> = dirs.iter().map(|d| (d, follow(&d.key))).collect();
    let failed = std::sync::Mutex::new(None);
    std::thread::scope(|scope| {
        for (dir, on_change) in watchers {
            let failed = &failed;
            scope.spawn(move || {
                if let Err(e) = watch(dir, None, on_change) {
                    if let Ok(mut f) = failed.lock() {
                        *f = Some(e);
                    }
                }
            });
        }
    });
    match failed.into_inner().ok().flatten() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// What `podlab wait --for=...` waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaitFor {
    /// A condition type with a status (compared ignoring case, as kubectl does).
    Condition { type_: String, status: String },
    /// The pod's record is gone.
    Delete,
}

/// True when the pod meets `what` (never for [`WaitFor::Delete`]: a pod
/// that is still there is not deleted).
pub fn meets(pod: &Pod, what: &WaitFor) -> bool {
    match what {
        WaitFor::Delete => false,
        WaitFor::Condition { type_, status } => pod
            .status
            .iter()
            .flat_map(|s| s.conditions.iter().flatten())
            .any(|c| c.type_.eq_ignore_ascii_case(type_) && c.status.eq_ignore_ascii_case(status)),
    }
}

/// Waits until the pod meets `what`, watching its records: `Ok(true)` when
/// it does, `Ok(false)` when `timeout` passed first. A missing pod has met
/// [`WaitFor::Delete`]; for a condition it is not found.
pub fn wait_for(config: &Config, key: &PodKey, what: &WaitFor, timeout: Duration) -> Result<bool> {
    let store = Store::of(config)?;
    let dir = match store.get(key) {
        Ok(dir) => dir,
        Err(store::Error::NotFound { .. }) if *what == WaitFor::Delete => return Ok(true),
        Err(e) => return Err(e.into()),
    };
    let mut met = false;
    let end = match watch(&dir, Some(timeout), |pod| {
        met = meets(pod, what);
        !met
    }) {
        // Deleted between the lookup and the watch.
        Err(Error::Store(store::Error::NotFound { .. })) => WatchEnd::Deleted,
        other => other?,
    };
    Ok(match end {
        WatchEnd::Deleted => *what == WaitFor::Delete,
        WatchEnd::Stopped => met,
        WatchEnd::TimedOut => false,
    })
}

/// Waits for the shim's first report (Running, or why not) with a deadline.
fn wait_running(dir: &PodDir, notify: File, left: Duration, timeout: Duration) -> Result<()> {
    let ready = sys::wait_readable(&notify, Some(left)).map_err(|e| Error::Host {
        what: format!("waiting for the shim of {}", dir.key),
        source: e.into(),
    })?;
    let key = dir.key.clone();
    if !ready {
        let status = current_status(dir)
            .map(|(p, s)| lifecycle::display_status(&p, &s))
            .unwrap_or_default();
        return Err(Error::WaitTimeout {
            key,
            timeout,
            status,
        });
    }
    let mut line = String::new();
    let _ = BufReader::new(notify).read_line(&mut line);
    let line = line.trim();
    if line == lifecycle::RUNNING || line == lifecycle::SUCCEEDED {
        return Ok(());
    }
    let message = if line.is_empty() {
        format!("the pod's shim exited; see {}", dir.shim_log().display())
    } else {
        line.to_string()
    };
    Err(Error::StartFailed { key, message })
}

/// The pod and its status as `get` shows it. A pod whose shim is gone while
/// it should be running is reported `Unknown`, never a stale Running.
pub fn current_status(dir: &PodDir) -> Result<(Pod, PodStatus)> {
    let mut pod = dir.read_pod()?;
    let mut status = match dir.read_status_versioned() {
        Ok(Some((s, version))) => {
            // The pod's version is its newest record's.
            let of_pod = pod
                .metadata
                .resource_version
                .as_deref()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            pod.metadata.resource_version = Some(of_pod.max(version).to_string());
            s
        }
        // Removed between the two reads: the pod is gone, not new again.
        Ok(None) if !dir.pod_file().exists() => {
            return Err(Error::Store(store::Error::NotFound {
                namespace: dir.key.namespace.clone(),
                name: dir.key.name.clone(),
            }))
        }
        Ok(None) => lifecycle::initial_status(&pod, &now_time()),
        // A torn status record (a crash mid-write on a filesystem without
        // atomic rename) is reported, never a panic or a hidden pod.
        Err(store::Error::Corrupt { path, source }) => PodStatus {
            phase: Some(lifecycle::UNKNOWN.into()),
            reason: Some("CorruptRecord".into()),
            message: Some(format!("{}: {source}", path.display())),
            ..Default::default()
        },
        Err(e) => return Err(e.into()),
    };
    let phase = status.phase.clone().unwrap_or_default();
    let active = phase == lifecycle::PENDING || phase == lifecycle::RUNNING;
    let shim_lost = shim::read_shim(dir).is_some_and(|s| !s.is_alive());
    if active && shim_lost {
        status.phase = Some(lifecycle::UNKNOWN.into());
        status.reason = Some("ShimLost".into());
        status.message = Some("the pod's shim is gone; `podlab gc` releases what it held".into());
        for cs in status.container_statuses.iter_mut().flatten() {
            cs.ready = false;
        }
    } else if active && !scheduler::is_unschedulable(&status) && apply_abandoned(dir) {
        status.phase = Some(lifecycle::FAILED.into());
        status.reason = Some(APPLY_ABANDONED.into());
        status.message = Some(APPLY_ABANDONED_MESSAGE.into());
    }
    Ok((pod, status))
}

/// The reason of a pod whose `podlab apply` died before handing it to a shim.
pub const APPLY_ABANDONED: &str = "ApplyAbandoned";
const APPLY_ABANDONED_MESSAGE: &str = "podlab apply died before handing the pod to a shim: \
     nothing runs it; `podlab gc` or `podlab delete` releases it";

/// No shim was ever recorded for the pod and no podlab process is handing it
/// over: `apply` holds the store lock from storing the record until the
/// shim is recorded, so a free lock and no `shim.json` mean it died between.
/// (A shim started but not recorded exits without running anything.)
fn apply_abandoned(dir: &PodDir) -> bool {
    shim::read_shim(dir).is_none()
        && dir
            .when_store_idle(|| shim::read_shim(dir).is_none() && dir.pod_file().exists())
            .unwrap_or(false)
}

/// A deletion asked for: the pod is marked and its shim told to stop it.
pub struct Deletion {
    pub key: PodKey,
    dir: PodDir,
    uid: String,
    /// The shim's pidfd (readable once it exits) and how long to allow it.
    shim: Option<(std::os::fd::OwnedFd, Duration)>,
}

impl Deletion {
    /// True when a live shim is stopping the pod; it releases and removes
    /// the pod itself, so nobody needs to wait for it.
    pub fn shim_owns_it(&self) -> bool {
        self.shim.is_some()
    }
}

/// Graceful delete: marks the pod, asks its shim to stop it (SIGTERM, the
/// grace period, SIGKILL), waits for the shim to exit, and releases anything
/// a dead shim left behind.
pub fn delete(config: &Config, key: &PodKey, grace: Option<i64>) -> Result<()> {
    let deletion = begin_delete(config, key, grace)?;
    finish_delete(config, deletion)
}

/// The first half of [`delete`]: marks the pod deleted (deletionTimestamp,
/// the grace period, a new generation) and sends its shim SIGTERM, without
/// waiting. Asking for many deletions first and waiting after makes
/// deleting N pods take about the longest grace period, as with kubectl.
pub fn begin_delete(config: &Config, key: &PodKey, grace: Option<i64>) -> Result<Deletion> {
    let store = Store::of(config)?;
    // Under the lock: an update in between would undo the deletion mark.
    let lock = store.lock()?;
    let dir = store.get(key)?;
    let mut pod = dir.read_pod()?;
    let grace = grace
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30)
        .max(0);
    if pod.metadata.deletion_timestamp.is_none() {
        pod.metadata.deletion_timestamp = Some(now_time());
        // A graceful deletion is a change the kubelet must observe.
        pod.metadata.generation = Some(pod.metadata.generation.unwrap_or(1) + 1);
    }
    pod.metadata.deletion_grace_period_seconds = Some(grace);
    dir.write_pod(&pod)?;
    drop(lock);

    let mut shim_fd = None;
    if let Some(shim) = shim::read_shim(&dir).filter(|s| s.is_alive()) {
        if let Ok(pidfd) = sys::pidfd_open(shim.pid) {
            let _ = kill(Pid::from_raw(shim.pid), Signal::SIGTERM);
            // The shim needs the grace period plus a moment to tear down.
            shim_fd = Some((pidfd, Duration::from_secs(grace as u64 + 30)));
        }
    }
    Ok(Deletion {
        key: key.clone(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        dir,
        shim: shim_fd,
    })
}

/// The second half of [`delete`]: waits for the shim to exit, then
/// releases whatever it did not (it crashed, or was never started) and
/// removes the record.
pub fn finish_delete(config: &Config, deletion: Deletion) -> Result<()> {
    let Deletion {
        key,
        dir,
        uid,
        shim,
        ..
    } = deletion;
    if returns_early(&dir) {
        return Ok(());
    }
    if let Some((pidfd, limit)) = shim {
        let _ = sys::wait_readable(&pidfd, Some(limit));
    }
    let store = Store::of(config)?;
    let lock = store.lock()?;
    if dir.pod_file().exists() {
        let errors = shim::release(&sys::Kernel, config, &cgroups::Manager::new()?, &dir, &uid);
        if !errors.is_empty() {
            return Err(Error::Io(format!(
                "delete pod {key}: {}",
                errors.join("; ")
            )));
        }
        store.remove(&lock, &key)?;
    }
    // Its requests are free again: pending pods may fit now.
    shim::schedule_and_start(config, &store, &lock)?;
    Ok(())
}

/// The `delete-keeps-idle` mutant: the delete of a pod none of whose app
/// containers runs returns at once, while its shim keeps the record a
/// moment longer.
fn returns_early(dir: &crate::store::PodDir) -> bool {
    crate::mutants::Mutant::from_env() == Some(crate::mutants::Mutant::DeleteKeepsIdle)
        && dir.read_status().ok().flatten().is_some_and(|s| {
            !s.container_statuses
                .iter()
                .flatten()
                .any(|c| c.state.as_ref().is_some_and(|st| st.running.is_some()))
        })
}

/// What `gc` released.
#[derive(Debug, Default)]
pub struct GcReport {
    pub released: Vec<PodKey>,
    pub removed: Vec<PodKey>,
    /// Pods whose data was on disk without a record.
    pub orphaned_data: Vec<PodKey>,
    /// Pending pods that fit once the dead ones were collected.
    pub scheduled: Vec<PodKey>,
    /// Secrets' files put right (modes, leftovers), and pull logins a dead
    /// shim left behind, one line each (never a value).
    pub secrets_repaired: Vec<String>,
}

/// Releases everything held by pods whose shim is gone (kill -9, a crash,
/// a reboot of the state dir's tmpfs). A pod that was being deleted is
/// removed; others stay, marked Failed with the reason, until deleted.
/// Idempotent: a second run finds nothing to do.
pub fn gc(config: &Config) -> Result<GcReport> {
    let store = Store::of(config)?;
    let manager = cgroups::Manager::new()?;
    let mut report = GcReport::default();
    let lock = store.lock()?;
    report.secrets_repaired = crate::secrets::gc(config)?;
    for dir in store.list(None)? {
        if shim::is_shim_alive(&dir) {
            continue;
        }
        report
            .secrets_repaired
            .extend(shim::remove_pull_logins(&dir));
        let Ok(pod) = dir.read_pod() else { continue };
        // A pod waiting for room has no shim by design.
        let waiting = !scheduler::is_bound(&pod)
            && dir
                .read_status()
                .ok()
                .flatten()
                .is_some_and(|s| scheduler::is_unschedulable(&s));
        if waiting && pod.metadata.deletion_timestamp.is_none() {
            continue;
        }
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let held = holds_resources(config, &manager, &dir, &uid);
        if held {
            let errors = shim::release(&sys::Kernel, config, &manager, &dir, &uid);
            if !errors.is_empty() {
                return Err(Error::Io(format!("gc {}: {}", dir.key, errors.join("; "))));
            }
            report.released.push(dir.key.clone());
        }
        if pod.metadata.deletion_timestamp.is_some() {
            store.remove(&lock, &dir.key)?;
            report.removed.push(dir.key.clone());
            continue;
        }
        let mut status = dir.read_status().ok().flatten().unwrap_or_default();
        if status.phase.as_deref() != Some(lifecycle::FAILED)
            && status.phase.as_deref() != Some(lifecycle::SUCCEEDED)
        {
            // We hold the store lock: no apply is handing a pod over now.
            let (reason, message, event) = if shim::read_shim(&dir).is_none() {
                (
                    APPLY_ABANDONED,
                    APPLY_ABANDONED_MESSAGE,
                    "podlab apply died before starting the pod's shim",
                )
            } else {
                (
                    "ShimLost",
                    "the pod's shim died; podlab gc released its resources",
                    "The pod's shim died; released its sandbox",
                )
            };
            status.phase = Some(lifecycle::FAILED.into());
            status.reason = Some(reason.into());
            status.message = Some(message.into());
            for cs in status.container_statuses.iter_mut().flatten() {
                cs.ready = false;
            }
            dir.write_status(&status)?;
            let _ = dir.record_event(&Event::warning(reason, "podlab-gc", event));
        }
    }
    // Bytes on disk whose record is gone (a reboot wiped the state tmpfs).
    for dir in store.orphaned_data(&lock)? {
        let errors = shim::release_volumes(&sys::Kernel, &dir);
        if !errors.is_empty() {
            return Err(Error::Io(format!("gc {}: {}", dir.key, errors.join("; "))));
        }
        store.remove(&lock, &dir.key)?;
        report.orphaned_data.push(dir.key.clone());
    }
    // Pods that died freed their requests: pending pods may fit now.
    report.scheduled = shim::schedule_and_start(config, &store, &lock)?;
    Ok(report)
}

fn holds_resources(config: &Config, manager: &cgroups::Manager, dir: &PodDir, uid: &str) -> bool {
    shim::volumes_mounted(&sys::Kernel, dir)
        || !uid.is_empty()
            && (manager.pod(uid).paths().iter().any(|p| p.exists())
                || sys::Kernel.is_mount_point(&dir.shm_dir())
                || crate::sandbox::netns_path(uid).exists()
                || crate::network::pod_network(config)
                    .and_then(|c| c.cached())
                    .is_ok_and(|v| v.iter().any(|a| a.container_id == uid)))
}

/// Picks the container: the named one (an app or an init container), or
/// the first app container, as kubectl does.
pub fn container_name(pod: &Pod, key: &PodKey, container: Option<&str>) -> Result<String> {
    let names: Vec<&str> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.iter().map(|c| c.name.as_str()).collect())
        .unwrap_or_default();
    let init: Vec<&str> = pod
        .spec
        .as_ref()
        .map(|s| {
            s.init_containers
                .iter()
                .flatten()
                .map(|c| c.name.as_str())
                .collect()
        })
        .unwrap_or_default();
    match container {
        Some(c) if names.contains(&c) || init.contains(&c) => Ok(c.to_string()),
        Some(c) => Err(Error::NoSuchContainer {
            key: key.clone(),
            container: c.to_string(),
        }),
        None => names
            .first()
            .map(|s| s.to_string())
            .ok_or_else(|| Error::NoSuchContainer {
                key: key.clone(),
                container: String::new(),
            }),
    }
}

/// Runs `argv` inside a running container ([`container::exec_in`]). The
/// calling process must be single-threaded (the `podlab` CLI is). Returns
/// the exit code (128+signal when killed).
pub fn exec(
    config: &Config,
    key: &PodKey,
    container: Option<&str>,
    argv: &[String],
) -> Result<i32> {
    exec_with_timeout(config, key, container, argv, None)
}

/// [`exec`], killing the command when it outlives `timeout` (exec probes
/// and lifecycle hooks): [`Error::ExecTimeout`] then.
pub fn exec_with_timeout(
    config: &Config,
    key: &PodKey,
    container: Option<&str>,
    argv: &[String],
    timeout: Option<Duration>,
) -> Result<i32> {
    let store = Store::of(config)?;
    let dir = store.get(key)?;
    let pod = dir.read_pod()?;
    let name = container_name(&pod, key, container)?;
    let state: RuntimeState = dir.read_runtime()?.unwrap_or_default();
    container::exec_in(&state, &name, argv, timeout).map_err(|e| match e {
        container::Error::NotRunning(_) => Error::NotRunning {
            key: key.clone(),
            container: name.clone(),
        },
        container::Error::ExecTimeout(limit) => Error::ExecTimeout(limit),
        e => e.into(),
    })
}

/// `logs`' options, as kubectl's.
#[derive(Clone, Debug, Default)]
pub struct LogOptions {
    pub previous: bool,
    /// The last N lines only.
    pub tail: Option<usize>,
    pub timestamps: bool,
    pub since: Option<Duration>,
    /// Keep giving what the container writes until it stops.
    pub follow: bool,
}

/// A container's log (its current start's, or the previous one), handed
/// to `out` in batches of lines; with `follow`, what the start writes until
/// it is over or `out` returns false. The CLI prints the lines, the API
/// server streams them.
pub fn logs(
    config: &Config,
    key: &PodKey,
    container: Option<&str>,
    opts: &LogOptions,
    out: &mut dyn FnMut(Vec<crate::logs::Line>) -> std::io::Result<bool>,
) -> Result<()> {
    let store = Store::of(config)?;
    let dir = store.get(key)?;
    let pod = dir.read_pod()?;
    let name = container_name(&pod, key, container)?;
    let status = dir.read_status()?.unwrap_or_default();
    let restarts = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .find(|c| c.name == name)
        .map_or(0, |c| c.restart_count.max(0) as u32);
    let start = if opts.previous {
        restarts.checked_sub(1).ok_or_else(|| {
            Error::NoLog(format!(
                "previous terminated container \"{name}\" in pod \"{}\" not found",
                key.name
            ))
        })?
    } else {
        restarts
    };
    let shown =
        if crate::mutants::Mutant::from_env() == Some(crate::mutants::Mutant::LogsFirstContainer) {
            pod.spec
                .as_ref()
                .and_then(|s| s.containers.first())
                .map_or(name.clone(), |c| c.name.clone())
        } else {
            name.clone()
        };
    let path = crate::logs::log_path(&dir.log_dir(&shown), start);
    if crate::logs::files(&path).is_empty() {
        return Err(Error::NoLog(format!(
            "container \"{name}\" in pod \"{}\" is waiting to start",
            key.name
        )));
    }
    let ioe = |e: std::io::Error| Error::Host {
        what: format!("logs of {key}"),
        source: e.into(),
    };
    let loge = |e: crate::logs::Error| Error::Host {
        what: format!("logs of {key}"),
        source: e.into(),
    };
    let mut follower = crate::logs::Follower::new(path);
    let mut lines = follower.read_all().map_err(loge)?;
    if let Some(since) = opts.since {
        let now = std::time::SystemTime::now();
        let cut = now.checked_sub(since).unwrap_or(std::time::UNIX_EPOCH);
        let cut = crate::logs::timestamp(cut);
        lines.retain(|l| crate::logs::at_or_after(l, cut));
    }
    if let Some(n) = opts.tail {
        lines.drain(..lines.len().saturating_sub(n));
    }
    if !out(lines).map_err(ioe)? || !opts.follow || opts.previous {
        return Ok(());
    }
    follow_log(&dir, &name, start, &mut follower, out)
}

/// `logs -f`: hands on what the container start writes, woken by inotify
/// on its log directory and on the pod's records, until that start is over
/// (the container stopped or restarted), the pod is gone, or `out` says stop.
fn follow_log(
    dir: &PodDir,
    name: &str,
    start: u32,
    follower: &mut crate::logs::Follower,
    out: &mut dyn FnMut(Vec<crate::logs::Line>) -> std::io::Result<bool>,
) -> Result<()> {
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    use std::os::fd::AsFd;
    let ioe = |what: &str, e: Box<dyn std::error::Error + Send + Sync>| Error::Host {
        what: format!("logs -f {}: {what}", dir.key),
        source: e,
    };
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
        .map_err(|e| ioe("inotify", e.into()))?;
    inotify
        .add_watch(
            &dir.log_dir(name),
            AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO,
        )
        .map_err(|e| ioe("watch", e.into()))?;
    inotify
        .add_watch(
            &dir.dir,
            AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_DELETE_SELF,
        )
        .map_err(|e| ioe("watch", e.into()))?;
    let this_start_runs = || {
        dir.read_status().ok().flatten().is_some_and(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
                .find(|c| c.name == name)
                .is_some_and(|c| {
                    c.restart_count.max(0) as u32 == start
                        && c.state.as_ref().is_some_and(|st| st.running.is_some())
                })
        })
    };
    loop {
        let running = dir.pod_file().exists() && this_start_runs();
        let lines = follower.read_new().map_err(|e| ioe("read", e.into()))?;
        if !out(lines).map_err(|e| ioe("write", e.into()))? || !running {
            // The shim writes the last output before it records the exit.
            return Ok(());
        }
        // A timeout as well: a status written before the watch was added.
        sys::wait_readable(&inotify.as_fd(), Some(Duration::from_secs(1)))
            .map_err(|e| ioe("wait", e.into()))?;
        while let Ok(events) = inotify.read_events() {
            if events.is_empty() {
                break;
            }
        }
    }
}

/// One pod as `get -o json` shows it.
pub fn get_pod(config: &Config, key: &PodKey) -> Result<Pod> {
    pod_object(&Store::of(config)?.get(key)?)
}

/// The store-wide resource version now (what a list is "as of").
pub fn resource_version(config: &Config) -> Result<u64> {
    Ok(store::current_resource_version(&config.root)?)
}

/// The events of the pods of one namespace (or all), oldest first, each
/// with its pod and the pod's uid.
pub fn events(config: &Config, namespace: Option<&str>) -> Result<Vec<(PodKey, String, Event)>> {
    let store = Store::of(config)?;
    let mut rows = Vec::new();
    for dir in store.list(namespace)? {
        let uid = dir
            .read_pod()
            .ok()
            .and_then(|p| p.metadata.uid)
            .unwrap_or_default();
        for e in dir.read_events().unwrap_or_default() {
            rows.push((dir.key.clone(), uid.clone(), e));
        }
    }
    // Stable: events of one pod keep their order within a second.
    rows.sort_by(|a, b| a.2.time.cmp(&b.2.time));
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_their_kind() {
        let missing = store::Error::NotFound {
            namespace: "default".into(),
            name: "web".into(),
        };
        assert_eq!(Error::from(missing).kind(), ErrorKind::NotFound);
        let secret = crate::secrets::Error::NotFound {
            namespace: "default".into(),
            name: "s".into(),
        };
        assert_eq!(Error::from(secret).kind(), ErrorKind::NotFound);
        let taken = store::Error::AlreadyExists {
            namespace: "default".into(),
            name: "web".into(),
        };
        assert_eq!(Error::from(taken).kind(), ErrorKind::AlreadyExists);
        let conflict = Error::Conflict { name: "web".into() };
        assert_eq!(conflict.kind(), ErrorKind::Conflict);
        assert_eq!(Error::NoLog("x".into()).kind(), ErrorKind::BadRequest);
        assert_eq!(
            Error::ExecTimeout(Duration::from_secs(1)).kind(),
            ErrorKind::Timeout
        );
        // Failing to delete is not the pod being missing.
        assert_eq!(Error::Io("gc web: busy".into()).kind(), ErrorKind::Internal);
        let invalid = manifest::Error::Invalid {
            kind: "Pod",
            name: "web".into(),
            problems: Vec::new(),
        };
        assert_eq!(Error::from(invalid).kind(), ErrorKind::Invalid);
    }

    #[test]
    fn conditions_are_met_ignoring_case() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "status": {"conditions": [{"type": "Ready", "status": "True"},
                {"type": "ContainersReady", "status": "False"}]}
        }))
        .unwrap();
        let cond = |t: &str, s: &str| WaitFor::Condition {
            type_: t.into(),
            status: s.into(),
        };
        assert!(meets(&pod, &cond("ready", "true")));
        assert!(!meets(&pod, &cond("Ready", "False")));
        assert!(meets(&pod, &cond("ContainersReady", "false")));
        assert!(!meets(&pod, &cond("Initialized", "True")));
        assert!(!meets(&pod, &WaitFor::Delete));
    }

    #[test]
    fn fields_podlab_does_not_implement_are_named() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {
                "affinity": {"nodeAffinity": {}},
                "tolerations": [{"key": "k", "operator": "Exists"}],
                "nodeSelector": {"disk": "ssd"},
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 5,
                "securityContext": {"runAsUser": 1, "seLinuxChangePolicy": "Recursive"},
                "volumes": [{"name": "v", "emptyDir": {}}],
                "initContainers": [{"name": "side", "restartPolicy": "Always", "image": "x"}],
                "containers": [{
                    "name": "a", "image": "x", "command": ["sh"],
                    "envFrom": [{"configMapRef": {"name": "c"}}],
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}, {"name": "C", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
                    "securityContext": {"runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}, "windowsOptions": {"runAsUserName": "x"}},
                    "livenessProbe": {"grpc": {"port": 9000}, "periodSeconds": 3},
                    "readinessProbe": {"httpGet": {"port": 80, "scheme": "HTTPS"}},
                    "lifecycle": {"preStop": {"exec": {"command": ["true"]}}},
                    "volumeMounts": [{"name": "v", "mountPath": "/v", "subPathExpr": "$(A)"}],
                    "resources": {"limits": {"memory": "1Gi", "ephemeral-storage": "1Gi"}},
                    "ports": [{"containerPort": 80}]
                }]
            }
        }))
        .unwrap();
        let w = ignored_fields(&pod);
        assert_eq!(
            w,
            [
                "Warning: podlab ignores spec.affinity",
                "Warning: podlab ignores spec.nodeSelector",
                "Warning: podlab ignores spec.tolerations",
                "Warning: podlab ignores spec.securityContext.seLinuxChangePolicy",
                "Warning: podlab ignores spec.containers[0].envFrom",
                "Warning: podlab ignores spec.containers[0].securityContext.windowsOptions",
                "Warning: podlab ignores spec.containers[0].livenessProbe.grpc",
                "Warning: podlab ignores spec.containers[0].readinessProbe.httpGet.scheme: HTTPS (probes use plain HTTP)",
                "Warning: podlab ignores spec.containers[0].volumeMounts[0].subPathExpr",
                "Warning: podlab ignores spec.containers[0].env[2].valueFrom.secretKeyRef",
            ]
        );
        let plain: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a", "image": "x"}]}
        }))
        .unwrap();
        assert_eq!(ignored_fields(&plain), Vec::<String>::new());
    }

    #[test]
    fn host_files_dns_host_namespaces_host_ports_and_host_paths_are_not_ignored() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {
                "subdomain": "s", "hostPID": true, "hostIPC": true, "dnsPolicy": "None",
                "dnsConfig": {"nameservers": ["192.0.2.1"]},
                "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["a"]}],
                "volumes": [{"name": "h", "hostPath": {"path": "/srv", "type": "Directory"}}],
                "containers": [{"name": "a", "ports": [{"containerPort": 80, "hostPort": 8080}],
                    "volumeMounts": [{"name": "h", "mountPath": "/h", "readOnly": true,
                        "mountPropagation": "None", "recursiveReadOnly": "Enabled"}]}],
            }
        }))
        .unwrap();
        assert_eq!(ignored_fields(&pod), Vec::<String>::new());
    }

    #[test]
    fn exec_picks_the_named_or_first_container() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]}
        }))
        .unwrap();
        let key = PodKey::new("default", "p");
        assert_eq!(container_name(&pod, &key, None).unwrap(), "a");
        assert_eq!(container_name(&pod, &key, Some("b")).unwrap(), "b");
        let err = container_name(&pod, &key, Some("c")).unwrap_err();
        assert_eq!(err.to_string(), "container c not found in pod default/p");
    }
}
