//! What the generic drive needs of a kind: its view ([`KindView`]: the workload, the
//! machine's next step, someone else's template, the hand-over) and its record
//! ([`KindRecord`], the annotation on the workload), implemented for StatefulSets and
//! DaemonSets.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use canary_core::goal::Goal;
use canary_core::kind_machines::daemonset::{self, DaemonSetDecision, DaemonSetGoal};
use canary_core::kind_machines::foreign::{ForeignTemplate, foreign_template};
use canary_core::kind_machines::record::{
    DaemonSetRecord, StatefulSetRecord, WORKLOAD_RECORD_ANNOTATION, WorkloadRecord,
};
use canary_core::kind_machines::statefulset::{self, StatefulSetDecision};

use crate::error::{CanaryError, Result};
use crate::kinds::{DaemonSetView, StatefulSetView};

/// The record on the workload of `view`; none is an error telling how to start one.
pub fn recorded_or_none<V: KindView>(view: &V) -> Result<V::Record> {
    recorded(view)?.ok_or_else(|| CanaryError::NoWorkloadCanary {
        workload: view.workload(),
    })
}

/// The record on the workload of `view`, if it has one; a record that is not this
/// workload's (another UID) or cannot be read is an error.
pub fn recorded<V: KindView>(view: &V) -> Result<Option<V::Record>> {
    record_text(view.object())
        .map(|text| {
            V::Record::read(
                text,
                &view.workload(),
                &view.object().uid().unwrap_or_default(),
            )
        })
        .transpose()
}

/// What the generic drive needs of a kind's view.
pub trait KindView: Sized + Send {
    /// The workload object.
    type Object: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Serialize
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static;
    /// The kind's record.
    type Record: KindRecord;

    /// Reads the view of workload `name`.
    fn read(
        client: &kube::Client,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Self>> + Send;
    /// The workload.
    fn object(&self) -> &Self::Object;
    /// `sts/NAME` or `ds/NAME`.
    fn workload(&self) -> String;
    /// What the kind's machine decides next for `record`.
    fn next(&self, record: &Self::Record) -> Result<Next<Self::Object>>;
    /// The original and the canary template `record` holds.
    fn templates(record: &Self::Record) -> (&Value, &Value);
    /// The pod template now.
    fn template(&self) -> Value;
    /// Someone else's template, if the workload has one: `recorded` whether this canary's
    /// record is on it, `aborting` whether that record's goal is an abort.
    fn foreign(
        &self,
        record: &Self::Record,
        recorded: bool,
        aborting: bool,
    ) -> Option<ForeignTemplate> {
        let (original, canary) = Self::templates(record);
        foreign_template(original, canary, &self.template(), recorded, aborting)
    }
    /// The canary's brake released under someone else's template, one step at a time.
    fn hand_over(&self, record: &Self::Record) -> Result<Next<Self::Object>>;
}

/// What the generic drive needs of a kind's record.
pub trait KindRecord: Sized + Clone + Send + Sync {
    /// The record as its annotation's value.
    fn text(&self) -> String;
    /// Whether the goal ends the canary (a promote or an abort: the record is removed).
    fn ends(&self) -> bool;
    /// Whether the goal is an abort.
    fn aborts(&self) -> bool;
    /// The goal made an abort.
    fn abort(&mut self);
    /// Reads the record of `workload` with UID `uid`.
    fn read(text: &str, workload: &str, uid: &str) -> Result<Self>;
}

impl<I, G> KindRecord for WorkloadRecord<I, G>
where
    I: Serialize + DeserializeOwned + Clone + Send + Sync,
    G: Serialize + DeserializeOwned + Clone + Send + Sync + Ends,
{
    fn text(&self) -> String {
        self.to_annotation()
    }

    fn ends(&self) -> bool {
        self.goal.ends()
    }

    fn aborts(&self) -> bool {
        self.goal.is_abort()
    }

    fn abort(&mut self) {
        self.goal = G::abort();
    }

    fn read(text: &str, workload: &str, uid: &str) -> Result<Self> {
        Self::from_annotation(text, workload, uid).map_err(|e| CanaryError::Refused(e.to_string()))
    }
}

/// Whether a goal ends the canary, and the abort goal.
pub trait Ends {
    /// A promote or an abort.
    fn ends(&self) -> bool;
    /// An abort.
    fn is_abort(&self) -> bool;
    /// The abort goal.
    fn abort() -> Self;
}

impl Ends for Goal {
    fn ends(&self) -> bool {
        !matches!(self, Goal::Hold { .. })
    }

    fn is_abort(&self) -> bool {
        matches!(self, Goal::Abort)
    }

    fn abort() -> Self {
        Goal::Abort
    }
}

impl Ends for DaemonSetGoal {
    fn ends(&self) -> bool {
        !matches!(self, DaemonSetGoal::Hold { .. })
    }

    fn is_abort(&self) -> bool {
        matches!(self, DaemonSetGoal::Abort)
    }

    fn abort() -> Self {
        DaemonSetGoal::Abort
    }
}

/// A kind machine's decision, in the drive's terms.
pub enum Next<K> {
    /// Write the workload (as read, changed).
    Write {
        /// The workload to write.
        object: K,
        /// In words.
        summary: String,
    },
    /// Delete these pods (as read).
    Delete {
        /// The pods.
        pods: Vec<Pod>,
        /// In words.
        summary: String,
    },
    /// Wait for the controller; `last` says what for.
    Wait {
        /// What is awaited, as JSON.
        last: String,
    },
    /// The goal is reached.
    Reached,
    /// A person must decide.
    Stuck(String),
}

impl KindView for StatefulSetView {
    type Object = StatefulSet;
    type Record = StatefulSetRecord;

    async fn read(client: &kube::Client, namespace: &str, name: &str) -> Result<Self> {
        StatefulSetView::read(client, namespace, name).await
    }

    fn object(&self) -> &StatefulSet {
        &self.statefulset
    }

    fn workload(&self) -> String {
        format!("sts/{}", self.statefulset.name_any())
    }

    fn next(&self, record: &StatefulSetRecord) -> Result<Next<StatefulSet>> {
        self.carried_out(statefulset::decide(
            &record.intent,
            &self.observation(),
            record.goal,
        ))
    }

    fn templates(record: &StatefulSetRecord) -> (&Value, &Value) {
        (
            &record.intent.original_template,
            &record.intent.canary_template,
        )
    }

    fn template(&self) -> Value {
        self.observation().template
    }

    fn hand_over(&self, record: &StatefulSetRecord) -> Result<Next<StatefulSet>> {
        self.carried_out(statefulset::hand_over(&record.intent, &self.observation()))
    }
}

impl StatefulSetView {
    /// A machine's decision as the drive carries it out: the write, the pods as read.
    fn carried_out(&self, decision: StatefulSetDecision) -> Result<Next<StatefulSet>> {
        Ok(match decision {
            StatefulSetDecision::Apply(change) => Next::Write {
                object: self.changed(&change)?,
                summary: change.summary,
            },
            StatefulSetDecision::DeletePods { ordinals, summary } => Next::Delete {
                pods: self.pods_at(&ordinals).into_iter().cloned().collect(),
                summary,
            },
            StatefulSetDecision::Wait(waiting) => Next::Wait {
                last: serde_json::to_string(&waiting).unwrap_or_default(),
            },
            StatefulSetDecision::Reached => Next::Reached,
            StatefulSetDecision::Stuck(stuck) => {
                Next::Stuck(stuck.explain(&self.statefulset.name_any()))
            }
        })
    }
}

impl KindView for DaemonSetView {
    type Object = DaemonSet;
    type Record = DaemonSetRecord;

    async fn read(client: &kube::Client, namespace: &str, name: &str) -> Result<Self> {
        DaemonSetView::read(client, namespace, name).await
    }

    fn object(&self) -> &DaemonSet {
        &self.daemonset
    }

    fn workload(&self) -> String {
        format!("ds/{}", self.daemonset.name_any())
    }

    fn next(&self, record: &DaemonSetRecord) -> Result<Next<DaemonSet>> {
        self.carried_out(daemonset::decide(
            &record.intent,
            &self.observation(),
            &record.goal,
        ))
    }

    fn templates(record: &DaemonSetRecord) -> (&Value, &Value) {
        (
            &record.intent.original_template,
            &record.intent.canary_template,
        )
    }

    fn template(&self) -> Value {
        self.observation().template
    }

    fn hand_over(&self, record: &DaemonSetRecord) -> Result<Next<DaemonSet>> {
        self.carried_out(daemonset::hand_over(&record.intent, &self.observation()))
    }
}

impl DaemonSetView {
    /// A machine's decision as the drive carries it out: the write, the pods as read.
    fn carried_out(&self, decision: DaemonSetDecision) -> Result<Next<DaemonSet>> {
        let name = self.daemonset.name_any();
        Ok(match decision {
            DaemonSetDecision::Apply(change) => Next::Write {
                object: self.changed(&change)?,
                summary: change.summary,
            },
            DaemonSetDecision::DeletePods { nodes, summary } => Next::Delete {
                pods: self.pods_on(&nodes).into_iter().cloned().collect(),
                summary,
            },
            DaemonSetDecision::Wait(waiting) => Next::Wait {
                last: serde_json::to_string(&waiting).unwrap_or_default(),
            },
            DaemonSetDecision::Reached => Next::Reached,
            DaemonSetDecision::TemplateChangedElsewhere => Next::Stuck(format!(
                "the pod template of ds/{name} was changed by someone else during the canary; abort the \
                 canary to go back to the recorded stable version, or let their version roll out"
            )),
        })
    }
}

/// The record annotation's value on `object`, if any.
pub(super) fn record_text<K: Resource>(object: &K) -> Option<&str> {
    object
        .meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(WORKLOAD_RECORD_ANNOTATION))
        .map(String::as_str)
}

pub(super) fn set_record<K: Resource>(object: &mut K, text: Option<&str>) {
    let annotations = object
        .meta_mut()
        .annotations
        .get_or_insert_with(Default::default);
    match text {
        Some(text) => {
            annotations.insert(WORKLOAD_RECORD_ANNOTATION.to_owned(), text.to_owned());
        }
        None => {
            annotations.remove(WORKLOAD_RECORD_ANNOTATION);
        }
    }
}
