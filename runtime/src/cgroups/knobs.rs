//! Writing limits into a cgroup's interface files and reading them back.
//!
//! Writes go through cgroups-rs' controllers, which pick the v1 or v2 file
//! name and format. Every value is then read back by the parsers here
//! (independent of the writer) and compared, because the kernel clamps some
//! values silently and cgroups-rs drops some write errors.

use std::fs;
use std::path::{Path, PathBuf};

use cgroups_rs::fs::cpu::CpuController;
use cgroups_rs::fs::error::Error as CgError;
use cgroups_rs::fs::memory::MemController;
use cgroups_rs::fs::pid::PidController;
use cgroups_rs::fs::MaxValue;

use super::limits::{shares_from_weight, weight_from_shares, Limits};
use super::{Ctl, Error, Inner, Mode};

/// v1 reports "no memory limit" as the largest page-aligned i64
/// (9223372036854771712 with 4 KiB pages); anything this close to
/// i64::MAX is that sentinel, whatever the page size.
const V1_UNLIMITED_FLOOR: i64 = i64::MAX - (1 << 20);

/// Writes `limits` into the cgroup `rel` (relative to each hierarchy) and
/// checks that the kernel holds the values.
pub(crate) fn apply(inner: &Inner, rel: &str, limits: &Limits) -> Result<(), Error> {
    if let Some(bytes) = limits.memory_bytes {
        apply_memory(inner, rel, bytes)?;
    }
    apply_cpu(inner, rel, limits)?;
    if let Some(max) = limits.pids_max {
        apply_pids(inner, rel, max)?;
    }
    Ok(())
}

/// Reads the limits of the cgroup `rel`. The CFS period is only reported
/// together with a quota; on v2 `cpu_shares` is the smallest shares value
/// giving the cgroup's `cpu.weight` (see [`shares_from_weight`]).
pub(crate) fn read(inner: &Inner, rel: &str) -> Result<Limits, Error> {
    let v2 = inner.mode == Mode::V2;
    let mem_dir = inner.mount(Ctl::Memory)?.join(rel);
    let cpu_dir = inner.mount(Ctl::Cpu)?.join(rel);
    let pids_dir = inner.mount(Ctl::Pids)?.join(rel);

    let memory_bytes = read_limit(&mem_dir.join(memory_file(v2)))?;
    let (quota, period) = read_cfs(&cpu_dir, v2)?;
    let cpu_shares = if v2 {
        shares_from_weight(read_u64(&cpu_dir.join("cpu.weight"))?)
    } else {
        read_u64(&cpu_dir.join("cpu.shares"))?
    };
    Ok(Limits {
        memory_bytes,
        cpu_quota_us: quota,
        cpu_period_us: quota.map(|_| period),
        cpu_shares: Some(cpu_shares),
        pids_max: read_limit(&pids_dir.join("pids.max"))?,
    })
}

/// How many processes the kernel's OOM killer killed in the cgroup `rel`.
pub(crate) fn oom_kill_count(inner: &Inner, rel: &str) -> Result<u64, Error> {
    let dir = inner.mount(Ctl::Memory)?.join(rel);
    let file = match inner.mode {
        Mode::V1 => dir.join("memory.oom_control"),
        Mode::V2 => dir.join("memory.events"),
    };
    let content = read_string(&file)?;
    content
        .lines()
        .find_map(|line| match line.split_once(' ') {
            Some(("oom_kill", n)) => n.trim().parse().ok(),
            _ => None,
        })
        .ok_or(Error::Parse { file, content })
}

/// What a cgroup (with its descendants) has used: CPU time so far and its
/// memory working set, the two numbers `kubectl top` shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub cpu_ns: u64,
    /// Memory in use minus the inactive page cache (what the kubelet calls
    /// the working set: what the OOM killer would not reclaim first).
    pub working_set_bytes: u64,
}

/// v1: `cpuacct.usage`, `memory.usage_in_bytes` less `total_inactive_file`;
/// v2: `cpu.stat` usage_usec, `memory.current` less `inactive_file`.
pub(crate) fn usage(inner: &Inner, rel: &str) -> Result<Usage, Error> {
    let mem = inner.mount(Ctl::Memory)?.join(rel);
    let (cpu_ns, used, inactive) = match inner.mode {
        Mode::V1 => (
            read_u64(&inner.mount(Ctl::CpuAcct)?.join(rel).join("cpuacct.usage"))?,
            read_u64(&mem.join("memory.usage_in_bytes"))?,
            stat_value(&mem.join("memory.stat"), "total_inactive_file")?,
        ),
        Mode::V2 => (
            stat_value(&mem.join("cpu.stat"), "usage_usec")?.saturating_mul(1000),
            read_u64(&mem.join("memory.current"))?,
            stat_value(&mem.join("memory.stat"), "inactive_file")?,
        ),
    };
    Ok(Usage {
        cpu_ns,
        working_set_bytes: used.saturating_sub(inactive),
    })
}

/// One `key value` line of a flat-keyed cgroup file (`memory.stat`, `cpu.stat`).
fn stat_value(file: &Path, key: &str) -> Result<u64, Error> {
    let content = read_string(file)?;
    content
        .lines()
        .find_map(|line| match line.split_once(' ') {
            Some((k, v)) if k == key => v.trim().parse().ok(),
            _ => None,
        })
        .ok_or(Error::Parse {
            file: file.to_path_buf(),
            content,
        })
}

fn apply_memory(inner: &Inner, rel: &str, bytes: i64) -> Result<(), Error> {
    let v2 = inner.mode == Mode::V2;
    let mount = inner.mount(Ctl::Memory)?;
    let dir = mount.join(rel);
    let mem = MemController::new(dir.clone(), mount.to_path_buf(), v2);
    let limit_file = require(&dir, memory_file(v2), "memory")?;

    // cgroups-rs takes -1 as "unlimited" on both versions.
    let wanted = if bytes < 0 { -1 } else { bytes };
    mem.set_limit(wanted)
        .map_err(cg("set memory limit", &dir))?;
    check_memory(&limit_file, wanted, read_limit(&limit_file)?)?;

    // Kubernetes runs containers without swap: v2 gets no swap at all, v1
    // caps memory+swap at the memory limit. The files only exist with swap
    // accounting compiled in and enabled.
    let swap_file = dir.join(if v2 {
        "memory.swap.max"
    } else {
        "memory.memsw.limit_in_bytes"
    });
    if wanted >= 0 && swap_file.exists() {
        let swap = if v2 { 0 } else { wanted };
        mem.set_memswap_limit(swap)
            .map_err(cg("set swap limit", &dir))?;
        check_memory(&swap_file, swap, read_limit(&swap_file)?)?;
    }
    Ok(())
}

fn apply_cpu(inner: &Inner, rel: &str, limits: &Limits) -> Result<(), Error> {
    let (quota, period, shares) = (limits.cpu_quota_us, limits.cpu_period_us, limits.cpu_shares);
    if quota.is_none() && period.is_none() && shares.is_none() {
        return Ok(());
    }
    let v2 = inner.mode == Mode::V2;
    let mount = inner.mount(Ctl::Cpu)?;
    let dir = mount.join(rel);
    let cpu = CpuController::new(dir.clone(), mount.to_path_buf(), v2);
    // A quota of 0 or below means "no quota": -1 on v1, "max" on v2.
    let quota = quota.map(|q| if q > 0 { q } else { -1 });

    if quota.is_some() || period.is_some() {
        if v2 {
            require(&dir, "cpu.max", "cpu")?;
            cpu.set_cfs_quota_and_period(quota, period)
                .map_err(cg("set cpu.max", &dir))?;
        } else {
            require(&dir, "cpu.cfs_period_us", "cpu")?;
            require(&dir, "cpu.cfs_quota_us", "cpu")?;
            if let Some(p) = period {
                cpu.set_cfs_period(p).map_err(cg("set CFS period", &dir))?;
            }
            if let Some(q) = quota {
                cpu.set_cfs_quota(q).map_err(cg("set CFS quota", &dir))?;
            }
        }
        let (got_quota, got_period) = read_cfs(&dir, v2)?;
        let file = dir.join(if v2 { "cpu.max" } else { "cpu.cfs_quota_us" });
        if let Some(q) = quota {
            check(&file, q.is_positive().then_some(q), got_quota)?;
        }
        if let Some(p) = period {
            let file = dir.join(if v2 { "cpu.max" } else { "cpu.cfs_period_us" });
            check(&file, p, got_period)?;
        }
    }

    if let Some(shares) = shares {
        // cgroups-rs writes the number as is, so v2 needs the weight here.
        let (name, value) = if v2 {
            ("cpu.weight", weight_from_shares(shares))
        } else {
            ("cpu.shares", shares)
        };
        let file = require(&dir, name, "cpu")?;
        cpu.set_shares(value).map_err(cg("set CPU shares", &dir))?;
        check(&file, value, read_u64(&file)?)?;
    }
    Ok(())
}

fn apply_pids(inner: &Inner, rel: &str, max: i64) -> Result<(), Error> {
    let mount = inner.mount(Ctl::Pids)?;
    let dir = mount.join(rel);
    let pids = PidController::new(dir.clone(), mount.to_path_buf(), inner.mode == Mode::V2);
    let file = require(&dir, "pids.max", "pids")?;
    let (value, wanted) = if max < 0 {
        (MaxValue::Max, None)
    } else {
        (MaxValue::Value(max), Some(max))
    };
    pids.set_pid_max(value).map_err(cg("set pids.max", &dir))?;
    check(&file, wanted, read_limit(&file)?)
}

fn memory_file(v2: bool) -> &'static str {
    if v2 {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    }
}

/// The path of `dir`/`name`, or why it is missing: the cgroup is gone, or
/// the controller is not enabled for it (v2 subtree_control) or not mounted.
fn require(dir: &Path, name: &str, controller: &'static str) -> Result<PathBuf, Error> {
    let file = dir.join(name);
    if file.exists() {
        Ok(file)
    } else if !dir.exists() {
        Err(Error::NotFound(dir.display().to_string()))
    } else {
        Err(Error::ControllerUnavailable {
            controller,
            dir: dir.to_path_buf(),
        })
    }
}

fn cg<'a>(op: &'static str, dir: &'a Path) -> impl FnOnce(CgError) -> Error + 'a {
    move |source| Error::Cgroups {
        op,
        path: dir.to_path_buf(),
        source,
    }
}

/// A value the kernel must hold, shown as it appears in the files.
trait Shown: PartialEq {
    fn show(&self) -> String;
}

impl Shown for u64 {
    fn show(&self) -> String {
        self.to_string()
    }
}

/// A limit; `None` is unlimited.
impl Shown for Option<i64> {
    fn show(&self) -> String {
        self.map_or_else(|| "max".to_owned(), |n| n.to_string())
    }
}

fn check<T: Shown>(file: &Path, wanted: T, got: T) -> Result<(), Error> {
    if wanted == got {
        Ok(())
    } else {
        Err(Error::NotApplied {
            file: file.to_path_buf(),
            wanted: wanted.show(),
            got: got.show(),
        })
    }
}

/// Like [`check`] for a byte limit (`wanted` < 0 is unlimited), which the
/// kernel stores in whole pages and so may read back rounded down.
pub(crate) fn check_memory(file: &Path, wanted: i64, got: Option<i64>) -> Result<(), Error> {
    let page = page_size();
    let ok = match (wanted, got) {
        (w, None) => w < 0,
        (w, Some(g)) => w >= 0 && (g == w || g == w / page * page),
    };
    if ok {
        Ok(())
    } else {
        check(file, (wanted >= 0).then_some(wanted), got)
    }
}

fn page_size() -> i64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .filter(|&p| p > 0)
        .map_or(4096, i64::from)
}

/// (quota, period) of the CFS bandwidth; quota `None` is unlimited.
fn read_cfs(dir: &Path, v2: bool) -> Result<(Option<i64>, u64), Error> {
    if !v2 {
        let quota = read_limit(&dir.join("cpu.cfs_quota_us"))?;
        return Ok((quota, read_u64(&dir.join("cpu.cfs_period_us"))?));
    }
    let file = dir.join("cpu.max");
    let content = read_string(&file)?;
    let parsed = match content.split_whitespace().collect::<Vec<_>>()[..] {
        [quota, period] => parse_limit(quota).zip(period.parse().ok()),
        _ => None,
    };
    parsed.ok_or(Error::Parse { file, content })
}

/// A limit file: "max", a v1 unlimited sentinel or a negative number (v1
/// cfs_quota_us -1) is `None`.
pub(crate) fn read_limit(file: &Path) -> Result<Option<i64>, Error> {
    let content = read_string(file)?;
    parse_limit(content.trim()).ok_or_else(|| Error::Parse {
        file: file.to_path_buf(),
        content: content.clone(),
    })
}

/// `Some(None)` for unlimited, `Some(Some(n))` for a limit, `None` when unparsable.
fn parse_limit(s: &str) -> Option<Option<i64>> {
    if s == "max" {
        return Some(None);
    }
    let n: i64 = s.parse().ok()?;
    Some((0..V1_UNLIMITED_FLOOR).contains(&n).then_some(n))
}

fn read_u64(file: &Path) -> Result<u64, Error> {
    let content = read_string(file)?;
    content.trim().parse().map_err(|_| Error::Parse {
        file: file.to_path_buf(),
        content,
    })
}

pub(crate) fn read_string(file: &Path) -> Result<String, Error> {
    fs::read_to_string(file).map_err(|source| Error::Io {
        path: file.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("max", Some(None))]
    #[case("67108864", Some(Some(67_108_864)))]
    #[case("9223372036854771712", Some(None))] // v1 "unlimited", 4 KiB pages
    #[case("9223372036854710272", Some(None))] // v1 "unlimited", 64 KiB pages
    #[case("-1", Some(None))] // v1 cfs_quota_us
    #[case("0", Some(Some(0)))]
    #[case("lots", None)]
    fn limits_parse(#[case] s: &str, #[case] parsed: Option<Option<i64>>) {
        assert_eq!(parse_limit(s), parsed);
    }

    #[test]
    fn memory_check_accepts_exact_or_page_rounded_values_only() {
        let f = Path::new("memory.max");
        let page = page_size();
        assert!(check_memory(f, 64 << 20, Some(64 << 20)).is_ok());
        // 100M is not page aligned: the kernel keeps 100000000 rounded down.
        assert!(check_memory(f, 100_000_000, Some(100_000_000 / page * page)).is_ok());
        assert!(check_memory(f, -1, None).is_ok());

        let err = check_memory(f, 64 << 20, Some(32 << 20)).unwrap_err();
        assert!(
            matches!(&err, Error::NotApplied { wanted, got, .. }
                if wanted == "67108864" && got == "33554432"),
            "{err}"
        );
        let err = check_memory(f, 64 << 20, None).unwrap_err();
        assert!(
            matches!(&err, Error::NotApplied { got, .. } if got == "max"),
            "left unlimited: {err}"
        );
        assert!(
            check_memory(f, -1, Some(4096)).is_err(),
            "limited instead of unlimited"
        );
    }
}
