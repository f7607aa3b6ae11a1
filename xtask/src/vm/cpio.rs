//! The initramfs: an uncompressed cpio archive in the kernel's "newc"
//! format (Documentation/driver-api/early-userspace/buffer-format.rst), so
//! the VM needs no cpio or gzip program on the host.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Writes entries in order; parent directories are added on first use.
pub struct Archive<W: Write> {
    out: W,
    next_ino: u32,
    dirs: BTreeSet<String>,
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

impl<W: Write> Archive<W> {
    pub fn new(out: W) -> Archive<W> {
        Archive {
            out,
            next_ino: 1,
            dirs: BTreeSet::new(),
        }
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) -> io::Result<()> {
        let ino = self.next_ino;
        self.next_ino += 1;
        let nlink = if mode & S_IFDIR != 0 { 2 } else { 1 };
        // ino mode uid gid nlink mtime filesize devmajor devminor
        // rdevmajor rdevminor namesize check
        let fields = [
            ino,
            mode,
            0,
            0,
            nlink,
            0,
            u32::try_from(data.len()).map_err(|_| io::Error::other("file over 4 GiB"))?,
            0,
            0,
            0,
            0,
            name.len() as u32 + 1,
            0,
        ];
        let mut header = String::from("070701");
        for f in fields {
            header.push_str(&format!("{f:08X}"));
        }
        self.out.write_all(header.as_bytes())?;
        self.out.write_all(name.as_bytes())?;
        self.out.write_all(&[0])?;
        self.pad(header.len() + name.len() + 1)?;
        self.out.write_all(data)?;
        self.pad(data.len())
    }

    /// Header, name and data each end on a 4-byte boundary.
    fn pad(&mut self, len: usize) -> io::Result<()> {
        self.out.write_all(&[0; 3][..(4 - len % 4) % 4])
    }

    /// `path` and its parents, as directories (mode 0755).
    pub fn dir(&mut self, path: &str) -> io::Result<()> {
        let path = path.trim_matches('/');
        let mut sofar = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            if !sofar.is_empty() {
                sofar.push('/');
            }
            sofar.push_str(part);
            if self.dirs.insert(sofar.clone()) {
                let name = sofar.clone();
                self.entry(&name, S_IFDIR | 0o755, &[])?;
            }
        }
        Ok(())
    }

    fn parent(&mut self, path: &str) -> io::Result<String> {
        let path = path.trim_start_matches('/').to_string();
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent)?;
        }
        Ok(path)
    }

    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> io::Result<()> {
        let path = self.parent(path)?;
        self.entry(&path, S_IFREG | (mode & 0o7777), data)
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        let path = self.parent(path)?;
        self.entry(&path, S_IFLNK | 0o777, target.as_bytes())
    }

    /// A host file at `path` in the archive, with its permission bits;
    /// symlinks are followed.
    pub fn copy(&mut self, host: &Path, path: &str) -> io::Result<()> {
        let data = fs::read(host)?;
        let mode = fs::metadata(host)?.permissions().mode();
        self.file(path, mode, &data)
    }

    /// A host directory tree under `path`: directories, regular files and
    /// symlinks as they are (the image store holds all three).
    pub fn tree(&mut self, host: &Path, path: &str) -> io::Result<()> {
        self.dir(path)?;
        let mut entries: Vec<_> = fs::read_dir(host)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = format!(
                "{}/{}",
                path.trim_end_matches('/'),
                e.file_name().to_string_lossy()
            );
            let meta = fs::symlink_metadata(e.path())?;
            if meta.file_type().is_symlink() {
                let target = fs::read_link(e.path())?;
                self.symlink(&name, &target.to_string_lossy())?;
            } else if meta.is_dir() {
                self.tree(&e.path(), &name)?;
            } else if meta.is_file() {
                self.file(&name, meta.mode(), &fs::read(e.path())?)?;
            }
        }
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.entry("TRAILER!!!", 0, &[])?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a newc archive back: (name, mode, data) per entry.
    fn parse(mut bytes: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut offset = 0usize;
        loop {
            let header = std::str::from_utf8(&bytes[..110]).unwrap();
            assert_eq!(&header[..6], "070701", "magic at {offset}");
            let field = |i: usize| u32::from_str_radix(&header[6 + 8 * i..14 + 8 * i], 16).unwrap();
            let (mode, size, namesize) = (field(1), field(6) as usize, field(11) as usize);
            let name = std::str::from_utf8(&bytes[110..110 + namesize - 1])
                .unwrap()
                .to_string();
            let data_at = (110 + namesize).div_ceil(4) * 4;
            let data = bytes[data_at..data_at + size].to_vec();
            let next = (data_at + size).div_ceil(4) * 4;
            offset += next;
            bytes = &bytes[next..];
            if name == "TRAILER!!!" {
                assert!(bytes.is_empty(), "bytes after the trailer");
                return out;
            }
            out.push((name, mode, data));
        }
    }

    #[test]
    fn entries_round_trip_with_parents_first_and_once() {
        let mut a = Archive::new(Vec::new());
        a.file("/bin/busybox", 0o755, b"elf").unwrap();
        a.symlink("bin/sh", "busybox").unwrap();
        a.file("/etc/x/y", 0o644, b"hello").unwrap();
        let entries = parse(&a.finish().unwrap());
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            ["bin", "bin/busybox", "bin/sh", "etc", "etc/x", "etc/x/y"]
        );
        assert_eq!(entries[1].1, S_IFREG | 0o755);
        assert_eq!(entries[1].2, b"elf");
        assert_eq!(entries[2].1, S_IFLNK | 0o777);
        assert_eq!(entries[2].2, b"busybox");
        assert_eq!(entries[0].1, S_IFDIR | 0o755);
        assert_eq!(entries[5].2, b"hello");
    }
}
