//! The one way podlab replaces a file: a temporary file next to it, its
//! bytes synced, then a rename over the target. Readers (another podlab
//! process of the same root, a watcher, a container reading a downward
//! file) see the old content or the new, never part of one; a crash leaves
//! at most a temporary file whose name starts with [`TMP_PREFIX`].

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// How every temporary file's name starts.
pub const TMP_PREFIX: &str = ".tmp-";

/// A temporary name next to `path`, unique across processes (the pid) and
/// across the threads of one (`podlab serve` writes from many at once).
pub fn temporary_path(path: &Path) -> PathBuf {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!("{TMP_PREFIX}{name}-{}-{seq}", std::process::id()))
}

/// Replaces `path` with `bytes`, mode 0644.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_from(path, &mut &bytes[..], 0o644).map(|_| ())
}

/// Replaces `path` with `bytes`, readable by its owner only (keys, tokens).
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_from(path, &mut &bytes[..], 0o600).map(|_| ())
}

/// Replaces `path` with what `reader` yields, with exactly `mode` (the
/// umask does not apply: a downward file's mode is the pod's choice);
/// returns the byte count. Nothing is left behind on failure.
pub fn write_from(path: &Path, reader: &mut dyn Read, mode: u32) -> io::Result<u64> {
    let tmp = temporary_path(path);
    let result = (|| {
        let mut file: File = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        let n = io::copy(reader, &mut file)?;
        file.flush()?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        Ok(n)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_content_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        write(&path, b"old").unwrap();
        write(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("status.json")]);
    }

    #[test]
    fn private_files_are_the_owners_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        write_private(&path, b"secret").unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        // Exactly the mode asked for, whatever the umask.
        let open = dir.path().join("open");
        write_from(&open, &mut &b"x"[..], 0o666).unwrap();
        assert_eq!(mode(&open), 0o666);
    }

    #[test]
    fn a_failed_write_leaves_the_old_content_and_no_temporary_file() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("the source broke"))
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        write(&path, b"kept").unwrap();
        assert!(write_from(&path, &mut Broken, 0o644).is_err());
        assert_eq!(fs::read(&path).unwrap(), b"kept");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn writes_from_many_threads_to_one_path_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("owner");
        std::thread::scope(|s| {
            for i in 0..8 {
                let path = &path;
                s.spawn(move || {
                    for _ in 0..50 {
                        write(path, format!("writer {i}").as_bytes()).unwrap();
                    }
                });
            }
        });
        assert!(fs::read_to_string(&path).unwrap().starts_with("writer "));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
