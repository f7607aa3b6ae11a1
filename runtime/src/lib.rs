//! podlab: a minimal pod runtime.

pub mod manifest;
pub mod quantity;
