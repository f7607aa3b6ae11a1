//! `cargo xtask doctor`: what this host offers and lacks for podlab.

use std::path::Path;
use std::process::Command;

use crate::util;

/// Debian packages the project needs at run and test time.
pub const PACKAGES: &[(&str, &str)] = &[
    ("busybox-static", "/bin/busybox"),
    ("containernetworking-plugins", "/usr/lib/cni/bridge"),
    // The conformance suite's second runtime (issue 6), with the OCI
    // runtime it needs on a hybrid cgroup host.
    ("podman", "/usr/bin/podman"),
    ("runc", "/usr/sbin/runc"),
    // The third: containerd's CRI plugin, and protoc for the CRI client's
    // generated gRPC code.
    ("containerd", "/usr/bin/containerd"),
    ("protobuf-compiler", "/usr/bin/protoc"),
];

pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

pub fn checks() -> Vec<Check> {
    let mut out = Vec::new();
    let mut add = |name, ok, detail: String| out.push(Check { name, ok, detail });
    add(
        "root",
        util::is_root(),
        if util::is_root() {
            "running as root".into()
        } else {
            "not root: pods cannot be created".into()
        },
    );
    let caps = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:").map(|v| v.trim().to_string()))
        })
        .and_then(|v| u64::from_str_radix(&v, 16).ok())
        .unwrap_or(0);
    let sys_admin = caps & (1 << 21) != 0;
    add("CAP_SYS_ADMIN", sys_admin, format!("CapEff={caps:016x}"));
    add(
        "CAP_SYS_RESOURCE",
        caps & (1 << 24) != 0,
        "needed only to raise rlimits above the hard limit (podlab does not)".into(),
    );
    let mode = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "v2 (unified)"
    } else if Path::new("/sys/fs/cgroup/unified").exists() {
        "v1 (hybrid)"
    } else {
        "v1 (legacy)"
    };
    add("cgroups", Path::new("/sys/fs/cgroup").exists(), mode.into());
    let fs = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    add(
        "overlayfs",
        fs.contains("overlay"),
        "container root filesystems".into(),
    );
    for (pkg, path) in PACKAGES {
        add(
            pkg,
            Path::new(path).exists(),
            format!("{path} (Debian package {pkg})"),
        );
    }
    out
}

pub fn missing_packages() -> Vec<&'static str> {
    PACKAGES
        .iter()
        .filter(|(_, p)| !Path::new(p).exists())
        .map(|(n, _)| *n)
        .collect()
}

/// Installs missing Debian packages (needs root and apt).
pub fn install() -> anyhow::Result<()> {
    let missing = missing_packages();
    if missing.is_empty() {
        return Ok(());
    }
    if !util::is_root() {
        anyhow::bail!("installing {} needs root", missing.join(" "));
    }
    util::step(&format!("installing {}", missing.join(" ")));
    util::run(Command::new("apt-get").args(["update", "-qq"]))?;
    util::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing),
    )
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    if util::flag(args, "--install") || std::env::var("CI").as_deref() == Ok("true") {
        install()?;
    }
    for c in checks() {
        println!(
            "{} {:<28} {}",
            if c.ok { "ok  " } else { "MISS" },
            c.name,
            c.detail
        );
    }
    Ok(())
}
