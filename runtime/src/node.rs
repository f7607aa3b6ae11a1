//! What this node has for pods, as the kubelet reports it: the capacity
//! (every CPU this process may run on, `MemTotal` of /proc/meminfo, the
//! data root's filesystem), minus a reserve for the system
//! (`PODLAB_RESERVED_CPU`, `PODLAB_RESERVED_MEMORY`,
//! `PODLAB_RESERVED_EPHEMERAL_STORAGE`, quantities such as `500m` and `1Gi`;
//! none by default), is allocatable. The scheduler admits pods against it,
//! the downward API defaults limits to it, the API server shows it.

use crate::quantity;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{name}={value:?}")]
    Reserve {
        name: &'static str,
        value: String,
        source: quantity::Error,
    },
}

/// CPU (millicores), memory and ephemeral storage (bytes), as requested or
/// allocatable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpu_millis: i64,
    pub memory_bytes: i64,
    pub ephemeral_bytes: i64,
}

/// Both amounts together.
impl std::ops::Add for Resources {
    type Output = Resources;

    fn add(self, o: Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis + o.cpu_millis,
            memory_bytes: self.memory_bytes + o.memory_bytes,
            ephemeral_bytes: self.ephemeral_bytes + o.ephemeral_bytes,
        }
    }
}

impl Resources {
    /// The larger of each amount.
    pub fn max(self, o: Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.max(o.cpu_millis),
            memory_bytes: self.memory_bytes.max(o.memory_bytes),
            ephemeral_bytes: self.ephemeral_bytes.max(o.ephemeral_bytes),
        }
    }
}

/// The size of the filesystem holding `data_root`: the node's ephemeral
/// storage capacity (the kubelet's nodefs), 0 when it cannot be read.
pub fn ephemeral_capacity(data_root: &std::path::Path) -> i64 {
    nix::sys::statvfs::statvfs(data_root)
        .map(|s| (s.blocks() as i64).saturating_mul(s.fragment_size() as i64))
        .unwrap_or(0)
}

/// What the host has: every CPU this process may run on, all its memory,
/// and the filesystem of the data root.
pub fn capacity_at(data_root: &std::path::Path) -> Resources {
    Resources {
        ephemeral_bytes: ephemeral_capacity(data_root),
        ..capacity()
    }
}

/// What the host has: every CPU this process may run on, and all its memory.
pub fn capacity() -> Resources {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get() as i64)
        .unwrap_or(1);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| mem_total(&m))
        .unwrap_or(0);
    Resources {
        cpu_millis: cpus * 1000,
        memory_bytes: memory,
        ephemeral_bytes: 0,
    }
}

/// `MemTotal` of /proc/meminfo, in bytes.
fn mem_total(meminfo: &str) -> Option<i64> {
    meminfo.lines().find_map(|l| {
        let rest = l.strip_prefix("MemTotal:")?;
        let kib: i64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kib * 1024)
    })
}

/// The system reserve from `PODLAB_RESERVED_CPU` and `PODLAB_RESERVED_MEMORY`.
pub fn reserved() -> Result<Resources, Error> {
    let read =
        |name: &'static str, parse: fn(&str) -> Result<i64, quantity::Error>| match std::env::var(
            name,
        ) {
            Ok(v) if !v.trim().is_empty() => parse(v.trim()).map_err(|source| Error::Reserve {
                name,
                value: v,
                source,
            }),
            _ => Ok(0),
        };
    Ok(Resources {
        cpu_millis: read("PODLAB_RESERVED_CPU", quantity::cpu_millis)?,
        memory_bytes: read("PODLAB_RESERVED_MEMORY", quantity::memory_bytes)?,
        ephemeral_bytes: read("PODLAB_RESERVED_EPHEMERAL_STORAGE", quantity::memory_bytes)?,
    })
}

/// What pods may request in total: capacity minus the reserve.
pub fn allocatable(data_root: &std::path::Path) -> Result<Resources, Error> {
    let (cap, res) = (capacity_at(data_root), reserved()?);
    Ok(Resources {
        cpu_millis: (cap.cpu_millis - res.cpu_millis).max(0),
        memory_bytes: (cap.memory_bytes - res.memory_bytes).max(0),
        ephemeral_bytes: (cap.ephemeral_bytes - res.ephemeral_bytes).max(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_total_is_read_in_bytes() {
        let m = "MemTotal:       24684312 kB\nMemFree:         1000 kB\n";
        assert_eq!(mem_total(m), Some(24684312 * 1024));
        assert_eq!(mem_total("nothing"), None);
        let cap = capacity();
        assert!(cap.cpu_millis >= 1000 && cap.memory_bytes > 0, "{cap:?}");
        let tmp = tempfile::tempdir().unwrap();
        assert!(capacity_at(tmp.path()).ephemeral_bytes > 0);
    }
}
