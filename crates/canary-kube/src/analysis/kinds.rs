//! The sides of a StatefulSet's or DaemonSet's canary: the pods of two ControllerRevisions,
//! told apart by their `controller-revision-hash` label.

use kube::ResourceExt;
use serde_json::Value;

use canary_core::record::normalize;
use canary_core::target::{WorkloadKind, WorkloadRef};

use super::{AnalysisError, AnalysisTarget, PodGroup};
use crate::kinds::{DaemonSetView, StatefulSetView};
use crate::kinds_drive::KindView;
use crate::workload::Revision;

impl AnalysisTarget {
    /// The sides of a StatefulSet's canary: with a record, its stable revision and the
    /// revision of its canary template; without one (a partition staged by hand), the
    /// update revision against the current one.
    ///
    /// ```no_run
    /// # async fn example(client: kube::Client) -> canary_kube::error::Result<()> {
    /// use canary_kube::analysis::AnalysisTarget;
    /// use canary_kube::kinds::StatefulSetView;
    ///
    /// let view = StatefulSetView::read(&client, "shop", "db").await?;
    /// let target = AnalysisTarget::of_statefulset(&view)?;
    /// println!("{} against {}", target.canary.selector(), target.stable.selector());
    /// # Ok(()) }
    /// ```
    pub fn of_statefulset(view: &StatefulSetView) -> crate::error::Result<Self> {
        let workload = WorkloadRef {
            kind: WorkloadKind::StatefulSet,
            name: view.facts().name,
        };
        let revisions = view.revision_list();
        let (canary, stable) = match crate::kinds_drive::recorded(view)? {
            Some(record) => (
                with_template(&revisions, &record.intent.canary_template),
                with_hash(&revisions, &record.intent.stable_revision),
            ),
            None => {
                let facts = view.facts();
                let stable = (facts.current_revision != facts.update_revision)
                    .then(|| with_hash(&revisions, &facts.current_revision))
                    .flatten();
                (with_hash(&revisions, &facts.update_revision), stable)
            }
        };
        Ok(sides(view, workload, canary, stable)?)
    }

    /// The sides of a DaemonSet's canary: with a record, its stable revision and the
    /// revision of its canary template; without one, the newest revision against the newest
    /// older one that still has pods.
    pub fn of_daemonset(view: &DaemonSetView) -> crate::error::Result<Self> {
        let workload = WorkloadRef {
            kind: WorkloadKind::DaemonSet,
            name: view.facts().name,
        };
        let revisions = view.revision_list();
        let (canary, stable) = match crate::kinds_drive::recorded(view)? {
            Some(record) => (
                with_template(&revisions, &record.intent.canary_template),
                with_hash(&revisions, &record.intent.stable_revision),
            ),
            None => {
                let mut newest_first = revisions.iter();
                let canary = newest_first.next().cloned();
                let stable = newest_first
                    .find(|r| view.pods.iter().any(|p| has_hash(p, &r.hash)))
                    .cloned();
                (canary, stable)
            }
        };
        Ok(sides(view, workload, canary, stable)?)
    }
}

/// The target of the two revisions found, or why there is nothing to compare.
fn sides<V: KindView>(
    view: &V,
    workload: WorkloadRef,
    canary: Option<Revision>,
    stable: Option<Revision>,
) -> Result<AnalysisTarget, AnalysisError> {
    let canary = canary.ok_or_else(|| AnalysisError::NoCanaryPods {
        workload: workload.to_string(),
        detail: "no revision has the canary's template yet".into(),
    })?;
    let stable =
        stable
            .filter(|s| s.hash != canary.hash)
            .ok_or_else(|| AnalysisError::NoStablePods {
                workload: workload.to_string(),
            })?;
    Ok(AnalysisTarget {
        namespace: view.object().namespace().unwrap_or_default(),
        canary_template: Some(canary.template.clone()),
        canary: PodGroup::controller_revision(canary.name, canary.hash),
        stable: PodGroup::controller_revision(stable.name, stable.hash),
        workload,
    })
}

fn with_hash(revisions: &[Revision], hash: &str) -> Option<Revision> {
    revisions.iter().find(|r| r.hash == hash).cloned()
}

/// The revision whose stored template is `template`. Both controllers store the template
/// as a patch that replaces it whole (`"$patch": "replace"`), which is not part of it.
fn with_template(revisions: &[Revision], template: &Value) -> Option<Revision> {
    revisions
        .iter()
        .find(|r| {
            let mut stored = r.template.clone();
            if let Some(fields) = stored.as_object_mut() {
                fields.remove("$patch");
            }
            normalize(&stored) == normalize(template)
        })
        .cloned()
}

fn has_hash(pod: &k8s_openapi::api::core::v1::Pod, hash: &str) -> bool {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(crate::kinds::CONTROLLER_REVISION_LABEL))
        .is_some_and(|h| h == hash)
}
