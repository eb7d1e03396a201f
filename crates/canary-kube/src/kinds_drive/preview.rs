//! `--dry-run`: what driving a record would do first on the workload as read, nothing
//! written.

use kube::ResourceExt;
use serde::Serialize;

use canary_core::kind_machines::foreign::ForeignTemplate;
use canary_core::release::{FieldChange, template_diff};

use super::classify;
use super::view::{KindRecord, KindView, Next, record_text};
use crate::error::{CanaryError, Result};

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
