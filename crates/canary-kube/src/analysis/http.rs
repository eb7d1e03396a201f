//! HTTP: requests to the canary and to the stable pods through the API server's pod proxy
//! (or to a Service through its service proxy, as users reach it), with the error rates and
//! latencies compared.
//!
//! The number of requests and their rate are bounded by the spec's validation
//! ([`canary_core::analysis_spec::MAX_HTTP_REQUESTS`], [`canary_core::analysis_spec::MAX_HTTP_RATE_PER_SECOND`]),
//! so a check can never flood a pod or the API server.

use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use kube::ResourceExt;
use kube::client::Body;
use tokio::time::Instant;

use canary_core::analysis_spec::{
    CheckSpec, HttpSpec, MAX_HTTP_RATE_PER_SECOND, MAX_HTTP_REQUESTS,
};
use canary_core::stats;
use canary_core::verdict::{
    CheckResult, JudgeConfig, Measurement, Outcome, format_number, judge_samples,
};

use super::{AnalysisTarget, Side, list_side_pods, result_of};
use crate::observe::pod_is_ready as is_ready;

/// Confidence needed before a higher canary error rate counts as a failure.
pub const ERROR_RATE_CONFIDENCE: f64 = 0.98;

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

/// Sends one GET through the API server to `path` (an API path ending in `/proxy/...`).
pub async fn proxy_get(client: &kube::Client, path: &str, timeout: Duration) -> Response {
    let request = match http::Request::get(path).body(Body::empty()) {
        Ok(mut request) => {
            // Each answer is a datum: the client must not retry a 500 (or a timeout) into
            // the next attempt's 200.
            request.extensions_mut().insert(crate::client::SendOnce);
            request
        }
        Err(error) => return Response::Failed(format!("invalid request path {path}: {error}")),
    };
    let started = Instant::now();
    let exchange = async {
        let response = client.send(request).await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let is_json = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let body = response
            .into_body()
            .collect_bytes()
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((status, is_json, body))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Err(_) => Response::Failed(format!(
            "no response within {}s",
            format_number(timeout.as_secs_f64())
        )),
        Ok(Err(error)) => Response::Failed(error),
        Ok(Ok((status, is_json, body))) => {
            let latency = started.elapsed();
            // The API server's own refusals (403 without pods/proxy, 503 when the pod cannot
            // be reached) come as a Kubernetes Status; they say nothing about the release.
            if status >= 400
                && is_json
                && let Some(message) = proxy_error_message(&body)
            {
                return Response::Unreachable(message);
            }
            Response::Status {
                code: status,
                latency,
            }
        }
    }
}

/// The message of a `Status` object, which is what the API server answers when it refuses
/// or cannot proxy the request (an application's own 403 or 503 is not a Kubernetes `Status`).
fn proxy_error_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    (value.get("kind")?.as_str()? == "Status" && value.get("apiVersion")?.as_str()? == "v1").then(
        || {
            value
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or("proxy error")
                .to_string()
        },
    )
}

/// Sends `settings.requests` GETs at `settings.rate_per_second`, spread over `paths` in
/// turn. Requests are started on schedule without waiting for earlier ones, so a slow
/// backend cannot stretch the check beyond its count and timeout.
pub async fn send_paced(
    client: &kube::Client,
    paths: &[String],
    settings: &HttpSpec,
) -> Vec<Response> {
    if paths.is_empty() {
        return Vec::new();
    }
    // The spec is validated when read, but a spec built in code is bounded here too: a check
    // must never flood a pod or the API server.
    let requests = settings.requests.clamp(1, MAX_HTTP_REQUESTS);
    let rate = if settings.rate_per_second.is_finite() && settings.rate_per_second > 0.0 {
        settings.rate_per_second.min(MAX_HTTP_RATE_PER_SECOND)
    } else {
        1.0
    };
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut in_flight = FuturesUnordered::new();
    let mut responses = Vec::with_capacity(requests as usize);
    for index in 0..requests as usize {
        // Drain finished requests while waiting for the next slot.
        loop {
            tokio::select! {
                _ = ticker.tick() => break,
                Some(response) = in_flight.next(), if !in_flight.is_empty() => responses.push(response),
            }
        }
        let path = &paths[index % paths.len()];
        in_flight.push(proxy_get(client, path, settings.timeout));
    }
    while let Some(response) = in_flight.next().await {
        responses.push(response);
    }
    responses
}

/// The pod proxy path for `path` on `port` of `pod`.
pub fn pod_proxy_path(namespace: &str, pod: &str, port: u16, path: &str) -> String {
    format!("/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy{path}")
}

/// The service proxy path for `path` on `port` of `service`.
pub fn service_proxy_path(namespace: &str, service: &str, port: &str, path: &str) -> String {
    format!("/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy{path}")
}

/// Runs the HTTP check.
pub async fn run(
    client: &kube::Client,
    target: &AnalysisTarget,
    check: &CheckSpec,
    settings: &HttpSpec,
) -> CheckResult {
    if let Some(service) = &settings.service {
        let path = service_proxy_path(
            &target.namespace,
            service,
            &settings.port.to_string(),
            &settings.path,
        );
        let responses = send_paced(client, &[path], settings).await;
        let (outcome, measurements, reason) = judge_service(&responses, settings, service);
        return result_of(check, outcome, measurements, reason);
    }
    let (canary, stable) = futures::join!(
        side_paths(client, target, settings, Side::Canary),
        side_paths(client, target, settings, Side::Stable)
    );
    let (canary_paths, stable_paths) = match (canary, stable) {
        (Ok(c), Ok(s)) => (c, s),
        (Err(problem), _) | (_, Err(problem)) => {
            return result_of(check, Outcome::Inconclusive, Vec::new(), problem);
        }
    };
    let (canary_responses, stable_responses) = futures::join!(
        send_paced(client, &canary_paths, settings),
        send_paced(client, &stable_paths, settings)
    );
    let (outcome, measurements, reason) = judge(&canary_responses, &stable_responses, settings);
    result_of(check, outcome, measurements, reason)
}

async fn side_paths(
    client: &kube::Client,
    target: &AnalysisTarget,
    settings: &HttpSpec,
    side: Side,
) -> Result<Vec<String>, String> {
    let pods = list_side_pods(client, target, side).await?;
    Ok(pods
        .iter()
        .filter(|pod| is_ready(pod))
        .map(|pod| {
            pod_proxy_path(
                &target.namespace,
                &pod.name_any(),
                settings.port,
                &settings.path,
            )
        })
        .collect())
}

/// Counts of one side's responses.
#[derive(Debug, Clone, Default, PartialEq)]
struct Tally {
    sent: usize,
    errors: usize,
    unreachable: usize,
    /// Latencies in seconds of successful responses.
    latencies: Vec<f64>,
    /// A few distinct error descriptions, for the reason.
    examples: Vec<String>,
}

impl Tally {
    fn of(responses: &[Response], settings: &HttpSpec) -> Self {
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

    fn error_rate(&self) -> Option<f64> {
        (self.sent > 0).then(|| self.errors as f64 / self.sent as f64)
    }
}

fn measurements(canary: &Tally, stable: Option<&Tally>) -> Vec<Measurement> {
    vec![
        Measurement::new(
            "requests",
            Some(canary.sent as f64),
            stable.map(|s| s.sent as f64),
        ),
        Measurement::new(
            "error rate",
            canary.error_rate(),
            stable.and_then(Tally::error_rate),
        ),
        Measurement::new(
            "median latency (s)",
            stats::median(&canary.latencies),
            stable.and_then(|s| stats::median(&s.latencies)),
        ),
    ]
}

/// Compares the canary's responses with the stable pods'.
pub fn judge(
    canary_responses: &[Response],
    stable_responses: &[Response],
    settings: &HttpSpec,
) -> (Outcome, Vec<Measurement>, String) {
    let canary = Tally::of(canary_responses, settings);
    let stable = Tally::of(stable_responses, settings);
    let measured = measurements(&canary, Some(&stable));
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
    let describe = |tally: &Tally| {
        if tally.examples.is_empty() {
            String::new()
        } else {
            format!(" ({})", tally.examples.join("; "))
        }
    };
    let error_summary = format!(
        "error rate canary {}/{}{} vs stable {}/{}{}",
        canary.errors,
        canary.sent,
        describe(&canary),
        stable.errors,
        stable.sent,
        describe(&stable)
    );
    if canary_rate - stable_rate > settings.max_error_rate_increase {
        // A few unlucky requests are not a worse release: the difference must also be one
        // that chance explains rarely.
        let p_value = stats::fisher_exact_greater(
            canary.errors as u64,
            canary.sent as u64,
            stable.errors as u64,
            stable.sent as u64,
        )
        .unwrap_or(1.0);
        if p_value < 1.0 - ERROR_RATE_CONFIDENCE {
            return (
                Outcome::Fail,
                measured,
                format!(
                    "{error_summary}: more than {} points above stable (Fisher p={})",
                    format_number(settings.max_error_rate_increase * 100.0),
                    format_number(p_value)
                ),
            );
        }
        return (
            Outcome::Inconclusive,
            measured,
            format!(
                "{error_summary}: higher, but {} requests per side cannot tell it from chance (Fisher p={}); send more with `requests`",
                canary.sent,
                format_number(p_value)
            ),
        );
    }
    let latency_config: JudgeConfig = settings.latency.into();
    let latency = judge_samples(&canary.latencies, &stable.latencies, &latency_config);
    let reason = format!("{error_summary}; latency: {}", latency.reason);
    (latency.outcome, measured, reason)
}

/// Judges requests made through a Service: only the error rate users see can be judged.
pub fn judge_service(
    responses: &[Response],
    settings: &HttpSpec,
    service: &str,
) -> (Outcome, Vec<Measurement>, String) {
    let tally = Tally::of(responses, settings);
    let measured = measurements(&tally, None);
    if tally.sent == 0 {
        return (
            Outcome::Inconclusive,
            measured,
            "no request was sent".into(),
        );
    }
    let examples = if tally.examples.is_empty() {
        String::new()
    } else {
        format!(" ({})", tally.examples.join("; "))
    };
    if tally.unreachable == tally.sent {
        return (
            Outcome::Inconclusive,
            measured,
            format!("the API server could not reach service {service}{examples}"),
        );
    }
    let rate = tally.error_rate().unwrap_or(0.0);
    let summary = format!(
        "{}/{} requests through service {service} failed{examples}",
        tally.errors, tally.sent
    );
    if rate > settings.max_error_rate_increase {
        (
            Outcome::Fail,
            measured,
            format!(
                "{summary}: error rate above {}%",
                format_number(settings.max_error_rate_increase * 100.0)
            ),
        )
    } else {
        (Outcome::Pass, measured, summary)
    }
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

    fn settings() -> HttpSpec {
        HttpSpec::new(8080, "/healthz")
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
    fn a_few_unlucky_requests_are_inconclusive_not_a_failure() {
        let canary: Vec<Response> = (0..20)
            .map(|i| if i < 2 { server_error() } else { ok(10) })
            .collect();
        let stable: Vec<Response> = (0..20).map(|_| ok(10)).collect();
        let (outcome, _, reason) = judge(&canary, &stable, &settings());
        assert_eq!(outcome, Outcome::Inconclusive, "{reason}");
        assert!(reason.contains("cannot tell it from chance"), "{reason}");
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

    #[test]
    fn service_error_rate_is_judged_absolutely() {
        let mostly_ok: Vec<Response> = (0..40)
            .map(|i| if i == 0 { server_error() } else { ok(10) })
            .collect();
        assert_eq!(
            judge_service(&mostly_ok, &settings(), "web").0,
            Outcome::Pass
        );
        let failing: Vec<Response> = (0..40)
            .map(|i| if i % 4 == 0 { server_error() } else { ok(10) })
            .collect();
        assert_eq!(judge_service(&failing, &settings(), "web").0, Outcome::Fail);
    }

    #[test]
    fn recognises_proxy_status_objects() {
        let status = br#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"error trying to reach service: dial tcp 10.0.0.1:8080: connect: connection refused","code":503}"#;
        assert_eq!(
            proxy_error_message(status).as_deref(),
            Some(
                "error trying to reach service: dial tcp 10.0.0.1:8080: connect: connection refused"
            )
        );
        assert_eq!(proxy_error_message(br#"{"error":"db down"}"#), None);
        assert_eq!(proxy_error_message(b"Internal Server Error"), None);
    }

    #[test]
    fn proxy_paths() {
        assert_eq!(
            pod_proxy_path("shop", "web-abc-1", 8080, "/healthz?x=1"),
            "/api/v1/namespaces/shop/pods/web-abc-1:8080/proxy/healthz?x=1"
        );
        assert_eq!(
            service_proxy_path("monitoring", "prometheus", "9090", "/api/v1/query"),
            "/api/v1/namespaces/monitoring/services/prometheus:9090/proxy/api/v1/query"
        );
    }
}
