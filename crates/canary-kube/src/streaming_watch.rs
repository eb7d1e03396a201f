//! A watch that begins with the collection's current state: one request (a streaming list,
//! `sendInitialEvents=true`, KEP-3157) where a LIST and a WATCH were two.
//!
//! kube-runtime's watcher has a streaming mode, but it asks for `resourceVersion=0`: the
//! state "as the API server's cache has it", which may be older than this command's own
//! last write. A command decides on its live view right after its writes, so this one asks
//! with the resourceVersion unset: the initial events are a consistent read, as fresh as a
//! LIST's. The events are kube-runtime's [`Event`]s, so a reflector store takes
//! them as they are.
//!
//! An API server that does not serve streaming lists (the `WatchList` feature off) refuses
//! the parameter at once or ignores it and never marks the end of the initial events; the
//! caller ([`crate::live::LiveView::start`]) then falls back to LIST and WATCH.

use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::Api;
use kube::api::{WatchEvent, WatchParams};
use kube::runtime::watcher::{Error, Event};
use serde::de::DeserializeOwned;

/// The annotation of the bookmark that ends the initial events.
const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// How long the API server keeps one watch open (kube's default for its watcher).
const SERVER_TIMEOUT_SECS: u32 = 290;

/// A watch that sends nothing for this long (not even a bookmark) is taken for a silent,
/// dead connection and started again.
const IDLE: Duration = Duration::from_secs(SERVER_TIMEOUT_SECS as u64 + 5);

enum State<K> {
    /// Nothing yet, or the state must be read again (the watch expired: 410 Gone).
    Empty,
    /// Receiving the initial events.
    Initial(futures::stream::BoxStream<'static, kube::Result<WatchEvent<K>>>),
    /// Between two watches, from a known resourceVersion.
    Resume(String),
    /// Receiving changes.
    Watching(
        futures::stream::BoxStream<'static, kube::Result<WatchEvent<K>>>,
        String,
    ),
}

/// Watches the objects of `api` matching the selectors, beginning with a consistent
/// snapshot of them (`Event::Init`, `InitApply`s, `InitDone`), then their changes; expired
/// watches start again from a fresh snapshot, ended ones resume where they ended. Errors are
/// passed on (a backoff belongs to the consumer, as with kube-runtime's watcher).
pub fn streaming_watch<K>(
    api: Api<K>,
    label_selector: Option<String>,
    field_selector: Option<String>,
) -> impl Stream<Item = Result<Event<K>, Error>> + Send
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let params = move |initial: bool| WatchParams {
        label_selector: label_selector.clone(),
        field_selector: field_selector.clone(),
        timeout: Some(SERVER_TIMEOUT_SECS),
        bookmarks: true,
        send_initial_events: initial,
    };
    futures::stream::unfold(State::Empty, move |state| {
        let api = api.clone();
        let params = params.clone();
        async move {
            let (event, next) = step(&api, &params, state).await;
            Some((event, next))
        }
    })
    .filter_map(futures::future::ready)
    // Each error as the watcher reports it (410 Gone included): the consumer's backoff
    // passes it over in silence.
    .inspect(|event| {
        if let Err(error) = event {
            tracing::debug!("watch error: {error:?}");
        }
    })
}

/// One step of the watch: the event to pass on (if any) and the state after it.
async fn step<K>(
    api: &Api<K>,
    params: &(dyn Fn(bool) -> WatchParams + Send + Sync),
    state: State<K>,
) -> (Option<Result<Event<K>, Error>>, State<K>)
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    match state {
        // Unset (""), not "0": the snapshot is read consistently (see the module's doc).
        State::Empty => match api.watch(&params(true), "").await {
            Ok(stream) => (Some(Ok(Event::Init)), State::Initial(stream.boxed())),
            Err(error) => (Some(Err(Error::WatchStartFailed(error))), State::Empty),
        },
        State::Resume(version) => match api.watch(&params(false), &version).await {
            Ok(stream) => (None, State::Watching(stream.boxed(), version)),
            Err(error) => (
                Some(Err(Error::WatchStartFailed(error))),
                State::Resume(version),
            ),
        },
        State::Initial(mut stream) => match next(&mut stream).await {
            Some(Ok(WatchEvent::Added(object) | WatchEvent::Modified(object))) => {
                (Some(Ok(Event::InitApply(object))), State::Initial(stream))
            }
            // The API server sends no deletions among the initial events.
            Some(Ok(WatchEvent::Deleted(_))) => (None, State::Initial(stream)),
            Some(Ok(WatchEvent::Bookmark(bookmark))) => {
                if bookmark
                    .metadata
                    .annotations
                    .contains_key(INITIAL_EVENTS_END)
                {
                    let version = bookmark.metadata.resource_version;
                    (Some(Ok(Event::InitDone)), State::Watching(stream, version))
                } else {
                    (None, State::Initial(stream))
                }
            }
            Some(Ok(WatchEvent::Error(status))) => {
                (Some(Err(Error::WatchError(status))), State::Empty)
            }
            Some(Err(error)) => (Some(Err(Error::WatchFailed(error))), State::Empty),
            // Ended (or silent) before the snapshot was whole: read it again.
            None => (None, State::Empty),
        },
        State::Watching(mut stream, version) => match next(&mut stream).await {
            Some(Ok(WatchEvent::Added(object) | WatchEvent::Modified(object))) => {
                let version = object.meta().resource_version.clone().unwrap_or(version);
                (
                    Some(Ok(Event::Apply(object))),
                    State::Watching(stream, version),
                )
            }
            Some(Ok(WatchEvent::Deleted(object))) => {
                let version = object.meta().resource_version.clone().unwrap_or(version);
                (
                    Some(Ok(Event::Delete(object))),
                    State::Watching(stream, version),
                )
            }
            Some(Ok(WatchEvent::Bookmark(bookmark))) => (
                None,
                State::Watching(stream, bookmark.metadata.resource_version),
            ),
            // 410 Gone: the version is too old to resume from; read the state again.
            Some(Ok(WatchEvent::Error(status))) if status.code == 410 => {
                (Some(Err(Error::WatchError(status))), State::Empty)
            }
            Some(Ok(WatchEvent::Error(status))) => {
                (Some(Err(Error::WatchError(status))), State::Resume(version))
            }
            Some(Err(error)) => (Some(Err(Error::WatchFailed(error))), State::Resume(version)),
            None => (None, State::Resume(version)),
        },
    }
}

/// The next event, or `None` when the watch ended or went silent.
async fn next<K>(
    stream: &mut futures::stream::BoxStream<'static, kube::Result<WatchEvent<K>>>,
) -> Option<kube::Result<WatchEvent<K>>> {
    tokio::time::timeout(IDLE, stream.next())
        .await
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use http::{Request, Response, StatusCode};
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::client::Body;
    use serde_json::{Value, json};

    use super::*;

    type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

    fn client() -> (kube::Client, Handle) {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        (kube::Client::new(service, "ns"), handle)
    }

    fn config_map(version: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "web.kubectl-canary", "namespace": "ns", "resourceVersion": version}})
    }

    /// A watch answer: the events, one JSON document per line, then the end of the stream.
    fn events(events: &[Value]) -> Response<Body> {
        let mut body = Vec::new();
        for event in events {
            body.extend(serde_json::to_vec(event).unwrap());
            body.push(b'\n');
        }
        Response::builder()
            .status(StatusCode::OK)
            .body(Body::from(body))
            .unwrap()
    }

    fn end_of_initial_events(version: &str) -> Value {
        json!({"type": "BOOKMARK", "object": {"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"resourceVersion": version,
                            "annotations": {"k8s.io/initial-events-end": "true"}}}})
    }

    /// The query of the next request, answered with `answer`.
    async fn answer(handle: &mut Handle, answer: Response<Body>) -> String {
        let (request, send) = handle.next_request().await.expect("a request");
        send.send_response(answer);
        request.uri().query().unwrap_or_default().to_string()
    }

    fn describe(event: &Result<Event<ConfigMap>, Error>) -> String {
        match event {
            Ok(Event::Init) => "init".into(),
            Ok(Event::InitApply(cm)) => format!(
                "init-apply {}",
                cm.metadata.resource_version.clone().unwrap()
            ),
            Ok(Event::InitDone) => "init-done".into(),
            Ok(Event::Apply(cm)) => {
                format!("apply {}", cm.metadata.resource_version.clone().unwrap())
            }
            Ok(Event::Delete(cm)) => {
                format!("delete {}", cm.metadata.resource_version.clone().unwrap())
            }
            Err(error) => format!("error {error}"),
        }
    }

    #[tokio::test]
    async fn a_consistent_snapshot_then_changes_resumed_where_they_ended() {
        let (client, mut handle) = client();
        let api: Api<ConfigMap> = Api::namespaced(client, "ns");
        let stream = streaming_watch(api, None, Some("metadata.name=web.kubectl-canary".into()));
        let watching = tokio::spawn(async move {
            stream
                .take(5)
                .map(|e| describe(&e))
                .collect::<Vec<_>>()
                .await
        });
        let first = answer(
            &mut handle,
            events(&[
                json!({"type": "ADDED", "object": config_map("10")}),
                end_of_initial_events("11"),
            ]),
        )
        .await;
        // The snapshot is asked for with the resourceVersion unset: a consistent read.
        assert!(first.contains("sendInitialEvents=true"), "{first}");
        assert!(
            first.contains("resourceVersionMatch=NotOlderThan"),
            "{first}"
        );
        assert!(first.ends_with("&resourceVersion="), "{first}");
        // The stream ended: the next watch resumes at the bookmark's version, no snapshot.
        let resumed = answer(
            &mut handle,
            events(&[
                json!({"type": "MODIFIED", "object": config_map("12")}),
                json!({"type": "DELETED", "object": config_map("13")}),
            ]),
        )
        .await;
        assert!(!resumed.contains("sendInitialEvents"), "{resumed}");
        assert!(resumed.ends_with("&resourceVersion=11"), "{resumed}");
        assert_eq!(
            watching.await.unwrap(),
            [
                "init",
                "init-apply 10",
                "init-done",
                "apply 12",
                "delete 13"
            ]
        );
    }

    #[tokio::test]
    async fn an_expired_watch_reads_the_state_again() {
        let (client, mut handle) = client();
        let api: Api<ConfigMap> = Api::namespaced(client, "ns");
        let stream = streaming_watch(api, None, None);
        let watching = tokio::spawn(async move {
            stream
                .take(6)
                .map(|e| describe(&e))
                .collect::<Vec<_>>()
                .await
        });
        answer(&mut handle, events(&[end_of_initial_events("5")])).await;
        let resumed = answer(
            &mut handle,
            events(&[json!({"type": "ERROR", "object": {
                "apiVersion": "v1", "kind": "Status", "status": "Failure",
                "message": "too old resource version", "reason": "Expired", "code": 410}})]),
        )
        .await;
        assert!(resumed.ends_with("&resourceVersion=5"), "{resumed}");
        let again = answer(
            &mut handle,
            events(&[
                json!({"type": "ADDED", "object": config_map("20")}),
                end_of_initial_events("21"),
            ]),
        )
        .await;
        assert!(again.contains("sendInitialEvents=true"), "{again}");
        assert!(again.ends_with("&resourceVersion="), "{again}");
        let seen = watching.await.unwrap();
        assert_eq!(seen[..2], ["init", "init-done"]);
        assert!(
            seen[2].starts_with("error") && seen[2].contains("too old"),
            "{seen:?}"
        );
        assert_eq!(seen[3..], ["init", "init-apply 20", "init-done"]);
    }
}
