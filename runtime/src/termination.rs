//! Termination messages as the kubelet reports them: a file of the node
//! bind-mounted at the container's `terminationMessagePath`, read when the
//! container exits into `state.terminated.message`; with the policy
//! `FallbackToLogsOnError`, the tail of the container's log when that file
//! is empty and the container failed.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::logs::Line;

/// The most of the file that becomes the message (its last bytes).
pub const MAX_FILE_BYTES: u64 = 4096;
/// From the logs: the last this many lines, and of them the last bytes.
pub const MAX_LOG_LINES: usize = 80;
pub const MAX_LOG_BYTES: usize = 2048;

/// The policy that falls back to the log.
pub const FALLBACK_TO_LOGS: &str = "FallbackToLogsOnError";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("termination message file {path}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Makes the node's file for one start of a container: empty, and
/// writable by whatever user the container runs as (as the kubelet makes it).
pub fn prepare(path: &Path) -> Result<(), Error> {
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .mode(0o666)
        .open(path)
        .map_err(io(path))?;
    // The umask may have narrowed the mode given at creation.
    file.set_permissions(std::fs::Permissions::from_mode(0o666))
        .map_err(io(path))
}

/// The last [`MAX_FILE_BYTES`] of the file: a container cannot make the
/// runtime read more, however much it wrote.
pub fn read_tail(path: &Path) -> Result<String, Error> {
    let mut file = File::open(path).map_err(io(path))?;
    let len = file.metadata().map_err(io(path))?.len();
    let from = len.saturating_sub(MAX_FILE_BYTES);
    file.seek(SeekFrom::Start(from)).map_err(io(path))?;
    let mut bytes = Vec::with_capacity((len - from) as usize);
    file.take(MAX_FILE_BYTES)
        .read_to_end(&mut bytes)
        .map_err(io(path))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The log's tail as a message: its last [`MAX_LOG_LINES`] lines, each with
/// its newline, and of those the last [`MAX_LOG_BYTES`].
pub fn from_log(lines: &[Line]) -> String {
    let mut bytes = Vec::new();
    for l in &lines[lines.len().saturating_sub(MAX_LOG_LINES)..] {
        bytes.extend_from_slice(&l.text);
        bytes.push(b'\n');
    }
    let cut = bytes.len().saturating_sub(MAX_LOG_BYTES);
    String::from_utf8_lossy(&bytes[cut..]).into_owned()
}

/// The message of a start that ended with `exit_code`: the file's text,
/// or under [`FALLBACK_TO_LOGS`] the log's tail when the file says nothing
/// and the container failed. `None` when there is nothing to say.
pub fn message(
    policy: Option<&str>,
    file: Result<String, Error>,
    exit_code: i32,
    log: impl FnOnce() -> Vec<Line>,
) -> Option<String> {
    let text = match file {
        Ok(text) => text,
        // The file is the runtime's own: a missing one means the
        // container never started far enough to have one.
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            String::new()
        }
        Err(e) => return Some(crate::error::chain(&e)),
    };
    if text.is_empty() && exit_code != 0 && policy == Some(FALLBACK_TO_LOGS) {
        let tail = from_log(&log());
        return (!tail.is_empty()).then_some(tail);
    }
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> Line {
        Line {
            time: String::new(),
            stream: "stdout".into(),
            text: text.as_bytes().to_vec(),
        }
    }

    #[test]
    fn the_file_is_read_from_its_end_and_capped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("termination-log");
        prepare(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o666
        );
        assert_eq!(read_tail(&path).unwrap(), "");
        let long = format!("{}{}", "a".repeat(1000), "b".repeat(4096));
        std::fs::write(&path, &long).unwrap();
        assert_eq!(read_tail(&path).unwrap(), "b".repeat(4096));
        // A new start begins with an empty file again.
        prepare(&path).unwrap();
        assert_eq!(read_tail(&path).unwrap(), "");
    }

    #[test]
    fn the_log_tail_is_the_last_lines_and_bytes() {
        let lines: Vec<Line> = (0..100).map(|i| line(&format!("l{i}"))).collect();
        let tail = from_log(&lines);
        assert!(tail.starts_with("l20\n"), "{tail}");
        assert!(tail.ends_with("l99\n"));
        let wide: Vec<Line> = (0..10).map(|_| line(&"x".repeat(500))).collect();
        assert_eq!(from_log(&wide).len(), MAX_LOG_BYTES);
    }

    #[test]
    fn the_policy_decides_when_the_log_is_used() {
        let log = || vec![line("from the log")];
        let fallback = Some(FALLBACK_TO_LOGS);
        assert_eq!(
            message(Some("File"), Ok("done".into()), 0, log).as_deref(),
            Some("done")
        );
        assert_eq!(message(Some("File"), Ok(String::new()), 1, log), None);
        assert_eq!(
            message(fallback, Ok(String::new()), 1, log).as_deref(),
            Some("from the log\n")
        );
        // Success, or a file that says something: no fallback.
        assert_eq!(message(fallback, Ok(String::new()), 0, log), None);
        assert_eq!(
            message(fallback, Ok("file".into()), 1, log).as_deref(),
            Some("file")
        );
        let missing = Err(Error::Io {
            path: "x".into(),
            source: std::io::ErrorKind::NotFound.into(),
        });
        assert_eq!(
            message(fallback, missing, 2, log).as_deref(),
            Some("from the log\n")
        );
    }
}
