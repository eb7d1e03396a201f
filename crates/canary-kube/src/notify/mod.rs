//! Sending notices ([`canary_core::notify`]) without ever holding up or failing the canary:
//! [`Notifier::notify`] only queues. Each endpoint has its own background task and bounded
//! queue (one that hangs delays no other, and notices reach each endpoint in order); each
//! request has a timeout, failed requests are retried a bounded number of times with
//! backoff, and a notice that could not be sent becomes a Warning Event
//! `NotificationFailed` on the Deployment naming the endpoint (never its URL, a secret).
//! [`Notifier::flush`] lets a command wait, bounded, for its last notices at exit.

mod secret;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use canary_core::notify::{
    Endpoint, EndpointKind, EndpointsConfig, NOTIFICATION_FAILED, Notice, SIGNATURE_HEADER, Sender,
    render, signature_header,
};

use crate::event_publisher::EventPublisher;

pub use secret::{NotifyConfigError, look_up, look_up_present, read_endpoints};

/// How notices are sent.
#[derive(Debug, Clone, Copy)]
pub struct SendPolicy {
    /// Longest wait for one request's answer.
    pub request_timeout: Duration,
    /// Requests per notice and endpoint, the first included.
    pub attempts: u32,
    /// The wait before the second attempt; doubled before each later one (with jitter).
    pub backoff: Duration,
    /// Notices queued per endpoint; more are dropped (and said so in an Event).
    pub queue: usize,
}

impl Default for SendPolicy {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(5),
            attempts: 3,
            backoff: Duration::from_secs(1),
            queue: 32,
        }
    }
}

/// Sends notices to a set of endpoints in the background. Cheap to clone; a notifier
/// without endpoints ([`Notifier::none`]) does nothing.
#[derive(Clone, Default)]
pub struct Notifier {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    sender: Sender,
    report_base_url: Option<String>,
    queues: Vec<Queue>,
    failures: EventPublisher,
}

struct Queue {
    name: String,
    tx: mpsc::Sender<Notice>,
    /// Notices queued or being sent.
    pending: watch::Sender<usize>,
}

/// What [`Notifier::flush`] could not send in time, per endpoint name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unsent(pub Vec<(String, usize)>);

impl Unsent {
    /// Whether everything was sent.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Display for Unsent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(name, n)| format!("{n} to endpoint {name}"))
            .collect();
        write!(f, "{}", parts.join(", "))
    }
}

impl Notifier {
    /// A notifier that sends nothing.
    pub fn none() -> Self {
        Self::default()
    }

    /// A notifier for the canary of `deploy/<deployment>` in `namespace`, sending as
    /// `sender` to `config`'s endpoints, linking reports under its base URL. Spawns one task
    /// per endpoint on the current Tokio runtime; a failure is published as an Event with
    /// `client`. Without endpoints it is [`Notifier::none`].
    pub fn new(
        client: &kube::Client,
        namespace: &str,
        deployment: &str,
        sender: Sender,
        config: EndpointsConfig,
        policy: SendPolicy,
    ) -> Self {
        if config.endpoints.is_empty() {
            return Self::none();
        }
        let failures = EventPublisher::for_deployment(client, namespace, deployment);
        let http = reqwest::Client::builder()
            .timeout(policy.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build();
        let http = match http {
            Ok(http) => http,
            Err(error) => {
                tracing::warn!(error = %error.without_url(), "notifications are off: no HTTP client");
                return Self::none();
            }
        };
        let queues = config
            .endpoints
            .into_iter()
            .map(|endpoint| {
                let (tx, rx) = mpsc::channel(policy.queue.max(1));
                let (pending, _) = watch::channel(0usize);
                let queue = Queue {
                    name: endpoint.name.clone(),
                    tx,
                    pending: pending.clone(),
                };
                let worker = Worker {
                    endpoint,
                    http: http.clone(),
                    policy,
                    failures: failures.clone(),
                    pending,
                };
                tokio::spawn(worker.run(rx));
                queue
            })
            .collect();
        Self {
            inner: Some(Arc::new(Inner {
                sender,
                report_base_url: config.report_base_url,
                queues,
                failures,
            })),
        }
    }

    /// Whether notices go anywhere.
    pub fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    /// Who the notices say sent them (the CLI when off).
    pub fn sender(&self) -> Sender {
        self.inner
            .as_ref()
            .map_or(Sender::Cli, |inner| inner.sender)
    }

    /// Queues `notice` for every endpoint and returns at once: the canary never waits for
    /// a notice. A full queue drops it, with a Warning Event.
    pub fn notify(&self, notice: Notice) {
        let Some(inner) = &self.inner else { return };
        let mut notice = notice;
        if notice.report_url.is_none() {
            notice = notice.with_report_base(inner.report_base_url.as_deref());
        }
        for queue in &inner.queues {
            queue.pending.send_modify(|n| *n += 1);
            if let Err(error) = queue.tx.try_send(notice.clone()) {
                queue.pending.send_modify(|n| *n -= 1);
                let why = match error {
                    mpsc::error::TrySendError::Full(_) => "its queue is full",
                    mpsc::error::TrySendError::Closed(_) => "its sender stopped",
                };
                let note = format!(
                    "kubectl-canary: the {} notice to endpoint {} was dropped: {why}",
                    notice.moment.code(),
                    queue.name
                );
                tracing::warn!("{note}");
                let failures = inner.failures.clone();
                tokio::spawn(async move { failures.warning(NOTIFICATION_FAILED, note).await });
            }
        }
    }

    /// Waits until every queued notice was sent (or failed and said so), at most `limit`.
    /// What is still queued then is given up, with a Warning Event per endpoint, and
    /// returned.
    pub async fn flush(&self, limit: Duration) -> Unsent {
        let Some(inner) = &self.inner else {
            return Unsent::default();
        };
        let deadline = tokio::time::Instant::now() + limit;
        let mut unsent = Unsent::default();
        for queue in &inner.queues {
            let mut pending = queue.pending.subscribe();
            let drained = tokio::time::timeout_at(deadline, pending.wait_for(|n| *n == 0)).await;
            if drained.is_err() {
                let n = *queue.pending.borrow();
                if n > 0 {
                    unsent.0.push((queue.name.clone(), n));
                }
            }
        }
        for (name, n) in &unsent.0 {
            inner
                .failures
                .warning(
                    NOTIFICATION_FAILED,
                    format!(
                        "kubectl-canary: {n} notice(s) to endpoint {name} were not sent before the command \
                         ended (waited {}s)",
                        limit.as_secs()
                    ),
                )
                .await;
        }
        unsent
    }
}

/// The task that sends one endpoint's notices, in order.
struct Worker {
    endpoint: Endpoint,
    http: reqwest::Client,
    policy: SendPolicy,
    failures: EventPublisher,
    pending: watch::Sender<usize>,
}

impl Worker {
    async fn run(self, mut rx: mpsc::Receiver<Notice>) {
        while let Some(notice) = rx.recv().await {
            if let Err(error) = self.deliver(&notice).await {
                let note = format!(
                    "kubectl-canary: the {} notice to endpoint {} ({}) was not sent: {error}",
                    notice.moment.code(),
                    self.endpoint.name,
                    self.endpoint.kind
                );
                tracing::warn!("{note}");
                self.failures.warning(NOTIFICATION_FAILED, note).await;
            }
            self.pending.send_modify(|n| *n = n.saturating_sub(1));
        }
    }

    /// Sends one notice, retrying what may succeed later (no answer, 408, 429, 5xx).
    async fn deliver(&self, notice: &Notice) -> Result<(), String> {
        let body = serde_json::to_vec(&render(notice, self.endpoint.kind))
            .map_err(|e| format!("cannot write the message: {e}"))?;
        let attempts = self.policy.attempts.max(1);
        let mut last = String::new();
        for attempt in 1..=attempts {
            if attempt > 1 {
                let base = self.policy.backoff * 2u32.pow(attempt - 2);
                // Up to a quarter more, so many senders do not retry in step.
                let jitter = base.mul_f64(fastrand::f64() * 0.25);
                tokio::time::sleep(base + jitter).await;
            }
            match self.post(&body).await {
                Ok(()) => return Ok(()),
                Err((error, retry)) => {
                    last = error;
                    if !retry {
                        return Err(last);
                    }
                }
            }
        }
        Err(format!("{last} (after {attempts} attempts)"))
    }

    /// One request; the error, and whether another attempt may succeed.
    async fn post(&self, body: &[u8]) -> Result<(), (String, bool)> {
        let mut request = self
            .http
            .post(&self.endpoint.url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(
                http::header::USER_AGENT,
                concat!("kubectl-canary/", env!("CARGO_PKG_VERSION")),
            );
        if self.endpoint.kind == EndpointKind::Webhook
            && let Some(key) = &self.endpoint.signing_key
        {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            request = request.header(
                SIGNATURE_HEADER,
                signature_header(key.as_bytes(), now, body),
            );
        }
        match request.body(body.to_vec()).send().await {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => {
                let status = response.status();
                let retry = status.is_server_error()
                    || status == http::StatusCode::TOO_MANY_REQUESTS
                    || status == http::StatusCode::REQUEST_TIMEOUT;
                Err((format!("the endpoint answered {status}"), retry))
            }
            Err(error) => Err((self.describe(error), true)),
        }
    }

    /// A transport error in words, without the URL (a secret).
    fn describe(&self, error: reqwest::Error) -> String {
        let text = if error.is_timeout() {
            format!(
                "no answer within {}s",
                self.policy.request_timeout.as_secs_f64()
            )
        } else if error.is_connect() {
            "could not connect".to_string()
        } else {
            format!("the request failed: {}", error.without_url())
        };
        // Belt and braces: no error text may carry the URL.
        text.replace(&self.endpoint.url, "<url>")
    }
}

#[cfg(test)]
mod tests;
