//! hostPath volumes as the kubelet sets them up: the path's `type` is
//! checked (and, for the `...OrCreate` types, what is missing is made)
//! before a container mounts it. Shared by podlab's shim and the CRI
//! adapter's kubelet stand-in.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The values of `hostPath.type`; empty means no check.
pub const TYPES: &[&str] = &[
    "",
    "DirectoryOrCreate",
    "Directory",
    "FileOrCreate",
    "File",
    "Socket",
    "CharDevice",
    "BlockDevice",
];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubelet's words for a path that is not of its declared type.
    #[error("hostPath type check failed: {path} is not a {what}")]
    WrongType { path: PathBuf, what: &'static str },
    #[error("hostPath {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("hostPath type {0:?} is not one of the known types")]
    UnknownType(String),
}

/// What a hostPath turned out to be, which decides what its mount target
/// inside the container is made as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    Directory,
    /// Anything else: a file, a socket, a device.
    File,
}

/// Checks `path` against the hostPath `type` as the kubelet does, making a
/// missing directory (`DirectoryOrCreate`, 0755) or file (`FileOrCreate`,
/// 0644) first. Symlinks in the path are followed: the path names a place
/// on the node, chosen by whoever wrote the pod. With no type, a missing
/// path is made as a directory, as container runtimes do for a bind
/// source that does not exist.
pub fn prepare(path: &Path, type_: &str) -> Result<Kind, Error> {
    let io = |op| {
        move |source| Error::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    };
    let missing = fs::metadata(path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound);
    match type_ {
        "" | "DirectoryOrCreate" if missing => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(path)
            .map_err(io("mkdir"))?,
        "FileOrCreate" if missing => {
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .open(path)
                .map_err(io("create"))?;
        }
        _ => {}
    }
    let wrong = |what| Error::WrongType {
        path: path.to_path_buf(),
        what,
    };
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        // A missing path fails the check of its type, in the kubelet's words.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(match type_ {
                "Directory" => wrong("directory"),
                "File" => wrong("file"),
                "Socket" => wrong("socket file"),
                "CharDevice" => wrong("character device"),
                "BlockDevice" => wrong("block device"),
                _ => io("stat")(e),
            })
        }
        Err(e) => return Err(io("stat")(e)),
    };
    let t = meta.file_type();
    let fits = match type_ {
        "" => true,
        "DirectoryOrCreate" | "Directory" => t.is_dir(),
        "FileOrCreate" | "File" => t.is_file(),
        "Socket" => t.is_socket(),
        "CharDevice" => t.is_char_device(),
        "BlockDevice" => t.is_block_device(),
        other => return Err(Error::UnknownType(other.to_string())),
    };
    if !fits {
        return Err(wrong(match type_ {
            "DirectoryOrCreate" | "Directory" => "directory",
            "FileOrCreate" | "File" => "file",
            "Socket" => "socket file",
            "CharDevice" => "character device",
            _ => "block device",
        }));
    }
    Ok(if t.is_dir() {
        Kind::Directory
    } else {
        Kind::File
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("Directory", "directory")]
    #[case("File", "file")]
    #[case("Socket", "socket file")]
    #[case("CharDevice", "character device")]
    #[case("BlockDevice", "block device")]
    fn missing_path_fails_its_type_check(#[case] type_: &str, #[case] what: &str) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("missing");
        let e = crate::error::chain(&prepare(&p, type_).unwrap_err());
        assert_eq!(
            e,
            format!(
                "hostPath type check failed: {} is not a {what}",
                p.display()
            )
        );
        assert!(!p.exists(), "a failed check makes nothing");
    }

    #[test]
    fn or_create_types_make_what_is_missing() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("a/b");
        assert_eq!(prepare(&d, "DirectoryOrCreate").unwrap(), Kind::Directory);
        assert!(d.is_dir());
        let f = dir.path().join("f");
        assert_eq!(prepare(&f, "FileOrCreate").unwrap(), Kind::File);
        let mode = fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & !0o022, 0o644 & !0o022);
        // Unset type: a missing path becomes a directory.
        let u = dir.path().join("u");
        assert_eq!(prepare(&u, "").unwrap(), Kind::Directory);
        // An existing file is left as it is.
        fs::write(&f, "kept").unwrap();
        prepare(&f, "FileOrCreate").unwrap();
        assert_eq!(fs::read_to_string(&f).unwrap(), "kept");
    }

    #[test]
    fn wrong_kind_is_refused_and_symlinks_are_followed() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        fs::write(&f, "x").unwrap();
        let e = crate::error::chain(&prepare(&f, "DirectoryOrCreate").unwrap_err());
        assert!(e.ends_with("is not a directory"), "{e}");
        let e = crate::error::chain(&prepare(dir.path(), "File").unwrap_err());
        assert!(e.ends_with("is not a file"), "{e}");
        assert!(prepare(dir.path(), "Socket").is_err());
        assert_eq!(
            prepare(Path::new("/dev/null"), "CharDevice").unwrap(),
            Kind::File
        );
        assert!(prepare(Path::new("/dev/null"), "BlockDevice").is_err());
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path(), &link).unwrap();
        assert_eq!(prepare(&link, "Directory").unwrap(), Kind::Directory);
        assert_eq!(prepare(&f, "").unwrap(), Kind::File);
    }
}
