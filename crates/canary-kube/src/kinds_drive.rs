//! Starting and carrying out StatefulSet and DaemonSet canaries on the real objects: read
//! the view, decide, make the one write or the guarded deletions, and wait on watches of the
//! workload and its pods for the controller, until the goal is reached.
//!
//! The canary's record lives in an annotation of the workload
//! ([`canary_core::kind_machines::record`]) and is written in the same update as each change
//! (with the goal of the command); the last write of a promote or an abort removes it. Every
//! write goes through the one writer ([`crate::write`]): a replace guarded by the
//! resourceVersion read, a pod deletion guarded by the pod's UID and resourceVersion; a
//! conflict is read again and decided again. After each change the crash hook
//! ([`crate::engine`]'s mutation point) runs, as for a Deployment: a run stopped anywhere is
//! continued by the next command from the record and the pods.

use std::fmt::Debug;
use std::time::Duration;

use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::time::Instant;

use canary_core::goal::Goal;
use canary_core::kind_machines::daemonset::{
    self, DaemonSetDecision, DaemonSetGoal, DaemonSetIntent,
};
use canary_core::kind_machines::foreign::{ForeignTemplate, foreign_template};
use canary_core::kind_machines::record::{
    DaemonSetRecord, StatefulSetRecord, WORKLOAD_RECORD_ANNOTATION, WORKLOAD_RECORD_SCHEMA,
    WorkloadRecord,
};
use canary_core::kind_machines::statefulset::{self, StatefulSetDecision, StatefulSetIntent};
use canary_core::record::Owner;
use canary_core::release::{FieldChange, template_diff};
use canary_core::rollout_math::{CanarySize, plan_daemonset_canary, plan_statefulset_canary};

use crate::engine::mutation_point;
use crate::error::{CanaryError, Result};
use crate::kinds::{DaemonSetView, StatefulSetView};
use crate::observe::label_selector_string;
use crate::write::{Writer, Written};

/// How a drive of either kind is bounded, who writes, and who hears of it.
pub struct KindDrive<'a> {
    /// The client.
    pub client: &'a kube::Client,
    /// Who writes.
    pub writer: Writer,
    /// The namespace.
    pub namespace: &'a str,
    /// Longest total wait for the controller.
    pub timeout: Duration,
    /// Hears each change made, in words.
    pub progress: &'a mut (dyn FnMut(&str) + Send),
}

/// The record a canary of `size` pods running `canary_template` on the StatefulSet of
/// `view` starts with: refused (nothing written) when a canary already runs on it, when the
/// plan refuses it, or when the template does not change.
pub fn statefulset_start(
    view: &StatefulSetView,
    canary_template: Value,
    size: CanarySize,
    owner: Owner,
    now: String,
) -> Result<StatefulSetRecord> {
    let workload = view.workload();
    refuse_a_second_canary(view)?;
    let facts = view.facts();
    let canary = plan_statefulset_canary(&facts, size).map_err(|e| refused(e.to_string()))?;
    let original = view.observation().template;
    refuse_no_change(&original, &canary_template, &workload)?;
    Ok(StatefulSetRecord {
        schema: WORKLOAD_RECORD_SCHEMA,
        workload_uid: view.statefulset.uid().unwrap_or_default(),
        intent: StatefulSetIntent {
            original_template: original,
            canary_template,
            original_partition: facts.partition,
            stable_revision: facts.update_revision,
        },
        goal: Goal::Hold { pods: canary.pods },
        started_by: owner,
        started_at: now,
    })
}

/// Starts a canary of `size` pods running `canary_template` on the StatefulSet of `view`:
/// refused as [`statefulset_start`] says; otherwise recorded and held.
pub async fn start_statefulset(
    drive: &mut KindDrive<'_>,
    view: &StatefulSetView,
    canary_template: Value,
    size: CanarySize,
    owner: Owner,
    now: String,
) -> Result<StatefulSetView> {
    let record = statefulset_start(view, canary_template, size, owner, now)?;
    drive_record(drive, &view.statefulset.name_any(), record).await
}

/// Drives the canary recorded on StatefulSet `name` towards `goal`. Returns the view in
/// which the goal was reached (after a promote or an abort, with the record removed).
///
/// ```no_run
/// # async fn example(client: kube::Client) -> canary_kube::error::Result<()> {
/// use std::time::Duration;
/// use canary_core::goal::Goal;
/// use canary_kube::kinds_drive::{KindDrive, drive_statefulset};
///
/// let mut drive = KindDrive {
///     client: &client, writer: canary_kube::write::CLI, namespace: "shop",
///     timeout: Duration::from_secs(300), progress: &mut |change| println!("{change}"),
/// };
/// drive_statefulset(&mut drive, "db", Goal::Abort).await?;
/// # Ok(()) }
/// ```
pub async fn drive_statefulset(
    drive: &mut KindDrive<'_>,
    name: &str,
    goal: Goal,
) -> Result<StatefulSetView> {
    let view = StatefulSetView::read(drive.client, drive.namespace, name).await?;
    let mut record: StatefulSetRecord = recorded_or_none(&view)?;
    record.goal = goal;
    drive_record(drive, name, record).await
}

/// The record a canary on `nodes` running `canary_template` on the DaemonSet of `view`
/// starts with: refused (nothing written) when a canary already runs on it or when the
/// template does not change. The nodes come from
/// [`canary_core::rollout_math::plan_daemonset_canary`].
pub fn daemonset_start(
    view: &DaemonSetView,
    canary_template: Value,
    nodes: Vec<String>,
    owner: Owner,
    now: String,
) -> Result<DaemonSetRecord> {
    let workload = view.workload();
    refuse_a_second_canary(view)?;
    let observed = view.observation();
    refuse_no_change(&observed.template, &canary_template, &workload)?;
    Ok(DaemonSetRecord {
        schema: WORKLOAD_RECORD_SCHEMA,
        workload_uid: view.daemonset.uid().unwrap_or_default(),
        intent: DaemonSetIntent {
            original_template: observed.template,
            canary_template,
            original_strategy: observed.strategy,
            stable_revision: observed.template_revision,
        },
        goal: DaemonSetGoal::Hold { nodes },
        started_by: owner,
        started_at: now,
    })
}

/// Starts a canary on `nodes` running `canary_template` on the DaemonSet of `view`: refused
/// as [`daemonset_start`] says; otherwise recorded and held.
pub async fn start_daemonset(
    drive: &mut KindDrive<'_>,
    view: &DaemonSetView,
    canary_template: Value,
    nodes: Vec<String>,
    owner: Owner,
    now: String,
) -> Result<DaemonSetView> {
    let record = daemonset_start(view, canary_template, nodes, owner, now)?;
    drive_record(drive, &view.daemonset.name_any(), record).await
}

/// The nodes of a DaemonSet canary of `size` on `view`, among `allowed` (`--nodes`) if
/// given; refused (nothing written) as [`plan_daemonset_canary`] says.
pub fn daemonset_canary_nodes(
    view: &DaemonSetView,
    size: CanarySize,
    allowed: Option<&std::collections::BTreeSet<String>>,
) -> Result<Vec<String>> {
    plan_daemonset_canary(&view.facts(), size, allowed)
        .map(|c| c.nodes)
        .map_err(|e| refused(e.to_string()))
}

/// Drives the canary recorded on DaemonSet `name` towards `goal`, as [`drive_statefulset`].
pub async fn drive_daemonset(
    drive: &mut KindDrive<'_>,
    name: &str,
    goal: DaemonSetGoal,
) -> Result<DaemonSetView> {
    let view = DaemonSetView::read(drive.client, drive.namespace, name).await?;
    let mut record: DaemonSetRecord = recorded_or_none(&view)?;
    record.goal = goal;
    drive_record(drive, name, record).await
}

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
    /// Someone else's template, if the workload has one: `recorded` whether this canary's
    /// record is on it, `aborting` whether that record's goal is an abort.
    fn foreign(
        &self,
        record: &Self::Record,
        recorded: bool,
        aborting: bool,
    ) -> Option<ForeignTemplate>;
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
        Ok(
            match statefulset::decide(&record.intent, &self.observation(), record.goal) {
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
            },
        )
    }

    fn foreign(
        &self,
        record: &StatefulSetRecord,
        recorded: bool,
        aborting: bool,
    ) -> Option<ForeignTemplate> {
        let intent = &record.intent;
        let observed = self.observation().template;
        foreign_template(
            &intent.original_template,
            &intent.canary_template,
            &observed,
            recorded,
            aborting,
        )
    }

    fn hand_over(&self, record: &StatefulSetRecord) -> Result<Next<StatefulSet>> {
        Ok(
            match statefulset::hand_over(&record.intent, &self.observation()) {
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
                StatefulSetDecision::Reached | StatefulSetDecision::Stuck(_) => Next::Reached,
            },
        )
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
        let name = self.daemonset.name_any();
        Ok(
            match daemonset::decide(&record.intent, &self.observation(), &record.goal) {
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
            },
        )
    }

    fn foreign(
        &self,
        record: &DaemonSetRecord,
        recorded: bool,
        aborting: bool,
    ) -> Option<ForeignTemplate> {
        let intent = &record.intent;
        let observed = self.observation().template;
        foreign_template(
            &intent.original_template,
            &intent.canary_template,
            &observed,
            recorded,
            aborting,
        )
    }

    fn hand_over(&self, record: &DaemonSetRecord) -> Result<Next<DaemonSet>> {
        Ok(
            match daemonset::hand_over(&record.intent, &self.observation()) {
                DaemonSetDecision::Apply(change) => Next::Write {
                    object: self.changed(&change)?,
                    summary: change.summary,
                },
                _ => Next::Reached,
            },
        )
    }
}

/// What a command would do first on a workload, and nothing done: `--dry-run`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KindPreview {
    /// `sts/NAME` or `ds/NAME`.
    pub workload: String,
    /// The first step, in words (the machine's decision on the workload as it is).
    pub first: String,
    /// The fields of the workload's spec that step writes.
    pub changes: Vec<FieldChange>,
    /// Whether that step writes the canary's record (the annotation) too.
    pub records: bool,
    /// The pods that step deletes.
    pub deletions: Vec<String>,
    /// Someone else's template on the workload, which the command would answer (and close
    /// the canary with); absent when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub foreign: Option<ForeignTemplate>,
}

/// What driving `record` on the workload of `view` would do first: the machine's decision
/// on the workload as read, with the fields it would write, and nothing written. A decision
/// a person must make is the error the drive would end with.
pub fn preview<V: KindView>(view: &V, record: &V::Record) -> Result<KindPreview> {
    let workload = view.workload();
    let mut record = record.clone();
    let foreign = classify(view, &mut record, record_text(view.object()))?;
    let record = &record;
    let ours = record.text();
    let recorded = record_text(view.object()) == Some(ours.as_str());
    let mut preview = KindPreview {
        workload: workload.clone(),
        first: String::new(),
        changes: Vec::new(),
        records: !recorded,
        deletions: Vec::new(),
        foreign,
    };
    let next = match foreign {
        Some(ForeignTemplate::ReplacedByOtherVersion) => view.hand_over(record)?,
        _ => view.next(record)?,
    };
    match next {
        Next::Stuck(why) => return Err(CanaryError::WorkloadStuck { workload, why }),
        Next::Write { object, summary } => {
            let spec = |o: &V::Object| serde_json::to_value(o).unwrap_or_default()["spec"].clone();
            preview.changes = template_diff(&spec(view.object()), &spec(&object))
                .into_iter()
                .map(|c| FieldChange {
                    path: format!("spec.{}", c.path),
                    ..c
                })
                .collect();
            preview.first = summary;
        }
        Next::Delete { pods, summary } => {
            preview.deletions = pods.iter().map(|p| p.name_any()).collect();
            preview.first = summary;
        }
        Next::Wait { last } => {
            preview.first = format!("wait for the controller ({last})");
        }
        Next::Reached if record.ends() && !recorded && record_text(view.object()).is_none() => {
            preview.records = false;
            preview.first = "nothing: the goal is reached".into();
        }
        Next::Reached if record.ends() => {
            preview.records = false;
            preview.first = "the canary is over: its record removed".into();
        }
        Next::Reached => preview.first = "nothing: the goal is reached".into(),
    }
    Ok(preview)
}

/// The drive of either kind towards `record`'s goal: the record kept on the workload with
/// each write; another run's record (it changed under this one) stops this one.
pub async fn drive_record<V: KindView>(
    drive: &mut KindDrive<'_>,
    name: &str,
    mut record: V::Record,
) -> Result<V> {
    let api: Api<V::Object> = Api::namespaced(drive.client.clone(), drive.namespace);
    let pods: Api<Pod> = Api::namespaced(drive.client.clone(), drive.namespace);
    let mut view = V::read(drive.client, drive.namespace, name).await?;
    let workload = view.workload();
    let selector = selector_of(view.object());
    let mut changes = changes_of(api.clone(), pods.clone(), name, &selector);
    let deadline = Instant::now() + drive.timeout;
    let mut ours = record.text();
    let mut written = false;
    // Someone else's template, once seen: the run answers it and closes the canary.
    let mut foreign: Option<ForeignTemplate> = None;
    loop {
        let on_workload = record_text(view.object()).map(str::to_owned);
        if written && on_workload.as_deref() != Some(ours.as_str()) {
            return Err(CanaryError::Refused(format!(
                "the canary record on {workload} was changed by another run (or removed) while this one ran; \
                 this run stopped and changed nothing more; see `kubectl canary status {workload}`"
            )));
        }
        if foreign.is_none() {
            foreign = classify(&view, &mut record, on_workload.as_deref())?;
            match foreign {
                Some(ForeignTemplate::RevertedToStable) => {
                    (drive.progress)(&format!(
                        "someone else put the stable pod template of {workload} back: aborting the canary"
                    ));
                    ours = record.text();
                    written = false;
                }
                Some(ForeignTemplate::ReplacedByOtherVersion) => {
                    (drive.progress)(&format!(
                        "someone else set another pod template on {workload}: releasing the canary's brake"
                    ));
                    ours = record.text();
                    written = false;
                }
                None => {}
            }
        }
        let next = match foreign {
            Some(ForeignTemplate::ReplacedByOtherVersion) => view.hand_over(&record)?,
            _ => view.next(&record)?,
        };
        // What this command asks is on the workload before it does anything but write it
        // there; the end of a promote or an abort removes the record instead.
        let ends = record.ends() || foreign.is_some();
        let record_first = on_workload.as_deref() != Some(ours.as_str())
            && !(ends && matches!(next, Next::Reached));
        match next {
            Next::Stuck(why) => return Err(CanaryError::WorkloadStuck { workload, why }),
            Next::Write {
                mut object,
                summary,
            } => {
                set_record(&mut object, Some(&ours));
                if let Written::Stored(_) = drive
                    .writer
                    .replace_workload(&api, &object, short(&workload))
                    .await?
                {
                    written = true;
                    mutation_point("workload write");
                    (drive.progress)(&summary);
                }
            }
            _ if record_first => {
                let mut object = view.object().clone();
                set_record(&mut object, Some(&ours));
                if let Written::Stored(_) = drive
                    .writer
                    .replace_workload(&api, &object, short(&workload))
                    .await?
                {
                    written = true;
                    mutation_point("workload record");
                    (drive.progress)("recorded on the workload: what this command asks");
                }
            }
            Next::Delete {
                pods: victims,
                summary,
            } => {
                for pod in &victims {
                    if let Written::Stored(()) = drive.writer.delete_pod(&pods, pod).await? {
                        mutation_point("pod deleted");
                        (drive.progress)(&format!("pod/{} deleted: {summary}", pod.name_any()));
                    }
                }
            }
            Next::Wait { last } => {
                next_change(&mut changes, deadline, drive.timeout, &workload, &last).await?
            }
            Next::Reached if !ends || on_workload.is_none() => {
                return finished(view, &workload, foreign);
            }
            Next::Reached => {
                let mut object = view.object().clone();
                set_record(&mut object, None);
                if let Written::Stored(_) = drive
                    .writer
                    .replace_workload(&api, &object, short(&workload))
                    .await?
                {
                    mutation_point("workload record removed");
                    (drive.progress)("the canary is over: its record removed");
                    // The removal is this run's own last write.
                    let view = V::read(drive.client, drive.namespace, name).await?;
                    return finished(view, &workload, foreign);
                }
            }
        }
        view = V::read(drive.client, drive.namespace, name).await?;
    }
}

/// Someone else's template on the workload of `view`, classified before anything is
/// decided: put back, `record` becomes an abort (for an `abort`, that is no one else's
/// doing); another version, `record` becomes the one on the workload (the brake is released
/// as it recorded; an `abort` too, as it would otherwise write over their template). A
/// recorded abort left unfinished refuses any other command, which would write the canary
/// over it.
fn classify<V: KindView>(
    view: &V,
    record: &mut V::Record,
    on_workload: Option<&str>,
) -> Result<Option<ForeignTemplate>> {
    let workload = view.workload();
    let uid = view.object().uid().unwrap_or_default();
    let recorded = on_workload
        .map(|text| V::Record::read(text, &workload, &uid))
        .transpose()?;
    let recorded_abort = recorded.as_ref().is_some_and(KindRecord::aborts);
    let foreign = view.foreign(
        record,
        recorded.is_some(),
        recorded_abort || record.aborts(),
    );
    if recorded_abort && !record.aborts() && foreign.is_none() {
        return Err(CanaryError::Refused(format!(
            "an abort of the canary of {workload} was left unfinished; finish it with \
             `kubectl canary abort {workload}`; nothing was changed"
        )));
    }
    match foreign {
        Some(ForeignTemplate::RevertedToStable) => record.abort(),
        Some(ForeignTemplate::ReplacedByOtherVersion) => {
            if let Some(recorded) = recorded {
                *record = recorded;
            }
        }
        None => {}
    }
    Ok(foreign)
}

/// The end of a drive: the view, or the foreign template it answered.
fn finished<V>(view: V, workload: &str, foreign: Option<ForeignTemplate>) -> Result<V> {
    match foreign {
        Some(change) => Err(CanaryError::WorkloadForeign {
            workload: workload.to_owned(),
            change,
        }),
        None => Ok(view),
    }
}

fn short(workload: &str) -> &str {
    workload.split_once('/').map_or(workload, |(kind, _)| kind)
}

fn refused(why: String) -> CanaryError {
    CanaryError::Refused(format!("{why}; nothing was changed"))
}

/// Refuses (nothing written) a start on a workload a canary already runs on.
pub fn refuse_a_second_canary<V: KindView>(view: &V) -> Result<()> {
    match record_text(view.object()) {
        Some(_) => Err(CanaryError::WorkloadLocked {
            workload: view.workload(),
        }),
        None => Ok(()),
    }
}

fn refuse_no_change(original: &Value, canary: &Value, workload: &str) -> Result<()> {
    if original == canary {
        return Err(refused(format!(
            "the release leaves the pod template of {workload} as it is, so no pod would change"
        )));
    }
    Ok(())
}

/// The record annotation's value on `object`, if any.
fn record_text<K: Resource>(object: &K) -> Option<&str> {
    object
        .meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(WORKLOAD_RECORD_ANNOTATION))
        .map(String::as_str)
}

fn set_record<K: Resource>(object: &mut K, text: Option<&str>) {
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

fn selector_of<K: Serialize>(object: &K) -> String {
    let selector = serde_json::to_value(object)
        .ok()
        .and_then(|o| serde_json::from_value(o["spec"]["selector"].clone()).ok());
    label_selector_string(selector.as_ref())
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
