//! Unpacking one image layer into its own directory, in the form overlayfs
//! expects of a lower directory.
//!
//! Layer tars are untrusted input. The rules that keep them inside the
//! layer directory:
//! - every entry path is normalised lexically (leading `/` and `.` dropped,
//!   `..` resolved); a `..` that would climb above the layer root is refused;
//! - every parent directory of an entry is checked with `symlink_metadata`
//!   and must be a real directory: a symlink planted by an earlier entry is
//!   never followed (the classic `evil -> /etc`, then `evil/passwd` attack);
//! - the final component is unlinked first when it exists, and files are
//!   created with `O_CREAT|O_EXCL|O_NOFOLLOW`;
//! - hard-link targets are normalised the same way and must already exist
//!   in this layer, reached through real directories only;
//! - symlinks are created as they are: their targets are resolved later,
//!   inside the container's root, which is where they belong.
//!
//! Nobody else writes into the directory while we unpack: it is a fresh
//! `tmp-*` directory private to this call (see `ImageStore::prepare`), so the
//! checks above cannot be raced.
//!
//! Whiteouts become overlayfs whiteouts: `.wh.NAME` a 0/0 character device
//! at NAME, `.wh..wh..opq` the `trusted.overlay.opaque=y` xattr on its
//! directory. Device nodes and fifos are skipped: the runtime provides /dev.

use std::ffi::OsStr;
use std::fs::{self, DirBuilder, File, FileTimes, OpenOptions, Permissions};
use std::io::{self, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use flate2::read::MultiGzDecoder;
use nix::sys::stat::{makedev, mknod, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use tar::EntryType;

use super::blob::{io_err, HashingReader};
use super::Error;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
const OPAQUE_XATTR: &std::ffi::CStr = c"trusted.overlay.opaque";

/// What one layer held, for logs and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnpackStats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    /// `.wh.NAME` entries turned into 0/0 character devices.
    pub whiteouts: u64,
    /// `.wh..wh..opq` entries turned into the opaque xattr.
    pub opaque_dirs: u64,
    /// Character/block devices and fifos, which are not created.
    pub skipped_devices: u64,
}

/// How a layer blob is compressed, from its media type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
}

/// Maps a layer media type (OCI or Docker schema 2) to its compression.
pub fn compression_of(media_type: &str, digest: &str) -> Result<Compression, Error> {
    let unsupported = |reason: &str| Error::UnsupportedMediaType {
        digest: digest.to_string(),
        media_type: media_type.to_string(),
        reason: reason.to_string(),
    };
    match media_type {
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar"
        | "application/vnd.docker.image.rootfs.diff.tar" => Ok(Compression::None),
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Ok(Compression::Gzip),
        m if m.contains("zstd") => Err(unsupported(
            "zstd-compressed layers are not supported; re-copy the image with gzip \
             (skopeo copy --dest-compress-format gzip)",
        )),
        _ => Err(unsupported("not a tar layer")),
    }
}

/// Unpacks the layer blob at `blob` into the empty directory `dest`,
/// checking the blob against `digest` and, when given, the uncompressed tar
/// against the config's `diff_id`.
pub fn unpack_blob(
    blob: &Path,
    media_type: &str,
    digest: &str,
    expected_size: u64,
    diff_id: Option<&str>,
    dest: &Path,
) -> Result<UnpackStats, Error> {
    let compression = compression_of(media_type, digest)?;
    let file = File::open(blob).map_err(io_err(format!("opening layer blob {digest}")))?;
    // Two hashes in one pass: the compressed bytes (the blob digest) and
    // the tar stream (the diff_id).
    let mut compressed = HashingReader::new(BufReader::new(file));
    let (stats, uncompressed) = {
        let tar_stream: Box<dyn Read + '_> = match compression {
            Compression::None => Box::new(&mut compressed),
            Compression::Gzip => Box::new(MultiGzDecoder::new(&mut compressed)),
        };
        let mut uncompressed = HashingReader::new(tar_stream);
        let stats = unpack_layer(&mut uncompressed, dest, digest)?;
        let uncompressed = uncompressed
            .finish()
            .map_err(io_err(format!("reading layer {digest}")))?;
        (stats, uncompressed)
    };
    let (actual, size) = compressed
        .finish()
        .map_err(io_err(format!("reading layer blob {digest}")))?;
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
    if let Some(expected) = diff_id {
        if uncompressed.0 != expected {
            return Err(Error::DiffIdMismatch {
                digest: digest.to_string(),
                expected: expected.to_string(),
                actual: uncompressed.0,
            });
        }
    }
    Ok(stats)
}

/// Unpacks an uncompressed layer tar into `dest` (an existing directory that
/// only this call writes to). `layer` names the layer in errors.
pub fn unpack_layer<R: Read>(reader: R, dest: &Path, layer: &str) -> Result<UnpackStats, Error> {
    let mut unpacker = Unpacker {
        root: dest,
        layer,
        // Only root may give files away; an unprivileged run (tests) keeps
        // its own ids rather than failing on every entry.
        chown: nix::unistd::geteuid().is_root(),
        stats: UnpackStats::default(),
        dirs: Vec::new(),
    };
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(io_err(format!("reading layer {layer}")))?;
    for entry in entries {
        let mut entry = entry.map_err(io_err(format!("reading layer {layer}")))?;
        unpacker.entry(&mut entry)?;
    }
    unpacker.finish_dirs()?;
    Ok(unpacker.stats)
}

/// Attributes of a directory entry, applied after all entries are written:
/// a read-only mode must not stop its own children from being created, and
/// creating children would bump the mtime again.
struct DirAttrs {
    rel: PathBuf,
    mode: u32,
    mtime: u64,
}

struct Unpacker<'a> {
    root: &'a Path,
    layer: &'a str,
    chown: bool,
    stats: UnpackStats,
    dirs: Vec<DirAttrs>,
}

/// Normalises an entry path lexically. `Err` carries the refusal reason.
/// An empty result means the layer root itself.
fn normalize(path: &Path) -> Result<PathBuf, &'static str> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            // Absolute paths are relative to the layer root.
            Component::Prefix(_) | Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return Err("its '..' climbs above the layer root");
                }
            }
            Component::Normal(name) => out.push(name),
        }
    }
    Ok(out)
}

impl Unpacker<'_> {
    fn refuse(&self, entry: &str, reason: impl Into<String>) -> Error {
        Error::UnsafeEntry {
            layer: self.layer.to_string(),
            entry: entry.to_string(),
            reason: reason.into(),
        }
    }

    fn io(&self, entry: &str, what: &str) -> impl FnOnce(io::Error) -> Error {
        io_err(format!("layer {}: {what} for entry {entry:?}", self.layer))
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), Error> {
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let kind = entry.header().entry_type();
        // PAX and GNU long-name records are folded into the following entry
        // by the tar crate; a global PAX header carries nothing we use.
        if matches!(
            kind,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let rel =
            normalize(Path::new(OsStr::from_bytes(&raw))).map_err(|r| self.refuse(&name, r))?;
        let Some(file_name) = rel.file_name().map(|n| n.as_bytes().to_vec()) else {
            // The root directory itself ("./"): the layer directory already
            // exists and its attributes are the runtime's business.
            if kind == EntryType::Directory {
                return Ok(());
            }
            return Err(self.refuse(&name, "it resolves to the layer root"));
        };

        // Whiteouts are recognised by name whatever their entry type.
        if file_name == OPAQUE_MARKER.as_bytes() {
            self.ensure_parents(&rel, &name)?;
            let dir = self.root.join(rel.parent().unwrap_or(Path::new("")));
            set_opaque(&dir).map_err(|source| Error::Privilege {
                layer: self.layer.to_string(),
                entry: name.clone(),
                what: "the trusted.overlay.opaque xattr",
                source,
            })?;
            self.stats.opaque_dirs += 1;
            return Ok(());
        }
        if let Some(hidden) = file_name.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            if hidden.starts_with(WHITEOUT_PREFIX.as_bytes()) {
                // Other `.wh..wh.*` names are aufs bookkeeping.
                return Ok(());
            }
            if hidden.is_empty() || hidden == b"." || hidden == b".." {
                return Err(self.refuse(&name, "whiteout of an invalid name"));
            }
            let target = rel.with_file_name(OsStr::from_bytes(hidden));
            return self.whiteout(&target, &name);
        }

        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.regular(&rel, &name, entry)
            }
            EntryType::Directory => self.directory(&rel, &name, entry.header()),
            EntryType::Symlink => self.symlink(&rel, &name, entry),
            EntryType::Link => self.hardlink(&rel, &name, entry),
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                self.stats.skipped_devices += 1;
                Ok(())
            }
            other => Err(Error::UnsupportedEntry {
                layer: self.layer.to_string(),
                entry: name,
                kind: format!("{other:?}"),
            }),
        }
    }

    /// Makes sure every parent of `rel` is a real directory inside the
    /// layer, creating missing ones (0755, root-owned like the implicit
    /// directories of other runtimes). A symlink or file in the way is
    /// refused rather than followed or replaced.
    fn ensure_parents(&mut self, rel: &Path, name: &str) -> Result<(), Error> {
        let mut current = self.root.to_path_buf();
        let Some(parent) = rel.parent() else {
            return Ok(());
        };
        for component in parent.components() {
            current.push(component);
            match fs::symlink_metadata(&current) {
                Ok(meta) if meta.file_type().is_dir() => {}
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(self.refuse(
                        name,
                        format!(
                            "its parent {} is a symlink",
                            current
                                .strip_prefix(self.root)
                                .unwrap_or(&current)
                                .display()
                        ),
                    ));
                }
                Ok(_) => {
                    return Err(self.refuse(
                        name,
                        format!(
                            "its parent {} is not a directory",
                            current
                                .strip_prefix(self.root)
                                .unwrap_or(&current)
                                .display()
                        ),
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // Explicit chmod: DirBuilder's mode is filtered by the umask.
                    DirBuilder::new()
                        .mode(0o755)
                        .create(&current)
                        .and_then(|()| fs::set_permissions(&current, Permissions::from_mode(0o755)))
                        .map_err(self.io(name, "creating a parent directory"))?;
                }
                Err(e) => return Err(self.io(name, "inspecting a parent directory")(e)),
            }
        }
        Ok(())
    }

    /// True when every parent of `rel` exists as a real directory; used for
    /// targets that must already be there (hard links, deferred dir modes).
    fn parents_are_dirs(&self, rel: &Path) -> bool {
        let mut current = self.root.to_path_buf();
        rel.parent().is_none_or(|parent| {
            parent.components().all(|component| {
                current.push(component);
                fs::symlink_metadata(&current).is_ok_and(|m| m.file_type().is_dir())
            })
        })
    }

    /// Clears the final path for a new entry ("a later entry wins", as in
    /// tar). An existing directory is kept when a directory is wanted, so
    /// that its earlier contents stay. Unlinking never follows a symlink.
    fn clear(&self, full: &Path, name: &str, want_dir: bool) -> Result<bool, Error> {
        match fs::symlink_metadata(full) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.io(name, "inspecting the target")(e)),
            Ok(meta) if meta.file_type().is_dir() => {
                if want_dir {
                    return Ok(true);
                }
                fs::remove_dir_all(full).map_err(self.io(name, "replacing a directory"))?;
                Ok(false)
            }
            Ok(_) => {
                fs::remove_file(full).map_err(self.io(name, "replacing a file"))?;
                Ok(false)
            }
        }
    }

    fn ids(&self, header: &tar::Header, name: &str) -> Result<Option<(u32, u32)>, Error> {
        if !self.chown {
            return Ok(None);
        }
        let uid = header.uid().map_err(self.io(name, "reading the uid"))?;
        let gid = header.gid().map_err(self.io(name, "reading the gid"))?;
        match (u32::try_from(uid), u32::try_from(gid)) {
            (Ok(uid), Ok(gid)) => Ok(Some((uid, gid))),
            _ => Err(self.refuse(name, format!("uid/gid {uid}/{gid} out of range"))),
        }
    }

    fn mode_and_mtime(&self, header: &tar::Header, name: &str) -> Result<(u32, u64), Error> {
        let mode = header.mode().map_err(self.io(name, "reading the mode"))? & 0o7777;
        let mtime = header.mtime().map_err(self.io(name, "reading the mtime"))?;
        Ok((mode, mtime))
    }

    fn regular<R: Read>(
        &mut self,
        rel: &Path,
        name: &str,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<(), Error> {
        self.ensure_parents(rel, name)?;
        let full = self.root.join(rel);
        self.clear(&full, name, false)?;
        let (mode, mtime) = self.mode_and_mtime(entry.header(), name)?;
        let ids = self.ids(entry.header(), name)?;
        // O_EXCL|O_NOFOLLOW: even if something appeared at the path, we
        // create a new file here or fail; we never write through a link.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&full)
            .map_err(self.io(name, "creating the file"))?;
        io::copy(entry, &mut file).map_err(self.io(name, "writing the file"))?;
        if let Some((uid, gid)) = ids {
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid))
                .map_err(self.io(name, "setting the owner"))?;
        }
        // chmod after chown: chown clears setuid/setgid bits.
        file.set_permissions(Permissions::from_mode(mode))
            .map_err(self.io(name, "setting the mode"))?;
        file.set_times(file_times(mtime))
            .map_err(self.io(name, "setting the mtime"))?;
        self.stats.files += 1;
        Ok(())
    }

    fn directory(&mut self, rel: &Path, name: &str, header: &tar::Header) -> Result<(), Error> {
        self.ensure_parents(rel, name)?;
        let full = self.root.join(rel);
        if !self.clear(&full, name, true)? {
            // Owner-only until the final mode is applied at the end.
            DirBuilder::new()
                .mode(0o700)
                .create(&full)
                .map_err(self.io(name, "creating the directory"))?;
        }
        if let Some((uid, gid)) = self.ids(header, name)? {
            std::os::unix::fs::lchown(&full, Some(uid), Some(gid))
                .map_err(self.io(name, "setting the owner"))?;
        }
        let (mode, mtime) = self.mode_and_mtime(header, name)?;
        self.dirs.push(DirAttrs {
            rel: rel.to_path_buf(),
            mode,
            mtime,
        });
        self.stats.dirs += 1;
        Ok(())
    }

    fn symlink<R: Read>(
        &mut self,
        rel: &Path,
        name: &str,
        entry: &tar::Entry<'_, R>,
    ) -> Result<(), Error> {
        let Some(target) = entry.link_name_bytes() else {
            return Err(self.refuse(name, "symlink without a target"));
        };
        let target = Path::new(OsStr::from_bytes(&target)).to_path_buf();
        self.ensure_parents(rel, name)?;
        let full = self.root.join(rel);
        self.clear(&full, name, false)?;
        // The target is stored verbatim: it is only ever resolved inside the
        // container's root filesystem.
        std::os::unix::fs::symlink(&target, &full)
            .map_err(self.io(name, "creating the symlink"))?;
        if let Some((uid, gid)) = self.ids(entry.header(), name)? {
            std::os::unix::fs::lchown(&full, Some(uid), Some(gid))
                .map_err(self.io(name, "setting the owner"))?;
        }
        let (_, mtime) = self.mode_and_mtime(entry.header(), name)?;
        let time = TimeSpec::new(i64::try_from(mtime).unwrap_or(i64::MAX), 0);
        utimensat(
            nix::fcntl::AT_FDCWD,
            &full,
            &time,
            &time,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|e| self.io(name, "setting the symlink mtime")(e.into()))?;
        self.stats.symlinks += 1;
        Ok(())
    }

    fn hardlink<R: Read>(
        &mut self,
        rel: &Path,
        name: &str,
        entry: &tar::Entry<'_, R>,
    ) -> Result<(), Error> {
        let Some(raw_target) = entry.link_name_bytes() else {
            return Err(self.refuse(name, "hard link without a target"));
        };
        let shown = String::from_utf8_lossy(&raw_target).into_owned();
        let target = normalize(Path::new(OsStr::from_bytes(&raw_target)))
            .map_err(|r| self.refuse(name, format!("hard link target {shown:?}: {r}")))?;
        if target.as_os_str().is_empty() || target == rel {
            return Err(self.refuse(name, format!("invalid hard link target {shown:?}")));
        }
        // The target must be an existing non-directory of this layer,
        // reached through real directories: `etc -> /etc` followed by a
        // link to `etc/passwd` must not pull in the host's file.
        let target_full = self.root.join(&target);
        let target_ok = self.parents_are_dirs(&target)
            && fs::symlink_metadata(&target_full).is_ok_and(|m| !m.file_type().is_dir());
        if !target_ok {
            return Err(self.refuse(
                name,
                format!("hard link target {shown:?} is not a file in this layer"),
            ));
        }
        self.ensure_parents(rel, name)?;
        let full = self.root.join(rel);
        self.clear(&full, name, false)?;
        // std's hard_link is linkat(..., 0): a symlink target is linked
        // itself, never followed.
        fs::hard_link(&target_full, &full).map_err(self.io(name, "creating the hard link"))?;
        self.stats.hardlinks += 1;
        Ok(())
    }

    fn whiteout(&mut self, target: &Path, name: &str) -> Result<(), Error> {
        self.ensure_parents(target, name)?;
        let full = self.root.join(target);
        self.clear(&full, name, false)?;
        mknod(&full, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)).map_err(|errno| {
            Error::Privilege {
                layer: self.layer.to_string(),
                entry: name.to_string(),
                what: "a whiteout device",
                source: errno.into(),
            }
        })?;
        self.stats.whiteouts += 1;
        Ok(())
    }

    /// Applies the deferred directory modes and mtimes. A directory that
    /// was replaced later (by a file, or by a symlink anywhere above it) is
    /// skipped; the O_NOFOLLOW|O_DIRECTORY open makes sure we chmod the
    /// directory we made and nothing a link points to.
    fn finish_dirs(&self) -> Result<(), Error> {
        for dir in &self.dirs {
            if !self.parents_are_dirs(&dir.rel) {
                continue;
            }
            let name = dir.rel.to_string_lossy();
            let file = match OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
                .open(self.root.join(&dir.rel))
            {
                Ok(file) => file,
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ENOTDIR | libc::ELOOP | libc::ENOENT)
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(self.io(&name, "opening the directory")(e)),
            };
            file.set_permissions(Permissions::from_mode(dir.mode))
                .map_err(self.io(&name, "setting the directory mode"))?;
            file.set_times(file_times(dir.mtime))
                .map_err(self.io(&name, "setting the directory mtime"))?;
        }
        Ok(())
    }
}

fn file_times(mtime: u64) -> FileTimes {
    let time = UNIX_EPOCH + Duration::from_secs(mtime);
    FileTimes::new().set_accessed(time).set_modified(time)
}

/// Marks `dir` opaque for overlayfs. lsetxattr so that a symlink would
/// be refused, not followed.
fn set_opaque(dir: &Path) -> io::Result<()> {
    crate::sys::lsetxattr(dir, OPAQUE_XATTR, b"y")
}

/// Reads the `trusted.overlay.opaque` xattr of `path` (tests, diagnostics).
pub fn opaque_xattr(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let mut buf = [0u8; 16];
    match crate::sys::lgetxattr(path, OPAQUE_XATTR, &mut buf) {
        Ok(n) => Ok(Some(buf[..n.min(buf.len())].to_vec())),
        Err(e) if e.raw_os_error() == Some(libc::ENODATA) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    enum E<'a> {
        File(&'a str, &'a [u8], u32),
        Dir(&'a str, u32),
        Symlink(&'a str, &'a str),
        Hardlink(&'a str, &'a str),
        Char(&'a str),
        Fifo(&'a str),
    }

    const MTIME: u64 = 1_000_000;

    /// Builds a tar with names written verbatim into the header: the tar
    /// crate's own setters refuse `..` and absolute paths, attackers don't.
    fn raw_tar(entries: &[E<'_>]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for entry in entries {
            let (path, kind, link, data, mode): (&str, EntryType, Option<&str>, &[u8], u32) =
                match *entry {
                    E::File(p, data, mode) => (p, EntryType::Regular, None, data, mode),
                    E::Dir(p, mode) => (p, EntryType::Directory, None, b"", mode),
                    E::Symlink(p, target) => (p, EntryType::Symlink, Some(target), b"", 0o777),
                    E::Hardlink(p, target) => (p, EntryType::Link, Some(target), b"", 0o644),
                    E::Char(p) => (p, EntryType::Char, None, b"", 0o666),
                    E::Fifo(p) => (p, EntryType::Fifo, None, b"", 0o644),
                };
            let mut header = tar::Header::new_gnu();
            {
                let old = header.as_old_mut();
                old.name[..path.len()].copy_from_slice(path.as_bytes());
                if let Some(link) = link {
                    old.linkname[..link.len()].copy_from_slice(link.as_bytes());
                }
            }
            header.set_entry_type(kind);
            header.set_mode(mode);
            header.set_size(data.len() as u64);
            header.set_mtime(MTIME);
            header.set_uid(1234);
            header.set_gid(2345);
            header.set_cksum();
            builder.append(&header, data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    /// A tempdir with `layer/` (the unpack target) and `outside/` beside it.
    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let layer = tmp.path().join("layer");
        let outside = tmp.path().join("outside");
        fs::create_dir(&layer).unwrap();
        fs::create_dir(&outside).unwrap();
        (tmp, layer, outside)
    }

    fn unpack(entries: &[E<'_>], layer: &Path) -> Result<UnpackStats, Error> {
        unpack_layer(&raw_tar(entries)[..], layer, "sha256:test")
    }

    fn assert_refused(result: Result<UnpackStats, Error>, bad_entry: &str) {
        match result {
            Err(Error::UnsafeEntry { entry, layer, .. }) => {
                assert_eq!(entry, bad_entry);
                assert_eq!(layer, "sha256:test");
            }
            other => panic!("expected {bad_entry:?} to be refused, got {other:?}"),
        }
    }

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    #[test]
    fn absolute_and_dotted_paths_land_inside() {
        let (_tmp, layer, _) = setup();
        let stats = unpack(
            &[
                E::File("/abs/path", b"1", 0o644),
                E::File("./a/./b", b"2", 0o644),
                E::File("c/../d", b"3", 0o644),
                E::Dir("./", 0o755),
            ],
            &layer,
        )
        .unwrap();
        assert_eq!(fs::read(layer.join("abs/path")).unwrap(), b"1");
        assert_eq!(fs::read(layer.join("a/b")).unwrap(), b"2");
        assert_eq!(fs::read(layer.join("d")).unwrap(), b"3");
        assert!(!layer.join("c").exists());
        assert_eq!(stats.files, 3);
    }

    #[test]
    fn dotdot_escape_is_refused() {
        let (tmp, layer, _) = setup();
        assert_refused(
            unpack(&[E::File("../escape", b"x", 0o644)], &layer),
            "../escape",
        );
        assert_refused(
            unpack(&[E::File("a/../../escape", b"x", 0o644)], &layer),
            "a/../../escape",
        );
        assert!(!tmp.path().join("escape").exists());
        let err = unpack(&[E::File("../escape", b"x", 0o644)], &layer).unwrap_err();
        assert!(err.to_string().contains("../escape"), "{err}");
    }

    #[test]
    fn symlink_parent_is_never_followed() {
        let (_tmp, layer, outside) = setup();
        let outside_str = outside.to_str().unwrap();
        assert_refused(
            unpack(
                &[
                    E::Symlink("evil", outside_str),
                    E::File("evil/x", b"pwned", 0o644),
                ],
                &layer,
            ),
            "evil/x",
        );
        assert!(!outside.join("x").exists());
        assert!(fs::symlink_metadata(layer.join("evil"))
            .unwrap()
            .file_type()
            .is_symlink());

        // The literal attack from the brief, with a name only this test uses.
        let probe = format!("evil2/podlab-unpack-probe-{}", std::process::id());
        assert_refused(
            unpack(
                &[
                    E::Symlink("evil2", "/tmp"),
                    E::File(&probe, b"pwned", 0o644),
                ],
                &layer,
            ),
            &probe,
        );
        assert!(!Path::new("/tmp").join(&probe["evil2/".len()..]).exists());

        // A directory entry through the link is refused too.
        assert_refused(
            unpack(
                &[
                    E::Symlink("evil3", outside_str),
                    E::Dir("evil3/sub/", 0o755),
                ],
                &layer,
            ),
            "evil3/sub/",
        );
        assert!(!outside.join("sub").exists());
    }

    #[test]
    fn later_file_replaces_symlink_instead_of_writing_through_it() {
        let (_tmp, layer, outside) = setup();
        let target = outside.join("target");
        unpack(
            &[
                E::Symlink("f", target.to_str().unwrap()),
                E::File("f", b"new", 0o644),
            ],
            &layer,
        )
        .unwrap();
        assert!(!target.exists());
        let meta = fs::symlink_metadata(layer.join("f")).unwrap();
        assert!(meta.file_type().is_file());
        assert_eq!(fs::read(layer.join("f")).unwrap(), b"new");
    }

    #[test]
    fn hardlinks_must_point_into_the_layer() {
        let (_tmp, layer, _) = setup();
        assert_refused(unpack(&[E::Hardlink("h", "/etc/passwd")], &layer), "h");
        assert_refused(unpack(&[E::Hardlink("h", "../../etc/passwd")], &layer), "h");
        assert_refused(
            unpack(
                &[E::Symlink("etc", "/etc"), E::Hardlink("h", "etc/passwd")],
                &layer,
            ),
            "h",
        );
        assert!(!layer.join("h").exists());

        let stats = unpack(
            &[E::File("f", b"data", 0o644), E::Hardlink("g", "./f")],
            &layer,
        )
        .unwrap();
        assert_eq!(stats.hardlinks, 1);
        let (f, g) = (
            fs::metadata(layer.join("f")).unwrap(),
            fs::metadata(layer.join("g")).unwrap(),
        );
        assert_eq!(f.ino(), g.ino());
    }

    #[test]
    fn devices_and_fifos_are_skipped_and_counted() {
        let (_tmp, layer, _) = setup();
        let stats = unpack(&[E::Char("dev/null"), E::Fifo("pipe")], &layer).unwrap();
        assert_eq!(stats.skipped_devices, 2);
        assert!(!layer.join("dev/null").exists());
        assert!(!layer.join("pipe").exists());
    }

    #[test]
    fn modes_owners_and_mtimes_are_preserved() {
        let (_tmp, layer, _) = setup();
        unpack(
            &[
                E::File("bin/su", b"su", 0o4755),
                E::Dir("ro/", 0o500),
                E::File("ro/f", b"f", 0o640),
                E::Symlink("link", "bin/su"),
            ],
            &layer,
        )
        .unwrap();
        let su = fs::metadata(layer.join("bin/su")).unwrap();
        assert_eq!(su.mode() & 0o7777, 0o4755);
        assert_eq!(su.mtime(), MTIME as i64);
        let ro = fs::metadata(layer.join("ro")).unwrap();
        assert_eq!(ro.mode() & 0o7777, 0o500);
        assert_eq!(ro.mtime(), MTIME as i64);
        assert_eq!(
            fs::metadata(layer.join("ro/f")).unwrap().mode() & 0o7777,
            0o640
        );
        let link = fs::symlink_metadata(layer.join("link")).unwrap();
        assert_eq!(
            fs::read_link(layer.join("link")).unwrap(),
            Path::new("bin/su")
        );
        assert_eq!(link.mtime(), MTIME as i64);
        // Implicit parents get a plain 0755.
        assert_eq!(
            fs::metadata(layer.join("bin")).unwrap().mode() & 0o7777,
            0o755
        );
        if is_root() {
            assert_eq!((su.uid(), su.gid()), (1234, 2345));
            assert_eq!((link.uid(), link.gid()), (1234, 2345));
        }
    }

    #[test]
    fn whiteouts_become_overlay_whiteouts() {
        if !is_root() {
            podlab_testkit::skip::skipped(
                "creating whiteout devices and trusted xattrs needs root",
            );
            return;
        }
        let (_tmp, layer, _) = setup();
        let stats = unpack(
            &[
                E::File("etc/.wh.motd", b"", 0o644),
                E::File("d/.wh..wh..opq", b"", 0o644),
                E::File("d/keep", b"k", 0o644),
                E::File(".wh..wh.plnk", b"", 0o644),
            ],
            &layer,
        )
        .unwrap();
        assert_eq!((stats.whiteouts, stats.opaque_dirs, stats.files), (1, 1, 1));
        let motd = fs::symlink_metadata(layer.join("etc/motd")).unwrap();
        assert!(motd.file_type().is_char_device());
        assert_eq!(motd.rdev(), 0);
        assert!(!layer.join("etc/.wh.motd").exists());
        assert_eq!(
            opaque_xattr(&layer.join("d")).unwrap().as_deref(),
            Some(&b"y"[..])
        );
        assert_eq!(opaque_xattr(&layer.join("etc")).unwrap(), None);
        assert!(!layer.join(".wh..wh.plnk").exists());
        assert!(!layer.join("d/.wh..wh..opq").exists());
    }

    #[test]
    fn invalid_whiteout_names_are_refused() {
        let (_tmp, layer, _) = setup();
        assert_refused(unpack(&[E::File("a/.wh..", b"", 0o644)], &layer), "a/.wh..");
    }

    #[test]
    fn compression_follows_media_type() {
        let d = "sha256:abc";
        assert_eq!(
            compression_of("application/vnd.oci.image.layer.v1.tar+gzip", d).unwrap(),
            Compression::Gzip
        );
        assert_eq!(
            compression_of("application/vnd.docker.image.rootfs.diff.tar.gzip", d).unwrap(),
            Compression::Gzip
        );
        assert_eq!(
            compression_of("application/vnd.oci.image.layer.v1.tar", d).unwrap(),
            Compression::None
        );
        let err = compression_of("application/vnd.oci.image.layer.v1.tar+zstd", d)
            .unwrap_err()
            .to_string();
        assert!(err.contains("zstd") && err.contains(d), "{err}");
        assert!(compression_of("application/json", d).is_err());
    }

    #[test]
    fn unpack_blob_checks_blob_and_diff_id() {
        let (tmp, _, _) = setup();
        let tar = raw_tar(&[E::File("f", b"data", 0o644)]);
        let blob = tmp.path().join("blob");
        fs::write(&blob, &tar).unwrap();
        let digest = super::super::sha256_digest(&tar);
        let media = "application/vnd.oci.image.layer.v1.tar";
        let size = tar.len() as u64;

        let dest = tmp.path().join("ok");
        fs::create_dir(&dest).unwrap();
        unpack_blob(&blob, media, &digest, size, Some(&digest), &dest).unwrap();
        assert_eq!(fs::read(dest.join("f")).unwrap(), b"data");

        let dest = tmp.path().join("bad-diff");
        fs::create_dir(&dest).unwrap();
        let wrong = super::super::sha256_digest(b"other");
        let err = unpack_blob(&blob, media, &digest, size, Some(&wrong), &dest).unwrap_err();
        assert!(
            matches!(err, Error::DiffIdMismatch { ref expected, .. } if *expected == wrong),
            "{err}"
        );

        let dest = tmp.path().join("bad-digest");
        fs::create_dir(&dest).unwrap();
        let err = unpack_blob(&blob, media, &wrong, size, None, &dest).unwrap_err();
        assert!(
            matches!(err, Error::DigestMismatch { ref digest, .. } if *digest == wrong),
            "{err}"
        );
    }
}
