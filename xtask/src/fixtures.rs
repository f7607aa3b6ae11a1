//! `cargo xtask fixtures`: the static probe and two real OCI images built
//! from Debian's busybox-static, imported into podlab's image store.
//!
//! - `podlab.local/busybox:latest`: busybox and its applets, PATH set, `sh`
//!   as the default command (like the public busybox image);
//! - `podlab.local/probe:latest`: the same layer plus `/usr/local/bin/probe`;
//! - `podlab.local/pause:latest`: the probe layer alone, running `probe
//!   pause`: the sandbox image of the private containerd the CRI conformance
//!   run starts (podlab has its own pause and does not import it);
//! - `podlab.local/entrypoint:latest`: the probe image with an Entrypoint
//!   that writes its argv to /tmp/argv and sleeps, a Cmd, and Env of its
//!   own (the CMD tests);
//! - `podlab.local/nonroot:latest`: the probe image running as user
//!   4321:4321 in /home/app (the IMAGE tests);
//! - `podlab.local/named:latest`: the probe image whose User is the name
//!   `app`, uid 5678 and group 8765 in its own /etc/passwd, also a member
//!   of group 9753 in its /etc/group (the SEC tests).

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use podlab_oci::{layout, ImageConfig};
use podlab_testkit::registry::{Options, TestRegistry};

use crate::{doctor, util};

pub const BUSYBOX_IMAGE: &str = "podlab.local/busybox:latest";
pub const PROBE_IMAGE: &str = "podlab.local/probe:latest";
pub const PAUSE_IMAGE: &str = "podlab.local/pause:latest";
pub const ENTRYPOINT_IMAGE: &str = "podlab.local/entrypoint:latest";
pub const NONROOT_IMAGE: &str = "podlab.local/nonroot:latest";
pub const NAMED_IMAGE: &str = "podlab.local/named:latest";
/// Every image the suite's pods use, for runtimes that import them.
pub const SUITE_IMAGES: [&str; 5] = [
    PROBE_IMAGE,
    BUSYBOX_IMAGE,
    ENTRYPOINT_IMAGE,
    NONROOT_IMAGE,
    NAMED_IMAGE,
];
const TARGET: &str = "x86_64-unknown-linux-gnu";

/// `cargo xtask fixtures [--image-root DIR]`
#[derive(clap::Args, Debug)]
pub struct Args {
    /// podlab's image store to import into (default: podlab's own)
    #[arg(long, value_name = "DIR")]
    image_root: Option<String>,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    build_and_import(args.image_root.as_deref())
}

/// Path of the static probe binary.
pub fn probe_path() -> PathBuf {
    util::target()
        .join("probe")
        .join(TARGET)
        .join("release/probe")
}

/// Builds the probe as a static binary in its own target dir: a static-pie
/// runs in an image that has no libc (`--target` keeps proc-macros dynamic).
pub fn build_probe() -> anyhow::Result<PathBuf> {
    util::step("building the static probe (fixtures/probe)");
    util::run(
        util::cargo()
            .env(
                "RUSTFLAGS",
                "-C target-feature=+crt-static -C strip=symbols",
            )
            .args([
                "build",
                "--release",
                "--quiet",
                "-p",
                "podlab-probe",
                "--target",
                TARGET,
                "--target-dir",
            ])
            .arg(util::target().join("probe")),
    )?;
    Ok(probe_path())
}

/// The image store the integration tests, the suite, the labs and the VM
/// use, kept apart from the user's.
pub fn test_image_root() -> PathBuf {
    util::target().join("podlab-test/images")
}

/// Builds the podlab binary (debug unless `release`) and returns its path.
pub fn build_podlab(release: bool) -> anyhow::Result<PathBuf> {
    util::step(&format!(
        "building podlab ({})",
        if release { "release" } else { "debug" }
    ));
    let mut cmd = util::cargo();
    cmd.args(["build", "--quiet", "-p", "podlab", "--bin", "podlab"]);
    if release {
        cmd.arg("--release");
    }
    util::run(&mut cmd)?;
    Ok(util::target()
        .join(if release { "release" } else { "debug" })
        .join("podlab"))
}

/// The image roots this process already built and imported the fixtures
/// into: `cargo xtask test` runs the suite five times, and its sources do
/// not change in between.
static IMPORTED: std::sync::Mutex<Vec<Option<String>>> = std::sync::Mutex::new(Vec::new());

pub fn build_and_import(image_root: Option<&str>) -> anyhow::Result<()> {
    let key = image_root.map(String::from);
    if IMPORTED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&key)
    {
        return Ok(());
    }
    build_and_import_now(image_root)?;
    IMPORTED.lock().unwrap_or_else(|e| e.into_inner()).push(key);
    Ok(())
}

fn build_and_import_now(image_root: Option<&str>) -> anyhow::Result<()> {
    doctor::install(&[doctor::Need::Pods])?;
    let probe = build_probe()?;
    let podlab = build_podlab(false)?;
    let work = util::target().join("fixtures");
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work)?;

    util::step("building the fixture images from /bin/busybox");
    let rootfs = work.join("busybox-rootfs");
    busybox_rootfs(&rootfs)?;
    let base = layout::tar_gz_dir(&rootfs)?;
    let probe_dir = work.join("probe-layer");
    let bin = probe_dir.join("usr/local/bin");
    fs::create_dir_all(&bin)?;
    fs::copy(&probe, bin.join("probe")).with_context(|| format!("copy {}", probe.display()))?;
    let probe_layer = layout::tar_gz_dir(&probe_dir)?;
    let path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string();
    let config = ImageConfig {
        env: vec![path.clone()],
        cmd: vec!["sh".into()],
        ..Default::default()
    };
    // What the CMD tests compare argv and env with (conformance/src/tests/cmd.rs).
    let entrypoint = ImageConfig {
        env: vec![
            path.clone(),
            "IMAGE_ONLY=from-image".into(),
            "SHARED=from-image".into(),
        ],
        entrypoint: vec![
            "/bin/sh".into(),
            "-c".into(),
            r#"printf '%s\n' "$0" "$@" > /tmp/argv; exec sleep 3600"#.into(),
            "image-entrypoint".into(),
        ],
        cmd: vec!["image-cmd-1".into(), "image cmd 2".into()],
        ..Default::default()
    };
    let app_dir = work.join("app-layer");
    fs::create_dir_all(app_dir.join("home/app"))?;
    let app_layer = layout::tar_gz_dir(&app_dir)?;
    // The user `app` exists only in this layer's files, so a runtime that
    // runs it must read the image's /etc/passwd (and /etc/group).
    let named_dir = work.join("named-layer");
    fs::create_dir_all(named_dir.join("etc"))?;
    fs::write(
        named_dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:5678:8765:app:/home/app:/bin/sh\n\
         nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )?;
    fs::write(
        named_dir.join("etc/group"),
        "root:x:0:\napp:x:8765:\nextra:x:9753:app\nnogroup:x:65534:\n",
    )?;
    let named_layer = layout::tar_gz_dir(&named_dir)?;
    let named = ImageConfig {
        env: vec![path.clone()],
        cmd: vec!["sleep".into(), "3600".into()],
        user: Some("app".into()),
        ..Default::default()
    };
    let nonroot = ImageConfig {
        env: vec![path],
        cmd: vec!["sleep".into(), "3600".into()],
        user: Some("4321:4321".into()),
        working_dir: Some("/home/app".into()),
        ..Default::default()
    };
    let probe_layers = vec![base.clone(), probe_layer.clone()];
    for (reference, layers, config) in [
        (BUSYBOX_IMAGE, vec![base.clone()], &config),
        (PROBE_IMAGE, probe_layers.clone(), &config),
        (ENTRYPOINT_IMAGE, probe_layers.clone(), &entrypoint),
        (
            NAMED_IMAGE,
            [probe_layers.clone(), vec![named_layer]].concat(),
            &named,
        ),
        (
            NONROOT_IMAGE,
            [probe_layers, vec![app_layer]].concat(),
            &nonroot,
        ),
    ] {
        let dir = layout_dir(reference);
        layout::write_layout(&dir, reference, &layers, config)?;
        let mut cmd = Command::new(&podlab);
        if let Some(r) = image_root {
            cmd.arg("--image-root").arg(r);
        }
        print!("{}", util::output(cmd.args(["image", "import"]).arg(&dir))?);
    }
    let pause = ImageConfig {
        // youki refuses to start a process whose environment has no PATH,
        // even with an absolute command (runc and crun do not care).
        env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
        cmd: vec!["/usr/local/bin/probe".into(), "pause".into()],
        ..Default::default()
    };
    layout::write_layout(
        &layout_dir(PAUSE_IMAGE),
        PAUSE_IMAGE,
        &[probe_layer],
        &pause,
    )?;
    Ok(())
}

/// The shared registry of the pull tests (`runtime/tests/pull.rs`): a
/// docker-registry on a free loopback port with its files under target/,
/// holding the busybox and probe fixtures as `podlab/busybox:latest` and
/// `podlab/probe:latest`. Stopped (by PID) when the value is dropped.
pub fn start_registry() -> anyhow::Result<TestRegistry> {
    doctor::install(&[doctor::Need::Registry])?;
    let dir = util::target().join("podlab-test/registry");
    let _ = fs::remove_dir_all(&dir);
    let registry = TestRegistry::start(&dir, Options::default()).map_err(anyhow::Error::msg)?;
    for reference in [BUSYBOX_IMAGE, PROBE_IMAGE] {
        let name = reference.replacen("podlab.local/", "podlab/", 1);
        registry
            .push(&layout_dir(reference), reference, &name, false, None)
            .map_err(anyhow::Error::msg)?;
    }
    // The conformance suite's repository: both images side by side, so
    // the suite can tag either under names of its own.
    for (reference, name) in SUITE_REGISTRY_IMAGES {
        registry
            .push(&layout_dir(reference), reference, name, false, None)
            .map_err(anyhow::Error::msg)?;
    }
    Ok(registry)
}

/// The fixture images in the test registry under the names the suite's
/// image tests tag from (podlab_conformance::registry; a test checks).
pub const SUITE_REGISTRY_IMAGES: [(&str, &str); 2] = [
    (BUSYBOX_IMAGE, "podlab/conformance:busybox"),
    (PROBE_IMAGE, "podlab/conformance:probe"),
];

/// Where the OCI layout of a fixture image is written.
pub fn layout_dir(reference: &str) -> PathBuf {
    util::target()
        .join("fixtures")
        .join(reference.replace(['/', ':'], "_"))
}

/// A busybox root: the static binary, one symlink per applet at the path
/// busybox itself lists, and the few files every image has.
fn busybox_rootfs(root: &Path) -> anyhow::Result<()> {
    for d in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "usr/local/bin",
        "etc",
        "root",
        "home",
        "var",
        "proc",
        "sys",
        "dev",
    ] {
        fs::create_dir_all(root.join(d))?;
    }
    for d in ["tmp", "var/tmp"] {
        fs::create_dir_all(root.join(d))?;
        fs::set_permissions(root.join(d), fs::Permissions::from_mode(0o1777))?;
    }
    fs::copy("/bin/busybox", root.join("bin/busybox")).context("copy /bin/busybox")?;
    let list = util::output(Command::new("/bin/busybox").arg("--list-full"))?;
    for applet in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let link = root.join(applet);
        if applet == "bin/busybox" || link.exists() {
            continue;
        }
        if let Some(parent) = link.parent() {
            fs::create_dir_all(parent)?;
        }
        symlink("/bin/busybox", &link).with_context(|| format!("link {applet}"))?;
    }
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )?;
    fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names pushed are the ones the suite's image tests tag from.
    #[test]
    fn the_registry_holds_the_suites_images_where_it_looks() {
        use podlab_conformance::registry::{BUSYBOX_TAG, PROBE_TAG, REPOSITORY};
        assert_eq!(
            SUITE_REGISTRY_IMAGES,
            [
                (
                    BUSYBOX_IMAGE,
                    format!("{REPOSITORY}:{BUSYBOX_TAG}").as_str()
                ),
                (PROBE_IMAGE, format!("{REPOSITORY}:{PROBE_TAG}").as_str()),
            ]
        );
    }
}
