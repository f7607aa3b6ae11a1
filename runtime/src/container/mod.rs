//! One container: what it runs (resolved from the manifest and the image),
//! and the init that turns a re-exec'd `podlab` process into it: join the
//! pod's namespaces, build the root filesystem, pivot_root, exec.

use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Container;
use nix::mount::MsFlags;
use podlab_kube::expansion;
use serde::{Deserialize, Serialize};

use crate::hostpath::{self, Propagation, RecursiveReadOnly};
use crate::image::ImageConfig;
use crate::mutants::Mutant;
use crate::namespaces::{self, Plan};
use crate::sys::{self, Sys};

/// The PATH a container gets when its image sets none (containerd's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Inherited descriptors of the init protocol with the shim.
pub const REPORT_FD: i32 = 3;
pub const GO_FD: i32 = 4;

mod exec;
mod state;

pub use exec::exec_in;
pub use state::{ContainerRuntime, RuntimeState};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("container {container}: no command: the manifest sets no command/args and the image has no Entrypoint/Cmd")]
    NoCommand { container: String },
    #[error(transparent)]
    Namespaces(#[from] namespaces::Error),
    #[error(transparent)]
    Sys(#[from] sys::Error),
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("executable file {0:?} not found in $PATH")]
    NotFound(String),
    #[error("exec {path}")]
    Exec { path: String, source: nix::Error },
    #[error("container {0:?} is not running")]
    NotRunning(String),
    #[error("timed out after {0:?}")]
    ExecTimeout(Duration),
    #[error("{op}")]
    Wait {
        op: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Cgroups(#[from] crate::cgroups::Error),
    #[error(transparent)]
    Security(#[from] crate::security::Error),
    #[error("volume mount at {target}")]
    Mount {
        target: String,
        source: crate::safepath::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// What the process of a container is: argv, environment, working directory.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Process {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
}

impl Process {
    /// Resolves the container's process by the Kubernetes rules:
    /// `command` replaces the image's Entrypoint (and drops its Cmd), `args`
    /// replaces Cmd; env is the image's, then the container's (the
    /// container's wins); `$(VAR)` references in the container's env,
    /// command and args are expanded from the container's env alone, as the
    /// kubelet does before any runtime sees the image.
    pub fn resolve(container: &Container, image: &ImageConfig) -> Result<Process, Error> {
        let mutant = Mutant::from_env();
        let command = container.command.clone().unwrap_or_default();
        let args = container.args.clone().unwrap_or_default();
        let entrypoint = if mutant == Some(Mutant::ImageEntrypointIgnored) {
            Vec::new()
        } else {
            image.entrypoint.clone()
        };
        let (entry, cmd) = match (command.is_empty(), args.is_empty()) {
            (true, true) => (entrypoint, image.cmd.clone()),
            (true, false) => (entrypoint, args),
            (false, true) => (command, Vec::new()),
            (false, false) => (command, args),
        };

        let vars = container.env.as_deref().unwrap_or_default();
        let (own, argv) = if mutant == Some(Mutant::NoVarExpansion) {
            let own = vars
                .iter()
                .map(|v| (v.name.clone(), v.value.clone().unwrap_or_default()))
                .collect();
            (own, entry.into_iter().chain(cmd).collect())
        } else {
            let own = expansion::container_env(vars, |_| None);
            let argv = expansion::expand_all(&[entry, cmd].concat(), &own);
            (own, argv)
        };
        if argv.is_empty() {
            return Err(Error::NoCommand {
                container: container.name.clone(),
            });
        }

        let mut env: Vec<(String, String)> = Vec::new();
        let image_env = image.env.iter().map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
            (k.to_string(), v.to_string())
        });
        for (k, v) in image_env.chain(own) {
            match env.iter_mut().find(|(name, _)| *name == k) {
                Some(slot) => slot.1 = v,
                None => env.push((k, v)),
            }
        }
        if !env.iter().any(|(k, _)| k == "PATH") {
            env.push(("PATH".into(), DEFAULT_PATH.into()));
        }
        let cwd = container
            .working_dir
            .clone()
            .filter(|d| !d.is_empty())
            .or_else(|| image.working_dir.clone().filter(|d| !d.is_empty()))
            .unwrap_or_else(|| "/".into());
        Ok(Process {
            args: argv,
            env: env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
            cwd,
        })
    }

    pub fn env_value(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find_map(|kv| kv.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
    }
}

/// Everything the container init needs, written by the shim as JSON.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InitConfig {
    pub name: String,
    pub process: Process,
    /// Unpacked image layers, bottom first.
    pub layers: Vec<PathBuf>,
    /// Per-container overlay upper/work dirs and mount point.
    pub upper: PathBuf,
    pub work: PathBuf,
    pub rootfs: PathBuf,
    pub pause_pid: i32,
    pub share_pid: bool,
    /// `hostPID: true`: the container stays in the node's PID namespace.
    #[serde(default)]
    pub host_pid: bool,
    /// The pod's /dev/shm tmpfs on the host.
    pub shm: PathBuf,
    /// Pod-level `hostname`, `hosts`, `resolv.conf`.
    pub etc: PathBuf,
    pub readonly_rootfs: bool,
    /// Capabilities, user and no_new_privs of the container's process.
    #[serde(default)]
    pub security: crate::security::Profile,
    /// The pod's volumes this container mounts, parents before children.
    #[serde(default)]
    pub mounts: Vec<VolumeMount>,
    /// The node's file behind the container's terminationMessagePath.
    #[serde(default)]
    pub termination_log: Option<FileMount>,
    /// Deliberately broken variants (the `mutants` feature, for proving the
    /// conformance suite can fail): a private /dev/shm, UTS, IPC or netns.
    #[serde(default)]
    pub private_shm: bool,
    #[serde(default)]
    pub private_uts: bool,
    #[serde(default)]
    pub private_ipc: bool,
    #[serde(default)]
    pub private_net: bool,
}

/// A single file of the node bind-mounted into the container (the
/// termination message file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMount {
    pub source: PathBuf,
    /// The absolute path inside the container; made if missing.
    pub target: String,
}

/// One `volumeMounts` entry, resolved by the shim to a host directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMount {
    /// The volume's directory on the host.
    pub source: PathBuf,
    /// The `subPath` inside the volume, opened by the init beneath `source`.
    #[serde(default)]
    pub sub_path: Option<String>,
    /// The absolute path inside the container.
    pub target: String,
    pub readonly: bool,
    /// For a hostPath volume, what its path is (checked by the shim);
    /// `source` is then a node path whose symlinks are followed.
    #[serde(default)]
    pub host_path: Option<hostpath::Kind>,
    #[serde(default)]
    pub propagation: Propagation,
    #[serde(default)]
    pub recursive_readonly: RecursiveReadOnly,
}

/// Entry point of `podlab __init CONFIG`: runs in a fresh process spawned by
/// the shim, which put it in the container's cgroup before writing "go".
/// Writes `pid <host pid>` of the container process to the report pipe, and
/// an `error ...` line if anything fails before exec; EOF means exec'd.
pub fn init_main(config_path: &Path) -> i32 {
    // The shim passes these two descriptors; we take ownership once.
    let (mut report, go) = match (sys::inherited(REPORT_FD), sys::inherited(GO_FD)) {
        (Ok(report), Ok(go)) => (Some(fs::File::from(report)), go),
        _ => return 127,
    };
    let sys = &sys::Kernel;
    let result = (|| -> Result<(), Error> {
        // Block until the shim has moved us into the container's cgroup.
        let mut byte = [0u8; 1];
        let _ = nix::unistd::read(&go, &mut byte);
        drop(go);
        let text = fs::read(config_path).map_err(io_err("read", config_path))?;
        let cfg: InitConfig = serde_json::from_slice(&text).map_err(|e| Error::Io {
            op: "parse",
            path: config_path.to_path_buf(),
            source: e.into(),
        })?;
        let mut plan = Plan::container(cfg.pause_pid, cfg.share_pid, cfg.host_pid);
        plan.break_sharing(cfg.private_uts, cfg.private_ipc, cfg.private_net);
        plan.apply(sys)?;
        // The new PID namespace applies to children: fork once, the child is
        // the container (PID 1 of its namespace); this process reports its
        // pid and exits, and the shim (a subreaper) inherits the child.
        match sys.fork()? {
            nix::unistd::ForkResult::Parent { child } => {
                if let Some(r) = report.as_mut() {
                    let _ = writeln!(r, "pid {child}");
                }
                std::process::exit(0);
            }
            nix::unistd::ForkResult::Child => {
                sys::set_cloexec(REPORT_FD).map_err(io_err("cloexec", Path::new("report")))?;
                let host_caps = crate::security::HostCaps::read();
                if Mutant::from_env() == Some(Mutant::LeakHostFd) {
                    crate::mutants::leak_host_dir();
                }
                setup_rootfs(sys, &cfg)?;
                exec_process(sys, &cfg.process, &cfg.security, &host_caps, &mut report)
            }
        }
    })();
    match result {
        Ok(()) => 0,
        Err(e) => {
            if let Some(r) = report.as_mut() {
                let _ = writeln!(r, "error {}", crate::error::chain(&e));
            }
            127
        }
    }
}

/// Builds the container's root: overlayfs over the image layers, /proc, a
/// minimal /dev with the pod's shared /dev/shm, read-only /sys, the pod's
/// /etc files; then pivot_root into it.
fn setup_rootfs(sys: &dyn Sys, cfg: &InitConfig) -> Result<(), Error> {
    // Each volume's mount tree is copied while this namespace's mounts are
    // still peers of the node's: a Bidirectional mount stays one.
    let trees = cfg
        .mounts
        .iter()
        .map(|m| clone_volume(sys, m))
        .collect::<Result<Vec<_>, _>>()?;
    // Nothing mounted from here on may propagate back to the host.
    sys.mount(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None,
    )?;
    for d in [&cfg.upper, &cfg.work, &cfg.rootfs] {
        fs::create_dir_all(d).map_err(io_err("mkdir", d))?;
    }
    // overlayfs lists lower dirs top first; images list layers bottom first.
    let lower: Vec<String> = cfg
        .layers
        .iter()
        .rev()
        .map(|p| p.display().to_string())
        .collect();
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        cfg.upper.display(),
        cfg.work.display()
    );
    sys.mount(
        Some("overlay"),
        &cfg.rootfs,
        Some("overlay"),
        MsFlags::empty(),
        Some(&data),
    )?;
    let root = &cfg.rootfs;
    let mkdir = |rel: &str| -> Result<PathBuf, Error> {
        let p = root.join(rel);
        fs::create_dir_all(&p).map_err(io_err("mkdir", &p))?;
        Ok(p)
    };

    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    sys.mount(
        Some("proc"),
        &mkdir("proc")?,
        Some("proc"),
        nosuid_nodev_noexec,
        None,
    )?;

    let dev = mkdir("dev")?;
    sys.mount(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        sys.mknod_char(&dev.join(name), major, minor, 0o666)?;
    }
    let pts = mkdir("dev/pts")?;
    sys.mount(
        Some("devpts"),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )?;
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let p = dev.join(link);
        std::os::unix::fs::symlink(target, &p).map_err(io_err("symlink", &p))?;
    }
    let shm = mkdir("dev/shm")?;
    if cfg.private_shm {
        sys.mount(
            Some("shm"),
            &shm,
            Some("tmpfs"),
            nosuid_nodev_noexec,
            Some("mode=1777,size=65536k"),
        )?;
    } else {
        // One tmpfs for the whole pod: POSIX shared memory is shared between
        // the pod's containers and nowhere else.
        sys.bind(&cfg.shm, &shm, false)?;
    }

    let sysfs = mkdir("sys")?;
    sys.mount(
        Some("sysfs"),
        &sysfs,
        Some("sysfs"),
        nosuid_nodev_noexec | MsFlags::MS_RDONLY,
        None,
    )?;
    mount_cgroups(sys, &sysfs)?;

    for name in ["hostname", "hosts", "resolv.conf"] {
        let target = mkdir("etc")?.join(name);
        if fs::symlink_metadata(&target).is_err() {
            fs::write(&target, b"").map_err(io_err("create", &target))?;
        }
        sys.bind(&cfg.etc.join(name), &target, false)?;
    }

    for (m, tree) in cfg.mounts.iter().zip(trees) {
        mount_volume(sys, root, m, tree)?;
    }
    if let Some(f) = &cfg.termination_log {
        mount_file(sys, root, f)?;
    }

    if cfg.readonly_rootfs {
        sys.mount(
            None,
            root,
            None,
            MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY,
            None,
        )?;
    }
    if !cfg.security.privileged {
        crate::security::mask_paths(sys, root)?;
    }
    sys.pivot_root(root)?;
    Ok(())
}

/// A detached copy of the mount tree of a volume (or its subPath), with
/// the volume mount's read-only and propagation settings applied. The
/// volume is opened first and the subPath beneath it, so a symlink a pod
/// planted in a shared volume, or swapped in while this runs, cannot send
/// the mount anywhere else; a hostPath is the node path as written, its
/// symlinks followed.
fn clone_volume(sys: &dyn Sys, m: &VolumeMount) -> Result<OwnedFd, Error> {
    use crate::safepath;
    use crate::sys::Scope;
    use std::os::fd::AsFd;
    let err = |source| Error::Mount {
        target: m.target.clone(),
        source,
    };
    let volume = match m.host_path {
        Some(hostpath::Kind::File) => sys::open_path(&m.source)?,
        _ => sys::open_dir_path(&m.source)?,
    };
    let source = match m.sub_path.as_deref() {
        // Created by the shim already; made here too if the pod removed it.
        Some(sub) => {
            safepath::open_dir(volume.as_fd(), sub, Scope::Beneath, true, 0o777).map_err(err)?
        }
        None => volume,
    };
    let mount_err = |op: &'static str| {
        let target = m.target.clone();
        move |e: std::io::Error| Error::Io {
            op,
            path: PathBuf::from(target),
            source: e,
        }
    };
    let tree = sys
        .clone_tree(source.as_fd())
        .map_err(mount_err("open_tree for"))?;
    let mutant = Mutant::from_env();
    let propagation = match m.propagation {
        _ if mutant == Some(Mutant::PropagationIgnored) => MsFlags::MS_PRIVATE,
        Propagation::Private => MsFlags::MS_PRIVATE,
        Propagation::Slave => MsFlags::MS_SLAVE,
        Propagation::Shared => MsFlags::MS_SHARED,
    };
    sys.set_mount_attr(
        tree.as_fd(),
        sys::MountAttr {
            readonly: false,
            propagation: Some(propagation),
            recursive: true,
        },
    )
    .map_err(mount_err("set propagation of"))?;
    if m.readonly {
        let recursive = m.recursive_readonly != RecursiveReadOnly::Disabled
            && mutant != Some(Mutant::RecursiveReadOnlyIgnored);
        let attr = |recursive| sys::MountAttr {
            readonly: true,
            propagation: None,
            recursive,
        };
        match sys.set_mount_attr(tree.as_fd(), attr(recursive)) {
            Ok(()) => {}
            // IfPossible: the volume's own mount read-only is the least.
            Err(_) if m.recursive_readonly == RecursiveReadOnly::IfPossible => sys
                .set_mount_attr(tree.as_fd(), attr(false))
                .map_err(mount_err("make read-only"))?,
            Err(e) => return Err(mount_err("make read-only")(e)),
        }
    }
    Ok(tree)
}

/// Attaches a volume's tree (from [`clone_volume`]) at its target inside
/// the container's root, the target opened inside the root (a symlink of
/// the image cannot put it outside) and made as what the volume is.
fn mount_volume(sys: &dyn Sys, root: &Path, m: &VolumeMount, tree: OwnedFd) -> Result<(), Error> {
    use crate::safepath;
    use crate::sys::Scope;
    use std::os::fd::AsFd;
    let err = |source| Error::Mount {
        target: m.target.clone(),
        source,
    };
    let attach = |target: OwnedFd| {
        sys.move_mount(tree.as_fd(), target.as_fd())
            .map_err(|source| Error::Io {
                op: "move_mount to",
                path: PathBuf::from(&m.target),
                source,
            })
    };
    if Mutant::from_env() == Some(Mutant::MountTargetHostPath) {
        // The target as a host path: a symlink in it is followed on the host.
        let target = root.join(m.target.trim_start_matches('/'));
        fs::create_dir_all(&target).map_err(io_err("mkdir", &target))?;
        return attach(sys::open_dir_path(&target)?);
    }
    let rootfd = sys::open_dir_path(root)?;
    let target = match m.host_path {
        Some(hostpath::Kind::File) => open_file_target(root, &m.target)?,
        _ => safepath::open_dir(rootfd.as_fd(), &m.target, Scope::InRoot, true, 0o755)
            .map_err(err)?,
    };
    attach(target)
}

/// The file at `target` inside the container's root, made if missing: its
/// directory is opened inside the root and the file made there without
/// following a link, so a symlink of the image cannot lead it out.
fn open_file_target(root: &Path, target: &str) -> Result<OwnedFd, Error> {
    use crate::safepath;
    use crate::sys::Scope;
    use nix::fcntl::OFlag;
    use nix::sys::stat::Mode;
    use std::os::fd::AsFd;
    let (parent, name) = target
        .trim_end_matches('/')
        .rsplit_once('/')
        .unwrap_or(("", target));
    let rootfd = sys::open_dir_path(root)?;
    let dir = safepath::open_dir(rootfd.as_fd(), parent, Scope::InRoot, true, 0o755).map_err(
        |source| Error::Mount {
            target: target.to_string(),
            source,
        },
    )?;
    nix::fcntl::openat(
        dir.as_fd(),
        name,
        OFlag::O_CREAT | OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o666),
    )
    .map_err(|source| {
        sys::Error::Path {
            op: "create",
            path: PathBuf::from(target),
            source,
        }
        .into()
    })
}

/// Bind-mounts a file of the node at its target inside the container's
/// root. The target's directory is opened inside the root and the file is
/// made there without following a link, so a path through a symlink of the
/// image cannot put the mount outside the container.
fn mount_file(sys: &dyn Sys, root: &Path, f: &FileMount) -> Result<(), Error> {
    let target = open_file_target(root, &f.target)?;
    sys.bind(&f.source, &sys::fd_path(&target), false)?;
    Ok(())
}

/// Mounts the container's view of its own cgroups read-only at
/// /sys/fs/cgroup, like runc does for Kubernetes containers. The container
/// has its own cgroup namespace, so the mounts are rooted at its own leaf.
fn mount_cgroups(sys: &dyn Sys, sysfs: &Path) -> Result<(), Error> {
    let base = sysfs.join("fs/cgroup");
    if !base.is_dir() {
        return Ok(());
    }
    sys.mount(
        Some("tmpfs"),
        &base,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=755,size=64k"),
    )?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY;
    for m in host_cgroup_mounts() {
        let target = base.join(&m.dir);
        fs::create_dir_all(&target).map_err(io_err("mkdir", &target))?;
        let fstype = if m.v2 { "cgroup2" } else { "cgroup" };
        let data = if m.v2 { None } else { Some(m.options.as_str()) };
        // A hierarchy the kernel will not mount here is left out rather than
        // failing the container: the cgroup view is informational.
        let _ = sys.mount(Some(fstype), &target, Some(fstype), flags, data);
    }
    sys.mount(
        None,
        &base,
        None,
        MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY,
        None,
    )?;
    Ok(())
}

struct CgroupMount {
    dir: String,
    options: String,
    v2: bool,
}

/// The host's cgroup hierarchies that matter for limits, with the exact
/// controller options they are mounted with (co-mounted controllers such as
/// `cpu,cpuacct` must be mounted together).
fn host_cgroup_mounts() -> Vec<CgroupMount> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in info.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut r = right.split(' ');
        let (fstype, _src, opts) = (r.next(), r.next(), r.next().unwrap_or(""));
        let Some(mountpoint) = left.split(' ').nth(4) else {
            continue;
        };
        let Some(dir) = mountpoint.strip_prefix("/sys/fs/cgroup") else {
            continue;
        };
        let dir = dir.trim_start_matches('/').to_string();
        match fstype {
            Some("cgroup2") if dir.is_empty() => out.push(CgroupMount {
                dir,
                options: String::new(),
                v2: true,
            }),
            Some("cgroup") => {
                let ctrls: Vec<&str> = opts
                    .split(',')
                    .filter(|o| matches!(*o, "memory" | "cpu" | "cpuacct" | "pids"))
                    .collect();
                if !ctrls.is_empty() {
                    out.push(CgroupMount {
                        dir,
                        options: ctrls.join(","),
                        v2: false,
                    });
                }
            }
            _ => {}
        }
    }
    out
}

/// Resolves `name` against PATH in the current root, like execvp, but with
/// the container's PATH instead of ours.
pub fn find_executable(name: &str, path_var: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    if name.contains('/') {
        return Some(name.to_string());
    }
    path_var
        .split(':')
        .filter(|d| !d.is_empty())
        .find_map(|dir| {
            let candidate = format!("{dir}/{name}");
            let meta = fs::metadata(&candidate).ok()?;
            (meta.is_file() && meta.permissions().mode() & 0o111 != 0).then_some(candidate)
        })
}

/// Prepared argv/envp for exec, built before any fork so the child only
/// makes raw syscalls.
pub struct ExecArgs {
    pub path: CString,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub cwd: CString,
}

impl ExecArgs {
    pub fn new(process: &Process) -> Result<ExecArgs, Error> {
        let first = process.args.first().cloned().unwrap_or_default();
        let path_var = process.env_value("PATH").unwrap_or(DEFAULT_PATH);
        let path =
            find_executable(&first, path_var).ok_or_else(|| Error::NotFound(first.clone()))?;
        let c = |s: &str| {
            sys::cstring(s).map_err(|source| Error::Io {
                op: "argument",
                path: PathBuf::from(s),
                source,
            })
        };
        Ok(ExecArgs {
            path: c(&path)?,
            argv: process
                .args
                .iter()
                .map(|a| c(a))
                .collect::<Result<_, _>>()?,
            envp: process.env.iter().map(|a| c(a)).collect::<Result<_, _>>()?,
            cwd: c(&process.cwd)?,
        })
    }

    /// chdir + execve; returns only on failure.
    pub fn exec(&self) -> Error {
        if let Err(source) = nix::unistd::chdir(self.cwd.as_c_str()) {
            return Error::Exec {
                path: format!("chdir {}", self.cwd.to_string_lossy()),
                source,
            };
        }
        match nix::unistd::execve(&self.path, &self.argv, &self.envp) {
            Err(source) => Error::Exec {
                path: self.path.to_string_lossy().into_owned(),
                source,
            },
            Ok(never) => match never {},
        }
    }
}

/// Restricts the calling process as the container's, the last step before
/// exec: for the container's own process and for every command exec'd
/// into it, once it has joined the container's namespaces and cgroup.
/// Nothing of the host's descriptors or signal state survives the exec;
/// then the security profile: the bounding set, groups and ids,
/// capabilities, no_new_privs, and the seccomp filter last (or before the
/// ids when it needs CAP_SYS_ADMIN), as runc's exec does. Only raw
/// syscalls: this runs in forked children.
fn restrict(
    sys: &dyn Sys,
    security: &crate::security::Profile,
    host_caps: &crate::security::HostCaps,
) -> Result<(), Error> {
    if Mutant::from_env() != Some(Mutant::LeakHostFd) {
        crate::security::close_fds_on_exec(sys)?;
    }
    crate::security::default_signals_on_exec(sys)?;
    security.apply(sys, host_caps)?;
    Ok(())
}

fn exec_process(
    sys: &dyn Sys,
    process: &Process,
    security: &crate::security::Profile,
    host_caps: &crate::security::HostCaps,
    report: &mut Option<fs::File>,
) -> Result<(), Error> {
    let args = ExecArgs::new(process)?;
    restrict(sys, security, host_caps)?;
    let mutant = Mutant::from_env();
    if mutant == Some(Mutant::SignalsBlocked) {
        crate::mutants::block_shim_signals();
    }
    if mutant == Some(Mutant::RuntimeInContainer) {
        return stay_as_pid1(sys, &args, report);
    }
    Err(args.exec())
}

/// [`Mutant::RuntimeInContainer`]: this process (the podlab binary) stays
/// the container's PID 1 and runs the command as its child, exiting as it does.
fn stay_as_pid1(
    sys: &dyn Sys,
    args: &ExecArgs,
    report: &mut Option<fs::File>,
) -> Result<(), Error> {
    match sys.fork()? {
        nix::unistd::ForkResult::Child => {
            let _ = args.exec();
            sys::exit_after_fork(b"", 127)
        }
        nix::unistd::ForkResult::Parent { child } => {
            // The shim takes EOF on the report pipe for "exec'd".
            drop(report.take());
            loop {
                match nix::sys::wait::waitpid(child, None) {
                    Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => std::process::exit(code),
                    Ok(nix::sys::wait::WaitStatus::Signaled(_, sig, _)) => {
                        std::process::exit(128 + sig as i32)
                    }
                    Ok(_) | Err(nix::Error::EINTR) => continue,
                    Err(_) => std::process::exit(1),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn container(command: &[&str], args: &[&str]) -> Container {
        let v = |s: &[&str]| (!s.is_empty()).then(|| s.iter().map(|x| x.to_string()).collect());
        Container {
            name: "app".into(),
            command: v(command),
            args: v(args),
            ..Default::default()
        }
    }

    fn image() -> ImageConfig {
        ImageConfig {
            env: vec!["PATH=/bin".into(), "GREETING=hi".into()],
            entrypoint: vec!["/entry".into()],
            cmd: vec!["--default".into()],
            working_dir: Some("/srv".into()),
            user: None,
        }
    }

    #[rstest]
    #[case(&[], &[], &["/entry", "--default"])]
    #[case(&[], &["x"], &["/entry", "x"])]
    #[case(&["sh"], &[], &["sh"])]
    #[case(&["sh"], &["-c", "true"], &["sh", "-c", "true"])]
    fn command_and_args_follow_kubernetes_rules(
        #[case] command: &[&str],
        #[case] args: &[&str],
        #[case] want: &[&str],
    ) {
        let p = Process::resolve(&container(command, args), &image()).unwrap();
        assert_eq!(p.args, want);
        assert_eq!(p.cwd, "/srv");
    }

    #[test]
    fn manifest_env_overrides_image_env_and_expands_references() {
        let mut c = container(&["echo", "$(GREETING) $$(GREETING) $(NOPE)"], &[]);
        c.env = Some(vec![
            k8s_openapi::api::core::v1::EnvVar {
                name: "GREETING".into(),
                value: Some("hello".into()),
                ..Default::default()
            },
            k8s_openapi::api::core::v1::EnvVar {
                name: "WHO".into(),
                value: Some("$(GREETING) world".into()),
                ..Default::default()
            },
        ]);
        let p = Process::resolve(&c, &image()).unwrap();
        assert_eq!(p.args[1], "hello $(GREETING) $(NOPE)");
        assert_eq!(p.env, ["PATH=/bin", "GREETING=hello", "WHO=hello world"]);
    }

    #[test]
    fn image_env_is_not_a_source_of_references() {
        let mut c = container(&["echo", "$(GREETING)"], &[]);
        c.env = Some(vec![k8s_openapi::api::core::v1::EnvVar {
            name: "COPY".into(),
            value: Some("$(GREETING)".into()),
            ..Default::default()
        }]);
        let p = Process::resolve(&c, &image()).unwrap();
        assert_eq!(p.args, ["echo", "$(GREETING)"]);
        assert_eq!(p.env_value("COPY"), Some("$(GREETING)"));
        assert_eq!(p.env_value("GREETING"), Some("hi"));
    }

    #[test]
    fn default_path_when_the_image_sets_none() {
        let p = Process::resolve(&container(&["sh"], &[]), &ImageConfig::default()).unwrap();
        assert_eq!(p.env_value("PATH"), Some(DEFAULT_PATH));
        assert_eq!(p.cwd, "/");
    }

    #[test]
    fn no_command_anywhere_is_an_error() {
        let err = Process::resolve(&container(&[], &[]), &ImageConfig::default()).unwrap_err();
        assert!(
            err.to_string().contains("container app: no command"),
            "{err}"
        );
    }

    #[test]
    fn executables_are_found_on_the_given_path() {
        assert_eq!(
            find_executable("sh", "/nonexistent:/bin").as_deref(),
            Some("/bin/sh")
        );
        assert_eq!(find_executable("/x/y", "").as_deref(), Some("/x/y"));
        assert_eq!(
            find_executable("no-such-tool-podlab", "/bin:/usr/bin"),
            None
        );
    }

    fn init_config(base: &Path) -> InitConfig {
        InitConfig {
            name: "app".into(),
            process: Process::default(),
            layers: vec![base.join("l0"), base.join("l1")],
            upper: base.join("upper"),
            work: base.join("work"),
            rootfs: base.join("rootfs"),
            pause_pid: 1,
            share_pid: false,
            host_pid: false,
            shm: base.join("shm"),
            etc: base.join("etc"),
            readonly_rootfs: false,
            security: crate::security::Profile::default(),
            mounts: Vec::new(),
            termination_log: None,
            private_shm: false,
            private_uts: false,
            private_ipc: false,
            private_net: false,
        }
    }

    /// The mount targets (relative to the rootfs) in the order made.
    fn targets(calls: &[sys::Call], root: &Path) -> Vec<String> {
        calls
            .iter()
            .filter_map(|c| c.target())
            .map(|t| match t.strip_prefix(root) {
                Ok(rel) => format!("/{}", rel.display()),
                Err(_) => format!("host:{}", t.display()),
            })
            .collect()
    }

    /// The first step of every root: nothing propagates back to the node.
    fn root_made_slave() -> sys::Call {
        sys::Call::Mount {
            source: None,
            target: "/".into(),
            fstype: None,
            flags: MsFlags::MS_REC | MsFlags::MS_SLAVE,
            data: None,
        }
    }

    #[test]
    fn the_root_is_built_in_order_and_pivoted_into_last() {
        let base = tempfile::tempdir().unwrap();
        let cfg = init_config(base.path());
        let rec = sys::Recording::new();
        setup_rootfs(&rec, &cfg).unwrap();
        let calls = rec.calls();
        // Nothing propagates back to the node, before anything is mounted.
        assert_eq!(calls[0], root_made_slave());
        // overlayfs lists the top layer first.
        let sys::Call::Mount {
            data: Some(data), ..
        } = &calls[1]
        else {
            panic!("{:?}", calls[1]);
        };
        assert!(data.starts_with(&format!(
            "lowerdir={}:{},upperdir=",
            base.path().join("l1").display(),
            base.path().join("l0").display()
        )));
        assert_eq!(
            targets(&calls, &cfg.rootfs),
            [
                "host:/",
                "/",
                "/proc",
                "/dev",
                "/dev/null",
                "/dev/zero",
                "/dev/full",
                "/dev/random",
                "/dev/urandom",
                "/dev/tty",
                "/dev/pts",
                "/dev/shm",
                "/sys",
                "/etc/hostname",
                "/etc/hosts",
                "/etc/resolv.conf",
                "/",
            ]
        );
        assert_eq!(
            calls.last(),
            Some(&sys::Call::PivotRoot(cfg.rootfs.clone()))
        );
        // The pod's /dev/shm is the pod's one tmpfs, bound in.
        assert!(calls.contains(&sys::Call::Bind {
            source: cfg.shm.clone(),
            target: cfg.rootfs.join("dev/shm"),
            readonly: false,
        }));
    }

    #[test]
    fn a_read_only_root_is_remounted_after_every_mount_and_before_the_masks() {
        let base = tempfile::tempdir().unwrap();
        let mut cfg = init_config(base.path());
        cfg.readonly_rootfs = true;
        // What the image's (here: a plain directory's) /proc would show.
        std::fs::create_dir_all(cfg.rootfs.join("proc/sys")).unwrap();
        let rec = sys::Recording::new();
        setup_rootfs(&rec, &cfg).unwrap();
        let calls = rec.calls();
        let remount = calls
            .iter()
            .position(|c| {
                matches!(c, sys::Call::Mount { target, flags, .. }
                    if *target == cfg.rootfs && flags.contains(MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY))
            })
            .unwrap();
        let resolv = cfg.rootfs.join("etc/resolv.conf");
        let last_bind = calls
            .iter()
            .position(|c| c.target() == Some(resolv.as_path()));
        assert!(last_bind.unwrap() < remount);
        let mask = cfg.rootfs.join("proc/sys");
        let masked = calls
            .iter()
            .position(|c| c.target() == Some(mask.as_path()));
        assert_eq!(masked, Some(remount + 1));
        assert_eq!(calls.len(), remount + 3, "{calls:?}");
    }

    #[test]
    fn a_privileged_container_keeps_the_kernel_paths_and_a_private_shm_is_its_own() {
        let base = tempfile::tempdir().unwrap();
        let mut cfg = init_config(base.path());
        cfg.security.privileged = true;
        cfg.private_shm = true;
        std::fs::create_dir_all(cfg.rootfs.join("proc/sys")).unwrap();
        let rec = sys::Recording::new();
        setup_rootfs(&rec, &cfg).unwrap();
        let calls = rec.calls();
        let mask = cfg.rootfs.join("proc/sys");
        assert!(!calls.iter().any(|c| c.target() == Some(mask.as_path())));
        let shm = cfg.rootfs.join("dev/shm");
        assert!(calls.iter().any(
            |c| matches!(c, sys::Call::Mount { fstype: Some(t), target, .. }
            if t == "tmpfs" && *target == shm)
        ));
    }

    /// The kinds of `calls`, runs of one kind (the bounding drops, the
    /// filters of a program) counted once.
    fn kinds(calls: &[sys::Call]) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for c in calls {
            let kind = match c {
                sys::Call::CloseRangeCloexec(3) => "close_range",
                sys::Call::DefaultSignals => "signals",
                sys::Call::DropBoundingCap(_) => "bounding",
                sys::Call::ClearAmbientCaps => "ambient",
                sys::Call::SetGroups(_) => "setgroups",
                sys::Call::SetGid(_) => "setgid",
                sys::Call::SetUid(_) => "setuid",
                sys::Call::SetCaps(_) => "capset",
                sys::Call::NoNewPrivs => "no_new_privs",
                sys::Call::SeccompFilter(_) => "seccomp",
                other => panic!("not a restriction: {other:?}"),
            };
            if out.last() != Some(&kind) {
                out.push(kind);
            }
        }
        out
    }

    /// One order for the container's own process and every exec into it
    /// (both go through `restrict`): host descriptors and signal state
    /// first, then ids, capabilities, no_new_privs and seccomp last; a
    /// filter that needs CAP_SYS_ADMIN goes in before the ids drop it.
    #[test]
    fn a_process_is_restricted_in_one_order_with_seccomp_last() {
        use crate::security::{seccomp_program, HostCaps, Profile};
        let host = HostCaps {
            last_cap: 40,
            permitted: (1 << 41) - 1,
        };
        let mut profile = Profile::from_context(None).unwrap();
        let runtime_default = k8s_openapi::api::core::v1::SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        };
        profile.seccomp =
            seccomp_program(&runtime_default, profile.caps, Path::new("/nonexistent")).unwrap();
        profile.uid = Some(1000);
        profile.gid = Some(1000);
        profile.no_new_privs = true;
        let restricted = |profile: &Profile| {
            let rec = sys::Recording::new();
            restrict(&rec, profile, &host).unwrap();
            rec.calls()
        };
        let calls = restricted(&profile);
        assert_eq!(
            kinds(&calls),
            [
                "close_range",
                "signals",
                "bounding",
                "ambient",
                "setgroups",
                "setgid",
                "setuid",
                "no_new_privs",
                "seccomp",
            ]
        );
        assert!(matches!(calls.last(), Some(sys::Call::SeccompFilter(_))));

        profile.uid = Some(0);
        profile.gid = Some(0);
        profile.no_new_privs = false;
        assert_eq!(
            kinds(&restricted(&profile)),
            [
                "close_range",
                "signals",
                "bounding",
                "ambient",
                "seccomp",
                "setgroups",
                "setgid",
                "setuid",
                "capset",
            ]
        );
    }

    #[test]
    fn a_failed_restriction_stops_before_the_profile() {
        let rec = sys::Recording::failing(|c| matches!(c, sys::Call::CloseRangeCloexec(_)));
        let host = crate::security::HostCaps {
            last_cap: 40,
            permitted: 0,
        };
        let profile = crate::security::Profile::default();
        assert!(restrict(&rec, &profile, &host).is_err());
        assert_eq!(rec.calls(), [sys::Call::CloseRangeCloexec(3)]);
    }

    #[test]
    fn a_failed_mount_stops_the_setup_before_pivot_root() {
        let base = tempfile::tempdir().unwrap();
        let cfg = init_config(base.path());
        let rec = sys::Recording::failing(
            |c| matches!(c, sys::Call::Mount { fstype: Some(t), .. } if t == "proc"),
        );
        assert!(setup_rootfs(&rec, &cfg).is_err());
        assert_eq!(rec.calls().len(), 3);
    }

    fn volume(base: &Path, readonly: bool, recursive: RecursiveReadOnly) -> VolumeMount {
        let source = base.join("volume");
        std::fs::create_dir_all(&source).unwrap();
        VolumeMount {
            source,
            sub_path: None,
            target: "/data".into(),
            readonly,
            host_path: None,
            propagation: Propagation::Slave,
            recursive_readonly: recursive,
        }
    }

    fn setattr(
        path: &Path,
        readonly: bool,
        propagation: Option<MsFlags>,
        recursive: bool,
    ) -> sys::Call {
        sys::Call::MountSetattr {
            path: path.to_path_buf(),
            attr: sys::MountAttr {
                readonly,
                propagation,
                recursive,
            },
        }
    }

    /// A volume's tree is cloned while the namespace still shares the
    /// node's mounts (a Bidirectional volume stays a peer), given its
    /// propagation and then made read-only down to every mount below it,
    /// and attached inside the root after the /etc files, before the root
    /// is pivoted into.
    #[test]
    fn a_volume_is_cloned_first_made_read_only_recursively_and_attached_last() {
        let base = tempfile::tempdir().unwrap();
        let mut cfg = init_config(base.path());
        let m = volume(base.path(), true, RecursiveReadOnly::Enabled);
        cfg.mounts = vec![m.clone()];
        let rec = sys::Recording::new();
        setup_rootfs(&rec, &cfg).unwrap();
        let calls = rec.calls();
        assert_eq!(
            calls[..4],
            [
                sys::Call::OpenTree(m.source.clone()),
                setattr(&m.source, false, Some(MsFlags::MS_SLAVE), true),
                setattr(&m.source, true, None, true),
                root_made_slave(),
            ]
        );
        let n = calls.len();
        assert_eq!(
            calls[n - 2],
            sys::Call::MoveMount {
                source: m.source.clone(),
                target: cfg.rootfs.join("data"),
            }
        );
        assert_eq!(
            calls[n - 3].target(),
            Some(cfg.rootfs.join("etc/resolv.conf").as_path())
        );
        assert_eq!(calls[n - 1], sys::Call::PivotRoot(cfg.rootfs.clone()));
    }

    /// recursiveReadOnly: IfPossible falls back to the volume's own mount
    /// when the kernel refuses the recursive attribute, Enabled fails the
    /// container, and Disabled never asks for it.
    #[test]
    fn a_refused_recursive_read_only_falls_back_only_if_possible() {
        let base = tempfile::tempdir().unwrap();
        let refused = |c: &sys::Call| matches!(c, sys::Call::MountSetattr { attr, .. } if attr.readonly && attr.recursive);
        let cloned = |recursive| {
            let m = volume(base.path(), true, recursive);
            let rec = sys::Recording::failing(refused);
            let result = clone_volume(&rec, &m).map(drop);
            (result, rec.calls()[2..].to_vec())
        };
        let source = base.path().join("volume");
        let (result, calls) = cloned(RecursiveReadOnly::IfPossible);
        assert!(result.is_ok());
        assert_eq!(
            calls,
            [
                setattr(&source, true, None, true),
                setattr(&source, true, None, false),
            ]
        );
        let (result, calls) = cloned(RecursiveReadOnly::Enabled);
        let err = result.unwrap_err();
        assert!(err.to_string().contains("make read-only"), "{err}");
        assert_eq!(calls, [setattr(&source, true, None, true)]);
        let (result, calls) = cloned(RecursiveReadOnly::Disabled);
        assert!(result.is_ok());
        assert_eq!(calls, [setattr(&source, true, None, false)]);
    }
}
