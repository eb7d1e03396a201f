//! Approval gates under GitOps: a step the policy gates (`kubectl-canary.io/approve-before`)
//! waits after its analysis passed, held, until the Deployment carries the gate's approval
//! (`kubectl canary promote deploy/NAME`, or the annotation set by hand, by someone allowed
//! to update the Deployment), the policy stops gating it, or its timeout passes.

use std::time::Duration;

use kube::runtime::controller::Action;

use canary_core::gate::{AwaitedGate, GateState, GatedStep, token};
use canary_core::gitops::policy::GitOpsPolicy;
use canary_core::machine::Goal;
use canary_core::notify::Moment;
use canary_core::record::{CanaryRecord, Phase};
use canary_core::step_policy::NextStep;

use super::stable::APPROVAL_TIMED_OUT_NOTE;
use super::{Outcome, Reconciling, SOON, now};

/// How often a gate without a timeout is looked at again (the Deployment's watch brings the
/// approval sooner).
const GATE_RECHECK: Duration = Duration::from_secs(300);

/// The analysis at `pods` pods passed (`reason`) and the policy gates `before`: the record
/// takes the gate (still holding), and the Event says how to approve it.
pub(super) async fn wait_at_gate(
    release: &Reconciling<'_>,
    mut next: CanaryRecord,
    before: GatedStep,
    policy: &GitOpsPolicy,
    pods: i32,
    reason: &str,
) -> Outcome {
    let name = release.name();
    let gate = AwaitedGate::new(
        before,
        &release.view.uid(),
        &next.started_at,
        &now(),
        policy.approval_timeout,
    );
    next.note(
        &gate.since,
        format!("analysis passed at {pods} pod(s): {reason}; awaiting approval before {before}"),
    );
    next.gate = Some(gate.clone());
    release.save(next.clone()).await?;
    let awaiting = format!(
        "{before} waits for an approval by someone allowed to update deploy/{name}: `{}` (or `{}`){}",
        gate.approve_command(&name),
        gate.annotate_command(&name),
        policy
            .approval_timeout
            .map(|t| format!("; timeout {t}"))
            .unwrap_or_default()
    );
    release
        .normal_moment(
            "CanaryAwaitingApproval",
            format!(
                "kubectl-canary-controller: analysis passed at {pods} pod(s) ({reason}); {awaiting}"
            ),
            Moment::AwaitingApproval { awaiting },
            &next,
        )
        .await;
    Ok(Action::requeue(SOON))
}

/// A held step waiting at `recorded`'s gate: take the step once approved, roll back (onto
/// the stable pods) when the timeout says so, else wait.
///
/// Only what the record cannot forge decides: the token is computed again from the
/// Deployment's UID (the record's start time makes it one canary's), and the timeout is the
/// policy's, from the Deployment's annotations.
pub(super) async fn at_gate(
    release: &Reconciling<'_>,
    record: &CanaryRecord,
    policy: &GitOpsPolicy,
    recorded: &AwaitedGate,
    pods: i32,
) -> Outcome {
    let name = release.name();
    let before = recorded.before;
    let gate = AwaitedGate {
        token: token(before, &release.view.uid(), &record.started_at),
        timeout: policy.approval_timeout,
        ..recorded.clone()
    };
    let (step, goal) = match before {
        GatedStep::Full => (NextStep::PromoteFull, Goal::PromoteFull),
        GatedStep::Pods(to) => (NextStep::Grow { from: pods, to }, Goal::Hold { pods: to }),
    };
    // The owners may drop the gate in Git while it waits: then nothing holds the step.
    let gated = canary_core::step_policy::gate_before(&policy.gates, step) == Some(before);
    let state = if gated {
        canary_kube::gate::state(&gate, release.deployment())
    } else {
        GateState::Approved
    };
    match state {
        GateState::Approved => {
            let mut next = record.clone();
            next.phase = record.phase.towards(goal);
            next.gate = None;
            next.note(
                &now(),
                format!(
                    "{before} approved{}; {}",
                    if gated {
                        ""
                    } else {
                        " (the policy no longer gates it)"
                    },
                    next.phase.describe()
                ),
            );
            release.save(next).await?;
            release
                .normal(
                    "CanaryApproved",
                    format!("kubectl-canary-controller: {before} approved; taking the step"),
                )
                .await;
            Ok(Action::requeue(SOON))
        }
        GateState::Waiting { left } => Ok(Action::requeue(
            left.unwrap_or(GATE_RECHECK).min(GATE_RECHECK),
        )),
        GateState::Overdue => {
            release
                .warn_once_moment(
                    "CanaryApprovalOverdue",
                    format!(
                        "kubectl-canary-controller: {before} of deploy/{name} is still waiting for an approval \
                         (timeout {}); approve with `{}`, or revert the commit in Git",
                        gate.timeout.map(|t| t.to_string()).unwrap_or_default(),
                        gate.approve_command(&name)
                    ),
                    Moment::AwaitingApproval {
                        awaiting: format!(
                            "still: {before} waits for an approval by someone allowed to update deploy/{name}: \
                             `{}` (or `{}`)",
                            gate.approve_command(&name),
                            gate.annotate_command(&name)
                        ),
                    },
                    record,
                )
                .await;
            Ok(Action::requeue(GATE_RECHECK))
        }
        GateState::TimedOut => {
            let mut next = record.clone();
            next.phase = Phase::Aborting;
            next.gate = None;
            next.note(
                &now(),
                format!(
                    "{APPROVAL_TIMED_OUT_NOTE} before {before} ({}); holding on the stable pods until the next commit",
                    gate.timeout.map(|t| t.to_string()).unwrap_or_default()
                ),
            );
            release.save(next).await?;
            release
                .warn_once(
                    "CanaryApprovalTimedOut",
                    format!(
                        "kubectl-canary-controller: nobody approved {before} of deploy/{name} in time: the Deployment \
                         keeps Git's template, paused, with its canary scaled to 0 so only stable pods serve; push a \
                         fix or revert the commit"
                    ),
                )
                .await;
            Ok(Action::requeue(SOON))
        }
    }
}
