//! The embedded pod store: what the API server's etcd is to a cluster.
//!
//! One directory per pod under `<root>/pods/<namespace>/<name>/`:
//! - `pod.json`     the applied Pod (spec + metadata), written by the CLI;
//! - `status.json`  the pod's v1 `PodStatus`, written by the pod's shim;
//! - `runtime.json` what the shim holds on the host (pids, netns, cgroups), for exec/describe/gc;
//! - `events.jsonl` the pod's events, one JSON object per line.
//!
//! What the pod itself writes lives on disk under the data root instead
//! (`--data-root`, default `/var/lib/podlab/data`), in
//! `<data root>/pods/<namespace>/<name>/`: the containers' overlay upper and
//! work directories (`containers/<c>/{upper,work}`), the emptyDir volumes
//! (`volumes/<v>`; a `medium: Memory` one is a tmpfs mounted there) and the
//! container logs (`logs/<c>.log`). The state root is often a small tmpfs
//! (`/run`); only records and mount points go there.
//!
//! Records are replaced atomically (temp file + rename), and creating or
//! removing a pod directory happens under an exclusive `flock` on `<root>/lock`,
//! so concurrent `podlab` processes never see a half-written record.
//!
//! Every write of `pod.json` or `status.json` takes the next value of one
//! store-wide counter (`<root>/resource-version`, bumped under its own
//! `flock`) and records it in what it writes, as etcd's revision: a pod's
//! `metadata.resourceVersion` is the larger of its two records' versions.
//!
//! Each of those versions also goes into `<root>/changes.jsonl` (which pod,
//! added, modified or deleted; a deleted pod's last object; each event
//! recorded, which takes a version too, as Kubernetes' Event objects do), under the same
//! lock: the history an API server's watch replays from. It is bounded:
//! past [`HISTORY_BYTES`] the older half goes, and `<root>/changes-since`
//! records the version the kept history starts after.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: corrupt record")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    // kubectl's words; the namespace is the one the command named.
    #[error("pods \"{name}\" not found")]
    NotFound { namespace: String, name: String },
    #[error("data root {data_root} belongs to the state root {owner}, not {root}: give each state root its own --data-root")]
    DataRootTaken {
        data_root: PathBuf,
        owner: PathBuf,
        root: PathBuf,
    },
    #[error("pods \"{name}\" already exists in namespace \"{namespace}\"")]
    AlreadyExists { namespace: String, name: String },
}

pub type Result<T> = std::result::Result<T, Error>;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A namespaced pod name, `namespace/name`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PodKey {
    pub namespace: String,
    pub name: String,
}

impl PodKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        PodKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for PodKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A Kubernetes event, as `kubectl describe` lists them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub time: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub reason: String,
    pub from: String,
    pub message: String,
    /// The resource version it was recorded under (0 in records older than that).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rv: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Event {
    pub fn normal(reason: &str, from: &str, message: impl Into<String>) -> Self {
        Event {
            time: now_rfc3339(),
            type_: "Normal".into(),
            reason: reason.into(),
            from: from.into(),
            message: message.into(),
            rv: 0,
        }
    }

    pub fn warning(reason: &str, from: &str, message: impl Into<String>) -> Self {
        Event {
            type_: "Warning".into(),
            ..Event::normal(reason, from, message)
        }
    }
}

/// The current time as Kubernetes writes it (RFC 3339, second precision, UTC).
pub fn now_rfc3339() -> String {
    jiff_now().to_string()
}

/// The current time as the `Time` type of k8s-openapi.
pub fn now_time() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff_now())
}

/// Seconds since the epoch now (k8s-openapi's jiff is built without a clock).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn jiff_now() -> k8s_openapi::jiff::Timestamp {
    // Kubernetes timestamps have second precision.
    k8s_openapi::jiff::Timestamp::from_second(unix_now())
        .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
}

/// An exclusive lock on the whole store, released when dropped.
pub struct StoreLock {
    _file: nix::fcntl::Flock<File>,
}

/// Handle to one pod's directory.
#[derive(Clone, Debug)]
pub struct PodDir {
    pub key: PodKey,
    pub dir: PathBuf,
    /// The store's root, whose `lock` guards creating and handing over.
    pub root: PathBuf,
    /// The pod's bytes on disk: writable layers, emptyDirs, logs.
    pub data: PathBuf,
}

impl PodDir {
    pub fn pod_file(&self) -> PathBuf {
        self.dir.join("pod.json")
    }
    pub fn status_file(&self) -> PathBuf {
        self.dir.join("status.json")
    }
    pub fn runtime_file(&self) -> PathBuf {
        self.dir.join("runtime.json")
    }
    pub fn events_file(&self) -> PathBuf {
        self.dir.join("events.jsonl")
    }
    pub fn shim_log(&self) -> PathBuf {
        self.dir.join("shim.log")
    }
    /// The container's logs, one `<restart>.log` per start (data root).
    pub fn log_dir(&self, container: &str) -> PathBuf {
        self.data.join("logs").join(container)
    }
    /// The container's records and rootfs mount point (state root).
    pub fn container_dir(&self, container: &str) -> PathBuf {
        self.dir.join("containers").join(container)
    }
    /// The container's overlay upper and work directories (data root).
    pub fn layer_dir(&self, container: &str) -> PathBuf {
        self.data.join("containers").join(container)
    }
    /// The directory of the pod's emptyDir volumes (data root).
    pub fn volumes_dir(&self) -> PathBuf {
        self.data.join("volumes")
    }
    /// Mount point of the pod-wide tmpfs bound to every container's `/dev/shm`.
    pub fn shm_dir(&self) -> PathBuf {
        self.dir.join("shm")
    }
    /// Pod-level files bind-mounted into containers (`hostname`, `hosts`, `resolv.conf`).
    pub fn etc_dir(&self) -> PathBuf {
        self.dir.join("etc")
    }

    pub fn read_pod(&self) -> Result<Pod> {
        read_json(&self.pod_file())
    }
    /// Writes the pod under the next resource version (set in the record,
    /// whatever `pod` carries).
    pub fn write_pod(&self, pod: &Pod) -> Result<()> {
        self.write_pod_as(pod, ChangeKind::Modified)
    }

    fn write_pod_as(&self, pod: &Pod, kind: ChangeKind) -> Result<()> {
        let mut pod = pod.clone();
        record_change(&self.root, &self.key, kind, None, |rv| {
            pod.metadata.resource_version = Some(rv.to_string());
            write_json_atomic(&self.pod_file(), &pod)
        })?;
        Ok(())
    }

    /// The pod's records as one object (the status inside), for a
    /// deleted pod's last appearance in the history.
    fn last_object(&self) -> Option<serde_json::Value> {
        let mut pod: serde_json::Value = read_json_opt(&self.pod_file()).ok().flatten()?;
        if let Ok(Some(mut status)) = read_json_opt::<serde_json::Value>(&self.status_file()) {
            if let Some(o) = status.as_object_mut() {
                o.remove("resourceVersion");
            }
            pod["status"] = status;
        }
        Some(pod)
    }
    /// Runs `check` while no podlab process holds the store lock (a shared
    /// lock, never waited for); `None` when one does: a pod may be being
    /// stored, bound or handed to its shim right now.
    pub fn when_store_idle<T>(&self, check: impl FnOnce() -> T) -> Option<T> {
        let path = self.root.join("lock");
        // No lock file: nobody has ever created a pod here, nobody holds it.
        let Ok(file) = File::open(&path) else {
            return Some(check());
        };
        // Held (shared) until `check` is done.
        let _shared = crate::sys::flock(file, false, false).ok()?;
        Some(check())
    }

    /// The status, or `None` when the shim has not written one yet.
    pub fn read_status(&self) -> Result<Option<PodStatus>> {
        Ok(self.read_status_versioned()?.map(|(s, _)| s))
    }
    /// The status with the resource version it was written under.
    pub fn read_status_versioned(&self) -> Result<Option<(PodStatus, u64)>> {
        let path = self.status_file();
        let Some(record) = read_json_opt::<StatusRecord>(&path)? else {
            return Ok(None);
        };
        Ok(Some((record.status, record.resource_version)))
    }
    /// Writes the status under the next resource version.
    pub fn write_status(&self, status: &PodStatus) -> Result<()> {
        record_change(&self.root, &self.key, ChangeKind::Modified, None, |rv| {
            let record = StatusRecord {
                resource_version: rv,
                status: status.clone(),
            };
            write_json_atomic(&self.status_file(), &record)
        })?;
        Ok(())
    }
    pub fn read_runtime<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        read_json_opt(&self.runtime_file())
    }
    pub fn write_runtime<T: Serialize>(&self, state: &T) -> Result<()> {
        write_json_atomic(&self.runtime_file(), state)
    }

    /// Appends one event under the next resource version, which also goes
    /// into the history (so a watch of events replays it). A single `write`
    /// of one line to an `O_APPEND` file keeps lines whole when the CLI and
    /// the shim append at the same time.
    pub fn record_event(&self, event: &Event) -> Result<()> {
        let path = self.events_file();
        let mut event = event.clone();
        let object = serde_json::to_value(&event).map_err(|source| Error::Corrupt {
            path: path.clone(),
            source,
        })?;
        record_change(
            &self.root,
            &self.key,
            ChangeKind::Event,
            Some(object),
            |rv| {
                event.rv = rv;
                let mut line = serde_json::to_vec(&event).map_err(|source| Error::Corrupt {
                    path: path.clone(),
                    source,
                })?;
                line.push(b'\n');
                let mut f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(io_err(&path))?;
                f.write_all(&line).map_err(io_err(&path))
            },
        )?;
        Ok(())
    }

    /// Events in the order they happened; a torn last line (crash mid-write) is skipped.
    pub fn read_events(&self) -> Result<Vec<Event>> {
        let path = self.events_file();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&path)(e)),
        };
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }
}

/// `status.json`: the v1 `PodStatus` plus the version it was written under.
#[derive(Serialize, Deserialize)]
struct StatusRecord {
    #[serde(rename = "resourceVersion", default)]
    resource_version: u64,
    #[serde(flatten)]
    status: PodStatus,
}

/// The store-wide resource version counter's current value (0 before any
/// write), read under the counter's lock: every change up to it is in
/// its record and in the history.
pub fn current_resource_version(root: &Path) -> Result<u64> {
    let _lock = lock_counter(root)?;
    read_counter(root)
}

/// The counter's value, for a caller that holds its lock.
fn read_counter(root: &Path) -> Result<u64> {
    let path = root.join("resource-version");
    match fs::read_to_string(&path) {
        Ok(text) => text.trim().parse::<u64>().map_err(|e| Error::Io {
            path: path.clone(),
            source: io::Error::new(io::ErrorKind::InvalidData, e),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(io_err(&path)(e)),
    }
}

/// What happened to a pod at one resource version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
    /// An event of the pod was recorded (the object is the event).
    Event,
}

/// One line of the history: a pod's change at a resource version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub rv: u64,
    pub key: PodKey,
    pub kind: ChangeKind,
    /// A deleted pod's last object (pod and status), as watchers show it;
    /// the event, for an `Event` change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<serde_json::Value>,
}

/// The history is cut to half once it grows past this: a small record on
/// the state root (a tmpfs), some hundreds of changes.
pub const HISTORY_BYTES: u64 = if cfg!(test) { 8 * 1024 } else { 256 * 1024 };

/// Changes older than the kept history were asked for.
#[derive(Debug, PartialEq, Eq)]
pub struct Expired {
    /// The oldest version a watch may start from now.
    pub oldest: u64,
}

/// The changes after `since`, oldest first; `Expired` when some of them
/// are no longer kept.
pub fn changes_since(root: &Path, since: u64) -> Result<std::result::Result<Vec<Change>, Expired>> {
    Ok(changes_since_at(root, since)?.0)
}

/// Where the history file was when it was read whole: a follower goes on
/// from there by offset while the file (its inode) stays the same one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistoryPos {
    pub inode: u64,
    pub len: u64,
}

/// [`changes_since`], and where the file read ends.
pub fn changes_since_at(
    root: &Path,
    since: u64,
) -> Result<(std::result::Result<Vec<Change>, Expired>, HistoryPos)> {
    use std::os::unix::fs::MetadataExt;
    // Under the lock: the start, the counter and the lines agree.
    let _lock = lock_counter(root)?;
    let start = match fs::read_to_string(root.join("changes-since")) {
        Ok(t) => t.trim().parse::<u64>().unwrap_or(u64::MAX),
        // No history yet: nothing before now can be replayed.
        Err(e) if e.kind() == io::ErrorKind::NotFound => read_counter(root)?,
        Err(e) => return Err(io_err(&root.join("changes-since"))(e)),
    };
    let path = root.join("changes.jsonl");
    let (text, pos) = match File::open(&path) {
        Ok(mut f) => {
            let meta = f.metadata().map_err(io_err(&path))?;
            let mut text = String::new();
            io::Read::read_to_string(&mut f, &mut text).map_err(io_err(&path))?;
            let pos = HistoryPos {
                inode: meta.ino(),
                len: text.len() as u64,
            };
            (text, pos)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => (String::new(), HistoryPos::default()),
        Err(e) => return Err(io_err(&path)(e)),
    };
    if since < start {
        return Ok((Err(Expired { oldest: start }), pos));
    }
    let changes = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Change>(l).ok())
        .filter(|c| c.rv > since)
        .collect();
    Ok((Ok(changes), pos))
}

/// Takes the next resource version for a change of `key`, makes the
/// change (`write`, given the version) and appends it to the history, all
/// under the counter's lock: lines stay in order, and a reader that finds
/// a line finds the record as it was changed.
pub fn record_change(
    root: &Path,
    key: &PodKey,
    kind: ChangeKind,
    object: Option<serde_json::Value>,
    write: impl FnOnce(u64) -> Result<()>,
) -> Result<u64> {
    let lock = lock_counter(root)?;
    let rv = bump_counter(root)?;
    write(rv)?;
    let object = object.map(|mut o| {
        if kind == ChangeKind::Event {
            o["rv"] = serde_json::json!(rv);
        } else {
            o["metadata"]["resourceVersion"] = serde_json::json!(rv.to_string());
        }
        o
    });
    let change = Change {
        rv,
        key: key.clone(),
        kind,
        object,
    };
    let mut line = serde_json::to_vec(&change).map_err(|source| Error::Corrupt {
        path: root.join("changes.jsonl"),
        source,
    })?;
    line.push(b'\n');
    append_history(root, &line, rv)?;
    drop(lock);
    Ok(rv)
}

/// Appends one line; cuts the older half once the file is too big. The
/// caller holds the counter lock.
fn append_history(root: &Path, line: &[u8], rv: u64) -> Result<()> {
    let path = root.join("changes.jsonl");
    let since = root.join("changes-since");
    if !since.exists() {
        // The history starts here: everything before is unknown.
        write_atomic(&since, (rv - 1).to_string().as_bytes())?;
    }
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io_err(&path))?;
    f.write_all(line).map_err(io_err(&path))?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    drop(f);
    // Tests shrink it to see a watch expire without thousands of changes.
    let limit = std::env::var("PODLAB_HISTORY_BYTES")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(HISTORY_BYTES);
    if len <= limit {
        return Ok(());
    }
    let text = fs::read_to_string(&path).map_err(io_err(&path))?;
    let lines: Vec<&str> = text.lines().collect();
    let cut = lines.len() / 2;
    let dropped = lines[..cut]
        .iter()
        .rev()
        .find_map(|l| serde_json::from_str::<Change>(l).ok())
        .map(|c| c.rv)
        .unwrap_or(rv - 1);
    let kept: String = lines[cut..].iter().map(|l| format!("{l}\n")).collect();
    // The start moves first: a reader never takes the cut history as whole.
    write_atomic(&since, dropped.to_string().as_bytes())?;
    write_atomic(&path, kept.as_bytes())
}

fn lock_counter(root: &Path) -> Result<nix::fcntl::Flock<File>> {
    let lock_path = root.join("resource-version.lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_err(&lock_path))?;
    crate::sys::flock(lock, true, true).map_err(io_err(&lock_path))
}

/// Takes the next value of the store-wide resource version counter, under
/// an exclusive `flock` on its own lock file (never the store lock, which
/// writers of records may hold).
pub fn next_resource_version(root: &Path) -> Result<u64> {
    let lock = lock_counter(root)?;
    let next = bump_counter(root)?;
    drop(lock);
    Ok(next)
}

/// The counter plus one, written back. The caller holds the counter lock,
/// which every reader takes too: the value is written in place, at a fixed
/// width (so never seen half-written), and not synced. A sync here cost
/// one more disk flush per change (7 ms on a virtual disk, several per
/// pod start); the records it numbers are synced, and the history next to
/// it never was.
fn bump_counter(root: &Path) -> Result<u64> {
    use std::os::unix::fs::FileExt;
    let path = root.join("resource-version");
    let next = read_counter(root)? + 1;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err(&path))?;
    file.write_all_at(format!("{next:020}\n").as_bytes(), 0)
        .map_err(io_err(&path))?;
    Ok(next)
}

/// The store rooted at the state directory (`--root`, default `/run/podlab`).
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
    data_root: PathBuf,
}

impl Store {
    /// The store with its records under `root` and the pods' bytes under `data_root`.
    pub fn open(root: impl Into<PathBuf>, data_root: impl Into<PathBuf>) -> Result<Store> {
        let (root, data_root) = (root.into(), data_root.into());
        for pods in [root.join("pods"), data_root.join("pods")] {
            fs::create_dir_all(&pods).map_err(io_err(&pods))?;
        }
        // gc removes data without a record: a data root shared by two state
        // roots would lose the other's pods, so the first one claims it.
        let owner_file = data_root.join("owner");
        let owner = match fs::read_to_string(&owner_file) {
            Ok(o) => PathBuf::from(o.trim_end_matches('\n')),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut claim = root.as_os_str().as_encoded_bytes().to_vec();
                claim.push(b'\n');
                write_atomic(&owner_file, &claim)?;
                root.clone()
            }
            Err(e) => return Err(io_err(&owner_file)(e)),
        };
        if owner != root {
            return Err(Error::DataRootTaken {
                data_root,
                owner,
                root,
            });
        }
        Ok(Store { root, data_root })
    }

    /// The store of a configuration's two roots.
    pub fn of(config: &crate::config::Config) -> Result<Store> {
        Store::open(&config.root, &config.data_root)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn data_root(&self) -> &Path {
        &self.data_root
    }

    /// Takes the store-wide lock (blocking). Held only for short critical
    /// sections: creating, claiming or removing pod directories.
    pub fn lock(&self) -> Result<StoreLock> {
        let path = self.root.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let file = crate::sys::flock(file, true, true).map_err(io_err(&path))?;
        Ok(StoreLock { _file: file })
    }

    pub fn pod_dir(&self, key: &PodKey) -> PodDir {
        PodDir {
            key: key.clone(),
            dir: self.root.join("pods").join(&key.namespace).join(&key.name),
            root: self.root.clone(),
            data: self
                .data_root
                .join("pods")
                .join(&key.namespace)
                .join(&key.name),
        }
    }

    /// The pod's directory if the pod exists (its `pod.json` is present).
    pub fn get(&self, key: &PodKey) -> Result<PodDir> {
        let dir = self.pod_dir(key);
        if dir.pod_file().exists() {
            Ok(dir)
        } else {
            Err(Error::NotFound {
                namespace: key.namespace.clone(),
                name: key.name.clone(),
            })
        }
    }

    /// Creates the pod's record. The caller holds the store lock.
    pub fn create(&self, _lock: &StoreLock, key: &PodKey, pod: &Pod) -> Result<PodDir> {
        let dir = self.pod_dir(key);
        if dir.pod_file().exists() {
            return Err(Error::AlreadyExists {
                namespace: key.namespace.clone(),
                name: key.name.clone(),
            });
        }
        fs::create_dir_all(&dir.dir).map_err(io_err(&dir.dir))?;
        let logs = dir.data.join("logs");
        fs::create_dir_all(&logs).map_err(io_err(&logs))?;
        dir.write_pod_as(pod, ChangeKind::Added)?;
        Ok(dir)
    }

    /// Removes the pod's record, its data and everything in both
    /// directories. Idempotent. The data goes first: a crash in between
    /// leaves a record that gc still finds.
    pub fn remove(&self, _lock: &StoreLock, key: &PodKey) -> Result<()> {
        let dir = self.pod_dir(key);
        // Watchers see the deletion with the pod's last object.
        // The record goes first: a reader that still finds the pod file
        // also finds its status, never a pod without one (which reads as
        // a fresh, Pending pod).
        let remove_record = |_rv| match fs::remove_file(dir.pod_file()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&dir.pod_file())(e)),
        };
        match dir.last_object() {
            Some(last) => {
                record_change(
                    &self.root,
                    key,
                    ChangeKind::Deleted,
                    Some(last),
                    remove_record,
                )?;
            }
            None => remove_record(0)?,
        }
        for d in [&dir.data, &dir.dir] {
            match fs::remove_dir_all(d) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(d)(e)),
            }
            // Drop the namespace directory once its last pod is gone.
            if let Some(ns_dir) = d.parent() {
                let _ = fs::remove_dir(ns_dir);
            }
        }
        Ok(())
    }

    /// Pods whose data is on disk with no record in the state root: the
    /// state root (a tmpfs) was wiped by a reboot, or a crash came between
    /// the two removals. The caller holds the store lock.
    pub fn orphaned_data(&self, _lock: &StoreLock) -> Result<Vec<PodDir>> {
        let pods = self.data_root.join("pods");
        let mut out = Vec::new();
        for ns in read_dir_names(&pods)? {
            for name in read_dir_names(&pods.join(&ns))? {
                let dir = self.pod_dir(&PodKey::new(ns.clone(), name));
                if !dir.pod_file().exists() {
                    out.push(dir);
                }
            }
        }
        Ok(out)
    }

    /// Every pod in the store, optionally in one namespace, sorted by key.
    pub fn list(&self, namespace: Option<&str>) -> Result<Vec<PodDir>> {
        let pods = self.root.join("pods");
        let mut out = Vec::new();
        for ns in read_dir_names(&pods)? {
            if namespace.is_some_and(|n| n != ns) {
                continue;
            }
            for name in read_dir_names(&pods.join(&ns))? {
                let dir = self.pod_dir(&PodKey::new(ns.clone(), name));
                if dir.pod_file().exists() {
                    out.push(dir);
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

fn read_dir_names(dir: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            if let Some(n) = entry.file_name().to_str() {
                names.push(n.to_string());
            }
        }
    }
    Ok(names)
}

pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Corrupt {
        path: path.to_path_buf(),
        source,
    })
}

pub fn read_json_opt<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| Error::Corrupt {
                path: path.to_path_buf(),
                source,
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Writes `value` as JSON to `path` so that readers see either the old or the
/// new content, never a mix: a temp file in the same directory, then rename.
pub fn write_json_atomic<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| Error::Corrupt {
        path: path.to_path_buf(),
        source,
    })?;
    write_atomic(path, &bytes)
}

pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::atomic_file::write(path, bytes).map_err(io_err(path))
}

/// A random RFC 4122 version 4 UUID, for the `metadata.uid` of what the
/// store keeps.
pub fn new_uid() -> String {
    let mut b = [0u8; 16];
    let filled =
        File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b));
    if filled.is_err() {
        // Never reached on Linux; fall back to time and pid rather than fail.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b = (t ^ (u128::from(std::process::id()) << 64)).to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "a", "image": "busybox"}]}
        }))
        .unwrap()
    }

    #[test]
    fn uids_are_v4_and_distinct() {
        let a = new_uid();
        let b = new_uid();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
    }

    #[test]
    fn create_get_list_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), tmp.path().join("data")).unwrap();
        let lock = store.lock().unwrap();
        let key = PodKey::new("default", "web");
        store.create(&lock, &key, &pod("web")).unwrap();
        let err = store.create(&lock, &key, &pod("web")).unwrap_err();
        assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
        store
            .create(&lock, &PodKey::new("other", "db"), &pod("db"))
            .unwrap();

        let got = store.get(&key).unwrap().read_pod().unwrap();
        assert_eq!(got.metadata.name.as_deref(), Some("web"));
        let all: Vec<_> = store
            .list(None)
            .unwrap()
            .into_iter()
            .map(|d| d.key.to_string())
            .collect();
        assert_eq!(all, ["default/web", "other/db"]);
        assert_eq!(store.list(Some("other")).unwrap().len(), 1);

        // What the pod writes goes under the data root, records under the state root.
        let dir = store.get(&key).unwrap();
        assert!(dir
            .log_dir("a")
            .starts_with(tmp.path().join("data/pods/default/web")));
        assert!(dir.layer_dir("a").starts_with(&dir.data));
        assert!(dir.volumes_dir().starts_with(&dir.data));
        assert!(dir
            .pod_file()
            .starts_with(tmp.path().join("pods/default/web")));
        fs::create_dir_all(dir.layer_dir("a").join("upper/tmp")).unwrap();
        fs::write(dir.layer_dir("a").join("upper/tmp/big"), b"bytes").unwrap();

        assert!(store.orphaned_data(&lock).unwrap().is_empty());
        store.remove(&lock, &key).unwrap();
        store.remove(&lock, &key).unwrap();
        assert!(matches!(store.get(&key), Err(Error::NotFound { .. })));
        assert!(!tmp.path().join("pods/default").exists());
        assert!(!tmp.path().join("data/pods/default").exists());

        // Data left without its record (the state tmpfs was wiped) is an orphan.
        let db = PodKey::new("other", "db");
        fs::remove_dir_all(tmp.path().join("pods/other/db")).unwrap();
        let orphans = store.orphaned_data(&lock).unwrap();
        assert_eq!(orphans.len(), 1);
        assert_eq!(orphans[0].key, db);
    }

    #[test]
    fn a_data_root_serves_one_state_root() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        Store::open(tmp.path().join("a"), &data).unwrap();
        Store::open(tmp.path().join("a"), &data).unwrap();
        let err = Store::open(tmp.path().join("b"), &data).unwrap_err();
        assert!(matches!(err, Error::DataRootTaken { .. }), "{err}");
    }

    #[test]
    fn every_write_takes_a_larger_resource_version() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), tmp.path().join("data")).unwrap();
        let lock = store.lock().unwrap();
        let a = store
            .create(&lock, &PodKey::new("default", "a"), &pod("a"))
            .unwrap();
        let b = store
            .create(&lock, &PodKey::new("default", "b"), &pod("b"))
            .unwrap();
        let rv = |d: &PodDir| -> u64 {
            d.read_pod()
                .unwrap()
                .metadata
                .resource_version
                .unwrap()
                .parse()
                .unwrap()
        };
        let (ra, rb) = (rv(&a), rv(&b));
        assert!(rb > ra, "{ra} {rb}");
        let status = PodStatus {
            phase: Some("Running".into()),
            ..Default::default()
        };
        a.write_status(&status).unwrap();
        let (got, rs) = a.read_status_versioned().unwrap().unwrap();
        assert_eq!(got, status);
        assert!(rs > rb, "{rb} {rs}");
        // The pod carries a stale version: the store sets the next one.
        a.write_pod(&a.read_pod().unwrap()).unwrap();
        assert!(rv(&a) > rs);
        // The counter survives the process: a new handle goes on from it.
        let again = Store::open(tmp.path(), tmp.path().join("data")).unwrap();
        assert!(next_resource_version(again.root()).unwrap() > rv(&a));
    }

    #[test]
    fn the_history_replays_changes_and_expires_what_it_cut() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), tmp.path().join("data")).unwrap();
        let before = current_resource_version(tmp.path()).unwrap();
        let lock = store.lock().unwrap();
        let key = PodKey::new("default", "h");
        let dir = store.create(&lock, &key, &pod("h")).unwrap();
        dir.write_status(&PodStatus::default()).unwrap();
        store.remove(&lock, &key).unwrap();
        let all = changes_since(tmp.path(), before).unwrap().unwrap();
        let kinds: Vec<ChangeKind> = all.iter().map(|c| c.kind).collect();
        assert_eq!(
            kinds,
            [ChangeKind::Added, ChangeKind::Modified, ChangeKind::Deleted]
        );
        assert!(all.windows(2).all(|w| w[0].rv < w[1].rv));
        // The deletion carries the pod's last object, at its own version.
        let last = all[2].object.as_ref().unwrap();
        assert_eq!(last["metadata"]["name"], "h");
        assert_eq!(last["metadata"]["resourceVersion"], all[2].rv.to_string());
        assert!(last.get("status").is_some());
        assert_eq!(
            changes_since(tmp.path(), all[1].rv).unwrap().unwrap().len(),
            1
        );
        // Past its size the history is cut; older versions are gone (410).
        let first = all[0].rv;
        while fs::metadata(tmp.path().join("changes-since"))
            .map(|_| changes_since(tmp.path(), first).unwrap().is_ok())
            .unwrap_or(true)
        {
            record_change(tmp.path(), &key, ChangeKind::Modified, None, |_| Ok(())).unwrap();
        }
        let Err(Expired { oldest }) = changes_since(tmp.path(), first).unwrap() else {
            panic!("not expired");
        };
        assert!(oldest > first);
        assert!(
            fs::metadata(tmp.path().join("changes.jsonl"))
                .unwrap()
                .len()
                <= HISTORY_BYTES
        );
        let kept = changes_since(tmp.path(), oldest).unwrap().unwrap();
        assert_eq!(kept[0].rv, oldest + 1);
    }

    #[test]
    fn concurrent_writers_never_share_a_resource_version() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let root = root.clone();
                std::thread::spawn(move || {
                    (0..50)
                        .map(|_| next_resource_version(&root).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<u64> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        all.sort_unstable();
        assert_eq!(all, (1..=200).collect::<Vec<_>>());
    }

    #[test]
    fn corrupt_record_is_an_error_not_a_panic() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), tmp.path().join("data")).unwrap();
        let lock = store.lock().unwrap();
        let dir = store
            .create(&lock, &PodKey::new("default", "x"), &pod("x"))
            .unwrap();
        fs::write(dir.status_file(), b"{\"phase\": \"Runn").unwrap();
        assert!(matches!(dir.read_status(), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn events_survive_a_torn_last_line() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), tmp.path().join("data")).unwrap();
        let lock = store.lock().unwrap();
        let dir = store
            .create(&lock, &PodKey::new("default", "x"), &pod("x"))
            .unwrap();
        dir.record_event(&Event::normal("Scheduled", "scheduler", "ok"))
            .unwrap();
        dir.record_event(&Event::warning("Failed", "kubelet", "bad"))
            .unwrap();
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.events_file())
            .unwrap();
        f.write_all(b"{\"time\":").unwrap();
        let events = dir.read_events().unwrap();
        assert_eq!(
            events.iter().map(|e| e.reason.as_str()).collect::<Vec<_>>(),
            ["Scheduled", "Failed"]
        );
        assert_eq!(events[1].type_, "Warning");
    }
}
