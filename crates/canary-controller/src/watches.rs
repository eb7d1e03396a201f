//! The controller's watches that come back: one kube-runtime watcher per kind, each with its
//! own short, bounded backoff that resets only when the watch has listed again, and observed
//! for the metrics, readiness and the blind leader's bound (docs/gitops.md, "Watches that
//! recover").
//!
//! Why not kube-runtime's `Controller::new(..).owns(..).watches(..)` as it comes: it merges all
//! watches into one stream under one `DefaultBackoff` (800 ms doubling to 30 s, reset only by
//! an object event or after 120 s without an error). After an API server restart every watch
//! fails at once (the old resourceVersion is `410 Gone`, then the relist is `403` until the
//! new server has loaded its RBAC cache), each failure doubles the one shared delay, and a
//! delay stops every watch, the healthy ones too: tens of seconds to minutes without an
//! event. Here a failure delays only its own watch, by 0.2 s doubling to at most
//! [`MAX_DELAY`], and never reaches the controller's shared backoff.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use kube::runtime::watcher::{self, Event};

use crate::metrics::Metrics;

/// The server-side timeout of every watch (`timeoutSeconds`; kube's default is 290 s). The
/// API server ends a healthy watch after this long and the watcher watches again from where
/// it was (no list). kube-runtime's watcher also takes a watch that stays silent for this
/// long plus 5 s for a dead connection and watches again on a new one: so a connection gone
/// silent without closing (a black-holed path, a NAT that forgot it) delays events by at
/// most about 65 s instead of about 5 minutes (docs/gitops.md, "Watches that recover"). The
/// cost: each watch is renewed every minute, 3 requests a minute per replica.
pub const WATCH_TIMEOUT_SECS: u32 = 60;

/// The delay after a watch's first failed request.
pub const FIRST_DELAY: Duration = Duration::from_millis(200);

/// The longest delay between two attempts of one watch: a watch lists again at most this
/// long after the API server answers again.
pub const MAX_DELAY: Duration = Duration::from_secs(2);

/// Delays between the attempts of one watch: doubling from [`FIRST_DELAY`] up to
/// [`MAX_DELAY`], each jittered to between half and all of that (so that replicas and
/// watches do not retry in step), back to the first when the watch has listed.
#[derive(Debug, Default, Clone)]
pub struct WatchBackoff {
    failures: u32,
}

impl WatchBackoff {
    /// The delay before the next attempt; `unit` is a random number in [0, 1).
    pub fn next_delay(&mut self, unit: f64) -> Duration {
        let ceiling = FIRST_DELAY
            .saturating_mul(1u32 << self.failures.min(16))
            .min(MAX_DELAY);
        self.failures = self.failures.saturating_add(1);
        ceiling.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
    }

    /// The watch listed: the next failure waits [`FIRST_DELAY`] again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// The metric label of a failed list or watch: the HTTP status the API server answered
/// (`403`, `410`, `500`, ...), `transport` when no answer came (refused, reset, timed out),
/// else `other`.
pub fn error_code(error: &watcher::Error) -> String {
    let client_error = match error {
        watcher::Error::InitialListFailed(error)
        | watcher::Error::WatchStartFailed(error)
        | watcher::Error::WatchFailed(error) => error,
        watcher::Error::WatchError(status) => return status.code.to_string(),
        watcher::Error::NoResourceVersion => return "other".into(),
    };
    match client_error {
        kube::Error::Api(status) => status.code.to_string(),
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => {
            "transport".into()
        }
        _ => "other".into(),
    }
}

/// The watch `watch`: a kube-runtime watcher from `start`, observed for the metrics; after
/// an error, [`WatchBackoff`]'s delay and then a new watcher from `start`, so that the watch
/// lists again and its return is seen (kube-runtime's watcher resumes some failed watches
/// without a list and without any event, which would leave a quiet watch counted as down).
/// Errors are taken out of the stream, so the controller's own backoff never sees one. The
/// first error of an outage is logged at WARN, the watch coming back at INFO with how long it
/// was down; the retries between at DEBUG.
pub fn observed<K, S>(
    watch: &'static str,
    mut start: impl FnMut() -> S + Send + 'static,
    metrics: Arc<Metrics>,
) -> impl Stream<Item = watcher::Result<Event<K>>> + Send + 'static
where
    K: Send + 'static,
    S: Stream<Item = watcher::Result<Event<K>>> + Send + 'static,
{
    metrics.watch_started(watch);
    struct Observed<S, F> {
        stream: S,
        start: F,
        backoff: WatchBackoff,
        metrics: Arc<Metrics>,
        down_since: Option<Instant>,
    }
    let state = Observed {
        stream: start().boxed(),
        start,
        backoff: WatchBackoff::default(),
        metrics,
        down_since: None,
    };
    futures::stream::unfold(state, move |mut state| async move {
        loop {
            match state.stream.next().await? {
                Ok(event) => {
                    match &event {
                        Event::Init => state.metrics.watch_listing(watch),
                        Event::InitDone => {
                            state.metrics.watch_listed(watch);
                            state.backoff.reset();
                            if let Some(since) = state.down_since.take() {
                                tracing::info!(
                                    watch,
                                    down_seconds = since.elapsed().as_secs_f64(),
                                    "watching again"
                                );
                            }
                        }
                        Event::InitApply(_) | Event::Apply(_) | Event::Delete(_) => {
                            state.metrics.watch_event(watch)
                        }
                    }
                    return Some((Ok(event), state));
                }
                Err(error) => {
                    let code = error_code(&error);
                    state.metrics.watch_error(watch, &code);
                    let delay = state.backoff.next_delay(fastrand::f64());
                    if state.down_since.is_none() {
                        state.down_since = Some(Instant::now());
                        tracing::warn!(watch, %code, %error, retry_in = ?delay, "watch failed; retrying");
                    } else {
                        tracing::debug!(watch, %code, %error, retry_in = ?delay, "watch failed again; retrying");
                    }
                    tokio::time::sleep(delay).await;
                    state.stream = (state.start)().boxed();
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_to_the_bound_and_start_over_after_a_list() {
        let mut backoff = WatchBackoff::default();
        let ceilings: Vec<Duration> = (0..6).map(|_| backoff.next_delay(0.999_999)).collect();
        let ms: Vec<u128> = ceilings.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, [199, 399, 799, 1599, 1999, 1999]);
        assert_eq!(backoff.next_delay(0.0), MAX_DELAY / 2, "half at least");
        backoff.reset();
        assert_eq!(backoff.next_delay(0.0), FIRST_DELAY / 2);
    }

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            ..Default::default()
        }))
    }

    #[test]
    fn error_codes_are_the_status_or_transport() {
        assert_eq!(
            error_code(&watcher::Error::InitialListFailed(api_error(403))),
            "403"
        );
        assert_eq!(
            error_code(&watcher::Error::WatchError(Box::new(kube::core::Status {
                code: 410,
                ..Default::default()
            }))),
            "410"
        );
        assert_eq!(error_code(&watcher::Error::NoResourceVersion), "other");
    }

    #[tokio::test(start_paused = true)]
    async fn errors_are_retried_inside_the_watch_and_counted() {
        let events: Vec<watcher::Result<Event<u8>>> = vec![
            Ok(Event::Init),
            Ok(Event::InitDone),
            Err(watcher::Error::WatchError(Box::new(kube::core::Status {
                code: 410,
                ..Default::default()
            }))),
            Ok(Event::Init),
            Err(watcher::Error::InitialListFailed(api_error(403))),
            Ok(Event::Init),
            Ok(Event::InitApply(1)),
            Ok(Event::InitDone),
            Ok(Event::Apply(2)),
        ];
        // Each error ends a watcher; the next one starts after it.
        let mut watchers: Vec<Vec<watcher::Result<Event<u8>>>> = vec![];
        let mut current = vec![];
        for event in events {
            let error = event.is_err();
            current.push(event);
            if error {
                watchers.push(std::mem::take(&mut current));
            }
        }
        watchers.push(current);
        watchers.reverse();
        let metrics = Arc::new(Metrics::new());
        let started = tokio::time::Instant::now();
        let out: Vec<_> = observed(
            "deployments",
            move || futures::stream::iter(watchers.pop().unwrap_or_default()),
            metrics.clone(),
        )
        .collect()
        .await;
        assert!(
            out.iter().all(Result::is_ok),
            "no error reaches the controller"
        );
        assert_eq!(out.len(), 7);
        // Two failures: at most 0.2 s + 0.4 s of (paused, auto-advanced) time.
        assert!(
            started.elapsed() <= Duration::from_millis(600),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(metrics.blind(), None, "listed again");
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"kubectl_canary_controller_watch_restarts_total{watch="deployments"} 2"#
            ),
            "{text}"
        );
    }
}
