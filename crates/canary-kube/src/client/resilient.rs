//! The tower layer on kube's client: retries with backoff and jitter what
//! [`super::retry::should_retry`] allows, bounds each attempt by the per-request timeout and
//! all attempts by the policy's budget, and records writes in the [`WriteLedger`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use kube::client::Body;
use tokio::time::Instant;
use tower::{BoxError, Layer, Service, ServiceExt};

use super::ledger::{self, Write, WriteLedger};
use super::retry::{Attempt, RequestPolicy, Safety, SendOnce, should_retry};

/// Puts [`Resilient`] on a service.
#[derive(Clone)]
pub struct ResilientLayer {
    policy: RequestPolicy,
    ledger: WriteLedger,
}

impl ResilientLayer {
    /// A layer with this policy, recording writes in this ledger.
    pub fn new(policy: RequestPolicy, ledger: WriteLedger) -> Self {
        Self { policy, ledger }
    }
}

impl<S, B> Layer<S> for ResilientLayer
where
    S: Service<Request<Body>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send + Sync,
    B: Send + 'static,
{
    type Service = Resilient<tower::buffer::Buffer<Request<Body>, S::Future>>;

    fn layer(&self, inner: S) -> Self::Service {
        // The buffer makes the inner service cloneable, so one request can be sent again
        // while others are in flight.
        Resilient {
            inner: tower::buffer::Buffer::new(inner, 1024),
            policy: self.policy,
            ledger: self.ledger.clone(),
        }
    }
}

/// The service [`ResilientLayer`] builds.
#[derive(Clone)]
pub struct Resilient<S> {
    inner: S,
    policy: RequestPolicy,
    ledger: WriteLedger,
}

impl<S> Resilient<S> {
    /// Wraps an already cloneable service (tests use a tower-test mock).
    pub fn new(inner: S, policy: RequestPolicy, ledger: WriteLedger) -> Self {
        Self {
            inner,
            policy,
            ledger,
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

impl<S, B> Service<Request<Body>> for Resilient<S>
where
    S: Service<Request<Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send,
    B: Send + 'static,
{
    type Response = Response<B>;
    type Error = BoxError;
    type Future = BoxFuture<Response<B>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // Keep the service that was made ready for the first attempt; later attempts wait
        // for readiness themselves.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let policy = self.policy;
        let ledger = self.ledger.clone();
        Box::pin(send(inner, policy, ledger, request))
    }
}

/// Sends one request, again as long as the policy allows.
async fn send<S, B>(
    mut inner: S,
    policy: RequestPolicy,
    ledger: WriteLedger,
    request: Request<Body>,
) -> Result<Response<B>, BoxError>
where
    S: Service<Request<Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send,
    B: Send,
{
    let (parts, body) = request.into_parts();
    let bytes = body.collect_bytes().await.map_err(BoxError::from)?;
    let path = parts.uri.path().to_string();
    let safety = if parts.extensions.get::<SendOnce>().is_some() {
        Safety::Measurement
    } else {
        Safety::of(&parts.method, &path, &bytes)
    };
    let write = ledger::describe(&parts.method, &path, &bytes);
    let started = Instant::now();
    let mut attempt_number = 0u32;
    let mut first = true;
    loop {
        attempt_number += 1;
        let mut request = Request::new(Body::from(bytes.clone()));
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = parts.uri.clone();
        *request.version_mut() = parts.version;
        *request.headers_mut() = parts.headers.clone();
        *request.extensions_mut() = parts.extensions.clone();
        let remaining = policy.budget.saturating_sub(started.elapsed());
        let attempt_timeout = policy
            .attempt_timeout
            .min(remaining)
            .max(std::time::Duration::from_millis(100));
        let service = if first {
            first = false;
            &mut inner
        } else {
            inner.ready().await.map_err(Into::into)?
        };
        let answer = tokio::time::timeout(attempt_timeout, service.call(request)).await;
        let (attempt, result): (Attempt, Result<Response<B>, BoxError>) = match answer {
            Ok(Ok(response)) => (Attempt::Status(response.status().as_u16()), Ok(response)),
            Ok(Err(error)) => {
                let error: BoxError = error.into();
                let attempt = if refused(&*error) {
                    Attempt::NotSent
                } else {
                    Attempt::Transport
                };
                (attempt, Err(error))
            }
            Err(_) => (
                Attempt::TimedOut,
                Err(format!(
                    "no answer from the API server within {}s ({} {path})",
                    attempt_timeout.as_secs_f64(),
                    parts.method
                )
                .into()),
            ),
        };
        let delay = policy.backoff(attempt_number, fastrand::f64());
        let retry = should_retry(safety, attempt)
            && attempt_number < policy.max_attempts
            && started.elapsed() + delay < policy.budget;
        if let Some((action, object)) = &write {
            let confirmed = matches!(attempt, Attempt::Status(code) if (200..300).contains(&code));
            let maybe_applied = matches!(
                attempt,
                Attempt::TimedOut | Attempt::Transport | Attempt::Status(500 | 502 | 503 | 504)
            );
            if confirmed || (maybe_applied && !retry) {
                ledger.push(Write {
                    action,
                    object: object.clone(),
                    confirmed,
                });
            }
        }
        if !retry {
            return result;
        }
        tracing::debug!(
            method = %parts.method,
            path = %path,
            ?attempt,
            attempt_number,
            delay_ms = delay.as_millis() as u64,
            "retrying a request"
        );
        tokio::time::sleep(delay).await;
    }
}

/// Whether the connection was refused (anywhere in the error's chain): then nothing was sent,
/// as a refusal can only answer a connect.
fn refused(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if error
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            return true;
        }
        next = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;
    type Mocked = Resilient<tower_test::mock::Mock<Request<Body>, Response<Body>>>;

    fn service(policy: RequestPolicy) -> (Mocked, Handle, WriteLedger) {
        let (mock, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let ledger = WriteLedger::default();
        (Resilient::new(mock, policy, ledger.clone()), handle, ledger)
    }

    fn policy() -> RequestPolicy {
        RequestPolicy::new(Duration::from_secs(30), Duration::from_secs(2))
    }

    fn answer(status: u16) -> Response<Body> {
        Response::builder()
            .status(status)
            .body(Body::empty())
            .unwrap()
    }

    fn request(method: http::Method, path: &str, body: &str) -> Request<Body> {
        Request::builder()
            .method(method)
            .uri(path)
            .body(Body::from(body.as_bytes().to_vec()))
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_is_sent_again_after_503_and_a_reset() {
        let (mut service, mut handle, ledger) = service(policy());
        let call = tokio::spawn(async move {
            service
                .ready()
                .await
                .unwrap()
                .call(request(
                    http::Method::GET,
                    "/apis/apps/v1/namespaces/a/deployments/web",
                    "",
                ))
                .await
        });
        let (_, send) = handle.next_request().await.unwrap();
        send.send_response(answer(503));
        let (_, send) = handle.next_request().await.unwrap();
        send.send_error("connection reset by peer");
        let (again, send) = handle.next_request().await.unwrap();
        assert_eq!(
            again.uri().path(),
            "/apis/apps/v1/namespaces/a/deployments/web"
        );
        send.send_response(answer(200));
        assert_eq!(call.await.unwrap().unwrap().status(), 200);
        assert!(ledger.is_empty(), "a read is not a change");
    }

    #[tokio::test(start_paused = true)]
    async fn a_measurement_answered_500_is_returned_as_is_not_sent_again() {
        let (mut service, mut handle, _) = service(policy());
        let call = tokio::spawn(async move {
            let mut probe = request(
                http::Method::GET,
                "/api/v1/namespaces/a/pods/web-1:80/proxy/",
                "",
            );
            probe.extensions_mut().insert(SendOnce);
            service.ready().await.unwrap().call(probe).await
        });
        let (_, send) = handle.next_request().await.unwrap();
        send.send_response(answer(500));
        assert_eq!(call.await.unwrap().unwrap().status(), 500);
        // No second attempt reached the server.
        let more = tokio::time::timeout(Duration::from_secs(60), handle.next_request()).await;
        assert!(!matches!(more, Ok(Some(_))), "a second attempt was sent");
    }

    #[tokio::test(start_paused = true)]
    async fn a_create_whose_answer_is_lost_is_not_repeated_and_is_reported_as_perhaps_applied() {
        let (mut service, mut handle, ledger) = service(policy());
        let call = tokio::spawn(async move {
            service
                .ready()
                .await
                .unwrap()
                .call(request(
                    http::Method::POST,
                    "/api/v1/namespaces/a/configmaps",
                    r#"{"metadata":{"name":"web.kubectl-canary"}}"#,
                ))
                .await
        });
        let (_, send) = handle.next_request().await.unwrap();
        send.send_response(answer(503));
        assert_eq!(call.await.unwrap().unwrap().status(), 503);
        assert_eq!(
            ledger.summary(),
            "this run already changed the cluster: perhaps created configmaps/web.kubectl-canary (its answer was lost)"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_delete_whose_connection_was_refused_is_sent_again() {
        let (mut service, mut handle, ledger) = service(policy());
        let call = tokio::spawn(async move {
            service
                .ready()
                .await
                .unwrap()
                .call(request(
                    http::Method::DELETE,
                    "/api/v1/namespaces/a/configmaps/web.kubectl-canary",
                    "",
                ))
                .await
        });
        let (_, send) = handle.next_request().await.unwrap();
        send.send_error(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let (again, send) = handle.next_request().await.unwrap();
        assert_eq!(again.method(), http::Method::DELETE);
        send.send_response(answer(200));
        assert_eq!(call.await.unwrap().unwrap().status(), 200);
        assert_eq!(
            ledger.summary(),
            "this run already changed the cluster: deleted configmaps/web.kubectl-canary"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_update_with_a_resource_version_is_repeated_and_its_success_recorded() {
        let (mut service, mut handle, ledger) = service(policy());
        let body = r#"{"metadata":{"name":"web","resourceVersion":"7"}}"#;
        let call = tokio::spawn(async move {
            service
                .ready()
                .await
                .unwrap()
                .call(request(
                    http::Method::PUT,
                    "/apis/apps/v1/namespaces/a/deployments/web",
                    body,
                ))
                .await
        });
        let (_, send) = handle.next_request().await.unwrap();
        send.send_error("connection closed before message completed");
        let (again, send) = handle.next_request().await.unwrap();
        let sent = again.into_body().collect_bytes().await.unwrap();
        assert_eq!(
            &sent[..],
            body.as_bytes(),
            "the same body, precondition included"
        );
        send.send_response(answer(200));
        assert_eq!(call.await.unwrap().unwrap().status(), 200);
        assert_eq!(
            ledger.summary(),
            "this run already changed the cluster: updated deployments/web"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_frozen_server_is_given_up_on_within_the_budget() {
        let budget = Duration::from_secs(10);
        let (mut service, mut handle, _) =
            service(RequestPolicy::new(budget, Duration::from_secs(3)));
        let started = Instant::now();
        let call = tokio::spawn(async move {
            service
                .ready()
                .await
                .unwrap()
                .call(request(http::Method::GET, "/api/v1/namespaces/a/pods", ""))
                .await
        });
        // Take every attempt and never answer, like a SIGSTOPped API server.
        let attempts = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counted = attempts.clone();
        let _frozen = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Some((_, send)) = handle.next_request().await {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(send);
            }
        });
        let result = call.await.unwrap();
        let attempts = attempts.load(std::sync::atomic::Ordering::SeqCst);
        let error = result.unwrap_err().to_string();
        assert!(error.contains("no answer from the API server"), "{error}");
        assert!(attempts >= 2, "retried: {attempts}");
        assert!(
            started.elapsed() <= budget + Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
}
