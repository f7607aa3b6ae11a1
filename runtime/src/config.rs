//! Where podlab keeps its state and images, and the knobs tests turn.

use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_ROOT: &str = "/run/podlab";
pub const DEFAULT_IMAGE_ROOT: &str = "/var/lib/podlab";
/// Where `Localhost` seccomp profiles are looked up (the kubelet's
/// `<root-dir>/seccomp`).
pub const DEFAULT_SECCOMP_ROOT: &str = "/var/lib/podlab/seccomp";
/// Where `certs.d/<registry>/hosts.toml` live unless PODLAB_REGISTRY_CONFIG says.
pub const DEFAULT_REGISTRY_CONFIG: &str = "/etc/podlab";
/// Where the bytes pods write go (writable layers, emptyDirs, logs): on
/// disk next to the images, not on the small tmpfs `/run` usually is.
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/podlab/data";
/// Per-container pids limit when the manifest sets none (kubelet's
/// podPidsLimit is usually set in the same range).
pub const DEFAULT_PIDS_LIMIT: i64 = 1024;
/// The kubelet's initial crash back-off.
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(10);
/// How often a shim measures its pod's ephemeral storage (the kubelet's
/// housekeeping period is 10 s as well).
pub const DEFAULT_STORAGE_SCAN: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct Config {
    /// State root (`--root`, `PODLAB_ROOT`).
    pub root: PathBuf,
    /// Image store root (`--image-root`, `PODLAB_IMAGE_ROOT`).
    pub image_root: PathBuf,
    /// Data root (`--data-root`, `PODLAB_DATA_ROOT`): the pods' writable
    /// layers, disk-backed emptyDirs and container logs.
    pub data_root: PathBuf,
    /// `PODLAB_PIDS_LIMIT`.
    pub default_pids: i64,
    /// `PODLAB_BACKOFF_BASE_MS`: the first restart delay, so tests stay fast.
    pub backoff_base: Duration,
    /// `PODLAB_BACKOFF_MAX_MS`: the longest back-off (kubelet: 5 minutes);
    /// a container that ran twice as long since its last restart starts
    /// over without back-off.
    pub backoff_max: Duration,
    /// `--cni-conf-dir` / `PODLAB_CNI_CONF_DIR`: the user's own CNI network
    /// (first `.conflist` in the directory) instead of podlab's default.
    pub cni_conf_dir: Option<PathBuf>,
    /// `PODLAB_SUBNET`: the default network's pod subnet.
    pub subnet: String,
    /// `--seccomp-root` / `PODLAB_SECCOMP_ROOT`: `Localhost` seccomp
    /// profiles, by their relative `localhostProfile` path.
    pub seccomp_root: PathBuf,
    /// `PODLAB_LOG_MAX_SIZE` (a quantity, default 10Mi): a container log is
    /// rotated at this size (the kubelet's `containerLogMaxSize`).
    pub log_max_size: u64,
    /// `PODLAB_LOG_MAX_FILES` (default 5): log files kept per container
    /// start, the current one included (`containerLogMaxFiles`).
    pub log_max_files: usize,
    /// `PODLAB_STORAGE_SCAN_MS`: the period of the shim's ephemeral-storage
    /// scan (default [`DEFAULT_STORAGE_SCAN`]).
    pub storage_scan: Duration,
    /// `PODLAB_REGISTRY_CONFIG` (default `/etc/podlab`): holds
    /// `certs.d/<registry>/hosts.toml` for mirrors, CAs and plain-HTTP
    /// registries, laid out as containerd's config_path.
    pub registry_config: PathBuf,
}

impl Config {
    pub fn new(root: PathBuf, image_root: PathBuf, data_root: PathBuf) -> Config {
        let env_num = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<i64>().ok());
        Config {
            root: absolute(root),
            image_root: absolute(image_root),
            data_root: absolute(data_root),
            default_pids: env_num("PODLAB_PIDS_LIMIT").unwrap_or(DEFAULT_PIDS_LIMIT),
            backoff_base: env_num("PODLAB_BACKOFF_BASE_MS")
                .map(|ms| Duration::from_millis(ms.max(0) as u64))
                .unwrap_or(DEFAULT_BACKOFF),
            backoff_max: env_num("PODLAB_BACKOFF_MAX_MS")
                .map(|ms| Duration::from_millis(ms.max(0) as u64))
                .unwrap_or(crate::lifecycle::MAX_BACKOFF),
            cni_conf_dir: std::env::var_os("PODLAB_CNI_CONF_DIR").map(PathBuf::from),
            subnet: std::env::var("PODLAB_SUBNET")
                .unwrap_or_else(|_| crate::cni::DEFAULT_SUBNET.into()),
            seccomp_root: std::env::var_os("PODLAB_SECCOMP_ROOT")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_SECCOMP_ROOT)),
            log_max_size: std::env::var("PODLAB_LOG_MAX_SIZE")
                .ok()
                .and_then(|v| crate::quantity::memory_bytes(&v).ok())
                .filter(|&n| n > 0)
                .map_or(crate::logs::DEFAULT_MAX_SIZE, |n| n as u64),
            log_max_files: env_num("PODLAB_LOG_MAX_FILES")
                .filter(|&n| n > 0)
                .map_or(crate::logs::DEFAULT_MAX_FILES, |n| n as usize),
            storage_scan: env_num("PODLAB_STORAGE_SCAN_MS")
                .filter(|&ms| ms > 0)
                .map_or(DEFAULT_STORAGE_SCAN, |ms| Duration::from_millis(ms as u64)),
            registry_config: std::env::var_os("PODLAB_REGISTRY_CONFIG")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_REGISTRY_CONFIG)),
        }
    }

    /// Registry settings for pulls: hosts.toml files and the Docker config.
    pub fn pull_options(&self) -> crate::image::PullOptions {
        crate::image::PullOptions {
            registry_config: self.registry_config.clone(),
            docker_config: crate::image::docker_config_path(),
            secret_configs: Vec::new(),
        }
    }
}

/// The path with `..` and symlinks resolved when it exists, so that mount
/// points under it compare equal to what /proc/self/mountinfo reports.
fn absolute(path: PathBuf) -> PathBuf {
    let _ = std::fs::create_dir_all(&path);
    std::fs::canonicalize(&path).unwrap_or(path)
}

#[cfg(test)]
mod tests {
    /// xtask declares podlab's default as a capability from testkit's copy
    /// (it does not link podlab): the two must not drift apart.
    #[test]
    fn testkit_knows_the_default_pids_limit() {
        assert_eq!(
            super::DEFAULT_PIDS_LIMIT,
            podlab_testkit::podlab::DEFAULT_PIDS_LIMIT
        );
    }
}
