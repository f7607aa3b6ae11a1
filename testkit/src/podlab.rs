//! What xtask must know of podlab's defaults without linking the runtime;
//! a unit test of runtime/src/config.rs keeps each equal to the runtime's.

/// The pids limit podlab gives a container without one of its own
/// (`PODLAB_PIDS_LIMIT` unset): the `container-pids=` capability of the
/// runs that use podlab's defaults (cli:podlab, cli:kubectl, the labs).
pub const DEFAULT_PIDS_LIMIT: i64 = 1024;
