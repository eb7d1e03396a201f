//! What follows a verdict on a held step of an automated rollout: one pure policy for
//! `start --auto` and the GitOps controller, so the two never disagree on what a pass, a
//! failure or an inconclusive analysis leads to.

use crate::gate::{ApprovalGates, GatedStep};
use crate::record::Phase;
use crate::verdict::Decision;

/// The next step after a verdict on the step that holds `held` canary pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Passed, and a larger step follows: grow the canary to `to` pods and hold there.
    Grow {
        /// The pods of the step held now.
        from: i32,
        /// The pods of the next step.
        to: i32,
    },
    /// Passed the last step: promote to every pod.
    PromoteFull,
    /// Failed: roll the canary back (the CLI reverts to the stable version; under GitOps,
    /// where Git's template stays, only the stable pods serve until the next commit).
    RollBack,
    /// Inconclusive (or still waiting): the canary stays held as it is. The CLI stops and
    /// leaves the decision to a person; the controller analyses again after the interval.
    Hold,
}

/// The size after `held` in `sizes` (the steps' canary sizes in pods, growing), or `None`
/// when `held` is the last step (next: 100%).
pub fn next_size(sizes: &[i32], held: i32) -> Option<i32> {
    sizes.iter().copied().find(|&s| s > held)
}

/// What follows `decision` on the step holding `held` pods of the steps `sizes`.
pub fn after_verdict(decision: Decision, sizes: &[i32], held: i32) -> NextStep {
    match decision {
        Decision::Pass => match next_size(sizes, held) {
            Some(to) => NextStep::Grow { from: held, to },
            None => NextStep::PromoteFull,
        },
        Decision::Fail => NextStep::RollBack,
        Decision::Wait | Decision::Inconclusive => NextStep::Hold,
    }
}

/// The approval gate before `next`, if `gates` hold that step back: growing to a size of
/// the steps, or promoting to 100%. Rolling back and staying held never wait.
pub fn gate_before(gates: &ApprovalGates, next: NextStep) -> Option<GatedStep> {
    let step = match next {
        NextStep::Grow { to, .. } => GatedStep::Pods(to),
        NextStep::PromoteFull => GatedStep::Full,
        NextStep::RollBack | NextStep::Hold => return None,
    };
    gates.holds(step).then_some(step)
}

impl NextStep {
    /// The phase the record takes for this step; `None` for [`NextStep::Hold`] (the phase
    /// stays).
    pub fn phase(self) -> Option<Phase> {
        match self {
            NextStep::Grow { from, to } => Some(Phase::Promoting { from, to }),
            NextStep::PromoteFull => Some(Phase::PromotingFull),
            NextStep::RollBack => Some(Phase::Aborting),
            NextStep::Hold => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every verdict at every kind of step, the cases differing only in data.
    #[test]
    fn each_verdict_at_each_step_leads_to_one_next_step() {
        let sizes = [1, 3, 5];
        let cases: &[(Decision, i32, NextStep, Option<Phase>)] = &[
            (
                Decision::Pass,
                1,
                NextStep::Grow { from: 1, to: 3 },
                Some(Phase::Promoting { from: 1, to: 3 }),
            ),
            (
                Decision::Pass,
                3,
                NextStep::Grow { from: 3, to: 5 },
                Some(Phase::Promoting { from: 3, to: 5 }),
            ),
            (
                Decision::Pass,
                5,
                NextStep::PromoteFull,
                Some(Phase::PromotingFull),
            ),
            (Decision::Fail, 1, NextStep::RollBack, Some(Phase::Aborting)),
            (Decision::Fail, 5, NextStep::RollBack, Some(Phase::Aborting)),
            (Decision::Wait, 3, NextStep::Hold, None),
            (Decision::Inconclusive, 1, NextStep::Hold, None),
            (Decision::Inconclusive, 5, NextStep::Hold, None),
        ];
        for (decision, held, next, phase) in cases {
            let got = after_verdict(*decision, &sizes, *held);
            assert_eq!(got, *next, "{decision} at {held}");
            assert_eq!(got.phase(), *phase, "{decision} at {held}");
        }
    }

    /// Only a step that moves on waits at a gate: growing to a gated size, or 100%.
    #[test]
    fn a_gate_holds_back_only_the_step_that_moves_on() {
        let gates = ApprovalGates::parse(&["3"], &[1, 3, 5]).expect("gates");
        let cases = [
            (NextStep::Grow { from: 1, to: 3 }, Some(GatedStep::Pods(3))),
            (NextStep::Grow { from: 3, to: 5 }, None),
            (NextStep::PromoteFull, None),
            (NextStep::RollBack, None),
            (NextStep::Hold, None),
        ];
        for (next, want) in cases {
            assert_eq!(gate_before(&gates, next), want, "{next:?}");
        }
        let every = ApprovalGates::parse(&["every"], &[1, 3]).expect("gates");
        assert_eq!(
            gate_before(&every, NextStep::PromoteFull),
            Some(GatedStep::Full)
        );
        assert_eq!(gate_before(&every, NextStep::RollBack), None);
    }

    /// A held size between two steps (a followed change of replicas) grows to the next
    /// larger step; one past the last promotes; a single step promotes at once.
    #[test]
    fn the_next_size_is_the_first_larger_step() {
        let cases: &[(&[i32], i32, Option<i32>)] = &[
            (&[1, 3, 5], 2, Some(3)),
            (&[1, 3, 5], 6, None),
            (&[2], 2, None),
            (&[], 1, None),
        ];
        for (sizes, held, next) in cases {
            assert_eq!(next_size(sizes, *held), *next, "{sizes:?} at {held}");
        }
    }
}
