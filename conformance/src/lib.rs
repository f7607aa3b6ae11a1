//! The pod conformance suite (issue 3): a Kubernetes pod's documented
//! properties as MUST-tests with IDs, run against any runtime through an
//! adapter, and proven able to fail by deliberately broken runtimes.
//!
//! - [`runtime`]: the adapter contract ([`runtime::Runtime`]) and status polling.
//! - [`adapters`]: one adapter per runtime (podlab, podman, any kubectl-compatible CLI).
//! - [`expectations`]: a runtime's known deviations, so a run fails only on news.
//! - [`summary`]: the test ID × runtime table of every run.
//! - [`tests`]: the registry, one module per property family.
//! - [`runner`], [`filter`], [`report`], [`mutants`], [`docs`]: the `conformance` binary's parts.
//! - [`anchors`]: the Kubernetes and critest tests the suite is measured against.

pub mod adapters;
pub mod anchors;
pub mod docs;
pub mod expectations;
#[cfg(test)]
pub(crate) mod fake;
pub mod filter;
pub mod mutants;
pub mod pods;
pub mod registry;
pub mod report;
pub mod runner;
pub mod runtime;
pub mod suite;
pub mod summary;
pub mod tests;
