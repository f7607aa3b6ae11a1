//! Store-level tests: import, naming, garbage collection and preparation,
//! on layouts built with `layout::write_layout` in tempdirs.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

use super::layout::{tar_gz_dir, write_layout};
use super::unpack::opaque_xattr;
use super::*;

enum Node<'a> {
    File(&'a str, &'a str, u32),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
}

fn layer(nodes: &[Node<'_>]) -> Vec<u8> {
    let src = tempfile::tempdir().unwrap();
    for node in nodes {
        match *node {
            Node::File(path, content, mode) => {
                let path = src.path().join(path);
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                fs::write(&path, content).unwrap();
                fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            }
            Node::Dir(path) => fs::create_dir_all(src.path().join(path)).unwrap(),
            Node::Symlink(path, target) => {
                let path = src.path().join(path);
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::os::unix::fs::symlink(target, path).unwrap();
            }
        }
    }
    tar_gz_dir(src.path()).unwrap()
}

fn base_layer() -> Vec<u8> {
    layer(&[
        Node::File("bin/hello", "#!hello", 0o755),
        Node::File("etc/motd", "welcome", 0o644),
        Node::File("etc/conf/a", "a", 0o644),
        Node::File("etc/conf/b", "b", 0o644),
        Node::Symlink("lib/hello", "../bin/hello"),
        Node::Dir("tmp"),
    ])
}

/// Deletes etc/motd, makes etc/conf opaque, adds a setuid binary.
fn whiteout_layer() -> Vec<u8> {
    layer(&[
        Node::File("etc/.wh.motd", "", 0o644),
        Node::File("etc/conf/.wh..wh..opq", "", 0o644),
        Node::File("etc/conf/c", "c", 0o644),
        Node::File("bin/su", "su", 0o4755),
    ])
}

fn plain_layer(name: &str) -> Vec<u8> {
    layer(&[Node::File(name, name, 0o644)])
}

fn config() -> ImageConfig {
    ImageConfig {
        env: vec!["PATH=/bin".to_string()],
        entrypoint: vec!["/bin/hello".to_string()],
        cmd: vec!["--greet".to_string()],
        working_dir: Some("/tmp".to_string()),
        user: Some("1000:1000".to_string()),
    }
}

struct Fixture {
    tmp: tempfile::TempDir,
    store: ImageStore,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let store = ImageStore::open(tmp.path().join("store")).unwrap();
        Fixture { tmp, store }
    }

    fn layout(&self, name: &str, reference: &str, layers: &[Vec<u8>]) -> (PathBuf, String) {
        let dir = self.tmp.path().join(name);
        let digest = write_layout(&dir, reference, layers, &config()).unwrap();
        (dir, digest)
    }

    fn blobs(&self) -> HashSet<String> {
        names(&self.store.root().join("oci/blobs/sha256"))
    }

    fn layer_dirs(&self) -> HashSet<String> {
        names(&self.store.root().join("layers/sha256"))
    }
}

fn names(dir: &Path) -> HashSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn hex(digest: &str) -> String {
    digest.strip_prefix("sha256:").unwrap().to_string()
}

fn is_root() -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        podlab_testkit::skip::skipped("unpacking whiteouts needs root");
    }
    root
}

/// Packs a layout directory into an oci-archive the way skopeo does.
fn archive(dir: &Path, dest: &Path) {
    let mut builder = tar::Builder::new(fs::File::create(dest).unwrap());
    builder.append_dir_all(".", dir).unwrap();
    builder.into_inner().unwrap();
}

/// Rewrites the (only) manifest of a layout through `edit` on its JSON text
/// and points index.json at the result.
fn rewrite_manifest(dir: &Path, edit: impl Fn(String) -> String) -> String {
    let index_path = dir.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&fs::read(&index_path).unwrap()).unwrap();
    let old = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let text = fs::read_to_string(dir.join("blobs/sha256").join(hex(&old))).unwrap();
    let new_text = edit(text);
    let digest = sha256_digest(new_text.as_bytes());
    fs::write(dir.join("blobs/sha256").join(hex(&digest)), &new_text).unwrap();
    let entry = &mut index["manifests"][0];
    entry["digest"] = digest.clone().into();
    entry["size"] = new_text.len().into();
    if let Some(media) =
        serde_json::from_str::<serde_json::Value>(&new_text).unwrap()["mediaType"].as_str()
    {
        entry["mediaType"] = media.into();
    }
    fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    digest
}

#[test]
fn import_directory_then_list_lookup_tag_remove() {
    let fx = Fixture::new();
    let (src, digest) = fx.layout(
        "src",
        "podlab.local/test:v1",
        &[base_layer(), whiteout_layer()],
    );
    let source_size: u64 = fs::read_dir(src.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();

    let imported = fx.store.import(&src, None).unwrap();
    assert_eq!(imported.len(), 1);
    let info = &imported[0];
    assert_eq!(info.reference, "podlab.local/test:v1");
    assert_eq!(info.digest, digest);
    assert_eq!(info.size, source_size, "manifest + config + layers");
    assert_eq!(fx.store.list().unwrap(), imported);

    assert_eq!(
        fx.store.lookup("podlab.local/test:v1").unwrap().as_ref(),
        Some(info)
    );
    assert_eq!(fx.store.lookup(&digest).unwrap().as_ref(), Some(info));
    let pinned = format!("podlab.local/test@{digest}");
    assert_eq!(fx.store.lookup(&pinned).unwrap().unwrap().digest, digest);
    assert_eq!(
        fx.store.lookup("podlab.local/test").unwrap(),
        None,
        "means :latest"
    );
    assert!(matches!(
        fx.store.lookup("Bad"),
        Err(Error::InvalidReference { .. })
    ));

    fx.store.tag("podlab.local/test:v1", "probe").unwrap();
    let tagged = fx
        .store
        .lookup("docker.io/library/probe:latest")
        .unwrap()
        .unwrap();
    assert_eq!(tagged.digest, digest);
    let refs: Vec<String> = fx
        .store
        .list()
        .unwrap()
        .into_iter()
        .map(|i| i.reference)
        .collect();
    assert_eq!(
        refs,
        ["docker.io/library/probe:latest", "podlab.local/test:v1"]
    );
    assert!(matches!(fx.store.tag("missing", "x"), Err(Error::NotFound(r)) if r == "missing"));

    let blobs_before = fx.blobs();
    assert_eq!(blobs_before.len(), 4, "manifest, config, two layers");
    fx.store.remove("podlab.local/test:v1").unwrap();
    assert_eq!(fx.store.lookup("podlab.local/test:v1").unwrap(), None);
    assert_eq!(
        fx.blobs(),
        blobs_before,
        "the other name still uses every blob"
    );
    assert!(matches!(
        fx.store.remove("podlab.local/test:v1"),
        Err(Error::NotFound(_))
    ));

    fx.store.remove("probe").unwrap();
    assert!(fx.store.list().unwrap().is_empty());
    assert!(fx.blobs().is_empty(), "left: {:?}", fx.blobs());
}

#[test]
fn import_oci_archive() {
    let fx = Fixture::new();
    let (src, digest) = fx.layout("src", "podlab.local/arch:1", &[base_layer()]);
    let tar_path = fx.tmp.path().join("image.tar");
    archive(&src, &tar_path);

    let imported = fx.store.import(&tar_path, None).unwrap();
    assert_eq!(imported.len(), 1);
    assert_eq!(imported[0].reference, "podlab.local/arch:1");
    assert_eq!(imported[0].digest, digest);
    // The extraction directory is gone.
    let leftovers: Vec<_> = names(fx.store.root())
        .into_iter()
        .filter(|n| n.starts_with("tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn bare_tag_needs_a_name_and_name_overrides() {
    let fx = Fixture::new();
    // skopeo `oci:dir:latest` and umoci write only the tag.
    let (src, digest) = fx.layout("src", "latest", &[plain_layer("a")]);
    let err = fx.store.import(&src, None).unwrap_err();
    assert!(
        matches!(err, Error::NameRequired { ref annotation, digest: ref d, .. }
            if annotation.as_deref() == Some("latest") && *d == digest),
        "{err}"
    );
    assert!(err.to_string().contains("--name"), "{err}");
    assert!(fx.store.list().unwrap().is_empty());

    let imported = fx.store.import(&src, Some("probe")).unwrap();
    assert_eq!(imported[0].reference, "docker.io/library/probe:latest");

    let (named, _) = fx.layout("named", "podlab.local/x:1", &[plain_layer("b")]);
    let imported = fx.store.import(&named, Some("podlab.local/y:2")).unwrap();
    assert_eq!(imported[0].reference, "podlab.local/y:2");
    assert_eq!(fx.store.lookup("podlab.local/x:1").unwrap(), None);

    assert!(matches!(
        fx.store.import(&named, Some("Upper")),
        Err(Error::InvalidReference { .. })
    ));
    let pinned = format!("podlab.local/y@{}", sha256_digest(b""));
    assert!(matches!(
        fx.store.import(&named, Some(&pinned)),
        Err(Error::InvalidReference { .. })
    ));
}

#[test]
fn several_images_in_one_source() {
    let fx = Fixture::new();
    let dir = fx.tmp.path().join("multi");
    let one = write_layout(&dir, "podlab.local/one:1", &[plain_layer("1")], &config()).unwrap();
    let two = write_layout(&dir, "podlab.local/two:1", &[plain_layer("2")], &config()).unwrap();

    let err = fx
        .store
        .import(&dir, Some("podlab.local/both"))
        .unwrap_err();
    assert!(
        matches!(err, Error::AmbiguousName { count: 2, .. }),
        "{err}"
    );

    let mut imported = fx.store.import(&dir, None).unwrap();
    imported.sort_by(|a, b| a.reference.cmp(&b.reference));
    let got: Vec<(&str, &str)> = imported
        .iter()
        .map(|i| (i.reference.as_str(), i.digest.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("podlab.local/one:1", one.as_str()),
            ("podlab.local/two:1", two.as_str())
        ]
    );
}

#[test]
fn corrupt_blobs_are_refused_and_nothing_is_named() {
    let fx = Fixture::new();
    let base = base_layer();
    let layer_digest = sha256_digest(&base);
    let (src, _) = fx.layout("src", "podlab.local/bad:1", &[base]);
    let blob = src.join("blobs/sha256").join(hex(&layer_digest));

    // Same size, one byte flipped.
    let mut bytes = fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&blob, &bytes).unwrap();
    let err = fx.store.import(&src, None).unwrap_err();
    assert!(
        matches!(err, Error::DigestMismatch { ref digest, .. } if *digest == layer_digest),
        "{err}"
    );
    assert!(err.to_string().contains(&layer_digest), "{err}");

    // One byte too many.
    bytes[last] ^= 0xff;
    bytes.push(0);
    fs::write(&blob, &bytes).unwrap();
    let err = fx.store.import(&src, None).unwrap_err();
    assert!(
        matches!(err, Error::SizeMismatch { ref digest, .. } if *digest == layer_digest),
        "{err}"
    );

    assert!(fx.store.list().unwrap().is_empty());
    assert!(!fx.blobs().contains(&hex(&layer_digest)));
}

#[test]
fn present_blobs_are_not_copied_again() {
    let fx = Fixture::new();
    let base = base_layer();
    let base_hex = hex(&sha256_digest(&base));
    let (first, _) = fx.layout("first", "podlab.local/first:1", std::slice::from_ref(&base));
    let (second, _) = fx.layout("second", "podlab.local/second:1", &[base, plain_layer("x")]);
    fx.store.import(&first, None).unwrap();
    let path = fx.store.root().join("oci/blobs/sha256").join(&base_hex);
    let inode = fs::metadata(&path).unwrap().ino();

    fx.store.import(&first, None).unwrap();
    fx.store.import(&second, None).unwrap();
    assert_eq!(
        fs::metadata(&path).unwrap().ino(),
        inode,
        "blob was rewritten"
    );
    assert_eq!(fx.store.list().unwrap().len(), 2);
}

#[test]
fn nested_index_picks_linux_amd64() {
    let fx = Fixture::new();
    let (src, amd64) = fx.layout("src", "ignored", &[plain_layer("a")]);
    // Turn the layout into skopeo --all style: index.json -> index -> manifests.
    let index_path = src.join("index.json");
    let index: serde_json::Value = serde_json::from_slice(&fs::read(&index_path).unwrap()).unwrap();
    let mut amd64_entry = index["manifests"][0].clone();
    amd64_entry.as_object_mut().unwrap().remove("annotations");
    amd64_entry["platform"] = serde_json::json!({"architecture": "amd64", "os": "linux"});
    let mut arm64_entry = amd64_entry.clone();
    arm64_entry["digest"] = format!("sha256:{}", "1".repeat(64)).into();
    arm64_entry["platform"] = serde_json::json!({"architecture": "arm64", "os": "linux"});
    let nested = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [arm64_entry, amd64_entry],
    }))
    .unwrap();
    let nested_digest = sha256_digest(&nested);
    fs::write(src.join("blobs/sha256").join(hex(&nested_digest)), &nested).unwrap();
    let top = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": nested_digest,
            "size": nested.len(),
            "annotations": {"org.opencontainers.image.ref.name": "podlab.local/multi:1"},
        }],
    });
    fs::write(&index_path, serde_json::to_vec(&top).unwrap()).unwrap();

    let imported = fx.store.import(&src, None).unwrap();
    assert_eq!(imported[0].reference, "podlab.local/multi:1");
    assert_eq!(imported[0].digest, amd64);
}

#[test]
fn docker_schema2_media_types_are_accepted() {
    let fx = Fixture::new();
    let (src, _) = fx.layout("src", "podlab.local/docker:1", &[plain_layer("d")]);
    let digest = rewrite_manifest(&src, |text| {
        text.replace(
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .replace(
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.docker.container.image.v1+json",
        )
        .replace(
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
        )
    });
    let imported = fx.store.import(&src, None).unwrap();
    assert_eq!(imported[0].digest, digest);
    let prepared = fx.store.prepare("podlab.local/docker:1").unwrap();
    assert_eq!(fs::read(prepared.layers[0].join("d")).unwrap(), b"d");
}

#[test]
fn zstd_layers_are_refused_at_import() {
    let fx = Fixture::new();
    let (src, _) = fx.layout("src", "podlab.local/zstd:1", &[plain_layer("z")]);
    rewrite_manifest(&src, |text| text.replace("tar+gzip", "tar+zstd"));
    let err = fx.store.import(&src, None).unwrap_err();
    assert!(matches!(err, Error::UnsupportedMediaType { .. }), "{err}");
    assert!(err.to_string().contains("zstd"), "{err}");
}

#[test]
fn prepare_unpacks_layers_with_whiteouts() {
    if !is_root() {
        return;
    }
    let fx = Fixture::new();
    let (base, top) = (base_layer(), whiteout_layer());
    let (base_digest, top_digest) = (sha256_digest(&base), sha256_digest(&top));
    let (src, digest) = fx.layout("src", "podlab.local/full:1", &[base, top]);
    fx.store.import(&src, None).unwrap();

    let prepared = fx.store.prepare("podlab.local/full:1").unwrap();
    assert_eq!(prepared.reference, "podlab.local/full:1");
    assert_eq!(prepared.digest, digest);
    assert_eq!(prepared.config, config());
    let layers_root = fx.store.root().join("layers/sha256");
    assert_eq!(
        prepared.layers,
        [
            layers_root.join(hex(&base_digest)),
            layers_root.join(hex(&top_digest))
        ],
        "bottom layer first"
    );

    let (lower, upper) = (&prepared.layers[0], &prepared.layers[1]);
    assert_eq!(fs::read(lower.join("bin/hello")).unwrap(), b"#!hello");
    assert_eq!(
        fs::metadata(lower.join("bin/hello")).unwrap().mode() & 0o7777,
        0o755
    );
    assert_eq!(
        fs::read_link(lower.join("lib/hello")).unwrap(),
        Path::new("../bin/hello")
    );
    assert_eq!(fs::read(lower.join("etc/motd")).unwrap(), b"welcome");
    assert!(
        !upper.join("bin/hello").exists(),
        "each dir holds only its own layer"
    );

    let motd = fs::symlink_metadata(upper.join("etc/motd")).unwrap();
    assert!(motd.file_type().is_char_device() && motd.rdev() == 0);
    assert_eq!(
        opaque_xattr(&upper.join("etc/conf")).unwrap().as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(fs::read(upper.join("etc/conf/c")).unwrap(), b"c");
    assert_eq!(
        fs::metadata(upper.join("bin/su")).unwrap().mode() & 0o7777,
        0o4755
    );

    // A second prepare reuses the directories and leaves no temporaries.
    let inode = fs::metadata(upper).unwrap().ino();
    assert_eq!(fx.store.prepare("podlab.local/full:1").unwrap(), prepared);
    assert_eq!(fs::metadata(upper).unwrap().ino(), inode);
    let tmp: Vec<_> = names(&fx.store.root().join("layers"))
        .into_iter()
        .filter(|n| n != "sha256")
        .collect();
    assert!(tmp.is_empty(), "{tmp:?}");

    assert!(matches!(
        fx.store.prepare("podlab.local/none:1"),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn remove_keeps_what_other_images_share() {
    let fx = Fixture::new();
    let (shared, only_a, only_b) = (plain_layer("shared"), plain_layer("a"), plain_layer("b"));
    let [shared_hex, a_hex, b_hex] = [&shared, &only_a, &only_b].map(|l| hex(&sha256_digest(l)));
    let (a, a_digest) = fx.layout("a", "podlab.local/a:1", &[shared.clone(), only_a]);
    let (b, b_digest) = fx.layout("b", "podlab.local/b:1", &[shared, only_b]);
    fx.store.import(&a, None).unwrap();
    fx.store.import(&b, None).unwrap();
    fx.store.prepare("podlab.local/a:1").unwrap();
    fx.store.prepare("podlab.local/b:1").unwrap();
    assert_eq!(
        fx.layer_dirs(),
        HashSet::from([shared_hex.clone(), a_hex.clone(), b_hex.clone()])
    );
    // A crashed unpack leaves a temporary directory; GC cleans it.
    fs::create_dir(fx.store.root().join("layers/tmp-crashed")).unwrap();

    fx.store.remove("podlab.local/a:1").unwrap();
    assert_eq!(
        fx.layer_dirs(),
        HashSet::from([shared_hex.clone(), b_hex.clone()])
    );
    let blobs = fx.blobs();
    assert!(
        blobs.contains(&shared_hex) && blobs.contains(&b_hex) && blobs.contains(&hex(&b_digest))
    );
    assert!(!blobs.contains(&a_hex) && !blobs.contains(&hex(&a_digest)));
    assert!(!fx.store.root().join("layers/tmp-crashed").exists());
    // The remaining image still prepares from what is left.
    let prepared = fx.store.prepare("podlab.local/b:1").unwrap();
    assert_eq!(fs::read(prepared.layers[1].join("b")).unwrap(), b"b");

    fx.store.remove(&b_digest).unwrap();
    assert!(fx.layer_dirs().is_empty());
    assert!(fx.blobs().is_empty());
}

#[test]
fn concurrent_prepares_both_succeed() {
    let fx = Fixture::new();
    let layers: Vec<Vec<u8>> = (0..4)
        .map(|i| {
            let files: Vec<String> = (0..50).map(|f| format!("d{i}/f{f}")).collect();
            let nodes: Vec<Node<'_>> = files.iter().map(|f| Node::File(f, "x", 0o644)).collect();
            layer(&nodes)
        })
        .collect();
    let (src, _) = fx.layout("src", "podlab.local/race:1", &layers);
    fx.store.import(&src, None).unwrap();

    let root = fx.store.root().to_path_buf();
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (root, barrier) = (root.clone(), barrier.clone());
            std::thread::spawn(move || {
                // Separate store handles, as two podlab processes would have.
                let store = ImageStore::open(root).unwrap();
                barrier.wait();
                store.prepare("podlab.local/race:1")
            })
        })
        .collect();
    let results: Vec<PreparedImage> = handles
        .into_iter()
        .map(|h| h.join().unwrap().unwrap())
        .collect();
    assert_eq!(results[0], results[1]);
    for (i, dir) in results[0].layers.iter().enumerate() {
        assert_eq!(
            names(&dir.join(format!("d{i}"))).len(),
            50,
            "{}",
            dir.display()
        );
    }
    assert_eq!(
        names(&root.join("layers")),
        HashSet::from(["sha256".to_string()])
    );
}

#[test]
fn layers_are_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("sub")).unwrap();
    fs::write(dir.path().join("sub/b"), "b").unwrap();
    fs::write(dir.path().join("a"), "a").unwrap();
    std::os::unix::fs::symlink("a", dir.path().join("link")).unwrap();
    let first = tar_gz_dir(dir.path()).unwrap();
    // Touching files changes nothing: mtimes are not recorded.
    let file = fs::File::options()
        .write(true)
        .open(dir.path().join("a"))
        .unwrap();
    file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(12345))
        .unwrap();
    assert_eq!(tar_gz_dir(dir.path()).unwrap(), first);

    let tar = {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&first[..]), &mut out)
            .unwrap();
        out
    };
    let mut archive = tar::Archive::new(&tar[..]);
    let entries: Vec<(String, u64, u64)> = archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                e.path().unwrap().to_string_lossy().into_owned(),
                h.mtime().unwrap(),
                h.uid().unwrap(),
            )
        })
        .collect();
    let paths: Vec<&str> = entries.iter().map(|(p, _, _)| p.as_str()).collect();
    assert_eq!(paths, ["a", "link", "sub", "sub/b"]);
    assert!(entries
        .iter()
        .all(|(_, mtime, uid)| *mtime == 0 && *uid == 0));
}

#[test]
fn open_creates_an_oci_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path().join("s")).unwrap();
    let oci = store.root().join("oci");
    let layout: serde_json::Value =
        serde_json::from_slice(&fs::read(oci.join("oci-layout")).unwrap()).unwrap();
    assert_eq!(layout["imageLayoutVersion"], "1.0.0");
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(oci.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["manifests"].as_array().unwrap().len(), 0);
    assert!(store.root().join("layers/sha256").is_dir());
    // Reopening keeps what is there.
    ImageStore::open(store.root()).unwrap();
    assert!(oci.join("index.json").is_file());
}

#[test]
fn image_id_is_the_repo_digest_like_the_kubelet_reports() {
    let digest = format!("sha256:{}", "ab".repeat(32));
    assert_eq!(
        repo_digest("busybox:1.36", &digest),
        format!("docker.io/library/busybox@{digest}")
    );
    assert_eq!(
        repo_digest(&format!("localhost:5000/app@{digest}"), &digest),
        format!("localhost:5000/app@{digest}")
    );
    assert_eq!(repo_digest("Not A Ref", &digest), digest);
}

/// Index entries and the API's node both speak OCI's architecture names.
#[test]
fn the_host_architecture_has_its_oci_name() {
    let expected = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    assert_eq!(super::host_arch().to_string(), expected);
}
