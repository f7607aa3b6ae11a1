//! Starting processes from the shim, and the shim itself: the re-exec of
//! the podlab binary (shim, pause, container init, probe helpers), the
//! descriptors they get at fixed numbers, and `shim.json`, the record of
//! which process is a pod's shim. Kept together because every child of the
//! shim needs the same care: a clean signal mask, exactly the descriptors
//! it is meant to inherit.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::config::Config;
use crate::sandbox;
use crate::scheduler;
use crate::store::{self, PodDir};
use crate::sys::ProcessId;
use crate::testhook::{self, Stage};

use super::{io, Error, NOTIFY_FD};

/// A command that runs this very podlab binary again, for shim, pause, init
/// and helper work. It execs `/proc/self/exe` rather than the binary's path:
/// once podlab is rebuilt or upgraded, the path names another binary (or
/// none), and a long-lived shim must keep starting its own version. argv[0]
/// stays the path, so `ps` still shows `podlab …`.
pub fn podlab_command() -> Command {
    let mut cmd = Command::new("/proc/self/exe");
    if let Ok(path) = std::env::current_exe() {
        cmd.arg0(path);
    }
    cmd
}

/// Clears the signal mask in the child before exec: the shim blocks
/// SIGCHLD, SIGTERM and SIGINT for its signalfd, and a blocked mask is
/// inherited across exec: a container would never see its SIGTERM.
#[allow(unsafe_code)] // after-fork code: a pre_exec closure stays raw
pub fn unblock_signals_on_exec(cmd: &mut Command) {
    // SAFETY: sigemptyset and sigprocmask are async-signal-safe syscalls on
    // a stack value, fine between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            if libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// How many descriptors [`spawn_with_fds`] places.
const MAX_FIXED_FDS: usize = 8;

/// Spawns `cmd` with the given descriptors placed at fixed numbers in the child.
#[allow(unsafe_code)] // after-fork code: a pre_exec closure stays raw
pub fn spawn_with_fds(
    cmd: &mut Command,
    fds: &[(i32, i32)],
) -> std::io::Result<std::process::Child> {
    // Fixed-size: the child of a fork in a threaded process (`podlab
    // serve`) must not allocate, another thread may hold the heap's lock.
    let mut table = [(-1, -1); MAX_FIXED_FDS];
    if fds.len() > MAX_FIXED_FDS {
        return Err(std::io::Error::other("too many descriptors to pass"));
    }
    table[..fds.len()].copy_from_slice(fds);
    let count = fds.len();
    unblock_signals_on_exec(cmd);
    // SAFETY: the closure only makes raw syscalls (fcntl, dup2) between
    // fork and exec, on stack arrays: no allocation.
    unsafe {
        cmd.pre_exec(move || {
            // Move every source above the targets first, so one mapping cannot
            // clobber the source of another.
            let mut moved = [(-1, -1); MAX_FIXED_FDS];
            for (i, &(src, dst)) in table[..count].iter().enumerate() {
                let high = libc::fcntl(src, libc::F_DUPFD_CLOEXEC, 100);
                if high < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                moved[i] = (high, dst);
            }
            for &(high, dst) in &moved[..count] {
                if libc::dup2(high, dst) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// Detaches the child from the CLI's session, so a terminal hangup does
/// not reach the pod.
#[allow(unsafe_code)] // after-fork code: a pre_exec closure stays raw
fn new_session_on_exec(cmd: &mut Command) {
    // SAFETY: setsid is a raw, async-signal-safe syscall.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
}

/// What a child wrote to its report pipe, up to its closing it.
pub(super) fn read_all(fd: OwnedFd) -> Result<String, Error> {
    let mut s = String::new();
    File::from(fd)
        .read_to_string(&mut s)
        .map_err(io("read helper report"))?;
    Ok(s)
}

/// Spawns the pod's shim, detached in its own session, with its output in
/// the pod's `shim.log`. Returns the shim's identity and the notify pipe.
pub fn spawn(config: &Config, dir: &PodDir) -> Result<(ProcessId, File), Error> {
    let (notify_r, notify_w) = sandbox::pipe()?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.shim_log())
        .map_err(io("open shim log"))?;
    let log2 = log.try_clone().map_err(io("dup shim log"))?;
    let mut cmd = podlab_command();
    cmd.arg("--root")
        .arg(&config.root)
        .arg("--image-root")
        .arg(&config.image_root)
        .arg("--data-root")
        .arg(&config.data_root);
    if let Some(dir) = &config.cni_conf_dir {
        cmd.arg("--cni-conf-dir").arg(dir);
    }
    cmd.arg("--seccomp-root").arg(&config.seccomp_root);
    cmd.arg("__shim")
        .arg(&dir.key.namespace)
        .arg(&dir.key.name)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    new_session_on_exec(&mut cmd);
    let child =
        spawn_with_fds(&mut cmd, &[(notify_w.as_raw_fd(), NOTIFY_FD)]).map_err(io("spawn shim"))?;
    drop(notify_w);
    let pid = child.id() as i32;
    // The CLI exits soon; the shim is adopted by init and needs no reaping here.
    std::mem::forget(child);
    let id = ProcessId::of(pid)
        .ok_or_else(|| Error::Other("shim exited at once; see shim.log".into()))?;
    Ok((id, File::from(notify_r)))
}

/// Where `podlab apply` records the shim it started.
pub fn shim_file(dir: &PodDir) -> PathBuf {
    dir.dir.join("shim.json")
}

pub fn read_shim(dir: &PodDir) -> Option<ProcessId> {
    store::read_json_opt(&shim_file(dir)).ok().flatten()
}

pub fn is_shim_alive(dir: &PodDir) -> bool {
    read_shim(dir).is_some_and(|p| p.is_alive())
}

/// Starts the shim of a pod the scheduler bound and the kubelet admitted;
/// returns the pipe on which the shim reports the pod's first outcome.
pub fn start_bound(config: &Config, dir: &PodDir) -> Result<File, Error> {
    let (shim_id, notify) = spawn(config, dir)?;
    testhook::stall_at(Stage::ApplySpawned);
    store::write_json_atomic(&shim_file(dir), &shim_id)?;
    Ok(notify)
}

/// Binds the pods that wait for room and fit now, and starts each. Returns
/// the pods started. The caller holds the store lock.
pub fn schedule_and_start(
    config: &Config,
    store: &store::Store,
    lock: &store::StoreLock,
) -> Result<Vec<store::PodKey>, Error> {
    let mut started = Vec::new();
    for dir in scheduler::schedule_pending(store, lock)? {
        // Nobody waits on this pipe; the shim's report goes nowhere.
        drop(start_bound(config, &dir)?);
        started.push(dir.key.clone());
    }
    Ok(started)
}
