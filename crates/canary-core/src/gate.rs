//! Approval gates: a canary whose analysis passed waits before a chosen step until a person
//! allowed to update the workload approves it.
//!
//! The approval is an annotation on the workload itself ([`APPROVE_ANNOTATION`]), never the
//! record: the record is a ConfigMap, and someone who may only write ConfigMaps must not be
//! able to release a step. Its value is the gate's [`AwaitedGate::token`], unique to one
//! canary and one step, so an approval left from an earlier canary (or step) approves
//! nothing else.
//!
//! ```
//! use canary_core::gate::{ApprovalGates, GatedStep};
//!
//! let gates = ApprovalGates::parse(&["full"], &[1, 3]).unwrap();
//! assert!(gates.holds(GatedStep::Full));
//! assert!(!gates.holds(GatedStep::Pods(3)));
//! ```
//!
//! Which step follows an analysis, and so which gate applies, is the step policy's
//! ([`crate::step_policy::gate_before`]).

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::duration::{format_duration, parse_duration};
use crate::rollout_math::CanarySize;

/// The workload annotation that approves an awaited gate; its value is the gate's token.
pub const APPROVE_ANNOTATION: &str = "kubectl-canary.io/approve";

/// The step a gate stands before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum GatedStep {
    /// Growing the canary to this many pods.
    Pods(i32),
    /// Rolling the new version out to every pod.
    Full,
}

impl fmt::Display for GatedStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GatedStep::Pods(pods) => write!(f, "growing to {pods} pod(s)"),
            GatedStep::Full => f.write_str("promoting to 100%"),
        }
    }
}

impl GatedStep {
    /// The step's part of a token: `full` or `pods-3`.
    fn token_part(self) -> String {
        match self {
            GatedStep::Pods(pods) => format!("pods-{pods}"),
            GatedStep::Full => "full".into(),
        }
    }
}

/// Which steps wait for an approval.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApprovalGates {
    /// Before every step after the first, and before 100%.
    pub every: bool,
    /// Before 100%.
    pub full: bool,
    /// Before growing to these pod counts.
    pub pods: BTreeSet<i32>,
}

/// A gate that cannot be set as written.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GateError {
    /// Neither `full`, `every` nor a size.
    #[error(
        "approval gate {value:?}: expected `full`, `every` or one of the step sizes (as in --steps: 3 or 50%)"
    )]
    Unreadable {
        /// The value as given.
        value: String,
    },
    /// A size that is not one of the later steps.
    #[error(
        "approval gate {value:?} is {pods} pod(s), which is not one of the steps after the first ({steps}); \
         gate one of those, or `full`"
    )]
    NotAStep {
        /// The value as given.
        value: String,
        /// What it resolves to.
        pods: i32,
        /// The later steps, in pods.
        steps: String,
    },
    /// A timeout that is not a duration.
    #[error("approval timeout {value:?}: expected a duration such as 30m or 2h")]
    Timeout {
        /// The value as given.
        value: String,
    },
    /// An unknown timeout policy.
    #[error("on approval timeout {value:?}: expected `abort` or `wait`")]
    OnTimeout {
        /// The value as given.
        value: String,
    },
}

impl ApprovalGates {
    /// Reads gates as written (`full`, `every`, or sizes as `--steps` writes them) for the
    /// steps `sizes` (in pods, the first included). A size is resolved as the steps were:
    /// `resolve` turns `50%` into pods for the workload at hand; pass
    /// [`ApprovalGates::parse`] for pod counts only.
    pub fn parse_with(
        values: &[&str],
        sizes: &[i32],
        resolve: impl Fn(CanarySize) -> Option<i32>,
    ) -> Result<Self, GateError> {
        let mut gates = ApprovalGates::default();
        let later = sizes.get(1..).unwrap_or_default();
        for value in values.iter().flat_map(|v| v.split(',')).map(str::trim) {
            match value {
                "" => {}
                "full" => gates.full = true,
                "every" => gates.every = true,
                size => {
                    let unreadable = || GateError::Unreadable {
                        value: size.to_owned(),
                    };
                    let size: CanarySize = size.parse().map_err(|_| unreadable())?;
                    let pods = resolve(size).ok_or_else(unreadable)?;
                    if !later.contains(&pods) {
                        return Err(GateError::NotAStep {
                            value: size.to_string(),
                            pods,
                            steps: if later.is_empty() {
                                "none".into()
                            } else {
                                later
                                    .iter()
                                    .map(i32::to_string)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            },
                        });
                    }
                    gates.pods.insert(pods);
                }
            }
        }
        Ok(gates)
    }

    /// [`ApprovalGates::parse_with`] where a size must be a pod count.
    pub fn parse(values: &[&str], sizes: &[i32]) -> Result<Self, GateError> {
        Self::parse_with(values, sizes, |size| match size {
            CanarySize::Pods(pods) => Some(pods),
            CanarySize::Percent(_) => None,
        })
    }

    /// No gate at all.
    pub fn is_empty(&self) -> bool {
        !self.every && !self.full && self.pods.is_empty()
    }

    /// Whether `step` waits for an approval.
    pub fn holds(&self, step: GatedStep) -> bool {
        self.every
            || match step {
                GatedStep::Full => self.full,
                GatedStep::Pods(pods) => self.pods.contains(&pods),
            }
    }

    /// The gates as written back (`full`, `every`, pod counts), for status and history.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.pods.iter().map(|p| format!("{p} pods")).collect();
        if self.full {
            parts.push("full".into());
        }
        if self.every {
            parts = vec!["every step".into()];
        }
        parts.join(", ")
    }
}

/// What happens when nobody approves in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OnTimeout {
    /// Roll the canary back.
    Abort,
    /// Say the approval is overdue (once) and keep waiting.
    Wait,
}

impl std::str::FromStr for OnTimeout {
    type Err = GateError;
    fn from_str(value: &str) -> Result<Self, GateError> {
        match value {
            "abort" => Ok(OnTimeout::Abort),
            "wait" => Ok(OnTimeout::Wait),
            _ => Err(GateError::OnTimeout {
                value: value.to_owned(),
            }),
        }
    }
}

impl fmt::Display for OnTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OnTimeout::Abort => "abort",
            OnTimeout::Wait => "wait",
        })
    }
}

/// How long a gate waits, and what then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalTimeout {
    /// Time from the gate to its timeout.
    #[serde(with = "crate::duration::serde_text")]
    pub after: Duration,
    /// What the timeout does.
    pub then: OnTimeout,
}

impl ApprovalTimeout {
    /// Reads a timeout (`30m`) and its policy (`abort`, `wait`; `None`: abort).
    pub fn parse(after: &str, then: Option<&str>) -> Result<Self, GateError> {
        let after = parse_duration(after).map_err(|_| GateError::Timeout {
            value: after.to_owned(),
        })?;
        let then = then
            .map(str::parse)
            .transpose()?
            .unwrap_or(OnTimeout::Abort);
        Ok(Self { after, then })
    }
}

impl fmt::Display for ApprovalTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, then {}", format_duration(self.after), self.then)
    }
}

/// A gate the canary waits at, as recorded (for `status`, the report and a controller that
/// takes over). What approves it is the workload's annotation, never this record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AwaitedGate {
    /// The step that waits.
    pub before: GatedStep,
    /// When the wait began (RFC 3339).
    pub since: String,
    /// The value of [`APPROVE_ANNOTATION`] that approves it.
    pub token: String,
    /// The timeout in force, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<ApprovalTimeout>,
}

impl AwaitedGate {
    /// The gate before `before` of the canary started at `started_at` on the workload with
    /// UID `uid`, waiting since `now`.
    pub fn new(
        before: GatedStep,
        uid: &str,
        started_at: &str,
        now: &str,
        timeout: Option<ApprovalTimeout>,
    ) -> Self {
        Self {
            before,
            since: now.to_owned(),
            token: token(before, uid, started_at),
            timeout,
        }
    }

    /// Whether `approval` (the workload's [`APPROVE_ANNOTATION`], if any) approves this gate.
    pub fn approved_by(&self, approval: Option<&str>) -> bool {
        approval == Some(self.token.as_str())
    }

    /// Where the wait stands after waiting `waited` (from [`AwaitedGate::since`]) with
    /// `approval` on the workload.
    pub fn state(&self, approval: Option<&str>, waited: Duration) -> GateState {
        if self.approved_by(approval) {
            return GateState::Approved;
        }
        let Some(timeout) = self.timeout else {
            return GateState::Waiting { left: None };
        };
        match timeout.after.checked_sub(waited) {
            Some(left) if !left.is_zero() => GateState::Waiting { left: Some(left) },
            _ => match timeout.then {
                OnTimeout::Abort => GateState::TimedOut,
                OnTimeout::Wait => GateState::Overdue,
            },
        }
    }

    /// The command that approves this gate, for `deploy/NAME`.
    pub fn approve_command(&self, name: &str) -> String {
        format!("kubectl canary promote deploy/{name}")
    }

    /// The equivalent annotation, for people without kubectl-canary.
    pub fn annotate_command(&self, name: &str) -> String {
        format!(
            "kubectl annotate deploy/{name} {APPROVE_ANNOTATION}={} --overwrite",
            self.token
        )
    }
}

/// The token of the gate before `step` of one canary: the step and a digest of the
/// workload's UID and the canary's start, so it names exactly one gate.
pub fn token(step: GatedStep, uid: &str, started_at: &str) -> String {
    let digest = Sha256::digest(format!("{uid}\n{started_at}").as_bytes());
    let short: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("{}.{short}", step.token_part())
}

/// Where a gate's wait stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateState {
    /// The workload carries the gate's token: go on.
    Approved,
    /// Waiting; `left` until the timeout, if one is set.
    Waiting {
        /// Time left.
        left: Option<Duration>,
    },
    /// The timeout passed and its policy is to keep waiting.
    Overdue,
    /// The timeout passed and its policy is to roll back.
    TimedOut,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gates_are_read_against_the_later_steps() {
        let sizes = [1, 3, 5];
        /// Gates as written, and (every, full, pods) or a part of the error.
        type Case<'a> = (&'a [&'a str], Result<(bool, bool, &'a [i32]), &'a str>);
        let cases: &[Case] = &[
            (&["full"], Ok((false, true, &[]))),
            (&["every"], Ok((true, false, &[]))),
            (&["3", "full"], Ok((false, true, &[3]))),
            (&["3,5"], Ok((false, false, &[3, 5]))),
            (&["1"], Err("not one of the steps after the first (3, 5)")),
            (&["4"], Err("is 4 pod(s)")),
            (&["soon"], Err("expected `full`, `every`")),
        ];
        for (values, want) in cases {
            let got = ApprovalGates::parse(values, &sizes);
            match (got, want) {
                (Ok(gates), Ok((every, full, pods))) => {
                    assert_eq!(gates.every, *every, "{values:?}");
                    assert_eq!(gates.full, *full, "{values:?}");
                    assert_eq!(gates.pods.iter().copied().collect::<Vec<_>>(), *pods);
                }
                (Err(error), Err(text)) => {
                    assert!(error.to_string().contains(text), "{values:?}: {error}")
                }
                (got, want) => panic!("{values:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn a_share_is_resolved_as_the_steps_were() {
        let gates = ApprovalGates::parse_with(&["50%"], &[1, 5], |size| match size {
            CanarySize::Percent(p) => Some((p / 10.0) as i32),
            CanarySize::Pods(p) => Some(p),
        })
        .expect("50% of 10 is the step of 5");
        assert!(gates.holds(GatedStep::Pods(5)));
    }

    #[test]
    fn only_the_gated_steps_wait() {
        let gates = ApprovalGates::parse(&["3"], &[1, 3, 5]).expect("gates");
        let cases = [
            (GatedStep::Pods(3), true),
            (GatedStep::Pods(5), false),
            (GatedStep::Full, false),
        ];
        for (step, holds) in cases {
            assert_eq!(gates.holds(step), holds, "{step:?}");
        }
        let every = ApprovalGates::parse(&["every"], &[1, 3]).expect("gates");
        assert!(every.holds(GatedStep::Full) && every.holds(GatedStep::Pods(3)));
    }

    #[test]
    fn a_token_names_one_gate_of_one_canary() {
        let a = token(GatedStep::Full, "uid-1", "2026-01-01T00:00:00Z");
        assert!(a.starts_with("full."), "{a}");
        assert_eq!(a, token(GatedStep::Full, "uid-1", "2026-01-01T00:00:00Z"));
        assert_ne!(
            a,
            token(GatedStep::Pods(3), "uid-1", "2026-01-01T00:00:00Z")
        );
        assert_ne!(a, token(GatedStep::Full, "uid-1", "2026-01-01T00:00:01Z"));
        assert_ne!(a, token(GatedStep::Full, "uid-2", "2026-01-01T00:00:00Z"));
    }

    #[test]
    fn a_gate_waits_until_approved_or_its_timeout() {
        let since = "2026-01-01T00:00:00Z";
        let at = Duration::from_secs;
        let abort = ApprovalTimeout::parse("60s", None).expect("timeout");
        let wait = ApprovalTimeout::parse("60s", Some("wait")).expect("timeout");
        let gate = |timeout| AwaitedGate::new(GatedStep::Full, "u", since, since, timeout);
        let token = gate(None).token;
        let cases = [
            (
                gate(None),
                None,
                1_000_000,
                GateState::Waiting { left: None },
            ),
            (
                gate(None),
                Some("full.other"),
                10,
                GateState::Waiting { left: None },
            ),
            (gate(None), Some(token.as_str()), 10, GateState::Approved),
            (
                gate(Some(abort)),
                None,
                20,
                GateState::Waiting {
                    left: Some(Duration::from_secs(40)),
                },
            ),
            (gate(Some(abort)), None, 60, GateState::TimedOut),
            (gate(Some(wait)), None, 61, GateState::Overdue),
            (
                gate(Some(abort)),
                Some(token.as_str()),
                600,
                GateState::Approved,
            ),
        ];
        for (gate, approval, seconds, want) in cases {
            assert_eq!(
                gate.state(approval, at(seconds)),
                want,
                "{approval:?} at {seconds}s"
            );
        }
    }

    #[test]
    fn a_timeout_policy_is_abort_or_wait() {
        assert_eq!(
            ApprovalTimeout::parse("30m", None).unwrap().then,
            OnTimeout::Abort
        );
        assert!(ApprovalTimeout::parse("30m", Some("promote")).is_err());
        assert!(ApprovalTimeout::parse("soon", None).is_err());
    }
}
