//! The judge of a Prometheus check: the values a PromQL query returned for the canary and
//! for the stable pods, against the thresholds and compared with each other. The queries
//! themselves run in canary-kube.

use super::combine::{Measurement, Outcome};
use super::judge::{JudgeConfig, judge_samples, judge_values};
use crate::analysis_spec::PrometheusSpec;
use crate::stats;

/// Judges a Prometheus check from the values its query returned for each side, one `Vec`
/// per series: no data is inconclusive; a threshold violation of the canary's value (median
/// over the window for range queries, mean over series for instant ones) fails; otherwise
/// the comparison with the stable side decides ([`judge_samples`] for range queries,
/// [`judge_values`] for instant ones).
pub fn judge_query_values(
    canary: &[Vec<f64>],
    stable: &[Vec<f64>],
    settings: &PrometheusSpec,
    canary_query: &str,
) -> (Outcome, Vec<Measurement>, String) {
    let values = |series: &[Vec<f64>]| -> Vec<f64> { series.iter().flatten().copied().collect() };
    let canary_values = values(canary);
    let stable_values = values(stable);
    let finite = |v: &[f64]| {
        v.iter()
            .copied()
            .filter(|x| x.is_finite())
            .collect::<Vec<f64>>()
    };
    let (canary_finite, stable_finite) = (finite(&canary_values), finite(&stable_values));
    let aggregate = |v: &[f64]| {
        if settings.range.is_some() {
            stats::median(v)
        } else {
            stats::mean(v)
        }
    };
    let value_name = if settings.range.is_some() {
        "median over the window"
    } else {
        "value (mean over series)"
    };
    let measurements = vec![
        Measurement::new(
            value_name,
            aggregate(&canary_finite),
            aggregate(&stable_finite),
        ),
        Measurement::new(
            "samples",
            Some(canary_values.len() as f64),
            Some(stable_values.len() as f64),
        ),
        Measurement::new(
            "series",
            Some(canary.len() as f64),
            Some(stable.len() as f64),
        ),
    ];
    let empty = |side: &str| {
        format!(
            "the query returned no data for the {side} pods (query: {canary_query}); if no series means zero, add `or vector(0)`"
        )
    };
    if canary_values.is_empty() {
        return (Outcome::Inconclusive, measurements, empty("canary"));
    }
    if stable_values.is_empty() {
        return (Outcome::Inconclusive, measurements, empty("stable"));
    }
    let threshold_violation =
        aggregate(&canary_finite).and_then(|v| settings.threshold.violation(v));
    let config: JudgeConfig = settings.judge.into();
    let judgement = if settings.range.is_some() {
        judge_samples(&canary_values, &stable_values, &config)
    } else {
        judge_values(
            aggregate(&canary_finite),
            aggregate(&stable_finite),
            &config,
        )
    };
    let nan_note = if canary_finite.is_empty() || stable_finite.is_empty() {
        " (the values are NaN: typically a rate over no traffic, 0/0)"
    } else {
        ""
    };
    match threshold_violation {
        Some(violation) => (
            Outcome::Fail,
            measurements,
            format!("{violation}; comparison: {}", judgement.reason),
        ),
        None => (
            judgement.outcome,
            measurements,
            format!(
                "{}{nan_note}{}",
                judgement.reason,
                if settings.threshold.is_empty() {
                    String::new()
                } else {
                    "; within the thresholds".to_string()
                }
            ),
        ),
    }
}
