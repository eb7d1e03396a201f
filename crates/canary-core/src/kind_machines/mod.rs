//! The state machines of the other workload kinds' canaries, beside the Deployment's
//! ([`crate::machine`]): from what a canary recorded, what is observed now and the goal, the
//! next action. Each rests on its kind's controller model in [`crate::rollout_math`] and is
//! driven against the real controllers by `crates/canary-kube/tests/kinds_model.rs`.
//!
//! - [`statefulset`]: the brake is `partition = replicas - k`; abort deletes what the
//!   controller never replaces (the forced rollback);
//! - [`daemonset`]: the brake is `updateStrategy: OnDelete`; the canary is the pods of chosen
//!   nodes, deleted by the tool;
//! - [`foreign`]: someone else's template, and the answer that does not fight it;
//! - [`record`]: what a canary of either kind records, in an annotation of the workload itself
//!   written with each change (why not in a ConfigMap: see there).

pub mod daemonset;
pub mod foreign;
pub mod record;
pub mod release;
pub mod statefulset;
