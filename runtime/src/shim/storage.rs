//! Ephemeral storage as the kubelet accounts it: a container's writable
//! layer and logs against its `limits.ephemeral-storage`, a disk-backed
//! emptyDir against its `sizeLimit`, and the pod's total against the sum of
//! its containers' limits. A periodic scan (every
//! [`crate::config::DEFAULT_STORAGE_SCAN`], `PODLAB_STORAGE_SCAN_MS`; a
//! deadline of the event loop) measures them; a pod over a limit is
//! evicted: Failed, reason `Evicted`, the kubelet's message, an `Evicted`
//! event, its containers killed at once and not restarted.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Instant;

use crate::mutants::Mutant;
use crate::quantity;
use crate::store::Event;

use super::Shim;

/// The reason of an evicted pod.
pub const EVICTED: &str = "Evicted";

/// Bytes allocated to files under `dir` (what `du` counts), not crossing
/// into other filesystems (a tmpfs volume, a mount point).
pub fn disk_usage(dir: &Path) -> u64 {
    let Ok(top) = std::fs::symlink_metadata(dir) else {
        return 0;
    };
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.dev() != top.dev() {
                continue;
            }
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.blocks() * 512;
            }
        }
    }
    total
}

/// One measured thing and its limit, as the kubelet names them.
#[derive(Debug, PartialEq)]
pub enum Limit {
    EmptyDir { volume: String, limit: String },
    Pod { limit: String },
    Container { name: String, limit: String },
}

impl Limit {
    /// The kubelet's eviction message (with its trailing space).
    pub fn message(&self) -> String {
        match self {
            Limit::EmptyDir { volume, limit } => {
                format!("Usage of EmptyDir volume {volume:?} exceeds the limit {limit:?}. ")
            }
            Limit::Pod { limit } => {
                format!("Pod ephemeral local storage usage exceeds the total limit of containers {limit}. ")
            }
            Limit::Container { name, limit } => {
                format!("Container {name} exceeded its local ephemeral storage limit {limit:?}. ")
            }
        }
    }
}

/// The limits a pod sets: (what, its bytes).
pub fn limits(pod: &k8s_openapi::api::core::v1::Pod) -> Vec<(Limit, i64)> {
    let mut out = Vec::new();
    let Some(spec) = pod.spec.as_ref() else {
        return out;
    };
    for v in spec.volumes.iter().flatten() {
        let Some(e) = &v.empty_dir else { continue };
        if e.medium.as_deref() == Some("Memory") {
            continue; // charged to the pod's memory, not to its disk
        }
        if let Some(q) = &e.size_limit {
            if let Ok(b) = quantity::memory_bytes(&q.0) {
                let limit = Limit::EmptyDir {
                    volume: v.name.clone(),
                    limit: q.0.clone(),
                };
                out.push((limit, b));
            }
        }
    }
    let containers: Vec<_> = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .collect();
    let of = |c: &k8s_openapi::api::core::v1::Container| {
        c.resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get("ephemeral-storage"))
            .and_then(|q| quantity::memory_bytes(&q.0).ok().map(|b| (q.0.clone(), b)))
    };
    // The kubelet's pod limit: the sum of the limits its containers set
    // (one limit is enough for the pod to have one).
    let app: Vec<_> = spec.containers.iter().filter_map(of).collect();
    if !app.is_empty() {
        let total: i64 = app.iter().map(|(_, b)| b).sum();
        let limit = Limit::Pod {
            limit: quantity::format_bytes(total),
        };
        out.push((limit, total));
    }
    for c in containers {
        if let Some((q, b)) = of(c) {
            let limit = Limit::Container {
                name: c.name.clone(),
                limit: q,
            };
            out.push((limit, b));
        }
    }
    out
}

impl Shim {
    /// Whether the pod was evicted.
    pub(super) fn evicted(&self) -> bool {
        self.status.reason.as_deref() == Some(EVICTED)
    }

    /// When the first scan is due: never for a pod without storage limits.
    pub(super) fn first_storage_scan(&self) -> Option<Instant> {
        (!limits(&self.pod).is_empty()).then(|| Instant::now() + self.config.storage_scan)
    }

    /// Measures the pod's disk use against its limits, and evicts it when
    /// one is exceeded. Due every scan period.
    pub(super) fn scan_storage(&mut self, now: Instant) {
        if self.next_storage_scan.is_none_or(|t| t > now) || self.evicted() {
            return;
        }
        self.next_storage_scan = Some(now + self.config.storage_scan);
        if self.mutant == Some(Mutant::NoStorageEviction) {
            return;
        }
        let container_usage = |name: &str| {
            disk_usage(&self.dir.layer_dir(name).join("upper"))
                + disk_usage(&self.dir.log_dir(name))
        };
        let volume_usage = |name: &str| disk_usage(&super::volume_dir(&self.dir, name));
        let mut over = None;
        for (limit, bytes) in limits(&self.pod) {
            let used = match &limit {
                Limit::EmptyDir { volume, .. } => volume_usage(volume),
                Limit::Container { name, .. } => container_usage(name),
                Limit::Pod { .. } => {
                    let spec = self.pod.spec.as_ref();
                    let ctrs: u64 = self
                        .ctrs
                        .iter()
                        .map(|c| container_usage(&c.spec.name))
                        .sum();
                    let vols: u64 = spec
                        .and_then(|s| s.volumes.as_ref())
                        .into_iter()
                        .flatten()
                        .filter(|v| {
                            v.empty_dir
                                .as_ref()
                                .is_some_and(|e| e.medium.as_deref() != Some("Memory"))
                        })
                        .map(|v| volume_usage(&v.name))
                        .sum();
                    ctrs + vols
                }
            };
            if used > bytes.max(0) as u64 {
                over = Some(limit);
                break;
            }
        }
        if let Some(limit) = over {
            self.evict(&limit.message());
        }
    }

    /// The pod goes Failed with reason Evicted; its containers are killed
    /// at once (the kubelet evicts for a local storage limit with no grace
    /// period) and not restarted.
    fn evict(&mut self, message: &str) {
        self.event(Event::warning(EVICTED, "kubelet", message));
        self.status.reason = Some(EVICTED.into());
        self.status.message = Some(message.into());
        self.ctrs
            .iter_mut()
            .for_each(super::ctr::Ctr::cancel_starts);
        let now = Instant::now();
        for i in 0..self.ctrs.len() {
            if self.ctrs[i].running() {
                self.stop_container(i, now, None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: serde_json::Value) -> k8s_openapi::api::core::v1::Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn messages_are_the_kubelets() {
        let c = Limit::Container {
            name: "app".into(),
            limit: "20Mi".into(),
        };
        assert_eq!(
            c.message(),
            "Container app exceeded its local ephemeral storage limit \"20Mi\". "
        );
        let v = Limit::EmptyDir {
            volume: "scratch".into(),
            limit: "10Mi".into(),
        };
        assert_eq!(
            v.message(),
            "Usage of EmptyDir volume \"scratch\" exceeds the limit \"10Mi\". "
        );
        let p = Limit::Pod {
            limit: "30Mi".into(),
        };
        assert_eq!(
            p.message(),
            "Pod ephemeral local storage usage exceeds the total limit of containers 30Mi. "
        );
    }

    #[test]
    fn limits_come_from_containers_and_disk_empty_dirs() {
        let p = pod(serde_json::json!({"spec": {
            "containers": [
                {"name": "a", "resources": {"limits": {"ephemeral-storage": "20Mi"}}},
                {"name": "b", "resources": {"limits": {"ephemeral-storage": "10Mi"}}}
            ],
            "volumes": [
                {"name": "disk", "emptyDir": {"sizeLimit": "10Mi"}},
                {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "10Mi"}},
                {"name": "open", "emptyDir": {}}
            ]
        }}));
        let got = limits(&p);
        let kinds: Vec<String> = got.iter().map(|(l, b)| format!("{l:?} {b}")).collect();
        assert_eq!(
            kinds,
            [
                "EmptyDir { volume: \"disk\", limit: \"10Mi\" } 10485760",
                "Pod { limit: \"30Mi\" } 31457280",
                "Container { name: \"a\", limit: \"20Mi\" } 20971520",
                "Container { name: \"b\", limit: \"10Mi\" } 10485760",
            ]
        );
        // A container without a limit adds nothing to the pod's.
        let p = pod(serde_json::json!({"spec": {"containers": [
            {"name": "a", "resources": {"limits": {"ephemeral-storage": "20Mi"}}},
            {"name": "b"}
        ]}}));
        let kinds: Vec<String> = limits(&p)
            .iter()
            .map(|(l, b)| format!("{l:?} {b}"))
            .collect();
        assert_eq!(
            kinds,
            [
                "Pod { limit: \"20Mi\" } 20971520",
                "Container { name: \"a\", limit: \"20Mi\" } 20971520",
            ]
        );
        assert!(limits(&pod(
            serde_json::json!({"spec": {"containers": [{"name": "a"}]}})
        ))
        .is_empty());
    }

    #[test]
    fn disk_usage_counts_allocated_bytes() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("a/b")).unwrap();
        std::fs::write(tmp.path().join("a/b/f"), vec![1u8; 1 << 20]).unwrap();
        let used = disk_usage(tmp.path());
        assert!((1 << 20..(1 << 20) + (64 << 10)).contains(&used), "{used}");
        assert_eq!(disk_usage(&tmp.path().join("missing")), 0);
    }
}
