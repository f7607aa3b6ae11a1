//! The refused-manifest corpus in `fixtures/bad/`: every file is refused by
//! `podlab apply` with an error naming the field path or the line (pinned as
//! an insta snapshot), and nothing is created. Runs unprivileged: refusal
//! happens before anything touches the host.

mod common;

use std::path::{Path, PathBuf};

use common::Podlab;

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/bad");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures/bad")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_corpus_is_large_enough() {
    assert!(
        corpus().len() >= 50,
        "fixtures/bad holds {} manifests",
        corpus().len()
    );
}

#[test]
fn every_bad_manifest_is_refused_with_a_located_error_and_creates_nothing() {
    let p = Podlab::new();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_snapshot_path("snapshots/bad_input");
    let _bound = settings.bind_to_scope();
    for file in corpus() {
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        let rel = format!(
            "fixtures/bad/{}",
            file.file_name().unwrap().to_string_lossy()
        );
        let out = p
            .cmd()
            .current_dir(&workspace)
            .args(["apply", "-f", &rel])
            .output()
            .expect("run podlab");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() {
            // Never leave an accidentally created pod running on the host.
            let names = p.run(&["get", "pods", "-A", "-o", "name"]);
            for n in String::from_utf8_lossy(&names.stdout).lines() {
                let n = n.trim_start_matches("pod/");
                let _ = p.run(&["delete", "pod", n, "--grace-period", "0"]);
            }
            panic!("{rel} was accepted");
        }
        // Every refusal names where: a field path, a line, the kind, or the size.
        let located = stderr.contains("line ")
            || stderr.contains("spec.")
            || stderr.contains("metadata.")
            || stderr.contains("kind")
            || stderr.contains("larger than");
        assert!(located, "{rel}: the error does not say where:\n{stderr}");
        insta::assert_snapshot!(name, stderr.chars().take(2000).collect::<String>());
        let pods = p.root.path().join("pods");
        let created = std::fs::read_dir(&pods).map(|d| d.count()).unwrap_or(0);
        assert_eq!(created, 0, "{rel} left state in {}", pods.display());
        let secrets = p.root.path().join("secrets");
        assert!(!secrets.exists(), "{rel} stored a secret");
    }
}
