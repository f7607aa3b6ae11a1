//! Opening the two ends of a volume mount so that nothing a pod planted can
//! aim it elsewhere: a `subPath` stays beneath its volume, a mount target
//! inside the container's root. The kernel does the resolution (openat2 with
//! RESOLVE_BENEATH or RESOLVE_IN_ROOT, no magic links), missing directories
//! are created one component at a time relative to the descriptor of their
//! resolved parent, and the result is a descriptor the caller mounts through
//! `/proc/self/fd/N`, so a symlink swapped in after the check is never seen
//! (the classes of Kubernetes CVE-2017-1002101 / CVE-2021-25741 and runc
//! CVE-2021-30465).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::sys::{self, Scope};

/// Symlinks followed while creating a path, as the kernel's own limit.
const MAX_LINKS: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path:?} leads out of {within}")]
    Escapes { path: String, within: &'static str },
    #[error("open {path:?}")]
    Open { path: String, source: nix::Error },
    #[error("mkdir {path:?}")]
    Mkdir { path: String, source: nix::Error },
    #[error("{path:?}: more than {MAX_LINKS} symbolic links")]
    Loop { path: String },
}

fn scope_name(scope: Scope) -> &'static str {
    match scope {
        Scope::Beneath => "its volume",
        Scope::InRoot => "the container's root",
    }
}

/// Opens directory `path` relative to `base`, kept in `scope`; with
/// `create`, missing directories on the way are made (mode `mode`, less the
/// umask), and a dangling symlink makes the directory it names, inside the
/// scope. Returns an O_PATH descriptor of the directory.
pub fn open_dir(
    base: BorrowedFd<'_>,
    path: &str,
    scope: Scope,
    create: bool,
    mode: u32,
) -> Result<OwnedFd, Error> {
    let mut links = 0;
    open_inner(base, path, scope, create, mode, &mut links)
}

fn open_inner(
    base: BorrowedFd<'_>,
    path: &str,
    scope: Scope,
    create: bool,
    mode: u32,
    links: &mut usize,
) -> Result<OwnedFd, Error> {
    let open = |p: &str| sys::openat2_dir(base, p, scope);
    let fail = |p: &str, e: nix::Error| classify(p, scope, e);
    match open(path) {
        Ok(fd) => return Ok(fd),
        Err(nix::Error::ENOENT) if create => {}
        Err(e) => return Err(fail(path, e)),
    }
    let comps: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    let mut parent = open("").map_err(|e| fail(".", e))?;
    let mut prefix = String::new();
    for comp in comps {
        let parent_prefix = prefix.clone();
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(comp);
        let fd = match open(&prefix) {
            Ok(fd) => fd,
            Err(nix::Error::ENOENT) => {
                sys::mkdirat(parent.as_fd(), comp, mode).map_err(|source| Error::Mkdir {
                    path: prefix.clone(),
                    source,
                })?;
                match open(&prefix) {
                    Ok(fd) => fd,
                    // Still missing: the name is a symlink to nothing. Make
                    // what it names, resolved as the kernel would, in scope.
                    Err(nix::Error::ENOENT) => {
                        let target =
                            sys::readlinkat(parent.as_fd(), comp).map_err(|e| fail(&prefix, e))?;
                        *links += 1;
                        if *links > MAX_LINKS {
                            return Err(Error::Loop { path: prefix });
                        }
                        let next = if target.starts_with('/') || parent_prefix.is_empty() {
                            target
                        } else {
                            format!("{parent_prefix}/{target}")
                        };
                        open_inner(base, &next, scope, true, mode, links)?;
                        open(&prefix).map_err(|e| fail(&prefix, e))?
                    }
                    Err(e) => return Err(fail(&prefix, e)),
                }
            }
            Err(e) => return Err(fail(&prefix, e)),
        };
        parent = fd;
    }
    Ok(parent)
}

/// EXDEV is the kernel's word for "the resolution left the scope".
fn classify(path: &str, scope: Scope, e: nix::Error) -> Error {
    match e {
        nix::Error::EXDEV => Error::Escapes {
            path: path.to_string(),
            within: scope_name(scope),
        },
        nix::Error::ELOOP => Error::Loop {
            path: path.to_string(),
        },
        source => Error::Open {
            path: path.to_string(),
            source,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::path::Path;

    /// The real path behind a descriptor, relative to `base`.
    fn where_is(fd: &OwnedFd, base: &Path) -> String {
        let real = fs::read_link(sys::fd_path(fd)).unwrap();
        let base = fs::canonicalize(base).unwrap();
        real.strip_prefix(&base)
            .unwrap_or_else(|_| panic!("{} is outside {}", real.display(), base.display()))
            .display()
            .to_string()
    }

    fn base(tmp: &Path) -> OwnedFd {
        sys::open_dir_path(tmp).unwrap()
    }

    #[test]
    fn subpaths_stay_beneath_their_volume() {
        let tmp = tempfile::tempdir().unwrap();
        let vol = tmp.path().join("vol");
        fs::create_dir_all(vol.join("real/deeper")).unwrap();
        fs::write(tmp.path().join("outside"), "x").unwrap();
        symlink("/", vol.join("root")).unwrap();
        symlink("..", vol.join("up")).unwrap();
        symlink("d/l2", vol.join("l1")).unwrap();
        fs::create_dir(vol.join("d")).unwrap();
        symlink("../l3", vol.join("d/l2")).unwrap();
        symlink("/", vol.join("l3")).unwrap();
        symlink("real/deeper", vol.join("inside")).unwrap();
        symlink("/proc/self/root", vol.join("magic")).unwrap();
        let b = base(&vol);
        for escape in ["root", "up", "l1", "root/tmp", "up/vol", "magic"] {
            let err = open_dir(b.as_fd(), escape, Scope::Beneath, true, 0o755).unwrap_err();
            assert!(matches!(err, Error::Escapes { .. }), "{escape}: {err}");
        }
        assert!(
            !tmp.path().join("tmp").exists() && !vol.join("vol").exists(),
            "nothing is created on the way out"
        );
        let fd = open_dir(b.as_fd(), "inside", Scope::Beneath, false, 0o755).unwrap();
        assert_eq!(where_is(&fd, &vol), "real/deeper");
        let fd = open_dir(b.as_fd(), "new/a/b", Scope::Beneath, true, 0o755).unwrap();
        assert_eq!(where_is(&fd, &vol), "new/a/b");
        let err = open_dir(b.as_fd(), "missing", Scope::Beneath, false, 0o755).unwrap_err();
        assert!(matches!(err, Error::Open { .. }), "{err}");
    }

    #[test]
    fn a_dangling_link_beneath_makes_what_it_names_inside() {
        let tmp = tempfile::tempdir().unwrap();
        let vol = tmp.path();
        symlink("later/x", vol.join("soon")).unwrap();
        symlink("/abs", vol.join("abs")).unwrap();
        let b = base(vol);
        let fd = open_dir(b.as_fd(), "soon", Scope::Beneath, true, 0o755).unwrap();
        assert_eq!(where_is(&fd, vol), "later/x");
        let err = open_dir(b.as_fd(), "abs", Scope::Beneath, true, 0o755).unwrap_err();
        assert!(matches!(err, Error::Escapes { .. }), "{err}");
    }

    #[test]
    fn mount_targets_resolve_inside_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("rootfs");
        fs::create_dir_all(root.join("usr/share")).unwrap();
        symlink("/etc", root.join("escape")).unwrap();
        symlink("../../..", root.join("usr/share/up")).unwrap();
        symlink("share", root.join("usr/rel")).unwrap();
        symlink("/proc/self/root", root.join("magic")).unwrap();
        let r = base(&root);
        let at = |p: &str| {
            let fd = open_dir(r.as_fd(), p, Scope::InRoot, true, 0o755).unwrap();
            where_is(&fd, &root)
        };
        assert_eq!(at("/data"), "data");
        assert!(root.join("data").is_dir(), "missing directories are made");
        assert_eq!(at("/escape/conf"), "etc/conf");
        assert_eq!(at("/usr/share/up/x"), "x");
        assert_eq!(at("/usr/rel/./y/../z"), "usr/share/z");
        assert!(!tmp.path().join("x").exists(), "`..` stops at the root");
        symlink("loop", root.join("loop")).unwrap();
        let err = open_dir(r.as_fd(), "/loop/a", Scope::InRoot, true, 0o755).unwrap_err();
        assert!(matches!(err, Error::Loop { .. }), "{err}");
        // The link names the container's /proc, not ours.
        assert_eq!(at("/magic/tmp"), "proc/self/root/tmp");
    }
}
