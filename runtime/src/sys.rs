//! The one seam for privileged and raw syscalls: mount, pivot_root, mknod,
//! namespaces, capabilities and ids, seccomp, descriptors, fork, pidfd,
//! poll, flock, interface flags, process identity. The crate denies
//! `unsafe` everywhere else (but the after-fork code that must stay raw).
//!
//! [`Sys`] is what the namespace plan, the container's mount sequence and
//! the capability drop call, so their order can be checked without
//! privileges: [`Kernel`] does the calls, [`Recording`] writes them down
//! (as cgroups' `Kernel` and `Fixture` backends do for cgroupfs).
//! These functions are called only from single-threaded, re-exec'd podlab
//! processes (shim, pause, container init) or the exec'ing CLI.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::unistd::ForkResult;

mod record;

pub use record::{Call, Recording};

/// The privileged calls of process setup (see the module doc).
pub trait Sys {
    fn mount(
        &self,
        source: Option<&str>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<()>;
    /// A recursive bind mount, remounted read-only when asked.
    fn bind(&self, source: &Path, target: &Path, readonly: bool) -> Result<()>;
    /// Detaches the top mount at `target`; nothing mounted there is fine.
    fn unmount(&self, target: &Path) -> Result<()>;
    /// True when `path` is a mount point in the caller's mount namespace.
    fn is_mount_point(&self, path: &Path) -> bool;
    fn mknod_char(&self, path: &Path, major: u64, minor: u64, mode: u32) -> Result<()>;
    fn pivot_root(&self, rootfs: &Path) -> Result<()>;
    /// Joins the namespace `ns` (an open `/proc/<pid>/ns/<kind>`) of `kind`.
    fn setns(&self, ns: &File, kind: CloneFlags) -> nix::Result<()>;
    fn unshare(&self, flags: CloneFlags) -> nix::Result<()>;
    fn sethostname(&self, name: &str) -> nix::Result<()>;
    /// Drops one capability from the bounding set (PR_CAPBSET_DROP).
    fn drop_bounding_cap(&self, cap: u32) -> io::Result<()>;
    fn clear_ambient_caps(&self) -> io::Result<()>;
    /// setgroups(2) of exactly `groups` (no allocation: runs after fork).
    fn set_groups(&self, groups: &[u32]) -> io::Result<()>;
    fn set_gid(&self, gid: u32) -> io::Result<()>;
    fn set_uid(&self, uid: u32) -> io::Result<()>;
    /// capset(2): effective and permitted become `caps`, inheritable empty
    /// (runc's fix for CVE-2022-29162).
    fn set_caps(&self, caps: u64) -> io::Result<()>;
    fn set_no_new_privs(&self) -> io::Result<()>;
    /// Installs one seccomp BPF filter on the calling thread.
    fn seccomp_filter(&self, code: &[libc::sock_filter]) -> io::Result<()>;
    /// Marks every descriptor from `first` up close-on-exec.
    fn close_range_cloexec(&self, first: u32) -> io::Result<()>;
    /// The signal state a container's process starts with: none blocked,
    /// none ignored.
    fn default_signals(&self) -> io::Result<()>;
    /// fork(2) of a process that has one thread (see [`fork`]).
    fn fork(&self) -> Result<ForkResult>;
    /// open_tree(2) with OPEN_TREE_CLONE|AT_RECURSIVE: a detached copy of
    /// the mount tree at `source` (which keeps the peer group of shared
    /// mounts), to be attached with [`Sys::move_mount`].
    fn clone_tree(&self, source: BorrowedFd<'_>) -> io::Result<OwnedFd>;
    /// move_mount(2) of the detached tree `tree` onto the file or
    /// directory `target` holds.
    fn move_mount(&self, tree: BorrowedFd<'_>, target: BorrowedFd<'_>) -> io::Result<()>;
    /// mount_setattr(2) on the mount (tree) `mount` holds: read-only,
    /// recursively when asked (what `recursiveReadOnly` needs and a remount
    /// cannot do), and its propagation.
    fn set_mount_attr(&self, mount: BorrowedFd<'_>, attr: MountAttr) -> io::Result<()>;
}

/// Mounts a tmpfs (`source` names it in mountinfo) at `target` unless
/// something is mounted there already, so setup is safe to repeat.
pub fn mount_tmpfs_once(
    sys: &dyn Sys,
    source: &str,
    target: &Path,
    flags: MsFlags,
    data: &str,
) -> Result<()> {
    if sys.is_mount_point(target) {
        return Ok(());
    }
    sys.mount(Some(source), target, Some("tmpfs"), flags, Some(data))
}

/// Unmounts every mount stacked at `target`; stops at the first failure.
pub fn unmount_all(sys: &dyn Sys, target: &Path) -> Result<()> {
    while sys.is_mount_point(target) {
        sys.unmount(target)?;
    }
    Ok(())
}

/// The real kernel.
#[derive(Clone, Copy, Debug, Default)]
pub struct Kernel;

impl Sys for Kernel {
    fn mount(
        &self,
        source: Option<&str>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<()> {
        mount(source, target, fstype, flags, data)
    }

    fn bind(&self, source: &Path, target: &Path, readonly: bool) -> Result<()> {
        bind(source, target, readonly)
    }

    fn unmount(&self, target: &Path) -> Result<()> {
        unmount(target)
    }

    fn is_mount_point(&self, path: &Path) -> bool {
        is_mount_point(path)
    }

    fn mknod_char(&self, path: &Path, major: u64, minor: u64, mode: u32) -> Result<()> {
        mknod_char(path, major, minor, mode)
    }

    fn pivot_root(&self, rootfs: &Path) -> Result<()> {
        pivot_root(rootfs)
    }

    fn setns(&self, ns: &File, kind: CloneFlags) -> nix::Result<()> {
        nix::sched::setns(ns, kind)
    }

    fn unshare(&self, flags: CloneFlags) -> nix::Result<()> {
        nix::sched::unshare(flags)
    }

    fn sethostname(&self, name: &str) -> nix::Result<()> {
        nix::unistd::sethostname(name)
    }

    fn drop_bounding_cap(&self, cap: u32) -> io::Result<()> {
        // SAFETY: prctl with integer arguments only.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        os_result(r)
    }

    fn clear_ambient_caps(&self) -> io::Result<()> {
        // SAFETY: prctl with integer arguments only.
        let r = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                0,
                0,
                0,
            )
        };
        os_result(r)
    }

    fn set_groups(&self, groups: &[u32]) -> io::Result<()> {
        // SAFETY: a slice of gid_t (u32) we borrow for the call, with its length.
        os_result(unsafe { libc::setgroups(groups.len(), groups.as_ptr()) })
    }

    fn set_gid(&self, gid: u32) -> io::Result<()> {
        // SAFETY: plain integer argument. Raw, not nix: after fork.
        os_result(unsafe { libc::setgid(gid) })
    }

    fn set_uid(&self, uid: u32) -> io::Result<()> {
        // SAFETY: plain integer argument.
        os_result(unsafe { libc::setuid(uid) })
    }

    fn set_caps(&self, caps: u64) -> io::Result<()> {
        #[repr(C)]
        struct CapHeader {
            version: u32,
            pid: i32,
        }
        #[repr(C)]
        struct CapData {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        let header = CapHeader {
            version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
            pid: 0,
        };
        let (lo, hi) = (caps as u32, (caps >> 32) as u32);
        let data = [
            CapData {
                effective: lo,
                permitted: lo,
                inheritable: 0,
            },
            CapData {
                effective: hi,
                permitted: hi,
                inheritable: 0,
            },
        ];
        // SAFETY: header and the two data words are repr(C) values that
        // live across the call, laid out as the kernel's v3 structs.
        let r = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
        os_result(r as i32)
    }

    fn set_no_new_privs(&self) -> io::Result<()> {
        // SAFETY: prctl with integer arguments only.
        os_result(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })
    }

    fn seccomp_filter(&self, code: &[libc::sock_filter]) -> io::Result<()> {
        seccomp_set_filter(code)
    }

    fn close_range_cloexec(&self, first: u32) -> io::Result<()> {
        // SAFETY: close_range with CLOEXEC only flags descriptors; no memory.
        let r = unsafe {
            libc::syscall(
                libc::SYS_close_range,
                first,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            )
        };
        os_result(r as i32)
    }

    fn default_signals(&self) -> io::Result<()> {
        default_signals()
    }

    fn fork(&self) -> Result<ForkResult> {
        fork()
    }

    fn clone_tree(&self, source: BorrowedFd<'_>) -> io::Result<OwnedFd> {
        clone_tree(&source)
    }

    fn move_mount(&self, tree: BorrowedFd<'_>, target: BorrowedFd<'_>) -> io::Result<()> {
        move_mount(&tree, &target)
    }

    fn set_mount_attr(&self, mount: BorrowedFd<'_>, attr: MountAttr) -> io::Result<()> {
        set_mount_attr(&mount, attr)
    }
}

/// 0 is success, anything else the thread's errno.
fn os_result(r: libc::c_int) -> io::Result<()> {
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Forks the calling process, which must have exactly one thread: then
/// the child is a full copy and may do anything. A caller that has more
/// gets [`Error::Threaded`] instead of a child that could deadlock on a
/// lock another thread held. The count comes from /proc/self; after
/// joining a container's mount namespace (exec) that /proc does not show
/// this process, and the caller's own guarantee stands alone.
pub fn fork() -> Result<ForkResult> {
    match thread_count() {
        Some(n) if n > 1 => return Err(Error::Threaded(n)),
        _ => {}
    }
    // SAFETY: the process has a single thread: checked just above when
    // /proc shows it, and promised by every caller (fresh re-execs of
    // podlab and the single-threaded CLI); a thread cannot start between
    // the check and the fork, that would take this very thread.
    unsafe { nix::unistd::fork() }.map_err(Error::Fork)
}

/// The number of threads of this process (field 20 of /proc/self/stat).
fn thread_count() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(20 - 3)?.parse().ok()
}

/// The process-wide claims of [`inherited`], one bit per descriptor.
static CLAIMED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Takes ownership of a descriptor a parent passed at a fixed number (the
/// shim's pipes at 3 and 4): once per number and process, and only if it
/// is open. A second claim, or a closed descriptor, is an error.
pub fn inherited(fd: RawFd) -> io::Result<OwnedFd> {
    let bit = u32::try_from(fd)
        .ok()
        .filter(|&n| n > 2 && n < 64)
        .map(|n| 1u64 << n)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))?;
    let before = CLAIMED.fetch_or(bit, std::sync::atomic::Ordering::SeqCst);
    if before & bit != 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: fcntl(F_GETFD) only asks whether the number is open.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor is open, was handed to this process by its
    // parent for this purpose, and the claim above makes this the only owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Writes `msg` to stderr and ends the process at once (no destructors,
/// no atexit handlers): how a forked child reports a failure before exec.
pub fn exit_after_fork(msg: &[u8], code: i32) -> ! {
    // SAFETY: raw write of a borrowed buffer and _exit, as after any fork.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::_exit(code)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("mount {what} on {target}")]
    Mount {
        what: String,
        target: PathBuf,
        source: nix::Error,
    },
    #[error("unmount {target}")]
    Unmount { target: PathBuf, source: nix::Error },
    #[error("{op} {path}")]
    Path {
        op: &'static str,
        path: PathBuf,
        source: nix::Error,
    },
    #[error("{op}")]
    Io { op: &'static str, source: io::Error },
    #[error("fork")]
    Fork(#[source] nix::Error),
    #[error("fork refused: the process has {0} threads, not one")]
    Threaded(u64),
}

pub type Result<T> = std::result::Result<T, Error>;

pub fn mount(
    source: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<()> {
    nix::mount::mount(source, target, fstype, flags, data).map_err(|e| Error::Mount {
        what: fstype.or(source).unwrap_or("none").to_string(),
        target: target.to_path_buf(),
        source: e,
    })
}

pub fn bind(source: &Path, target: &Path, readonly: bool) -> Result<()> {
    nix::mount::mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| Error::Mount {
        what: source.display().to_string(),
        target: target.to_path_buf(),
        source: e,
    })?;
    if readonly {
        remount_readonly(target)?;
    }
    Ok(())
}

/// A bind mount ignores MS_RDONLY on creation; it needs a remount.
pub fn remount_readonly(target: &Path) -> Result<()> {
    mount(
        None,
        target,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        None,
    )
}

/// Detaches a mount; a path that is not mounted is not an error (idempotent teardown).
pub fn unmount(target: &Path) -> Result<()> {
    match nix::mount::umount2(target, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => Ok(()),
        Err(source) => Err(Error::Unmount {
            target: target.to_path_buf(),
            source,
        }),
    }
}

/// True when `path` is a mount point in the caller's mount namespace.
pub fn is_mount_point(path: &Path) -> bool {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let wanted = path.to_string_lossy();
    mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mp| unescape_mountinfo(mp) == wanted)
}

fn unescape_mountinfo(s: &str) -> String {
    s.replace("\\040", " ").replace("\\011", "\t")
}

/// Makes `rootfs` the root of the calling process's mount namespace and
/// drops the old root, so nothing of the host stays reachable.
pub fn pivot_root(rootfs: &Path) -> Result<()> {
    let path_err = |op, source| Error::Path {
        op,
        path: rootfs.to_path_buf(),
        source,
    };
    nix::unistd::chdir(rootfs).map_err(|e| path_err("chdir", e))?;
    // pivot_root(".", ".") stacks the old root on top of the new one; the
    // lazy unmount then removes it without needing a directory for it.
    nix::unistd::pivot_root(".", ".").map_err(|e| path_err("pivot_root", e))?;
    nix::mount::umount2(".", MntFlags::MNT_DETACH).map_err(|e| path_err("umount old root", e))?;
    nix::unistd::chdir("/").map_err(|e| path_err("chdir /", e))
}

/// Creates a character device node (the container's minimal /dev).
pub fn mknod_char(path: &Path, major: u64, minor: u64, mode: u32) -> Result<()> {
    use nix::sys::stat::{makedev, mknod, Mode, SFlag};
    match mknod(
        path,
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(mode),
        makedev(major, minor),
    ) {
        Ok(()) | Err(nix::Error::EEXIST) => {}
        Err(source) => {
            return Err(Error::Path {
                op: "mknod",
                path: path.to_path_buf(),
                source,
            })
        }
    }
    // mknod's mode is filtered by the umask; set it exactly.
    nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        path,
        Mode::from_bits_truncate(mode),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .map_err(|source| Error::Path {
        op: "chmod",
        path: path.to_path_buf(),
        source,
    })
}

/// Brings the loopback interface of the caller's network namespace up.
/// nix has no helper for interface flags, so this is the classic
/// SIOCGIFFLAGS/SIOCSIFFLAGS pair on a datagram socket.
pub fn loopback_up() -> Result<()> {
    let io_err = |op| move |source| Error::Io { op, source };
    // SAFETY: socket(2) with constant arguments; the fd is owned right away.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io_err("socket")(io::Error::last_os_error()));
    }
    // SAFETY: `raw` is a fresh, valid descriptor that nothing else owns.
    let sock: OwnedFd = unsafe { std::os::fd::FromRawFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: the ioctls read and write the ifreq we own, for the lifetime of the call.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(io_err("SIOCGIFFLAGS lo")(io::Error::last_os_error()));
        }
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(io_err("SIOCSIFFLAGS lo")(io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// A process identity that survives pid reuse: the pid plus its start time
/// (field 22 of `/proc/<pid>/stat`, in clock ticks since boot).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessId {
    pub pid: i32,
    pub start_time: u64,
}

impl ProcessId {
    pub fn of(pid: i32) -> Option<ProcessId> {
        process_start_time(pid).map(|start_time| ProcessId { pid, start_time })
    }

    /// True while the very same process (not a reused pid) exists and is not a zombie.
    pub fn is_alive(&self) -> bool {
        match std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) {
            Ok(stat) => {
                let (state, start) = parse_stat(&stat);
                start == Some(self.start_time) && state != Some('Z') && state != Some('X')
            }
            Err(_) => false,
        }
    }
}

pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat).1
}

/// (state, start time) from a `/proc/<pid>/stat` line. The command name may
/// contain spaces and parentheses, so fields are counted after the last ')'.
fn parse_stat(stat: &str) -> (Option<char>, Option<u64>) {
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return (None, None);
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first().and_then(|s| s.chars().next());
    // After the comm, the state is field 3; starttime is field 22.
    let start = fields.get(22 - 3).and_then(|s| s.parse().ok());
    (state, start)
}

/// Opens a pidfd, to wait for a process that is not our child without
/// polling; the crate's one pidfd_open (nix has none).
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Sets O_NONBLOCK on a descriptor (the shim's end of a log pipe).
pub fn set_nonblocking(fd: &impl AsFd) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = fcntl(fd.as_fd(), FcntlArg::F_GETFL)?;
    fcntl(
        fd.as_fd(),
        FcntlArg::F_SETFL(OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK),
    )?;
    Ok(())
}

fn poll_timeout(timeout: Option<Duration>) -> nix::poll::PollTimeout {
    timeout.map_or(nix::poll::PollTimeout::NONE, |t| {
        nix::poll::PollTimeout::try_from(t).unwrap_or(nix::poll::PollTimeout::MAX)
    })
}

/// poll(2) for input on `fds`: which of them are readable or hung up, all
/// false on a timeout or an interrupting signal.
pub fn poll_readable(
    fds: &[std::os::fd::BorrowedFd<'_>],
    timeout: Option<Duration>,
) -> io::Result<Vec<bool>> {
    use nix::poll::{PollFd, PollFlags};
    let mut pfds: Vec<PollFd> = fds
        .iter()
        .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
        .collect();
    match nix::poll::poll(&mut pfds, poll_timeout(timeout)) {
        Ok(_) => Ok(pfds
            .iter()
            .map(|p| p.revents().is_some_and(|r| !r.is_empty()))
            .collect()),
        Err(nix::Error::EINTR) => Ok(vec![false; fds.len()]),
        Err(e) => Err(e.into()),
    }
}

/// Waits until `fd` or one of `more` is readable (or hung up), or the
/// timeout passes.
pub fn wait_readable_any(
    fd: &impl AsFd,
    more: &[RawFd],
    timeout: Option<Duration>,
) -> io::Result<()> {
    // SAFETY: the caller's descriptors stay open for this call (they are
    // the shim's log pipes, closed only by the same thread).
    let more = more
        .iter()
        .map(|&fd| unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) });
    let fds: Vec<_> = std::iter::once(fd.as_fd()).chain(more).collect();
    poll_readable(&fds, timeout).map(drop)
}

/// Waits until `fd` is readable or `timeout` passes; returns true if readable.
pub fn wait_readable(fd: &impl AsFd, timeout: Option<Duration>) -> io::Result<bool> {
    let deadline = timeout.map(|t| std::time::Instant::now() + t);
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
        let mut pfd = [nix::poll::PollFd::new(
            fd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        match nix::poll::poll(&mut pfd, poll_timeout(left)) {
            Ok(n) => return Ok(n > 0),
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// flock(2) on a file the caller opened: held until the returned lock is
/// dropped (or the file closes). `Err` with EWOULDBLOCK when `wait` is
/// false and someone else holds a conflicting lock.
pub fn flock(file: File, exclusive: bool, wait: bool) -> io::Result<nix::fcntl::Flock<File>> {
    use nix::fcntl::FlockArg;
    let arg = match (exclusive, wait) {
        (true, true) => FlockArg::LockExclusive,
        (true, false) => FlockArg::LockExclusiveNonblock,
        (false, true) => FlockArg::LockShared,
        (false, false) => FlockArg::LockSharedNonblock,
    };
    nix::fcntl::Flock::lock(file, arg).map_err(|(_, e)| e.into())
}

/// Gives the exec'd program the signal state a container starts with: no
/// signal blocked (the shim blocks some for its signalfd) and none ignored
/// (Rust ignores SIGPIPE in podlab itself, whoever started podlab may have
/// ignored others, and SIG_IGN survives exec). Raw syscalls: glibc refuses
/// its reserved signals 32 and 33.
fn default_signals() -> io::Result<()> {
    /// The kernel's `struct sigaction` (x86_64 and aarch64 layout).
    #[repr(C)]
    struct KernelSigaction {
        handler: libc::sighandler_t,
        flags: libc::c_ulong,
        restorer: usize,
        mask: u64,
    }
    let default = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    // SAFETY: raw rt_sigprocmask/rt_sigaction on values that live across the
    // calls; fine between fork and exec. SIGKILL and SIGSTOP refuse (EINVAL)
    // and are always default anyway.
    unsafe {
        let empty = 0u64;
        if libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &empty as *const u64,
            std::ptr::null_mut::<u64>(),
            8usize,
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
        for sig in 1..=64 {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &default as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            );
        }
    }
    Ok(())
}

/// Sets the extended attribute `name` of `path` itself (a symlink is not
/// followed) to `value`.
pub fn lsetxattr(path: &Path, name: &std::ffi::CStr, value: &[u8]) -> io::Result<()> {
    let c_path = path_cstring(path)?;
    // SAFETY: both strings are NUL-terminated and live across the call; the
    // value pointer and length describe a borrowed buffer.
    let rc = unsafe {
        libc::lsetxattr(
            c_path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads the extended attribute `name` of `path` itself into `buf`;
/// returns its length.
pub fn lgetxattr(path: &Path, name: &std::ffi::CStr, buf: &mut [u8]) -> io::Result<usize> {
    let c_path = path_cstring(path)?;
    // SAFETY: valid NUL-terminated strings and a buffer of the given length.
    let n = unsafe {
        libc::lgetxattr(
            c_path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

fn path_cstring(path: &Path) -> io::Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

/// Clears FD_CLOEXEC so the descriptor survives exec (inherited pipes).
pub fn clear_cloexec(fd: i32) -> io::Result<()> {
    // SAFETY: fcntl on an fd number; no memory involved.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub fn set_cloexec(fd: i32) -> io::Result<()> {
    // SAFETY: as above.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub fn cstring(s: &str) -> std::result::Result<CString, io::Error> {
    CString::new(s)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("NUL byte in {s:?}")))
}

/// Installs one seccomp BPF filter on the calling thread. The caller holds
/// CAP_SYS_ADMIN or has set no_new_privs; raw syscall, fine after fork.
fn seccomp_set_filter(code: &[libc::sock_filter]) -> io::Result<()> {
    let prog = libc::sock_fprog {
        len: u16::try_from(code.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?,
        filter: code.as_ptr().cast_mut(),
    };
    // SAFETY: the kernel copies the program in; `prog` and `code` outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0u32,
            &prog as *const libc::sock_fprog,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_handles_odd_command_names() {
        let line =
            "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 98765 1000 10";
        assert_eq!(parse_stat(line), (Some('S'), Some(98765)));
        assert_eq!(parse_stat("garbage"), (None, None));
    }

    #[test]
    fn own_process_identity_is_alive_and_a_wrong_start_time_is_not() {
        let me = ProcessId::of(std::process::id() as i32).unwrap();
        assert!(me.is_alive());
        let other = ProcessId {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!other.is_alive());
    }

    #[test]
    fn fork_refuses_a_threaded_process() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || rx.recv());
        assert!(matches!(fork(), Err(Error::Threaded(n)) if n >= 2));
        drop(tx);
        let _ = other.join();
    }

    #[test]
    fn an_inherited_descriptor_is_claimed_once_and_only_when_open() {
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        let fd = std::os::fd::IntoRawFd::into_raw_fd(file);
        if fd >= 64 {
            return;
        }
        let owned = inherited(fd).unwrap();
        assert!(inherited(fd).is_err());
        drop(owned);
        assert!(inherited(1).is_err());
    }

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
    }
}

/// Where [`openat2`] keeps a path: beneath the directory (a subPath in its
/// volume: absolute links and `..` out of it fail with EXDEV) or inside it
/// as the root (a mount target: `/` and `..` stop at the directory).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Beneath,
    InRoot,
}

/// openat2(2) of a directory as an O_PATH, close-on-exec descriptor, the
/// kernel keeping every step of the resolution in `scope` and following no
/// magic link (/proc/PID/fd/N, /proc/PID/root). EAGAIN (a rename raced the
/// resolution) is retried.
pub fn openat2_dir(
    dir: std::os::fd::BorrowedFd<'_>,
    path: &str,
    scope: Scope,
) -> std::result::Result<OwnedFd, nix::Error> {
    use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
    let resolve = ResolveFlag::RESOLVE_NO_MAGICLINKS
        | match scope {
            Scope::Beneath => ResolveFlag::RESOLVE_BENEATH,
            Scope::InRoot => ResolveFlag::RESOLVE_IN_ROOT,
        };
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(resolve);
    let path = if path.is_empty() { "." } else { path };
    let mut tries = 0;
    loop {
        match nix::fcntl::openat2(dir, path, how) {
            Err(nix::Error::EAGAIN) if tries < 16 => tries += 1,
            other => return other,
        }
    }
}

/// An O_PATH, close-on-exec descriptor of the directory at `path`, a
/// path the runtime owns (a volume's directory, a container's rootfs).
pub fn open_dir_path(path: &Path) -> Result<OwnedFd> {
    use nix::fcntl::OFlag;
    nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|source| Error::Path {
        op: "open",
        path: path.to_path_buf(),
        source,
    })
}

/// mkdirat(2) of one component in `dir`; an existing entry is not an error.
pub fn mkdirat(
    dir: std::os::fd::BorrowedFd<'_>,
    name: &str,
    mode: u32,
) -> std::result::Result<(), nix::Error> {
    match nix::sys::stat::mkdirat(dir, name, nix::sys::stat::Mode::from_bits_truncate(mode)) {
        Ok(()) | Err(nix::Error::EEXIST) => Ok(()),
        Err(e) => Err(e),
    }
}

/// readlinkat(2): the target of the symlink `name` in `dir`.
pub fn readlinkat(
    dir: std::os::fd::BorrowedFd<'_>,
    name: &str,
) -> std::result::Result<String, nix::Error> {
    nix::fcntl::readlinkat(dir, name).map(|t| t.to_string_lossy().into_owned())
}

/// The path through which a descriptor of this process is mounted: the
/// kernel follows the magic link to the very file the descriptor holds, so
/// nothing renamed or swapped in since it was opened can redirect a mount.
pub fn fd_path(fd: &impl AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// One eBPF instruction, laid out as the kernel's `struct bpf_insn`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BpfInsn {
    pub code: u8,
    /// dst register in the low nibble, src in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
/// Other programs on the same cgroup and its ancestors all run too.
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The head of `union bpf_attr` for BPF_PROG_LOAD; the kernel takes a
/// shorter attr than its own, zero-extended.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: attr is a live, initialised repr(C) struct of the size passed;
    // the kernel reads it (and for PROG_LOAD writes the log buffer it names).
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Loads `insns` as a BPF_PROG_TYPE_CGROUP_DEVICE program and attaches it
/// to the cgroup v2 directory `cgroup` (alongside any others there). The
/// attachment holds the program: it goes when the cgroup is removed. On a
/// verifier refusal the error carries the verifier's log.
pub fn attach_device_program(cgroup: &Path, insns: &[BpfInsn]) -> io::Result<()> {
    use std::os::fd::FromRawFd;
    let dir = std::fs::File::open(cgroup)?;
    let license = c"Apache-2.0";
    let mut log = vec![0u8; 64 * 1024];
    let mut name = [0u8; 16];
    name[..13].copy_from_slice(b"podlab_device");
    let mut load = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: u32::try_from(insns.len())
            .map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        prog_name: name,
        ..ProgLoadAttr::default()
    };
    let fd = match bpf(BPF_PROG_LOAD, &mut load) {
        Ok(fd) => fd as i32,
        Err(e) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]).trim().to_owned();
            return Err(if text.is_empty() {
                e
            } else {
                io::Error::new(e.kind(), format!("{e}; verifier: {text}"))
            });
        }
    };
    // SAFETY: the kernel just gave us this descriptor.
    let prog = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut attach = ProgAttachAttr {
        target_fd: dir.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    bpf(BPF_PROG_ATTACH, &mut attach).map(drop)
}

/// What [`Sys::set_mount_attr`] changes on a mount (tree).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MountAttr {
    pub readonly: bool,
    /// MS_PRIVATE, MS_SLAVE or MS_SHARED; none leaves propagation as it is.
    pub propagation: Option<MsFlags>,
    /// Applied to every mount of the tree, not only its top.
    pub recursive: bool,
}

/// [`Sys::clone_tree`] of the kernel.
fn clone_tree(source: &impl AsRawFd) -> io::Result<OwnedFd> {
    use std::os::fd::FromRawFd;
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let flags = OPEN_TREE_CLONE
        | libc::O_CLOEXEC as libc::c_uint
        | libc::AT_RECURSIVE as libc::c_uint
        | libc::AT_EMPTY_PATH as libc::c_uint;
    // SAFETY: a plain syscall on a descriptor we hold and an empty C string.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, source.as_raw_fd(), c"".as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// [`Sys::move_mount`] of the kernel.
fn move_mount(tree: &impl AsRawFd, target: &impl AsRawFd) -> io::Result<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
    // SAFETY: a plain syscall on descriptors we hold and empty C strings.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// [`Sys::set_mount_attr`] of the kernel.
fn set_mount_attr(mount: &impl AsRawFd, attr: MountAttr) -> io::Result<()> {
    #[repr(C)]
    struct RawAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    let raw = RawAttr {
        attr_set: if attr.readonly { MOUNT_ATTR_RDONLY } else { 0 },
        attr_clr: 0,
        propagation: attr.propagation.map_or(0, |p| p.bits()),
        userns_fd: 0,
    };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if attr.recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: the struct is laid out as the kernel's mount_attr and lives
    // across the call; its size is passed with it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mount.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &raw as *const RawAttr,
            std::mem::size_of::<RawAttr>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// An O_PATH, close-on-exec descriptor of whatever is at `path`, symlinks
/// followed: a hostPath names a place on the node as its author meant it.
pub fn open_path(path: &Path) -> Result<OwnedFd> {
    use nix::fcntl::OFlag;
    nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|source| Error::Path {
        op: "open",
        path: path.to_path_buf(),
        source,
    })
}
