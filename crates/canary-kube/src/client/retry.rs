//! Which failed requests may be sent again, and when: pure decisions, tested on their own.

use std::time::Duration;

/// How requests are retried and bounded.
#[derive(Debug, Clone, Copy)]
pub struct RequestPolicy {
    /// Longest time one attempt may take to answer (its response headers).
    pub attempt_timeout: Duration,
    /// Longest time all attempts of one request may take together (`--timeout`).
    pub budget: Duration,
    /// Most attempts of one request.
    pub max_attempts: u32,
    /// First backoff; it doubles per attempt, with full jitter.
    pub first_backoff: Duration,
    /// Largest backoff.
    pub max_backoff: Duration,
}

impl RequestPolicy {
    /// The policy for a command run with `--timeout` and `--request-timeout`.
    pub fn new(budget: Duration, attempt_timeout: Duration) -> Self {
        Self {
            attempt_timeout,
            budget,
            max_attempts: 8,
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }

    /// The delay before attempt `attempt + 1` (attempt counts from 1): full jitter over an
    /// exponential ceiling, so many clients hitting a restarted API server do not retry in
    /// step. `unit` is a random number in [0, 1).
    pub fn backoff(&self, attempt: u32, unit: f64) -> Duration {
        let ceiling = self
            .first_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max_backoff);
        ceiling
            .mul_f64(unit.clamp(0.0, 1.0))
            .max(Duration::from_millis(10))
    }
}

/// How safe it is to send a request a second time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Safety {
    /// A read (GET, LIST, WATCH) or an access review: sending it twice changes nothing.
    Idempotent,
    /// An update carrying `metadata.resourceVersion`: if the first attempt was applied, the
    /// second is refused with 409 Conflict, which callers already handle by reading the
    /// object again and deciding from what they see; it can never be applied twice.
    Precondition,
    /// A create or delete (or an update without a precondition): if the first attempt was
    /// applied and only its answer was lost, a second one would fail in a misleading way
    /// (a create would find "its own" record and report a lock), so it is not repeated
    /// unless the server refused it before processing (429).
    Unsafe,
    /// A measurement (a request of the HTTP check through the pod or service proxy): its
    /// answer, a 500 or a timeout included, is the datum. Sent once, never again: a retry
    /// would turn a failing release's 500s into the next attempt's 200 and pass it.
    Measurement,
}

/// Marks a request as a [`Safety::Measurement`]: put it in the request's extensions and
/// the client sends it exactly once, whatever the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendOnce;

impl Safety {
    /// Classifies a request by its method, path and body.
    pub fn of(method: &http::Method, path: &str, body: &[u8]) -> Self {
        if method == http::Method::GET || method == http::Method::HEAD {
            return Safety::Idempotent;
        }
        if method == http::Method::POST && is_review(path) {
            return Safety::Idempotent;
        }
        if method == http::Method::PUT && has_resource_version(body) {
            return Safety::Precondition;
        }
        Safety::Unsafe
    }
}

/// Whether a path is an access or identity review (a POST that changes nothing).
pub fn is_review(path: &str) -> bool {
    path.starts_with("/apis/authorization.k8s.io/")
        || path.starts_with("/apis/authentication.k8s.io/")
}

fn has_resource_version(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|object| {
            object
                .pointer("/metadata/resourceVersion")
                .and_then(|v| v.as_str())
                .map(|v| !v.is_empty())
        })
        .unwrap_or(false)
}

/// What one attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// The server answered with this HTTP status.
    Status(u16),
    /// No answer within the per-request timeout.
    TimedOut,
    /// The connection failed (reset, closed mid-request): the request may have arrived.
    Transport,
    /// The connection was refused: the request never left the client.
    NotSent,
}

/// Whether a request of this safety may be sent again after this attempt.
pub fn should_retry(safety: Safety, attempt: Attempt) -> bool {
    if safety == Safety::Measurement {
        return false;
    }
    match attempt {
        // Too many requests: the API server's priority and fairness refused it before
        // processing anything, so every request may be repeated.
        Attempt::Status(429) => true,
        // Nothing reached the server (an API server restarting refuses connections), so
        // even a create or a delete may be sent again.
        Attempt::NotSent => true,
        Attempt::Status(500 | 502 | 503 | 504) | Attempt::TimedOut | Attempt::Transport => {
            safety == Safety::Idempotent || safety == Safety::Precondition
        }
        Attempt::Status(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    #[test]
    fn reads_and_reviews_are_idempotent_updates_with_resource_version_are_preconditioned() {
        assert_eq!(
            Safety::of(&Method::GET, "/apis/apps/v1/namespaces/a/deployments", b""),
            Safety::Idempotent
        );
        assert_eq!(
            Safety::of(
                &Method::POST,
                "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
                b"{}"
            ),
            Safety::Idempotent
        );
        let with_rv = br#"{"metadata":{"name":"web","resourceVersion":"42"}}"#;
        let without_rv = br#"{"metadata":{"name":"web"}}"#;
        let path = "/apis/apps/v1/namespaces/a/deployments/web";
        assert_eq!(
            Safety::of(&Method::PUT, path, with_rv),
            Safety::Precondition
        );
        assert_eq!(Safety::of(&Method::PUT, path, without_rv), Safety::Unsafe);
        assert_eq!(
            Safety::of(&Method::POST, "/api/v1/namespaces/a/configmaps", without_rv),
            Safety::Unsafe
        );
        assert_eq!(
            Safety::of(&Method::DELETE, "/api/v1/namespaces/a/configmaps/x", b""),
            Safety::Unsafe
        );
    }

    #[test]
    fn only_safe_requests_are_repeated_after_an_ambiguous_failure() {
        for attempt in [
            Attempt::Status(500),
            Attempt::Status(503),
            Attempt::Status(504),
            Attempt::TimedOut,
            Attempt::Transport,
        ] {
            assert!(should_retry(Safety::Idempotent, attempt), "{attempt:?}");
            assert!(should_retry(Safety::Precondition, attempt), "{attempt:?}");
            assert!(!should_retry(Safety::Unsafe, attempt), "{attempt:?}");
        }
        for safety in [Safety::Idempotent, Safety::Precondition, Safety::Unsafe] {
            assert!(should_retry(safety, Attempt::Status(429)));
            assert!(should_retry(safety, Attempt::NotSent));
            for status in [200, 201, 400, 403, 404, 409, 410, 422] {
                assert!(!should_retry(safety, Attempt::Status(status)), "{status}");
            }
        }
    }

    #[test]
    fn a_measurement_is_never_sent_again() {
        for attempt in [
            Attempt::Status(429),
            Attempt::Status(500),
            Attempt::Status(503),
            Attempt::TimedOut,
            Attempt::Transport,
        ] {
            assert!(!should_retry(Safety::Measurement, attempt), "{attempt:?}");
        }
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let policy = RequestPolicy::new(Duration::from_secs(60), Duration::from_secs(15));
        assert_eq!(policy.backoff(1, 0.999).as_millis(), 199);
        assert_eq!(policy.backoff(3, 0.999).as_millis(), 799);
        assert_eq!(
            policy.backoff(30, 0.999),
            Duration::from_secs(5).mul_f64(0.999)
        );
        assert_eq!(policy.backoff(3, 0.0), Duration::from_millis(10));
        assert!(policy.backoff(3, 0.5) < policy.backoff(3, 0.9));
    }
}
