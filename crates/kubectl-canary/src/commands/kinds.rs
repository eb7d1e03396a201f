//! `start`, `status`, `promote` and `abort` of a StatefulSet (`sts/NAME`) or a DaemonSet
//! (`ds/NAME`): the canary of `canary_kube::kinds_drive`, its record on the workload.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::ListParams;

use canary_core::goal::Goal;
use canary_core::kind_machines::daemonset::DaemonSetGoal;
use canary_core::kind_machines::release::canary_template;
use canary_core::rollout_math::{CanaryMode, CanarySize, grown_canary_nodes, resolve_canary};
use canary_core::target::WorkloadKind;
use canary_kube::error::CanaryError;
use canary_kube::kinds::{DaemonSetView, StatefulSetView};
use canary_kube::kinds_drive::{
    KindDrive, daemonset_canary_nodes, drive_daemonset, drive_statefulset, recorded_or_none,
    refuse_a_second_canary, start_daemonset, start_statefulset,
};
use canary_kube::kinds_status::KindStatus;

use crate::config::Config;
use crate::config::kinds::{KindAction, KindConfig};
use crate::exit_code;
use crate::output::{notice, print_structured};

/// Runs the command; returns the exit code.
pub async fn run(config: &Config, kind: &KindConfig) -> Result<i32, CanaryError> {
    let name = kind.target.name.as_str();
    let mut progress = |summary: &str| notice(&format!("  ✓ {summary}"));
    let mut drive = KindDrive {
        client: &config.client,
        writer: canary_kube::write::CLI,
        namespace: &config.namespace,
        timeout: config.timeout,
        progress: &mut progress,
    };
    let status = match (kind.target.kind, &kind.action) {
        (WorkloadKind::StatefulSet, KindAction::Status) => KindStatus::of_statefulset(
            &StatefulSetView::read(&config.client, &config.namespace, name).await?,
        ),
        (WorkloadKind::DaemonSet, KindAction::Status) => KindStatus::of_daemonset(
            &DaemonSetView::read(&config.client, &config.namespace, name).await?,
        ),
        (WorkloadKind::StatefulSet, KindAction::Start { images, size, .. }) => {
            let view = StatefulSetView::read(&config.client, &config.namespace, name).await?;
            refuse_a_second_canary(&view)?;
            let template = canary_template(
                &kind.target.to_string(),
                &view.observation().template,
                images,
            )
            .map_err(|e| CanaryError::Refused(e.to_string()))?;
            let owner = canary_kube::preflight::owner(&config.client).await;
            let held = start_statefulset(
                &mut drive,
                &view,
                template,
                *size,
                owner,
                canary_kube::store::now(),
            )
            .await?;
            KindStatus::of_statefulset(&held)
        }
        (
            WorkloadKind::DaemonSet,
            KindAction::Start {
                images,
                size,
                nodes,
            },
        ) => {
            let view = DaemonSetView::read(&config.client, &config.namespace, name).await?;
            refuse_a_second_canary(&view)?;
            let template = canary_template(
                &kind.target.to_string(),
                &view.observation().template,
                images,
            )
            .map_err(|e| CanaryError::Refused(e.to_string()))?;
            let allowed = match nodes {
                Some(selector) => Some(nodes_selected(&config.client, selector).await?),
                None => None,
            };
            let chosen = daemonset_canary_nodes(&view, *size, allowed.as_ref())?;
            let owner = canary_kube::preflight::owner(&config.client).await;
            let held = start_daemonset(
                &mut drive,
                &view,
                template,
                chosen,
                owner,
                canary_kube::store::now(),
            )
            .await?;
            KindStatus::of_daemonset(&held)
        }
        (WorkloadKind::StatefulSet, KindAction::Promote(size)) => {
            let goal = match size {
                None => Goal::PromoteFull,
                Some(size) => {
                    let view =
                        StatefulSetView::read(&config.client, &config.namespace, name).await?;
                    let held = match recorded_or_none(&view)?.goal {
                        Goal::Hold { pods } => pods,
                        _ => 0,
                    };
                    Goal::Hold {
                        pods: grown_size(
                            &kind.target.to_string(),
                            *size,
                            view.facts().replicas,
                            held,
                        )?,
                    }
                }
            };
            KindStatus::of_statefulset(&drive_statefulset(&mut drive, name, goal).await?)
        }
        (WorkloadKind::DaemonSet, KindAction::Promote(size)) => {
            let goal = match size {
                None => DaemonSetGoal::PromoteFull,
                Some(size) => {
                    let view = DaemonSetView::read(&config.client, &config.namespace, name).await?;
                    let current = match recorded_or_none(&view)?.goal {
                        DaemonSetGoal::Hold { nodes } => nodes,
                        _ => Vec::new(),
                    };
                    let nodes = view.pods_by_node();
                    let pods = grown_size(
                        &kind.target.to_string(),
                        *size,
                        nodes.len() as i32,
                        current.len() as i32,
                    )?;
                    DaemonSetGoal::Hold {
                        nodes: grown_canary_nodes(&nodes, &current, pods),
                    }
                }
            };
            KindStatus::of_daemonset(&drive_daemonset(&mut drive, name, goal).await?)
        }
        (WorkloadKind::StatefulSet, KindAction::Abort) => {
            KindStatus::of_statefulset(&drive_statefulset(&mut drive, name, Goal::Abort).await?)
        }
        (WorkloadKind::DaemonSet, KindAction::Abort) => KindStatus::of_daemonset(
            &drive_daemonset(&mut drive, name, DaemonSetGoal::Abort).await?,
        ),
        (WorkloadKind::Deployment, _) => unreachable!("a Deployment's commands are their own"),
    };
    if !print_structured(config.output, &status) {
        print!("{}", crate::output::kinds::status_text(&status));
    }
    Ok(exit_code::OK)
}

/// The canary size `size` resolves to at `total` pods (or nodes), checked to grow the
/// canary of `held` and to leave a stable one (the rest is `--full`).
fn grown_size(workload: &str, size: CanarySize, total: i32, held: i32) -> Result<i32, CanaryError> {
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
async fn nodes_selected(
    client: &kube::Client,
    selector: &str,
) -> Result<BTreeSet<String>, CanaryError> {
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
