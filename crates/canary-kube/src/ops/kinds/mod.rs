//! The StatefulSet and DaemonSet canaries' operations, as their CLI commands call them: what
//! `start` composes and chooses (the canary template of the images, the nodes of a
//! DaemonSet, the sizes of `--auto`'s steps), the rule that a `promote --canary` only grows,
//! the analysis of the two revisions, the steps of an automated canary, and each ending as
//! a [`KindStatus`] to render.

mod analysis;
mod plan;
mod steps;

use std::collections::BTreeSet;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use k8s_openapi::api::core::v1::Node;
use kube::api::ListParams;
use kube::{Api, ResourceExt};

use canary_core::goal::Goal;
use canary_core::kind_machines::daemonset::DaemonSetGoal;
use canary_core::kind_machines::record::{DaemonSetRecord, StatefulSetRecord};
use canary_core::release::ReleaseInput;
use canary_core::rollout_math::{
    CanaryMode, CanarySize, ResolvedCanary, grown_canary_nodes, resolve_canary, step_sizes,
};
use canary_core::target::{WorkloadKind, WorkloadRef};

use crate::error::{CanaryError, Result};
use crate::kinds::{DaemonSetView, StatefulSetView};
use crate::kinds_drive::watch::{changed, changes_of, selector_of};
use crate::kinds_drive::{
    KindDrive, KindPreview, KindRecord, KindView, daemonset_canary_nodes, daemonset_start,
    drive_record, preview, recorded_or_none, refuse_a_second_canary, statefulset_start,
};
use crate::kinds_events::{KindEnding, KindEvents};
use crate::kinds_status::KindStatus;
use crate::preflight::{KindCommand, require_for, require_kind};

pub use self::analysis::{analysis_target, analyze, publish_verdict};
pub use self::plan::plan;
pub use self::steps::{KindAutoRun, KindSteps, StepNews, run_steps};
use crate::release::workload_template;

/// What a StatefulSet's or DaemonSet's `start` was asked.
pub struct KindStart<'a> {
    /// The release: images, a manifest's document of the workload, patches, `--env`.
    pub release: &'a ReleaseInput,
    /// `--canary` (or the first of `--steps`).
    pub size: CanarySize,
    /// `--nodes SELECTOR` (DaemonSets).
    pub nodes: Option<&'a str>,
    /// `--steps` of `--auto` (empty without): resolved and checked before anything is
    /// written.
    pub steps: &'a [CanarySize],
}

/// A held canary, as `start` left it.
pub struct KindStarted {
    /// The workload and its canary.
    pub status: KindStatus,
    /// The sizes of `--auto`'s steps in pods (nodes for a DaemonSet), the first being the
    /// one held (without `--steps`, that one alone).
    pub sizes: Vec<i32>,
    /// The nodes a DaemonSet's later steps may grow onto (`--nodes`); `None`: any.
    pub allowed_nodes: Option<BTreeSet<String>>,
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

/// `status --watch`: `on_change` hears the status of `target` now and again after every
/// change of the workload or its pods (a burst of events read once), until the watch ends
/// (the caller ends it by dropping the future: Ctrl-C).
pub async fn watch_status(
    client: &kube::Client,
    namespace: &str,
    target: &WorkloadRef,
    on_change: &mut (dyn FnMut(&KindStatus) + Send),
) -> Result<()> {
    on_change(&status(client, namespace, target).await?);
    let name = target.name.as_str();
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), namespace);
    let selector = match target.kind {
        WorkloadKind::StatefulSet => selector_of(
            &StatefulSetView::read(client, namespace, name)
                .await?
                .statefulset,
        ),
        _ => selector_of(
            &DaemonSetView::read(client, namespace, name)
                .await?
                .daemonset,
        ),
    };
    let mut changes = match target.kind {
        WorkloadKind::StatefulSet => {
            let api: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
            changes_of(api, pods, name, &selector).boxed()
        }
        _ => {
            let api: Api<DaemonSet> = Api::namespaced(client.clone(), namespace);
            changes_of(api, pods, name, &selector).boxed()
        }
    };
    while changed(&mut changes).await {
        on_change(&status(client, namespace, target).await?);
    }
    Ok(())
}

/// A canary's record, ready to drive or to preview: the workload as read and what the
/// command asks of it.
pub(super) enum Prepared {
    StatefulSet(StatefulSetView, StatefulSetRecord),
    DaemonSet(DaemonSetView, DaemonSetRecord),
}

impl Prepared {
    /// What driving it would do first, nothing written.
    fn preview(&self) -> Result<KindPreview> {
        match self {
            Prepared::StatefulSet(view, record) => preview(view, record),
            Prepared::DaemonSet(view, record) => preview(view, record),
        }
    }

    /// Drives it to its goal, and says how it ended in an Event on the workload.
    async fn drive(self, drive: &mut KindDrive<'_>) -> Result<KindStatus> {
        let (events, ending, driven) = match self {
            Prepared::StatefulSet(view, record) => {
                let name = view.statefulset.name_any();
                let events = KindEvents::about(drive.client, &view.statefulset, view.workload());
                let ending = ending_of(&record);
                let driven = drive_record(drive, &name, record).await;
                (
                    events,
                    ending,
                    driven.map(|v| KindStatus::of_statefulset(&v)),
                )
            }
            Prepared::DaemonSet(view, record) => {
                let name = view.daemonset.name_any();
                let events = KindEvents::about(drive.client, &view.daemonset, view.workload());
                let ending = ending_of(&record);
                let driven = drive_record(drive, &name, record).await;
                (events, ending, driven.map(|v| KindStatus::of_daemonset(&v)))
            }
        };
        match &driven {
            Ok(status) => events.ended(ending, status).await,
            Err(CanaryError::WorkloadForeign { change, .. }) => events.closed(*change).await,
            Err(_) => {}
        }
        driven
    }
}

/// How a drive of `record` ends when it reaches its goal.
fn ending_of<R: KindRecord>(record: &R) -> KindEnding {
    match (record.ends(), record.aborts()) {
        (false, _) => KindEnding::Held,
        (true, true) => KindEnding::Aborted,
        (true, false) => KindEnding::Promoted,
    }
}

/// `start`'s record and sizes, with every refusal made before anything is written.
struct PreparedStart {
    prepared: Prepared,
    sizes: Vec<i32>,
    allowed_nodes: Option<BTreeSet<String>>,
}

async fn prepare_start(
    client: &kube::Client,
    namespace: &str,
    target: &WorkloadRef,
    ask: KindStart<'_>,
) -> Result<PreparedStart> {
    let workload = target.to_string();
    let owner = crate::preflight::owner(client).await;
    let now = crate::store::now();
    match target.kind {
        WorkloadKind::StatefulSet => {
            let view = StatefulSetView::read(client, namespace, &target.name).await?;
            refuse_a_second_canary(&view)?;
            let api: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
            let live = view.observation().template;
            let template =
                workload_template(&api, &view.statefulset, &live, target, ask.release).await?;
            let replicas = view.facts().replicas;
            let first = resolve_canary(ask.size, replicas, CanaryMode::Replace).map_err(|e| {
                CanaryError::Refused(format!("{workload}: {e}; nothing was changed"))
            })?;
            let sizes = auto_sizes(&workload, ask.steps, first.pods, replicas, None)?;
            let record = statefulset_start(&view, template, ask.size, owner, now)?;
            Ok(PreparedStart {
                prepared: Prepared::StatefulSet(view, record),
                sizes,
                allowed_nodes: None,
            })
        }
        _ => {
            let view = DaemonSetView::read(client, namespace, &target.name).await?;
            refuse_a_second_canary(&view)?;
            let api: Api<DaemonSet> = Api::namespaced(client.clone(), namespace);
            let live = view.observation().template;
            let template =
                workload_template(&api, &view.daemonset, &live, target, ask.release).await?;
            let allowed = match ask.nodes {
                Some(selector) => Some(nodes_selected(client, selector).await?),
                None => None,
            };
            let chosen = daemonset_canary_nodes(&view, ask.size, allowed.as_ref())?;
            let nodes = view.pods_by_node();
            let allowed_count = allowed
                .as_ref()
                .map(|a| nodes.keys().filter(|n| a.contains(*n)).count() as i32);
            let sizes = auto_sizes(
                &workload,
                ask.steps,
                chosen.len() as i32,
                nodes.len() as i32,
                allowed_count,
            )?;
            let record = daemonset_start(&view, template, chosen, owner, now)?;
            Ok(PreparedStart {
                prepared: Prepared::DaemonSet(view, record),
                sizes,
                allowed_nodes: allowed,
            })
        }
    }
}

/// `start`: refused with nothing written when a canary already runs, when the release names
/// no container, changes nothing or changes more than the pod template, or when the plan
/// (or a step of `--steps`) refuses; otherwise held.
///
/// ```no_run
/// # async fn example(mut drive: canary_kube::kinds_drive::KindDrive<'_>) -> canary_kube::error::Result<()> {
/// use canary_core::release::ReleaseInput;
/// use canary_core::rollout_math::CanarySize;
/// use canary_core::target::WorkloadRef;
/// use canary_kube::ops::kinds::{KindStart, start};
///
/// let release = ReleaseInput { images: [("db".into(), "db:2".into())].into(), ..Default::default() };
/// let ask = KindStart { release: &release, size: CanarySize::Pods(1), nodes: None, steps: &[] };
/// let held = start(&mut drive, &WorkloadRef::parse("sts/db").unwrap(), ask).await?;
/// # Ok(()) }
/// ```
pub async fn start(
    drive: &mut KindDrive<'_>,
    target: &WorkloadRef,
    ask: KindStart<'_>,
) -> Result<KindStarted> {
    require_for(drive, target, KindCommand::Start(ask.nodes)).await?;
    let start = prepare_start(drive.client, drive.namespace, target, ask).await?;
    Ok(KindStarted {
        status: start.prepared.drive(drive).await?,
        sizes: start.sizes,
        allowed_nodes: start.allowed_nodes,
    })
}

/// `start --dry-run`: what `start` would write first (the same refusals), nothing written.
pub async fn dry_run_start(
    client: &kube::Client,
    namespace: &str,
    target: &WorkloadRef,
    ask: KindStart<'_>,
) -> Result<KindPreview> {
    require_kind(client, namespace, target, KindCommand::DryRun(ask.nodes)).await?;
    prepare_start(client, namespace, target, ask)
        .await?
        .prepared
        .preview()
}

/// The sizes of `steps` in pods (nodes) of `total`, the first being `first` (what start
/// holds; no steps: that one alone), each growing; a DaemonSet's limited to the `allowed`
/// nodes of `--nodes`. Checked before anything is written.
fn auto_sizes(
    workload: &str,
    steps: &[CanarySize],
    first: i32,
    total: i32,
    allowed: Option<i32>,
) -> Result<Vec<i32>> {
    if steps.is_empty() {
        return Ok(vec![first]);
    }
    let resolved = ResolvedCanary {
        pods: first,
        stable_pods: total - first,
        mode: CanaryMode::Replace,
        replicas: total,
    };
    let sizes = step_sizes(steps, &resolved)
        .map_err(|e| CanaryError::Refused(format!("{workload}: {e}; nothing was changed")))?;
    if let (Some(allowed), Some(&last)) = (allowed, sizes.last())
        && last > allowed
    {
        return Err(CanaryError::Refused(format!(
            "{workload}: the last step is {last} node(s), but --nodes selects {allowed} of the nodes it runs on; \
             give smaller steps or a wider --nodes; nothing was changed"
        )));
    }
    Ok(sizes)
}

/// The recorded canary of `target` with the goal of `promote --canary SIZE` (`Some`, which
/// only grows it) or `--full` (`None`).
async fn prepare_promote(
    client: &kube::Client,
    namespace: &str,
    target: &WorkloadRef,
    size: Option<CanarySize>,
) -> Result<Prepared> {
    let workload = target.to_string();
    let name = target.name.as_str();
    Ok(match target.kind {
        WorkloadKind::StatefulSet => {
            let view = StatefulSetView::read(client, namespace, name).await?;
            let mut record = recorded_or_none(&view)?;
            record.goal = match size {
                None => Goal::PromoteFull,
                Some(size) => {
                    let held = match record.goal {
                        Goal::Hold { pods } => pods,
                        _ => 0,
                    };
                    Goal::Hold {
                        pods: grown_size(&workload, size, view.facts().replicas, held)?,
                    }
                }
            };
            Prepared::StatefulSet(view, record)
        }
        _ => {
            let view = DaemonSetView::read(client, namespace, name).await?;
            let mut record = recorded_or_none(&view)?;
            record.goal = match size {
                None => DaemonSetGoal::PromoteFull,
                Some(size) => {
                    let current = match &record.goal {
                        DaemonSetGoal::Hold { nodes } => nodes.clone(),
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
            Prepared::DaemonSet(view, record)
        }
    })
}

/// `promote --canary SIZE` (`Some`), which only grows the canary, or `--full` (`None`).
pub async fn promote(
    drive: &mut KindDrive<'_>,
    target: &WorkloadRef,
    size: Option<CanarySize>,
) -> Result<KindStatus> {
    require_for(drive, target, KindCommand::Promote(size)).await?;
    prepare_promote(drive.client, drive.namespace, target, size)
        .await?
        .drive(drive)
        .await
}

/// `promote --dry-run`: what `promote` would do first, nothing written.
pub async fn dry_run_promote(
    client: &kube::Client,
    namespace: &str,
    target: &WorkloadRef,
    size: Option<CanarySize>,
) -> Result<KindPreview> {
    require_kind(client, namespace, target, KindCommand::DryRun(None)).await?;
    prepare_promote(client, namespace, target, size)
        .await?
        .preview()
}

/// The recorded canary of `target` with the goal of `abort`.
async fn prepare_abort(
    client: &kube::Client,
    namespace: &str,
    target: &WorkloadRef,
) -> Result<Prepared> {
    Ok(match target.kind {
        WorkloadKind::StatefulSet => {
            let view = StatefulSetView::read(client, namespace, &target.name).await?;
            let mut record = recorded_or_none(&view)?;
            record.goal = Goal::Abort;
            Prepared::StatefulSet(view, record)
        }
        _ => {
            let view = DaemonSetView::read(client, namespace, &target.name).await?;
            let mut record = recorded_or_none(&view)?;
            record.goal = DaemonSetGoal::Abort;
            Prepared::DaemonSet(view, record)
        }
    })
}

/// `abort`: every pod back on the stable revision, the workload's own settings back.
pub async fn abort(drive: &mut KindDrive<'_>, target: &WorkloadRef) -> Result<KindStatus> {
    require_for(drive, target, KindCommand::Abort).await?;
    prepare_abort(drive.client, drive.namespace, target)
        .await?
        .drive(drive)
        .await
}

/// `abort --dry-run`: what `abort` would do first, nothing written.
pub async fn dry_run_abort(
    client: &kube::Client,
    namespace: &str,
    target: &WorkloadRef,
) -> Result<KindPreview> {
    require_kind(client, namespace, target, KindCommand::DryRun(None)).await?;
    prepare_abort(client, namespace, target).await?.preview()
}

/// The canary size `size` resolves to at `total` pods (or nodes), checked not to shrink
/// the canary of `held` (the same size holds it again, after a StatefulSet was scaled) and
/// to leave a stable one (the rest is `--full`).
fn grown_size(workload: &str, size: CanarySize, total: i32, held: i32) -> Result<i32> {
    let pods = resolve_canary(size, total, CanaryMode::Replace)
        .map_err(|e| CanaryError::Refused(format!("{workload}: {e}; nothing was changed")))?
        .pods;
    if pods < held {
        return Err(CanaryError::Refused(format!(
            "--canary {size} is {pods} pod(s), fewer than the {held} the canary of {workload} holds: a canary only \
             grows (the same size holds it again); give a larger size, use --full to roll out to every pod, or \
             abort; nothing was changed"
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

    /// A canary only grows (or holds its size again), and a share is taken of the pods (or
    /// nodes) there are.
    #[test]
    fn a_promote_only_grows_the_canary() {
        assert_eq!(grown_size("sts/db", CanarySize::Pods(3), 5, 2).unwrap(), 3);
        assert_eq!(
            grown_size("sts/db", CanarySize::Percent(50.0), 4, 1).unwrap(),
            2
        );
        assert_eq!(
            grown_size("sts/db", CanarySize::Pods(2), 5, 2).unwrap(),
            2,
            "the same size holds it again"
        );
        let smaller = grown_size("sts/db", CanarySize::Pods(1), 5, 2)
            .unwrap_err()
            .to_string();
        assert!(smaller.contains("a canary only grows"), "{smaller}");
        let all = grown_size("ds/a", CanarySize::Pods(4), 4, 1)
            .unwrap_err()
            .to_string();
        assert!(all.contains("keeps at least one stable pod"), "{all}");
    }
}
