//! podlab's image store: OCI image layouts and oci-archives imported into a
//! local OCI layout, with each layer unpacked once into a directory that
//! serves as an overlayfs lower dir.
//!
//! On disk, under the store root:
//! - `oci/`: an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256`);
//!   each `index.json` entry is one image name (the
//!   `org.opencontainers.image.ref.name` annotation holds the full reference);
//! - `layers/sha256/<hex>`: the unpacked layer whose blob has that digest;
//! - `pulls/<key>.lock`, `pulls/<key>/`: a pull's lock (one per reference)
//!   and the layers it fetched before they move into `oci/blobs`;
//! - `lock`: flock'd exclusively by writers (import, tag, remove) and shared
//!   by readers (list, lookup, prepare), so several podlab processes can work
//!   on one store.

mod blob;
mod hosts;
mod pull;
mod reference;
mod registry;
mod store;
pub mod unpack;

#[cfg(test)]
mod tests;

use std::io;

pub use blob::sha256_digest;
pub use hosts::{docker_config_path, DOCKER_HUB_AUTH_KEY};
/// The layout writer and the image config live in `podlab-oci`, which
/// xtask uses without linking podlab.
pub use podlab_oci::{layout, ImageConfig};
pub use pull::{hosts_of, Progress, PullOptions};
pub use reference::{normalize_reference, Reference, LOCAL_REGISTRY};
pub use store::{host_arch, ImageStore};

/// Errors of the image store; messages name the reference, digest or tar
/// entry involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    /// A registry answered with an error status.
    #[error("{url}: {status}{}", if message.is_empty() { String::new() } else { format!(" ({message})") })]
    Registry {
        url: String,
        status: String,
        message: String,
    },
    /// A registry could not be reached or the exchange broke off.
    #[error("{url}: {reason}")]
    Transport { url: String, reason: String },
    #[error("image {0} not found")]
    NotFound(String),
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("invalid digest {0:?}: only sha256:<64 lowercase hex> is supported")]
    InvalidDigest(String),
    #[error("blob {digest} is corrupt: its content has digest {actual}")]
    DigestMismatch { digest: String, actual: String },
    #[error("blob {digest} is corrupt: expected {expected} bytes, found {actual}")]
    SizeMismatch {
        digest: String,
        expected: u64,
        actual: u64,
    },
    #[error("layer {digest}: its tar has digest {actual}, but the image config says {expected}")]
    DiffIdMismatch {
        digest: String,
        expected: String,
        actual: String,
    },
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
    /// Building an image index (the layout helpers of `podlab-oci`).
    #[error(transparent)]
    Layout(#[from] podlab_oci::Error),
    #[error("layer {digest}: unsupported media type {media_type}: {reason}")]
    UnsupportedMediaType {
        digest: String,
        media_type: String,
        reason: String,
    },
    #[error(
        "{src}: image {digest} has no usable name (annotation: {annotation:?}); give it one with --name"
    )]
    NameRequired {
        src: String,
        digest: String,
        annotation: Option<String>,
    },
    #[error("{src}: holds {count} images, so one --name cannot name them all")]
    AmbiguousName { src: String, count: usize },
    #[error(
        "image index {digest}: no linux/{} manifest among its {count} entries",
        store::host_arch()
    )]
    NoPlatform { digest: String, count: usize },
    #[error("layer {layer}: refusing tar entry {entry:?}: {reason}")]
    UnsafeEntry {
        layer: String,
        entry: String,
        reason: String,
    },
    #[error("layer {layer}: unsupported tar entry type {kind} for {entry:?}")]
    UnsupportedEntry {
        layer: String,
        entry: String,
        kind: String,
    },
    #[error(
        "layer {layer}: cannot create {what} for entry {entry:?} \
         (unpacking whiteouts needs root: CAP_MKNOD and CAP_SYS_ADMIN)"
    )]
    Privilege {
        layer: String,
        entry: String,
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The registry refused the login (or asked for one): another login
    /// may do better.
    pub(crate) fn is_unauthorized(&self) -> bool {
        matches!(self, Error::Registry { status, .. } if status.starts_with("401"))
    }
}

/// One named image in the store.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ImageInfo {
    /// Full reference, e.g. `docker.io/library/busybox:latest`.
    pub reference: String,
    /// `sha256:...` of the image manifest.
    pub digest: String,
    /// Bytes of manifest, config and (compressed) layers.
    pub size: u64,
    /// The config's `created` timestamp, when it has one.
    pub created: Option<String>,
}

/// An image ready to run: its layers unpacked, bottom layer first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreparedImage {
    pub reference: String,
    pub digest: String,
    pub config: ImageConfig,
    /// Unpacked layer directories, bottom layer first (overlayfs wants its
    /// `lowerdir=` list the other way round: top first).
    pub layers: Vec<std::path::PathBuf>,
}

impl PreparedImage {
    /// The `imageID` a kubelet reports: `registry/repository@sha256:…` (the
    /// repo digest), or the bare digest if the reference does not parse.
    pub fn image_id(&self) -> String {
        repo_digest(&self.reference, &self.digest)
    }
}

/// `registry/repository@digest` for a reference and a manifest digest.
pub fn repo_digest(reference: &str, digest: &str) -> String {
    match Reference::parse(reference) {
        Ok(r) => format!("{}@{digest}", r.name()),
        Err(_) => digest.to_string(),
    }
}
