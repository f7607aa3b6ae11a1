//! The workspace's own Rust sources, for the checks that read code (the
//! tidy tests, xtask doctor).

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, sorted, leaving out build output
/// (`target`) and hidden directories.
pub fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target" && !name.to_string_lossy().starts_with('.') {
                walk(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_rust_files_below_and_skips_build_output() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["a.rs", "sub/b.rs", "sub/c.txt", "target/d.rs", ".git/e.rs"] {
            let path = dir.path().join(f);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, "").unwrap();
        }
        let names: Vec<PathBuf> = rust_files(dir.path())
            .iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().to_path_buf())
            .collect();
        assert_eq!(names, [PathBuf::from("a.rs"), PathBuf::from("sub/b.rs")]);
    }
}
