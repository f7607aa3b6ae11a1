//! `cargo xtask bench`'s pull figures (issue 24): a multi-layer image of
//! about 50 MB in a docker-registry on loopback, pulled by podlab and by
//! podman from the same registry (interleaved runs, each into an empty
//! store), and ten pods of one new image started at once (one pull; the
//! other nine wait on its lock and find the blobs stored).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use podlab::image::testregistry::{Options, TestRegistry};
use podlab::image::{layout, ImageConfig};

use crate::{doctor, util};

/// Layers of incompressible bytes, so the transfer is what it says.
const LAYERS: usize = 5;
const LAYER_BYTES: usize = 10 << 20;
const IMAGE: &str = "bench/big:1";
const PODS: usize = 10;

/// The figures as bench.json's `pull` object.
pub fn figures(podlab: &Path, work: &Path, runs: usize) -> anyhow::Result<serde_json::Value> {
    doctor::install(&[doctor::Need::Registry, doctor::Need::Podman])?;
    let dir = work.join("pull");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    util::step(&format!(
        "pull: a {LAYERS}-layer image of {} MiB into a loopback registry",
        (LAYERS * LAYER_BYTES) >> 20
    ));
    let layout_dir = dir.join("layout");
    build_image(&dir, &layout_dir)?;
    let registry = TestRegistry::start(&dir.join("registry"), Options::default())
        .map_err(anyhow::Error::msg)?;
    registry
        .push(&layout_dir, "big", IMAGE, false, None)
        .map_err(anyhow::Error::msg)?;
    let reference = format!("{}/{IMAGE}", registry.address);

    util::step(&format!(
        "pull: podlab and podman, {runs} interleaved runs each"
    ));
    let podman_root = dir.join("podman");
    let podman = |args: &[&str]| {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(podman_root.join("storage"))
            .arg("--runroot")
            .arg(podman_root.join("run"))
            .arg("--cgroup-manager=cgroupfs")
            .arg("--events-backend=file")
            .args(args);
        c
    };
    let (mut pl, mut pm) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let images = dir.join(format!("images-{i}"));
        pl.push(timed(
            podlab_cmd(podlab, &dir, &images).args(["image", "pull", "--quiet", &reference]),
        )?);
        let _ = std::fs::remove_dir_all(&images);
        pm.push(timed(&mut podman(&[
            "pull",
            "--quiet",
            "--tls-verify=false",
            &reference,
        ]))?);
        timed(&mut podman(&["rmi", "--force", &reference]))?;
    }
    let _ = util::output(&mut podman(&["system", "reset", "--force"]));

    util::step(&format!("pull: {PODS} pods of the new image at once"));
    let images = dir.join("images-pods");
    let start = Instant::now();
    let children = (0..PODS)
        .map(|i| {
            let manifest = format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: pull-{i}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: app\n    image: {reference}\n    imagePullPolicy: IfNotPresent\n    command: [/bin/sleep, '3600']\n"
            );
            let path = dir.join(format!("pull-{i}.yaml"));
            std::fs::write(&path, manifest)?;
            podlab_cmd(podlab, &dir, &images)
                .args(["apply", "--wait-ready=300s", "-f"])
                .arg(&path)
                .stdout(std::process::Stdio::null())
                .spawn()
                .context("podlab apply")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut ok = true;
    for mut c in children {
        ok &= c.wait()?.success();
    }
    let pods_up = start.elapsed();
    for i in 0..PODS {
        let _ = podlab_cmd(podlab, &dir, &images)
            .args(["delete", "pod", &format!("pull-{i}"), "--grace-period", "0"])
            .output();
    }
    anyhow::ensure!(ok, "a pod of the pulled image did not become ready");

    let median = |v: &[Duration]| {
        let mut v = v.to_vec();
        v.sort();
        v[v.len() / 2].as_secs_f64()
    };
    let (pl_s, pm_s) = (median(&pl), median(&pm));
    Ok(serde_json::json!({
        "image_mib": (LAYERS * LAYER_BYTES) >> 20,
        "layers": LAYERS,
        "runs": runs,
        "podlab_s": pl_s,
        "podman_s": pm_s,
        // containerd (`ctr images pull`) is not measured yet.
        "ctr_s": null,
        "ratio_to_fastest": pl_s / pm_s,
        "ten_pods_one_image_s": pods_up.as_secs_f64(),
    }))
}

fn podlab_cmd(podlab: &Path, dir: &Path, images: &Path) -> Command {
    let mut c = Command::new(podlab);
    c.arg("--root")
        .arg(dir.join("state"))
        .arg("--image-root")
        .arg(images)
        .arg("--data-root")
        .arg(dir.join("data"));
    c
}

fn timed(cmd: &mut Command) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
    anyhow::ensure!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(start.elapsed())
}

/// The busybox fixture's layer at the bottom (so the pods can run
/// `sleep`), then layers of pseudo-random bytes.
fn build_image(dir: &Path, layout_dir: &Path) -> anyhow::Result<()> {
    let mut layers = vec![layout::tar_gz_dir(
        &util::target().join("fixtures/busybox-rootfs"),
    )?];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..LAYERS {
        let root = dir.join(format!("layer-{i}"));
        std::fs::create_dir_all(root.join("data"))?;
        let mut bytes = Vec::with_capacity(LAYER_BYTES);
        while bytes.len() < LAYER_BYTES {
            // xorshift64: fast, and gzip cannot shrink it.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            bytes.extend_from_slice(&state.to_le_bytes());
        }
        std::fs::write(root.join(format!("data/blob-{i}")), &bytes)?;
        layers.push(layout::tar_dir(&root)?);
    }
    let config = ImageConfig {
        env: vec!["PATH=/usr/sbin:/usr/bin:/sbin:/bin".into()],
        cmd: vec!["sh".into()],
        ..Default::default()
    };
    layout::write_layout(layout_dir, "big", &layers, &config)?;
    Ok(())
}
