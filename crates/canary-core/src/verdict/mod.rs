//! Check results, the metric judge and the verdict that combines them.
//!
//! Every check of an analysis produces one [`CheckResult`] with the same shape: an outcome,
//! the values measured on the canary and on the stable pods, and a reason a person can read.
//! [`combine`] turns the results into one [`Verdict`] the way Kayenta's judge does: a failing
//! critical check fails the canary, the others contribute to a score, and inconclusive results
//! follow the policy chosen for their check instead of passing silently.

pub mod auto_metrics;
mod combine;
mod event;
pub mod http;
mod judge;
pub mod logs;
mod query;
pub mod sequential;

pub use crate::text::format_number;
pub use combine::*;
pub use event::{VerdictEvent, event_note, verdict_event};
pub use judge::*;
pub use query::{judge_query_values, live_series_coverage};

#[cfg(test)]
mod tests {
    use std::time::Duration;

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

    /// A verdict of pod health and logs alone passes, but says it did not judge requests;
    /// one HTTP or Prometheus check among the checks makes it a verdict on requests.
    #[test]
    fn a_verdict_without_a_request_check_says_it_did_not_judge_requests() {
        let of_kind = |kind| CheckResult {
            kind,
            ..check("c", Outcome::Pass, true, WAIT_1M)
        };
        let blind = combine(
            vec![of_kind(CheckKind::PodHealth), of_kind(CheckKind::Logs)],
            95.0,
            Duration::ZERO,
        );
        assert_eq!(blind.decision, Decision::Pass);
        assert!(
            blind
                .not_judged
                .as_deref()
                .is_some_and(|n| n.starts_with("requests")),
            "{blind:?}"
        );
        assert!(combine(vec![], 95.0, Duration::ZERO).not_judged.is_some());
        for kind in [CheckKind::Http, CheckKind::Prometheus] {
            let seeing = combine(
                vec![of_kind(CheckKind::PodHealth), of_kind(kind)],
                95.0,
                Duration::ZERO,
            );
            assert_eq!(seeing.not_judged, None, "{kind}");
        }
    }

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

    #[test]
    fn inconclusive_with_fail_policy_counts_as_failed() {
        let mut result = check("p", Outcome::Inconclusive, true, InconclusivePolicy::Fail);
        assert!(result.counts_as_failed());
        result.on_inconclusive = InconclusivePolicy::Pass;
        assert!(!result.counts_as_failed());
        result.outcome = Outcome::Fail;
        assert!(result.counts_as_failed());
    }

    #[test]
    fn each_decision_has_its_event() {
        let mut verdict = combine(
            vec![check("a", Outcome::Fail, true, InconclusivePolicy::Fail)],
            95.0,
            Duration::ZERO,
        );
        let event = verdict_event(&verdict);
        assert!(event.warning);
        assert_eq!(event.reason, "AnalysisFailed");
        assert!(event.note.starts_with("analysis fail: "), "{}", event.note);
        assert!(event.note.ends_with("[a fail]"), "{}", event.note);
        for (decision, reason) in [
            (Decision::Pass, "AnalysisPassed"),
            (Decision::Wait, "AnalysisInconclusive"),
            (Decision::Inconclusive, "AnalysisInconclusive"),
        ] {
            verdict.decision = decision;
            let event = verdict_event(&verdict);
            assert!(!event.warning);
            assert_eq!(event.reason, reason);
        }
    }
}
