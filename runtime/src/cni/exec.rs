//! Running one plugin process: config on stdin, result or error on stdout,
//! bounded by a timeout so a hung plugin cannot hang the pod's shim.
//!
//! stdin, stdout and stderr are memfds rather than pipes: nothing can block
//! on a full pipe, no reader threads are needed (the shim stays
//! single-threaded), and a plugin's daemonized child keeping stdout open
//! cannot delay us.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::memfd::{memfd_create, MFdFlags};

pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

pub enum Outcome {
    Exited(Output),
    TimedOut,
}

/// Runs `program` with exactly `env` (plus nothing inherited), `input` on
/// stdin, and the working directory `/`.
pub fn run(
    program: &Path,
    env: &[(&str, OsString)],
    input: &[u8],
    timeout: Duration,
) -> io::Result<Outcome> {
    let mut stdin = memfd("cni-stdin")?;
    stdin.write_all(input)?;
    stdin.seek(SeekFrom::Start(0))?;
    let mut stdout = memfd("cni-stdout")?;
    let mut stderr = memfd("cni-stderr")?;

    let mut cmd = Command::new(program);
    cmd.env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir("/")
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::from(stdout.try_clone()?))
        .stderr(Stdio::from(stderr.try_clone()?));
    let mut child = spawn(&mut cmd)?;

    let Some(status) = wait_timeout(&mut child, timeout)? else {
        // Our own child, killed by its handle; reaped so no zombie remains.
        let _ = child.kill();
        let _ = child.wait();
        return Ok(Outcome::TimedOut);
    };
    Ok(Outcome::Exited(Output {
        status,
        stdout: read_back(&mut stdout)?,
        stderr: read_back(&mut stderr)?,
    }))
}

fn memfd(name: &str) -> io::Result<File> {
    let fd: OwnedFd = memfd_create(name, MFdFlags::MFD_CLOEXEC)?;
    Ok(File::from(fd))
}

fn read_back(file: &mut File) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_end(&mut out)?;
    Ok(out)
}

/// Spawns, retrying ETXTBSY: a plugin file that was just written may still
/// be open for writing in a child another thread forked in that instant
/// (until that child execs); the window is microseconds.
fn spawn(cmd: &mut Command) -> io::Result<Child> {
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 20 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

/// Waits for the child for at most `timeout`. A pidfd becomes readable when
/// the process exits, so poll() waits without spinning; kernels without
/// pidfd_open (before 5.3) fall back to polling try_wait.
fn wait_timeout(child: &mut Child, timeout: Duration) -> io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    let pid = i32::try_from(child.id()).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    match crate::sys::pidfd_open(pid) {
        Ok(pidfd) => loop {
            if let Some(status) = child.try_wait()? {
                return Ok(Some(status));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        },
        Err(_) => loop {
            if let Some(status) = child.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(2));
        },
    }
}
