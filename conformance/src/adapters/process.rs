//! Running a runtime's command-line tool as a child process: output read on
//! helper threads, a deadline instead of a blocking wait, and exit statuses
//! as a shell reports them. Shared by the podlab, CLI and podman adapters.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::runtime::{Error, ExecOutput};

/// `Ok` for exit status 0, otherwise the command, its status and stderr.
pub fn check_status(out: &ExecOutput, command: &str) -> Result<(), Error> {
    if out.exit_code == 0 {
        return Ok(());
    }
    Err(Error::Command {
        command: command.into(),
        code: out.exit_code,
        stderr: out.stderr.trim().into(),
    })
}

/// Runs `cmd` to completion, killing it after `timeout`. Output is read on
/// helper threads so a chatty child cannot block on a full pipe.
pub fn run_with_timeout(
    mut cmd: Command,
    stdin: Option<&str>,
    timeout: Duration,
    shown: &str,
) -> Result<ExecOutput, Error> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut attempts = 0;
    let mut child = loop {
        match cmd.spawn() {
            Ok(child) => break child,
            // ETXTBSY: a binary written a moment ago can still be open for
            // writing in a child another thread forked and has not exec'd
            // yet; that window closes by itself.
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempts < 50 => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(source) => {
                return Err(Error::Spawn {
                    command: shown.into(),
                    source,
                })
            }
        }
    };
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A child that exits without reading gives EPIPE: its exit status says more.
        let _ = pipe.write_all(text.as_bytes());
    }
    let stdout = reader(child.stdout.take());
    let stderr = reader(child.stderr.take());
    let status = wait_child(&mut child, timeout, shown)?;
    // A grandchild (a daemon the command started) may keep the pipes open
    // after the child exits: take what arrived within a moment and move on.
    let grace = Instant::now() + Duration::from_secs(2);
    Ok(ExecOutput {
        stdout: collect(stdout, grace),
        stderr: collect(stderr, grace),
        exit_code: exit_code(status),
    })
}

/// Reads a pipe to its end on a helper thread; the bytes arrive on the channel.
fn reader<R: Read + Send + 'static>(pipe: Option<R>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        let _ = tx.send(buf);
    });
    rx
}

fn collect(rx: mpsc::Receiver<Vec<u8>>, deadline: Instant) -> String {
    let left = deadline.saturating_duration_since(Instant::now());
    String::from_utf8_lossy(&rx.recv_timeout(left).unwrap_or_default()).into_owned()
}

/// Polls the child until it exits or the deadline passes; on timeout the
/// child (ours, by pid) is killed and reaped.
fn wait_child(
    child: &mut Child,
    timeout: Duration,
    shown: &str,
) -> Result<std::process::ExitStatus, Error> {
    let deadline = Instant::now() + timeout;
    let mut interval = Duration::from_millis(2);
    loop {
        let polled = child.try_wait().map_err(|source| Error::Spawn {
            command: shown.into(),
            source,
        })?;
        if let Some(status) = polled {
            return Ok(status);
        }
        let now = Instant::now();
        if now >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Timeout {
                command: shown.into(),
                after: timeout,
            });
        }
        std::thread::sleep(interval.min(deadline - now));
        interval = (interval * 2).min(Duration::from_millis(50));
    }
}

/// The status as a shell reports it: 128+N for death by signal N.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => -1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(script);
        c
    }

    #[test]
    fn output_stdin_and_exit_status() {
        let mut cmd = sh("cat; echo err >&2; exit 3");
        cmd.stdin(Stdio::piped());
        let out = run_with_timeout(cmd, Some("hello"), Duration::from_secs(10), "sh").unwrap();
        assert_eq!(out.stdout, "hello");
        assert_eq!(out.stderr, "err\n");
        assert_eq!(out.exit_code, 3);
    }

    #[test]
    fn a_daemon_holding_the_pipe_does_not_block() {
        let start = Instant::now();
        let out = run_with_timeout(
            sh("echo started; sleep 6 & exit 0"),
            None,
            Duration::from_secs(10),
            "sh",
        )
        .unwrap();
        assert_eq!(out.exit_code, 0);
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_signal_is_128_plus_its_number() {
        let out = run_with_timeout(sh("kill -9 $$"), None, Duration::from_secs(10), "sh").unwrap();
        assert_eq!(out.exit_code, 137);
    }

    #[test]
    fn a_slow_child_is_killed_at_the_deadline() {
        let start = Instant::now();
        let err = run_with_timeout(
            sh("exec sleep 30"),
            None,
            Duration::from_millis(200),
            "slow",
        )
        .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_missing_binary_is_a_spawn_error() {
        let cmd = Command::new("/nonexistent/podlab-conformance-test");
        let err = run_with_timeout(cmd, None, Duration::from_secs(1), "missing").unwrap_err();
        assert!(matches!(err, Error::Spawn { .. }), "{err}");
    }
}
