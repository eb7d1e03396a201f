//! The record of a StatefulSet or DaemonSet canary, kept in an annotation on the workload
//! itself and written in the same update as each change the canary makes to it.
//!
//! Why on the workload and not in a ConfigMap beside it (as a Deployment's record): whatever
//! the record says is written back to the workload (the stable template on abort), so it
//! must be something only the workload's writers can change (no confused deputy). An
//! annotation of the workload is exactly that: whoever can change it can change the
//! template directly, so trusting it gives nobody a right they do not have. And because it
//! is written in the same update as the change it describes, the record and the change
//! cannot part (a crash between them is impossible); a run that stops anywhere leaves a
//! workload whose record says what the next run must continue. A pod deletion is the one
//! change outside an update: it is decided again from the record and the pods, so it is
//! repeated, never lost.

use serde::{Deserialize, Serialize};

use crate::goal::Goal;
use crate::record::Owner;

use super::daemonset::{DaemonSetGoal, DaemonSetIntent};
use super::statefulset::StatefulSetIntent;

/// The workload annotation holding the record.
pub const WORKLOAD_RECORD_ANNOTATION: &str = "kubectl-canary.io/canary";

/// The record layout this tool writes and reads; another is refused, not guessed at.
pub const WORKLOAD_RECORD_SCHEMA: u32 = 1;

/// A canary's record on its workload: what it was asked, from what, by whom.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadRecord<I, G> {
    /// [`WORKLOAD_RECORD_SCHEMA`].
    pub schema: u32,
    /// The workload's UID: a record copied onto a namesake is refused.
    pub workload_uid: String,
    /// The templates and settings the canary goes between.
    pub intent: I,
    /// What the last command asked for.
    pub goal: G,
    /// Who started the canary.
    pub started_by: Owner,
    /// When (RFC 3339).
    pub started_at: String,
}

/// A StatefulSet canary's record.
pub type StatefulSetRecord = WorkloadRecord<StatefulSetIntent, Goal>;

/// A DaemonSet canary's record.
pub type DaemonSetRecord = WorkloadRecord<DaemonSetIntent, DaemonSetGoal>;

/// Why a record on a workload cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkloadRecordError {
    /// Not a record this tool can read.
    #[error(
        "the {annotation} annotation of {workload} is not a canary record this version can read ({why}); if no \
         canary runs on it, remove the annotation (kubectl annotate {workload} {annotation}-)"
    )]
    Unreadable {
        /// `sts/NAME` or `ds/NAME`.
        workload: String,
        /// The annotation.
        annotation: &'static str,
        /// What was wrong.
        why: String,
    },
    /// A record made for another object of that name (deleted and re-created since).
    #[error(
        "the canary record on {workload} was made for another object of that name (UID {recorded}, now {now}); \
         remove the annotation (kubectl annotate {workload} {annotation}-) and start again"
    )]
    OtherWorkload {
        /// `sts/NAME` or `ds/NAME`.
        workload: String,
        /// The annotation.
        annotation: &'static str,
        /// The UID recorded.
        recorded: String,
        /// The workload's UID now.
        now: String,
    },
}

impl<I, G> WorkloadRecord<I, G>
where
    I: Serialize + for<'de> Deserialize<'de>,
    G: Serialize + for<'de> Deserialize<'de>,
{
    /// The record as the annotation's value.
    pub fn to_annotation(&self) -> String {
        serde_json::to_string(self).expect("a record serializes")
    }

    /// Reads the record of `workload` (`sts/NAME`) whose UID is `uid` from its annotation's
    /// value: refused when unreadable, of another schema, or made for another UID.
    ///
    /// ```
    /// use canary_core::kind_machines::record::{StatefulSetRecord, WorkloadRecordError};
    ///
    /// let refused = StatefulSetRecord::from_annotation("{}", "sts/db", "uid-1").unwrap_err();
    /// assert!(matches!(refused, WorkloadRecordError::Unreadable { .. }));
    /// ```
    pub fn from_annotation(
        text: &str,
        workload: &str,
        uid: &str,
    ) -> Result<Self, WorkloadRecordError> {
        let unreadable = |why: String| WorkloadRecordError::Unreadable {
            workload: workload.to_owned(),
            annotation: WORKLOAD_RECORD_ANNOTATION,
            why,
        };
        let schema = serde_json::from_str::<serde_json::Value>(text)
            .map_err(|e| unreadable(e.to_string()))?["schema"]
            .as_u64();
        if schema != Some(u64::from(WORKLOAD_RECORD_SCHEMA)) {
            return Err(unreadable(format!(
                "schema {}, this version reads {WORKLOAD_RECORD_SCHEMA}",
                schema.map_or("missing".to_owned(), |s| s.to_string())
            )));
        }
        let record: Self = serde_json::from_str(text).map_err(|e| unreadable(e.to_string()))?;
        if record.workload_uid != uid {
            return Err(WorkloadRecordError::OtherWorkload {
                workload: workload.to_owned(),
                annotation: WORKLOAD_RECORD_ANNOTATION,
                recorded: record.workload_uid,
                now: uid.to_owned(),
            });
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record() -> StatefulSetRecord {
        WorkloadRecord {
            schema: WORKLOAD_RECORD_SCHEMA,
            workload_uid: "uid-1".into(),
            intent: StatefulSetIntent {
                original_template: json!({"spec": {"containers": [{"name": "db", "image": "db:1"}]}}),
                canary_template: json!({"spec": {"containers": [{"name": "db", "image": "db:2"}]}}),
                original_partition: 0,
                stable_revision: "db-1".into(),
            },
            goal: Goal::Hold { pods: 1 },
            started_by: Owner {
                user: "me".into(),
                host: "h".into(),
                pid: 1,
                tool_version: "0".into(),
            },
            started_at: "2026-12-05T00:00:00Z".into(),
        }
    }

    /// A record round-trips through its annotation; every way it cannot be used is refused
    /// with what to do.
    #[test]
    fn a_record_is_read_back_or_refused_with_what_to_do() {
        let text = record().to_annotation();
        assert_eq!(
            StatefulSetRecord::from_annotation(&text, "sts/db", "uid-1"),
            Ok(record())
        );
        let mut other_schema: serde_json::Value = serde_json::from_str(&text).unwrap();
        other_schema["schema"] = json!(2);
        let mut unknown_field: serde_json::Value = serde_json::from_str(&text).unwrap();
        unknown_field["extra"] = json!(true);
        let cases = [
            ("not json", "is not a canary record"),
            (&other_schema.to_string(), "schema 2, this version reads 1"),
            (&unknown_field.to_string(), "unknown field"),
            (&text, "made for another object"),
        ];
        for (i, (text, says)) in cases.into_iter().enumerate() {
            let uid = if i == 3 { "uid-2" } else { "uid-1" };
            let error = StatefulSetRecord::from_annotation(text, "sts/db", uid)
                .unwrap_err()
                .to_string();
            assert!(error.contains(says), "{error}");
            assert!(
                error.contains("kubectl annotate sts/db kubectl-canary.io/canary-"),
                "{error}"
            );
        }
    }
}
