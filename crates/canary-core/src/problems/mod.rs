//! What is wrong with a canary, judged from evidence that does not flicker: restart counts
//! and the last termination (which say the same between two crashes as during one), the
//! newest Events, how long a pod has not been Ready against a deadline, the scheduler's
//! reason, a ReplicaSet's `FailedCreate`, the last analysis verdict, a foreign change and
//! a size that drifted from the one asked. And what to do next in each state: abort first
//! for an unhealthy canary (promotion withheld, with why), analyse first for a healthy one
//! without a verdict, the planned next step first after a passing verdict.
//!
//! Pure: the adapters (`canary-kube`) turn pods, ReplicaSets, Events and the history into
//! the plain [`evidence`] types; times are seconds since the Unix epoch, on the API
//! server's clock.

pub mod evidence;
pub mod judge;
pub mod next;

pub use evidence::{
    ContainerEvidence, EventEvidence, PodEvidence, ReplicaSetEvidence, Side, Situation,
    Termination, VerdictEvidence,
};
pub use judge::{
    Problem, ProblemCode, ProblemEvidence, RECENT_RESTART_SECS, first_unhealthy, is_unhealthy,
    judge, pod_problem,
};
pub use next::{NextInput, NextSteps, VerdictState, next_steps};

#[cfg(test)]
mod tests;
