//! The HTTP check's judgement: the canary's answers against the stable pods' (error rates by
//! a one-sided Fisher exact test, latencies by the metric judge), and for a check through a
//! Service, what users see at the canary's traffic share.
//!
//! Pure: the requests are sent by `canary_kube::analysis::http`.

use std::time::Duration;

use crate::analysis_spec::HttpSpec;
use crate::stats;
pub use crate::verdict::sequential::ERROR_RATE_CONFIDENCE;
use crate::verdict::sequential::{FALSE_PASS_RATE, LookDecision, SequentialPlan};
use crate::verdict::{JudgeConfig, Measurement, Outcome, format_number, judge_samples};

/// The answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// The pod (or Service) answered with this status.
    Status {
        /// HTTP status code.
        code: u16,
        /// Time to the full response.
        latency: Duration,
    },
    /// The API server refused the request or could not reach the pod (it answered with a
    /// `Status` object of its own).
    Unreachable(String),
    /// No answer in time, or the request failed before reaching the API server.
    Failed(String),
}

/// Counts of one side's responses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// Requests sent.
    pub sent: usize,
    /// Requests that did not succeed (a status not expected, no answer, unreachable).
    pub errors: usize,
    /// Requests the API server could not deliver.
    pub unreachable: usize,
    /// Latencies in seconds of successful responses.
    pub latencies: Vec<f64>,
    /// A few distinct error descriptions, for the reason.
    pub examples: Vec<String>,
}

impl Tally {
    /// Counts `responses` by what `settings` expects.
    pub fn of(responses: &[Response], settings: &HttpSpec) -> Self {
        let mut tally = Tally {
            sent: responses.len(),
            ..Tally::default()
        };
        for response in responses {
            let problem = match response {
                Response::Status { code, latency } if settings.is_success(*code) => {
                    tally.latencies.push(latency.as_secs_f64());
                    None
                }
                Response::Status { code, .. } => Some(format!("status {code}")),
                Response::Unreachable(message) => {
                    tally.unreachable += 1;
                    Some(format!("unreachable: {message}"))
                }
                Response::Failed(message) => Some(message.clone()),
            };
            if let Some(problem) = problem {
                tally.errors += 1;
                if tally.examples.len() < 3 && !tally.examples.contains(&problem) {
                    tally.examples.push(problem);
                }
            }
        }
        tally
    }

    /// Errors over requests sent.
    pub fn error_rate(&self) -> Option<f64> {
        (self.sent > 0).then(|| self.errors as f64 / self.sent as f64)
    }

    fn describe(&self) -> String {
        if self.examples.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.examples.join("; "))
        }
    }
}

fn measurements(canary: &Tally, stable: &Tally) -> Vec<Measurement> {
    vec![
        Measurement::new(
            "requests",
            Some(canary.sent as f64),
            Some(stable.sent as f64),
        ),
        Measurement::new("error rate", canary.error_rate(), stable.error_rate()),
        Measurement::new(
            "median latency (s)",
            stats::median(&canary.latencies),
            stats::median(&stable.latencies),
        ),
    ]
}

/// Compares the canary pods' answers with the stable pods'.
pub fn judge(
    canary_responses: &[Response],
    stable_responses: &[Response],
    settings: &HttpSpec,
) -> (Outcome, Vec<Measurement>, String) {
    let canary = Tally::of(canary_responses, settings);
    let stable = Tally::of(stable_responses, settings);
    judge_tallies(&canary, &stable, settings)
}

fn judge_tallies(
    canary: &Tally,
    stable: &Tally,
    settings: &HttpSpec,
) -> (Outcome, Vec<Measurement>, String) {
    let measured = measurements(canary, stable);
    let inconclusive = |reason: String| (Outcome::Inconclusive, measured.clone(), reason);
    if canary.sent == 0 {
        return inconclusive("no Ready canary pods to send requests to".into());
    }
    if stable.sent == 0 {
        return inconclusive("no Ready stable pods to compare with".into());
    }
    if stable.unreachable == stable.sent {
        return inconclusive(format!(
            "the API server could not reach the stable pods either, so the comparison says nothing: {}",
            stable.examples.join("; ")
        ));
    }
    let canary_rate = canary.error_rate().unwrap_or(0.0);
    let stable_rate = stable.error_rate().unwrap_or(0.0);
    let error_summary = format!(
        "error rate canary {}/{}{} vs stable {}/{}{}",
        canary.errors,
        canary.sent,
        canary.describe(),
        stable.errors,
        stable.sent,
        stable.describe()
    );
    let plan = SequentialPlan::of(settings);
    let tolerance = settings.max_error_rate_increase;
    let sent = canary.sent.min(stable.sent);
    let looked = plan.look_at(sent).map(|look| {
        let decision = plan.decide(
            look,
            (canary.errors, canary.sent),
            (stable.errors, stable.sent),
            tolerance,
        );
        (look, decision)
    });
    let progress = |look: usize| {
        format!(
            "look {} of {}, {sent} of at most {} requests per side",
            look + 1,
            plan.looks.len(),
            plan.bound()
        )
    };
    let latency_config: JudgeConfig = settings.latency.into();
    let judge_latency = |errors: String| {
        let latency = judge_samples(&canary.latencies, &stable.latencies, &latency_config);
        let reason = format!("{errors}; latency: {}", latency.reason);
        (latency.outcome, measured.clone(), reason)
    };
    match looked {
        Some((look, LookDecision::Fail { p_value, level })) => {
            return (
                Outcome::Fail,
                measured.clone(),
                format!(
                    "{error_summary}: more than {} points above stable (Fisher p={} <= {} at {})",
                    format_number(tolerance * 100.0),
                    format_number(p_value),
                    format_number(level),
                    progress(look)
                ),
            );
        }
        Some((look, LookDecision::Pass { upper_bound })) => {
            return judge_latency(format!(
                "{error_summary}: at most {} points above stable with {}% confidence ({})",
                format_number(upper_bound.max(0.0) * 100.0),
                format_number((1.0 - FALSE_PASS_RATE) * 100.0),
                progress(look)
            ));
        }
        _ => {}
    }
    // Undecided where the requests stopped: the fixed-sample rule, which never fails beyond
    // the error budget the looks spent.
    if canary_rate - stable_rate > tolerance {
        let p_value = fisher(canary.errors, canary.sent, stable.errors, stable.sent);
        let needed = requests_to_decide(canary_rate, stable.errors, stable.sent)
            .map_or("more requests".into(), |n| {
                format!("about {n} requests per side")
            });
        return inconclusive(format!(
            "{error_summary}: higher, but {} requests per side cannot tell it from chance (Fisher p={}); at this error rate {needed} would decide (`requests`, the most sent per side)",
            canary.sent,
            format_number(p_value)
        ));
    }
    judge_latency(format!(
        "{error_summary}: within {} points of stable",
        format_number(tolerance * 100.0)
    ))
}

/// Whether the answers so far decide the error rates (or nothing more can be learnt): the
/// probe stops sending. Otherwise it sends the next group, up to the bound (`requests`).
pub fn decided(
    canary_responses: &[Response],
    stable_responses: &[Response],
    settings: &HttpSpec,
) -> bool {
    let canary = Tally::of(canary_responses, settings);
    let stable = Tally::of(stable_responses, settings);
    if canary.sent == 0 || stable.sent == 0 || stable.unreachable == stable.sent {
        return true;
    }
    let plan = SequentialPlan::of(settings);
    let sent = canary.sent.min(stable.sent);
    if sent >= plan.bound() as usize {
        return true;
    }
    plan.look_at(sent).is_some_and(|look| {
        !matches!(
            plan.decide(
                look,
                (canary.errors, canary.sent),
                (stable.errors, stable.sent),
                settings.max_error_rate_increase,
            ),
            LookDecision::Undecided { .. }
        )
    })
}

fn fisher(first_errors: usize, first_sent: usize, second_errors: usize, second_sent: usize) -> f64 {
    stats::fisher_exact_greater(
        first_errors as u64,
        first_sent as u64,
        second_errors as u64,
        second_sent as u64,
    )
    .unwrap_or(1.0)
}

/// The requests per side at which a canary error rate `canary_rate` against the stable
/// side's (scaled alike) would be significant, if within the most a check may send.
fn requests_to_decide(canary_rate: f64, stable_errors: usize, stable_sent: usize) -> Option<u32> {
    let stable_rate = stable_errors as f64 / stable_sent.max(1) as f64;
    let mut n = 2u32;
    while n <= crate::analysis_spec::MAX_HTTP_REQUESTS {
        let canary_errors = (canary_rate * f64::from(n)).round() as usize;
        let stable_errors = (stable_rate * f64::from(n)).round() as usize;
        if fisher(canary_errors, n as usize, stable_errors, n as usize)
            < 1.0 - ERROR_RATE_CONFIDENCE
        {
            return Some(n);
        }
        n = (f64::from(n) * 1.25).ceil() as u32;
    }
    None
}

/// What a check through a Service measured besides the two sides' own answers.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSample<'a> {
    /// The Service.
    pub service: &'a str,
    /// The answers to the requests sent through the Service, as users reach it.
    pub responses: &'a [Response],
    /// Ready endpoints of the Service that are canary pods.
    pub canary_endpoints: usize,
    /// All ready endpoints of the Service.
    pub endpoints: usize,
}

impl ServiceSample<'_> {
    /// The canary's share of the Service's traffic: its ready endpoints among all (the
    /// Service balances evenly over ready endpoints).
    pub fn canary_share(&self) -> Option<f64> {
        (self.endpoints > 0).then(|| self.canary_endpoints as f64 / self.endpoints as f64)
    }
}

/// Judges a check through a Service. Requests through a Service reach the canary only at its
/// traffic share, so their error rate alone dilutes a bad canary (a 1-in-20 canary failing
/// every request shows 5% errors). The canary is therefore judged per side, through the
/// pod proxies of the Service's own endpoints ([`judge`]), and what users see through the
/// Service adds a failure when its error rate is significantly above the stable pods' and,
/// attributed to the canary's share, more than `max_error_rate_increase` above them.
pub fn judge_through_service(
    sample: &ServiceSample<'_>,
    canary_responses: &[Response],
    stable_responses: &[Response],
    settings: &HttpSpec,
) -> (Outcome, Vec<Measurement>, String) {
    let canary = Tally::of(canary_responses, settings);
    let stable = Tally::of(stable_responses, settings);
    let through = Tally::of(sample.responses, settings);
    let (side_outcome, mut measured, side_reason) = judge_tallies(&canary, &stable, settings);
    let share = sample.canary_share();
    measured.push(Measurement::new(
        "traffic share",
        share,
        share.map(|s| 1.0 - s),
    ));
    measured.push(Measurement::new(
        "error rate through the Service",
        through.error_rate(),
        None,
    ));
    let service = sample.service;
    let routed = format!(
        "service {service} sends the canary {} of {} ready endpoints",
        sample.canary_endpoints, sample.endpoints
    );
    let Some(share) = share.filter(|s| *s > 0.0) else {
        return (
            Outcome::Inconclusive,
            measured,
            format!(
                "{routed}: users do not reach the canary, so what they see says nothing about it; {side_reason}"
            ),
        );
    };
    if through.sent > 0 && through.unreachable == through.sent {
        return (
            Outcome::Inconclusive,
            measured,
            format!(
                "the API server could not reach service {service}{}; {side_reason}",
                through.describe()
            ),
        );
    }
    let through_rate = through.error_rate().unwrap_or(0.0);
    let stable_rate = stable.error_rate().unwrap_or(0.0);
    let attributed = (through_rate - stable_rate) / share;
    let users = format!(
        "through the Service {}/{} failed{} ({routed}, share {}: {} points above stable if it is the canary's)",
        through.errors,
        through.sent,
        through.describe(),
        format_number(share),
        format_number(attributed.max(0.0) * 100.0)
    );
    let users_worse = attributed > settings.max_error_rate_increase
        && fisher(through.errors, through.sent, stable.errors, stable.sent)
            < 1.0 - ERROR_RATE_CONFIDENCE;
    if users_worse {
        return (
            Outcome::Fail,
            measured,
            format!("{users}: users see the canary's errors; per side: {side_reason}"),
        );
    }
    (
        side_outcome,
        measured,
        format!("per side: {side_reason}; {users}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(ms: u64) -> Response {
        Response::Status {
            code: 200,
            latency: Duration::from_millis(ms),
        }
    }

    fn server_error() -> Response {
        Response::Status {
            code: 500,
            latency: Duration::from_millis(5),
        }
    }

    /// The tests' samples are 20 requests per side: one look, the fixed-sample test.
    fn settings() -> HttpSpec {
        HttpSpec {
            requests: 20,
            ..HttpSpec::new(8080, "/healthz")
        }
    }

    #[test]
    fn error_rate_clearly_above_stable_fails() {
        let canary: Vec<Response> = (0..20)
            .map(|i| if i % 3 == 0 { server_error() } else { ok(10) })
            .collect();
        let stable: Vec<Response> = (0..20).map(|_| ok(10)).collect();
        let (outcome, measured, reason) = judge(&canary, &stable, &settings());
        assert_eq!(outcome, Outcome::Fail, "{reason}");
        assert_eq!(measured[1].canary, Some(7.0 / 20.0));
        assert_eq!(measured[1].stable, Some(0.0));
        assert!(reason.contains("status 500"), "{reason}");
    }

    #[test]
    fn a_few_unlucky_requests_are_inconclusive_with_the_requests_that_would_decide() {
        let canary: Vec<Response> = (0..20)
            .map(|i| if i < 2 { server_error() } else { ok(10) })
            .collect();
        let stable: Vec<Response> = (0..20).map(|_| ok(10)).collect();
        let (outcome, _, reason) = judge(&canary, &stable, &settings());
        assert_eq!(outcome, Outcome::Inconclusive, "{reason}");
        assert!(reason.contains("cannot tell it from chance"), "{reason}");
        assert!(
            reason.contains("requests per side would decide"),
            "{reason}"
        );
        // Every request failing is clear even with few requests.
        let canary: Vec<Response> = (0..20).map(|_| server_error()).collect();
        assert_eq!(judge(&canary, &stable, &settings()).0, Outcome::Fail);
    }

    #[test]
    fn slower_canary_fails_on_latency() {
        let canary: Vec<Response> = (0..20).map(|i| ok(200 + i)).collect();
        let stable: Vec<Response> = (0..20).map(|i| ok(10 + i)).collect();
        let (outcome, _, reason) = judge(&canary, &stable, &settings());
        assert_eq!(outcome, Outcome::Fail, "{reason}");
        assert!(
            reason.contains("latency: canary significantly higher"),
            "{reason}"
        );
    }

    #[test]
    fn equal_sides_pass() {
        let canary: Vec<Response> = (0..20).map(|i| ok(10 + i % 4)).collect();
        let stable: Vec<Response> = (0..20).map(|i| ok(10 + (i + 1) % 4)).collect();
        let (outcome, _, reason) = judge(&canary, &stable, &settings());
        assert_eq!(outcome, Outcome::Pass, "{reason}");
    }

    #[test]
    fn no_pods_or_unreachable_stable_is_inconclusive() {
        let settings = || HttpSpec {
            requests: 5,
            ..HttpSpec::new(8080, "/healthz")
        };
        let stable: Vec<Response> = (0..5).map(|_| ok(10)).collect();
        assert_eq!(judge(&[], &stable, &settings()).0, Outcome::Inconclusive);
        let unreachable: Vec<Response> = (0..5)
            .map(|_| Response::Unreachable("error trying to reach service".into()))
            .collect();
        let (outcome, _, reason) = judge(&stable, &unreachable, &settings());
        assert_eq!(outcome, Outcome::Inconclusive);
        assert!(
            reason.contains("could not reach the stable pods"),
            "{reason}"
        );
        // An unreachable canary next to reachable stable pods is the canary's failure.
        assert_eq!(judge(&unreachable, &stable, &settings()).0, Outcome::Fail);
    }

    /// `errors` of every `every` requests fail (spread evenly), `sent` in all.
    fn failing_every(every: usize, sent: usize) -> Vec<Response> {
        (0..sent)
            .map(|i| {
                if i % every == 0 {
                    server_error()
                } else {
                    ok(10)
                }
            })
            .collect()
    }

    /// The case with the default bound: a canary answering 20% errors is undecided
    /// after 20 requests per side, so the probe sends more, and fails at a later look of the
    /// same round; a good canary is decided (passed) at 120, not at the bound of 200.
    #[test]
    fn sequential_looks_decide_a_bad_canary_early_and_a_good_one_without_flooding() {
        let settings = HttpSpec::new(8080, "/healthz");
        assert_eq!(settings.requests, 200);
        let stable: Vec<Response> = (0..200).map(|_| ok(10)).collect();
        let bad = failing_every(5, 200);
        assert!(!decided(&bad[..20], &stable[..20], &settings));
        let (outcome, _, reason) = judge(&bad[..20], &stable[..20], &settings);
        assert_eq!(outcome, Outcome::Inconclusive, "{reason}");
        assert!(!decided(&bad[..20], &stable[..20], &settings));
        let stop = (1..=10)
            .map(|k| k * 20)
            .find(|n| decided(&bad[..*n], &stable[..*n], &settings))
            .expect("decided within the bound");
        assert_eq!(stop, 40);
        let (outcome, _, reason) = judge(&bad[..stop], &stable[..stop], &settings);
        assert_eq!(outcome, Outcome::Fail, "{reason}");
        assert!(
            reason.contains("look 2 of 10, 40 of at most 200"),
            "{reason}"
        );

        let good: Vec<Response> = (0..200).map(|i| ok(10 + (i % 3) as u64)).collect();
        let stop = (1..=10)
            .map(|k| k * 20)
            .find(|n| decided(&good[..*n], &stable[..*n], &settings))
            .expect("decided within the bound");
        assert_eq!(stop, 120);
        let (outcome, _, reason) = judge(&good[..stop], &stable[..stop], &settings);
        assert_eq!(outcome, Outcome::Pass, "{reason}");
        assert!(reason.contains("with 95% confidence"), "{reason}");
    }

    fn through(errors: usize, sent: usize) -> Vec<Response> {
        (0..sent)
            .map(|i| if i < errors { server_error() } else { ok(10) })
            .collect()
    }

    /// The case: a 1-in-11 canary answering every request with 500 shows about 9%
    /// errors through the Service, under an absolute 5% + chance. Judged per side and at its
    /// share, it fails whatever the Service sample shows.
    #[test]
    fn a_diluted_canary_failing_every_request_fails() {
        let failing: Vec<Response> = (0..20).map(|_| server_error()).collect();
        let stable: Vec<Response> = (0..20).map(|_| ok(10)).collect();
        for (canary_endpoints, endpoints) in [(1, 11), (1, 20), (1, 2)] {
            for service_errors in [0, 1, 2] {
                let responses = through(service_errors, 20);
                let sample = ServiceSample {
                    service: "web",
                    responses: &responses,
                    canary_endpoints,
                    endpoints,
                };
                let (outcome, measured, reason) =
                    judge_through_service(&sample, &failing, &stable, &settings());
                assert_eq!(
                    outcome,
                    Outcome::Fail,
                    "{canary_endpoints}/{endpoints}: {reason}"
                );
                assert_eq!(
                    measured[3].canary,
                    Some(canary_endpoints as f64 / endpoints as f64)
                );
            }
        }
    }

    #[test]
    fn users_errors_are_attributed_at_the_canary_share() {
        let good: Vec<Response> = (0..100).map(|_| ok(10)).collect();
        // 10 of 100 through the Service fail, stable none of 100, canary share 1/4:
        // attributed 40 points to the canary: users see it.
        let responses = through(10, 100);
        let sample = ServiceSample {
            service: "web",
            responses: &responses,
            canary_endpoints: 1,
            endpoints: 4,
        };
        let (outcome, _, reason) = judge_through_service(&sample, &good, &good, &settings());
        assert_eq!(outcome, Outcome::Fail, "{reason}");
        assert!(reason.contains("users see the canary's errors"), "{reason}");
        // Nothing through the Service fails and both sides agree: pass.
        let responses = through(0, 40);
        let sample = ServiceSample {
            responses: &responses,
            ..sample
        };
        let (outcome, _, reason) = judge_through_service(&sample, &good, &good, &settings());
        assert_eq!(outcome, Outcome::Pass, "{reason}");
        // A Service that does not route to the canary says nothing about it.
        let sample = ServiceSample {
            canary_endpoints: 0,
            ..sample
        };
        let (outcome, _, reason) = judge_through_service(&sample, &good, &good, &settings());
        assert_eq!(outcome, Outcome::Inconclusive, "{reason}");
        assert!(reason.contains("users do not reach the canary"), "{reason}");
    }
}
