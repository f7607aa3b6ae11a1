//! Small helpers shared by the tasks.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context};

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` (relative to the
/// workspace root when relative) or `<root>/target`. Everything the tasks
/// build or keep (fixtures, probe, test images, reports) goes under it.
pub fn target() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root().join(dir),
        _ => root().join("target"),
    }
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// Runs a command with its output shown, failing with the command line.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let line = format!("{cmd:?}");
    let status = with_progress(|| cmd.status()).with_context(|| format!("starting {line}"))?;
    if !status.success() {
        bail!("{line} failed: {status}");
    }
    Ok(())
}

/// Runs a command and returns its stdout, failing with its stderr.
pub fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let line = format!("{cmd:?}");
    let out = cmd.output().with_context(|| format!("starting {line}"))?;
    if !out.status.success() {
        bail!(
            "{line} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// How often a long command says it is still running.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs `f` (a child command) and, while it runs, prints a line every
/// [`PROGRESS_EVERY`] naming the current step and how long it has taken, so
/// a quiet build or unpack of several minutes does not look hung.
fn with_progress<T>(f: impl FnOnce() -> T) -> T {
    let step = STEPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .last()
        .map(|(m, _)| m.clone())
        .unwrap_or_else(|| "working".into());
    let (done, ticks) = std::sync::mpsc::channel::<()>();
    let start = std::time::Instant::now();
    let ticker = std::thread::spawn(move || {
        while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
            ticks.recv_timeout(PROGRESS_EVERY)
        {
            eprintln!("    ... {step}: still running ({})", clock(start.elapsed()));
        }
    });
    let out = f();
    drop(done);
    let _ = ticker.join();
    out
}

/// The steps so far, with when each began, for [`print_timings`].
static STEPS: std::sync::Mutex<Vec<(String, std::time::Instant)>> =
    std::sync::Mutex::new(Vec::new());

/// `text` in the ANSI style `sgr` (e.g. "1" bold) when `terminal` is true
/// and NO_COLOR is unset; plain otherwise, so logs and pipes get no escapes.
pub fn styled(text: &str, sgr: &str, terminal: bool) -> String {
    if terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) {
        format!("\x1b[{sgr}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// Announces a step, with the time since the task began.
pub fn step(msg: &str) {
    let now = std::time::Instant::now();
    let mut steps = STEPS.lock().unwrap_or_else(|e| e.into_inner());
    let since = steps.first().map(|(_, t)| now - *t).unwrap_or_default();
    use std::io::IsTerminal;
    let line = format!("==> [{}] {msg}", clock(since));
    eprintln!("{}", styled(&line, "1", std::io::stderr().is_terminal()));
    steps.push((msg.to_string(), now));
}

/// How long each step took, printed when the task ends (well or not).
pub fn print_timings() {
    let steps = STEPS.lock().unwrap_or_else(|e| e.into_inner());
    if steps.len() < 2 {
        return;
    }
    let end = std::time::Instant::now();
    eprintln!("\nstep times:");
    for (i, (msg, start)) in steps.iter().enumerate() {
        let until = steps.get(i + 1).map(|(_, t)| *t).unwrap_or(end);
        eprintln!("  {:>8}  {msg}", clock(until - *start));
    }
    eprintln!("  {:>8}  total", clock(end - steps[0].1));
}

/// `1m05s`, `12.3s`.
fn clock(d: std::time::Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn colours_only_for_terminals() {
        assert_eq!(super::styled("x", "1", false), "x");
        if std::env::var_os("NO_COLOR").is_none() {
            assert_eq!(super::styled("x", "1", true), "\x1b[1mx\x1b[0m");
        }
    }

    use super::*;

    #[test]
    fn clock_reads_like_a_stopwatch() {
        assert_eq!(clock(std::time::Duration::from_millis(12_345)), "12.3s");
        assert_eq!(clock(std::time::Duration::from_secs(65)), "1m05s");
        assert_eq!(clock(std::time::Duration::from_secs(3600)), "60m00s");
    }
}
