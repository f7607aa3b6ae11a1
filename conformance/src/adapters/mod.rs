//! Adapters: one per runtime, each implementing [`crate::runtime::Runtime`].
//!
//! - [`podlab`]: drives the `podlab` binary with a private state directory.
//! - [`podman`]: `podman kube play` with private storage and configuration.
//! - `cri`: any CRI v1 runtime (containerd) on its socket, with the
//!   kubelet's part done by the adapter; built with the `cri` feature.
//! - [`cli`]: any kubectl-compatible binary (docs/adapter-contract.md).
//!
//! [`process`] runs a tool as a child process with a deadline; [`host`]
//! holds the checks of the host that the local adapters share.

pub mod cli;
#[cfg(feature = "cri")]
pub mod cri;
pub mod host;
pub mod podlab;
pub mod podman;
pub mod process;
