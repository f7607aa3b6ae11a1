//! `cargo xtask vm [-- COMMAND]`: podlab on a pure cgroup v2 host.
//!
//! This machine is a v1 hybrid whose controllers its own processes hold, so
//! podlab's v2 path would otherwise only ever meet fixture trees. The task
//! boots Debian's own kernel (downloaded with `apt-get download`, unpacked,
//! never installed) under qemu's software emulation (KVM hangs here), with
//! `cgroup_no_v1=all` and cgroup2 mounted at /sys/fs/cgroup. The guest runs
//! from an initramfs built from what the host has: podlab and its
//! libraries, busybox, the CNI plugins, the fixture images. It has no
//! network device: loopback and the pod bridge podlab makes are all it sees.
//! The console streams to the terminal and to target/vm/console.log, and
//! the task exits with the guest's status, read from the console.

mod cpio;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::{conformance, doctor, fixtures, util};

const INIT: &str = include_str!("init.sh");
/// What the guest runs unless the caller names a command.
const PLAN: &str = include_str!("plan.sh");
/// The kernel modules podlab needs that Debian builds as modules:
/// container root filesystems, the pod's veth pair and the pod bridge.
const MODULES: &[&str] = &["overlay", "veth", "bridge"];
/// The CNI plugins podlab's default network chains (portmap only when the
/// host has it).
const CNI_PLUGINS: &[&str] = &["bridge", "host-local", "loopback", "portmap"];
/// Generous for software emulation on 2 cores; the default plan takes a
/// few minutes.
const DEADLINE: Duration = Duration::from_secs(20 * 60);
/// The console line carrying the guest's exit status.
const EXIT_MARK: &str = "podlab-vm: exit status ";
/// The console line where the guest says what /sys/fs/cgroup is.
const CGROUP_MARK: &str = "/sys/fs/cgroup is ";

/// `cargo xtask vm [-- COMMAND...]`
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A shell command to run in the guest instead of the default plan
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let command = (!args.command.is_empty()).then(|| args.command.join(" "));
    if !util::is_root() {
        bail!(
            "vm: run as root (the guest's image holds the fixture images podlab imports as root)"
        );
    }
    boot(command.as_deref())
}

/// Boots the guest, runs `command` (the default plan when None) and fails
/// unless the guest saw cgroup v2 and the command exited 0.
pub fn boot(command: Option<&str>) -> anyhow::Result<()> {
    doctor::install(&[doctor::Need::Vm])?;
    let work = util::target().join("vm");
    fs::create_dir_all(&work)?;
    let kernel = Kernel::fetch(&work.join("kernel"))?;
    let initrd = initramfs(&work, &kernel, command.unwrap_or(PLAN))?;
    util::step(&format!(
        "booting Debian's kernel {} under qemu (TCG) on cgroup v2",
        kernel.release
    ));
    let console = work.join("console.log");
    let seen = run_qemu(&kernel.vmlinuz, &initrd, &console)?;
    match seen.cgroup.as_deref() {
        Some("cgroup2") => {}
        other => bail!(
            "the guest's /sys/fs/cgroup was {} instead of cgroup2 (console: {})",
            other.unwrap_or("never reported"),
            console.display()
        ),
    }
    match seen.status {
        Some(0) => Ok(()),
        Some(n) => bail!("the guest's commands failed with status {n} (console: {})", console.display()),
        None => bail!(
            "the guest stopped without reporting an exit status (a kernel panic or the deadline; console: {})",
            console.display()
        ),
    }
}

/// Debian's kernel, unpacked under target/vm/kernel/<package>_<version>.
struct Kernel {
    vmlinuz: PathBuf,
    release: String,
    /// lib/modules/<release>.
    modules: PathBuf,
}

impl Kernel {
    fn fetch(cache: &Path) -> anyhow::Result<Kernel> {
        let (package, version) = match kernel_package() {
            Ok(found) => found,
            // A machine that never ran apt-get update knows no packages.
            Err(_) => {
                util::run(Command::new("apt-get").args(["update", "-q"]))?;
                kernel_package()?
            }
        };
        let dir = cache.join(format!("{package}_{version}"));
        if !dir.join(".unpacked").exists() {
            util::step(&format!("downloading {package} {version} (not installed)"));
            let _ = fs::remove_dir_all(&dir);
            let download = cache.join("download");
            let _ = fs::remove_dir_all(&download);
            fs::create_dir_all(&download)?;
            util::run(
                Command::new("apt-get")
                    .args(["download", "-q"])
                    .arg(format!("{package}={version}"))
                    .current_dir(&download),
            )?;
            let deb = fs::read_dir(&download)?
                .flatten()
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "deb"))
                .context("apt-get download left no .deb")?;
            util::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&dir))?;
            fs::remove_dir_all(&download)?;
            fs::write(dir.join(".unpacked"), "")?;
        }
        let vmlinuz = fs::read_dir(dir.join("boot"))?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
            })
            .with_context(|| format!("no vmlinuz-* in {}", dir.join("boot").display()))?;
        let release = vmlinuz
            .file_name()
            .map(|n| {
                n.to_string_lossy()
                    .trim_start_matches("vmlinuz-")
                    .to_string()
            })
            .unwrap_or_default();
        let modules = dir.join("lib/modules").join(&release);
        Ok(Kernel {
            vmlinuz,
            release,
            modules,
        })
    }
}

/// The package `linux-image-amd64` points at and its candidate version.
fn kernel_package() -> anyhow::Result<(String, String)> {
    let deps = util::output(Command::new("apt-cache").args(["depends", "linux-image-amd64"]))?;
    let package = deps
        .lines()
        .find_map(|l| l.trim().strip_prefix("Depends: "))
        .map(|p| p.trim().to_string())
        .context("apt-cache depends linux-image-amd64 names no kernel")?;
    let show =
        util::output(Command::new("apt-cache").args(["show", "--no-all-versions", &package]))?;
    let version = show
        .lines()
        .find_map(|l| l.strip_prefix("Version: "))
        .map(|v| v.trim().to_string())
        .with_context(|| format!("apt-cache show {package} gives no version"))?;
    Ok((package, version))
}

/// `names` and the modules they depend on, each once, dependencies first,
/// as paths relative to `modules` (Debian's package ships no modules.dep:
/// depmod makes it at install, and we do not install).
fn module_load_order(modules: &Path, names: &[&str]) -> anyhow::Result<Vec<PathBuf>> {
    let mut by_name = BTreeMap::new();
    index_modules(&modules.join("kernel"), &mut by_name)?;
    fn visit(
        name: &str,
        by_name: &BTreeMap<String, PathBuf>,
        done: &mut BTreeSet<String>,
        out: &mut Vec<PathBuf>,
    ) -> anyhow::Result<()> {
        if !done.insert(name.to_string()) {
            return Ok(());
        }
        let path = by_name
            .get(name)
            .with_context(|| format!("the kernel package has no module {name}"))?;
        for dep in module_depends(&fs::read(path)?) {
            visit(&dep, by_name, done, out)?;
        }
        out.push(path.clone());
        Ok(())
    }
    let (mut done, mut out) = (BTreeSet::new(), Vec::new());
    for name in names {
        visit(name, &by_name, &mut done, &mut out)?;
    }
    Ok(out)
}

fn index_modules(dir: &Path, out: &mut BTreeMap<String, PathBuf>) -> anyhow::Result<()> {
    for e in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = e?.path();
        if path.is_dir() {
            index_modules(&path, out)?;
        } else if let Some(stem) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".ko"))
        {
            // The kernel names modules with '_' whatever the file says.
            out.insert(stem.replace('-', "_"), path);
        }
    }
    Ok(())
}

/// The `depends=` entry of a module's .modinfo section.
fn module_depends(ko: &[u8]) -> Vec<String> {
    let key = b"\0depends=";
    let Some(at) = ko.windows(key.len()).position(|w| w == key) else {
        return Vec::new();
    };
    let rest = &ko[at + key.len()..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end])
        .split(',')
        .filter(|d| !d.is_empty())
        .map(|d| d.replace('-', "_"))
        .collect()
}

/// The shared libraries `ldd` names for `binary`, the loader included.
fn libraries(binary: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let out = util::output(Command::new("ldd").arg(binary))?;
    Ok(parse_ldd(&out))
}

fn parse_ldd(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=> ") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// The podlab library's unit tests as one executable (the cgroup module's
/// host tests run in the guest).
fn build_lib_tests() -> anyhow::Result<PathBuf> {
    util::step("building podlab's unit tests for the guest");
    let out = util::output(util::cargo().args([
        "test",
        "--quiet",
        "-p",
        "podlab",
        "--lib",
        "--no-run",
        "--message-format=json",
    ]))?;
    out.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "lib"))
        })
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .context("cargo test --no-run named no executable for podlab's library")
}

fn build_conformance() -> anyhow::Result<PathBuf> {
    util::step("building the conformance suite for the guest");
    // The same features as `cargo xtask conformance`, so neither rebuilds
    // the other's binary.
    util::run(
        util::cargo()
            .args([
                "build",
                "--quiet",
                "-p",
                "podlab-conformance",
                "--bin",
                "conformance",
            ])
            .args(conformance::cri_features()),
    )?;
    Ok(util::target().join("debug/conformance"))
}

/// One entry of the guest's initramfs: a host file, a host tree, or bytes.
enum Entry {
    Copy {
        host: PathBuf,
        at: String,
    },
    Tree {
        host: PathBuf,
        at: String,
    },
    Data {
        at: String,
        mode: u32,
        bytes: Vec<u8>,
    },
    Dir(String),
}

/// What the initramfs holds, before anything is written.
fn initramfs_plan(kernel: &Kernel, command: &str) -> anyhow::Result<Vec<Entry>> {
    let podlab = fixtures::build_podlab(false)?;
    let images = fixtures::test_image_root();
    fixtures::build_and_import(Some(&images.to_string_lossy()))?;
    let suite = build_conformance()?;
    let lib_tests = build_lib_tests()?;
    let copy = |host: &Path, at: &str| Entry::Copy {
        host: host.to_path_buf(),
        at: at.to_string(),
    };
    let data = |at: &str, mode: u32, bytes: &[u8]| Entry::Data {
        at: at.to_string(),
        mode,
        bytes: bytes.to_vec(),
    };
    let mut plan = vec![
        data("init", 0o755, INIT.as_bytes()),
        Entry::Dir("newroot".into()),
        copy(Path::new("/bin/busybox"), "bin/busybox"),
        copy(&podlab, "usr/local/bin/podlab"),
        copy(&suite, "usr/local/bin/conformance"),
        copy(&lib_tests, "guest/podlab-lib-tests"),
    ];
    let mut libs = BTreeSet::new();
    for bin in [&podlab, &suite, &lib_tests] {
        libs.extend(libraries(bin)?);
    }
    for lib in libs {
        plan.push(copy(&lib, &lib.to_string_lossy()));
    }
    for plugin in CNI_PLUGINS {
        let host = Path::new("/usr/lib/cni").join(plugin);
        if host.exists() {
            plan.push(copy(&host, &format!("usr/lib/cni/{plugin}")));
        }
    }
    plan.push(Entry::Tree {
        host: images,
        at: "var/lib/podlab".into(),
    });
    let mut names = String::new();
    for m in module_load_order(&kernel.modules, MODULES)? {
        let name = m
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        plan.push(copy(&m, &format!("modules/{name}")));
        names.push_str(&name);
        names.push('\n');
    }
    plan.push(data("modules/order", 0o644, names.as_bytes()));
    plan.push(data(
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\n",
    ));
    plan.push(data("etc/group", 0o644, b"root:x:0:\n"));
    plan.push(data(
        "etc/hosts",
        0o644,
        b"127.0.0.1\tlocalhost\n::1\tlocalhost\n",
    ));
    plan.push(data("etc/resolv.conf", 0o644, b""));
    plan.push(data("guest/run.sh", 0o755, command.as_bytes()));
    plan.push(copy(
        &util::root().join("fixtures/pods/demo.yaml"),
        "guest/demo.yaml",
    ));
    plan.push(copy(
        &util::root().join("docs/concepts/pod-cgroups.sh"),
        "guest/pod-cgroups.sh",
    ));
    Ok(plan)
}

/// A key of everything the plan would write: each entry's place and the
/// bytes it would hold. Contents, not modification times: cargo relinks
/// the same binaries when builds with other features come between, and the
/// fixture import rewrites the same image store on every run.
fn plan_key(plan: &[Entry]) -> anyhow::Result<u64> {
    use std::hash::{Hash, Hasher};
    fn file(h: &mut impl Hasher, path: &Path) -> anyhow::Result<()> {
        let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let mode = std::os::unix::fs::PermissionsExt::mode(&fs::metadata(path)?.permissions());
        (path, mode, bytes).hash(h);
        Ok(())
    }
    fn tree(h: &mut impl Hasher, dir: &Path) -> anyhow::Result<()> {
        let mut entries: Vec<_> = fs::read_dir(dir)?.flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            if fs::symlink_metadata(&p)?.is_dir() {
                tree(h, &p)?;
            } else if let Ok(target) = fs::read_link(&p) {
                (p, target).hash(h);
            } else {
                file(h, &p)?;
            }
        }
        Ok(())
    }
    // Fixed keys: the same inputs give the same key from run to run.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for e in plan {
        match e {
            Entry::Copy { host, at } => {
                at.hash(&mut h);
                file(&mut h, host)?;
            }
            Entry::Tree { host, at } => {
                at.hash(&mut h);
                tree(&mut h, host)?;
            }
            Entry::Data { at, mode, bytes } => (at, mode, bytes).hash(&mut h),
            Entry::Dir(at) => at.hash(&mut h),
        }
    }
    Ok(h.finish())
}

fn write_initramfs(plan: &[Entry], out: &Path) -> anyhow::Result<()> {
    let file = fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut a = cpio::Archive::new(std::io::BufWriter::new(file));
    for e in plan {
        match e {
            Entry::Copy { host, at } => a.copy(host, at)?,
            Entry::Tree { host, at } => a.tree(host, at)?,
            Entry::Data { at, mode, bytes } => a.file(at, *mode, bytes)?,
            Entry::Dir(at) => a.dir(at)?,
        }
    }
    a.finish()?;
    Ok(())
}

/// The guest's initramfs under `work`, written only when what it would
/// hold changed since the last one (which is then removed).
fn initramfs(work: &Path, kernel: &Kernel, command: &str) -> anyhow::Result<PathBuf> {
    let plan = initramfs_plan(kernel, command)?;
    let out = work.join(format!("initrd-{:016x}.cpio", plan_key(&plan)?));
    if out.exists() {
        util::step(&format!(
            "the guest's initramfs is unchanged ({})",
            out.display()
        ));
        return Ok(out);
    }
    util::step("writing the guest's initramfs");
    for old in fs::read_dir(work)?.flatten().map(|e| e.path()) {
        let name = old
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with("initrd") && name.ends_with(".cpio") {
            let _ = fs::remove_file(&old);
        }
    }
    let partial = out.with_extension("partial");
    write_initramfs(&plan, &partial)?;
    fs::rename(&partial, &out)?;
    Ok(out)
}

/// What the console said.
#[derive(Debug, Default, PartialEq, Eq)]
struct Seen {
    cgroup: Option<String>,
    status: Option<i32>,
}

impl Seen {
    fn read(&mut self, line: &str) {
        if let Some(rest) = line.split(CGROUP_MARK).nth(1) {
            self.cgroup = rest.split_whitespace().next().map(String::from);
        }
        if let Some(rest) = line.split(EXIT_MARK).nth(1) {
            self.status = rest.trim().parse().ok();
        }
    }
}

fn run_qemu(vmlinuz: &Path, initrd: &Path, log: &Path) -> anyhow::Result<Seen> {
    let mut child = Command::new("qemu-system-x86_64")
        .args([
            "-machine", "pc", "-accel", "tcg", "-cpu", "max", "-smp", "2", "-m", "4096",
        ])
        .args([
            "-nodefaults",
            "-display",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
        ])
        .args(["-nic", "none", "-kernel"])
        .arg(vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .args([
            "-append",
            "console=ttyS0 cgroup_no_v1=all rdinit=/init panic=-1 loglevel=4",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting qemu-system-x86_64")?;
    let stdout = child.stdout.take().context("qemu's console")?;
    let log_path = log.to_path_buf();
    let reader = std::thread::spawn(move || -> anyhow::Result<Seen> {
        let mut log = fs::File::create(&log_path)?;
        let mut seen = Seen::default();
        let mut lines = BufReader::new(stdout);
        let mut buf = Vec::new();
        while lines.read_until(b'\n', &mut buf)? > 0 {
            let line = String::from_utf8_lossy(&buf);
            let line = line.trim_end_matches(['\r', '\n']);
            println!("  | {line}");
            writeln!(log, "{line}")?;
            seen.read(line);
            buf.clear();
        }
        Ok(seen)
    });
    let started = Instant::now();
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if started.elapsed() > DEADLINE {
            // Our own qemu, by its PID.
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    reader
        .join()
        .map_err(|_| anyhow::anyhow!("the console reader panicked"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_lines_give_the_libraries_and_the_loader() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        assert_eq!(
            parse_ldd(text),
            [
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
            .map(PathBuf::from)
        );
    }

    #[test]
    fn module_dependencies_come_from_modinfo() {
        let ko = b"\x7fELF...\0license=GPL\0depends=stp,llc\0retpoline=Y\0";
        assert_eq!(module_depends(ko), ["stp", "llc"]);
        assert!(module_depends(b"\0depends=\0name=veth\0").is_empty());
        assert!(module_depends(b"no modinfo").is_empty());
    }

    #[test]
    fn dependencies_load_first_and_once() {
        let dir = tempdir("modules");
        let kernel = dir.join("kernel/net");
        fs::create_dir_all(&kernel).unwrap();
        fs::write(kernel.join("bridge.ko"), b"\0depends=stp,llc\0").unwrap();
        fs::write(kernel.join("stp.ko"), b"\0depends=llc\0").unwrap();
        fs::write(kernel.join("llc.ko"), b"\0depends=\0").unwrap();
        fs::write(kernel.join("veth.ko"), b"\0depends=\0").unwrap();
        let order = module_load_order(&dir, &["bridge", "veth"]).unwrap();
        let names: Vec<_> = order
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["llc.ko", "stp.ko", "bridge.ko", "veth.ko"]);
        let missing = module_load_order(&dir, &["overlay"]).unwrap_err();
        assert!(
            missing.to_string().contains("no module overlay"),
            "{missing}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_console_gives_the_cgroup_mode_and_the_status() {
        let mut seen = Seen::default();
        seen.read("podlab-vm: kernel 6.1.0-57-amd64, /sys/fs/cgroup is cgroup2 with controllers: cpu memory");
        seen.read("[   12.3] random kernel line");
        assert_eq!(seen.status, None);
        seen.read("podlab-vm: exit status 3\r");
        assert_eq!(
            seen,
            Seen {
                cgroup: Some("cgroup2".into()),
                status: Some(3)
            }
        );
    }

    /// A fresh directory of one test (tests run at once in one process).
    #[test]
    fn the_initramfs_key_follows_its_inputs() {
        let dir = tempdir("key");
        fs::create_dir_all(dir.join("tree/sub")).unwrap();
        fs::write(dir.join("bin"), b"one").unwrap();
        fs::write(dir.join("tree/sub/layer"), b"layer").unwrap();
        let plan = |script: &str| {
            vec![
                Entry::Copy {
                    host: dir.join("bin"),
                    at: "usr/local/bin/podlab".into(),
                },
                Entry::Tree {
                    host: dir.join("tree"),
                    at: "var/lib/podlab".into(),
                },
                Entry::Data {
                    at: "guest/run.sh".into(),
                    mode: 0o755,
                    bytes: script.as_bytes().to_vec(),
                },
            ]
        };
        let first = plan_key(&plan("exit 0")).unwrap();
        assert_eq!(
            first,
            plan_key(&plan("exit 0")).unwrap(),
            "same inputs, same key"
        );
        assert_ne!(first, plan_key(&plan("exit 1")).unwrap(), "another command");
        // Rewritten with the same bytes (a relink, a new import): same key.
        fs::write(dir.join("bin"), b"one").unwrap();
        assert_eq!(first, plan_key(&plan("exit 0")).unwrap(), "same bytes");
        fs::write(dir.join("tree/sub/layer"), b"other").unwrap();
        let changed = plan_key(&plan("exit 0")).unwrap();
        assert_ne!(first, changed, "a file in the tree changed");
        fs::write(dir.join("bin"), b"two").unwrap();
        assert_ne!(
            changed,
            plan_key(&plan("exit 0")).unwrap(),
            "the binary changed"
        );
        let out = dir.join("initrd.cpio");
        write_initramfs(&plan("exit 0"), &out).unwrap();
        assert!(fs::metadata(&out).unwrap().len() > 0);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A fresh directory of one test (tests run at once in one process).
    fn tempdir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-vm-test-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }
}
