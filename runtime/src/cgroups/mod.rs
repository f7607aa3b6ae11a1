//! podlab's cgroups: one cgroup per pod, one leaf per container.
//!
//! Layout, the same in every hierarchy podlab uses (kubelet-like):
//!
//! ```text
//! podlab/                       shared by all pods, removed when the last one goes
//! podlab/pod-<uid>/             pod limits; never holds processes
//! podlab/pod-<uid>/pause        the pause process
//! podlab/pod-<uid>/ctr-<name>   one container
//! ```
//!
//! Processes only ever live in leaves: cgroup v2 forbids them in inner nodes
//! that delegate controllers, and v1 follows the same rule so both behave alike.
//!
//! **cgroup v1** (also a hybrid host: its controllers are v1): directories
//! are made only in the memory, cpu, cpuacct, pids and devices hierarchies,
//! wherever each is mounted (cpu and cpuacct may share a mount); each leaf
//! gets its device rules in `devices` (see [`devices`]); a host without the
//! devices controller is refused like one without memory. cpuset is skipped: a
//! new v1 cpuset cgroup has empty `cpuset.cpus`/`cpuset.mems` and refuses
//! tasks until they are copied from the parent, and podlab sets no cpuset
//! limits. freezer, blkio and name=systemd give podlab nothing
//! either; a process keeps its previous cgroup there. With a memory limit,
//! `memory.memsw.limit_in_bytes` (if present) gets the same value: no swap.
//!
//! **cgroup v2**: before a cgroup gets children, `+memory +cpu +pids` are
//! enabled in its `cgroup.subtree_control` (the root's, `podlab`'s and the
//! pod's). Limits go to `memory.max`, `cpu.max` ("quota period"),
//! `cpu.weight` (converted from shares) and `pids.max`; `memory.swap.max` is
//! set to 0 with a memory limit. Device rules are a BPF program attached to
//! each leaf that is not privileged.
//!
//! **How cgroups-rs is used.** Its controllers (`MemController`,
//! `CpuController`, `PidController`, `CpuAcctController`) write the limit
//! files and move processes (`add_task_by_tgid`); mount points on a v1 host
//! come from its mountinfo parser. `Cgroup` and `hierarchies::auto()` are not
//! used: `auto()` can only describe the host's /sys/fs/cgroup, so it cannot
//! be pointed at a fixture tree; `Cgroup::create` makes directories in every
//! v1 hierarchy and on v2 ignores `subtree_control` errors; `Clone`
//! re-detects the host. Controllers built at our own paths write to a fixture
//! tree as well as to the host, so the v2 tests run the real writers. What
//! the kernel does by itself (interface files appearing on mkdir, rmdir,
//! `subtree_control` semantics, killing) sits behind a small `Backend` trait
//! with the real kernel and a plain-directory imitation ([`seed_fixture_root`]).
//! Every written value is read back and compared (see `knobs`).

mod backend;
pub mod devices;
mod knobs;
mod limits;

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use cgroups_rs::fs::cpu::CpuController;
use cgroups_rs::fs::cpuacct::CpuAcctController;
use cgroups_rs::fs::devices::DevicesController;
use cgroups_rs::fs::hierarchies;
use cgroups_rs::fs::memory::MemController;
use cgroups_rs::fs::pid::PidController;
use cgroups_rs::fs::{Controllers, Subsystem};
use cgroups_rs::CgroupPid;
use serde::{Deserialize, Serialize};

pub use backend::{seed_fixture_root, seed_fixture_v1_hierarchy, FIXTURE_DEVICE_PROGRAM};
use backend::{Backend, Fixture, Kernel};
pub use devices::Devices;
pub use knobs::Usage;
pub use limits::{
    quota_from_millis, shares_from_millis, shares_from_weight, weight_from_shares, Limits,
    DEFAULT_CPU_PERIOD_US, MAX_CPU_SHARES, MAX_CPU_WEIGHT, MIN_CPU_QUOTA_US, MIN_CPU_SHARES,
    MIN_CPU_WEIGHT,
};

/// Where cgroup filesystems are mounted on a normal host.
pub const DEFAULT_ROOT: &str = "/sys/fs/cgroup";
/// The directory under each hierarchy that holds all of podlab's cgroups.
pub const TOP: &str = "podlab";
/// How long [`PodCgroup::destroy`] waits for killed processes to go.
pub const DEFAULT_DESTROY_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between two looks at cgroup.procs while waiting.
const POLL: Duration = Duration::from_millis(5);
/// v2 controllers podlab enables for its subtree.
const V2_CONTROLLERS: [&str; 3] = ["memory", "cpu", "pids"];

/// Which cgroup API the host's controllers use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    V1,
    V2,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no cgroup filesystem: {DEFAULT_ROOT} is not cgroup2 and no cgroup v1 hierarchy is mounted"
    )]
    NoCgroupFs,
    #[error("cgroup v1 controller {controller} is not mounted (looked under {root})")]
    NotMounted {
        controller: &'static str,
        root: PathBuf,
    },
    #[error("controller {controller} is not available in {dir} (not in its parent's cgroup.subtree_control, or not in cgroup.controllers)")]
    ControllerUnavailable {
        controller: &'static str,
        dir: PathBuf,
    },
    #[error("invalid {what} {name:?}: {reason}")]
    InvalidName {
        what: &'static str,
        name: String,
        reason: &'static str,
    },
    #[error("refusing to move pid {0} into a cgroup: not a single process")]
    InvalidPid(i32),
    #[error("cgroup {0} already exists")]
    AlreadyExists(String),
    #[error("cgroup {0} does not exist")]
    NotFound(String),
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{op} in {path}")]
    Cgroups {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: cgroups_rs::fs::error::Error,
    },
    #[error("{file}: wrote {wanted} but the kernel holds {got}")]
    NotApplied {
        file: PathBuf,
        wanted: String,
        got: String,
    },
    #[error("{file}: cannot parse {content:?}")]
    Parse { file: PathBuf, content: String },
    #[error("{dir}: processes {pids:?} still inside after {waited:?}")]
    Busy {
        dir: PathBuf,
        pids: Vec<i32>,
        waited: Duration,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The host's mode: V2 when /sys/fs/cgroup itself is cgroup2 (unified); V1
/// when cgroup v1 hierarchies are mounted, including hybrid hosts whose
/// cgroup2 mount (/sys/fs/cgroup/unified) carries no useful controllers.
pub fn detect() -> Result<Mode, Error> {
    if hierarchies::is_cgroup2_unified_mode() {
        Ok(Mode::V2)
    } else if !hierarchies::mountinfo_self().is_empty() {
        Ok(Mode::V1)
    } else {
        Err(Error::NoCgroupFs)
    }
}

/// v1 controllers podlab makes cgroups for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ctl {
    Memory,
    Cpu,
    CpuAcct,
    Pids,
    Devices,
}

impl Ctl {
    const ALL: [Ctl; 5] = [Ctl::Memory, Ctl::Cpu, Ctl::CpuAcct, Ctl::Pids, Ctl::Devices];

    fn name(self) -> &'static str {
        match self {
            Ctl::Memory => "memory",
            Ctl::Cpu => "cpu",
            Ctl::CpuAcct => "cpuacct",
            Ctl::Pids => "pids",
            Ctl::Devices => "devices",
        }
    }

    /// cpuacct only adds accounting; podlab works without it.
    fn required(self) -> bool {
        self != Ctl::CpuAcct
    }

    fn cgroups_rs(self) -> Controllers {
        match self {
            Ctl::Memory => Controllers::Mem,
            Ctl::Cpu => Controllers::Cpu,
            Ctl::CpuAcct => Controllers::CpuAcct,
            Ctl::Pids => Controllers::Pids,
            Ctl::Devices => Controllers::Devices,
        }
    }

    /// A cgroups-rs controller for the cgroup `dir` of the hierarchy at `mount`.
    fn subsystem(self, dir: PathBuf, mount: PathBuf, v2: bool) -> Subsystem {
        match self {
            Ctl::Memory => Subsystem::Mem(MemController::new(dir, mount, v2)),
            Ctl::Cpu => Subsystem::Cpu(CpuController::new(dir, mount, v2)),
            Ctl::CpuAcct => Subsystem::CpuAcct(CpuAcctController::new(dir, mount)),
            Ctl::Pids => Subsystem::Pid(PidController::new(dir, mount, v2)),
            Ctl::Devices => Subsystem::Devices(DevicesController::new(dir, mount)),
        }
    }
}

/// One mounted hierarchy podlab uses.
#[derive(Clone, Debug)]
struct Hierarchy {
    /// "unified", or the v1 controllers mounted there ("cpu,cpuacct").
    label: String,
    mount: PathBuf,
    /// A controller of this hierarchy, to build a cgroups-rs handle with.
    ctl: Ctl,
}

#[derive(Debug)]
struct Inner {
    mode: Mode,
    root: PathBuf,
    /// v1 only: where each controller is mounted (canonical paths).
    mounts: Vec<(Ctl, PathBuf)>,
    backend: Box<dyn Backend>,
}

impl Inner {
    /// The hierarchy directory holding `ctl`'s files.
    fn mount(&self, ctl: Ctl) -> Result<&Path, Error> {
        match self.mode {
            Mode::V2 => Ok(&self.root),
            Mode::V1 => self
                .mounts
                .iter()
                .find(|(c, _)| *c == ctl)
                .map(|(_, p)| p.as_path())
                .ok_or_else(|| Error::NotMounted {
                    controller: ctl.name(),
                    root: self.root.clone(),
                }),
        }
    }

    fn check_mounted(&self) -> Result<(), Error> {
        Ctl::ALL
            .iter()
            .filter(|c| c.required())
            .try_for_each(|&c| self.mount(c).map(drop))
    }

    /// Distinct hierarchies, co-mounted v1 controllers merged.
    fn hierarchies(&self) -> Vec<Hierarchy> {
        if self.mode == Mode::V2 {
            return vec![Hierarchy {
                label: "unified".to_owned(),
                mount: self.root.clone(),
                ctl: Ctl::Memory,
            }];
        }
        let mut out: Vec<Hierarchy> = Vec::new();
        for (ctl, mount) in &self.mounts {
            match out.iter_mut().find(|h| h.mount == *mount) {
                Some(h) => {
                    h.label.push(',');
                    h.label.push_str(ctl.name());
                }
                None => out.push(Hierarchy {
                    label: ctl.name().to_owned(),
                    mount: mount.clone(),
                    ctl: *ctl,
                }),
            }
        }
        out
    }

    /// The directories of cgroup `rel`, one per hierarchy.
    fn dirs(&self, rel: &str) -> Vec<PathBuf> {
        self.hierarchies()
            .into_iter()
            .map(|h| h.mount.join(rel))
            .collect()
    }

    fn mkdir_ok_if_exists(&self, dir: &Path) -> Result<(), Error> {
        match self.backend.mkdir(dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(io_err(dir)(e)),
            _ => Ok(()),
        }
    }

    /// Enables podlab's v2 controllers for the children of `dir`.
    fn enable_controllers(&self, dir: &Path) -> Result<(), Error> {
        let available = knobs::read_string(&dir.join("cgroup.controllers"))?;
        let subtree = dir.join("cgroup.subtree_control");
        let enabled = knobs::read_string(&subtree)?;
        let missing: Vec<&'static str> = V2_CONTROLLERS
            .into_iter()
            .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
            .collect();
        // Check all first so that a host lacking one gets no half-done change.
        if let Some(c) = missing
            .iter()
            .find(|c| !available.split_whitespace().any(|a| a == **c))
        {
            return Err(Error::ControllerUnavailable {
                controller: c,
                dir: dir.to_path_buf(),
            });
        }
        for c in missing {
            self.backend
                .write(&subtree, &format!("+{c}"))
                .map_err(io_err(&subtree))?;
        }
        Ok(())
    }

    /// Removes the shared `podlab` directories unless another pod uses them.
    fn remove_top_if_unused(&self) -> Result<(), Error> {
        for top in self.dirs(TOP) {
            match self.backend.rmdir(&top) {
                Ok(()) => {}
                // Still used by another pod, or already gone.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::ENOTEMPTY)) => {}
                Err(e) => return Err(io_err(&top)(e)),
            }
        }
        Ok(())
    }

    /// Kills whatever is in `dirs` until all are empty, or fails at `deadline`.
    fn kill_until_empty(
        &self,
        dirs: &[PathBuf],
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(), Error> {
        loop {
            let mut busy = None;
            for dir in dirs {
                let pids = read_procs(dir)?;
                if !pids.is_empty() {
                    self.backend.kill(dir, &pids).map_err(io_err(dir))?;
                    busy = Some((dir, pids));
                }
            }
            match busy {
                None => return Ok(()),
                Some((dir, pids)) if Instant::now() >= deadline => {
                    return Err(Error::Busy {
                        dir: dir.clone(),
                        pids,
                        waited: timeout,
                    })
                }
                Some(_) => thread::sleep(POLL),
            }
        }
    }

    /// Removes the cgroup `dir`; a missing one is fine. EBUSY (a process
    /// still exiting, or one that slipped in) is retried until `deadline`.
    fn rmdir_when_empty(
        &self,
        dir: &Path,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(), Error> {
        loop {
            match self.backend.rmdir(dir) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    let pids = read_procs(dir)?;
                    if Instant::now() >= deadline {
                        return Err(Error::Busy {
                            dir: dir.to_path_buf(),
                            pids,
                            waited: timeout,
                        });
                    }
                    if !pids.is_empty() {
                        self.backend.kill(dir, &pids).map_err(io_err(dir))?;
                    }
                    thread::sleep(POLL);
                }
                Err(e) => return Err(io_err(dir)(e)),
            }
        }
    }
}

/// Pids listed in `dir`/cgroup.procs; none when the cgroup is gone.
fn read_procs(dir: &Path) -> Result<Vec<i32>, Error> {
    let file = dir.join("cgroup.procs");
    let content = match fs::read_to_string(&file) {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(&file)(e)),
    };
    content
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.trim().parse().map_err(|_| Error::Parse {
                file: file.clone(),
                content: content.clone(),
            })
        })
        .collect()
}

/// `dir` and every cgroup below it, children before parents.
fn post_order(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        if entry.file_type().map_err(io_err(dir))?.is_dir() {
            post_order(&entry.path(), out)?;
        }
    }
    out.push(dir.to_path_buf());
    Ok(())
}

/// A pod uid or leaf name must be one harmless path component.
fn check_name(what: &'static str, name: &str) -> Result<(), Error> {
    let reason = if name.is_empty() {
        Some("empty")
    } else if name.len() > 200 {
        Some("longer than 200 bytes")
    } else if name == "." || name == ".." {
        Some("not a directory name")
    } else if name.contains('/') {
        Some("contains '/'")
    } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        // /proc/<pid>/cgroup is line- and space-oriented.
        Some("contains whitespace or control characters")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidName {
            what,
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

fn check_leaf_name(leaf: &str) -> Result<(), Error> {
    check_name("leaf", leaf)?;
    let is_ctr = leaf.strip_prefix("ctr-").is_some_and(|n| !n.is_empty());
    if leaf == "pause" || is_ctr {
        Ok(())
    } else {
        Err(Error::InvalidName {
            what: "leaf",
            name: leaf.to_owned(),
            reason: "must be `pause` or `ctr-<name>`",
        })
    }
}

/// v1 hierarchies under a root: `root/<controller>`, or a co-mounted
/// `root/a,b` directory naming it.
fn scan_v1_mounts(root: &Path) -> Vec<(Ctl, PathBuf)> {
    let mut entries: Vec<PathBuf> = fs::read_dir(root)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    entries.sort();
    Ctl::ALL
        .iter()
        .filter_map(|&ctl| {
            let direct = root.join(ctl.name());
            let found = if direct.is_dir() {
                Some(direct)
            } else {
                entries
                    .iter()
                    .find(|p| {
                        p.is_dir()
                            && p.file_name()
                                .and_then(|n| n.to_str())
                                .is_some_and(|n| n.split(',').any(|c| c == ctl.name()))
                    })
                    .cloned()
            }?;
            // Symlinks like cpu -> cpu,cpuacct must count as one hierarchy.
            let found = fs::canonicalize(&found).unwrap_or(found);
            Some((ctl, found))
        })
        .collect()
}

fn is_cgroupfs(dir: &Path) -> bool {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC};
    statfs(dir).is_ok_and(|s| {
        let t = s.filesystem_type();
        t == CGROUP_SUPER_MAGIC || t == CGROUP2_SUPER_MAGIC
    })
}

/// Creates, finds and removes podlab's cgroups.
#[derive(Clone, Debug)]
pub struct Manager {
    inner: Arc<Inner>,
}

impl Manager {
    /// The host's cgroups under /sys/fs/cgroup, in the detected mode; v1
    /// mount points come from /proc/self/mountinfo.
    pub fn new() -> Result<Manager, Error> {
        let mode = detect()?;
        let mounts = match mode {
            Mode::V2 => Vec::new(),
            Mode::V1 => {
                let v1 = hierarchies::V1::new();
                Ctl::ALL
                    .iter()
                    .filter_map(|&c| {
                        v1.get_mount_point(c.cgroups_rs())
                            .map(|(point, _)| (c, point))
                    })
                    .collect()
            }
        };
        Ok(Manager {
            inner: Arc::new(Inner {
                mode,
                root: PathBuf::from(DEFAULT_ROOT),
                mounts,
                backend: Box::new(Kernel),
            }),
        })
    }

    /// Cgroups under `root` in `mode`. v2: `root` is the cgroup2 mount. v1:
    /// the hierarchies are `root/memory`, `root/cpu`, ... or co-mounted
    /// directories such as `root/cpu,cpuacct`. When `root` is not a cgroup
    /// filesystem it is treated as a fixture tree (see [`seed_fixture_root`]):
    /// a plain-directory imitation that never signals any process.
    pub fn with_root(mode: Mode, root: PathBuf) -> Manager {
        let mounts = match mode {
            Mode::V2 => Vec::new(),
            Mode::V1 => scan_v1_mounts(&root),
        };
        let probe = match mode {
            Mode::V2 => Some(root.as_path()),
            Mode::V1 => mounts.first().map(|(_, p)| p.as_path()),
        };
        let backend: Box<dyn Backend> = if probe.is_some_and(is_cgroupfs) {
            Box::new(Kernel)
        } else {
            Box::new(Fixture {
                mode,
                root: fs::canonicalize(&root).unwrap_or_else(|_| root.clone()),
            })
        };
        Manager {
            inner: Arc::new(Inner {
                mode,
                root,
                mounts,
                backend,
            }),
        }
    }

    pub fn mode(&self) -> Mode {
        self.inner.mode
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Creates `podlab/pod-<uid>` with `pod_limits` (read back). Fails with
    /// [`Error::AlreadyExists`] if it exists; a failure leaves nothing behind.
    pub fn create_pod(&self, pod_uid: &str, pod_limits: &Limits) -> Result<PodCgroup, Error> {
        check_name("pod uid", pod_uid)?;
        self.inner.check_mounted()?;
        let pod = self.pod(pod_uid);
        if pod.exists() {
            return Err(Error::AlreadyExists(pod.relative_path()));
        }
        let mut attempts = 0;
        loop {
            if let Err(e) = self.ensure_top() {
                let _ = self.inner.remove_top_if_unused();
                return Err(e);
            }
            let made = pod
                .paths()
                .iter()
                .try_for_each(|d| self.inner.mkdir_ok_if_exists(d));
            match made {
                Ok(()) => break,
                // Another pod's destroy removed the shared `podlab` directory
                // between our two mkdirs: make it again.
                Err(Error::Io { source, .. })
                    if source.kind() == io::ErrorKind::NotFound && attempts < 3 =>
                {
                    attempts += 1;
                }
                Err(e) => {
                    let _ = pod.destroy();
                    return Err(e);
                }
            }
        }
        let setup = knobs::apply(&self.inner, &pod.relative_path(), pod_limits).and_then(|()| {
            match self.inner.mode {
                Mode::V2 => self
                    .inner
                    .enable_controllers(&self.inner.root.join(pod.relative_path())),
                Mode::V1 => Ok(()),
            }
        });
        if let Err(e) = setup {
            let _ = pod.destroy();
            return Err(e);
        }
        Ok(pod)
    }

    /// A handle to `podlab/pod-<uid>`, whether or not it exists.
    pub fn pod(&self, pod_uid: &str) -> PodCgroup {
        PodCgroup {
            inner: Arc::clone(&self.inner),
            uid: pod_uid.to_owned(),
        }
    }

    /// Uids of the `podlab/pod-*` cgroups present in any hierarchy, sorted.
    pub fn list_pods(&self) -> Result<Vec<String>, Error> {
        let mut uids = BTreeSet::new();
        for h in self.inner.hierarchies() {
            let top = h.mount.join(TOP);
            let entries = match fs::read_dir(&top) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(&top)(e)),
            };
            for entry in entries {
                let entry = entry.map_err(io_err(&top))?;
                if !entry.file_type().map_err(io_err(&top))?.is_dir() {
                    continue;
                }
                let name = entry.file_name();
                if let Some(uid) = name.to_str().and_then(|n| n.strip_prefix("pod-")) {
                    if !uid.is_empty() {
                        uids.insert(uid.to_owned());
                    }
                }
            }
        }
        Ok(uids.into_iter().collect())
    }

    /// Makes the shared `podlab` directory in every hierarchy (on v2 with
    /// the controllers enabled above and below it).
    fn ensure_top(&self) -> Result<(), Error> {
        let inner = &self.inner;
        if inner.mode == Mode::V2 {
            inner.enable_controllers(&inner.root)?;
        }
        for dir in inner.dirs(TOP) {
            inner.mkdir_ok_if_exists(&dir)?;
        }
        if inner.mode == Mode::V2 {
            inner.enable_controllers(&inner.root.join(TOP))?;
        }
        Ok(())
    }
}

/// The cgroup of one pod, `podlab/pod-<uid>`.
#[derive(Clone, Debug)]
pub struct PodCgroup {
    inner: Arc<Inner>,
    uid: String,
}

impl PodCgroup {
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// `podlab/pod-<uid>`.
    pub fn relative_path(&self) -> String {
        format!("{TOP}/pod-{}", self.uid)
    }

    /// The pod's directory in each hierarchy.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.inner.dirs(&self.relative_path())
    }

    pub fn exists(&self) -> bool {
        self.paths().iter().any(|p| p.is_dir())
    }

    /// What the whole pod uses now (every leaf, the pause included).
    pub fn usage(&self) -> Result<Usage, Error> {
        knobs::usage(&self.inner, &self.relative_path())
    }

    /// Creates the leaf `pause` or `ctr-<name>` with `limits`, then reads
    /// every value back: the kernel may refuse or clamp. Fails with
    /// [`Error::AlreadyExists`] if it exists; a failure leaves no leaf behind.
    ///
    /// `devices` goes in with the limits, before any process can join the
    /// leaf (see [`devices`]).
    pub fn create_leaf(
        &self,
        leaf: &str,
        limits: &Limits,
        devices: Devices,
    ) -> Result<Leaf, Error> {
        check_leaf_name(leaf)?;
        if !self.exists() {
            return Err(Error::NotFound(self.relative_path()));
        }
        let handle = self.leaf(leaf);
        if handle.exists() {
            return Err(Error::AlreadyExists(handle.relative_path()));
        }
        let dirs = self.inner.dirs(&handle.relative_path());
        let made = dirs
            .iter()
            .try_for_each(|d| self.inner.mkdir_ok_if_exists(d))
            .and_then(|()| knobs::apply(&self.inner, &handle.relative_path(), limits))
            .and_then(|()| devices::apply(&self.inner, &handle.relative_path(), devices));
        if let Err(e) = made {
            // Nothing ran in it yet; a short deadline is plenty.
            let deadline = Instant::now() + Duration::from_secs(1);
            for d in &dirs {
                let _ = self
                    .inner
                    .rmdir_when_empty(d, deadline, Duration::from_secs(1));
            }
            return Err(e);
        }
        Ok(handle)
    }

    /// A handle to the leaf `leaf`, whether or not it exists.
    pub fn leaf(&self, leaf: &str) -> Leaf {
        Leaf {
            inner: Arc::clone(&self.inner),
            pod_uid: self.uid.clone(),
            name: leaf.to_owned(),
        }
    }

    /// Names of the leaves present (in any hierarchy), sorted.
    pub fn leaves(&self) -> Result<Vec<String>, Error> {
        let mut names = BTreeSet::new();
        for dir in self.paths() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(&dir)(e)),
            };
            for entry in entries {
                let entry = entry.map_err(io_err(&dir))?;
                if entry.file_type().map_err(io_err(&dir))?.is_dir() {
                    names.insert(entry.file_name().to_string_lossy().into_owned());
                }
            }
        }
        Ok(names.into_iter().collect())
    }

    /// [`destroy_within`](Self::destroy_within) [`DEFAULT_DESTROY_TIMEOUT`].
    pub fn destroy(&self) -> Result<(), Error> {
        self.destroy_within(DEFAULT_DESTROY_TIMEOUT)
    }

    /// SIGKILLs every process in the pod's cgroups (all hierarchies, every
    /// leaf and anything nested), waits until they are empty, removes them,
    /// then removes `podlab` if no other pod uses it. Missing directories are
    /// fine, so this is idempotent and also cleans up half-made pods.
    pub fn destroy_within(&self, timeout: Duration) -> Result<(), Error> {
        let inner = &self.inner;
        let deadline = Instant::now() + timeout;
        let mut dirs = Vec::new();
        for pod_dir in self.paths() {
            post_order(&pod_dir, &mut dirs)?;
        }
        inner.kill_until_empty(&dirs, deadline, timeout)?;
        for dir in &dirs {
            inner.rmdir_when_empty(dir, deadline, timeout)?;
        }
        inner.remove_top_if_unused()
    }
}

/// A leaf cgroup, `podlab/pod-<uid>/pause` or `podlab/pod-<uid>/ctr-<name>`.
#[derive(Clone, Debug)]
pub struct Leaf {
    inner: Arc<Inner>,
    pod_uid: String,
    name: String,
}

impl Leaf {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pod_uid(&self) -> &str {
        &self.pod_uid
    }

    /// `podlab/pod-<uid>/<leaf>`.
    pub fn relative_path(&self) -> String {
        format!("{TOP}/pod-{}/{}", self.pod_uid, self.name)
    }

    pub fn exists(&self) -> bool {
        self.inner
            .dirs(&self.relative_path())
            .iter()
            .any(|p| p.is_dir())
    }

    /// Moves the process `pid` (all its threads) into this leaf in every
    /// hierarchy podlab uses.
    pub fn add_process(&self, pid: i32) -> Result<(), Error> {
        // 0 would mean "the writer itself" to the kernel.
        let tgid = u64::try_from(pid)
            .ok()
            .filter(|&p| p > 0)
            .ok_or(Error::InvalidPid(pid))?;
        let v2 = self.inner.mode == Mode::V2;
        for h in self.inner.hierarchies() {
            let dir = h.mount.join(self.relative_path());
            if !dir.is_dir() {
                return Err(Error::NotFound(dir.display().to_string()));
            }
            let sub = h.ctl.subsystem(dir.clone(), h.mount.clone(), v2);
            sub.to_controller()
                .add_task_by_tgid(&CgroupPid::from(tgid))
                .map_err(|source| Error::Cgroups {
                    op: "add process",
                    path: dir,
                    source,
                })?;
        }
        Ok(())
    }

    /// (controller or "unified", directory) for each controller podlab uses;
    /// co-mounted v1 controllers appear once each with the same directory.
    pub fn paths(&self) -> Vec<(String, PathBuf)> {
        let rel = self.relative_path();
        match self.inner.mode {
            Mode::V2 => vec![("unified".to_owned(), self.inner.root.join(rel))],
            Mode::V1 => self
                .inner
                .mounts
                .iter()
                .map(|(c, mount)| (c.name().to_owned(), mount.join(&rel)))
                .collect(),
        }
    }

    /// The limits the kernel holds. `cpu_period_us` is only reported with a
    /// quota; on v2 `cpu_shares` is the smallest shares value that maps to
    /// the leaf's `cpu.weight`.
    pub fn read_limits(&self) -> Result<Limits, Error> {
        knobs::read(&self.inner, &self.relative_path())
    }

    /// The v1 `devices.list` of the leaf, one rule a line (v1 only: v2
    /// keeps its rules in a BPF program).
    pub fn device_list(&self) -> Result<Vec<String>, Error> {
        let file = self
            .inner
            .mount(Ctl::Devices)?
            .join(self.relative_path())
            .join("devices.list");
        Ok(knobs::read_string(&file)?
            .lines()
            .map(str::to_owned)
            .collect())
    }

    /// Processes in the leaf (in any hierarchy), sorted.
    pub fn procs(&self) -> Result<Vec<i32>, Error> {
        let mut all = BTreeSet::new();
        for dir in self.inner.dirs(&self.relative_path()) {
            if !dir.is_dir() {
                return Err(Error::NotFound(dir.display().to_string()));
            }
            all.extend(read_procs(&dir)?);
        }
        Ok(all.into_iter().collect())
    }

    /// What the leaf's processes use now.
    pub fn usage(&self) -> Result<Usage, Error> {
        knobs::usage(&self.inner, &self.relative_path())
    }

    /// Processes the OOM killer killed in this leaf ("oom_kill" of
    /// memory.oom_control on v1, memory.events on v2).
    pub fn oom_kill_count(&self) -> Result<u64, Error> {
        knobs::oom_kill_count(&self.inner, &self.relative_path())
    }
}

#[cfg(test)]
mod tests;
