//! Secrets as the API server keeps them: one record per secret,
//! `<root>/secrets/<namespace>/<name>.json`, readable by root only (mode
//! 0600 in 0700 directories). Secrets are small (at most 1 MiB of values),
//! so the state root holds them like the pods' records. Nothing here logs
//! or prints a value: errors name secrets, keys and paths only.
//!
//! The kubelet side lives here too: the Docker configs a pod's
//! `imagePullSecrets` name, for the pull of its images.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;

use crate::config::Config;
use crate::manifest::{self, FieldError, FieldErrorKind};
use crate::store::{self, Store};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    /// Boxed: validation errors are large, and this error travels inside others.
    #[error(transparent)]
    Manifest(Box<manifest::Error>),
    // kubectl's words.
    #[error("secrets \"{name}\" not found")]
    NotFound { namespace: String, name: String },
    #[error("secrets \"{name}\" already exists")]
    AlreadyExists { namespace: String, name: String },
}

pub type Result<T> = std::result::Result<T, Error>;

impl From<manifest::Error> for Error {
    fn from(e: manifest::Error) -> Error {
        Error::Manifest(Box::new(e))
    }
}

/// What storing a secret did, as kubectl prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Configured,
    Unchanged,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| {
        store::Error::Io {
            path: path.to_path_buf(),
            source,
        }
        .into()
    }
}

fn dir(config: &Config) -> PathBuf {
    config.root.join("secrets")
}

fn record(config: &Config, namespace: &str, name: &str) -> PathBuf {
    dir(config).join(namespace).join(format!("{name}.json"))
}

/// Makes `path` (and the secrets directory above it) owner-only.
fn private_dir(path: &Path) -> Result<()> {
    fs::create_dir_all(path).map_err(io_err(path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(io_err(path))
}

/// Defaults and validates a secret as the API server would, `namespace`
/// being `-n` (or the request's namespace).
pub fn prepare(secret: &mut Secret, namespace: Option<&str>) -> Result<()> {
    manifest::default_secret(secret, namespace)?;
    manifest::validate_secret(secret)?;
    Ok(())
}

fn namespace_of(secret: &Secret) -> &str {
    secret.metadata.namespace.as_deref().unwrap_or("default")
}

/// Stores a prepared secret: a new one gets its uid and creation time; an
/// existing one is replaced when `update_existing` (its type stays, and an
/// `immutable` one keeps its data), else it is AlreadyExists.
pub fn store(
    config: &Config,
    mut secret: Secret,
    update_existing: bool,
) -> Result<(Secret, Outcome)> {
    let namespace = namespace_of(&secret).to_string();
    let name = secret.metadata.name.clone().unwrap_or_default();
    let store = Store::of(config)?;
    let _lock = store.lock()?;
    let path = record(config, &namespace, &name);
    let outcome = match store::read_json_opt::<Secret>(&path)? {
        Some(_) if !update_existing => {
            return Err(Error::AlreadyExists { namespace, name });
        }
        Some(current) => {
            check_update(&current, &secret)?;
            if same_content(&current, &secret) {
                return Ok((current, Outcome::Unchanged));
            }
            secret.metadata.uid = current.metadata.uid.clone();
            secret.metadata.creation_timestamp = current.metadata.creation_timestamp.clone();
            Outcome::Configured
        }
        None => {
            secret.metadata.uid = Some(crate::store::new_uid());
            secret.metadata.creation_timestamp = Some(store::now_time());
            Outcome::Created
        }
    };
    secret.metadata.resource_version =
        Some(store::next_resource_version(&config.root)?.to_string());
    write(config, &secret)?;
    Ok((secret, outcome))
}

fn same_content(a: &Secret, b: &Secret) -> bool {
    a.type_ == b.type_
        && a.data.clone().unwrap_or_default() == b.data.clone().unwrap_or_default()
        && a.immutable == b.immutable
        && a.metadata.labels == b.metadata.labels
        && a.metadata.annotations == b.metadata.annotations
}

/// What the API server refuses to change in a stored secret.
fn check_update(current: &Secret, new: &Secret) -> Result<()> {
    let mut problems = Vec::new();
    if current.type_ != new.type_ {
        problems.push(FieldError {
            path: "type".into(),
            kind: FieldErrorKind::Invalid,
            value: new.type_.as_ref().map(|t| format!("{t:?}")),
            detail: "field is immutable".into(),
        });
    }
    if current.immutable == Some(true) {
        if current.data != new.data {
            problems.push(FieldError {
                path: "data".into(),
                kind: FieldErrorKind::Forbidden,
                value: None,
                detail: "field is immutable when `immutable` is set".into(),
            });
        }
        if new.immutable != Some(true) {
            problems.push(FieldError {
                path: "immutable".into(),
                kind: FieldErrorKind::Forbidden,
                value: None,
                detail: "field is immutable when `immutable` is set".into(),
            });
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(manifest::Error::Invalid {
        kind: "Secret",
        name: new.metadata.name.clone().unwrap_or_default(),
        problems,
    }
    .into())
}

fn write(config: &Config, secret: &Secret) -> Result<()> {
    let namespace = namespace_of(secret);
    private_dir(&dir(config))?;
    private_dir(&dir(config).join(namespace))?;
    let path = record(
        config,
        namespace,
        secret.metadata.name.as_deref().unwrap_or_default(),
    );
    let bytes = serde_json::to_vec(secret).map_err(|source| store::Error::Corrupt {
        path: path.clone(),
        source,
    })?;
    crate::atomic_file::write_private(&path, &bytes).map_err(io_err(&path))
}

/// The secret as the API shows it (kind and apiVersion set).
fn shown(mut secret: Secret) -> Secret {
    secret
        .metadata
        .namespace
        .get_or_insert_with(|| "default".into());
    secret
}

pub fn get(config: &Config, namespace: &str, name: &str) -> Result<Secret> {
    match store::read_json_opt::<Secret>(&record(config, namespace, name))? {
        Some(s) => Ok(shown(s)),
        None => Err(Error::NotFound {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }),
    }
}

/// The secrets of one namespace, or of all, by namespace and name.
pub fn list(config: &Config, namespace: Option<&str>) -> Result<Vec<Secret>> {
    let namespaces = match namespace {
        Some(ns) => vec![ns.to_string()],
        None => namespaces(config),
    };
    let mut out = Vec::new();
    for ns in namespaces {
        let d = dir(config).join(&ns);
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        let mut names: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|x| x == "json")
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        names.sort();
        for path in names {
            if let Some(s) = store::read_json_opt::<Secret>(&path)? {
                out.push(shown(s));
            }
        }
    }
    Ok(out)
}

/// The namespaces that hold secrets.
pub fn namespaces(config: &Config) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir(config))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    out.sort();
    out
}

/// Removes a secret; returns it as it was.
pub fn delete(config: &Config, namespace: &str, name: &str) -> Result<Secret> {
    let store = Store::of(config)?;
    let _lock = store.lock()?;
    let secret = get(config, namespace, name)?;
    let path = record(config, namespace, name);
    fs::remove_file(&path).map_err(io_err(&path))?;
    // An empty namespace directory would keep the namespace listed.
    let _ = fs::remove_dir(dir(config).join(namespace));
    store::next_resource_version(&config.root)?;
    Ok(secret)
}

/// Removes every secret of a namespace being deleted.
pub fn remove_namespace(config: &Config, namespace: &str) -> Result<()> {
    let d = dir(config).join(namespace);
    match fs::remove_dir_all(&d) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(&d)(e)),
    }
}

/// What `podlab gc` found wrong with the secrets' files and put right:
/// records others could read (made 0600 again), temporary files a crash
/// left behind (removed). Returns one line per repair.
pub fn gc(config: &Config) -> Result<Vec<String>> {
    let mut repaired = Vec::new();
    let top = dir(config);
    if !top.exists() {
        return Ok(repaired);
    }
    let private = |path: &Path, mode: u32, repaired: &mut Vec<String>| -> Result<()> {
        let meta = fs::symlink_metadata(path).map_err(io_err(path))?;
        if meta.permissions().mode() & 0o777 != mode {
            fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_err(path))?;
            repaired.push(format!("made {} mode {mode:o}", path.display()));
        }
        Ok(())
    };
    private(&top, 0o700, &mut repaired)?;
    for ns in namespaces(config) {
        let d = top.join(&ns);
        private(&d, 0o700, &mut repaired)?;
        for entry in fs::read_dir(&d).map_err(io_err(&d))?.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(crate::atomic_file::TMP_PREFIX) {
                fs::remove_file(&path).map_err(io_err(&path))?;
                repaired.push(format!("removed {}", path.display()));
            } else {
                private(&path, 0o600, &mut repaired)?;
            }
        }
    }
    Ok(repaired)
}

/// The `kubernetes.io/dockerconfigjson` secret `kubectl create secret
/// docker-registry` makes: one login for `server`.
pub fn docker_registry(
    name: &str,
    server: &str,
    username: &str,
    password: &str,
    email: Option<&str>,
) -> Secret {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let mut entry = serde_json::json!({"username": username, "password": password, "auth": auth});
    if let Some(email) = email.filter(|e| !e.is_empty()) {
        entry["email"] = serde_json::json!(email);
    }
    let config = serde_json::json!({"auths": {server: entry}});
    Secret {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.to_string()),
            ..Default::default()
        },
        type_: Some(manifest::DOCKER_CONFIG_JSON.to_string()),
        data: Some(BTreeMap::from([(
            manifest::DOCKER_CONFIG_JSON_KEY.to_string(),
            ByteString(config.to_string().into_bytes()),
        )])),
        ..Default::default()
    }
}

/// The Docker configs a pod's image pull secrets hold, and the names of
/// those that could not be read. A secret of another type holds no login
/// and is passed over without a word, as the kubelet does.
#[derive(Debug, Default)]
pub struct PullAuths {
    pub configs: Vec<serde_json::Value>,
    pub missing: Vec<String>,
}

/// Reads the pull secrets `names` of `namespace`, as the kubelet does
/// before a pull: a secret that is not there is reported, not fatal.
pub fn pull_auths(config: &Config, namespace: &str, names: &[String]) -> PullAuths {
    let mut out = PullAuths::default();
    for name in names {
        match get(config, namespace, name) {
            Ok(secret) => out.configs.extend(docker_config_of(&secret)),
            Err(_) => out.missing.push(name.clone()),
        }
    }
    out
}

/// The Docker config of a dockerconfigjson or dockercfg secret.
fn docker_config_of(secret: &Secret) -> Option<serde_json::Value> {
    let data = secret.data.as_ref()?;
    let key = match secret.type_.as_deref()? {
        manifest::DOCKER_CONFIG_JSON => manifest::DOCKER_CONFIG_JSON_KEY,
        manifest::DOCKERCFG => manifest::DOCKERCFG_KEY,
        _ => return None,
    };
    let value: serde_json::Value = serde_json::from_slice(&data.get(key)?.0).ok()?;
    // The older format is the bare map of logins.
    Some(if key == manifest::DOCKERCFG_KEY {
        serde_json::json!({ "auths": value })
    } else {
        value
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn config(tmp: &Path) -> Config {
        Config::new(tmp.join("root"), tmp.join("images"), tmp.join("data"))
    }

    fn prepared(mut s: Secret, ns: &str) -> Secret {
        prepare(&mut s, Some(ns)).unwrap();
        s
    }

    #[test]
    fn secrets_are_stored_private_listed_updated_and_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let config = config(tmp.path());
        let s = prepared(
            docker_registry("reg", "127.0.0.1:5000", "me", "pw", None),
            "team",
        );
        let (stored, outcome) = store(&config, s.clone(), false).unwrap();
        assert_eq!(outcome, Outcome::Created);
        assert!(stored.metadata.uid.is_some());
        let path = record(&config, "team", "reg");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(dir(&config)).unwrap().mode() & 0o777, 0o700);
        assert!(matches!(
            store(&config, s.clone(), false),
            Err(Error::AlreadyExists { .. })
        ));
        assert_eq!(
            store(&config, s.clone(), true).unwrap().1,
            Outcome::Unchanged
        );
        let other = prepared(
            docker_registry("reg", "127.0.0.1:5000", "me", "new", None),
            "team",
        );
        let (updated, outcome) = store(&config, other, true).unwrap();
        assert_eq!(outcome, Outcome::Configured);
        assert_eq!(updated.metadata.uid, stored.metadata.uid);
        let mut opaque = s.clone();
        opaque.type_ = Some(manifest::OPAQUE.into());
        let err = store(&config, opaque, true).unwrap_err().to_string();
        assert!(
            err.contains("type: Invalid value: \"Opaque\": field is immutable"),
            "{err}"
        );

        assert_eq!(list(&config, Some("team")).unwrap().len(), 1);
        assert_eq!(list(&config, None).unwrap().len(), 1);
        assert!(list(&config, Some("default")).unwrap().is_empty());
        assert_eq!(namespaces(&config), ["team"]);

        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(path.with_file_name(".tmp-reg.json-1-0"), b"{").unwrap();
        assert_eq!(gc(&config).unwrap().len(), 2);
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert!(gc(&config).unwrap().is_empty());

        delete(&config, "team", "reg").unwrap();
        assert!(matches!(
            get(&config, "team", "reg"),
            Err(Error::NotFound { .. })
        ));
        assert!(namespaces(&config).is_empty());
    }

    #[test]
    fn pull_auths_read_listed_docker_secrets_and_name_the_missing_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let config = config(tmp.path());
        let reg = prepared(
            docker_registry("reg", "https://127.0.0.1:5000", "me", "pw", Some("a@b")),
            "default",
        );
        store(&config, reg, false).unwrap();
        let mut opaque = Secret {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("plain".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        prepare(&mut opaque, None).unwrap();
        store(&config, opaque, false).unwrap();
        let names = ["gone", "reg", "plain"].map(String::from);
        let auths = pull_auths(&config, "default", &names);
        assert_eq!(auths.missing, ["gone"]);
        assert_eq!(auths.configs.len(), 1);
        let entry = &auths.configs[0]["auths"]["https://127.0.0.1:5000"];
        assert_eq!(entry["username"], "me");
        assert_eq!(entry["email"], "a@b");
        assert_eq!(entry["auth"], "bWU6cHc=");
        remove_namespace(&config, "default").unwrap();
        assert!(list(&config, None).unwrap().is_empty());
    }
}
