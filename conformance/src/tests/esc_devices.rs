//! Escapes through device nodes (issue 21 part 2): a container keeps
//! CAP_MKNOD, so only the runtime's device rules (the cgroup v1 devices
//! controller or a cgroup v2 device program) stop it from creating a node
//! for a host device and opening it. Every open here is read-write with
//! O_NONBLOCK and closed at once: no byte goes to or from any device.

use serde_json::Value;

use crate::pods::{error_name, ok, ContainerSpec, PodGuard, PodManifest};
use crate::runtime::Runtime;
use crate::suite::{fail, skip, Check, Ctx, Outcome, TestCase};

pub const CASES: &[TestCase] = &[
    case!("ESC-010", char_devices_refused,
        must: "A container that is not privileged MUST NOT open a character device outside the default allowlist through a node it creates with mknod, such as the host's tty1, vcs or /dev/fuse.",
        method: "In an ordinary container, `probe mknod-open` creates /tmp nodes c 4:1 (tty1), c 7:0 (vcs) and c 10:229 (fuse) and opens each read-write without I/O; each must fail, at mknod or with EPERM at open."),
    case!("ESC-011", block_devices_refused,
        must: "A container that is not privileged MUST NOT open a block device through a node it creates with mknod.",
        method: "In an ordinary container, `probe mknod-open b 7 0` creates a node for loop0 in /tmp and opens it read-write without I/O; it must fail, at mknod or with EPERM at open. Skipped when this host refuses that open even to root outside any container (a host fact, checked first)."),
    case!("ESC-012", default_devices_usable,
        must: "A container that is not privileged MUST be able to open /dev/null, /dev/zero, /dev/full, /dev/random, /dev/urandom, /dev/tty and a new pseudo-terminal, and nodes it creates for them.",
        method: "In an ordinary container, `probe open-dev` opens the five memory devices read-write (all must open) and /dev/tty (ENXIO without a controlling terminal is fine, EPERM is not); `probe pts` opens /dev/ptmx, unlocks it and opens its /dev/pts/N; `probe mknod-open c 1 3` creates a null node in /tmp and opens it."),
    case!("ESC-013", privileged_gets_devices,
        must: "A privileged container MUST be able to open any host device through a node it creates with mknod.",
        method: "In a privileged container, `probe mknod-open` creates and opens c 4:1 (tty1), c 7:0 (vcs), c 10:229 (fuse) and b 7:0 (loop0) read-write without I/O: each must open. A device this host's kernel lacks (ENXIO, ENODEV) or refuses even to root is left out; skipped when the runtime offers no privileged containers."),
];

/// Character devices outside the allowlist: tty1, vcs (the text of
/// console 0), fuse.
const CHAR_ATTACKS: [(&str, u32, u32, &str); 3] = [
    ("c", 4, 1, "tty1"),
    ("c", 7, 0, "vcs"),
    ("c", 10, 229, "fuse"),
];
/// loop0: openable by root on hosts that refuse raw disk opens.
const BLOCK_ATTACK: (&str, u32, u32, &str) = ("b", 7, 0, "loop0");

fn mknod_open(
    pod: &PodGuard,
    container: &str,
    dev: (&str, u32, u32, &str),
) -> Result<Value, Outcome> {
    let (kind, major, minor, _) = dev;
    pod.probe(
        container,
        &["mknod-open", kind, &major.to_string(), &minor.to_string()],
    )
}

/// The attack must fail: no node, or EPERM at open. An open that fails
/// otherwise (EACCES on a nodev /tmp) shows nothing about device rules.
fn refused(pod: &PodGuard, dev: (&str, u32, u32, &str)) -> Check {
    let (kind, major, minor, name) = dev;
    let v = mknod_open(pod, "app", dev)?;
    let what = format!("{kind} {major}:{minor} ({name})");
    if ok(&v) {
        return Err(fail(format!(
            "container app of pod {} created a node for {what} and opened it read-write: \
             a container that is not privileged must get no host device beyond the allowlist ({v})",
            pod.name
        )));
    }
    let stage = v.get("stage").and_then(Value::as_str).unwrap_or("");
    if stage == "open" && error_name(&v) != "EPERM" {
        return Err(fail(format!(
            "opening {what} in container app of pod {} failed with {} rather than EPERM, so the \
             device rules were not what refused it ({v})",
            pod.name,
            error_name(&v)
        )));
    }
    Ok(())
}

fn char_devices_refused(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let pod = PodGuard::start(rt, ctx, &PodManifest::sleepers(ctx, "esc-chr", &["app"]))?;
    CHAR_ATTACKS.iter().try_for_each(|d| refused(&pod, *d))
}

/// Whether root on this host (outside any container) opens `dev` through
/// a node of its own; `Err` names why not. Only meaningful for runtimes on
/// this machine's kernel.
fn host_opens(dev: (&str, u32, u32, &str)) -> Result<(), String> {
    use std::ffi::CString;
    let (kind, major, minor, name) = dev;
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let path = dir.path().join("node");
    let c = CString::new(path.to_string_lossy().as_bytes()).map_err(|e| e.to_string())?;
    let mode = if kind == "b" {
        libc::S_IFBLK
    } else {
        libc::S_IFCHR
    } | 0o600;
    // SAFETY: mknod(2) of a NUL-terminated path in our own tempdir.
    if unsafe { libc::mknod(c.as_ptr(), mode, libc::makedev(major, minor)) } < 0 {
        return Err(format!(
            "mknod {kind} {major}:{minor} ({name}) on the host: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: open(2) of that node; closed at once, no I/O.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(format!(
            "this host refuses root a read-write open of {kind} {major}:{minor} ({name}) outside \
             any container: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: closing the descriptor we just opened.
    unsafe { libc::close(fd) };
    Ok(())
}

fn block_devices_refused(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    if ctx.caps.same_kernel {
        host_opens(BLOCK_ATTACK).map_err(skip)?;
    }
    let pod = PodGuard::start(rt, ctx, &PodManifest::sleepers(ctx, "esc-blk", &["app"]))?;
    refused(&pod, BLOCK_ATTACK)
}

fn default_devices_usable(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let pod = PodGuard::start(rt, ctx, &PodManifest::sleepers(ctx, "esc-ok", &["app"]))?;
    let v = pod.probe(
        "app",
        &[
            "open-dev",
            "/dev/null,/dev/zero,/dev/full,/dev/random,/dev/urandom,/dev/tty",
        ],
    )?;
    let opens = v
        .get("opens")
        .and_then(Value::as_array)
        .filter(|o| o.len() == 6)
        .ok_or_else(|| fail(format!("probe open-dev in {}/app: {v}", pod.name)))?;
    let refused: Vec<String> = opens
        .iter()
        .filter(|o| {
            let tty = o["path"] == "/dev/tty";
            // /dev/tty without a controlling terminal is ENXIO, past the rules.
            !(o["ok"] == true || tty && o["error"] != "EPERM")
        })
        .map(|o| format!("{} ({})", o["path"], o["error"]))
        .collect();
    if !refused.is_empty() {
        return Err(fail(format!(
            "container app of pod {} cannot open {}: these are in every runtime's default allowlist",
            pod.name,
            refused.join(", ")
        )));
    }
    let v = pod.probe("app", &["pts"])?;
    if !ok(&v) {
        return Err(fail(format!(
            "container app of pod {} cannot open a new pseudo-terminal through /dev/ptmx: {v}",
            pod.name
        )));
    }
    let v = mknod_open(&pod, "app", ("c", 1, 3, "null"))?;
    if !ok(&v) {
        return Err(fail(format!(
            "container app of pod {} cannot create and open a node c 1:3 (null): mknod and the \
             allowlisted numbers must work through its own nodes too ({v})",
            pod.name
        )));
    }
    Ok(())
}

fn privileged_gets_devices(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    if !ctx.caps.privileged {
        return Err(skip("the runtime offers no privileged containers"));
    }
    let manifest = PodManifest::new(ctx, "esc-priv")
        .container(ContainerSpec::new(ctx, "app").privileged(true));
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    let mut tried = 0;
    let mut left_out = Vec::new();
    for dev in CHAR_ATTACKS.iter().copied().chain([BLOCK_ATTACK]) {
        let (kind, major, minor, name) = dev;
        if ctx.caps.same_kernel {
            if let Err(why) = host_opens(dev) {
                left_out.push(why);
                continue;
            }
        }
        let v = mknod_open(&pod, "app", dev)?;
        if ok(&v) {
            tried += 1;
            continue;
        }
        if matches!(error_name(&v), "ENXIO" | "ENODEV") {
            left_out.push(format!(
                "{kind} {major}:{minor} ({name}): {}",
                error_name(&v)
            ));
            continue;
        }
        return Err(fail(format!(
            "privileged container app of pod {} cannot create and open {kind} {major}:{minor} \
             ({name}): a privileged container gets every device ({v})",
            pod.name
        )));
    }
    if tried == 0 {
        return Err(skip(format!(
            "no device to try on this host: {}",
            left_out.join("; ")
        )));
    }
    Ok(())
}
