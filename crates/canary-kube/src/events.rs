//! Kubernetes Events on the Deployment, so `kubectl describe deploy` and `kubectl get
//! events` show what kubectl-canary did.

use canary_core::notify::{Moment, Notice};
use canary_core::record::CanaryRecord;
use canary_core::verdict::{Verdict, verdict_event};
use k8s_openapi::api::apps::v1::Deployment;
use kube::runtime::events::EventType;

use crate::event_publisher::EventPublisher;

/// Publishes Events about one Deployment. Failures are logged, never fatal: an Event is a
/// courtesy, the record is the source of truth. With a [`Notifier`](crate::notify::Notifier)
/// (`notifying`), the Events of a canary's moments also send the moment's notice: one place
/// maps a moment to both.
#[derive(Clone)]
pub struct EventSink {
    publisher: EventPublisher,
    notifier: crate::notify::Notifier,
}

impl EventSink {
    /// A sink for events about `deployment`.
    pub fn new(client: &kube::Client, deployment: &Deployment) -> Self {
        Self::publishing(EventPublisher::new(client, deployment))
    }

    /// A sink for events about `object` (a StatefulSet, a DaemonSet).
    pub fn for_object<K: kube::Resource<DynamicType = ()>>(
        client: &kube::Client,
        object: &K,
    ) -> Self {
        Self::publishing(EventPublisher::for_object(client, object))
    }

    /// A sink for events about `deploy/<name>` in `namespace`, without reading it.
    pub fn for_deployment(client: &kube::Client, namespace: &str, name: &str) -> Self {
        Self::publishing(EventPublisher::for_deployment(client, namespace, name))
    }

    fn publishing(publisher: EventPublisher) -> Self {
        Self {
            publisher,
            notifier: crate::notify::Notifier::none(),
        }
    }

    /// The same sink, sending the notices of moments through `notifier`.
    pub fn notifying(mut self, notifier: &crate::notify::Notifier) -> Self {
        self.notifier = notifier.clone();
        self
    }

    /// Publishes a Normal event for a moment of the canary `record` describes, and sends
    /// the moment's notice (its detail: the Event's note).
    pub async fn normal_moment(
        &self,
        reason: &str,
        note: impl Into<String>,
        moment: Moment,
        record: &CanaryRecord,
    ) {
        self.moment(EventType::Normal, reason, note.into(), moment, record)
            .await;
    }

    /// Publishes a Warning event for a moment, and sends its notice, as
    /// [`EventSink::normal_moment`].
    pub async fn warning_moment(
        &self,
        reason: &str,
        note: impl Into<String>,
        moment: Moment,
        record: &CanaryRecord,
    ) {
        self.moment(EventType::Warning, reason, note.into(), moment, record)
            .await;
    }

    async fn moment(
        &self,
        type_: EventType,
        reason: &str,
        note: String,
        moment: Moment,
        record: &CanaryRecord,
    ) {
        self.notifier.notify(self.notice(moment, record, &note));
        self.publish(type_, reason, note).await;
    }

    /// Records an analysis verdict about the canary `record` describes ([`EventSink::verdict`])
    /// and sends its notice with the verdict's reasons.
    pub async fn verdict_moment(&self, verdict: &Verdict, record: &CanaryRecord) {
        let event = verdict_event(verdict);
        let moment = match verdict.decision {
            canary_core::verdict::Decision::Pass => Moment::AnalysisPassed,
            canary_core::verdict::Decision::Fail => Moment::AnalysisFailed,
            canary_core::verdict::Decision::Wait | canary_core::verdict::Decision::Inconclusive => {
                Moment::AnalysisInconclusive
            }
        };
        self.notifier.notify(
            self.notice(moment, record, &event.note)
                .with_verdict(verdict),
        );
        self.verdict(verdict).await;
    }

    /// The notice of `moment` about `record`, said by this sink's notifier now.
    pub fn notice(&self, moment: Moment, record: &CanaryRecord, detail: &str) -> Notice {
        Notice::about(
            moment,
            self.publisher.namespace(),
            record,
            self.notifier.sender(),
            &crate::store::now(),
            detail,
        )
    }

    /// The notifier of this sink (off unless set with [`EventSink::notifying`]).
    pub fn notifier(&self) -> &crate::notify::Notifier {
        &self.notifier
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

    async fn publish(&self, type_: EventType, reason: &str, note: String) {
        self.publisher.publish(type_, reason, note).await;
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
