//! The judge of a Prometheus check: the values a PromQL query returned for the canary and
//! for the stable pods, against the thresholds and compared with each other. The queries
//! themselves run in canary-kube.

use super::combine::{Measurement, Outcome};
use super::judge::{JudgeConfig, judge_samples, judge_values};
use crate::analysis_spec::PrometheusSpec;
use crate::stats;

/// Whether Prometheus has live series of a side's pods, before its values are judged: a
/// query like `... or vector(0)` reads 0 for pods Prometheus does not scrape at all, which
/// would pass any canary. `Err` (the check is inconclusive) when none of the side's running
/// `pods` has live series, naming them; `Ok` with a note naming the pods missing when only
/// some have.
pub fn live_series_coverage(
    side: &str,
    pods: &[String],
    live: &std::collections::BTreeSet<String>,
) -> Result<Option<String>, String> {
    let missing: Vec<&str> = pods
        .iter()
        .filter(|p| !live.contains(*p))
        .map(String::as_str)
        .collect();
    if pods.is_empty() {
        return Err(format!("no running {side} pods to read series of"));
    }
    if missing.len() == pods.len() {
        return Err(format!(
            "Prometheus has no live series of the {side} pods ({}): it does not scrape them (a `prometheus.io/scrape` annotation, the port?), so the query's values would say nothing about them",
            missing.join(", ")
        ));
    }
    Ok((!missing.is_empty()).then(|| {
        format!(
            "no live series of {} of {} {side} pods ({})",
            missing.len(),
            pods.len(),
            missing.join(", ")
        )
    }))
}

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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::live_series_coverage;

    #[test]
    fn a_side_without_live_series_is_named_pod_by_pod() {
        let pods = vec!["web-a".to_string(), "web-b".to_string()];
        let error = live_series_coverage("canary", &pods, &BTreeSet::new()).unwrap_err();
        assert!(
            error.contains("no live series of the canary pods (web-a, web-b)"),
            "{error}"
        );
        let some: BTreeSet<String> = ["web-b".to_string()].into();
        assert_eq!(
            live_series_coverage("canary", &pods, &some)
                .unwrap()
                .as_deref(),
            Some("no live series of 1 of 2 canary pods (web-a)")
        );
        let all: BTreeSet<String> = pods.iter().cloned().collect();
        assert_eq!(live_series_coverage("canary", &pods, &all), Ok(None));
        assert!(live_series_coverage("stable", &[], &all).is_err());
    }
}
