//! `cargo xtask bench`'s pull figures (issue 24): a multi-layer image of
//! about 50 MB in a docker-registry on loopback, pulled by podlab, by
//! podman and by containerd (`ctr images pull` against a private
//! containerd) from the same registry (interleaved runs, each into an
//! empty store), and ten pods of one new image started at once (one pull;
//! the other nine wait on its lock and find the blobs stored), with the
//! registry's access log counting how often each blob was served.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use podlab_oci::{layout, ImageConfig};
use podlab_testkit::registry::{Options, TestRegistry};

use crate::containerd::Containerd;
use crate::{doctor, util};

/// Layers of incompressible bytes, so the transfer is what it says.
const LAYERS: usize = 5;
const LAYER_BYTES: usize = 10 << 20;
const IMAGE: &str = "bench/big:1";
const PODS: usize = 10;

/// The figures as bench.json's `pull` object.
pub fn figures(podlab: &Path, work: &Path, runs: usize) -> anyhow::Result<serde_json::Value> {
    doctor::install(&[
        doctor::Need::Registry,
        doctor::Need::Podman,
        doctor::Need::Containerd,
    ])?;
    let dir = work.join("pull");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    util::step(&format!(
        "pull: a {LAYERS}-layer image of {} MiB into a loopback registry",
        (LAYERS * LAYER_BYTES) >> 20
    ));
    let layout_dir = dir.join("layout");
    build_image(&dir, &layout_dir)?;
    let registry = TestRegistry::start(
        &dir.join("registry"),
        Options {
            access_log: true,
            ..Options::default()
        },
    )
    .map_err(anyhow::Error::msg)?;
    registry
        .push(&layout_dir, "big", IMAGE, false, None)
        .map_err(anyhow::Error::msg)?;
    let reference = format!("{}/{IMAGE}", registry.address);

    util::step(&format!(
        "pull: podlab, podman and ctr, {runs} interleaved runs each"
    ));
    // Its own daemon, without the test registry's hosts.toml: `ctr`
    // takes --plain-http itself, as its users pass it.
    let containerd = Containerd::start(None)?;
    // A namespace of its own: in the CRI plugin's, the plugin adds names
    // of its own to every image, which keep its blobs after `images rm`
    // (measured: later runs fetched nothing).
    let ctr = |args: &[&str]| {
        let mut c = containerd.ctr_in("podlab-bench");
        c.args(args);
        c
    };
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
    let (mut pl, mut pm, mut ct) = (Vec::new(), Vec::new(), Vec::new());
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
        ct.push(timed(&mut ctr(&[
            "images",
            "pull",
            "--plain-http",
            &reference,
        ]))?);
        // --sync: the next pull starts from a store without its blobs.
        timed(&mut ctr(&["images", "rm", "--sync", &reference]))?;
    }
    let _ = util::output(&mut podman(&["system", "reset", "--force"]));
    drop(containerd);
    // Each run must have fetched the big layers: a store that kept them
    // would time nothing.
    let by_client = fetches_by_client(&registry.log(), IMAGE);
    for client in ["podlab", "containers", "containerd"] {
        let n = by_client.get(client).copied().unwrap_or(0);
        anyhow::ensure!(
            n >= runs * LAYERS,
            "{client} fetched {n} blobs in {runs} pulls of {LAYERS} layers: a pull was served from a store \
             (blob GETs by client: {by_client:?})"
        );
    }

    util::step(&format!("pull: {PODS} pods of the new image at once"));
    let images = dir.join("images-pods");
    let served_before = registry.log().len();
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
    let log = registry.log();
    let served = blob_fetches(log.get(served_before..).unwrap_or_default(), IMAGE);
    let most = served.values().copied().max().unwrap_or(0);
    anyhow::ensure!(
        most == 1,
        "{PODS} pods of one new image: the registry served a blob {most} times, not once \
         (blob GETs: {served:?})"
    );

    let median = |v: &[Duration]| {
        let mut v = v.to_vec();
        v.sort();
        v[v.len() / 2].as_secs_f64()
    };
    let (pl_s, pm_s, ct_s) = (median(&pl), median(&pm), median(&ct));
    Ok(serde_json::json!({
        "image_mib": (LAYERS * LAYER_BYTES) >> 20,
        "layers": LAYERS,
        "runs": runs,
        "podlab_s": pl_s,
        "podman_s": pm_s,
        "ctr_s": ct_s,
        "ratio_to_fastest": pl_s / pm_s.min(ct_s),
        "ten_pods_one_image_s": pods_up.as_secs_f64(),
        // How often the registry served each blob of the image (manifest
        // config and layers) while the ten pods started: 1 is one pull.
        "ten_pods_blobs": served.len(),
        "ten_pods_most_fetches_of_a_blob": most,
    }))
}

/// Whole blob GETs of `image`'s repository by client (the user agent up
/// to its first '/': podlab, containers (podman), containerd).
fn fetches_by_client(log: &str, image: &str) -> std::collections::BTreeMap<String, usize> {
    let repository = image.split(':').next().unwrap_or(image);
    let wanted = format!("\"GET /v2/{repository}/blobs/");
    let mut counts = std::collections::BTreeMap::new();
    for line in log.lines().filter(|l| l.contains(&wanted)) {
        let fields: Vec<&str> = line.split('"').collect();
        // request, status and size, referer, user agent
        let ok = fields.get(2).is_some_and(|s| s.trim().starts_with("200"));
        let agent = fields
            .get(5)
            .and_then(|a| a.split('/').next())
            .unwrap_or("");
        if ok {
            *counts.entry(agent.to_string()).or_insert(0) += 1;
        }
    }
    counts
}

/// How many times the access log shows each blob of `image`'s repository
/// served whole (`GET …/blobs/sha256:… 200`), by digest.
fn blob_fetches(log: &str, image: &str) -> std::collections::BTreeMap<String, usize> {
    let repository = image.split(':').next().unwrap_or(image);
    let wanted = format!("\"GET /v2/{repository}/blobs/");
    let mut counts = std::collections::BTreeMap::new();
    for line in log.lines() {
        let Some(at) = line.find(&wanted) else {
            continue;
        };
        let rest = &line[at + wanted.len()..];
        let digest = rest.split([' ', '"']).next().unwrap_or_default();
        let status = rest.split('"').nth(1).map(str::trim).unwrap_or_default();
        if status.starts_with("200") {
            *counts.entry(digest.to_string()).or_insert(0) += 1;
        }
    }
    counts
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_fetches_counts_whole_gets_of_the_repositorys_blobs() {
        let log = concat!(
            "127.0.0.1 - - [05/Dec/2026:10:00:00 +0000] \"GET /v2/bench/big/blobs/sha256:aa HTTP/1.1\" 200 10 \"\" \"podlab\"\n",
            "127.0.0.1 - - [05/Dec/2026:10:00:00 +0000] \"HEAD /v2/bench/big/blobs/sha256:aa HTTP/1.1\" 200 0 \"\" \"podlab\"\n",
            "127.0.0.1 - - [05/Dec/2026:10:00:00 +0000] \"GET /v2/bench/big/blobs/sha256:bb HTTP/1.1\" 200 10 \"\" \"podlab\"\n",
            "127.0.0.1 - - [05/Dec/2026:10:00:00 +0000] \"GET /v2/bench/big/blobs/sha256:bb HTTP/1.1\" 200 10 \"\" \"podlab\"\n",
            "127.0.0.1 - - [05/Dec/2026:10:00:00 +0000] \"GET /v2/bench/big/blobs/sha256:cc HTTP/1.1\" 404 10 \"\" \"podlab\"\n",
            "127.0.0.1 - - [05/Dec/2026:10:00:00 +0000] \"GET /v2/other/blobs/sha256:aa HTTP/1.1\" 200 10 \"\" \"podlab\"\n",
        );
        let counts = blob_fetches(log, "bench/big:1");
        assert_eq!(counts.get("sha256:aa"), Some(&1));
        assert_eq!(counts.get("sha256:bb"), Some(&2));
        assert_eq!(counts.len(), 2);
        let clients = fetches_by_client(log, "bench/big:1");
        assert_eq!(clients.get("podlab"), Some(&3));
        assert_eq!(clients.len(), 1);
    }
}
