//! podlab: a minimal, real Kubernetes pod runtime.
//!
//! The path of a pod, as in a cluster: [`manifest`] parses and validates what
//! the user applies; [`api`] stores it ([`store`]), binds it to this node and
//! hands it to its [`shim`] (the kubelet's part), which builds the
//! [`sandbox`] (named netns + pause process), starts each [`container`] in
//! its own [`cgroups`] leaf from an [`image`], and reports the [`lifecycle`].
//! [`namespaces`] is the one place that decides which namespaces a process
//! joins or creates; [`sys`] is the seam for privileged syscalls.

#![deny(unsafe_code)]

pub mod api;
pub mod atomic_file;
pub mod cgroups;
pub mod cni;
pub mod config;
pub mod container;
pub mod downward;
pub use podlab_kube::error;
pub mod etc_files;
pub mod feed;
pub mod hostpath;
pub mod image;
pub mod kube_namespaces;
pub mod lifecycle;
pub mod logs;
pub mod manifest;
pub mod mutants;
pub mod namespaces;
pub mod network;
pub mod node;
pub mod patch;
pub mod pod_update;
pub mod probe;
pub use podlab_kube::quantity;
pub mod safepath;
pub mod sandbox;
pub mod scheduler;
pub mod seccomp;
pub mod secrets;
pub mod security;
pub mod selector;
pub mod serve;
pub mod shim;
pub mod store;
pub mod sys;
pub mod termination;
pub mod testhook;
pub mod tls;
