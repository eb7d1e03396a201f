//! Kubernetes Events on the Deployment, so `kubectl describe deploy` and `kubectl get
//! events` show what kubectl-canary did.

use canary_core::verdict::{Verdict, verdict_event};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// Publishes Events about one Deployment. Failures are logged, never fatal: an Event is a
/// courtesy, the record is the source of truth.
#[derive(Clone)]
pub struct EventSink {
    recorder: Recorder,
    reference: k8s_openapi::api::core::v1::ObjectReference,
}

impl EventSink {
    /// A sink for events about `deployment`.
    pub fn new(client: &kube::Client, deployment: &Deployment) -> Self {
        let reporter = Reporter {
            controller: "kubectl-canary".into(),
            instance: std::env::var("HOSTNAME").ok(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            reference: deployment.object_ref(&()),
        }
    }

    /// Publishes a Normal event.
    pub async fn normal(&self, reason: &str, note: impl Into<String>) {
        self.publish(EventType::Normal, reason, note.into()).await;
    }

    /// Publishes a Warning event.
    pub async fn warning(&self, reason: &str, note: impl Into<String>) {
        self.publish(EventType::Warning, reason, note.into()).await;
    }

    /// Records an analysis verdict on the Deployment, as [`verdict_event`] maps it.
    pub async fn verdict(&self, verdict: &Verdict) {
        let event = verdict_event(verdict);
        let type_ = if event.warning {
            EventType::Warning
        } else {
            EventType::Normal
        };
        self.publish(type_, event.reason, event.note).await;
    }

    async fn publish(&self, type_: EventType, reason: &str, mut note: String) {
        // The API caps notes at 1 kB.
        if note.len() > 1000 {
            let mut cut = 1000;
            while !note.is_char_boundary(cut) {
                cut -= 1;
            }
            note.truncate(cut);
        }
        let event = Event {
            type_,
            reason: reason.to_string(),
            note: Some(note),
            action: reason.to_string(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, &self.reference).await {
            tracing::warn!(%error, reason, "could not publish a Kubernetes Event");
        }
    }
}

/// One Event kubectl-canary published about a Deployment, as read back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventLine {
    /// When it last happened (RFC 3339), as the API server has it.
    pub at: String,
    /// Normal or Warning.
    pub type_: String,
    /// The reason (CanaryStarted, AnalysisFailed, ...).
    pub reason: String,
    /// The note.
    pub note: String,
    /// How often it happened (Events of the same kind are counted in a series).
    pub count: i32,
}

/// When an Event last happened: the last of its series, else its last timestamp, its event
/// time, or when it was created (an Event fills some of these, by who reported it).
pub fn last_seen(
    event: &k8s_openapi::api::core::v1::Event,
) -> Option<k8s_openapi::jiff::Timestamp> {
    event
        .series
        .as_ref()
        .and_then(|s| s.last_observed_time.as_ref().map(|t| t.0))
        .or_else(|| event.last_timestamp.as_ref().map(|t| t.0))
        .or_else(|| event.event_time.as_ref().map(|t| t.0))
        .or_else(|| event.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// How often an Event happened (Events of the same kind are counted in a series).
pub fn count(event: &k8s_openapi::api::core::v1::Event) -> i32 {
    event
        .series
        .as_ref()
        .and_then(|s| s.count)
        .or(event.count)
        .unwrap_or(1)
}

/// The Events kubectl-canary published about `deployment` that the API server still keeps
/// (one hour by default), oldest first. Read through core/v1, whose field selector on the
/// involved object every API server supports.
pub async fn read_events(
    client: &kube::Client,
    namespace: &str,
    deployment: &str,
) -> crate::error::Result<Vec<EventLine>> {
    use k8s_openapi::api::core::v1::Event as ApiEvent;
    let api: kube::Api<ApiEvent> = kube::Api::namespaced(client.clone(), namespace);
    let params = kube::api::ListParams::default().fields(&format!(
        "involvedObject.kind=Deployment,involvedObject.name={deployment}"
    ));
    let list = api.list(&params).await.map_err(|e| {
        crate::error::CanaryError::api(format!("listing the Events of deploy/{deployment}"), e)
    })?;
    let mut lines: Vec<EventLine> = list
        .items
        .into_iter()
        .filter(|e| e.reporting_component.as_deref() == Some("kubectl-canary"))
        .map(|e| EventLine {
            at: last_seen(&e).map(|t| t.to_string()).unwrap_or_default(),
            count: count(&e),
            type_: e.type_.unwrap_or_default(),
            reason: e.reason.unwrap_or_default(),
            note: e.message.unwrap_or_default(),
        })
        .collect();
    lines.sort_by(|a, b| a.at.cmp(&b.at));
    Ok(lines)
}
