//! The oracles of the fuzz targets, as plain functions: the targets call
//! them with libFuzzer's inputs, and the unit tests below with the checked-in
//! seeds, so `cargo test` proves the oracles hold on known hard cases.

use std::path::{Path, PathBuf};

/// Any bytes given to `podlab apply`: parsing, defaulting and validation
/// return an error or pods and secrets, never panic.
pub fn check_manifest(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(docs) = podlab::manifest::parse(text, "fuzz") {
            for doc in docs {
                match doc.object {
                    podlab::manifest::Object::Pod(mut pod) => {
                        if podlab::manifest::default_pod(&mut pod, None).is_ok() {
                            let _ = podlab::manifest::validate(&pod);
                        }
                    }
                    podlab::manifest::Object::Secret(mut secret) => {
                        if podlab::manifest::default_secret(&mut secret, None).is_ok() {
                            let _ = podlab::manifest::validate_secret(&secret);
                        }
                    }
                }
            }
        }
    }
}

/// Kubernetes quantities: parse and convert without panicking or overflowing.
pub fn check_quantity(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(q) = podlab::quantity::parse(s) {
            let _ = (q.value(), q.milli_value(), q.is_negative());
        }
        let _ = podlab::quantity::memory_bytes(s);
        let _ = podlab::quantity::cpu_millis(s);
        if let Ok(n) = podlab::quantity::count(s) {
            assert!(n >= 0, "a count is never negative: {s:?}");
        }
    }
}

/// Every path under `dir`, symlinks listed but never followed.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        out.push(path.clone());
        if is_dir {
            walk(&path, out);
        }
    }
}

/// Layer unpacking of arbitrary tar bytes: never panic, and never write
/// outside the layer directory. The layer is unpacked two levels below a
/// private root, so a write that climbs out (`..`, an absolute path, a
/// symlink followed) still lands in the tree the oracle walks, following
/// nothing: all it may hold is the layer and its two parents.
pub fn check_layer(data: &[u8]) {
    let Ok(root) = tempfile::tempdir() else {
        return;
    };
    let dest = root.path().join("a/b/layer");
    if std::fs::create_dir_all(&dest).is_err() {
        return;
    }
    let _ = podlab::image::unpack::unpack_layer(data, &dest, "fuzz");
    let outside = outside_of(root.path(), &dest);
    assert!(outside.is_empty(), "wrote outside the layer: {outside:?}");
}

/// What exists under `root` that is neither `dest` (and below) nor one of
/// its ancestors up to `root`.
fn outside_of(root: &Path, dest: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    walk(root, &mut all);
    all.into_iter()
        .filter(|p| !p.starts_with(dest) && !dest.starts_with(p))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeds(dir: &str) -> Vec<(String, Vec<u8>)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn layer_seeds_stay_inside() {
        let seeds = seeds("seeds/layer");
        assert!(seeds.len() >= 5, "{} layer seeds", seeds.len());
        for (name, data) in seeds {
            eprintln!("seed {name}");
            check_layer(&data);
        }
    }

    /// The oracle sees a write outside the layer: a file next to it, made
    /// by hand, is what an escaping unpacker would leave.
    #[test]
    fn the_layer_oracle_catches_a_write_beside_the_layer() {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("a/b/layer");
        std::fs::create_dir_all(&dest).unwrap();
        assert!(outside_of(root.path(), &dest).is_empty());
        std::fs::write(dest.join("inside"), b"x").unwrap();
        assert!(outside_of(root.path(), &dest).is_empty());
        std::fs::create_dir(root.path().join("a/b/x")).unwrap();
        std::os::unix::fs::symlink("/", root.path().join("a/b/x/root")).unwrap();
        std::fs::write(root.path().join("a/escaped"), b"x").unwrap();
        assert_eq!(
            outside_of(root.path(), &dest).len(),
            3,
            "{:?}",
            outside_of(root.path(), &dest)
        );
    }

    #[test]
    fn refused_manifests_do_not_panic() {
        let bad = seeds("../fixtures/bad");
        assert!(bad.len() > 10);
        for (_, data) in bad {
            check_manifest(&data);
        }
        for q in [
            "1",
            "1.5",
            "9m",
            "1e3",
            "-1",
            "1Ei",
            "99999999999999999999Ei",
            "0.0000001",
        ] {
            check_quantity(q.as_bytes());
        }
    }
}
