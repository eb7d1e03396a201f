//! One step of a recorded canary, as the CLI's drive loops and the GitOps controller's
//! reconcile both take it: the next turn of the state machine towards a goal on what is
//! read now ([`turn`]), the ReplicaSet resize a turn may ask for ([`resize`], through the
//! caller's [`Writer`]), and what follows an analysis ([`after_analysis`]: the goal the
//! CLI drives to, the phase the controller records, from one policy).
//!
//! The CLI drives a turn after another until the goal is reached, waiting on watches; the
//! controller takes one turn per reconcile and is called again. What a turn decides is the
//! same for both.

use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::{Api, ResourceExt};

use canary_core::machine::{Decision, Goal, Resize, decide};
use canary_core::record::{CanaryRecord, Phase};
use canary_core::step_policy::{NextStep, after_verdict};
use canary_core::verdict::Decision as Verdict;

use crate::error::Result;
use crate::observe::DeploymentView;
use crate::workload::Workload;
use crate::write::{Writer, Written};

/// The next turn towards `goal` for `record`, decided on `workload` as read (through the
/// [`Workload`] seam, whatever its kind): the goal as it stands now
/// (a hold follows the record's size, which a followed change of replicas can change) and
/// the state machine's decision.
pub fn turn<W: Workload>(record: &CanaryRecord, goal: Goal, workload: &W) -> (Goal, Decision) {
    let goal = current_goal(goal, record);
    (goal, decide(record, goal, &workload.observation(record)))
}

/// The goal now: a hold follows the record's size; promote-full and abort stay what they
/// are.
fn current_goal(goal: Goal, record: &CanaryRecord) -> Goal {
    match (goal, record.phase.goal()) {
        (Goal::Hold { .. }, hold @ Goal::Hold { .. }) => hold,
        _ => goal,
    }
}

/// Carries out a turn's [`Resize`] as `writer`: the ReplicaSet as `view` read it, guarded by
/// that resourceVersion. A ReplicaSet no longer in the view, or changed since, is
/// [`Written::Conflict`]: decide again.
pub async fn resize(
    writer: Writer,
    api: &Api<ReplicaSet>,
    view: &DeploymentView,
    resize: &Resize,
) -> Result<Written<()>> {
    let Some(replica_set) = view
        .replica_sets
        .iter()
        .find(|rs| rs.name_any() == resize.replica_set)
    else {
        return Ok(Written::Conflict);
    };
    writer.resize_replica_set(api, replica_set, resize.to).await
}

/// What follows an analysis of the step holding `held` pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfterAnalysis {
    /// The step policy's answer.
    pub step: NextStep,
    /// The goal to drive to next; `None` while the canary stays held.
    pub goal: Option<Goal>,
    /// The phase the record takes towards that goal (`None`: it stays).
    pub phase: Option<Phase>,
}

/// What follows `verdict` on `record`'s step holding `held` pods, with the steps `sizes`
/// ([`canary_core::step_policy::after_verdict`]): `start --auto` drives to the goal, the
/// controller records the phase and drives there on its next reconciles.
pub fn after_analysis(
    record: &CanaryRecord,
    verdict: Verdict,
    sizes: &[i32],
    held: i32,
) -> AfterAnalysis {
    let step = after_verdict(verdict, sizes, held);
    let goal = match step {
        NextStep::Grow { to, .. } => Some(Goal::Hold { pods: to }),
        NextStep::PromoteFull => Some(Goal::PromoteFull),
        NextStep::RollBack => Some(Goal::Abort),
        NextStep::Hold => None,
    };
    AfterAnalysis {
        step,
        goal,
        phase: goal.map(|goal| record.phase.towards(goal)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn holding(pods: i32) -> CanaryRecord {
        serde_json::from_value(json!({
            "schema": 1, "deployment": "web", "deploymentUid": "d-uid", "replicas": 10,
            "originalTemplate": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.14"}]}},
            "originalSettings": {"strategy": null},
            "stable": {"replicaSet": "web-1", "uid": "rs-uid", "revision": "1", "podTemplateHash": "1"},
            "originalImages": {"nginx": "nginx:1.14"}, "targetImages": {"nginx": "nginx:1.15"},
            "mode": "surge", "phase": {"name": "holding", "pods": pods},
            "startedBy": {"user": "a", "host": "h", "pid": 1, "toolVersion": "0"},
            "startedAt": "2026-01-01T00:00:00Z"
        }))
        .expect("a record")
    }

    /// The goal the CLI drives to and the phase the controller records agree with the step
    /// policy's own phase for every verdict.
    #[test]
    fn the_goal_and_the_phase_after_an_analysis_agree_with_the_step_policy() {
        let sizes = [1, 3, 5];
        let cases: &[(Verdict, i32, Option<Goal>)] = &[
            (Verdict::Pass, 1, Some(Goal::Hold { pods: 3 })),
            (Verdict::Pass, 5, Some(Goal::PromoteFull)),
            (Verdict::Fail, 3, Some(Goal::Abort)),
            (Verdict::Inconclusive, 3, None),
            (Verdict::Wait, 1, None),
        ];
        for &(verdict, held, goal) in cases {
            let after = after_analysis(&holding(held), verdict, &sizes, held);
            assert_eq!(after.goal, goal, "{verdict:?} at {held}");
            assert_eq!(after.phase, after.step.phase(), "{verdict:?} at {held}");
        }
    }
}
