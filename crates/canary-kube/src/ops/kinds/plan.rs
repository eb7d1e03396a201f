//! `plan` of a StatefulSet or DaemonSet: the sizes around the one asked, on the workload as
//! it is now.

use canary_core::plan::{KindPlan, plan_kind};
use canary_core::rollout_math::{CanarySize, grown_canary_nodes};
use canary_core::target::{WorkloadKind, WorkloadRef};

use crate::error::Result;
use crate::kinds::{DaemonSetView, StatefulSetView};
use crate::preflight::{KindCommand, require_kind};

/// `plan`: what a canary of `size` is on `target` as it is now: the sizes around it, their
/// share, and which pods (a StatefulSet's highest ordinals) or nodes (a DaemonSet's, by
/// name, as `start` without `--nodes` takes them) each takes.
pub async fn plan(
    client: &kube::Client,
    namespace: &str,
    target: &WorkloadRef,
    size: CanarySize,
) -> Result<KindPlan> {
    require_kind(client, namespace, target, KindCommand::Plan).await?;
    Ok(match target.kind {
        WorkloadKind::StatefulSet => {
            let view = StatefulSetView::read(client, namespace, &target.name).await?;
            let replicas = view.facts().replicas;
            let name = target.name.clone();
            plan_kind(target, replicas, size, |k| {
                (replicas - k..replicas)
                    .map(|o| format!("{name}-{o}"))
                    .collect()
            })
        }
        _ => {
            let view = DaemonSetView::read(client, namespace, &target.name).await?;
            let nodes = view.pods_by_node();
            plan_kind(target, nodes.len() as i32, size, |k| {
                grown_canary_nodes(&nodes, &[], k)
            })
        }
    })
}
