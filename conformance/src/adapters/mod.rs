//! Adapters: one per runtime, each implementing [`crate::runtime::Runtime`].
//!
//! - [`podlab`]: drives the `podlab` binary with a private state directory.
//! - [`podman`]: `podman kube play` with private storage and configuration.
//! - [`cli`]: any kubectl-compatible binary (docs/adapter-contract.md).

pub mod cli;
pub mod podlab;
pub mod podman;
