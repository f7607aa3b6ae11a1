//! Shared harness for the integration tests: each test gets its own state
//! root (isolated stores side by side), the fixture image store prepared by
//! `cargo xtask fixtures`, and pods that are deleted even when it fails.

#![allow(dead_code)]

pub mod serve;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use podlab_testkit::host;

// Each test binary uses its own part of the kit.
#[allow(unused_imports)]
pub use podlab_testkit::host::{alive, link_exists, process_state, veths_of};
#[allow(unused_imports)]
pub use podlab_testkit::manifest::{ContainerSpec, PodManifest};

pub const BUSYBOX: &str = "podlab.local/busybox:latest";
pub const PROBE: &str = "podlab.local/probe:latest";

/// Why this test cannot run here, or None when it can.
pub fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some(
            "needs root (namespaces, cgroups, mounts); run `sudo cargo xtask test`".into(),
        );
    }
    // Root without the fixtures is a broken setup, not a reason to skip.
    let images = image_root();
    assert!(
        images.join("oci/index.json").exists(),
        "no fixture images in {} (PODLAB_IMAGE_ROOT); run `cargo xtask fixtures --image-root {}` or `cargo xtask test`",
        images.display(),
        images.display()
    );
    None
}

/// Skips the calling test, recorded by name with its reason (see
/// `podlab_testkit::skip::skipped`), when it cannot run.
#[macro_export]
macro_rules! require_root {
    () => {
        if let Some(reason) = common::skip_reason() {
            podlab_testkit::skip::skipped(&reason);
            return;
        }
    };
}

pub fn image_root() -> PathBuf {
    std::env::var_os("PODLAB_IMAGE_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/podlab-test/images")
        })
}

pub fn unique(prefix: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{:x}{:x}", std::process::id() & 0xfff, n & 0xfffff)
}

/// One isolated podlab state root and its data root.
pub struct Podlab {
    pub root: tempfile::TempDir,
    /// The data root (`--data-root`), next to the state root and named after
    /// it (see [`data_root_of`]); removed on drop.
    pub data: PathBuf,
    /// The image store (`--image-root`): the fixtures' unless a test
    /// needs its own (see [`Podlab::with_images`]).
    pub images: PathBuf,
}

/// The data root the harness gives a state root: `podlab-state-X` has
/// `podlab-data-X` beside it, so a pod's two directories are found from one.
pub fn data_root_of(state_root: &Path) -> PathBuf {
    let name = state_root
        .file_name()
        .map(|n| {
            n.to_string_lossy()
                .replacen("podlab-state-", "podlab-data-", 1)
        })
        .unwrap_or_default();
    state_root.with_file_name(name)
}

/// A pod's directory under the data root, from its directory in the state
/// root (`<root>/pods/<ns>/<name>`).
pub fn data_dir_of(pod_dir: &Path) -> Option<PathBuf> {
    let name = pod_dir.file_name()?;
    let ns_dir = pod_dir.parent()?;
    let root = ns_dir.parent()?.parent()?;
    Some(
        data_root_of(root)
            .join("pods")
            .join(ns_dir.file_name()?)
            .join(name),
    )
}

impl Podlab {
    pub fn new() -> Podlab {
        let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/podlab-test");
        std::fs::create_dir_all(&base).expect("test dir");
        let root = tempfile::Builder::new()
            .prefix("podlab-state-")
            .tempdir_in(base)
            .expect("tempdir");
        let data = data_root_of(root.path());
        std::fs::create_dir_all(&data).expect("data root");
        Podlab {
            root,
            data,
            images: image_root(),
        }
    }

    /// A state root whose pods use the image store at `images` (e.g. an
    /// empty one, for images that must come from a registry).
    pub fn with_images(images: &Path) -> Podlab {
        let mut p = Podlab::new();
        p.images = images.to_path_buf();
        p
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("podlab").expect("podlab binary");
        c.arg("--root")
            .arg(self.root.path())
            .arg("--image-root")
            .arg(&self.images)
            .arg("--data-root")
            .arg(&self.data);
        c.env("PODLAB_BACKOFF_BASE_MS", "200");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run podlab")
    }

    pub fn apply(&self, manifest: &str) -> Output {
        self.cmd()
            .args(["apply", "-f", "-", "--wait-ready=60s"])
            .write_stdin(manifest.to_string())
            .output()
            .expect("apply")
    }

    /// Applies a manifest that must succeed, and returns a guard that deletes the pod.
    pub fn pod(&self, name: &str, manifest: &str) -> PodGuard<'_> {
        let out = self.apply(manifest);
        let guard = PodGuard {
            podlab: self,
            name: name.to_string(),
        };
        assert!(
            out.status.success(),
            "apply {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        guard
    }

    pub fn exec(&self, pod: &str, container: &str, argv: &[&str]) -> Output {
        let mut args = vec!["exec", pod, "-c", container, "--"];
        args.extend_from_slice(argv);
        self.run(&args)
    }

    /// stdout of a command that must succeed.
    pub fn exec_ok(&self, pod: &str, container: &str, argv: &[&str]) -> String {
        let out = self.exec(pod, container, argv);
        assert!(
            out.status.success(),
            "exec {pod}/{container} {argv:?}: {:?}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn probe(&self, pod: &str, container: &str, argv: &[&str]) -> serde_json::Value {
        let mut full = vec!["probe"];
        full.extend_from_slice(argv);
        let out = self.exec_ok(pod, container, &full);
        podlab_testkit::probe::parse(0, &out)
            .unwrap_or_else(|why| panic!("probe {argv:?} {why}: {out:?}"))
    }

    pub fn pod_json(&self, name: &str) -> serde_json::Value {
        let out = self.run(&["get", "pod", name, "-o", "json"]);
        assert!(
            out.status.success(),
            "get {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("pod json")
    }

    pub fn uid(&self, name: &str) -> String {
        self.pod_json(name)["metadata"]["uid"]
            .as_str()
            .expect("uid")
            .to_string()
    }

    pub fn runtime_state(&self, name: &str) -> serde_json::Value {
        let path = self
            .root
            .path()
            .join("pods/default")
            .join(name)
            .join("runtime.json");
        serde_json::from_slice(&std::fs::read(&path).expect("runtime.json")).expect("runtime json")
    }

    pub fn pod_dir(&self, name: &str) -> PathBuf {
        self.root.path().join("pods/default").join(name)
    }

    /// The pod's directory under the data root (layers, volumes, logs).
    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.data.join("pods/default").join(name)
    }
}

impl Drop for Podlab {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

pub struct PodGuard<'a> {
    pub podlab: &'a Podlab,
    pub name: String,
}

impl Drop for PodGuard<'_> {
    fn drop(&mut self) {
        let _ = self.podlab.run(&[
            "delete",
            "pod",
            &self.name,
            "--grace-period",
            "0",
            "--ignore-not-found",
        ]);
    }
}

/// Polls `f` until it returns Some or the deadline passes.
pub fn eventually<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A pod of one sleeping container per name, all of `image`: the
/// commonest test pod. Build anything else with [`PodManifest`].
pub fn sleepers(name: &str, image: &str, containers: &[&str]) -> String {
    containers
        .iter()
        .fold(PodManifest::named(name), |m, c| {
            m.container(ContainerSpec::of(c, image))
        })
        .to_yaml()
}

/// Everything podlab may hold on the host for a pod uid; empty means clean.
pub fn leftovers(uid: &str, pod_dir: &Path) -> Vec<String> {
    let mut left = host::named_leftovers(
        Path::new("/run/netns"),
        Path::new("/sys/fs/cgroup"),
        &[uid.to_string()],
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let dir = pod_dir.to_string_lossy();
    for line in mounts.lines() {
        if line.contains(&*dir) || line.contains(uid) {
            left.push(format!("mount {line}"));
        }
    }
    if pod_dir.exists() {
        left.push(format!("record {}", pod_dir.display()));
    }
    if let Some(data) = data_dir_of(pod_dir) {
        let name = data.to_string_lossy();
        for line in mounts.lines().filter(|l| l.contains(&*name)) {
            left.push(format!("mount {line}"));
        }
        if data.exists() {
            left.push(format!("data {}", data.display()));
        }
    }
    left
}

/// `podlab` with this test's roots, as a std Command that can be spawned
/// and killed (assert_cmd only runs to completion).
pub fn spawnable(p: &Podlab) -> std::process::Command {
    let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("podlab"));
    c.arg("--root")
        .arg(p.root.path())
        .arg("--image-root")
        .arg(image_root())
        .arg("--data-root")
        .arg(&p.data)
        .env("PODLAB_BACKOFF_BASE_MS", "200");
    c
}

/// Live processes whose command line names `needle` (a test's state root:
/// the CLI and the shims it started).
pub fn processes_naming(needle: &Path) -> Vec<String> {
    host::processes_naming(Path::new("/proc"), &needle.to_string_lossy())
}

/// IPAM leases of the host-local plugin held for a pod uid.
pub fn leases_of(uid: &str) -> Vec<String> {
    host::leases_of(Path::new(host::CNI_RUN_DIR), uid)
}

/// The CNI result cache entries of a pod uid.
pub fn cni_cache_of(uid: &str) -> Vec<String> {
    host::cni_cache_of(Path::new(host::CNI_RUN_DIR), uid)
}
