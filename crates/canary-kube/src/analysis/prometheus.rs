//! Prometheus: a PromQL template run for the canary and for the stable pods, instant or
//! over the analysis window, compared with thresholds and with the Mann-Whitney judge.
//!
//! Prometheus is reached directly by URL (reqwest) or through the API server's service
//! proxy (the kube client), so it works without a port-forward wherever the kubeconfig
//! works. No data, NaN, an empty result, a query error or an unreachable server makes the
//! check inconclusive with the reason.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kube::client::Body;
use serde::Deserialize;
use thiserror::Error;

use canary_core::analysis_spec::{
    CheckSpec, PrometheusAddress, PrometheusSpec, QueryContext, render_query,
};
use canary_core::duration::format_duration;
use canary_core::verdict::{CheckResult, Measurement, Outcome, judge_query_values};

use super::{AnalysisTarget, Side, result_of};

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

/// How to reach Prometheus.
#[derive(Clone)]
pub enum PrometheusClient {
    /// Directly by URL.
    Direct {
        /// The HTTP client.
        http: reqwest::Client,
        /// The base URL, e.g. `http://127.0.0.1:9090/`.
        base: reqwest::Url,
    },
    /// Through the API server's service proxy.
    ServiceProxy {
        /// The Kubernetes client.
        client: kube::Client,
        /// The proxy path of the Service, ending in `/proxy`.
        base_path: String,
        /// For messages.
        address: String,
    },
}

impl PrometheusClient {
    /// A client for `address`.
    pub fn new(
        client: &kube::Client,
        address: &PrometheusAddress,
    ) -> Result<Self, PrometheusError> {
        match address {
            PrometheusAddress::Url(url) => {
                let mut base =
                    reqwest::Url::parse(url).map_err(|e| PrometheusError::InvalidUrl {
                        url: url.clone(),
                        reason: e.to_string(),
                    })?;
                if !matches!(base.scheme(), "http" | "https") {
                    return Err(PrometheusError::InvalidUrl {
                        url: url.clone(),
                        reason: "the scheme must be http or https".into(),
                    });
                }
                // Keep a path prefix (Prometheus behind a reverse proxy) as a directory.
                if !base.path().ends_with('/') {
                    let path = format!("{}/", base.path());
                    base.set_path(&path);
                }
                let http = reqwest::Client::builder().build().map_err(|e| {
                    PrometheusError::Unreachable {
                        address: url.clone(),
                        reason: format!("cannot build an HTTP client: {e}"),
                    }
                })?;
                Ok(PrometheusClient::Direct { http, base })
            }
            PrometheusAddress::Service(service) => {
                let scheme_prefix = if service.scheme == "https" {
                    "https:"
                } else {
                    ""
                };
                Ok(PrometheusClient::ServiceProxy {
                    client: client.clone(),
                    base_path: format!(
                        "/api/v1/namespaces/{}/services/{scheme_prefix}{}:{}/proxy",
                        service.namespace, service.name, service.port
                    ),
                    address: address.to_string(),
                })
            }
        }
    }

    fn address(&self) -> String {
        match self {
            PrometheusClient::Direct { base, .. } => base.to_string(),
            PrometheusClient::ServiceProxy { address, .. } => address.clone(),
        }
    }

    /// Runs an instant query at `time` (Unix seconds).
    pub async fn instant(
        &self,
        query: &str,
        time: f64,
        timeout: Duration,
    ) -> Result<Vec<Series>, PrometheusError> {
        let params = [
            ("query", query.to_string()),
            ("time", format!("{time:.3}")),
            ("timeout", format!("{}s", timeout.as_secs().max(1))),
        ];
        self.get("api/v1/query", &params, timeout).await
    }

    /// Runs a range query from `start` to `end` (Unix seconds) every `step`.
    pub async fn range(
        &self,
        query: &str,
        start: f64,
        end: f64,
        step: Duration,
        timeout: Duration,
    ) -> Result<Vec<Series>, PrometheusError> {
        let params = [
            ("query", query.to_string()),
            ("start", format!("{start:.3}")),
            ("end", format!("{end:.3}")),
            ("step", format!("{}", step.as_secs_f64().max(0.001))),
            ("timeout", format!("{}s", timeout.as_secs().max(1))),
        ];
        self.get("api/v1/query_range", &params, timeout).await
    }

    async fn get(
        &self,
        endpoint: &str,
        params: &[(&str, String)],
        timeout: Duration,
    ) -> Result<Vec<Series>, PrometheusError> {
        let address = self.address();
        let unreachable = |reason: String| PrometheusError::Unreachable {
            address: address.clone(),
            reason,
        };
        let (status, body) = match self {
            PrometheusClient::Direct { http, base } => {
                let mut url = base
                    .join(endpoint)
                    .map_err(|e| unreachable(e.to_string()))?;
                url.query_pairs_mut()
                    .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())));
                let exchange = async {
                    let response = http
                        .get(url)
                        .send()
                        .await
                        .map_err(|e| unreachable(error_chain(&e)))?;
                    let status = response.status().as_u16();
                    let body = response
                        .bytes()
                        .await
                        .map_err(|e| unreachable(error_chain(&e)))?;
                    Ok::<_, PrometheusError>((status, body.to_vec()))
                };
                tokio::time::timeout(timeout, exchange)
                    .await
                    .map_err(|_| {
                        unreachable(format!("no answer within {}", format_duration(timeout)))
                    })??
            }
            PrometheusClient::ServiceProxy {
                client, base_path, ..
            } => {
                let mut query =
                    reqwest::Url::parse("http://query.invalid/").expect("a valid constant URL");
                query
                    .query_pairs_mut()
                    .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())));
                let path = format!(
                    "{base_path}/{endpoint}?{}",
                    query.query().unwrap_or_default()
                );
                let request = http::Request::get(path)
                    .body(Body::empty())
                    .map_err(|e| unreachable(e.to_string()))?;
                let exchange = async {
                    let response = client
                        .send(request)
                        .await
                        .map_err(|e| unreachable(e.to_string()))?;
                    let status = response.status().as_u16();
                    let body = response
                        .into_body()
                        .collect_bytes()
                        .await
                        .map_err(|e| unreachable(e.to_string()))?;
                    Ok::<_, PrometheusError>((status, body.to_vec()))
                };
                tokio::time::timeout(timeout, exchange)
                    .await
                    .map_err(|_| {
                        unreachable(format!("no answer within {}", format_duration(timeout)))
                    })??
            }
        };
        parse_response(&address, status, &body)
    }
}

/// The error and its causes on one line (reqwest's top-level message hides the cause,
/// e.g. "connection refused").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiResponse {
    status: String,
    data: Option<ApiData>,
    error_type: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiData {
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct RawSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    value: Option<(f64, String)>,
    values: Option<Vec<(f64, String)>>,
}

/// Parses a sample value as Prometheus writes it ("1.5", "NaN", "+Inf").
fn parse_value(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

/// Parses Prometheus' JSON answer into series (a scalar becomes one series without labels).
pub fn parse_response(
    address: &str,
    status: u16,
    body: &[u8],
) -> Result<Vec<Series>, PrometheusError> {
    if body.len() > MAX_RESPONSE_BYTES {
        return Err(PrometheusError::Decode {
            address: address.into(),
            reason: format!("the answer is larger than {MAX_RESPONSE_BYTES} bytes"),
        });
    }
    if !(200..300).contains(&status)
        && let Some(message) = kubernetes_status_message(body)
    {
        // The API server's service proxy refused (e.g. 403 without services/proxy) or could
        // not reach the Service: its Status message says why.
        return Err(PrometheusError::Status {
            address: address.into(),
            status,
            body: message,
        });
    }
    let decoded: Result<ApiResponse, _> = serde_json::from_slice(body);
    let response = match decoded {
        Ok(response) => response,
        Err(error) if (200..300).contains(&status) => {
            return Err(PrometheusError::Decode {
                address: address.into(),
                reason: error.to_string(),
            });
        }
        Err(_) => {
            let text = String::from_utf8_lossy(&body[..body.len().min(300)])
                .trim()
                .to_string();
            return Err(PrometheusError::Status {
                address: address.into(),
                status,
                body: text,
            });
        }
    };
    if response.status != "success" {
        return Err(PrometheusError::Query {
            error_type: response.error_type.unwrap_or_else(|| "unknown".into()),
            error: response
                .error
                .unwrap_or_else(|| format!("status {}", response.status)),
        });
    }
    let decode_error = |reason: String| PrometheusError::Decode {
        address: address.into(),
        reason,
    };
    let data = response
        .data
        .ok_or_else(|| decode_error("no data in a successful answer".into()))?;
    let value_of = |text: &str| {
        parse_value(text).ok_or_else(|| decode_error(format!("{text:?} is not a sample value")))
    };
    match data.result_type.as_str() {
        "vector" | "matrix" => {
            let raw: Vec<RawSeries> =
                serde_json::from_value(data.result).map_err(|e| decode_error(e.to_string()))?;
            raw.into_iter()
                .map(|series| {
                    let pairs = series
                        .values
                        .unwrap_or_default()
                        .into_iter()
                        .chain(series.value);
                    let points = pairs
                        .map(|(time, text)| value_of(&text).map(|v| (time, v)))
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(Series {
                        labels: series.metric,
                        points,
                    })
                })
                .collect()
        }
        "scalar" => {
            let (time, text): (f64, String) =
                serde_json::from_value(data.result).map_err(|e| decode_error(e.to_string()))?;
            Ok(vec![Series {
                labels: BTreeMap::new(),
                points: vec![(time, value_of(&text)?)],
            }])
        }
        other => Err(decode_error(format!(
            "result type {other} cannot be compared"
        ))),
    }
}

fn kubernetes_status_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    if value.get("kind")?.as_str()? != "Status" {
        return None;
    }
    Some(value.get("message")?.as_str()?.to_string())
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Runs the Prometheus check.
pub async fn run(
    client: &kube::Client,
    target: &AnalysisTarget,
    check: &CheckSpec,
    settings: &PrometheusSpec,
    window: Duration,
) -> CheckResult {
    let prometheus = match PrometheusClient::new(client, &settings.address) {
        Ok(prometheus) => prometheus,
        Err(error) => {
            return result_of(check, Outcome::Inconclusive, Vec::new(), error.to_string());
        }
    };
    let end = unix_now();
    let query_of = |side: Side| {
        let group = target.group(side);
        render_query(
            &settings.query,
            &QueryContext {
                namespace: &target.namespace,
                deployment: &target.deployment,
                replica_set: &group.replica_set,
                pod_template_hash: &group.pod_template_hash,
                window,
            },
        )
    };
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
    let canary_query = query_of(Side::Canary);
    let stable_query = query_of(Side::Stable);
    let (canary, stable) = futures::join!(
        run_query(canary_query.clone()),
        run_query(stable_query.clone())
    );
    let (outcome, measurements, reason) = judge(canary, stable, settings, &canary_query);
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
