//! A live view of a Deployment, its ReplicaSets, its pods and its canary record, kept
//! current by watches.
//!
//! The engine decides on every change the controller makes; reading the three lists again
//! after each burst of events cost hundreds of requests per canary. Reflector stores fed by
//! one watch per kind cost three LISTs and three WATCHes for the whole wait.

use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::ResourceExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};

use crate::error::{CanaryError, Result};
use crate::observe::{DeploymentView, NamespaceApis, selector_string};
use crate::store::{RecordStore, StoredRecord};

/// Watch-fed stores of one Deployment's objects.
pub struct LiveView {
    name: String,
    deployments: Store<Deployment>,
    replica_sets: Store<ReplicaSet>,
    pods: Store<Pod>,
    records: Store<ConfigMap>,
    changes: Pin<Box<dyn Stream<Item = ()> + Send>>,
}

impl LiveView {
    /// Starts the watches and waits until each store holds its initial list.
    pub async fn start(
        apis: &NamespaceApis,
        records: &RecordStore,
        deployment: &Deployment,
    ) -> Result<Self> {
        let name = deployment.name_any();
        let selector = selector_string(deployment);
        let (deployments, deployments_writer) = reflector::store();
        let (replica_sets, replica_sets_writer) = reflector::store();
        let (pods, pods_writer) = reflector::store();
        let (record_maps, records_writer) = reflector::store();
        let by_name = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let by_selector = watcher::Config::default().labels(&selector);
        let changes = futures::stream::select_all([
            reflector::reflector(
                deployments_writer,
                watcher(apis.deployments.clone(), by_name),
            )
            .default_backoff()
            .map(|_| ())
            .boxed(),
            reflector::reflector(
                replica_sets_writer,
                watcher(apis.replica_sets.clone(), by_selector.clone()),
            )
            .default_backoff()
            .map(|_| ())
            .boxed(),
            reflector::reflector(pods_writer, watcher(apis.pods.clone(), by_selector))
                .default_backoff()
                .map(|_| ())
                .boxed(),
            reflector::reflector(
                records_writer,
                watcher(
                    records.api(),
                    watcher::Config::default().fields(&format!("metadata.name={}", records.name())),
                ),
            )
            .default_backoff()
            .map(|_| ())
            .boxed(),
        ]);
        let mut live = Self {
            name,
            deployments,
            replica_sets,
            pods,
            records: record_maps,
            changes: Box::pin(changes),
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
        tokio::pin!(ready);
        let deadline = tokio::time::sleep(Duration::from_secs(60));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut ready => return Ok(live),
                _ = &mut deadline => {
                    return Err(CanaryError::TimedOut {
                        what: format!("the watches of deploy/{} to start", live.name),
                        seconds: 60,
                        last: "no initial list".into(),
                    });
                }
                // The stores fill only while their streams are polled.
                _ = live.changes.next() => {}
            }
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

    /// Waits (at most `max`) until the watch has delivered the record at `version`, one
    /// this run wrote, so the next decision does not take its own write for another run's.
    pub async fn record_caught_up_with(&mut self, version: &str, max: Duration) {
        let deadline = tokio::time::Instant::now() + max;
        while self.record_version().as_deref() != Some(version)
            && tokio::time::Instant::now() < deadline
        {
            let _ = tokio::time::timeout_at(deadline, self.changes.next()).await;
        }
    }

    /// Waits for the next change (at most `max`), then lets a burst of events settle so it
    /// is decided on once.
    pub async fn changed(&mut self, max: Duration) {
        let _ = tokio::time::timeout(max, self.changes.next()).await;
        let settle = tokio::time::sleep(Duration::from_millis(30));
        tokio::pin!(settle);
        loop {
            tokio::select! {
                _ = &mut settle => return,
                _ = self.changes.next() => {}
            }
        }
    }

    /// Waits (at most `max`) until the watch has delivered the Deployment at `version`,
    /// the one an update of ours returned, so the next decision sees our own write.
    pub async fn caught_up_with(&mut self, version: &str, max: Duration) {
        let deadline = tokio::time::Instant::now() + max;
        while self.deployment_version().as_deref() != Some(version)
            && tokio::time::Instant::now() < deadline
        {
            let _ = tokio::time::timeout_at(deadline, self.changes.next()).await;
        }
    }
}
