//! `promote`: which case a canary state is, and the rules a `--canary` size must keep.

use canary_core::foreign::follow_size;
use canary_core::gate::{AwaitedGate, GatedStep};
use canary_core::machine::Goal;
use canary_core::rollout_math::{CanarySize, resolve_canary};

use crate::engine::Engine;
use crate::error::{CanaryError, Result};
use crate::store::StoredRecord;
use crate::trust::CanaryState;

/// What `promote` does with the canary state it found.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // chosen once per command, never stored in bulk
pub enum PromoteCase {
    /// A verified canary: promote it.
    Promote(StoredRecord),
    /// No record, but a finished canary's seal is still on: take it off.
    FinishCleanup,
    /// No record and no seal: put back Services a canary left pinned, if any.
    ReleaseLeftoverPins,
}

/// Chooses promote's case from the canary state for what was `asked`; anything else is the
/// state's error (or "no canary"). `dry_run`: a dry run has no cleanup to finish. A bare
/// `promote` (an approval) with no canary is refused: it finishes no cleanup either.
pub fn promote_case(
    engine: &Engine,
    state: CanaryState,
    asked: PromoteAsk,
    dry_run: bool,
) -> Result<PromoteCase> {
    if asked == PromoteAsk::Approve && matches!(state, CanaryState::None { .. }) {
        return Err(no_gate(engine.name(), " (no canary runs on it)"));
    }
    Ok(match state {
        CanaryState::None {
            leftover_seal: Some(_),
        } if !dry_run => PromoteCase::FinishCleanup,
        CanaryState::None { .. } if !dry_run => PromoteCase::ReleaseLeftoverPins,
        CanaryState::None { .. } => return Err(engine.no_canary()),
        CanaryState::Verified { stored, .. } => PromoteCase::Promote(stored),
        other => return Err(other.error(engine.name(), &engine.store().name())),
    })
}

/// The goal of `promote` (`--canary SIZE`, or `--full` when `size` is `None`) for the
/// canary `stored`, checked: a Blue/Green release is promoted whole, a canary only grows from
/// the size asked (at the replicas now), and a size of every pod is `--full`. The size asked
/// again while the running canary differs from it (the controller spread a rescale over both
/// sides while no command watched) is the restoring command: it holds that size again,
/// shrinking the canary ReplicaSet if need be. The size asked for is recorded as asked (a
/// share stays a share if replicas change); it is resolved against the replicas now.
pub async fn promote_goal(
    engine: &Engine,
    stored: &mut StoredRecord,
    size: Option<CanarySize>,
) -> Result<Goal> {
    let name = engine.name();
    if size.is_some() && stored.record.traffic.is_some_and(|t| t.blue_green) {
        return Err(CanaryError::Refused(format!(
            "deploy/{name} is a Blue/Green release: it is promoted whole, switching the Services to the new set; \
             run `kubectl canary promote deploy/{name} --full`; nothing was changed"
        )));
    }
    let Some(size) = size else {
        return Ok(Goal::PromoteFull);
    };
    let view = engine.view().await?;
    let replicas = view.replicas();
    // What was asked, at the replica count now (a share stays a share, a count the count),
    // and what runs: an HPA or `kubectl scale` while no command watched has the controller
    // spread the change over both sides, so the two can differ. Read before `size` is
    // recorded as the new ask.
    let asked = follow_size(&stored.record, replicas).or(stored.record.held_pods());
    let running = view.observation(&stored.record).canary_desired();
    stored.record.requested_size = Some(size);
    let record = &stored.record;
    let canary = resolve_canary(size, replicas, record.mode)
        .map_err(|e| CanaryError::Refused(e.to_string()))?;
    if let Some(asked) = asked
        && record.held_pods().is_some()
    {
        if canary.pods < asked {
            return Err(CanaryError::Refused(format!(
                "--canary {size} is {} pod(s), smaller than the canary asked for ({asked} pod(s) at {replicas} \
                 replicas; {running} running): a canary only grows; give a larger size, or use --full to roll \
                 out to every pod; nothing was changed",
                canary.pods
            )));
        }
        // The size asked again while another runs, or at a replica count the record has
        // not taken yet: put it back and record the count (the restoring command).
        if canary.pods == asked && running == asked && replicas == record.replicas {
            return Err(CanaryError::Refused(format!(
                "--canary {size} is {} pod(s), and the canary of deploy/{name} already runs {running} pod(s) \
                 as asked: a canary only grows; give a larger size, or use --full to roll out to every pod; \
                 nothing was changed",
                canary.pods
            )));
        }
    }
    if canary.pods >= replicas {
        return Err(CanaryError::Refused(format!(
            "--canary {size} is {} pod(s), every pod of deploy/{name}: use `kubectl canary promote deploy/{name} --full`; \
             nothing was changed",
            canary.pods
        )));
    }
    Ok(Goal::Hold { pods: canary.pods })
}

/// What `promote` was asked for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PromoteAsk {
    /// A bare `promote`: approve the step an approval gate holds back.
    Approve,
    /// `--canary SIZE`.
    Canary(CanarySize),
    /// `--full`.
    Full,
}

/// What `promote` does at an approval gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateCase {
    /// Approve the awaited step: write its token on the Deployment; the run (or the
    /// controller) that waits takes the step.
    Approve(AwaitedGate),
    /// The step is approved already but nobody took it (the run that waited is gone):
    /// promote here, as asked.
    PromoteHere,
}

/// A bare `promote` where no approval gate is awaited.
fn no_gate(name: &str, why: &str) -> CanaryError {
    CanaryError::Usage(format!(
        "deploy/{name} waits at no approval gate{why}, which is what a bare `promote` approves: give the size \
         to grow to (--canary 3 or --canary 50%) or --full to roll out to every pod; nothing was changed"
    ))
}

/// `promote`'s case at the approval gate `stored` may record, with `approval` the
/// Deployment's approval annotation: `None` when no gate is awaited and a size was given
/// (promote as usual). A bare `promote` with no gate, and a size other than the awaited
/// step's, are refused (nothing written).
pub fn gate_case(
    name: &str,
    stored: &StoredRecord,
    approval: Option<&str>,
    asked: PromoteAsk,
) -> Result<Option<GateCase>> {
    let record = &stored.record;
    let Some(gate) = &record.gate else {
        return match asked {
            PromoteAsk::Approve => Err(no_gate(name, "")),
            _ => Ok(None),
        };
    };
    let asked_step = match asked {
        PromoteAsk::Approve => None,
        PromoteAsk::Full => Some(GatedStep::Full),
        PromoteAsk::Canary(size) => resolve_canary(size, record.replicas, record.mode)
            .ok()
            .map(|c| GatedStep::Pods(c.pods)),
    };
    if asked_step.is_some() && gate.approved_by(approval) {
        return Ok(Some(GateCase::PromoteHere));
    }
    match asked_step {
        None => Ok(Some(GateCase::Approve(gate.clone()))),
        Some(step) if step == gate.before => Ok(Some(GateCase::Approve(gate.clone()))),
        Some(_) => Err(CanaryError::Refused(format!(
            "deploy/{name} waits for an approval before {}: approve that step with \
             `kubectl canary promote deploy/{name}`, or stop the canary with `kubectl canary abort deploy/{name}`; \
             nothing was changed",
            gate.before
        ))),
    }
}
