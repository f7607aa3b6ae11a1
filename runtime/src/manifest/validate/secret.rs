//! Secrets, checked as the API server checks them: the name, the keys of
//! `data`, the total size, and the keys each built-in `type` requires (a
//! `kubernetes.io/dockerconfigjson` secret must hold a Docker config that
//! parses). Values never appear in a message: a bad one is shown redacted.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;

use super::{is_label, is_subdomain, quote, FieldErrorKind, Validator, LABEL_RULE, SUBDOMAIN_RULE};
use crate::manifest::Error;

pub const OPAQUE: &str = "Opaque";
pub const DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";
pub const DOCKER_CONFIG_JSON_KEY: &str = ".dockerconfigjson";
pub const DOCKERCFG: &str = "kubernetes.io/dockercfg";
pub const DOCKERCFG_KEY: &str = ".dockercfg";
const BASIC_AUTH: &str = "kubernetes.io/basic-auth";
const SSH_AUTH: &str = "kubernetes.io/ssh-auth";
const TLS: &str = "kubernetes.io/tls";
const SERVICE_ACCOUNT_TOKEN: &str = "kubernetes.io/service-account-token";
const SERVICE_ACCOUNT_NAME: &str = "kubernetes.io/service-account.name";

/// The most bytes a secret's values may add up to, as Kubernetes bounds it.
pub const MAX_SECRET_BYTES: usize = 1 << 20;
/// What a message shows instead of a secret value.
const REDACTED: &str = "\"<secret contents redacted>\"";
const KEY_RULE: &str = "a key must be at most 253 letters, digits, '-', '_' or '.', and neither \".\" nor \"..\" nor start with \"..\" (e.g. \"password\", \"tls.crt\", \".dockerconfigjson\")";

/// Fills in what the API server does before validating: `stringData`
/// folded into `data` (its values win), the type `Opaque` when none is
/// given, and the namespace from `-n` (which must agree with the manifest's).
pub fn default_secret(secret: &mut Secret, namespace: Option<&str>) -> Result<(), Error> {
    crate::manifest::defaults::default_namespace(&mut secret.metadata, namespace)?;
    if let Some(strings) = secret.string_data.take() {
        let data = secret.data.get_or_insert_with(Default::default);
        for (k, v) in strings {
            data.insert(k, ByteString(v.into_bytes()));
        }
    }
    if secret.type_.as_deref().is_none_or(str::is_empty) {
        secret.type_ = Some(OPAQUE.to_string());
    }
    Ok(())
}

/// A key of `data`: `[-._a-zA-Z0-9]+`, at most 253 bytes, not a path step.
fn is_config_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && key != "."
        && key != ".."
        && !key.starts_with("..")
}

/// Checks a defaulted secret; every problem as [`Error::Invalid`].
pub fn validate_secret(secret: &Secret) -> Result<(), Error> {
    let mut v = Validator::default();
    let name = secret.metadata.name.as_deref().unwrap_or("");
    if name.is_empty() {
        v.push(
            "metadata.name",
            FieldErrorKind::Required,
            None,
            "name is required (podlab does not generate names)",
        );
    } else if !is_subdomain(name) {
        v.push(
            "metadata.name",
            FieldErrorKind::Invalid,
            quote(name),
            SUBDOMAIN_RULE,
        );
    }
    if let Some(ns) = secret
        .metadata
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
    {
        if !is_label(ns) {
            v.push(
                "metadata.namespace",
                FieldErrorKind::Invalid,
                quote(ns),
                LABEL_RULE,
            );
        }
    }
    let empty = Default::default();
    let data = secret.data.as_ref().unwrap_or(&empty);
    let mut total = 0;
    for (key, value) in data {
        total += value.0.len();
        if !is_config_key(key) {
            v.push(
                &format!("data[{key}]"),
                FieldErrorKind::Invalid,
                quote(key),
                KEY_RULE,
            );
        }
    }
    if total > MAX_SECRET_BYTES {
        v.push(
            "data",
            FieldErrorKind::Invalid,
            None,
            &format!("{total} bytes: must have at most {MAX_SECRET_BYTES} bytes"),
        );
    }
    let required = |v: &mut Validator, key: &str| {
        if !data.contains_key(key) {
            v.push(&format!("data[{key}]"), FieldErrorKind::Required, None, "");
        }
    };
    match secret.type_.as_deref().unwrap_or(OPAQUE) {
        DOCKER_CONFIG_JSON => {
            required(&mut v, DOCKER_CONFIG_JSON_KEY);
            parses(
                &mut v,
                data.get(DOCKER_CONFIG_JSON_KEY),
                DOCKER_CONFIG_JSON_KEY,
            );
        }
        DOCKERCFG => {
            required(&mut v, DOCKERCFG_KEY);
            parses(&mut v, data.get(DOCKERCFG_KEY), DOCKERCFG_KEY);
        }
        BASIC_AUTH if !data.contains_key("username") && !data.contains_key("password") => {
            v.push(
                "data[username]",
                FieldErrorKind::Required,
                None,
                "a kubernetes.io/basic-auth secret holds a username or a password",
            );
        }
        SSH_AUTH => required(&mut v, "ssh-privatekey"),
        TLS => {
            required(&mut v, "tls.crt");
            required(&mut v, "tls.key");
        }
        SERVICE_ACCOUNT_TOKEN
            if secret
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(SERVICE_ACCOUNT_NAME))
                .is_none_or(|n| n.is_empty()) =>
        {
            v.push(
                &format!("metadata.annotations[{SERVICE_ACCOUNT_NAME}]"),
                FieldErrorKind::Required,
                None,
                "",
            );
        }
        "" => v.push("type", FieldErrorKind::Required, None, ""),
        // Any other type is the user's own and holds what it likes.
        _ => {}
    }
    if v.problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid {
            kind: "Secret",
            name: name.to_string(),
            problems: v.problems,
        })
    }
}

/// A Docker config must be a JSON object; the reason names the JSON
/// problem, never the value.
fn parses(v: &mut Validator, value: Option<&ByteString>, key: &str) {
    let Some(value) = value else { return };
    if let Err(e) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&value.0) {
        v.push(
            &format!("data[{key}]"),
            FieldErrorKind::Invalid,
            Some(REDACTED.to_string()),
            &e.to_string(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(json: serde_json::Value) -> Secret {
        let mut s: Secret = serde_json::from_value(json).unwrap();
        default_secret(&mut s, None).unwrap();
        s
    }

    fn problems(s: &Secret) -> String {
        validate_secret(s).map_or_else(|e| e.to_string(), |()| String::new())
    }

    #[test]
    fn string_data_folds_into_data_and_type_defaults_to_opaque() {
        let s = secret(serde_json::json!({
            "metadata": {"name": "creds"},
            "data": {"user": "b2xk", "pass": "eA=="},
            "stringData": {"user": "new"},
        }));
        assert_eq!(s.type_.as_deref(), Some(OPAQUE));
        assert_eq!(s.metadata.namespace.as_deref(), Some("default"));
        assert!(s.string_data.is_none());
        let data = s.data.as_ref().unwrap();
        assert_eq!(data["user"].0, b"new");
        assert_eq!(data["pass"].0, b"x");
        validate_secret(&s).unwrap();
    }

    #[test]
    fn names_and_keys_are_checked_with_their_paths() {
        let s = secret(serde_json::json!({
            "metadata": {"name": "Bad_Name", "namespace": "Team"},
            "stringData": {"a/b": "x", "..hidden": "y", "ok.key-1_2": "z"},
        }));
        let text = problems(&s);
        assert!(
            text.starts_with("The Secret \"Bad_Name\" is invalid: "),
            "{text}"
        );
        assert!(
            text.contains("metadata.name: Invalid value: \"Bad_Name\""),
            "{text}"
        );
        assert!(
            text.contains("metadata.namespace: Invalid value: \"Team\""),
            "{text}"
        );
        assert!(text.contains("data[a/b]: Invalid value: \"a/b\""), "{text}");
        assert!(text.contains("data[..hidden]: Invalid value"), "{text}");
        assert!(!text.contains("ok.key-1_2"), "{text}");
        let nameless = secret(serde_json::json!({"metadata": {}}));
        assert!(problems(&nameless).contains("metadata.name: Required value"));
    }

    #[test]
    fn a_docker_config_json_secret_needs_a_config_that_parses_and_never_shows_it() {
        let missing = secret(serde_json::json!({
            "metadata": {"name": "reg"},
            "type": DOCKER_CONFIG_JSON,
            "stringData": {"other": "x"},
        }));
        assert_eq!(
            problems(&missing),
            "The Secret \"reg\" is invalid: data[.dockerconfigjson]: Required value"
        );
        let broken = secret(serde_json::json!({
            "metadata": {"name": "reg"},
            "type": DOCKER_CONFIG_JSON,
            "stringData": {".dockerconfigjson": "{\"auths\": hunter2"},
        }));
        let text = problems(&broken);
        assert!(
            text.starts_with("The Secret \"reg\" is invalid: data[.dockerconfigjson]: Invalid value: \"<secret contents redacted>\": "),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
        let good = secret(serde_json::json!({
            "metadata": {"name": "reg"},
            "type": DOCKER_CONFIG_JSON,
            "stringData": {".dockerconfigjson": "{\"auths\": {}}"},
        }));
        validate_secret(&good).unwrap();
    }

    #[test]
    fn built_in_types_require_their_keys_and_size_is_bounded() {
        let tls = secret(serde_json::json!({
            "metadata": {"name": "t"}, "type": "kubernetes.io/tls",
            "stringData": {"tls.crt": "c"},
        }));
        assert_eq!(
            problems(&tls),
            "The Secret \"t\" is invalid: data[tls.key]: Required value"
        );
        let basic = secret(serde_json::json!({
            "metadata": {"name": "b"}, "type": "kubernetes.io/basic-auth",
        }));
        assert!(problems(&basic).contains("data[username]: Required value"));
        let ssh = secret(serde_json::json!({
            "metadata": {"name": "s"}, "type": "kubernetes.io/ssh-auth",
        }));
        assert!(problems(&ssh).contains("data[ssh-privatekey]: Required value"));
        let own = secret(serde_json::json!({
            "metadata": {"name": "o"}, "type": "example.com/own",
        }));
        validate_secret(&own).unwrap();
        let big = secret(serde_json::json!({
            "metadata": {"name": "big"},
            "stringData": {"a": "x".repeat(MAX_SECRET_BYTES), "b": "y"},
        }));
        assert!(
            problems(&big)
                .contains("data: Invalid value: 1048577 bytes: must have at most 1048576 bytes"),
            "{}",
            problems(&big)
        );
    }
}
