//! Adapters: one per runtime, each implementing [`crate::runtime::Runtime`].

pub mod podlab;
