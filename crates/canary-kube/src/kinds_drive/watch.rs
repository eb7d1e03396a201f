//! The drive's waits: one stream of the events of the workload and of its pods, and the
//! wait for its next event up to the drive's deadline.

use std::fmt::Debug;
use std::time::Duration;

use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::error::{CanaryError, Result};
use crate::observe::label_selector_string;

pub(crate) fn selector_of<K: Serialize>(object: &K) -> String {
    let selector = serde_json::to_value(object)
        .ok()
        .and_then(|o| serde_json::from_value(o["spec"]["selector"].clone()).ok());
    label_selector_string(selector.as_ref())
}

/// One stream of the events of workload `name` and of the pods of `selector`: any event
/// is a reason to read and decide again.
pub(crate) fn changes_of<K>(
    workloads: Api<K>,
    pods: Api<Pod>,
    name: &str,
    selector: &str,
) -> impl Stream<Item = ()> + Unpin + Send
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    K::DynamicType: Default,
{
    // With a backoff: a watch that fails (the API server restarting) retries, not spins.
    let workload = watcher::watcher(
        workloads,
        watcher::Config::default().fields(&format!("metadata.name={name}")),
    )
    .default_backoff()
    .map(|_| ());
    let pods = watcher::watcher(pods, watcher::Config::default().labels(selector))
        .default_backoff()
        .map(|_| ());
    futures::stream::select(workload.boxed(), pods.boxed())
}

/// Waits for the next event of `changes`, or fails once `deadline` has passed.
pub(super) async fn next_change(
    changes: &mut (impl Stream<Item = ()> + Unpin),
    deadline: Instant,
    timeout: Duration,
    workload: &str,
    last: &str,
) -> Result<()> {
    match tokio::time::timeout_at(deadline, changes.next()).await {
        Ok(Some(())) => {
            // One read for a burst of events (a list, a controller's several writes).
            while let Some(Some(())) = changes.next().now_or_never() {}
            Ok(())
        }
        Ok(None) | Err(_) => Err(CanaryError::TimedOut {
            what: format!("{workload}'s controller"),
            seconds: timeout.as_secs(),
            last: last.to_owned(),
        }),
    }
}

/// Waits for the next event of `changes` (a burst read as one); `false` once the stream
/// ends.
pub(crate) async fn changed(changes: &mut (impl Stream<Item = ()> + Unpin)) -> bool {
    match changes.next().await {
        Some(()) => {
            while let Some(Some(())) = changes.next().now_or_never() {}
            true
        }
        None => false,
    }
}
