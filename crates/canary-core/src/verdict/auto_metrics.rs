//! The judgement of an analysis with no query written: the family found, the traffic each
//! side served, and the error-ratio and latency judgements of its queries, in one result
//! that says which series were used and why. The queries run in canary-kube.

use std::time::Duration;

use super::combine::{Measurement, Outcome};
use crate::analysis_spec::MetricFamily;
use crate::duration::format_duration;
use crate::text::format_number;

/// One judged query: what [`super::judge_query_values`] returned.
pub type Judged = (Outcome, Vec<Measurement>, String);

/// Why the metrics cannot be judged for lack of traffic, if so: either side served fewer
/// than `min_requests` in the window (or Prometheus has no count of it).
pub fn traffic_problem(
    canary_requests: Option<f64>,
    stable_requests: Option<f64>,
    min_requests: u32,
    window: Duration,
) -> Option<String> {
    let served = |n: Option<f64>| n.filter(|v| v.is_finite()).unwrap_or(0.0);
    let (canary, stable) = (served(canary_requests), served(stable_requests));
    let min = f64::from(min_requests);
    if canary >= min && stable >= min {
        return None;
    }
    Some(format!(
        "too little traffic to judge by the metrics: the canary pods served {} requests and the stable pods {} in the last {}; at least {min_requests} per side are needed",
        format_number(canary.round()),
        format_number(stable.round()),
        format_duration(window)
    ))
}

/// Combines the error-ratio and (if the family has durations) latency judgements: any
/// failure fails; otherwise any inconclusive one makes it inconclusive; else a pass.
pub fn judge_auto_metrics(
    family: &MetricFamily,
    requests: (f64, f64),
    errors: Judged,
    latency: Option<Judged>,
) -> Judged {
    let mut measurements = vec![Measurement::new(
        "requests in the window",
        Some(requests.0.round()),
        Some(requests.1.round()),
    )];
    let mut reasons = vec![format!(
        "series used: {family} (the family both sides export)"
    )];
    let mut outcomes = Vec::new();
    for (what, judged) in [("error ratio", Some(errors)), ("mean latency (s)", latency)] {
        let Some((outcome, values, reason)) = judged else {
            reasons.push(format!(
                "{what}: not measured (the family has no durations)"
            ));
            continue;
        };
        outcomes.push(outcome);
        measurements.extend(values.into_iter().map(|m| Measurement {
            name: format!("{what}: {}", m.name),
            ..m
        }));
        reasons.push(format!("{what}: {reason}"));
    }
    let outcome = if outcomes.contains(&Outcome::Fail) {
        Outcome::Fail
    } else if outcomes.contains(&Outcome::Inconclusive) {
        Outcome::Inconclusive
    } else {
        Outcome::Pass
    };
    (outcome, measurements, reasons.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(outcome: Outcome, reason: &str) -> Judged {
        (
            outcome,
            vec![Measurement::new(
                "median over the window",
                Some(0.3),
                Some(0.0),
            )],
            reason.into(),
        )
    }

    #[test]
    fn too_little_traffic_names_both_sides_and_the_sample_needed() {
        let window = Duration::from_secs(60);
        assert_eq!(traffic_problem(Some(300.0), Some(290.0), 50, window), None);
        let reason = traffic_problem(Some(0.0), Some(300.0), 50, window).unwrap();
        assert_eq!(
            reason,
            "too little traffic to judge by the metrics: the canary pods served 0 requests and the stable pods 300 in the last 1m; at least 50 per side are needed"
        );
        assert!(traffic_problem(None, Some(300.0), 50, window).is_some());
        assert!(traffic_problem(Some(f64::NAN), Some(300.0), 50, window).is_some());
    }

    #[test]
    fn any_failure_fails_and_the_series_used_are_named() {
        let family = MetricFamily::Micrometer;
        let cases = [
            (Outcome::Fail, Some(Outcome::Pass), Outcome::Fail),
            (Outcome::Pass, Some(Outcome::Fail), Outcome::Fail),
            (
                Outcome::Pass,
                Some(Outcome::Inconclusive),
                Outcome::Inconclusive,
            ),
            (Outcome::Inconclusive, Some(Outcome::Fail), Outcome::Fail),
            (Outcome::Pass, Some(Outcome::Pass), Outcome::Pass),
            (Outcome::Pass, None, Outcome::Pass),
        ];
        for (errors, latency, want) in cases {
            let (outcome, measurements, reason) = judge_auto_metrics(
                &family,
                (300.0, 310.0),
                judged(errors, "e"),
                latency.map(|o| judged(o, "l")),
            );
            assert_eq!(outcome, want, "{errors:?} {latency:?}: {reason}");
            assert!(
                reason
                    .starts_with("series used: Micrometer http_server_requests_seconds by status"),
                "{reason}"
            );
            assert_eq!(measurements[0].canary, Some(300.0));
            assert_eq!(measurements[1].name, "error ratio: median over the window");
            if latency.is_none() {
                assert!(reason.contains("not measured"), "{reason}");
            }
        }
    }
}
