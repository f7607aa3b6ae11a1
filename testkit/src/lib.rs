//! The kit shared by podlab's integration tests (runtime/tests), the
//! conformance suite and xtask: one pod manifest builder, the probe's
//! output, and the checks for what a runtime left on the host.

pub mod host;
pub mod manifest;
pub mod podlab;
pub mod probe;
pub mod registry;
pub mod skip;
pub mod source;
