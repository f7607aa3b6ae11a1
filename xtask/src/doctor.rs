//! `cargo xtask doctor`: what this host offers and lacks for podlab, and
//! the one place that knows which Debian package brings each program the
//! tasks and tests run.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

use crate::util;

/// Why a program is needed, which decides which task installs it: the demo
/// installs only what pods need, the comparisons come with `test`,
/// `bench` and `doctor --install`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Running podlab's own pods: the fixture images, the pod network,
    /// and what the tests and labs call around them.
    Pods,
    /// The suite's and the benchmark's second runtime.
    Podman,
    /// The suite's third runtime, through the CRI, and the CRI client's build.
    Containerd,
    /// `cargo xtask vm`: podlab on a cgroup v2 kernel under emulation.
    Vm,
    /// The real kubectl the `podlab serve` tests drive. Not installed by
    /// any task (its Debian package comes from Kubernetes' or Google's own
    /// repository, which a host may lack): a missing one is an error that
    /// names it.
    Kubectl,
    /// The pull tests' private registry and the tool that pushes to it.
    Registry,
}

/// Everything: what `test` and `doctor --install` install.
pub const ALL: &[Need] = &[
    Need::Pods,
    Need::Podman,
    Need::Containerd,
    Need::Vm,
    Need::Registry,
];

/// An external program a task or test runs, where Debian installs it, and
/// the package it comes from.
pub struct Program {
    pub name: &'static str,
    pub path: &'static str,
    pub package: &'static str,
    pub need: Need,
    pub why: &'static str,
}

const fn p(
    name: &'static str,
    path: &'static str,
    package: &'static str,
    need: Need,
    why: &'static str,
) -> Program {
    Program {
        name,
        path,
        package,
        need,
        why,
    }
}

/// Every external program the tasks, tests, suite and labs run, directly
/// or through another program. A unit test below reads the sources and the
/// labs and fails on a program missing here. Paths under /bin hold on both
/// merged-/usr and split Debian systems.
#[rustfmt::skip]
pub const PROGRAMS: &[Program] = &[
    p("busybox", "/bin/busybox", "busybox-static", Need::Pods, "the userland of the fixture images"),
    p("bridge", "/usr/lib/cni/bridge", "containernetworking-plugins", Need::Pods, "the pod network (CNI)"),
    p("host-local", "/usr/lib/cni/host-local", "containernetworking-plugins", Need::Pods, "pod IP addresses (CNI IPAM)"),
    p("loopback", "/usr/lib/cni/loopback", "containernetworking-plugins", Need::Pods, "the pod's lo (CNI)"),
    p("portmap", "/usr/lib/cni/portmap", "containernetworking-plugins", Need::Pods, "hostPort (CNI), chained after bridge"),
    p("iptables", "/usr/sbin/iptables", "iptables", Need::Pods, "the rules the portmap plugin writes, and the tests that look for them"),
    p("ip", "/bin/ip", "iproute2", Need::Pods, "network checks in tests and labs"),
    p("sh", "/bin/sh", "dash", Need::Pods, "commands of the suite's adapters"),
    p("bash", "/bin/bash", "bash", Need::Pods, "the labs' commands"),
    p("sleep", "/bin/sleep", "coreutils", Need::Pods, "a process to move between cgroups in tests"),
    p("mount", "/bin/mount", "mount", Need::Pods, "node mounts below hostPath volumes in the suite's VOL tests"),
    p("umount", "/bin/umount", "mount", Need::Pods, "removing the suite's node mounts again"),
    p("tar", "/bin/tar", "tar", Need::Containerd, "the image archive containerd imports"),
    p("podman", "/usr/bin/podman", "podman", Need::Podman, "the second runtime"),
    p("conmon", "/usr/bin/conmon", "conmon", Need::Podman, "podman's container monitor"),
    p("runc", "/usr/sbin/runc", "runc", Need::Podman, "the OCI runtime of podman (crun refuses hybrid cgroups) and containerd"),
    // Debian's podman only recommends it, yet builds its pause image from it:
    // without it every `kube play` fails (seen on a new machine).
    p("catatonit", "/usr/bin/catatonit", "catatonit", Need::Podman, "podman's pause image"),
    p("containerd", "/usr/bin/containerd", "containerd", Need::Containerd, "the third runtime, through the CRI"),
    p("ctr", "/usr/bin/ctr", "containerd", Need::Containerd, "importing the fixture images into containerd"),
    p("crun", "/usr/bin/crun", "crun", Need::Containerd, "containerd's crun handler, an OCI runtime beside runc"),
    p("pkg-config", "/usr/bin/pkg-config", "pkg-config", Need::Containerd, "finding libseccomp when youki is built"),
    p("libseccomp.pc", "/usr/lib/x86_64-linux-gnu/pkgconfig/libseccomp.pc", "libseccomp-dev", Need::Containerd, "youki's seccomp support links libseccomp"),
    p("protoc", "/usr/bin/protoc", "protobuf-compiler", Need::Containerd, "building the CRI client's gRPC code"),
    p("qemu-system-x86_64", "/usr/bin/qemu-system-x86_64", "qemu-system-x86", Need::Vm, "the cgroup v2 guest (`cargo xtask vm`)"),
    p("apt-cache", "/usr/bin/apt-cache", "apt", Need::Vm, "finding Debian's kernel package for the guest"),
    p("dpkg-deb", "/usr/bin/dpkg-deb", "dpkg", Need::Vm, "unpacking the guest's kernel without installing it"),
    p("ldd", "/usr/bin/ldd", "libc-bin", Need::Vm, "the shared libraries the guest's binaries need"),
    p("docker-registry", "/usr/bin/docker-registry", "docker-registry", Need::Registry, "the private registry on loopback the pull tests pull from"),
    p("skopeo", "/usr/bin/skopeo", "skopeo", Need::Registry, "pushing the fixture images to the test registry"),
    p("kubectl", "/usr/bin/kubectl", "kubectl", Need::Kubectl, "the client the `podlab serve` tests drive (v1.32 tested; from the Kubernetes apt repository, not Debian's)"),
];

/// The programs `needs` call for that are not on this host.
pub fn missing(needs: &[Need]) -> Vec<&'static Program> {
    PROGRAMS
        .iter()
        .filter(|p| needs.contains(&p.need) && !Path::new(p.path).exists())
        .collect()
}

/// The Debian packages that bring `programs`, each once, in order.
fn packages(programs: &[&Program]) -> Vec<&'static str> {
    let mut out: Vec<&str> = Vec::new();
    for p in programs {
        if !out.contains(&p.package) {
            out.push(p.package);
        }
    }
    out
}

fn describe(programs: &[&Program]) -> String {
    programs
        .iter()
        .map(|p| {
            format!(
                "{} ({}, Debian package {}: {})",
                p.name, p.path, p.package, p.why
            )
        })
        .collect::<Vec<_>>()
        .join("\n  ")
}

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
    let caps = fs::read_to_string("/proc/self/status")
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
    let fs = fs::read_to_string("/proc/filesystems").unwrap_or_default();
    add(
        "overlayfs",
        fs.contains("overlay"),
        "container root filesystems".into(),
    );
    for p in PROGRAMS {
        add(
            p.name,
            Path::new(p.path).exists(),
            format!("{} (Debian package {}: {})", p.path, p.package, p.why),
        );
    }
    // The serve tests were written against kubectl 1.32; say which is here.
    let kubectl = Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("Client Version: ").map(str::to_string))
        });
    add(
        "kubectl version",
        kubectl.is_some(),
        kubectl.unwrap_or_else(|| "no kubectl: the `podlab serve` tests need it".into()),
    );
    out
}

/// Where the installer's full output goes; named when it fails.
fn apt_log() -> PathBuf {
    util::target().join("doctor/apt.log")
}

/// One quiet apt step: a line on the terminal, the output in the log.
fn apt_step(what: &str, log: &Path, cmd: &mut Command) -> anyhow::Result<()> {
    util::step(&format!("{what} (log: {})", log.display()));
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let status = cmd
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .status()
        .with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        let text = fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        bail!(
            "{what} failed ({status}); the full output is in {}; its end:\n{}",
            log.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    Ok(())
}

/// Installs the Debian packages `needs` call for that are missing, then
/// checks that every program they need is really here.
pub fn install(needs: &[Need]) -> anyhow::Result<()> {
    let missing = missing(needs);
    if !missing.is_empty() {
        let pkgs = packages(&missing);
        if !util::is_root() {
            bail!(
                "installing {} needs root; missing:\n  {}",
                pkgs.join(" "),
                describe(&missing)
            );
        }
        let log = apt_log();
        if let Some(dir) = log.parent() {
            fs::create_dir_all(dir)?;
        }
        apt_step(
            "apt-get update",
            &log,
            Command::new("apt-get").args(["update", "-q"]),
        )?;
        apt_step(
            &format!("apt-get install {}", pkgs.join(" ")),
            &log,
            Command::new("apt-get")
                .args(["install", "-y", "-q", "--no-install-recommends"])
                .args(&pkgs),
        )?;
    }
    let still = self::missing(needs);
    if !still.is_empty() {
        bail!(
            "these programs are still missing after the install:\n  {}",
            describe(&still)
        );
    }
    Ok(())
}

/// Fails, naming each missing program and its package, unless everything
/// `needs` call for is here.
pub fn require(needs: &[Need], task: &str) -> anyhow::Result<()> {
    let missing = missing(needs);
    if !missing.is_empty() {
        bail!(
            "{task} needs programs this host lacks (`cargo xtask doctor --install` installs them):\n  {}",
            describe(&missing)
        );
    }
    Ok(())
}

/// `cargo xtask doctor [--install]`
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Install the missing Debian packages (apt-get); on when CI=true
    #[arg(long)]
    install: bool,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let install_now = args.install || std::env::var("CI").as_deref() == Ok("true");
    if install_now {
        install(ALL)?;
    }
    for c in checks() {
        println!(
            "{} {:<28} {}",
            if c.ok { "ok  " } else { "MISS" },
            c.name,
            c.detail
        );
    }
    let left = missing(ALL);
    if !left.is_empty() && !install_now {
        println!(
            "\nmissing: {} — `cargo xtask doctor --install` installs them",
            packages(&left).join(" ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Programs the sources name but never run, or that the install step
    /// itself is made of.
    const NOT_DEPENDENCIES: &[&str] = &[
        "apt-get",                              // the installer
        "cargo",                                // the toolchain running xtask
        "podlab",                               // what we build
        "/nonexistent/podlab-conformance-test", // a test of a missing binary
        "/proc/self/exe",                       // podlab re-running itself (the shim)
    ];

    /// Shell builtins the labs' commands start with.
    const BUILTINS: &[&str] = &["kill", "echo", "cd", "export", "for", "test", "true"];

    /// The string literals passed to `Command::new` in `text`.
    fn commands_in(text: &str) -> Vec<String> {
        text.split("Command::new(\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next().map(String::from))
            .collect()
    }

    fn known(program: &str) -> bool {
        let base = program.rsplit('/').next().unwrap_or(program);
        NOT_DEPENDENCIES.contains(&program)
            || PROGRAMS.iter().any(|p| p.name == base || p.path == program)
    }

    #[test]
    fn finds_command_literals() {
        let src = r#"let a = Command::new("ip").arg("x"); Command::new(x); std::process::Command::new("/bin/sh")"#;
        assert_eq!(commands_in(src), ["ip", "/bin/sh"]);
        assert!(known("/bin/sh") && known("ip") && !known("nsenter"));
    }

    #[test]
    fn every_program_the_sources_run_names_its_package() {
        let root = util::root();
        let mut files = Vec::new();
        for dir in ["runtime", "conformance", "xtask", "fixtures"] {
            files.extend(podlab_testkit::source::rust_files(&root.join(dir)));
        }
        assert!(files.len() > 50, "found only {} sources", files.len());
        let mut unknown = Vec::new();
        for f in &files {
            let text = fs::read_to_string(f).unwrap();
            for program in commands_in(&text) {
                if !known(&program) {
                    unknown.push(format!("{program} in {}", f.display()));
                }
            }
        }
        assert!(
            unknown.is_empty(),
            "add these to doctor::PROGRAMS with their Debian package:\n{}",
            unknown.join("\n")
        );
    }

    #[test]
    fn every_program_the_labs_run_names_its_package() {
        let dir = util::root().join("docs/labs");
        let mut unknown = Vec::new();
        for e in fs::read_dir(&dir).unwrap().flatten() {
            let text = fs::read_to_string(e.path()).unwrap();
            for cmd in crate::labs::commands(&text) {
                let first = cmd.split_whitespace().next().unwrap_or("");
                if !known(first) && !BUILTINS.contains(&first) {
                    unknown.push(format!("{first} in {}", e.path().display()));
                }
            }
        }
        assert!(
            unknown.is_empty(),
            "unknown programs:\n{}",
            unknown.join("\n")
        );
    }

    #[test]
    fn the_demo_needs_only_what_pods_need() {
        let pkgs = packages(
            &PROGRAMS
                .iter()
                .filter(|p| p.need == Need::Pods)
                .collect::<Vec<_>>(),
        );
        assert!(pkgs.contains(&"busybox-static") && pkgs.contains(&"containernetworking-plugins"));
        for heavy in ["podman", "containerd", "protobuf-compiler", "catatonit"] {
            assert!(!pkgs.contains(&heavy), "{heavy} would come with the demo");
        }
    }

    #[test]
    fn podman_comes_with_what_it_builds_its_pause_image_from() {
        let podman: Vec<&Program> = PROGRAMS.iter().filter(|p| p.need == Need::Podman).collect();
        assert!(packages(&podman).contains(&"catatonit"));
    }

    #[test]
    fn packages_are_listed_once_in_order() {
        let all: Vec<&Program> = PROGRAMS.iter().collect();
        let pkgs = packages(&all);
        let mut dedup = pkgs.clone();
        dedup.dedup();
        assert_eq!(pkgs.len(), dedup.len());
        assert_eq!(pkgs.iter().filter(|p| **p == "containerd").count(), 1);
        assert_eq!(pkgs[0], "busybox-static");
    }
}
