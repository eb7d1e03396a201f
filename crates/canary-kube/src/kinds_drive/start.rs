//! The record a StatefulSet's or DaemonSet's canary starts with, and the refusals that
//! come before it (nothing written): a second canary, a plan the controller would not hold
//! exactly, a release that changes nothing.

use kube::ResourceExt;
use serde_json::Value;

use canary_core::goal::Goal;
use canary_core::kind_machines::daemonset::{DaemonSetGoal, DaemonSetIntent};
use canary_core::kind_machines::record::{
    DaemonSetRecord, StatefulSetRecord, WORKLOAD_RECORD_SCHEMA,
};
use canary_core::kind_machines::statefulset::StatefulSetIntent;
use canary_core::record::Owner;
use canary_core::rollout_math::{CanarySize, plan_daemonset_canary, plan_statefulset_canary};

use super::refused;
use super::view::{KindView, record_text};
use crate::error::{CanaryError, Result};
use crate::kinds::{DaemonSetView, StatefulSetView};

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

/// Refuses (nothing written) a start on a workload a canary already runs on.
pub fn refuse_a_second_canary<V: KindView>(view: &V) -> Result<()> {
    match record_text(view.object()) {
        Some(_) => Err(CanaryError::WorkloadLocked {
            workload: view.workload(),
        }),
        None => Ok(()),
    }
}

pub(super) fn refuse_no_change(original: &Value, canary: &Value, workload: &str) -> Result<()> {
    if original == canary {
        return Err(refused(format!(
            "the release leaves the pod template of {workload} as it is, so no pod would change"
        )));
    }
    Ok(())
}
