//! Kubernetes' own rules that both the podlab runtime and the conformance
//! suite need, kept once so the two can never disagree about them:
//! resource [`quantity`] parsing, a pod's [`qos`] class, the
//! [`expansion`] of `$(VAR)` references, the kubelet's safe [`sysctl`]s and
//! its [`hostpath`] type checks; and how an [`error`] reads to a user, so
//! both show causes the same way.

pub mod error;
pub mod expansion;
pub mod hostpath;
pub mod qos;
pub mod quantity;
pub mod sysctl;
