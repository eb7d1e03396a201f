//! Check results, the metric judge and the verdict that combines them.
//!
//! Every check of an analysis produces one [`CheckResult`] with the same shape: an outcome,
//! the values measured on the canary and on the stable pods, and a reason a person can read.
//! [`combine`] turns the results into one [`Verdict`] the way Kayenta's judge does: a failing
//! critical check fails the canary, the others contribute to a score, and inconclusive results
//! follow the policy chosen for their check instead of passing silently.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::stats::{self, Alternative};

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
            checks,
            reason: "no checks are configured, so nothing shows the canary is good".into(),
        };
    }
    let effective: Vec<Effective> = checks
        .iter()
        .map(|check| match (check.outcome, check.on_inconclusive) {
            (Outcome::Pass, _) => Effective::Pass,
            (Outcome::Fail, _) => Effective::Fail,
            (Outcome::Inconclusive, InconclusivePolicy::Pass) => Effective::Pass,
            (Outcome::Inconclusive, InconclusivePolicy::Fail) => Effective::Fail,
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
        checks,
        reason,
    }
}

/// The score if every undecided check turned out to pass.
fn best_reachable_score(passed: usize, failed: usize, undecided: usize) -> f64 {
    let total = passed + failed + undecided;
    100.0 * (passed + undecided) as f64 / total as f64
}

/// Which change of a metric is bad for the canary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    /// Higher is worse (latency, error rate). The default.
    #[default]
    Increase,
    /// Lower is worse (throughput, success rate).
    Decrease,
    /// Any significant change is bad.
    Either,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Increase => "increase",
            Direction::Decrease => "decrease",
            Direction::Either => "either",
        })
    }
}

/// How the metric judge compares a canary sample with a stable sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JudgeConfig {
    /// Which change is bad.
    pub direction: Direction,
    /// Confidence needed to call a difference significant (Kayenta uses 0.98).
    pub confidence: f64,
    /// Relative change tolerated even when significant: 0.1 lets the canary be 10% worse.
    pub tolerance: f64,
    /// Absolute change always tolerated, so that 1 ms against 0.5 ms is not a failure.
    pub absolute_tolerance: f64,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        JudgeConfig {
            direction: Direction::Increase,
            confidence: 0.98,
            tolerance: 0.1,
            absolute_tolerance: 0.0,
        }
    }
}

/// How the judge classified a metric, in Kayenta's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Classification {
    /// The canary is significantly higher, beyond the tolerance.
    High,
    /// The canary is significantly lower, beyond the tolerance.
    Low,
    /// No difference beyond the tolerance.
    Same,
    /// The data cannot decide (too few finite values).
    NoData,
}

/// The judge's answer for one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    /// How the canary compares.
    pub classification: Classification,
    /// The check outcome that follows from the classification and the direction.
    pub outcome: Outcome,
    /// Median of the canary's finite values.
    pub canary: Option<f64>,
    /// Median of the stable pods' finite values.
    pub stable: Option<f64>,
    /// The Mann-Whitney p-value, when the test was run.
    pub p_value: Option<f64>,
    /// Why, for a person.
    pub reason: String,
}

fn outcome_for(classification: Classification, direction: Direction) -> Outcome {
    match (classification, direction) {
        (Classification::NoData, _) => Outcome::Inconclusive,
        (Classification::Same, _) => Outcome::Pass,
        (Classification::High, Direction::Increase | Direction::Either) => Outcome::Fail,
        (Classification::Low, Direction::Decrease | Direction::Either) => Outcome::Fail,
        (Classification::High | Classification::Low, _) => Outcome::Pass,
    }
}

/// The smallest two-sided p-value any split of `n1` and `n2` distinct values can reach.
fn smallest_two_sided_p_value(n1: usize, n2: usize) -> f64 {
    // 2 / C(n1 + n2, n1), computed in floating point to avoid overflow.
    let k = n1.min(n2);
    let n = n1 + n2;
    let mut combinations = 1.0f64;
    for i in 0..k {
        combinations = combinations * (n - i) as f64 / (i + 1) as f64;
    }
    (2.0 / combinations).min(1.0)
}

fn describe_change(canary: f64, stable: f64) -> String {
    if stable != 0.0 {
        format!("{:+.1}%", 100.0 * (canary - stable) / stable.abs())
    } else {
        format!("{:+}", canary - stable)
    }
}

/// Compares canary and stable samples of one metric with a Mann-Whitney U test, like Kayenta's
/// judge: NaN and infinite values are dropped (and said so), a difference counts only if it is
/// significant at `config.confidence` and larger than the tolerance band, and its direction
/// decides whether it is a failure. Samples too small for the test to ever reach the
/// confidence are inconclusive rather than a silent pass.
pub fn judge_samples(canary: &[f64], stable: &[f64], config: &JudgeConfig) -> Judgement {
    let finite =
        |sample: &[f64]| -> Vec<f64> { sample.iter().copied().filter(|v| v.is_finite()).collect() };
    let canary_values = finite(canary);
    let stable_values = finite(stable);
    let dropped = (canary.len() - canary_values.len()) + (stable.len() - stable_values.len());
    let dropped_note = if dropped > 0 {
        format!(" ({dropped} NaN or infinite values ignored)")
    } else {
        String::new()
    };
    let canary_median = stats::median(&canary_values);
    let stable_median = stats::median(&stable_values);
    let no_data = |reason: String| Judgement {
        classification: Classification::NoData,
        outcome: Outcome::Inconclusive,
        canary: canary_median,
        stable: stable_median,
        p_value: None,
        reason,
    };
    if canary_values.is_empty() || stable_values.is_empty() {
        let side = match (canary_values.is_empty(), stable_values.is_empty()) {
            (true, true) => "canary and stable",
            (true, false) => "canary",
            _ => "stable",
        };
        return no_data(format!("no finite {side} values{dropped_note}"));
    }
    let alpha = 1.0 - config.confidence;
    if canary_values == stable_values
        || (canary_values.iter().all(|v| *v == canary_values[0])
            && stable_values.iter().all(|v| *v == canary_values[0]))
    {
        // Identical data is no difference however small the samples are.
    } else if smallest_two_sided_p_value(canary_values.len(), stable_values.len()) > alpha {
        return no_data(format!(
            "{} canary and {} stable values are too few to show a difference at {:.0}% confidence{dropped_note}",
            canary_values.len(),
            stable_values.len(),
            config.confidence * 100.0
        ));
    }
    let (Some(canary_mid), Some(stable_mid)) = (canary_median, stable_median) else {
        return no_data(format!("no finite values{dropped_note}"));
    };
    let test = match stats::mann_whitney_u(&canary_values, &stable_values, Alternative::TwoSided) {
        Ok(test) => test,
        Err(error) => return no_data(format!("{error}{dropped_note}")),
    };
    let shift = stats::hodges_lehmann_shift(&canary_values, &stable_values).unwrap_or(0.0);
    let allowed = (config.tolerance * stable_mid.abs()).max(config.absolute_tolerance);
    let significant = test.p_value < alpha;
    let classification = if significant && shift > allowed {
        Classification::High
    } else if significant && -shift > allowed {
        Classification::Low
    } else {
        Classification::Same
    };
    let outcome = outcome_for(classification, config.direction);
    let summary = format!(
        "canary median {} vs stable {} ({}), shift {}, {} (n={}/{}){}",
        format_number(canary_mid),
        format_number(stable_mid),
        describe_change(canary_mid, stable_mid),
        format_number(shift),
        if test.p_value < 0.0001 {
            "p<0.0001".to_string()
        } else {
            format!("p={:.4}", test.p_value)
        },
        canary_values.len(),
        stable_values.len(),
        dropped_note
    );
    let reason = match (classification, outcome) {
        (Classification::Same, _) if !significant => {
            format!("no significant difference: {summary}")
        }
        (Classification::Same, _) => format!(
            "difference within tolerance of {}: {summary}",
            format_number(allowed)
        ),
        (_, Outcome::Fail) => format!(
            "canary significantly {} beyond tolerance {}: {summary}",
            if classification == Classification::High {
                "higher"
            } else {
                "lower"
            },
            format_number(allowed)
        ),
        _ => format!(
            "canary significantly {} (an improvement for direction {}): {summary}",
            if classification == Classification::High {
                "higher"
            } else {
                "lower"
            },
            config.direction
        ),
    };
    Judgement {
        classification,
        outcome,
        canary: Some(canary_mid),
        stable: Some(stable_mid),
        p_value: Some(test.p_value),
        reason,
    }
}

/// Compares two single values (an instant query, an error rate) with the tolerance band:
/// without samples there is no test, so any change beyond the tolerance counts.
pub fn judge_values(canary: Option<f64>, stable: Option<f64>, config: &JudgeConfig) -> Judgement {
    let no_data = |reason: &str| Judgement {
        classification: Classification::NoData,
        outcome: Outcome::Inconclusive,
        canary,
        stable,
        p_value: None,
        reason: reason.to_string(),
    };
    let (c, s) = match (canary, stable) {
        (Some(c), Some(s)) if c.is_finite() && s.is_finite() => (c, s),
        (None, _) => return no_data("no canary value"),
        (_, None) => return no_data("no stable value"),
        _ => return no_data("a value is NaN or infinite"),
    };
    let allowed = (config.tolerance * s.abs()).max(config.absolute_tolerance);
    let classification = if c - s > allowed {
        Classification::High
    } else if s - c > allowed {
        Classification::Low
    } else {
        Classification::Same
    };
    let outcome = outcome_for(classification, config.direction);
    let reason = format!(
        "canary {} vs stable {} ({}), tolerance {}{}",
        format_number(c),
        format_number(s),
        describe_change(c, s),
        format_number(allowed),
        match outcome {
            Outcome::Fail => format!(": worse in direction {}", config.direction),
            _ => String::new(),
        }
    );
    Judgement {
        classification,
        outcome,
        canary: Some(c),
        stable: Some(s),
        p_value: None,
        reason,
    }
}

/// Absolute bounds for a canary value.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Threshold {
    /// The canary value must not be above this.
    pub max: Option<f64>,
    /// The canary value must not be below this.
    pub min: Option<f64>,
}

impl Threshold {
    /// Whether no bound is set.
    pub fn is_empty(&self) -> bool {
        self.max.is_none() && self.min.is_none()
    }

    /// The violated bound, described, if `value` is outside.
    pub fn violation(&self, value: f64) -> Option<String> {
        if let Some(max) = self.max
            && value > max
        {
            return Some(format!(
                "canary value {} is above the maximum {}",
                format_number(value),
                format_number(max)
            ));
        }
        if let Some(min) = self.min
            && value < min
        {
            return Some(format!(
                "canary value {} is below the minimum {}",
                format_number(value),
                format_number(min)
            ));
        }
        None
    }
}

/// Formats a measured number compactly for reasons and tables.
pub fn format_number(value: f64) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    if value == value.trunc() && value.abs() < 1e12 {
        return format!("{value:.0}");
    }
    let magnitude = value.abs();
    if magnitude >= 100.0 {
        format!("{value:.1}")
    } else if magnitude >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        name: &str,
        outcome: Outcome,
        critical: bool,
        policy: InconclusivePolicy,
    ) -> CheckResult {
        CheckResult {
            name: name.into(),
            kind: CheckKind::Http,
            outcome,
            critical,
            on_inconclusive: policy,
            measurements: vec![Measurement::new("error rate", Some(0.5), Some(0.0))],
            reason: format!("{name} reason"),
        }
    }

    const WAIT_1M: InconclusivePolicy = InconclusivePolicy::Wait {
        limit: Duration::from_secs(60),
    };

    #[test]
    fn critical_failure_fails_even_while_others_wait() {
        let verdict = combine(
            vec![
                check("pods", Outcome::Fail, true, WAIT_1M),
                check("prom", Outcome::Inconclusive, true, WAIT_1M),
            ],
            95.0,
            Duration::ZERO,
        );
        assert_eq!(verdict.decision, Decision::Fail);
        assert!(
            verdict.reason.contains("pods (pods reason)"),
            "{}",
            verdict.reason
        );
    }

    #[test]
    fn non_critical_failure_fails_only_below_the_pass_score() {
        let checks = || {
            vec![
                check("a", Outcome::Pass, true, WAIT_1M),
                check("b", Outcome::Pass, true, WAIT_1M),
                check("c", Outcome::Pass, true, WAIT_1M),
                check("d", Outcome::Fail, false, WAIT_1M),
            ]
        };
        let strict = combine(checks(), 95.0, Duration::ZERO);
        assert_eq!(strict.decision, Decision::Fail);
        assert_eq!(strict.score, Some(75.0));
        let lenient = combine(checks(), 75.0, Duration::ZERO);
        assert_eq!(lenient.decision, Decision::Pass);
    }

    #[test]
    fn inconclusive_follows_its_policy() {
        let waiting = combine(
            vec![
                check("a", Outcome::Pass, true, WAIT_1M),
                check("b", Outcome::Inconclusive, true, WAIT_1M),
            ],
            95.0,
            Duration::from_secs(30),
        );
        assert_eq!(waiting.decision, Decision::Wait);
        let gave_up = combine(waiting.checks.clone(), 95.0, Duration::from_secs(60));
        assert_eq!(gave_up.decision, Decision::Inconclusive);
        assert!(
            gave_up.reason.contains("after waiting 1m"),
            "{}",
            gave_up.reason
        );

        let as_fail = combine(
            vec![check(
                "b",
                Outcome::Inconclusive,
                true,
                InconclusivePolicy::Fail,
            )],
            95.0,
            Duration::ZERO,
        );
        assert_eq!(as_fail.decision, Decision::Fail);
        let as_pass = combine(
            vec![
                check("a", Outcome::Pass, true, WAIT_1M),
                check("b", Outcome::Inconclusive, true, InconclusivePolicy::Pass),
            ],
            95.0,
            Duration::ZERO,
        );
        assert_eq!(as_pass.decision, Decision::Pass);
    }

    #[test]
    fn failure_that_no_pending_check_can_outweigh_fails_early() {
        let verdict = combine(
            vec![
                check("a", Outcome::Fail, false, WAIT_1M),
                check("b", Outcome::Inconclusive, false, WAIT_1M),
            ],
            95.0,
            Duration::ZERO,
        );
        assert_eq!(verdict.decision, Decision::Fail);
    }

    fn arbitrary_check() -> impl proptest::strategy::Strategy<Value = CheckResult> {
        use proptest::prelude::*;
        (
            prop_oneof![
                Just(Outcome::Pass),
                Just(Outcome::Fail),
                Just(Outcome::Inconclusive)
            ],
            any::<bool>(),
            prop_oneof![
                Just(InconclusivePolicy::Pass),
                Just(InconclusivePolicy::Fail),
                (0u64..120).prop_map(|s| InconclusivePolicy::Wait {
                    limit: Duration::from_secs(s)
                }),
            ],
        )
            .prop_map(|(outcome, critical, policy)| check("c", outcome, critical, policy))
    }

    proptest::proptest! {
        #[test]
        fn combination_invariants(
            checks in proptest::collection::vec(arbitrary_check(), 1..8),
            pass_score in 0.0f64..=100.0,
            waited in 0u64..150,
        ) {
            let waited = Duration::from_secs(waited);
            let verdict = combine(checks.clone(), pass_score, waited);
            let counts_as_failure = |c: &CheckResult| {
                c.outcome == Outcome::Fail
                    || (c.outcome == Outcome::Inconclusive && c.on_inconclusive == InconclusivePolicy::Fail)
            };
            let undecided = |c: &CheckResult| {
                c.outcome == Outcome::Inconclusive && matches!(c.on_inconclusive, InconclusivePolicy::Wait { .. })
            };
            // A failing critical check always fails the canary.
            if checks.iter().any(|c| c.critical && counts_as_failure(c)) {
                proptest::prop_assert_eq!(verdict.decision, Decision::Fail);
            }
            // A pass needs every check decided and the score reached.
            if verdict.decision == Decision::Pass {
                proptest::prop_assert!(!checks.iter().any(undecided));
                proptest::prop_assert!(verdict.score.unwrap() >= pass_score);
            }
            // Nothing failing and nothing undecided is a pass.
            if !checks.iter().any(|c| counts_as_failure(c) || undecided(c)) {
                proptest::prop_assert_eq!(verdict.decision, Decision::Pass);
            }
            // Waiting happens only while a waiting check's limit is ahead.
            if verdict.decision == Decision::Wait {
                let waiting_ahead = checks.iter().any(|c| {
                    c.outcome == Outcome::Inconclusive
                        && matches!(c.on_inconclusive, InconclusivePolicy::Wait { limit } if waited < limit)
                });
                proptest::prop_assert!(waiting_ahead);
            }
            // Every check is reported, in order.
            proptest::prop_assert_eq!(verdict.checks, checks);
        }
    }

    #[test]
    fn no_checks_is_inconclusive_not_a_pass() {
        assert_eq!(
            combine(vec![], 95.0, Duration::ZERO).decision,
            Decision::Inconclusive
        );
    }

    #[test]
    fn judge_fails_a_clearly_worse_latency_series() {
        let stable: Vec<f64> = (0..30).map(|i| 0.100 + f64::from(i % 7) * 0.002).collect();
        let canary: Vec<f64> = (0..30).map(|i| 0.300 + f64::from(i % 5) * 0.003).collect();
        let judgement = judge_samples(&canary, &stable, &JudgeConfig::default());
        assert_eq!(judgement.classification, Classification::High);
        assert_eq!(judgement.outcome, Outcome::Fail);
        assert!(
            judgement.reason.contains("significantly higher"),
            "{}",
            judgement.reason
        );
        // The same change is an improvement when lower is worse.
        let decrease = JudgeConfig {
            direction: Direction::Decrease,
            ..JudgeConfig::default()
        };
        assert_eq!(
            judge_samples(&canary, &stable, &decrease).outcome,
            Outcome::Pass
        );
    }

    #[test]
    fn judge_tolerates_small_significant_changes() {
        let stable: Vec<f64> = (0..30).map(|i| 100.0 + f64::from(i % 3)).collect();
        let canary: Vec<f64> = (0..30).map(|i| 104.0 + f64::from(i % 3)).collect();
        let judgement = judge_samples(&canary, &stable, &JudgeConfig::default());
        assert_eq!(judgement.classification, Classification::Same);
        assert_eq!(judgement.outcome, Outcome::Pass);
        assert!(
            judgement.reason.contains("within tolerance"),
            "{}",
            judgement.reason
        );
    }

    #[test]
    fn judge_is_inconclusive_without_data_or_with_too_few_values() {
        let nan = judge_samples(&[f64::NAN, f64::NAN], &[1.0, 2.0], &JudgeConfig::default());
        assert_eq!(nan.outcome, Outcome::Inconclusive);
        assert!(
            nan.reason.contains("no finite canary values"),
            "{}",
            nan.reason
        );
        assert!(nan.reason.contains("2 NaN"), "{}", nan.reason);
        let few = judge_samples(&[10.0, 11.0], &[1.0, 2.0], &JudgeConfig::default());
        assert_eq!(few.outcome, Outcome::Inconclusive);
        assert!(few.reason.contains("too few"), "{}", few.reason);
        let identical = judge_samples(&[1.0, 1.0], &[1.0], &JudgeConfig::default());
        assert_eq!(identical.outcome, Outcome::Pass);
    }

    #[test]
    fn judge_values_uses_the_tolerance_band() {
        let config = JudgeConfig {
            tolerance: 0.1,
            absolute_tolerance: 0.01,
            ..JudgeConfig::default()
        };
        assert_eq!(
            judge_values(Some(1.05), Some(1.0), &config).outcome,
            Outcome::Pass
        );
        assert_eq!(
            judge_values(Some(1.2), Some(1.0), &config).outcome,
            Outcome::Fail
        );
        assert_eq!(
            judge_values(Some(0.005), Some(0.0), &config).outcome,
            Outcome::Pass
        );
        assert_eq!(
            judge_values(None, Some(0.0), &config).outcome,
            Outcome::Inconclusive
        );
        assert_eq!(
            judge_values(Some(f64::NAN), Some(0.0), &config).outcome,
            Outcome::Inconclusive
        );
    }

    #[test]
    fn thresholds_name_the_violated_bound() {
        let threshold = Threshold {
            max: Some(0.5),
            min: None,
        };
        assert_eq!(threshold.violation(0.4), None);
        assert_eq!(
            threshold.violation(0.75).as_deref(),
            Some("canary value 0.7500 is above the maximum 0.5000")
        );
    }
}
