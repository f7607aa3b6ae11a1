//! [`Recording`]: a [`Sys`] that writes calls down instead of making them,
//! so the order of mounts, namespace joins and the capability drop is
//! checked by unit tests without privileges.

use std::fs::File;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::unistd::ForkResult;

use super::{MountAttr, Result, Sys};

/// One call made through [`Sys`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    Mount {
        source: Option<String>,
        target: PathBuf,
        fstype: Option<String>,
        flags: MsFlags,
        data: Option<String>,
    },
    Bind {
        source: PathBuf,
        target: PathBuf,
        readonly: bool,
    },
    Unmount(PathBuf),
    Mknod {
        path: PathBuf,
        major: u64,
        minor: u64,
        mode: u32,
    },
    PivotRoot(PathBuf),
    Setns(CloneFlags),
    Unshare(CloneFlags),
    Sethostname(String),
    DropBoundingCap(u32),
    ClearAmbientCaps,
    SetGroups(Vec<u32>),
    SetGid(u32),
    SetUid(u32),
    SetCaps(u64),
    NoNewPrivs,
    /// A seccomp filter of this many instructions.
    SeccompFilter(usize),
    CloseRangeCloexec(u32),
    DefaultSignals,
    Fork,
    /// open_tree of the tree at this path.
    OpenTree(PathBuf),
    /// mount_setattr on the (cloned) tree of this path.
    MountSetattr {
        path: PathBuf,
        attr: MountAttr,
    },
    /// move_mount of the tree cloned from `source` onto `target`.
    MoveMount {
        source: PathBuf,
        target: PathBuf,
    },
}

impl Call {
    /// The mount target of a mount, bind, unmount, move_mount, mknod or
    /// pivot_root.
    pub fn target(&self) -> Option<&Path> {
        match self {
            Call::Mount { target, .. }
            | Call::Bind { target, .. }
            | Call::Unmount(target)
            | Call::MoveMount { target, .. } => Some(target),
            Call::Mknod { path, .. } | Call::PivotRoot(path) => Some(path),
            _ => None,
        }
    }
}

/// Records every call and succeeds, except the calls `fails` picks, which
/// fail with EPERM (to check that nothing runs after a failed step). Its
/// fork answers as the child. It keeps a mount table (a stack per target)
/// so `is_mount_point` answers as the kernel would after the recorded
/// mounts and unmounts.
#[derive(Default)]
pub struct Recording {
    calls: Mutex<Vec<Call>>,
    mounted: Mutex<Vec<PathBuf>>,
    fails: Option<fn(&Call) -> bool>,
}

impl std::fmt::Debug for Recording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recording")
            .field("calls", &self.calls())
            .finish()
    }
}

impl Recording {
    pub fn new() -> Recording {
        Recording::default()
    }

    /// A recording where the calls `fails` picks fail with EPERM.
    pub fn failing(fails: fn(&Call) -> bool) -> Recording {
        Recording {
            fails: Some(fails),
            ..Recording::default()
        }
    }

    /// The calls so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn record(&self, call: Call) -> std::result::Result<(), nix::Error> {
        let fail = self.fails.is_some_and(|f| f(&call));
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(call);
        }
        if fail {
            return Err(nix::Error::EPERM);
        }
        Ok(())
    }

    /// Records a mount onto `target`; a successful one enters the table.
    fn mounted(&self, op: &'static str, target: &Path, call: Call) -> Result<()> {
        self.path(op, target, call)?;
        if let Ok(mut mounted) = self.mounted.lock() {
            mounted.push(target.to_path_buf());
        }
        Ok(())
    }

    fn io(&self, call: Call) -> io::Result<()> {
        self.record(call).map_err(io::Error::from)
    }

    fn path(&self, op: &'static str, path: &Path, call: Call) -> Result<()> {
        self.record(call).map_err(|source| super::Error::Path {
            op,
            path: path.to_path_buf(),
            source,
        })
    }
}

impl Sys for Recording {
    fn mount(
        &self,
        source: Option<&str>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<()> {
        let call = Call::Mount {
            source: source.map(str::to_string),
            target: target.to_path_buf(),
            fstype: fstype.map(str::to_string),
            flags,
            data: data.map(str::to_string),
        };
        if flags.contains(MsFlags::MS_REMOUNT) {
            // A remount changes a mount; it adds none.
            return self.path("mount", target, call);
        }
        self.mounted("mount", target, call)
    }

    fn bind(&self, source: &Path, target: &Path, readonly: bool) -> Result<()> {
        let call = Call::Bind {
            source: source.to_path_buf(),
            target: target.to_path_buf(),
            readonly,
        };
        self.mounted("bind", target, call)
    }

    /// Like MNT_DETACH: the top mount at `target` goes, none is no error.
    fn unmount(&self, target: &Path) -> Result<()> {
        self.path("unmount", target, Call::Unmount(target.to_path_buf()))?;
        if let Ok(mut mounted) = self.mounted.lock() {
            if let Some(i) = mounted.iter().rposition(|m| m == target) {
                mounted.remove(i);
            }
        }
        Ok(())
    }

    fn is_mount_point(&self, path: &Path) -> bool {
        self.mounted
            .lock()
            .is_ok_and(|mounted| mounted.iter().any(|m| m == path))
    }

    fn mknod_char(&self, path: &Path, major: u64, minor: u64, mode: u32) -> Result<()> {
        let call = Call::Mknod {
            path: path.to_path_buf(),
            major,
            minor,
            mode,
        };
        self.path("mknod", path, call)
    }

    fn pivot_root(&self, rootfs: &Path) -> Result<()> {
        self.path("pivot_root", rootfs, Call::PivotRoot(rootfs.to_path_buf()))
    }

    fn setns(&self, _ns: &File, kind: CloneFlags) -> nix::Result<()> {
        self.record(Call::Setns(kind))
    }

    fn unshare(&self, flags: CloneFlags) -> nix::Result<()> {
        self.record(Call::Unshare(flags))
    }

    fn sethostname(&self, name: &str) -> nix::Result<()> {
        self.record(Call::Sethostname(name.to_string()))
    }

    fn drop_bounding_cap(&self, cap: u32) -> io::Result<()> {
        self.io(Call::DropBoundingCap(cap))
    }

    fn clear_ambient_caps(&self) -> io::Result<()> {
        self.io(Call::ClearAmbientCaps)
    }

    fn set_groups(&self, groups: &[u32]) -> io::Result<()> {
        self.io(Call::SetGroups(groups.to_vec()))
    }

    fn set_gid(&self, gid: u32) -> io::Result<()> {
        self.io(Call::SetGid(gid))
    }

    fn set_uid(&self, uid: u32) -> io::Result<()> {
        self.io(Call::SetUid(uid))
    }

    fn set_caps(&self, caps: u64) -> io::Result<()> {
        self.io(Call::SetCaps(caps))
    }

    fn set_no_new_privs(&self) -> io::Result<()> {
        self.io(Call::NoNewPrivs)
    }

    fn seccomp_filter(&self, code: &[libc::sock_filter]) -> io::Result<()> {
        self.io(Call::SeccompFilter(code.len()))
    }

    fn close_range_cloexec(&self, first: u32) -> io::Result<()> {
        self.io(Call::CloseRangeCloexec(first))
    }

    fn default_signals(&self) -> io::Result<()> {
        self.io(Call::DefaultSignals)
    }

    fn fork(&self) -> Result<ForkResult> {
        self.record(Call::Fork).map_err(super::Error::Fork)?;
        Ok(ForkResult::Child)
    }

    /// The "tree" is a duplicate of `source`, so later calls on it name
    /// the path it came from.
    fn clone_tree(&self, source: BorrowedFd<'_>) -> io::Result<OwnedFd> {
        self.io(Call::OpenTree(fd_path(source)))?;
        source.try_clone_to_owned()
    }

    fn move_mount(&self, tree: BorrowedFd<'_>, target: BorrowedFd<'_>) -> io::Result<()> {
        let target = fd_path(target);
        self.io(Call::MoveMount {
            source: fd_path(tree),
            target: target.clone(),
        })?;
        if let Ok(mut mounted) = self.mounted.lock() {
            mounted.push(target);
        }
        Ok(())
    }

    fn set_mount_attr(&self, mount: BorrowedFd<'_>, attr: MountAttr) -> io::Result<()> {
        self.io(Call::MountSetattr {
            path: fd_path(mount),
            attr,
        })
    }
}

/// What a descriptor of this process holds, as a path (empty if unknown).
fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    std::fs::read_link(super::fd_path(&fd)).unwrap_or_default()
}
