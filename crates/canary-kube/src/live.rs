//! A live view of a Deployment, its ReplicaSets, its pods and its canary record, kept
//! current by watches.
//!
//! The engine decides on every change the controller makes; reading the three lists again
//! after each burst of events cost hundreds of requests per canary. Reflector stores fed by
//! one watch per kind cost four requests for the whole command (a streaming list each,
//! [`crate::streaming_watch`]; eight, a LIST and a WATCH each, where the API server serves
//! no streaming lists): the watches run in a task of their own, and every part of a command
//! that reads or waits (the trust check, the drive loops, the wait for Ready canary pods, an
//! approval gate, the final report) shares the one view through clones
//! ([`crate::engine::Engine::live`]).

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::error::{CanaryError, Result};
use crate::observe::{DeploymentView, NamespaceApis};
use crate::store::{RecordStore, RecordVersion, StoredRecord};

/// Watch-fed stores of one Deployment's objects. Clones share the stores and the watches;
/// each clone waits for changes on its own.
#[derive(Clone)]
pub struct LiveView {
    name: String,
    deployments: Store<Deployment>,
    replica_sets: Store<ReplicaSet>,
    pods: Store<Pod>,
    records: Store<ConfigMap>,
    /// Every resourceVersion of the Deployment and of the record the watches delivered, so
    /// a write of this command can be told apart from one that has not arrived yet.
    seen: Arc<Mutex<SeenVersions>>,
    /// Counts watch events; a clone waits for the count to move.
    changes: watch::Receiver<u64>,
    _watches: Arc<WatchTask>,
}

#[derive(Default)]
struct SeenVersions {
    deployment: HashSet<String>,
    record: HashSet<String>,
}

/// How [`LiveView::start_with`] failed.
enum Started {
    /// Streaming lists are not served here: start again with LIST and WATCH.
    NoStreamingLists,
    /// The view cannot start.
    Failed(CanaryError),
}

/// The task that runs the watches; it ends with the last clone of the view.
struct WatchTask(tokio::task::JoinHandle<()>);

impl Drop for WatchTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

type Changes = Pin<Box<dyn Stream<Item = ()> + Send>>;

/// Where a kind's stream notes the versions it delivers: the shared record of versions seen
/// and the set of that kind in it.
type SeenOf = (
    Arc<Mutex<SeenVersions>>,
    fn(&mut SeenVersions) -> &mut HashSet<String>,
);

/// What stopped the watches from starting, kept for [`LiveView::start`] to act on: retrying
/// it (the backoff) would only wait out the start's deadline.
enum Refusal {
    /// RBAC forbids a list or watch.
    Forbidden(kube::Error),
    /// The API server refused a streaming list (its `WatchList` feature is off).
    NoStreamingLists,
}

/// How the stores get their initial state.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Strategy {
    /// One streaming watch per kind ([`crate::streaming_watch`]).
    Streaming,
    /// A LIST and a WATCH per kind (kube-runtime's watcher).
    ListWatch,
}

/// Whether this API server was found not to serve streaming lists (one process talks to
/// one API server).
static NO_STREAMING_LISTS: AtomicBool = AtomicBool::new(false);

/// How long a streaming list may take to mark the end of its initial events before the
/// view starts again with LIST and WATCH: an API server that ignores `sendInitialEvents`
/// (older than the feature) never marks it.
const STREAMING_GRACE: Duration = Duration::from_secs(10);

/// The watch of one kind with `strategy`, as reflector events.
fn watch_of<K>(
    api: Api<K>,
    labels: Option<&str>,
    fields: Option<&str>,
    strategy: Strategy,
) -> Pin<Box<dyn Stream<Item = std::result::Result<watcher::Event<K>, watcher::Error>> + Send>>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    match strategy {
        Strategy::Streaming => Box::pin(crate::streaming_watch::streaming_watch(
            api,
            labels.map(str::to_string),
            fields.map(str::to_string),
        )),
        Strategy::ListWatch => {
            let mut config = watcher::Config::default();
            if let Some(labels) = labels {
                config = config.labels(labels);
            }
            if let Some(fields) = fields {
                config = config.fields(fields);
            }
            Box::pin(watcher(api, config))
        }
    }
}

/// A reflector of one kind whose stream notes the resourceVersions it delivers in `seen`
/// (when given), keeps what stops it from starting in `refused`, and yields `()` per event.
fn reflected<K>(
    writer: reflector::store::Writer<K>,
    stream: impl Stream<Item = std::result::Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    seen: Option<SeenOf>,
    refused: Arc<Mutex<Option<Refusal>>>,
) -> Changes
where
    K: kube::Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let stream = stream.inspect(move |event| {
        let refusal = match event {
            Err(
                watcher::Error::InitialListFailed(kube::Error::Api(status))
                | watcher::Error::WatchStartFailed(kube::Error::Api(status))
                | watcher::Error::WatchFailed(kube::Error::Api(status)),
            ) => match status.code {
                403 => Refusal::Forbidden(kube::Error::Api(status.clone())),
                // A parameter the API server will not take: `sendInitialEvents`.
                400 | 422 => Refusal::NoStreamingLists,
                _ => return,
            },
            _ => return,
        };
        if let Ok(mut refused) = refused.lock()
            && refused.is_none()
        {
            *refused = Some(refusal);
        }
    });
    reflector::reflector(writer, stream)
        .default_backoff()
        .map(move |event| {
            if let (
                Some((seen, versions)),
                Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object)),
            ) = (&seen, &event)
                && let (Some(version), Ok(mut seen)) = (object.resource_version(), seen.lock())
            {
                versions(&mut seen).insert(version);
            }
        })
        .boxed()
}

impl LiveView {
    /// Starts the watches of Deployment `name`, its ReplicaSets and pods (those matching
    /// `selector`, the Deployment's label selector as a string) and its record, and waits
    /// until each store holds its initial state: one streaming list per kind where the API
    /// server serves them, else a LIST and a WATCH.
    pub async fn start(
        apis: &NamespaceApis,
        records: &RecordStore,
        name: &str,
        selector: &str,
    ) -> Result<Self> {
        if !NO_STREAMING_LISTS.load(Ordering::Relaxed) {
            match Self::start_with(apis, records, name, selector, Strategy::Streaming).await {
                Err(Started::NoStreamingLists) => {
                    tracing::debug!("no streaming lists here; listing and watching");
                    NO_STREAMING_LISTS.store(true, Ordering::Relaxed);
                }
                Err(Started::Failed(error)) => return Err(error),
                Ok(live) => return Ok(live),
            }
        }
        match Self::start_with(apis, records, name, selector, Strategy::ListWatch).await {
            Ok(live) => Ok(live),
            Err(Started::Failed(error)) => Err(error),
            Err(Started::NoStreamingLists) => unreachable!("no streaming list was asked for"),
        }
    }

    async fn start_with(
        apis: &NamespaceApis,
        records: &RecordStore,
        name: &str,
        selector: &str,
        strategy: Strategy,
    ) -> std::result::Result<Self, Started> {
        let name = name.to_string();
        let (deployments, deployments_writer) = reflector::store();
        let (replica_sets, replica_sets_writer) = reflector::store();
        let (pods, pods_writer) = reflector::store();
        let (record_maps, records_writer) = reflector::store();
        let seen = Arc::new(Mutex::new(SeenVersions::default()));
        let refused = Arc::new(Mutex::new(None));
        let by_name = format!("metadata.name={name}");
        let record_by_name = format!("metadata.name={}", records.name());
        let mut changes = futures::stream::select_all([
            reflected(
                deployments_writer,
                watch_of(apis.deployments.clone(), None, Some(&by_name), strategy),
                Some((seen.clone(), |s| &mut s.deployment)),
                refused.clone(),
            ),
            reflected(
                replica_sets_writer,
                watch_of(apis.replica_sets.clone(), Some(selector), None, strategy),
                None,
                refused.clone(),
            ),
            reflected(
                pods_writer,
                watch_of(apis.pods.clone(), Some(selector), None, strategy),
                None,
                refused.clone(),
            ),
            reflected(
                records_writer,
                watch_of(records.api(), None, Some(&record_by_name), strategy),
                Some((seen.clone(), |s| &mut s.record)),
                refused.clone(),
            ),
        ]);
        let (count, changes_seen) = watch::channel(0u64);
        let task = tokio::spawn(async move {
            while changes.next().await.is_some() {
                count.send_modify(|n| *n += 1);
            }
        });
        let live = Self {
            name,
            deployments,
            replica_sets,
            pods,
            records: record_maps,
            seen,
            changes: changes_seen,
            _watches: Arc::new(WatchTask(task)),
        };
        let (d, r, p, c) = (
            live.deployments.clone(),
            live.replica_sets.clone(),
            live.pods.clone(),
            live.records.clone(),
        );
        let ready = async move {
            let _ = d.wait_until_ready().await;
            let _ = r.wait_until_ready().await;
            let _ = p.wait_until_ready().await;
            let _ = c.wait_until_ready().await;
        };
        let mut changes = live.changes.clone();
        let refusal = async {
            loop {
                if let Some(refusal) = refused.lock().ok().and_then(|mut r| r.take()) {
                    return refusal;
                }
                if changes.changed().await.is_err() {
                    return std::future::pending().await;
                }
            }
        };
        let grace = async {
            match strategy {
                Strategy::Streaming => tokio::time::sleep(STREAMING_GRACE).await,
                Strategy::ListWatch => std::future::pending().await,
            }
        };
        tokio::select! {
            () = ready => Ok(live),
            refusal = refusal => Err(match refusal {
                Refusal::Forbidden(error) => Started::Failed(CanaryError::api(
                    format!("listing and watching deploy/{} and its objects", live.name),
                    error,
                )),
                Refusal::NoStreamingLists if strategy == Strategy::Streaming => Started::NoStreamingLists,
                Refusal::NoStreamingLists => Started::Failed(CanaryError::Refused(format!(
                    "the API server refused to list deploy/{} and its objects", live.name
                ))),
            }),
            () = grace => Err(Started::NoStreamingLists),
            () = tokio::time::sleep(Duration::from_secs(60)) => Err(Started::Failed(CanaryError::TimedOut {
                what: format!("the watches of deploy/{} to start", live.name),
                seconds: 60,
                last: "no initial list".into(),
            })),
        }
    }

    /// The view as the watches last saw it; an error if the Deployment is gone.
    pub fn view(&self) -> Result<DeploymentView> {
        let deployment = self
            .deployments
            .state()
            .into_iter()
            .find(|d| d.name_any() == self.name)
            .ok_or_else(|| {
                CanaryError::Refused(format!(
                    "deploy/{} was deleted during the canary; its record goes with it",
                    self.name
                ))
            })?;
        Ok(DeploymentView::assemble(
            (*deployment).clone(),
            self.replica_sets
                .state()
                .iter()
                .map(|rs| (**rs).clone())
                .collect(),
            self.pods.state().iter().map(|p| (**p).clone()).collect(),
        ))
    }

    /// The canary record as last seen, if there is one.
    pub fn record(&self, store: &RecordStore) -> Result<Option<StoredRecord>> {
        self.records
            .state()
            .first()
            .map(|cm| store.decode((**cm).clone()))
            .transpose()
    }

    /// The record's ConfigMap as last seen, if there is one.
    pub fn record_map(&self) -> Option<ConfigMap> {
        self.records.state().first().map(|cm| (**cm).clone())
    }

    /// The Deployment's resourceVersion as last seen.
    pub fn deployment_version(&self) -> Option<String> {
        self.deployments
            .state()
            .first()
            .and_then(|d| d.resource_version())
    }

    /// The record's resourceVersion as last seen.
    pub fn record_version(&self) -> Option<String> {
        self.records
            .state()
            .first()
            .and_then(|cm| cm.resource_version())
    }

    fn has_seen(&self, version: &str, kind: fn(&SeenVersions) -> &HashSet<String>) -> bool {
        self.seen
            .lock()
            .map(|seen| kind(&seen).contains(version))
            .unwrap_or(true)
    }

    /// Whether the record store reflects `known`, a version this command wrote or read: it
    /// has arrived (even if a later one has since), or the record deleted is gone.
    fn record_reflects(&self, known: &RecordVersion) -> bool {
        match known {
            RecordVersion::Stored(version) => self.has_seen(version, |s| &s.record),
            RecordVersion::Deleted(version) => self.record_version().as_deref() != Some(version),
        }
    }

    /// Waits (at most `max`) until the watch has delivered the record at `version`, one
    /// this run wrote, so the next decision does not take its own write for another run's.
    pub async fn record_caught_up_with(&mut self, version: &str, max: Duration) {
        let known = RecordVersion::Stored(version.to_string());
        self.until(max, |live| live.record_reflects(&known)).await;
    }

    /// Waits (at most `max`) until the view reflects the newest versions this command knows
    /// of the Deployment (`deployment`: an update's answer or a fresh read) and of the record.
    pub async fn caught_up_with_known(
        &mut self,
        deployment: Option<&str>,
        record: Option<&RecordVersion>,
        max: Duration,
    ) {
        self.until(max, |live| {
            deployment.is_none_or(|v| live.has_seen(v, |s| &s.deployment))
                && record.is_none_or(|w| live.record_reflects(w))
        })
        .await;
    }

    /// Waits (at most `max`) until the watch has delivered the Deployment at `version`,
    /// the one an update of ours returned, so the next decision sees our own write.
    pub async fn caught_up_with(&mut self, version: &str, max: Duration) {
        self.until(max, |live| live.has_seen(version, |s| &s.deployment))
            .await;
    }

    async fn until(&mut self, max: Duration, done: impl Fn(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + max;
        while !done(self) && tokio::time::Instant::now() < deadline {
            if !matches!(
                tokio::time::timeout_at(deadline, self.changes.changed()).await,
                Ok(Ok(()))
            ) {
                // Time is up, or the watches ended (they retry for ever; only a dropped
                // task ends them): nothing more will arrive.
                return;
            }
        }
    }

    /// Waits for the next change (at most `max`), then lets a burst of events settle so it
    /// is decided on once.
    pub async fn changed(&mut self, max: Duration) {
        match tokio::time::timeout(max, self.changes.changed()).await {
            Ok(Ok(())) => {}
            // No change in time.
            Err(_) => return,
            // The watches ended: nothing will arrive; wait as a timer would.
            Ok(Err(_)) => {
                tokio::time::sleep(max).await;
                return;
            }
        }
        let settle = tokio::time::sleep(Duration::from_millis(30));
        tokio::pin!(settle);
        loop {
            tokio::select! {
                _ = &mut settle => return,
                changed = self.changes.changed() => if changed.is_err() {
                    settle.as_mut().await;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use http::{Request, Response, StatusCode};
    use kube::client::Body;
    use serde_json::{Value, json};

    use super::*;

    fn respond(status: StatusCode, body: Value) -> Response<Body> {
        Response::builder()
            .status(status)
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap()
    }

    fn list(kind: &str, items: Vec<Value>) -> Value {
        json!({"apiVersion": "v1", "kind": format!("{kind}List"),
               "metadata": {"resourceVersion": "7"}, "items": items})
    }

    #[tokio::test]
    async fn an_api_server_without_streaming_lists_is_listed_and_watched() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(service, "ns");
        let asked = Arc::new(Mutex::new(Vec::new()));
        let server = {
            let asked = asked.clone();
            tokio::spawn(async move {
                // Watches are left open (their answers kept, never sent).
                let mut open = Vec::new();
                while let Some((request, send)) = handle.next_request().await {
                    let (path, query) = (
                        request.uri().path().to_string(),
                        request.uri().query().unwrap_or_default().to_string(),
                    );
                    asked.lock().unwrap().push(format!("{path}?{query}"));
                    if query.contains("sendInitialEvents=true") {
                        send.send_response(respond(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": 422,
                                   "reason": "Invalid",
                                   "message": "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled"}),
                        ));
                    } else if query.contains("watch=true") {
                        open.push(send);
                    } else if path.ends_with("/deployments") {
                        send.send_response(respond(StatusCode::OK, list("Deployment", vec![json!({
                            "apiVersion": "apps/v1", "kind": "Deployment",
                            "metadata": {"name": "web", "namespace": "ns", "resourceVersion": "7"},
                            "spec": {"selector": {"matchLabels": {"app": "web"}},
                                     "template": {"metadata": {"labels": {"app": "web"}},
                                                  "spec": {"containers": [{"name": "nginx", "image": "nginx:1.14"}]}}}
                        })])));
                    } else {
                        send.send_response(respond(StatusCode::OK, list("Any", vec![])));
                    }
                }
            })
        };
        let apis = NamespaceApis::new(&client, "ns");
        let records = RecordStore::new(&client, "ns", "web");
        let live = LiveView::start(&apis, &records, "web", "app=web")
            .await
            .expect("the view starts with LIST and WATCH");
        assert_eq!(live.view().unwrap().deployment.name_any(), "web");
        assert!(live.record(&records).unwrap().is_none());
        assert!(NO_STREAMING_LISTS.load(Ordering::Relaxed));
        let asked = asked.lock().unwrap().clone();
        assert!(
            asked.iter().any(|q| q.contains("sendInitialEvents=true")),
            "a streaming list was tried first: {asked:#?}"
        );
        assert!(
            asked
                .iter()
                .any(|q| q.ends_with("/deployments?&fieldSelector=metadata.name%3Dweb&limit=500")),
            "then a LIST: {asked:#?}"
        );
        drop(live);
        server.abort();
    }
}
