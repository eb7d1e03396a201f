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

mod preview;
mod start;
mod view;
pub(crate) mod watch;

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, ResourceExt};
use serde_json::Value;
use tokio::time::Instant;

use canary_core::goal::Goal;
use canary_core::kind_machines::daemonset::DaemonSetGoal;
use canary_core::kind_machines::foreign::ForeignTemplate;
use canary_core::kind_machines::record::{DaemonSetRecord, StatefulSetRecord};
use canary_core::record::Owner;
use canary_core::rollout_math::CanarySize;

pub use self::preview::{KindPreview, preview};
pub use self::start::{
    daemonset_canary_nodes, daemonset_start, refuse_a_second_canary, statefulset_start,
};
pub use self::view::{Ends, KindRecord, KindView, Next, recorded, recorded_or_none};
use self::view::{record_text, set_record};
use self::watch::{changes_of, next_change, selector_of};
use crate::engine::mutation_point;
use crate::error::{CanaryError, Result};
use crate::kinds::{DaemonSetView, StatefulSetView};
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
pub(super) fn classify<V: KindView>(
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

pub(super) fn refused(why: String) -> CanaryError {
    CanaryError::Refused(format!("{why}; nothing was changed"))
}
