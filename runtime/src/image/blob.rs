//! Content-addressing helpers of the store: digest validation, verified
//! blob copies and atomic file writes (the sha256 helpers themselves are
//! `podlab-oci`'s, shared with the layout writer).

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub use podlab_oci::{sha256_digest, to_hex, HashingReader};

use super::Error;

/// True for `sha256:` followed by exactly 64 lowercase hex digits. Digests
/// come from untrusted manifests and become file names, so nothing else
/// (no `/`, no `..`) may pass.
pub(crate) fn is_sha256_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// The hex part of a validated sha256 digest.
pub(crate) fn digest_hex(digest: &str) -> Result<&str, Error> {
    if is_sha256_digest(digest) {
        Ok(&digest["sha256:".len()..])
    } else {
        Err(Error::InvalidDigest(digest.to_string()))
    }
}

/// A name no other thread or process picks at the same time: pid, a
/// per-process counter and the clock. Callers still create with O_EXCL or
/// mkdir, so a clash would be an error, never a shared file.
pub(crate) fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{}-{}-{nanos:08x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

/// Writes `path` atomically (see [`crate::atomic_file`]).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    crate::atomic_file::write(path, bytes).map_err(io_err(format!("writing {}", path.display())))
}

/// Copies a blob from `reader` to `path`, checking size and sha256 before the
/// rename: a corrupt or truncated source never becomes a stored blob.
pub(crate) fn store_verified(
    path: &Path,
    reader: impl Read,
    digest: &str,
    expected_size: u64,
) -> Result<(), Error> {
    let tmp = tmp_path_for(path);
    let result = (|| {
        let mut file = File::options()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io_err(format!("creating {}", tmp.display())))?;
        // Read at most one byte more than announced: enough to notice an
        // oversized blob without copying an arbitrarily large one.
        let mut hashing = HashingReader::new(reader.take(expected_size.saturating_add(1)));
        io::copy(&mut hashing, &mut file).map_err(io_err(format!("copying blob {digest}")))?;
        let (actual, size) = hashing
            .finish()
            .map_err(io_err(format!("copying blob {digest}")))?;
        if size != expected_size {
            return Err(Error::SizeMismatch {
                digest: digest.to_string(),
                expected: expected_size,
                actual: size,
            });
        }
        if actual != digest {
            return Err(Error::DigestMismatch {
                digest: digest.to_string(),
                actual,
            });
        }
        file.sync_all()
            .map_err(io_err(format!("syncing {}", tmp.display())))?;
        fs::rename(&tmp, path).map_err(io_err(format!("renaming into {}", path.display())))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads a small blob (manifest, index, config) whole and checks it against
/// its descriptor. `limit` bounds memory use on hostile input.
pub(crate) fn read_verified(
    path: &Path,
    digest: &str,
    expected_size: u64,
    limit: u64,
) -> Result<Vec<u8>, Error> {
    if expected_size > limit {
        return Err(Error::Invalid {
            what: format!("blob {digest}"),
            reason: format!("{expected_size} bytes is more than the {limit} allowed for JSON"),
        });
    }
    let file = File::open(path).map_err(io_err(format!("opening blob {digest}")))?;
    let mut bytes = Vec::new();
    file.take(expected_size.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_err(format!("reading blob {digest}")))?;
    if bytes.len() as u64 != expected_size {
        return Err(Error::SizeMismatch {
            digest: digest.to_string(),
            expected: expected_size,
            actual: bytes.len() as u64,
        });
    }
    let actual = sha256_digest(&bytes);
    if actual != digest {
        return Err(Error::DigestMismatch {
            digest: digest.to_string(),
            actual,
        });
    }
    Ok(bytes)
}

pub(crate) fn tmp_path_for(path: &Path) -> PathBuf {
    crate::atomic_file::temporary_path(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_validation_rejects_paths() {
        let hex = "a".repeat(64);
        assert!(is_sha256_digest(&format!("sha256:{hex}")));
        assert!(!is_sha256_digest(&format!("sha256:{}", "A".repeat(64))));
        assert!(!is_sha256_digest("sha256:../../etc/passwd"));
        assert!(!is_sha256_digest(&format!("sha512:{hex}")));
        assert!(digest_hex("sha256:..").is_err());
    }
}
