//! Pure logic of kubectl-canary.
//!
//! Nothing in this crate performs I/O: it is the model of the Deployment controller's
//! rolling-update arithmetic, the canary planner, the canary state machine that decides
//! the next change from a recorded intent and an observed Deployment, and the analysis
//! verdicts and statistics. The `canary-kube` crate feeds it observations and carries
//! out its decisions.

pub mod analysis_spec;
pub mod duration;
pub mod foreign;
pub mod gate;
pub mod gitops;
pub mod goal;
pub mod history;
pub mod image;
pub mod kind_machines;
pub mod machine;
pub mod notify;
pub mod plan;
pub mod pod;
pub mod problems;
pub mod record;
pub mod release;
pub mod rollout_math;
pub mod seal;
pub mod stats;
pub mod step_policy;
pub mod target;
pub mod text;
pub mod traffic;
pub mod validate;
pub mod verdict;
