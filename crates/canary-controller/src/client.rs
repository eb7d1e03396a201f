//! The Kubernetes client of the controller: kube's HTTP stack with the CLI's resilience
//! layer ([`canary_kube::client::resilient`]: what is safe to retry is retried with backoff
//! and jitter, every attempt is bounded by a timeout and all attempts by a budget), and
//! under it a layer that counts every request sent to the API server by verb
//! (`kubectl_canary_controller_api_requests_total`, the figure the benchmark reports per
//! canary; a retried request counts once per attempt).

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request};
use kube::client::{Body, ClientBuilder};
use tower::util::MapRequestLayer;

use canary_kube::client::resilient::ResilientLayer;
use canary_kube::client::{DEFAULT_REQUEST_TIMEOUT, RequestPolicy, WriteLedger};

use crate::metrics::Metrics;

/// The longest time all attempts of one request may take together. A reconcile that fails
/// is retried by the controller's error policy, so this only has to outlast a restart of
/// the API server, not a long outage.
pub const REQUEST_BUDGET: Duration = Duration::from_secs(60);

/// The controller's request policy: the CLI's per-attempt timeout, [`REQUEST_BUDGET`].
pub fn request_policy() -> RequestPolicy {
    RequestPolicy::new(REQUEST_BUDGET, DEFAULT_REQUEST_TIMEOUT)
}

/// The kind of a request, from its method and query: `watch`, `read` (get or list),
/// `create`, `update`, `patch`, `delete`.
pub fn verb_of(request: &Request<Body>) -> &'static str {
    let query = request.uri().query().unwrap_or_default();
    let watch = query
        .split('&')
        .any(|pair| pair == "watch=true" || pair == "watch=1");
    match *request.method() {
        Method::GET if watch => "watch",
        Method::GET => "read",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "other",
    }
}

/// A client from the usual configuration (in-cluster, or KUBECONFIG), see [`client_for`].
pub async fn counting_client(metrics: Arc<Metrics>) -> Result<kube::Client, kube::Error> {
    let config = kube::Config::infer()
        .await
        .map_err(kube::Error::InferConfig)?;
    client_for(config, request_policy(), metrics)
}

/// The controller's client for a configuration: kube's own retry off (it repeats every
/// method, POST included), the CLI's resilience layer on top, the request counter under it.
/// The ledger keeps nothing: a long-running process has no run to report on.
pub fn client_for(
    mut config: kube::Config,
    policy: RequestPolicy,
    metrics: Arc<Metrics>,
) -> Result<kube::Client, kube::Error> {
    config.default_retry = false;
    let count = MapRequestLayer::new(move |request: Request<Body>| {
        metrics.api_request(verb_of(&request));
        request
    });
    let resilient = ResilientLayer::new(policy, WriteLedger::discarding());
    Ok(ClientBuilder::try_from(config)?
        .with_layer(&count)
        .with_layer(&resilient)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_from_method_and_query() {
        let request = |method: Method, uri: &str| {
            Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::empty())
                .unwrap()
        };
        let path = "/apis/apps/v1/namespaces/a/deployments";
        assert_eq!(verb_of(&request(Method::GET, path)), "read");
        assert_eq!(
            verb_of(&request(
                Method::GET,
                &format!("{path}?watch=true&resourceVersion=1")
            )),
            "watch"
        );
        assert_eq!(
            verb_of(&request(Method::PUT, &format!("{path}/web"))),
            "update"
        );
    }

    /// A loopback stand-in for the API server: answers each connection's one request with
    /// the next of `answers` (status, body), then holds the connection open without an
    /// answer once they run out. Returns its URL and the request lines it received.
    async fn api_server(
        answers: Vec<(u16, &'static str)>,
    ) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            let mut answers = answers.into_iter();
            let mut held = Vec::new();
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buffer = vec![0u8; 16 * 1024];
                let mut read = 0;
                while !buffer[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer[read..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => read += n,
                    }
                }
                let text = String::from_utf8_lossy(&buffer[..read]).to_string();
                log.lock()
                    .unwrap()
                    .push(text.lines().next().unwrap_or_default().to_string());
                match answers.next() {
                    Some((status, body)) => {
                        let response = format!(
                            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = stream.write_all(response.as_bytes()).await;
                        let _ = stream.shutdown().await;
                    }
                    None => held.push(stream),
                }
            }
        });
        (url, seen)
    }

    fn config(url: &str) -> kube::Config {
        let mut config = kube::Config::new(url.parse().unwrap());
        config.default_namespace = "a".into();
        config
    }

    const DEPLOYMENT: &str =
        r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"a"}}"#;

    #[tokio::test]
    async fn the_controller_s_client_sends_a_read_again_after_503_and_counts_both() {
        let (url, seen) = api_server(vec![(503, "{}"), (200, DEPLOYMENT)]).await;
        let metrics = Arc::new(Metrics::new());
        let client = client_for(config(&url), request_policy(), metrics.clone()).unwrap();
        let deployments: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
            kube::Api::namespaced(client, "a");
        let deployment = deployments
            .get("web")
            .await
            .expect("answered on the second attempt");
        assert_eq!(deployment.metadata.name.as_deref(), Some("web"));
        assert_eq!(
            *seen.lock().unwrap(),
            ["GET /apis/apps/v1/namespaces/a/deployments/web HTTP/1.1"; 2]
        );
        let text = metrics.encode();
        assert!(
            text.contains(r#"kubectl_canary_controller_api_requests_total{verb="read"} 2"#),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_create_whose_answer_is_a_503_is_not_sent_again() {
        let (url, seen) = api_server(vec![(503, "{}"), (201, "{}")]).await;
        let client = client_for(config(&url), request_policy(), Arc::new(Metrics::new())).unwrap();
        let config_maps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
            kube::Api::namespaced(client, "a");
        let created = config_maps
            .create(&Default::default(), &Default::default())
            .await;
        assert!(created.is_err(), "{created:?}");
        assert_eq!(seen.lock().unwrap().len(), 1, "sent once");
    }

    #[tokio::test]
    async fn a_frozen_api_server_is_given_up_on_within_the_budget() {
        let (url, seen) = api_server(vec![]).await;
        let policy = RequestPolicy::new(Duration::from_secs(3), Duration::from_secs(1));
        let client = client_for(config(&url), policy, Arc::new(Metrics::new())).unwrap();
        let deployments: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
            kube::Api::namespaced(client, "a");
        let started = std::time::Instant::now();
        let error = deployments.get("web").await.unwrap_err().to_string();
        assert!(error.contains("no answer from the API server"), "{error}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(
            seen.lock().unwrap().len() >= 2,
            "retried: {:?}",
            seen.lock().unwrap()
        );
    }
}
