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
