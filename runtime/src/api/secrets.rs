//! Secrets as a front reads and writes them.

use k8s_openapi::api::core::v1::Secret;

use super::Result;
use crate::config::Config;
use crate::secrets;

/// `create secret docker-registry`: a `kubernetes.io/dockerconfigjson`
/// secret holding one registry login; an existing one is AlreadyExists.
pub fn create_docker_registry_secret(
    config: &Config,
    namespace: Option<&str>,
    name: &str,
    server: &str,
    username: &str,
    password: &str,
    email: Option<&str>,
) -> Result<Secret> {
    let mut secret = secrets::docker_registry(name, server, username, password, email);
    secrets::prepare(&mut secret, namespace)?;
    Ok(secrets::store(config, secret, false)?.0)
}

/// One secret.
pub fn get_secret(config: &Config, namespace: &str, name: &str) -> Result<Secret> {
    Ok(secrets::get(config, namespace, name)?)
}

/// The secrets of one namespace, or of all.
pub fn list_secrets(config: &Config, namespace: Option<&str>) -> Result<Vec<Secret>> {
    Ok(secrets::list(config, namespace)?)
}

/// Deletes a secret and returns it as it was.
pub fn delete_secret(config: &Config, namespace: &str, name: &str) -> Result<Secret> {
    Ok(secrets::delete(config, namespace, name)?)
}
