//! Check results and the verdict that combines them the way Kayenta's judge does.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a check looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CheckKind {
    /// Readiness, restarts and failure states of the pods, from the watch stream.
    PodHealth,
    /// Error lines in the pods' logs.
    Logs,
    /// HTTP requests to the pods (or the Service) through the API server's proxy.
    Http,
    /// PromQL queries.
    Prometheus,
}

impl fmt::Display for CheckKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CheckKind::PodHealth => "pod health",
            CheckKind::Logs => "logs",
            CheckKind::Http => "http",
            CheckKind::Prometheus => "prometheus",
        })
    }
}

/// The result of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// The canary is no worse than the stable pods.
    Pass,
    /// The canary is worse.
    Fail,
    /// The check could not decide (no data, no traffic, an unreachable server...).
    Inconclusive,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Inconclusive => "inconclusive",
        })
    }
}

/// What to do with a check that stays inconclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum InconclusivePolicy {
    /// Analyse again until the check decides, for at most this long; then the verdict is
    /// inconclusive.
    Wait {
        /// How long to keep waiting for the check to decide.
        #[serde(with = "duration_seconds")]
        limit: Duration,
    },
    /// Treat it as a failure.
    Fail,
    /// Treat it as a pass.
    Pass,
}

impl Default for InconclusivePolicy {
    fn default() -> Self {
        InconclusivePolicy::Wait {
            limit: DEFAULT_INCONCLUSIVE_WAIT,
        }
    }
}

/// How long an inconclusive check is waited for by default.
pub const DEFAULT_INCONCLUSIVE_WAIT: Duration = Duration::from_secs(300);

impl fmt::Display for InconclusivePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InconclusivePolicy::Wait { limit } => {
                write!(f, "wait:{}", crate::duration::format_duration(*limit))
            }
            InconclusivePolicy::Fail => f.write_str("fail"),
            InconclusivePolicy::Pass => f.write_str("pass"),
        }
    }
}

mod duration_seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(value.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let seconds = f64::deserialize(deserializer)?;
        Duration::try_from_secs_f64(seconds).map_err(serde::de::Error::custom)
    }
}

/// One quantity measured on both sides, e.g. "error lines per pod per minute".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Measurement {
    /// What was measured, with its unit.
    pub name: String,
    /// The canary pods' value, if it could be measured.
    pub canary: Option<f64>,
    /// The stable pods' value, if it could be measured (some checks measure only the canary).
    pub stable: Option<f64>,
}

impl Measurement {
    /// A quantity measured on both sides.
    pub fn new(name: impl Into<String>, canary: Option<f64>, stable: Option<f64>) -> Self {
        Measurement {
            name: name.into(),
            canary,
            stable,
        }
    }
}

/// The result of one check: its outcome, what it measured and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    /// The check's name from the analysis spec.
    pub name: String,
    /// What the check looks at.
    pub kind: CheckKind,
    /// Pass, fail or inconclusive.
    pub outcome: Outcome,
    /// Whether a failure of this check fails the canary regardless of the others.
    pub critical: bool,
    /// What to do if the outcome is inconclusive.
    pub on_inconclusive: InconclusivePolicy,
    /// The values measured on the canary and stable pods.
    pub measurements: Vec<Measurement>,
    /// Why the check came to its outcome, for a person.
    pub reason: String,
}

impl CheckResult {
    /// Whether this result counts as a failure: it failed, or it is inconclusive and its
    /// policy says an inconclusive result fails. The verdict and the early stop of an
    /// analysis round both go by this.
    pub fn counts_as_failed(&self) -> bool {
        self.outcome == Outcome::Fail
            || (self.outcome == Outcome::Inconclusive
                && self.on_inconclusive == InconclusivePolicy::Fail)
    }
}

/// What the combined analysis says to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Decision {
    /// The canary is good: promote.
    Pass,
    /// The canary is bad: roll back.
    Fail,
    /// Some checks are inconclusive and their policy is to wait: analyse again later.
    Wait,
    /// Some checks stayed inconclusive past their waiting limit: a person has to decide.
    Inconclusive,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Decision::Pass => "pass",
            Decision::Fail => "fail",
            Decision::Wait => "wait",
            Decision::Inconclusive => "inconclusive",
        })
    }
}

/// The combined verdict of an analysis: the decision, every check's numbers and the reasons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    /// What to do.
    pub decision: Decision,
    /// Percentage of decided checks that passed (inconclusive ones counted per their policy).
    pub score: Option<f64>,
    /// The score needed to pass.
    pub pass_score: f64,
    /// Every check's result.
    pub checks: Vec<CheckResult>,
    /// Why the decision was taken.
    pub reason: String,
    /// What the verdict could not see, if anything: with no request-level check (HTTP,
    /// Prometheus) nothing judged the requests the canary answered, and pod health and log
    /// lines do not see a canary answering errors. Absent in verdicts that judged requests
    /// (and in those recorded before this was said).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_judged: Option<String>,
}

/// What a verdict over `checks` could not see: requests, when no check looks at them.
pub fn not_judged(checks: &[CheckResult]) -> Option<String> {
    let judges_requests = checks
        .iter()
        .any(|check| matches!(check.kind, CheckKind::Http | CheckKind::Prometheus));
    (!judges_requests).then(|| {
        "requests: no HTTP or Prometheus check ran, and pod health and log lines do not see a canary \
         answering errors; add --http-check :PORT/PATH (or --http-check auto, from the pod template's httpGet \
         probes) or a Prometheus check"
            .to_string()
    })
}

/// How a check's outcome counts once its inconclusive policy has been applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effective {
    Pass,
    Fail,
    Pending,
    GaveUp,
}

/// Combines check results into a verdict.
///
/// `waited` is how long the analysis has already been repeated because of inconclusive
/// checks; a check whose policy is [`InconclusivePolicy::Wait`] keeps the verdict at
/// [`Decision::Wait`] until `waited` reaches its limit, then makes it
/// [`Decision::Inconclusive`]. A failing critical check fails the verdict at once, even while
/// others wait. Otherwise the score is the percentage of counted checks that pass and must
/// reach `pass_score`.
pub fn combine(checks: Vec<CheckResult>, pass_score: f64, waited: Duration) -> Verdict {
    if checks.is_empty() {
        return Verdict {
            decision: Decision::Inconclusive,
            score: None,
            pass_score,
            not_judged: not_judged(&checks),
            checks,
            reason: "no checks are configured, so nothing shows the canary is good".into(),
        };
    }
    let effective: Vec<Effective> = checks
        .iter()
        .map(|check| match (check.outcome, check.on_inconclusive) {
            _ if check.counts_as_failed() => Effective::Fail,
            (Outcome::Pass, _) => Effective::Pass,
            (Outcome::Fail, _) => unreachable!("a failed check counts as failed"),
            (Outcome::Inconclusive, InconclusivePolicy::Pass) => Effective::Pass,
            (Outcome::Inconclusive, InconclusivePolicy::Fail) => {
                unreachable!("inconclusive with policy fail counts as failed")
            }
            (Outcome::Inconclusive, InconclusivePolicy::Wait { limit }) if waited < limit => {
                Effective::Pending
            }
            (Outcome::Inconclusive, InconclusivePolicy::Wait { .. }) => Effective::GaveUp,
        })
        .collect();

    let names_where = |wanted: &dyn Fn(&CheckResult, Effective) -> bool| -> Vec<String> {
        checks
            .iter()
            .zip(&effective)
            .filter(|(c, e)| wanted(c, **e))
            .map(|(c, _)| format!("{} ({})", c.name, c.reason))
            .collect()
    };

    let critical_failures = names_where(&|c, e| c.critical && e == Effective::Fail);
    let passed = effective.iter().filter(|e| **e == Effective::Pass).count();
    let failed = effective.iter().filter(|e| **e == Effective::Fail).count();
    let pending = effective
        .iter()
        .filter(|e| **e == Effective::Pending)
        .count();
    let gave_up = effective
        .iter()
        .filter(|e| **e == Effective::GaveUp)
        .count();
    let decided = passed + failed;
    let score = (decided > 0).then(|| 100.0 * passed as f64 / decided as f64);

    let (decision, reason) = if !critical_failures.is_empty() {
        (
            Decision::Fail,
            format!("critical check failed: {}", critical_failures.join("; ")),
        )
    } else if failed > 0 && best_reachable_score(passed, failed, pending + gave_up) < pass_score {
        let failures = names_where(&|_, e| e == Effective::Fail);
        (
            Decision::Fail,
            format!(
                "score {:.0} is below {:.0} even if every undecided check passes: {}",
                best_reachable_score(passed, failed, pending + gave_up),
                pass_score,
                failures.join("; ")
            ),
        )
    } else if pending > 0 {
        let waiting = names_where(&|_, e| e == Effective::Pending);
        (
            Decision::Wait,
            format!("waiting for inconclusive checks: {}", waiting.join("; ")),
        )
    } else if gave_up > 0 {
        let undecided = names_where(&|_, e| e == Effective::GaveUp);
        (
            Decision::Inconclusive,
            format!(
                "still inconclusive after waiting {}: {}",
                crate::duration::format_duration(waited),
                undecided.join("; ")
            ),
        )
    } else {
        let score_value = score.unwrap_or(0.0);
        if score_value >= pass_score {
            (
                Decision::Pass,
                format!(
                    "{passed} of {decided} checks passed (score {score_value:.0}, needed {pass_score:.0})"
                ),
            )
        } else {
            let failures = names_where(&|_, e| e == Effective::Fail);
            (
                Decision::Fail,
                format!(
                    "score {score_value:.0} is below {pass_score:.0}: {}",
                    failures.join("; ")
                ),
            )
        }
    };
    Verdict {
        decision,
        score,
        pass_score,
        not_judged: not_judged(&checks),
        checks,
        reason,
    }
}

/// The score if every undecided check turned out to pass.
fn best_reachable_score(passed: usize, failed: usize, undecided: usize) -> f64 {
    let total = passed + failed + undecided;
    100.0 * (passed + undecided) as f64 / total as f64
}
