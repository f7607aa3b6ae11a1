//! OCI image basics shared by podlab's image store (`podlab::image`) and
//! the tools that write images (`cargo xtask fixtures`, the pull
//! benchmark, tests): sha256 digests, the image config podlab runs by, the
//! index helpers of an OCI image layout and a reproducible layout writer.
//! It knows nothing of pods, so xtask can use it without linking podlab.

pub mod digest;
pub mod layout;

use std::io;

pub use digest::{sha256_digest, to_hex, HashingReader};

/// Errors of writing layers and layouts; messages name the file or the
/// metadata involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
}

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

/// The parts of an image config that decide how a container starts.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageConfig {
    pub env: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
}

impl ImageConfig {
    /// The parts podlab uses of an image config's `config` (none: all empty).
    pub fn from_oci(config: Option<&oci_spec::image::Config>) -> Self {
        let Some(config) = config else {
            return ImageConfig::default();
        };
        let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        ImageConfig {
            env: config.env().clone().unwrap_or_default(),
            entrypoint: config.entrypoint().clone().unwrap_or_default(),
            cmd: config.cmd().clone().unwrap_or_default(),
            working_dir: non_empty(config.working_dir()),
            user: non_empty(config.user()),
        }
    }
}
