//! Sending the check's requests through the API server's pod and service proxies: each
//! exactly once, paced, bounded.
//!
//! The number of requests and their rate are bounded by the spec's validation
//! ([`canary_core::analysis_spec::MAX_HTTP_REQUESTS`], [`canary_core::analysis_spec::MAX_HTTP_RATE_PER_SECOND`]),
//! so a check can never flood a pod or the API server.

use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use kube::client::Body;
use tokio::time::Instant;

use canary_core::analysis_spec::{HttpSpec, MAX_HTTP_RATE_PER_SECOND, MAX_HTTP_REQUESTS};
use canary_core::verdict::format_number;
use canary_core::verdict::http::Response;

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

/// Sends `count` GETs (one group of the sequential test) at `settings.rate_per_second`,
/// spread over `paths` in turn starting at the `first`-th request of the check. Requests are
/// started on schedule without waiting for earlier ones, so a slow backend cannot stretch the
/// check beyond its count and timeout.
pub async fn send_paced(
    client: &kube::Client,
    paths: &[String],
    settings: &HttpSpec,
    first: usize,
    count: u32,
) -> Vec<Response> {
    if paths.is_empty() || count == 0 {
        return Vec::new();
    }
    // The spec is validated when read, but a spec built in code is bounded here too: a check
    // must never flood a pod or the API server.
    let requests = count.clamp(1, MAX_HTTP_REQUESTS);
    let rate = if settings.rate_per_second.is_finite() && settings.rate_per_second > 0.0 {
        settings.rate_per_second.min(MAX_HTTP_RATE_PER_SECOND)
    } else {
        1.0
    };
    // The rate holds across groups too: a later group's first request waits one period after
    // the previous group's last (sent before its answers were awaited), not none.
    let period = Duration::from_secs_f64(1.0 / rate);
    let mut ticker = if first == 0 {
        tokio::time::interval(period)
    } else {
        tokio::time::interval_at(Instant::now() + period, period)
    };
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
        let path = &paths[(first + index) % paths.len()];
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

#[cfg(test)]
mod tests {
    use super::*;

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
