//! podlab: a minimal pod runtime.

pub mod quantity;
