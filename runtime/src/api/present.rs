//! Pure helpers a front uses to show pods as kubectl does (STATUS, READY,
//! RESTARTS, AGE, probe timings, host ports): functions of the objects
//! alone, so fronts may call them as they render.

pub use crate::lifecycle::{
    condition_is_true, display_status, human_duration, ready_count, restarts,
};
pub use crate::probe::Timing as ProbeTiming;
pub use crate::scheduler::host_ports_described;
