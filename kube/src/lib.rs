//! Kubernetes' own rules that both the podlab runtime and the conformance
//! suite need, kept once so the two can never disagree about them:
//! resource [`quantity`] parsing and a pod's [`qos`] class.

pub mod qos;
pub mod quantity;
