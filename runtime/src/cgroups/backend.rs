//! The few operations where cgroupfs is not a plain filesystem.
//!
//! In cgroupfs `mkdir` makes the interface files appear, `rmdir` removes a
//! directory full of them, writes to `cgroup.subtree_control` are commands,
//! and emptying a cgroup means killing processes. [`Kernel`] does these for
//! real; [`Fixture`] imitates them over plain directories so that the same
//! code (and cgroups-rs' writers) can run against a tree in a tempdir. Plain
//! interface-file reads and writes need no backend: they behave the same on
//! both.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::devices;
use super::Mode;
use crate::sys::BpfInsn;

/// Where the fixture backend keeps a leaf's device program (as
/// [`devices::program_text`]) instead of attaching it.
pub const FIXTURE_DEVICE_PROGRAM: &str = "podlab.device-program";

/// What the kernel does on its own in cgroupfs.
pub(crate) trait Backend: fmt::Debug + Send + Sync {
    /// Creates one cgroup directory (its parent must exist).
    fn mkdir(&self, dir: &Path) -> io::Result<()>;
    /// Removes one cgroup directory; fails with EBUSY while it has
    /// processes or child cgroups.
    fn rmdir(&self, dir: &Path) -> io::Result<()>;
    /// Writes an existing interface file; never creates one.
    fn write(&self, file: &Path, value: &str) -> io::Result<()>;
    /// Makes the processes `pids`, read from `dir`/cgroup.procs, go away.
    fn kill(&self, dir: &Path, pids: &[i32]) -> io::Result<()>;
    /// Attaches a cgroup v2 device program to the cgroup `dir`.
    fn attach_device_program(&self, dir: &Path, insns: &[BpfInsn]) -> io::Result<()>;
}

/// The real cgroupfs.
#[derive(Debug)]
pub(crate) struct Kernel;

impl Backend for Kernel {
    fn mkdir(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir(dir)
    }

    fn rmdir(&self, dir: &Path) -> io::Result<()> {
        fs::remove_dir(dir)
    }

    fn write(&self, file: &Path, value: &str) -> io::Result<()> {
        write_existing(file, value)
    }

    fn kill(&self, _dir: &Path, pids: &[i32]) -> io::Result<()> {
        let me = std::process::id();
        for &pid in pids {
            // 0 and negative pids would signal whole process groups and 1 is
            // init; never signal ourselves either (the caller then times out
            // with a clear error instead).
            if pid <= 1 || u32::try_from(pid).ok() == Some(me) {
                continue;
            }
            match kill(Pid::from_raw(pid), Signal::SIGKILL) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(e) => return Err(io::Error::from(e)),
            }
        }
        Ok(())
    }

    fn attach_device_program(&self, dir: &Path, insns: &[BpfInsn]) -> io::Result<()> {
        crate::sys::attach_device_program(dir, insns)
    }
}

/// A plain directory tree that behaves like cgroupfs (see the module doc).
/// It never signals anything: "killing" removes the pids from cgroup.procs.
#[derive(Debug)]
pub(crate) struct Fixture {
    pub(crate) mode: Mode,
    pub(crate) root: PathBuf,
}

impl Backend for Fixture {
    fn mkdir(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir(dir)?;
        let parent = dir.parent().unwrap_or(dir);
        match self.mode {
            Mode::V2 => {
                let enabled = read_or_empty(&parent.join("cgroup.subtree_control"));
                seed_v2(dir, &enabled)
            }
            Mode::V1 => {
                let with_memsw = parent.join("memory.memsw.limit_in_bytes").exists();
                seed_v1(dir, &self.v1_hierarchy(dir), with_memsw)
            }
        }
    }

    fn rmdir(&self, dir: &Path) -> io::Result<()> {
        let mut files = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                return Err(io::Error::from_raw_os_error(libc::EBUSY));
            }
            files.push(entry.path());
        }
        if !read_or_empty(&dir.join("cgroup.procs")).trim().is_empty() {
            return Err(io::Error::from_raw_os_error(libc::EBUSY));
        }
        for file in files {
            fs::remove_file(file)?;
        }
        fs::remove_dir(dir)
    }

    fn write(&self, file: &Path, value: &str) -> io::Result<()> {
        match file.file_name().and_then(|n| n.to_str()) {
            Some("cgroup.subtree_control") => self.write_subtree_control(file, value),
            Some(name @ ("devices.allow" | "devices.deny")) => {
                write_devices(file, name == "devices.allow", value)
            }
            _ => write_existing(file, value),
        }
    }

    fn attach_device_program(&self, dir: &Path, insns: &[BpfInsn]) -> io::Result<()> {
        if !dir.is_dir() {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        // With BPF_F_ALLOW_MULTI programs add up; so do the lines here.
        let file = dir.join(FIXTURE_DEVICE_PROGRAM);
        let mut text = read_or_empty(&file);
        if !text.is_empty() {
            text.push_str("--\n");
        }
        text.push_str(&devices::program_text(insns));
        fs::write(file, text)
    }

    fn kill(&self, dir: &Path, pids: &[i32]) -> io::Result<()> {
        let procs = dir.join("cgroup.procs");
        let left: Vec<String> = read_or_empty(&procs)
            .lines()
            .filter(|l| l.trim().parse::<i32>().map_or(true, |p| !pids.contains(&p)))
            .map(str::to_owned)
            .collect();
        fs::write(
            procs,
            left.iter().map(|l| format!("{l}\n")).collect::<String>(),
        )
    }
}

impl Fixture {
    /// The v1 controllers of the hierarchy `dir` is in: the name of the
    /// top directory under the root, such as `memory` or `cpu,cpuacct`.
    fn v1_hierarchy(&self, dir: &Path) -> Vec<String> {
        let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        dir.strip_prefix(&self.root)
            .ok()
            .and_then(|rel| rel.components().next())
            .map(|c| {
                c.as_os_str()
                    .to_string_lossy()
                    .split(',')
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Applies `+ctl -ctl` like the kernel: only controllers listed in
    /// cgroup.controllers (ENOENT otherwise), and below the root not while
    /// the cgroup itself holds processes (EBUSY, "no internal processes").
    fn write_subtree_control(&self, file: &Path, value: &str) -> io::Result<()> {
        let dir = file.parent().unwrap_or(file);
        let available = read_or_empty(&dir.join("cgroup.controllers"));
        let available: Vec<&str> = available.split_whitespace().collect();
        let current = fs::read_to_string(file)?;
        let mut enabled: BTreeSet<String> = current.split_whitespace().map(str::to_owned).collect();
        for token in value.split_whitespace() {
            let (enable, name) = match token.split_at_checked(1) {
                Some(("+", name)) => (true, name),
                Some(("-", name)) => (false, name),
                _ => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
            };
            if !available.contains(&name) {
                return Err(io::Error::from_raw_os_error(libc::ENOENT));
            }
            if enable {
                let has_procs = !read_or_empty(&dir.join("cgroup.procs")).trim().is_empty();
                let is_root = fs::canonicalize(dir).is_ok_and(|d| d == self.root);
                if has_procs && !is_root {
                    return Err(io::Error::from_raw_os_error(libc::EBUSY));
                }
                enabled.insert(name.to_owned());
            } else {
                enabled.remove(name);
            }
        }
        // The kernel lists controllers in its own order, the same as cgroup.controllers.
        let listed: Vec<&str> = available
            .iter()
            .copied()
            .filter(|c| enabled.contains(*c))
            .collect();
        fs::write(file, format!("{}\n", listed.join(" ")))
    }
}

/// Controllers a fresh fixture v2 root offers, in the kernel's order.
const V2_ROOT_CONTROLLERS: &str = "cpuset cpu io memory hugetlb pids rdma misc";

/// Lays out the top of a fixture tree under `root` (an existing directory):
/// for v2 the root cgroup's files; for v1 one hierarchy directory each for
/// memory, cpu, cpuacct, pids and devices (separately mounted, as on Debian hosts),
/// with swap accounting on. Tests edit the files afterwards to model other
/// hosts.
pub fn seed_fixture_root(mode: Mode, root: &Path) -> io::Result<()> {
    match mode {
        Mode::V2 => {
            fs::write(
                root.join("cgroup.controllers"),
                format!("{V2_ROOT_CONTROLLERS}\n"),
            )?;
            fs::write(root.join("cgroup.subtree_control"), "\n")?;
            fs::write(root.join("cgroup.procs"), "")?;
            Ok(())
        }
        Mode::V1 => {
            for hierarchy in ["memory", "cpu", "cpuacct", "pids", "devices"] {
                seed_fixture_v1_hierarchy(root, hierarchy)?;
            }
            Ok(())
        }
    }
}

/// Adds one v1 hierarchy directory named `name` (for example `cpu,cpuacct`
/// for co-mounted controllers) to a fixture root.
pub fn seed_fixture_v1_hierarchy(root: &Path, name: &str) -> io::Result<()> {
    let dir = root.join(name);
    fs::create_dir_all(&dir)?;
    let controllers: Vec<String> = name.split(',').map(str::to_owned).collect();
    seed_v1(&dir, &controllers, true)
}

fn seed_v2(dir: &Path, enabled: &str) -> io::Result<()> {
    let controllers: Vec<&str> = enabled.split_whitespace().collect();
    let mut files = vec![
        ("cgroup.controllers", format!("{}\n", controllers.join(" "))),
        ("cgroup.subtree_control", "\n".to_owned()),
        ("cgroup.procs", String::new()),
        ("cgroup.type", "domain\n".to_owned()),
        ("cgroup.events", "populated 0\nfrozen 0\n".to_owned()),
    ];
    if controllers.contains(&"memory") {
        files.push(("memory.max", "max\n".to_owned()));
        files.push(("memory.swap.max", "max\n".to_owned()));
        files.push(("memory.current", "0\n".to_owned()));
        files.push((
            "memory.events",
            "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n".to_owned(),
        ));
    }
    if controllers.contains(&"cpu") {
        files.push(("cpu.max", "max 100000\n".to_owned()));
        files.push(("cpu.weight", "100\n".to_owned()));
    }
    if controllers.contains(&"pids") {
        files.push(("pids.max", "max\n".to_owned()));
        files.push(("pids.current", "0\n".to_owned()));
    }
    write_all(dir, &files)
}

fn seed_v1(dir: &Path, controllers: &[String], with_memsw: bool) -> io::Result<()> {
    let has = |c: &str| controllers.iter().any(|x| x == c);
    let mut files = vec![
        ("cgroup.procs", String::new()),
        ("tasks", String::new()),
        ("notify_on_release", "0\n".to_owned()),
    ];
    if has("memory") {
        files.push(("memory.limit_in_bytes", "9223372036854771712\n".to_owned()));
        files.push(("memory.usage_in_bytes", "0\n".to_owned()));
        files.push((
            "memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n".to_owned(),
        ));
        if with_memsw {
            files.push((
                "memory.memsw.limit_in_bytes",
                "9223372036854771712\n".to_owned(),
            ));
        }
    }
    if has("cpu") {
        files.push(("cpu.cfs_quota_us", "-1\n".to_owned()));
        files.push(("cpu.cfs_period_us", "100000\n".to_owned()));
        files.push(("cpu.shares", "1024\n".to_owned()));
    }
    if has("cpuacct") {
        files.push(("cpuacct.usage", "0\n".to_owned()));
    }
    if has("pids") {
        files.push(("pids.max", "max\n".to_owned()));
        files.push(("pids.current", "0\n".to_owned()));
    }
    if has("devices") {
        // A new v1 device cgroup copies its parent's list; podlab's parents
        // all allow everything, as the root does.
        files.push(("devices.allow", String::new()));
        files.push(("devices.deny", String::new()));
        files.push(("devices.list", "a *:* rwm\n".to_owned()));
    }
    write_all(dir, &files)
}

/// The v1 devices controller over `devices.list`, for the rules podlab
/// writes: `a` replaces the whole list (allow: `a *:* rwm`; deny: empty,
/// and refused while the cgroup has children, as the kernel does); any
/// other rule is added to (allow) or taken from (deny) the list.
fn write_devices(file: &Path, allow: bool, value: &str) -> io::Result<()> {
    let dir = file.parent().unwrap_or(file);
    if !file.exists() {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    let list_file = dir.join("devices.list");
    let rule = value.trim();
    let mut list: Vec<String> = read_or_empty(&list_file)
        .lines()
        .map(str::to_owned)
        .collect();
    if rule == "a" {
        let has_children = fs::read_dir(dir)?
            .flatten()
            .any(|e| e.file_type().is_ok_and(|t| t.is_dir()));
        if !allow && has_children {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        list = if allow {
            vec!["a *:* rwm".to_owned()]
        } else {
            Vec::new()
        };
    } else {
        let fields: Vec<&str> = rule.split_whitespace().collect();
        let well_formed = matches!(fields[..], [t, n, a]
            if ["a", "b", "c"].contains(&t) && n.contains(':') && a.chars().all(|c| "rwm".contains(c)));
        if !well_formed {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        // A child may not allow what its parent denies.
        let parent = read_or_empty(&dir.parent().unwrap_or(dir).join("devices.list"));
        if allow && !parent.lines().any(|l| l == "a *:* rwm" || l == rule) {
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
        let everything = list.iter().any(|l| l == "a *:* rwm");
        if allow && !everything && !list.iter().any(|l| l == rule) {
            list.push(rule.to_owned());
        } else if !allow {
            list.retain(|l| l != rule);
        }
    }
    fs::write(
        list_file,
        list.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
}

fn write_all(dir: &Path, files: &[(&str, String)]) -> io::Result<()> {
    files
        .iter()
        .try_for_each(|(name, content)| fs::write(dir.join(name), content))
}

fn read_or_empty(file: &Path) -> String {
    fs::read_to_string(file).unwrap_or_default()
}

fn write_existing(file: &Path, value: &str) -> io::Result<()> {
    use std::io::Write;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(file)?;
    f.write_all(value.as_bytes())
}
