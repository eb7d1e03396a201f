//! What a report of a canary shows, read from the cluster: the checked status (trusted
//! sources), the Deployment's own conditions, the tool's Events and the history
//! ([`crate::history`]). Rendering is the binary's (`output::report`).

use serde::Serialize;

use crate::engine::Engine;
use crate::error::Result;
use crate::events::{EventLine, read_events};
use crate::history::{HistoryRead, HistoryStore};
use crate::status::StatusReport;

/// One condition of the Deployment's status, as the Deployment controller set it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionLine {
    /// Available, Progressing, ReplicaFailure.
    pub type_: String,
    /// True, False, Unknown.
    pub status: String,
    /// Its reason.
    pub reason: String,
    /// Its message.
    pub message: String,
    /// When it last changed (RFC 3339).
    pub last_transition: String,
}

/// Everything a report shows, each part with where it comes from.
#[derive(Debug, Clone)]
pub struct ReportData {
    /// The namespace.
    pub namespace: String,
    /// The Deployment's name.
    pub deployment: String,
    /// The Deployment's UID (a history of a deleted namesake carries another).
    pub deployment_uid: String,
    /// The status now, built from the Deployment, its ReplicaSets and pods and the record
    /// checked against the seal (see [`crate::trust`]).
    pub status: StatusReport,
    /// The Deployment's conditions now.
    pub conditions: Vec<ConditionLine>,
    /// The history ConfigMap, as read.
    pub history: HistoryRead,
    /// The history ConfigMap's name.
    pub history_name: String,
    /// The record ConfigMap's name.
    pub record_name: String,
    /// The tool's Events on the Deployment, or why they could not be read.
    pub events: std::result::Result<Vec<EventLine>, String>,
    /// When the data was read (RFC 3339).
    pub read_at: String,
}

/// Reads what a report of the canary on `engine`'s Deployment shows. Only the Deployment
/// must be readable; Events that cannot be listed are reported as such.
pub async fn gather(engine: &Engine) -> Result<ReportData> {
    let (state, view) = engine.canary_state().await?;
    let mut status =
        StatusReport::for_state(engine.namespace(), &view, &state, &engine.store().name());
    // The problems with their Events, the last verdict and the API server's clock.
    crate::problems::Reads::read(engine.client(), engine.namespace(), &view.name())
        .await
        .apply(&mut status);
    let conditions = view
        .deployment
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|c| ConditionLine {
            type_: c.type_,
            status: c.status,
            reason: c.reason.unwrap_or_default(),
            message: c.message.unwrap_or_default(),
            last_transition: c
                .last_transition_time
                .map(|t| t.0.to_string())
                .unwrap_or_default(),
        })
        .collect();
    let deployment = view.name();
    let history_store = HistoryStore::new(engine.client(), engine.namespace(), &deployment);
    let history = history_store.read().await?;
    let events = read_events(engine.client(), engine.namespace(), &deployment)
        .await
        .map_err(|e| e.to_string());
    Ok(ReportData {
        namespace: engine.namespace().to_string(),
        deployment,
        deployment_uid: kube::ResourceExt::uid(&view.deployment).unwrap_or_default(),
        status,
        conditions,
        history,
        history_name: history_store.name(),
        record_name: engine.store().name(),
        events,
        read_at: crate::store::now(),
    })
}
