//! The plan of a StatefulSet's or DaemonSet's canary: the same arithmetic as a Deployment's
//! replace mode (the canary's pods are the workload's own, updated in place: no extra pod,
//! share `k/N`), with which pods or nodes each size takes.

use serde::Serialize;

use super::capacity::ClusterCapacity;
use super::options::{CanaryOption, ExactSizing, PlanInput, plan_mode};
use crate::rollout_math::{CanaryMode, CanarySize};
use crate::target::{WorkloadKind, WorkloadRef};

/// One size of a StatefulSet's or DaemonSet's canary, with the pods or nodes it takes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KindOption {
    /// The size's arithmetic (no extra pods: in place).
    #[serde(flatten)]
    pub option: CanaryOption,
    /// The pods (a StatefulSet's highest ordinals) or nodes (a DaemonSet's, by name) it
    /// takes.
    pub which: Vec<String>,
}

/// The plan of a canary of `target` on a StatefulSet or DaemonSet.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KindPlan {
    /// `sts/NAME` or `ds/NAME`.
    pub workload: String,
    /// What a share is of: `pods` (a StatefulSet's replicas) or `nodes` (a DaemonSet's).
    pub unit: &'static str,
    /// How many there are.
    pub total: i32,
    /// The size asked for.
    pub target: CanarySize,
    /// Why no canary of that size fits, if none does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// The sizes around the target, smallest first; `chosen` marks what `start` takes.
    pub options: Vec<KindOption>,
    /// For a StatefulSet and a percentage, the replica count nearest the current one at
    /// which the share is exact (a DaemonSet's nodes are not the tool's to choose).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact: Option<ExactSizing>,
}

/// Plans a canary of `size` on `workload` of `total` pods (nodes); `which(k)` names the pods
/// or nodes a canary of `k` takes.
///
/// ```
/// use canary_core::plan::plan_kind;
/// use canary_core::rollout_math::CanarySize;
/// use canary_core::target::WorkloadRef;
///
/// let db = WorkloadRef::parse("sts/db").unwrap();
/// let which = |k: i32| (5 - k..5).map(|o| format!("db-{o}")).collect();
/// let plan = plan_kind(&db, 5, CanarySize::Percent(40.0), which);
/// let chosen = plan.options.iter().find(|o| o.option.chosen).unwrap();
/// assert_eq!(chosen.which, ["db-3", "db-4"]);
/// assert_eq!(chosen.option.extra_pods, 0);
/// ```
pub fn plan_kind(
    workload: &WorkloadRef,
    total: i32,
    size: CanarySize,
    which: impl Fn(i32) -> Vec<String>,
) -> KindPlan {
    let input = PlanInput {
        replicas: total,
        target: size,
        pod_requests: None,
        cluster: ClusterCapacity::Offline,
    };
    let replace = plan_mode(&input, CanaryMode::Replace);
    KindPlan {
        workload: workload.to_string(),
        unit: match workload.kind {
            WorkloadKind::DaemonSet => "nodes",
            _ => "pods",
        },
        total,
        target: size,
        refused: replace.refused,
        options: replace
            .options
            .into_iter()
            .map(|option| KindOption {
                which: which(option.canary_pods),
                option,
            })
            .collect(),
        exact: match workload.kind {
            WorkloadKind::StatefulSet => replace.exact,
            _ => None,
        },
    }
}
