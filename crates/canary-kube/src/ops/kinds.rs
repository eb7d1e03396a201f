//! The StatefulSet and DaemonSet canaries' operations, as their CLI commands call them: what
//! `start` composes and chooses (the canary template of the images, the nodes of a
//! DaemonSet), the rule that a `promote --canary` only grows, and each ending as a
//! [`KindStatus`] to render.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::ListParams;

use canary_core::goal::Goal;
use canary_core::image::ImageChange;
use canary_core::kind_machines::daemonset::DaemonSetGoal;
use canary_core::kind_machines::release::canary_template;
use canary_core::rollout_math::{CanaryMode, CanarySize, grown_canary_nodes, resolve_canary};
use canary_core::target::{WorkloadKind, WorkloadRef};

use crate::error::{CanaryError, Result};
use crate::kinds::{DaemonSetView, StatefulSetView};
use crate::kinds_drive::{
    KindDrive, daemonset_canary_nodes, drive_daemonset, drive_statefulset, recorded_or_none,
    refuse_a_second_canary, start_daemonset, start_statefulset,
};
use crate::kinds_status::KindStatus;
use crate::preflight::{KindCommand, require_for, require_kind};

/// What a StatefulSet's or DaemonSet's `start` was asked.
pub struct KindStart<'a> {
    /// The new images.
    pub images: &'a [ImageChange],
    /// `--canary`.
    pub size: CanarySize,
    /// `--nodes SELECTOR` (DaemonSets).
    pub nodes: Option<&'a str>,
}

/// `status` of `target`.
pub async fn status(
    client: &kube::Client,
    namespace: &str,
    target: &WorkloadRef,
) -> Result<KindStatus> {
    require_kind(client, namespace, target, KindCommand::Status).await?;
    Ok(match target.kind {
        WorkloadKind::StatefulSet => KindStatus::of_statefulset(
            &StatefulSetView::read(client, namespace, &target.name).await?,
        ),
        _ => KindStatus::of_daemonset(&DaemonSetView::read(client, namespace, &target.name).await?),
    })
}

/// `start`: refused with nothing written when a canary already runs, when the images name
/// no container or change nothing, or when the plan refuses; otherwise held.
///
/// ```no_run
/// # async fn example(mut drive: canary_kube::kinds_drive::KindDrive<'_>) -> canary_kube::error::Result<()> {
/// use canary_core::image::ImageChange;
/// use canary_core::rollout_math::CanarySize;
/// use canary_core::target::WorkloadRef;
/// use canary_kube::ops::kinds::{KindStart, start};
///
/// let images = [ImageChange::parse("db=db:2").unwrap()];
/// let ask = KindStart { images: &images, size: CanarySize::Pods(1), nodes: None };
/// let held = start(&mut drive, &WorkloadRef::parse("sts/db").unwrap(), ask).await?;
/// # Ok(()) }
/// ```
pub async fn start(
    drive: &mut KindDrive<'_>,
    target: &WorkloadRef,
    ask: KindStart<'_>,
) -> Result<KindStatus> {
    require_for(drive, target, KindCommand::Start(ask.nodes)).await?;
    let workload = target.to_string();
    let client = drive.client;
    let owner = crate::preflight::owner(client).await;
    let now = crate::store::now();
    match target.kind {
        WorkloadKind::StatefulSet => {
            let view = StatefulSetView::read(client, drive.namespace, &target.name).await?;
            refuse_a_second_canary(&view)?;
            let template = canary_template(&workload, &view.observation().template, ask.images)
                .map_err(|e| CanaryError::Refused(e.to_string()))?;
            let held = start_statefulset(drive, &view, template, ask.size, owner, now).await?;
            Ok(KindStatus::of_statefulset(&held))
        }
        _ => {
            let view = DaemonSetView::read(client, drive.namespace, &target.name).await?;
            refuse_a_second_canary(&view)?;
            let template = canary_template(&workload, &view.observation().template, ask.images)
                .map_err(|e| CanaryError::Refused(e.to_string()))?;
            let allowed = match ask.nodes {
                Some(selector) => Some(nodes_selected(client, selector).await?),
                None => None,
            };
            let chosen = daemonset_canary_nodes(&view, ask.size, allowed.as_ref())?;
            let held = start_daemonset(drive, &view, template, chosen, owner, now).await?;
            Ok(KindStatus::of_daemonset(&held))
        }
    }
}

/// `promote --canary SIZE` (`Some`), which only grows the canary, or `--full` (`None`).
pub async fn promote(
    drive: &mut KindDrive<'_>,
    target: &WorkloadRef,
    size: Option<CanarySize>,
) -> Result<KindStatus> {
    require_for(drive, target, KindCommand::Promote(size)).await?;
    let workload = target.to_string();
    let (client, namespace, name) = (drive.client, drive.namespace, target.name.as_str());
    match target.kind {
        WorkloadKind::StatefulSet => {
            let goal = match size {
                None => Goal::PromoteFull,
                Some(size) => {
                    let view = StatefulSetView::read(client, namespace, name).await?;
                    let held = match recorded_or_none(&view)?.goal {
                        Goal::Hold { pods } => pods,
                        _ => 0,
                    };
                    Goal::Hold {
                        pods: grown_size(&workload, size, view.facts().replicas, held)?,
                    }
                }
            };
            Ok(KindStatus::of_statefulset(
                &drive_statefulset(drive, name, goal).await?,
            ))
        }
        _ => {
            let goal = match size {
                None => DaemonSetGoal::PromoteFull,
                Some(size) => {
                    let view = DaemonSetView::read(client, namespace, name).await?;
                    let current = match recorded_or_none(&view)?.goal {
                        DaemonSetGoal::Hold { nodes } => nodes,
                        _ => Vec::new(),
                    };
                    let nodes = view.pods_by_node();
                    let pods =
                        grown_size(&workload, size, nodes.len() as i32, current.len() as i32)?;
                    DaemonSetGoal::Hold {
                        nodes: grown_canary_nodes(&nodes, &current, pods),
                    }
                }
            };
            Ok(KindStatus::of_daemonset(
                &drive_daemonset(drive, name, goal).await?,
            ))
        }
    }
}

/// `abort`: every pod back on the stable revision, the workload's own settings back.
pub async fn abort(drive: &mut KindDrive<'_>, target: &WorkloadRef) -> Result<KindStatus> {
    require_for(drive, target, KindCommand::Abort).await?;
    Ok(match target.kind {
        WorkloadKind::StatefulSet => {
            KindStatus::of_statefulset(&drive_statefulset(drive, &target.name, Goal::Abort).await?)
        }
        _ => KindStatus::of_daemonset(
            &drive_daemonset(drive, &target.name, DaemonSetGoal::Abort).await?,
        ),
    })
}

/// The canary size `size` resolves to at `total` pods (or nodes), checked to grow the
/// canary of `held` and to leave a stable one (the rest is `--full`).
fn grown_size(workload: &str, size: CanarySize, total: i32, held: i32) -> Result<i32> {
    let pods = resolve_canary(size, total, CanaryMode::Replace)
        .map_err(|e| CanaryError::Refused(format!("{workload}: {e}; nothing was changed")))?
        .pods;
    if pods <= held {
        return Err(CanaryError::Refused(format!(
            "--canary {size} is {pods} pod(s), not more than the {held} the canary of {workload} runs: a canary only \
             grows; give a larger size, or use --full to roll out to every pod; nothing was changed"
        )));
    }
    Ok(pods)
}

/// The nodes `selector` selects.
async fn nodes_selected(client: &kube::Client, selector: &str) -> Result<BTreeSet<String>> {
    let nodes: Api<Node> = Api::all(client.clone());
    let list = nodes
        .list_metadata(&ListParams::default().labels(selector))
        .await
        .map_err(|e| CanaryError::api(format!("listing the nodes of --nodes {selector}"), e))?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A canary only grows, and a share is taken of the pods (or nodes) there are.
    #[test]
    fn a_promote_only_grows_the_canary() {
        assert_eq!(grown_size("sts/db", CanarySize::Pods(3), 5, 2).unwrap(), 3);
        assert_eq!(
            grown_size("sts/db", CanarySize::Percent(50.0), 4, 1).unwrap(),
            2
        );
        let smaller = grown_size("sts/db", CanarySize::Pods(2), 5, 2)
            .unwrap_err()
            .to_string();
        assert!(smaller.contains("a canary only grows"), "{smaller}");
        let all = grown_size("ds/a", CanarySize::Pods(4), 4, 1)
            .unwrap_err()
            .to_string();
        assert!(all.contains("keeps at least one stable pod"), "{all}");
    }
}
