//! Publishing one Kubernetes Event about a Deployment: the leaf that both the
//! [`EventSink`](crate::events::EventSink) of a canary's moments and the notifier's failure
//! reports ([`crate::notify`]) publish through.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// Publishes Events about one Deployment as `kubectl-canary`. Failures are logged, never
/// fatal: an Event is a courtesy, the record is the source of truth.
#[derive(Clone)]
pub struct EventPublisher {
    recorder: Recorder,
    reference: ObjectReference,
}

impl EventPublisher {
    /// A publisher of events about `deployment`.
    pub fn new(client: &kube::Client, deployment: &Deployment) -> Self {
        Self::with_reference(client, deployment.object_ref(&()))
    }

    /// A publisher of events about any object (a StatefulSet, a DaemonSet), by its reference
    /// with its UID, so that `kubectl describe` shows them.
    pub fn for_object<K: Resource<DynamicType = ()>>(client: &kube::Client, object: &K) -> Self {
        Self::with_reference(client, object.object_ref(&()))
    }

    /// A publisher of events about `deploy/<name>` in `namespace`, without reading it.
    pub fn for_deployment(client: &kube::Client, namespace: &str, name: &str) -> Self {
        Self::with_reference(
            client,
            ObjectReference {
                api_version: Some("apps/v1".into()),
                kind: Some("Deployment".into()),
                namespace: Some(namespace.into()),
                name: Some(name.into()),
                ..Default::default()
            },
        )
    }

    fn with_reference(client: &kube::Client, reference: ObjectReference) -> Self {
        let reporter = Reporter {
            controller: "kubectl-canary".into(),
            instance: std::env::var("HOSTNAME").ok(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            reference,
        }
    }

    /// The Deployment's namespace.
    pub fn namespace(&self) -> &str {
        self.reference.namespace.as_deref().unwrap_or_default()
    }

    /// Publishes a Warning event.
    pub async fn warning(&self, reason: &str, note: impl Into<String>) {
        self.publish(EventType::Warning, reason, note.into()).await;
    }

    /// Publishes an event of `type_`; a note over the API's 1 kB is cut.
    pub async fn publish(&self, type_: EventType, reason: &str, mut note: String) {
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
