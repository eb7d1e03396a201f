//! Carrying out the StatefulSet and DaemonSet machines' decisions on the real objects: read
//! the view, decide, make the one write or the guarded deletions, and wait on watches of the
//! workload and its pods for the controller, until the goal is reached.
//!
//! Every write goes through the one writer ([`crate::write`]): a replace guarded by the
//! resourceVersion read, a pod deletion guarded by the pod's UID and resourceVersion; a
//! conflict is read again and decided again. After each change the crash hook
//! ([`crate::engine`]'s mutation point) runs, as for a Deployment.

use std::time::Duration;

use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::time::Instant;

use canary_core::goal::Goal;
use canary_core::kind_machines::daemonset::{
    self, DaemonSetDecision, DaemonSetGoal, DaemonSetIntent,
};
use canary_core::kind_machines::statefulset::{self, StatefulSetDecision, StatefulSetIntent};

use crate::engine::mutation_point;
use crate::error::{CanaryError, Result};
use crate::kinds::{DaemonSetView, StatefulSetView};
use crate::observe::label_selector_string;
use crate::write::{Writer, Written};

/// Drives StatefulSet `name`'s canary towards `goal`, writing as `writer`, for at most
/// `timeout`; `progress` hears each change made. Returns the view in which the goal was
/// reached.
///
/// ```no_run
/// # async fn example(client: kube::Client, intent: canary_core::kind_machines::statefulset::StatefulSetIntent)
/// # -> canary_kube::error::Result<()> {
/// use std::time::Duration;
/// use canary_core::goal::Goal;
/// use canary_kube::kinds_drive::drive_statefulset;
///
/// let held = drive_statefulset(&client, canary_kube::write::CLI, "shop", "db", &intent,
///     Goal::Hold { pods: 1 }, Duration::from_secs(300), &mut |change| println!("{change}")).await?;
/// # Ok(()) }
/// ```
#[allow(clippy::too_many_arguments)] // the drive's one entry point; each argument is a different thing
pub async fn drive_statefulset(
    client: &kube::Client,
    writer: Writer,
    namespace: &str,
    name: &str,
    intent: &StatefulSetIntent,
    goal: Goal,
    timeout: Duration,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<StatefulSetView> {
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let first = StatefulSetView::read(client, namespace, name).await?;
    let selector = label_selector_string(first.statefulset.spec.as_ref().map(|s| &s.selector));
    let mut changes = changes_of(sets.clone(), pods.clone(), name, &selector);
    let deadline = Instant::now() + timeout;
    let mut view = first;
    loop {
        let decision = statefulset::decide(intent, &view.observation(), goal);
        match &decision {
            StatefulSetDecision::Reached => return Ok(view),
            StatefulSetDecision::Stuck(stuck) => {
                return Err(CanaryError::WorkloadStuck {
                    workload: format!("sts/{name}"),
                    why: stuck.explain(name),
                });
            }
            StatefulSetDecision::Apply(change) => {
                let updated = view.changed(change)?;
                if let Written::Stored(_) = writer.replace_workload(&sets, &updated, "sts").await? {
                    mutation_point("statefulset write");
                    progress(&change.summary);
                }
            }
            StatefulSetDecision::DeletePods { ordinals, summary } => {
                for pod in view.pods_at(ordinals) {
                    if let Written::Stored(()) = writer.delete_pod(&pods, pod).await? {
                        mutation_point("statefulset pod deleted");
                    }
                }
                progress(summary);
            }
            StatefulSetDecision::Wait(waiting) => {
                let last = serde_json::to_string(waiting).unwrap_or_default();
                next_change(
                    &mut changes,
                    deadline,
                    timeout,
                    &format!("sts/{name}"),
                    &last,
                )
                .await?;
            }
        }
        view = StatefulSetView::read(client, namespace, name).await?;
    }
}

/// Drives DaemonSet `name`'s canary towards `goal`, as [`drive_statefulset`] does.
#[allow(clippy::too_many_arguments)] // the drive's one entry point; each argument is a different thing
pub async fn drive_daemonset(
    client: &kube::Client,
    writer: Writer,
    namespace: &str,
    name: &str,
    intent: &DaemonSetIntent,
    goal: &DaemonSetGoal,
    timeout: Duration,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<DaemonSetView> {
    let sets: Api<DaemonSet> = Api::namespaced(client.clone(), namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let first = DaemonSetView::read(client, namespace, name).await?;
    let selector = label_selector_string(first.daemonset.spec.as_ref().map(|s| &s.selector));
    let mut changes = changes_of(sets.clone(), pods.clone(), name, &selector);
    let deadline = Instant::now() + timeout;
    let mut view = first;
    loop {
        let decision = daemonset::decide(intent, &view.observation(), goal);
        match &decision {
            DaemonSetDecision::Reached => return Ok(view),
            DaemonSetDecision::TemplateChangedElsewhere => {
                return Err(CanaryError::WorkloadStuck {
                    workload: format!("ds/{name}"),
                    why: format!(
                        "the pod template of ds/{name} was changed by someone else during the canary; abort the \
                         canary to go back to the recorded stable version, or let their version roll out"
                    ),
                });
            }
            DaemonSetDecision::Apply(change) => {
                let updated = view.changed(change)?;
                if let Written::Stored(_) = writer.replace_workload(&sets, &updated, "ds").await? {
                    mutation_point("daemonset write");
                    progress(&change.summary);
                }
            }
            DaemonSetDecision::DeletePods { nodes, summary } => {
                for pod in view.pods_on(nodes) {
                    if let Written::Stored(()) = writer.delete_pod(&pods, pod).await? {
                        mutation_point("daemonset pod deleted");
                    }
                }
                progress(summary);
            }
            DaemonSetDecision::Wait(waiting) => {
                let last = serde_json::to_string(waiting).unwrap_or_default();
                next_change(
                    &mut changes,
                    deadline,
                    timeout,
                    &format!("ds/{name}"),
                    &last,
                )
                .await?;
            }
        }
        view = DaemonSetView::read(client, namespace, name).await?;
    }
}

/// One stream of the events of workload `name` and of the pods of `selector`: any event
/// is a reason to read and decide again.
fn changes_of<K>(
    workloads: Api<K>,
    pods: Api<Pod>,
    name: &str,
    selector: &str,
) -> impl Stream<Item = ()> + Unpin + Send
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
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
async fn next_change(
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
