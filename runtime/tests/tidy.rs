//! The runtime's modules depend downward only (rust-analyzer's `tidy` style):
//! this test reads every `crate::` path in runtime/src and fails on an
//! import against the layer order of docs/architecture.md, and on a cycle;
//! the CLI front may use the API layer only.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Lowest first. A module may use its own layer and those below.
const LAYERS: &[(&str, &[&str])] = &[
    ("sys", &["sys", "atomic_file", "mutants", "testhook"]),
    (
        "concepts",
        &[
            "namespaces",
            "cgroups",
            "security",
            "seccomp",
            "safepath",
            "image",
            "cni",
            "network",
            "node",
            "store",
            "feed",
            "manifest",
            "lifecycle",
            "termination",
            "logs",
            "config",
            "etc_files",
            "hostpath",
            "selector",
            "patch",
            "jsonpath",
            "pod_update",
            "downward",
            "tls",
            "secrets",
        ],
    ),
    ("pod parts", &["sandbox", "container", "scheduler", "probe"]),
    ("shim", &["shim"]),
    ("api", &["api", "kube_namespaces"]),
    ("fronts", &["serve", "cli"]),
];

/// What the binary's own files (main.rs and cli.rs, the CLI front) may use of
/// the library: the API layer, config, pure presentation helpers (the error
/// chain among them), and the
/// other front it starts.
const FRONT_MAY_USE: &[&str] = &["api", "config", "error", "selector", "jsonpath", "serve"];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rank(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

/// The source without comments and without its `#[cfg(test)]` tail: tests
/// may reach across layers to set things up.
fn code(source: &str) -> String {
    let source = match source.find("#[cfg(test)]\nmod tests") {
        Some(i) => &source[..i],
        None => source,
    };
    source
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first path segments after each `prefix::` (e.g. `crate::`), braces
/// included: `crate::{api::{self, X}, store}` gives api and store.
fn uses(source: &str, prefix: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let needle = format!("{prefix}::");
    let mut rest = source;
    while let Some(i) = rest.find(&needle) {
        let before = rest[..i].chars().last();
        rest = &rest[i + needle.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let (mut depth, mut start) = (1, true);
            let mut ident = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    if !ident.is_empty() {
                        found.insert(std::mem::take(&mut ident));
                    }
                    break;
                }
                if depth == 1 && start && (c.is_alphanumeric() || c == '_') {
                    ident.push(c);
                    continue;
                }
                if !ident.is_empty() {
                    found.insert(std::mem::take(&mut ident));
                }
                if depth == 1 && c == ',' {
                    start = true;
                } else if !c.is_whitespace() {
                    start = false;
                }
            }
        } else {
            let ident: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.insert(ident);
        }
    }
    found
}

/// Each top-level module of runtime/src (a file or a directory) and the
/// modules its code names through `crate::`.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut modules: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in std::fs::read_dir(src).expect("runtime/src").flatten() {
        let path = entry.path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            let files = podlab_testkit::source::rust_files(&path);
            if !files.is_empty() {
                modules.entry(name).or_default().extend(files);
            }
        } else if path.extension().is_some_and(|e| e == "rs")
            && !["lib", "main", "cli"].contains(&name.as_str())
        {
            // `api.rs` and its submodules in `api/` are one module.
            modules.entry(name).or_default().push(path);
        }
    }
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    modules
        .into_iter()
        .map(|(name, files)| {
            let deps = files
                .iter()
                .filter(|f| {
                    !f.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .ends_with("tests.rs")
                })
                .flat_map(|f| uses(&code(&std::fs::read_to_string(f).unwrap()), "crate"))
                .filter(|d| *d != name && names.contains(d))
                .collect();
            (name, deps)
        })
        .collect()
}

/// Imports against the layer order, and modules that belong to no layer.
fn violations(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut found = Vec::new();
    for (module, deps) in graph {
        let Some(own) = rank(module) else {
            found.push(format!("{module} is in no layer: add it to LAYERS"));
            continue;
        };
        for dep in deps {
            match rank(dep) {
                Some(r) if r > own => found.push(format!(
                    "{module} ({}) uses {dep} ({})",
                    LAYERS[own].0, LAYERS[r].0
                )),
                _ => {}
            }
        }
    }
    found
}

/// A cycle among the imports.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == node) {
            let mut cycle = path[i..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for dep in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(dep, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|m| visit(m, graph, &mut Vec::new(), &mut done))
}

#[test]
fn modules_depend_downward_only() {
    let graph = graph(&src_dir());
    let found = violations(&graph);
    assert!(
        found.is_empty(),
        "imports against the layer order (docs/architecture.md): {found:#?}"
    );
    if let Some(cycle) = cycle(&graph) {
        panic!("a module cycle: {}", cycle.join(" -> "));
    }
}

#[test]
fn the_cli_front_uses_the_api_layer() {
    let mut found = BTreeSet::new();
    for file in ["main.rs", "cli.rs"] {
        let source = code(&std::fs::read_to_string(src_dir().join(file)).unwrap());
        for module in uses(&source, "podlab") {
            if !FRONT_MAY_USE.contains(&module.as_str()) {
                found.insert((file, module));
            }
        }
    }
    assert!(
        found.is_empty(),
        "the CLI reaches below the API layer: {found:?}"
    );
}

/// The checker itself: an upward import, a grouped one, a cycle, and an
/// import inside a comment or a test module that does not count.
#[test]
fn the_checker_refuses_a_wrong_import() {
    let source = "use crate::{api::{self, Error}, store};\n// crate::serve\nfn f() { crate::sys::x(); }\n#[cfg(test)]\nmod tests { use crate::cli; }";
    assert_eq!(
        uses(&code(source), "crate"),
        ["api", "store", "sys"].map(String::from).into()
    );
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("sys".to_string(), ["api".to_string()].into()),
        ("api".to_string(), ["sys".to_string()].into()),
    ]
    .into();
    assert_eq!(violations(&graph), ["sys (sys) uses api (api)"]);
    assert_eq!(
        cycle(&graph),
        Some(["api", "sys", "api"].map(String::from).to_vec())
    );
    let unplaced: BTreeMap<String, BTreeSet<String>> =
        [("newthing".to_string(), BTreeSet::new())].into();
    assert_eq!(violations(&unplaced).len(), 1);
}
