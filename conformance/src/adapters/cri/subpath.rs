//! subPath volume mounts prepared as the kubelet prepares them since
//! CVE-2021-25741: the subPath is opened beneath its volume by the kernel
//! (openat2 with RESOLVE_BENEATH, no magic links), missing directories are
//! made one component at a time relative to their opened parent, and the
//! opened directory is bind-mounted through /proc/self/fd to a place the
//! adapter owns, which is what the runtime is given: nothing the pod plants
//! in its volume can redirect the mount afterwards. Also the tmpfs of a
//! `medium: Memory` emptyDir, the other mount the adapter makes.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// Opens `path` beneath `dir` as an O_PATH directory descriptor.
fn open_beneath(dir: RawFd, path: &str) -> io::Result<OwnedFd> {
    let c = CString::new(if path.is_empty() { "." } else { path })
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: open_how is plain data; all-zero is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    let mut tries = 0;
    loop {
        // SAFETY: openat2 with a valid C string and open_how of the size given.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir,
                c.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd >= 0 {
            // SAFETY: the kernel just returned this descriptor to us alone.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
        }
        let err = io::Error::last_os_error();
        // EAGAIN: a rename raced the resolution; the kernel asks to retry.
        if err.raw_os_error() == Some(libc::EAGAIN) && tries < 16 {
            tries += 1;
            continue;
        }
        return Err(err);
    }
}

fn describe(sub: &str, e: io::Error) -> String {
    if e.raw_os_error() == Some(libc::EXDEV) {
        format!("subPath {sub:?} leads out of its volume")
    } else {
        format!("subPath {sub:?}: {e}")
    }
}

/// Opens subPath `sub` beneath `volume`, making what is missing.
fn open(volume: &Path, sub: &str) -> Result<OwnedFd, String> {
    let file = std::fs::File::open(volume)
        .map_err(|e| format!("cannot open volume {}: {e}", volume.display()))?;
    let base = file.as_raw_fd();
    match open_beneath(base, sub) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(describe(sub, e)),
    }
    let mut parent = open_beneath(base, "").map_err(|e| describe(sub, e))?;
    let mut prefix = String::new();
    for comp in sub.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(comp);
        let name = CString::new(comp).map_err(|_| format!("subPath {sub:?}: NUL byte"))?;
        // SAFETY: mkdirat relative to a descriptor we own, with a C string.
        if unsafe { libc::mkdirat(parent.as_raw_fd(), name.as_ptr(), 0o777) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(describe(sub, e));
            }
        }
        parent = open_beneath(base, &prefix).map_err(|e| describe(sub, e))?;
    }
    Ok(parent)
}

/// Prepares subPath `sub` of `volume` at `at` (a new directory the
/// adapter owns) by bind-mounting the opened directory there.
pub fn prepare(volume: &Path, sub: &str, at: &Path) -> Result<(), String> {
    let fd = open(volume, sub)?;
    std::fs::create_dir_all(at).map_err(|e| format!("cannot create {}: {e}", at.display()))?;
    let source = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap_or_default();
    let target = CString::new(at.as_os_str().as_encoded_bytes())
        .map_err(|_| format!("{}: NUL byte", at.display()))?;
    // SAFETY: mount(2) with valid C strings; a plain bind, no data.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(format!(
            "bind-mount subPath {sub:?} at {}: {}",
            at.display(),
            io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Mounts a tmpfs (mode 0777, `size` bytes or the kernel's default) on
/// `dir`: a `medium: Memory` emptyDir, as the kubelet makes one.
pub fn mount_tmpfs(dir: &Path, size: Option<i64>) -> Result<(), String> {
    let target = CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| format!("{}: NUL byte", dir.display()))?;
    let data = match size {
        Some(n) => format!("mode=0777,size={n}"),
        None => "mode=0777".to_string(),
    };
    let data = CString::new(data).unwrap_or_default();
    // SAFETY: mount(2) with valid C strings.
    let rc = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            data.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(format!(
            "mount a tmpfs on {}: {}",
            dir.display(),
            io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Lazily unmounts whatever is mounted on the entries of `dir` (an entry
/// that is no mount point is left as it is).
pub fn unmount_entries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if let Ok(c) = CString::new(e.path().as_os_str().as_encoded_bytes()) {
            // SAFETY: umount2 of a path under the adapter's own directory;
            // EINVAL when nothing is mounted there.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// Unmounts and removes every prepared subPath under `dir`, then `dir`.
/// Only empty directories are removed: an unmount that failed leaves the
/// volume's content where it is.
pub fn release(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    unmount_entries(dir);
    for e in entries.flatten() {
        let _ = std::fs::remove_dir(e.path());
    }
    let _ = std::fs::remove_dir(dir);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn subpaths_stay_beneath_the_volume_and_are_made() {
        let tmp = tempfile::tempdir().unwrap();
        let vol = tmp.path().join("vol");
        std::fs::create_dir_all(vol.join("d")).unwrap();
        symlink("/", vol.join("root")).unwrap();
        symlink("..", vol.join("up")).unwrap();
        symlink("d/l2", vol.join("l1")).unwrap();
        symlink("../root", vol.join("d/l2")).unwrap();
        symlink("d", vol.join("inside")).unwrap();
        for escape in ["root", "up", "l1", "root/tmp"] {
            let err = open(&vol, escape).unwrap_err();
            assert!(err.contains("leads out of its volume"), "{escape}: {err}");
        }
        assert!(!tmp.path().join("tmp").exists());
        let real =
            |fd: OwnedFd| std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
        let vol_real = std::fs::canonicalize(&vol).unwrap();
        assert_eq!(real(open(&vol, "inside").unwrap()), vol_real.join("d"));
        assert_eq!(real(open(&vol, "new/a").unwrap()), vol_real.join("new/a"));
    }
}
