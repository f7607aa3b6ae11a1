//! Kubernetes namespaces (the API objects, not Linux namespaces): the four
//! a fresh cluster has, those created through the API (one small record
//! each, `<root>/namespaces/<name>.json`), and those that hold pods made
//! with `podlab apply -n` (pods or secrets). Deleting one marks it
//! Terminating, deletes its pods, then removes its secrets and its record.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::api;
use crate::config::Config;
use crate::store::{self, PodKey, Store};

/// Namespaces that always exist, as in a fresh cluster.
pub const FIXED: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

pub const ACTIVE: &str = "Active";
pub const TERMINATING: &str = "Terminating";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Api(#[from] api::Error),
    #[error(transparent)]
    Secrets(#[from] crate::secrets::Error),
    #[error("namespaces \"{0}\" not found")]
    NotFound(String),
    #[error("namespaces \"{0}\" already exists")]
    AlreadyExists(String),
    #[error("namespace \"{0}\" is forbidden: this namespace may not be deleted")]
    Undeletable(String),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// One namespace as stored (or made up, for the fixed ones and those that
/// only hold pods).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Namespace {
    pub name: String,
    pub uid: String,
    #[serde(rename = "creationTimestamp")]
    pub creation_timestamp: String,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    pub phase: String,
    #[serde(rename = "deletionTimestamp", default)]
    pub deletion_timestamp: Option<String>,
    #[serde(rename = "resourceVersion", default)]
    pub resource_version: u64,
}

fn dir(config: &Config) -> PathBuf {
    config.root.join("namespaces")
}

fn record(config: &Config, name: &str) -> PathBuf {
    dir(config).join(format!("{name}.json"))
}

fn implicit(name: &str, since: &str) -> Namespace {
    Namespace {
        name: name.to_string(),
        uid: String::new(),
        creation_timestamp: since.to_string(),
        labels: Default::default(),
        phase: ACTIVE.into(),
        deletion_timestamp: None,
        resource_version: 0,
    }
}

/// Every namespace, by name; `since` dates those without a record.
pub fn list(config: &Config, since: &str) -> Result<Vec<Namespace>> {
    let mut out: std::collections::BTreeMap<String, Namespace> = FIXED
        .iter()
        .map(|n| (n.to_string(), implicit(n, since)))
        .collect();
    let store = Store::of(config)?;
    for pod in store.list(None)? {
        out.entry(pod.key.namespace.clone())
            .or_insert_with(|| implicit(&pod.key.namespace, since));
    }
    for ns in crate::secrets::namespaces(config) {
        out.entry(ns.clone())
            .or_insert_with(|| implicit(&ns, since));
    }
    if let Ok(entries) = std::fs::read_dir(dir(config)) {
        for e in entries.flatten() {
            if let Ok(Some(ns)) = store::read_json_opt::<Namespace>(&e.path()) {
                out.insert(ns.name.clone(), ns);
            }
        }
    }
    Ok(out
        .into_values()
        .map(|mut n| {
            n.labels
                .insert("kubernetes.io/metadata.name".into(), n.name.clone());
            n
        })
        .collect())
}

pub fn get(config: &Config, name: &str, since: &str) -> Result<Namespace> {
    list(config, since)?
        .into_iter()
        .find(|n| n.name == name)
        .ok_or_else(|| Error::NotFound(name.to_string()))
}

/// Records a new namespace (a DNS label, as Kubernetes requires).
pub fn create(
    config: &Config,
    name: &str,
    labels: std::collections::BTreeMap<String, String>,
    since: &str,
) -> Result<Namespace> {
    let label_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !label_ok {
        return Err(Error::Invalid(format!(
            "The Namespace {name:?} is invalid: metadata.name: Invalid value: {name:?}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
        )));
    }
    let store = Store::of(config)?;
    let _lock = store.lock()?;
    if get(config, name, since).is_ok() {
        return Err(Error::AlreadyExists(name.to_string()));
    }
    let ns = Namespace {
        name: name.to_string(),
        uid: store::new_uid(),
        creation_timestamp: store::now_rfc3339(),
        labels,
        phase: ACTIVE.into(),
        deletion_timestamp: None,
        resource_version: store::next_resource_version(&config.root)?,
    };
    write(config, &ns)?;
    Ok(ns)
}

fn write(config: &Config, ns: &Namespace) -> Result<()> {
    let d = dir(config);
    std::fs::create_dir_all(&d).map_err(|source| store::Error::Io {
        path: d.clone(),
        source,
    })?;
    Ok(store::write_json_atomic(&record(config, &ns.name), ns)?)
}

/// Marks the namespace Terminating and asks every pod in it to go; the
/// pods it must wait for come back (see [`finish_delete`]).
pub fn begin_delete(
    config: &Config,
    name: &str,
    since: &str,
) -> Result<(Namespace, Vec<api::Deletion>)> {
    if FIXED.contains(&name) {
        return Err(Error::Undeletable(name.to_string()));
    }
    let mut ns = get(config, name, since)?;
    if ns.deletion_timestamp.is_none() {
        ns.phase = TERMINATING.into();
        ns.deletion_timestamp = Some(store::now_rfc3339());
        if ns.uid.is_empty() {
            ns.uid = store::new_uid();
        }
        ns.resource_version = store::next_resource_version(&config.root)?;
        write(config, &ns)?;
    }
    let store = Store::of(config)?;
    let mut deletions = Vec::new();
    for pod in store.list(Some(name))? {
        let key = PodKey::new(name, pod.key.name.clone());
        match api::begin_delete(config, &key, None) {
            Ok(d) => deletions.push(d),
            // Gone meanwhile.
            Err(api::Error::Store(store::Error::NotFound { .. })) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok((ns, deletions))
}

/// Waits for the namespace's pods to be gone, then removes its secrets
/// and its record.
pub fn finish_delete(config: &Config, name: &str, deletions: Vec<api::Deletion>) -> Result<()> {
    for d in deletions {
        api::finish_delete(config, d)?;
    }
    crate::secrets::remove_namespace(config, name)?;
    match std::fs::remove_file(record(config, name)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(store::Error::Io {
                path: record(config, name),
                source,
            }
            .into())
        }
    }
    store::next_resource_version(&config.root)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_namespaces_are_listed_and_fixed_ones_stay() {
        let tmp = tempfile::tempdir().unwrap();
        let config = Config::new(
            tmp.path().join("root"),
            tmp.path().join("images"),
            tmp.path().join("data"),
        );
        let since = "2026-01-01T00:00:00Z";
        create(&config, "team-a", Default::default(), since).unwrap();
        assert!(matches!(
            create(&config, "team-a", Default::default(), since),
            Err(Error::AlreadyExists(_))
        ));
        assert!(matches!(
            create(&config, "Bad_Name", Default::default(), since),
            Err(Error::Invalid(_))
        ));
        let names: Vec<String> = list(&config, since)
            .unwrap()
            .into_iter()
            .map(|n| n.name)
            .collect();
        assert_eq!(
            names,
            [
                "default",
                "kube-node-lease",
                "kube-public",
                "kube-system",
                "team-a"
            ]
        );
        let a = get(&config, "team-a", since).unwrap();
        assert_eq!(a.phase, ACTIVE);
        assert_eq!(a.labels["kubernetes.io/metadata.name"], "team-a");
        assert!(matches!(
            begin_delete(&config, "default", since),
            Err(Error::Undeletable(_))
        ));
        // A namespace that holds only a secret is listed, and its
        // deletion takes the secret with it.
        let mut secret = crate::secrets::docker_registry("login", "127.0.0.1:5000", "u", "p", None);
        crate::secrets::prepare(&mut secret, Some("team-a")).unwrap();
        crate::secrets::store(&config, secret, false).unwrap();
        let mut other = crate::secrets::docker_registry("login", "h", "u", "p", None);
        crate::secrets::prepare(&mut other, Some("team-b")).unwrap();
        crate::secrets::store(&config, other, false).unwrap();
        assert!(get(&config, "team-b", since).is_ok());
        let (ns, pods) = begin_delete(&config, "team-a", since).unwrap();
        assert_eq!(ns.phase, TERMINATING);
        assert!(pods.is_empty());
        assert_eq!(get(&config, "team-a", since).unwrap().phase, TERMINATING);
        finish_delete(&config, "team-a", pods).unwrap();
        assert!(crate::secrets::list(&config, Some("team-a"))
            .unwrap()
            .is_empty());
        assert_eq!(crate::secrets::list(&config, None).unwrap().len(), 1);
        assert!(matches!(
            get(&config, "team-a", since),
            Err(Error::NotFound(_))
        ));
    }
}
