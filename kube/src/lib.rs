//! Kubernetes' own rules that both the podlab runtime and the conformance
//! suite need, kept once so the two can never disagree about them:
//! resource [`quantity`] parsing, a pod's [`qos`] class and the
//! [`expansion`] of `$(VAR)` references.

pub mod expansion;
pub mod qos;
pub mod quantity;
