//! The pod conformance suite (issue 3): pod properties as MUST-tests with IDs,
//! run against any runtime through an adapter. Only the crate skeleton exists so far.
