//! The Kubernetes client of the controller: kube's usual client with a layer that counts
//! every request by verb (`kubectl_canary_controller_api_requests_total`), the figure the
//! benchmark reports per canary.

use std::sync::Arc;

use http::{Method, Request};
use kube::client::{Body, ClientBuilder};
use tower::util::MapRequestLayer;

use crate::metrics::Metrics;

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

/// A client from the usual configuration (in-cluster, or KUBECONFIG) that counts requests.
pub async fn counting_client(metrics: Arc<Metrics>) -> Result<kube::Client, kube::Error> {
    let config = kube::Config::infer()
        .await
        .map_err(kube::Error::InferConfig)?;
    let count = MapRequestLayer::new(move |request: Request<Body>| {
        metrics.api_request(verb_of(&request));
        request
    });
    Ok(ClientBuilder::try_from(config)?.with_layer(&count).build())
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
}
