//! Prometheus: a PromQL template run for the canary and for the stable pods, instant or
//! over the analysis window, compared with thresholds and with the Mann-Whitney judge.
//!
//! Prometheus is reached directly by URL (reqwest) or through the API server's service
//! proxy (the kube client), so it works without a port-forward wherever the kubeconfig
//! works. No data, NaN, an empty result, a query error or an unreachable server makes the
//! check inconclusive with the reason.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::client::Body;
use serde::Deserialize;
use thiserror::Error;

use canary_core::analysis_spec::{CheckSpec, PrometheusAddress, PrometheusSpec, render_query};
use canary_core::duration::format_duration;
use canary_core::verdict::{CheckResult, Measurement, Outcome, judge_query_values};

use super::clock::ServerClock;
use super::{AnalysisTarget, Side, result_of};

pub mod auto;
mod client;
mod liveness;
mod parse;

pub use client::PrometheusClient;
pub use parse::parse_response;

/// At most this many bytes of a Prometheus answer are accepted.
const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// A Prometheus query that did not produce data.
#[derive(Debug, Error)]
pub enum PrometheusError {
    /// The URL given is not a URL.
    #[error("invalid Prometheus URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// Why it is invalid.
        reason: String,
    },
    /// No HTTP answer.
    #[error("Prometheus at {address} is unreachable: {reason}")]
    Unreachable {
        /// Where Prometheus was looked for.
        address: String,
        /// The transport error.
        reason: String,
    },
    /// Prometheus (or the proxy in front of it) answered with an error status.
    #[error("Prometheus at {address} answered HTTP {status}: {body}")]
    Status {
        /// Where Prometheus was looked for.
        address: String,
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// Prometheus refused the query.
    #[error("Prometheus refused the query ({error_type}): {error}")]
    Query {
        /// Prometheus' error type, e.g. `bad_data`.
        error_type: String,
        /// Prometheus' message.
        error: String,
    },
    /// The answer is not Prometheus' JSON.
    #[error("unexpected answer from Prometheus at {address}: {reason}")]
    Decode {
        /// Where Prometheus was looked for.
        address: String,
        /// What is wrong.
        reason: String,
    },
}

/// One time series of a query result.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// (Unix time in seconds, value) points; an instant query has one.
    pub points: Vec<(f64, f64)>,
}

/// Runs the Prometheus check.
pub async fn run(
    client: &kube::Client,
    target: &AnalysisTarget,
    check: &CheckSpec,
    settings: &PrometheusSpec,
    clock: &ServerClock,
    window: Duration,
) -> CheckResult {
    let prometheus = match PrometheusClient::new(client, &settings.address) {
        Ok(prometheus) => prometheus,
        Err(error) => {
            return result_of(check, Outcome::Inconclusive, Vec::new(), error.to_string());
        }
    };
    let end = clock.now().as_millisecond() as f64 / 1000.0;
    let query_of = |side: Side| render_query(&settings.query, &target.query_context(side, window));
    let run_query = |query: String| {
        let prometheus = prometheus.clone();
        async move {
            match settings.range {
                Some(range) => {
                    let start = end - window.as_secs_f64();
                    prometheus
                        .range(&query, start, end, range.step, settings.timeout)
                        .await
                }
                None => prometheus.instant(&query, end, settings.timeout).await,
            }
        }
    };
    // With the documented labels, establish first that Prometheus scrapes both sides: a
    // query reading 0 for pods it has no series of would pass any canary.
    let mut coverage_notes = Vec::new();
    if settings.query.contains("{{selector}}") {
        let sides =
            liveness::check_both_sides(client, &prometheus, target, window, end, settings.timeout)
                .await;
        for side in sides {
            match side {
                Ok(note) => coverage_notes.extend(note),
                Err(problem) => {
                    return result_of(check, Outcome::Inconclusive, Vec::new(), problem);
                }
            }
        }
    }
    let canary_query = query_of(Side::Canary);
    let stable_query = query_of(Side::Stable);
    let (canary, stable) = futures::join!(
        run_query(canary_query.clone()),
        run_query(stable_query.clone())
    );
    let (outcome, measurements, mut reason) = judge(canary, stable, settings, &canary_query);
    for note in coverage_notes {
        reason.push_str(&format!("; {note}"));
    }
    result_of(check, outcome, measurements, reason)
}

/// Compares the two sides' query results: a failed query makes the check inconclusive with
/// its reason; the values are judged by [`judge_query_values`].
pub fn judge(
    canary: Result<Vec<Series>, PrometheusError>,
    stable: Result<Vec<Series>, PrometheusError>,
    settings: &PrometheusSpec,
    canary_query: &str,
) -> (Outcome, Vec<Measurement>, String) {
    let (canary, stable) = match (canary, stable) {
        (Ok(canary), Ok(stable)) => (canary, stable),
        (Err(error), _) | (_, Err(error)) => {
            return (Outcome::Inconclusive, Vec::new(), error.to_string());
        }
    };
    let values = |series: &[Series]| -> Vec<Vec<f64>> {
        series
            .iter()
            .map(|s| s.points.iter().map(|(_, v)| *v).collect())
            .collect()
    };
    judge_query_values(&values(&canary), &values(&stable), settings, canary_query)
}

#[cfg(test)]
mod tests {
    use super::*;
    use canary_core::analysis_spec::{JudgeSpec, RangeSpec};
    use canary_core::verdict::Threshold;
    use serde_json::json;
    use wiremock::matchers::{method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn spec(range: bool) -> PrometheusSpec {
        PrometheusSpec {
            address: PrometheusAddress::Url("http://unused".into()),
            query: "q{ {{selector}} }".into(),
            range: range.then_some(RangeSpec {
                step: Duration::from_secs(5),
            }),
            judge: JudgeSpec::default(),
            threshold: Threshold::default(),
            timeout: Duration::from_secs(5),
        }
    }

    fn series(values: &[f64]) -> Vec<Series> {
        vec![Series {
            labels: BTreeMap::new(),
            points: values
                .iter()
                .enumerate()
                .map(|(i, v)| (i as f64, *v))
                .collect(),
        }]
    }

    #[test]
    fn parses_vectors_matrices_scalars_and_special_values() {
        let vector = json!({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"pod": "a"}, "value": [1700000000.5, "0.25"]},
            {"metric": {"pod": "b"}, "value": [1700000000.5, "NaN"]}]}});
        let parsed = parse_response("p", 200, vector.to_string().as_bytes()).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].labels["pod"], "a");
        assert_eq!(parsed[0].points, vec![(1700000000.5, 0.25)]);
        assert!(parsed[1].points[0].1.is_nan());
        let matrix = json!({"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {}, "values": [[1, "1"], [2, "+Inf"]]}]}});
        let parsed = parse_response("p", 200, matrix.to_string().as_bytes()).unwrap();
        assert_eq!(parsed[0].points, vec![(1.0, 1.0), (2.0, f64::INFINITY)]);
        let scalar =
            json!({"status": "success", "data": {"resultType": "scalar", "result": [3, "7"]}});
        assert_eq!(
            parse_response("p", 200, scalar.to_string().as_bytes()).unwrap()[0].points,
            vec![(3.0, 7.0)]
        );
    }

    #[test]
    fn query_errors_and_foreign_answers_are_errors_not_panics() {
        let refused =
            json!({"status": "error", "errorType": "bad_data", "error": "parse error at char 3"});
        let error = parse_response("p", 400, refused.to_string().as_bytes()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Prometheus refused the query (bad_data): parse error at char 3"
        );
        let forbidden = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 403,
            "message": "services \"prometheus:9090\" is forbidden: User \"restricted\" cannot get resource \"services/proxy\""});
        let error = parse_response("p", 403, forbidden.to_string().as_bytes()).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("cannot get resource \"services/proxy\""),
            "{error}"
        );
        let error = parse_response("p", 502, b"<html>Bad Gateway</html>").unwrap_err();
        assert!(
            matches!(error, PrometheusError::Status { status: 502, .. }),
            "{error}"
        );
        let error = parse_response("p", 200, b"not json").unwrap_err();
        assert!(matches!(error, PrometheusError::Decode { .. }), "{error}");
    }

    #[test]
    fn worse_latency_series_fails_and_equal_series_pass() {
        let stable: Vec<f64> = (0..20).map(|i| 0.010 + f64::from(i % 4) * 0.001).collect();
        let slow: Vec<f64> = (0..20).map(|i| 0.200 + f64::from(i % 4) * 0.001).collect();
        let (outcome, measurements, reason) =
            judge(Ok(series(&slow)), Ok(series(&stable)), &spec(true), "q");
        assert_eq!(outcome, Outcome::Fail, "{reason}");
        assert_eq!(measurements[1].canary, Some(20.0));
        let (outcome, _, reason) =
            judge(Ok(series(&stable)), Ok(series(&stable)), &spec(true), "q");
        assert_eq!(outcome, Outcome::Pass, "{reason}");
    }

    #[test]
    fn empty_nan_and_unreachable_are_inconclusive_with_the_reason() {
        let (outcome, _, reason) = judge(Ok(vec![]), Ok(series(&[1.0])), &spec(false), "q{x}");
        assert_eq!(outcome, Outcome::Inconclusive);
        assert!(
            reason.contains("no data for the canary pods (query: q{x})"),
            "{reason}"
        );
        let (outcome, _, reason) = judge(
            Ok(series(&[f64::NAN])),
            Ok(series(&[f64::NAN])),
            &spec(false),
            "q",
        );
        assert_eq!(outcome, Outcome::Inconclusive);
        assert!(reason.contains("NaN"), "{reason}");
        let down = PrometheusError::Unreachable {
            address: "http://127.0.0.1:1/".into(),
            reason: "connection refused".into(),
        };
        let (outcome, _, reason) = judge(Err(down), Ok(series(&[1.0])), &spec(false), "q");
        assert_eq!(outcome, Outcome::Inconclusive);
        assert!(
            reason.contains("unreachable: connection refused"),
            "{reason}"
        );
    }

    #[test]
    fn thresholds_fail_even_when_stable_is_as_bad() {
        let mut with_max = spec(false);
        with_max.threshold.max = Some(0.5);
        let (outcome, _, reason) = judge(Ok(series(&[0.9])), Ok(series(&[0.9])), &with_max, "q");
        assert_eq!(outcome, Outcome::Fail);
        assert!(reason.contains("above the maximum"), "{reason}");
    }

    fn unused_kube_client() -> kube::Client {
        // Direct URLs never touch the Kubernetes client; any request would hang the mock.
        let (service, _handle) =
            tower_test::mock::pair::<http::Request<Body>, http::Response<Body>>();
        kube::Client::new(service, "default")
    }

    #[tokio::test]
    async fn direct_queries_send_the_rendered_parameters() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/prefix/api/v1/query_range"))
            .and(query_param("query", "up{ x }"))
            .and(query_param("step", "5"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"status": "success",
                "data": {"resultType": "matrix", "result": [{"metric": {}, "values": [[1, "2"]]}]}})))
            .expect(1)
            .mount(&server)
            .await;
        let client = PrometheusClient::new(
            &unused_kube_client(),
            &PrometheusAddress::Url(format!("{}/prefix", server.uri())),
        )
        .unwrap();
        let result = client
            .range(
                "up{ x }",
                0.0,
                60.0,
                Duration::from_secs(5),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(result[0].points, vec![(1.0, 2.0)]);
    }

    #[tokio::test]
    async fn unreachable_prometheus_says_why() {
        // Bind and drop a listener: nothing listens on that port any more.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = PrometheusClient::new(
            &unused_kube_client(),
            &PrometheusAddress::Url(format!("http://127.0.0.1:{port}")),
        )
        .unwrap();
        let error = client
            .instant("up", 0.0, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            matches!(error, PrometheusError::Unreachable { .. }),
            "{error}"
        );
        assert!(
            error.to_string().to_lowercase().contains("refused"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn service_proxy_queries_go_through_the_api_server() {
        let (service, mut handle) =
            tower_test::mock::pair::<http::Request<Body>, http::Response<Body>>();
        let client = kube::Client::new(service, "default");
        let address = PrometheusAddress::Service(canary_core::analysis_spec::ServiceRef {
            namespace: "monitoring".into(),
            name: "prometheus".into(),
            port: "9090".into(),
            scheme: "http".into(),
        });
        let prometheus = PrometheusClient::new(&client, &address).unwrap();
        let server = tokio::spawn(async move {
            let (request, send) = handle.next_request().await.expect("one request");
            let body = json!({"status": "success", "data": {"resultType": "vector", "result": []}});
            send.send_response(
                http::Response::builder()
                    .status(200)
                    .body(Body::from(body.to_string().into_bytes()))
                    .unwrap(),
            );
            request.uri().to_string()
        });
        let result = prometheus
            .instant("up{a=\"b\"}", 10.0, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(result.is_empty());
        let uri = server.await.unwrap();
        assert!(
            uri.starts_with("/api/v1/namespaces/monitoring/services/prometheus:9090/proxy/api/v1/query?query=up%7Ba%3D%22b%22%7D&time=10.000"),
            "{uri}"
        );
    }
}
