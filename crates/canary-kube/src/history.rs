//! The canary's history in the cluster ([`canary_core::history`]): a ConfigMap
//! `<deployment>.kubectl-canary-history` beside the record, owned by the Deployment (so
//! garbage-collected with it), kept after the canary ends so a report can be made later,
//! from any machine.
//!
//! Display only: nothing is ever written to a Deployment from it. Anyone who may write
//! ConfigMaps may edit it; the report says so. Writing it is a courtesy: a failure is
//! returned for a warning, never a reason to fail a command.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::PostParams;
use kube::{Api, ResourceExt};

use canary_core::history::{CanaryHistory, HISTORY_SCHEMA};

use crate::error::{CanaryError, Result, is_status};
use crate::store::{DEPLOYMENT_LABEL, MANAGED_BY_LABEL, deployment_label_value};

/// The key of the history in the ConfigMap's data.
pub const HISTORY_KEY: &str = "history.json";

/// How often a write is tried again after someone else's write in between.
const CONFLICT_RETRIES: usize = 4;

/// The longest a note in the history may hold up a command that is done otherwise: the
/// client retries within `--timeout` (minutes), far too long for a courtesy.
pub const NOTE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs a history write within [`NOTE_TIMEOUT`]; a warning if it failed or took too long.
async fn within_note_timeout(
    what: &str,
    write: impl std::future::Future<Output = Result<()>>,
) -> Option<String> {
    match tokio::time::timeout(NOTE_TIMEOUT, write).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("{what} was not added to the canary history: {e}")),
        Err(_) => Some(format!(
            "{what} was not added to the canary history: no answer within {}s",
            NOTE_TIMEOUT.as_secs()
        )),
    }
}

/// The name of a Deployment's history ConfigMap.
pub fn history_name(deployment: &str) -> String {
    format!("{deployment}.kubectl-canary-history")
}

/// What a read of the history found.
#[derive(Debug, Clone)]
pub enum HistoryRead {
    /// No history ConfigMap.
    Missing,
    /// A history, as stored.
    Found(Box<CanaryHistory>),
    /// A ConfigMap that cannot be read as a history (edited, or another version's).
    Unreadable(String),
}

/// Reads and writes the history of one Deployment.
#[derive(Clone)]
pub struct HistoryStore {
    api: Api<ConfigMap>,
    deployment: String,
}

impl HistoryStore {
    /// The history of `deployment` in `namespace`.
    pub fn new(client: &kube::Client, namespace: &str, deployment: &str) -> Self {
        Self {
            api: Api::namespaced(client.clone(), namespace),
            deployment: deployment.to_string(),
        }
    }

    /// The ConfigMap's name.
    pub fn name(&self) -> String {
        history_name(&self.deployment)
    }

    /// Reads the history.
    pub async fn read(&self) -> Result<HistoryRead> {
        Ok(match self.get().await? {
            None => HistoryRead::Missing,
            Some(cm) => decode(&cm),
        })
    }

    async fn get(&self) -> Result<Option<ConfigMap>> {
        self.api
            .get_opt(&self.name())
            .await
            .map_err(|e| CanaryError::api(format!("reading the canary history {}", self.name()), e))
    }

    /// Changes the history of the canary started at `started_at` (the record's
    /// `startedAt`, `None` when no record is left) of `deployment` with `change`, creating it
    /// if missing and starting afresh for a new canary or a re-created Deployment. An
    /// unreadable history is replaced. Without `create_if_missing`, a missing history stays
    /// missing (nothing is written). Retried when someone else wrote in between.
    pub async fn update(
        &self,
        deployment: &Deployment,
        started_at: Option<&str>,
        create_if_missing: bool,
        change: impl Fn(&mut CanaryHistory),
    ) -> Result<()> {
        let uid = deployment.uid().unwrap_or_default();
        for _ in 0..CONFLICT_RETRIES {
            let current = self.get().await?;
            if current.is_none() && !create_if_missing {
                return Ok(());
            }
            let history = match current.as_ref().map(decode) {
                Some(HistoryRead::Found(history)) => *history,
                _ => CanaryHistory::new(&self.deployment, &uid),
            };
            let mut history = history.continued_for(&uid, started_at);
            change(&mut history);
            history.bound();
            let result = match &current {
                None => self
                    .api
                    .create(
                        &PostParams::default(),
                        &self.config_map(&history, deployment, None),
                    )
                    .await
                    .map(|_| ()),
                Some(cm) => self
                    .api
                    .replace(
                        &self.name(),
                        &PostParams::default(),
                        &self.config_map(&history, deployment, cm.resource_version()),
                    )
                    .await
                    .map(|_| ()),
            };
            match result {
                Ok(()) => return Ok(()),
                Err(e) if is_status(&e, 409) => continue,
                Err(e) => {
                    return Err(CanaryError::api(
                        format!("writing the canary history {}", self.name()),
                        e,
                    ));
                }
            }
        }
        Err(CanaryError::Refused(format!(
            "the canary history {} kept changing while it was written",
            self.name()
        )))
    }

    fn config_map(
        &self,
        history: &CanaryHistory,
        owner: &Deployment,
        resource_version: Option<String>,
    ) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(self.name()),
                labels: Some(BTreeMap::from([
                    (MANAGED_BY_LABEL.0.into(), MANAGED_BY_LABEL.1.into()),
                    (
                        DEPLOYMENT_LABEL.into(),
                        deployment_label_value(&self.deployment),
                    ),
                ])),
                owner_references: Some(vec![OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "Deployment".into(),
                    name: owner.name_any(),
                    uid: owner.uid().unwrap_or_default(),
                    controller: Some(false),
                    block_owner_deletion: Some(false),
                }]),
                resource_version,
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                HISTORY_KEY.to_string(),
                serde_json::to_string(history).expect("a history always serializes"),
            )])),
            ..Default::default()
        }
    }
}

fn decode(cm: &ConfigMap) -> HistoryRead {
    let Some(text) = cm.data.as_ref().and_then(|d| d.get(HISTORY_KEY)) else {
        return HistoryRead::Unreadable(format!("no {HISTORY_KEY} key"));
    };
    match serde_json::from_str::<CanaryHistory>(text) {
        Ok(history) if history.schema == HISTORY_SCHEMA => HistoryRead::Found(Box::new(history)),
        Ok(history) => HistoryRead::Unreadable(format!(
            "schema {} written by another version of kubectl-canary (this one reads {HISTORY_SCHEMA})",
            history.schema
        )),
        Err(e) => HistoryRead::Unreadable(format!("{HISTORY_KEY}: {e}")),
    }
}

/// Adds an analysis round to the history of the canary `target` names: the verdict, the
/// pods on each side and the canary's share of Ready pods in `view`. `started_at` is the
/// checked record's start: without a record, a round is added only to a history that
/// exists (an analysis of a Deployment without a canary writes nothing). Returns a warning
/// when the history could not be written (the verdict stands regardless).
pub async fn note_round(
    client: &kube::Client,
    view: &crate::observe::DeploymentView,
    started_at: Option<&str>,
    target: &crate::analysis::AnalysisTarget,
    verdict: &canary_core::verdict::Verdict,
) -> Option<String> {
    let side = |hash: &str| {
        let pods = view.pods_with_hash(hash);
        let ready = pods
            .iter()
            .filter(|p| crate::observe::pod_is_ready(p))
            .count();
        (pods.len(), ready)
    };
    let (canary_pods, canary_ready) = side(&target.canary.hash);
    let (stable_pods, stable_ready) = side(&target.stable.hash);
    let round = canary_core::history::AnalysisRound {
        at: crate::store::now(),
        canary_replica_set: target.canary.revision.clone(),
        stable_replica_set: target.stable.revision.clone(),
        canary_pods,
        stable_pods,
        traffic_share: (canary_ready + stable_ready > 0)
            .then(|| canary_ready as f64 / (canary_ready + stable_ready) as f64),
        verdict: verdict.clone(),
    };
    let store = HistoryStore::new(client, &target.namespace, &target.workload.name);
    let write = store.update(
        &view.deployment,
        started_at,
        started_at.is_some(),
        |history| history.add_round(round.clone()),
    );
    within_note_timeout("the analysis round", write).await
}

/// What a command last saw of its Deployment and record: enough to note the command in
/// the history without reading them again.
#[derive(Debug, Clone)]
pub struct KnownState {
    /// The Deployment (the history's owner).
    pub owner: Deployment,
    /// The canary record, if one is left.
    pub record: Option<canary_core::record::CanaryRecord>,
}

/// Adds a command run to the history of `deployment`'s canary, with the phase lines of its
/// record (if any is left). Without a record, only a history that exists is added to: a
/// command refused on a Deployment without a canary writes nothing. `known`: what the
/// command last saw of the Deployment and its record (its live view, caught up with its
/// own writes); without it they are read. Returns a warning when it could not (ConfigMaps
/// may not be written, no answer within [`NOTE_TIMEOUT`]...); the command's result stands
/// regardless.
pub async fn note_command(
    client: &kube::Client,
    namespace: &str,
    deployment: &str,
    command_line: &[String],
    exit_code: i32,
    known: Option<KnownState>,
) -> Option<String> {
    let write = async {
        let (owner, record) = match known {
            Some(known) => (known.owner, known.record),
            None => {
                let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
                // No Deployment, nothing to keep a history for.
                let Some(owner) = deployments
                    .get_opt(deployment)
                    .await
                    .map_err(|e| CanaryError::api(format!("reading deploy/{deployment}"), e))?
                else {
                    return Ok(());
                };
                // The record's phase lines are display only here; an unreadable record adds
                // none.
                let record = crate::store::RecordStore::new(client, namespace, deployment)
                    .get()
                    .await
                    .ok()
                    .flatten()
                    .map(|stored| stored.record);
                (owner, record)
            }
        };
        let run = canary_core::history::CommandRun {
            at: crate::store::now(),
            command_line: canary_core::history::redact_command_line(command_line),
            exit_code,
        };
        let store = HistoryStore::new(client, namespace, deployment);
        store
            .update(
                &owner,
                record.as_ref().map(|r| r.started_at.as_str()),
                record.is_some(),
                |history| {
                    if let Some(record) = &record {
                        history.merge_phases(&record.history);
                    }
                    history.add_command(run.clone());
                },
            )
            .await
    };
    within_note_timeout("the command", write).await
}
