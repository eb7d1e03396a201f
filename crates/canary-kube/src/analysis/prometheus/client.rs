//! The two ways to reach Prometheus: directly by URL (reqwest) or through the API server's
//! service proxy (the kube client).

use super::*;

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
pub(super) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

pub(super) fn kubernetes_status_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    if value.get("kind")?.as_str()? != "Status" {
        return None;
    }
    Some(value.get("message")?.as_str()?.to_string())
}
