//! `exec`: a command run inside a running container, as the CLI's `exec`,
//! the API server's and the exec probes and hooks need it.

use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{Error, ExecArgs, Process, RuntimeState};
use crate::namespaces::Plan;
use crate::sys::{self, Sys};

/// Runs `argv` inside the running container `name` of the pod whose shim
/// recorded `state`: its cgroup, namespaces (mount last, so its root and
/// /proc), environment, working directory and security profile. The calling
/// process must be single-threaded (the CLI and the probe helper are): it
/// joins everything itself, then forks once so the child lands in the
/// container's PID namespace. Returns the exit code (128+signal when
/// killed, 127 when the command is not there); past `timeout` the command
/// is killed and the answer is [`Error::ExecTimeout`].
pub fn exec_in(
    state: &RuntimeState,
    name: &str,
    argv: &[String],
    timeout: Option<Duration>,
) -> Result<i32, Error> {
    let not_running = || Error::NotRunning(name.to_string());
    let ctr = state.containers.get(name).ok_or_else(not_running)?;
    let pid = ctr.pid.filter(|p| p.is_alive()).ok_or_else(not_running)?;

    let leaf_name = format!("ctr-{name}");
    crate::cgroups::Manager::new()?
        .pod(&state.uid)
        .leaf(&leaf_name)
        .add_process(std::process::id() as i32)?;
    // Read on the host side: inside the container's mount namespace,
    // /proc/self is not this process.
    let host_caps = crate::security::HostCaps::read();
    let sys = &sys::Kernel;
    Plan::enter(pid.pid).apply(sys)?;
    let process =
        if crate::mutants::Mutant::from_env() == Some(crate::mutants::Mutant::ExecWithoutEnv) {
            Process {
                args: argv.to_vec(),
                env: Vec::new(),
                cwd: "/".into(),
            }
        } else {
            Process {
                args: argv.to_vec(),
                env: ctr.process.env.clone(),
                cwd: ctr.process.cwd.clone(),
            }
        };
    let args = match ExecArgs::new(&process) {
        Ok(a) => a,
        // As a shell does: 127 for a command that is not there.
        Err(e @ Error::NotFound(_)) => {
            eprintln!("podlab exec: {}", crate::error::chain(&e));
            return Ok(127);
        }
        Err(e) => return Err(e),
    };
    // The CLI and the probe helper are single-threaded (sys::fork checks).
    match sys.fork() {
        Ok(nix::unistd::ForkResult::Child) => {
            // The exec'd process gets the container's own restrictions.
            let err = match super::restrict(sys, &ctr.security, &host_caps) {
                Ok(()) => args.exec(),
                Err(e) => e,
            };
            let msg = format!("podlab exec: {}\n", crate::error::chain(&err));
            let code = if matches!(
                err,
                Error::Exec {
                    source: nix::Error::ENOENT,
                    ..
                }
            ) {
                127
            } else {
                126
            };
            sys::exit_after_fork(msg.as_bytes(), code)
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => wait_child(child, timeout),
        Err(e) => Err(e.into()),
    }
}

/// Waits for the exec'd child; past `timeout` it is killed. A pidfd makes
/// the deadline a poll timeout rather than a sleep loop.
fn wait_child(child: Pid, timeout: Option<Duration>) -> Result<i32, Error> {
    let timeout = timeout.filter(|_| {
        crate::mutants::Mutant::from_env() != Some(crate::mutants::Mutant::ExecTimeoutIgnored)
    });
    if let Some(limit) = timeout {
        let pidfd = sys::pidfd_open(child.as_raw()).map_err(|source| Error::Wait {
            op: "pidfd_open",
            source,
        })?;
        let exited = sys::wait_readable(&pidfd, Some(limit))
            .map_err(|source| Error::Wait { op: "poll", source })?;
        if !exited {
            let _ = kill(child, Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(child, None);
            return Err(Error::ExecTimeout(limit));
        }
    }
    loop {
        match nix::sys::wait::waitpid(child, None) {
            Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(nix::sys::wait::WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) => continue,
            Err(nix::Error::EINTR) => continue,
            Err(e) => {
                return Err(Error::Wait {
                    op: "waitpid",
                    source: e.into(),
                })
            }
        }
    }
}
