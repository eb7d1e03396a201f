//! What to do next, ordered by the canary's state: abort first for an unhealthy canary
//! (promotion withheld, with why), analyse first for a healthy canary without a verdict,
//! the planned next step first after a passing verdict.

use super::judge::{Problem, first_unhealthy};
use crate::gate::GatedStep;
use crate::record::Phase;

/// What the last analysis of the canary as it is now said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerdictState {
    /// No analysis recorded for the canary at its current size.
    None,
    /// It passed.
    Passed,
    /// It waits or is inconclusive (a failed one is a problem).
    Undecided,
}

/// The state the next steps depend on.
#[derive(Debug, Clone, Copy)]
pub struct NextInput<'a> {
    /// The Deployment's name.
    pub name: &'a str,
    /// The recorded phase.
    pub phase: Phase,
    /// Something is pending (the controller has not reached the phase's goal yet).
    pub pending: bool,
    /// The Deployment still has its original template (a start that changed nothing yet).
    pub nothing_changed_yet: bool,
    /// `spec.replicas`.
    pub replicas: i32,
    /// The problems, as [`super::judge()`] found them.
    pub problems: &'a [Problem],
    /// The last verdict for the canary as it is now.
    pub verdict: VerdictState,
    /// The step an approval gate holds back, if a run (or the controller) waits at one.
    pub gate: Option<GatedStep>,
}

/// The next steps, and why promotion is left out of them when it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextSteps {
    /// Commands, first the one advised.
    pub steps: Vec<String>,
    /// Why no promotion is offered: the canary is unhealthy (with its first problem).
    pub promote_withheld: Option<String>,
}

/// The next steps in the canary's state.
pub fn next_steps(input: &NextInput) -> NextSteps {
    let name = input.name;
    let abort = format!("kubectl canary abort deploy/{name}");
    let analyze = format!("kubectl canary analyze deploy/{name}");
    let full = format!("kubectl canary promote deploy/{name} --full");
    if matches!(input.phase, Phase::Aborting) {
        return NextSteps {
            steps: vec![format!("{abort}   # finish the rollback")],
            promote_withheld: None,
        };
    }
    if let Some(problem) = first_unhealthy(input.problems) {
        let mut steps = vec![format!(
            "{abort}   # the canary is unhealthy ({}): roll back first",
            problem.short()
        )];
        if matches!(input.phase, Phase::Holding { .. }) {
            steps.push(format!("{analyze}   # the full verdict"));
        }
        return NextSteps {
            steps,
            promote_withheld: Some(format!(
                "promoting is unsafe while the canary is unhealthy: {}",
                problem.message
            )),
        };
    }
    let steps = match input.phase {
        Phase::Holding { .. } if !input.pending && input.gate.is_some() => {
            let before = input.gate.expect("a gate");
            vec![
                format!(
                    "kubectl canary promote deploy/{name}   # approve {before}: the analysis passed, and the run \
                     at the approval gate takes the step"
                ),
                format!("{analyze}   # judge again first"),
                abort,
            ]
        }
        Phase::Holding { pods } if !input.pending => {
            let larger = (pods + 1 < input.replicas)
                .then(|| format!("kubectl canary promote deploy/{name} --canary {}", pods + 1));
            match input.verdict {
                VerdictState::Passed => {
                    let mut steps = vec![];
                    match larger {
                        Some(larger) => {
                            steps.push(format!(
                                "{larger}   # the next step, a larger canary: the last verdict passed"
                            ));
                            steps.push(full);
                        }
                        None => {
                            steps.push(format!("{full}   # the next step: the last verdict passed"))
                        }
                    }
                    steps.push(format!("{analyze}   # judge again"));
                    steps.push(abort);
                    steps
                }
                VerdictState::None | VerdictState::Undecided => {
                    let why = if input.verdict == VerdictState::None {
                        "first: judge the canary against the stable pods (no verdict yet)"
                    } else {
                        "first: the last verdict did not decide; judge again"
                    };
                    let mut steps = vec![format!("{analyze}   # {why}")];
                    steps.extend(larger.map(|l| format!("{l}   # a larger canary")));
                    steps.push(full);
                    steps.push(abort);
                    steps
                }
            }
        }
        Phase::Holding { .. } => vec![full, abort],
        Phase::Starting { pods } | Phase::Promoting { to: pods, .. } => vec![
            format!(
                "kubectl canary promote deploy/{name} --canary {pods}   # finish holding {pods} canary pod(s){}",
                if input.nothing_changed_yet {
                    " (nothing changed yet)"
                } else {
                    ""
                }
            ),
            abort,
        ],
        Phase::PromotingFull | Phase::Aborting => {
            vec![format!("{full}   # finish the promotion"), abort]
        }
    };
    NextSteps {
        steps,
        promote_withheld: None,
    }
}
