//! The node's image store as a front sees it: import, pull, list, tag, remove.

use std::path::Path;

use super::{Error, Result};
use crate::config::Config;
use crate::image::ImageStore;

pub use crate::image::{ImageInfo, Progress as PullProgress, DOCKER_HUB_AUTH_KEY};

/// Imports an OCI image layout directory or oci-archive tar, under `name`
/// when given; returns what it now names.
pub fn import_image(config: &Config, path: &Path, name: Option<&str>) -> Result<Vec<ImageInfo>> {
    Ok(ImageStore::open(&config.image_root)?.import(path, name)?)
}

/// Pulls `reference` from its registry, reporting to `progress`. With
/// `logins_from`, a file holding a JSON list of Docker configs whose logins
/// are tried first: how the shim hands over a pod's image pull secrets. The
/// file is removed once read, so the logins do not outlive the pull.
pub fn pull_image(
    config: &Config,
    reference: &str,
    logins_from: Option<&Path>,
    progress: &mut dyn FnMut(&PullProgress),
) -> Result<ImageInfo> {
    let store = ImageStore::open(&config.image_root)?;
    let mut options = config.pull_options();
    if let Some(path) = logins_from {
        let text = std::fs::read(path).map_err(|source| Error::ReadPullLogins {
            path: path.to_path_buf(),
            source,
        });
        let _ = std::fs::remove_file(path);
        options.secret_configs =
            serde_json::from_slice(&text?).map_err(|source| Error::BadPullLogins {
                path: path.to_path_buf(),
                source,
            })?;
    }
    Ok(store.pull(reference, &options, progress)?)
}

/// The store's images.
pub fn list_images(config: &Config) -> Result<Vec<ImageInfo>> {
    Ok(ImageStore::open(&config.image_root)?.list()?)
}

/// Gives the image `source` names another name.
pub fn tag_image(config: &Config, source: &str, target: &str) -> Result<()> {
    Ok(ImageStore::open(&config.image_root)?.tag(source, target)?)
}

/// Removes an image name, and the blobs nothing else uses.
pub fn remove_image(config: &Config, reference: &str) -> Result<()> {
    Ok(ImageStore::open(&config.image_root)?.remove(reference)?)
}
