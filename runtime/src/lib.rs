//! podlab: a minimal pod runtime.
