//! The StatefulSet and DaemonSet canaries' operations, as their CLI commands call them: what
//! `start` composes and chooses (the canary template of the images, the nodes of a
//! DaemonSet, the sizes of `--auto`'s steps), the rule that a `promote --canary` only grows,
//! the analysis of the two revisions, the steps of an automated canary, and each ending as
//! a [`KindStatus`] to render.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use k8s_openapi::api::core::v1::Node;
use kube::api::ListParams;
use kube::{Api, ResourceExt};

use canary_core::analysis_spec::AnalysisSpec;
use canary_core::goal::Goal;
use canary_core::kind_machines::daemonset::DaemonSetGoal;
use canary_core::kind_machines::record::{DaemonSetRecord, StatefulSetRecord};
use canary_core::plan::{KindPlan, plan_kind};
use canary_core::release::ReleaseInput;
use canary_core::rollout_math::{
    CanaryMode, CanarySize, ResolvedCanary, grown_canary_nodes, resolve_canary, step_sizes,
};
use canary_core::step_policy::{NextStep, after_verdict};
use canary_core::target::{WorkloadKind, WorkloadRef};
use canary_core::verdict::Verdict;

use crate::analysis::{AnalysisTarget, RunOptions, run_analysis};
use crate::error::{CanaryError, Result};
use crate::kinds::{DaemonSetView, StatefulSetView};
use crate::kinds_drive::{
    KindDrive, KindPreview, KindRecord, KindView, daemonset_canary_nodes, daemonset_start,
    drive_record, preview, recorded_or_none, refuse_a_second_canary, statefulset_start,
};
use crate::kinds_events::{KindEnding, KindEvents};
use crate::kinds_status::KindStatus;
use crate::preflight::{KindCommand, require_for, require_kind};
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

/// A canary's record, ready to drive or to preview: the workload as read and what the
/// command asks of it.
enum Prepared {
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

/// `start`: refused with nothing written when a canary already runs, when the images name
/// no container or change nothing, or when the plan (or a step of `--steps`) refuses;
/// otherwise held.
///
/// ```no_run
/// # async fn example(mut drive: canary_kube::kinds_drive::KindDrive<'_>) -> canary_kube::error::Result<()> {
/// use canary_core::release::ReleaseInput;
/// use canary_core::rollout_math::CanarySize;
/// use canary_core::target::WorkloadRef;
/// use canary_kube::ops::kinds::{KindStart, start};
///
/// let images = [ImageChange::parse("db=db:2").unwrap()];
/// let ask = KindStart { images: &images, size: CanarySize::Pods(1), nodes: None, steps: &[] };
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

/// `analyze`: `spec`'s checks on the canary of `target` against its stable pods (from the
/// record; without one, the newest revision against the one before), with the sides it
/// compared.
pub async fn analyze(
    client: &kube::Client,
    namespace: &str,
    target: &WorkloadRef,
    spec: &AnalysisSpec,
    options: RunOptions,
) -> Result<(AnalysisTarget, Verdict)> {
    let sides = analysis_target(client, namespace, target).await?;
    let verdict = run_analysis(client, &sides, spec, options).await?;
    Ok((sides, verdict))
}

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

/// The two sides of the canary of `target` as they are now.
pub async fn analysis_target(
    client: &kube::Client,
    namespace: &str,
    target: &WorkloadRef,
) -> Result<AnalysisTarget> {
    require_kind(client, namespace, target, KindCommand::Analyze).await?;
    match target.kind {
        WorkloadKind::StatefulSet => AnalysisTarget::of_statefulset(
            &StatefulSetView::read(client, namespace, &target.name).await?,
        ),
        _ => AnalysisTarget::of_daemonset(
            &DaemonSetView::read(client, namespace, &target.name).await?,
        ),
    }
}

/// The steps of `start --auto` after the first is held.
pub struct KindSteps<'a> {
    /// The sizes in pods (nodes), from [`KindStarted::sizes`].
    pub sizes: &'a [i32],
    /// The nodes a DaemonSet's steps may grow onto, from [`KindStarted::allowed_nodes`].
    pub allowed_nodes: Option<&'a BTreeSet<String>>,
    /// The checks of every step.
    pub spec: &'a AnalysisSpec,
    /// How long each step runs, its pods' health watched, before it is analysed.
    pub interval: std::time::Duration,
}

/// What happened at a step, for the caller to show as it happens.
pub enum StepNews<'a> {
    /// A step begins: its place (from 1), the number of steps, its size.
    Step {
        /// Its place, from 1.
        number: usize,
        /// How many steps there are.
        of: usize,
        /// Its canary pods (nodes).
        pods: i32,
    },
    /// A step's verdict.
    Verdict(&'a Verdict),
}

/// How `start --auto` ended.
pub struct KindAutoRun {
    /// What the last verdict led to: promoted to every pod, rolled back, or (inconclusive)
    /// held and recorded.
    pub ending: NextStep,
    /// The sizes reached, in pods (nodes).
    pub steps: Vec<i32>,
    /// Every verdict, in order.
    pub verdicts: Vec<Verdict>,
    /// The workload at the end.
    pub status: KindStatus,
}

/// Runs the steps of `start --auto` on the canary of `target` that `start` holds at
/// `steps.sizes[0]`: at each step its pods' health is watched for the interval, then it is
/// analysed; a pass grows it to the next step (after the last: promoted to every pod), a
/// failure rolls it back, an inconclusive verdict leaves it held and recorded. The same
/// step policy as a Deployment's ([`canary_core::step_policy::after_verdict`]).
pub async fn run_steps(
    drive: &mut KindDrive<'_>,
    target: &WorkloadRef,
    steps: KindSteps<'_>,
    news: &mut (dyn FnMut(StepNews<'_>) + Send),
) -> Result<KindAutoRun> {
    let (client, namespace) = (drive.client, drive.namespace);
    let mut held = steps.sizes[0];
    let mut run = KindAutoRun {
        ending: NextStep::Hold,
        steps: Vec::new(),
        verdicts: Vec::new(),
        status: status(client, namespace, target).await?,
    };
    let options = RunOptions {
        observe_for: steps.interval,
        keep_waiting: true,
        ..RunOptions::default()
    };
    let events = events_of(client, namespace, target).await?;
    loop {
        run.steps.push(held);
        let number = steps.sizes.iter().position(|&s| s == held).unwrap_or(0) + 1;
        events
            .step(number, steps.sizes.len(), held, steps.interval.as_secs())
            .await;
        news(StepNews::Step {
            number,
            of: steps.sizes.len(),
            pods: held,
        });
        let (_, verdict) = analyze(client, namespace, target, steps.spec, options).await?;
        events.verdict(&verdict).await;
        news(StepNews::Verdict(&verdict));
        let next = after_verdict(verdict.decision, steps.sizes, held);
        run.verdicts.push(verdict);
        run.ending = next;
        run.status = match next {
            NextStep::Grow { to, .. } => {
                grow_to(drive, target, to, steps.allowed_nodes).await?;
                held = to;
                continue;
            }
            NextStep::PromoteFull => promote(drive, target, None).await?,
            NextStep::RollBack => abort(drive, target).await?,
            NextStep::Hold => status(client, namespace, target).await?,
        };
        return Ok(run);
    }
}

/// Grows the canary of `target` to `pods` pods (nodes, among `allowed`).
async fn grow_to(
    drive: &mut KindDrive<'_>,
    target: &WorkloadRef,
    pods: i32,
    allowed: Option<&BTreeSet<String>>,
) -> Result<KindStatus> {
    let (client, namespace) = (drive.client, drive.namespace);
    let prepared = match target.kind {
        WorkloadKind::StatefulSet => {
            let view = StatefulSetView::read(client, namespace, &target.name).await?;
            let mut record = recorded_or_none(&view)?;
            record.goal = Goal::Hold { pods };
            Prepared::StatefulSet(view, record)
        }
        _ => {
            let view = DaemonSetView::read(client, namespace, &target.name).await?;
            let mut record = recorded_or_none(&view)?;
            let current = match &record.goal {
                DaemonSetGoal::Hold { nodes } => nodes.clone(),
                _ => Vec::new(),
            };
            let mut nodes = view.pods_by_node();
            if let Some(allowed) = allowed {
                nodes.retain(|node, _| allowed.contains(node) || current.contains(node));
            }
            record.goal = DaemonSetGoal::Hold {
                nodes: grown_canary_nodes(&nodes, &current, pods),
            };
            Prepared::DaemonSet(view, record)
        }
    };
    prepared.drive(drive).await
}

/// The Events of the canary of `target` (its workload read for the reference).
async fn events_of(
    client: &kube::Client,
    namespace: &str,
    target: &WorkloadRef,
) -> Result<KindEvents> {
    let workload = target.to_string();
    Ok(match target.kind {
        WorkloadKind::StatefulSet => {
            let view = StatefulSetView::read(client, namespace, &target.name).await?;
            KindEvents::about(client, &view.statefulset, workload)
        }
        _ => {
            let view = DaemonSetView::read(client, namespace, &target.name).await?;
            KindEvents::about(client, &view.daemonset, workload)
        }
    })
}

/// Records `verdict` of the canary of `target` as an Event on the workload (`analyze`).
pub async fn publish_verdict(
    client: &kube::Client,
    namespace: &str,
    target: &WorkloadRef,
    verdict: &Verdict,
) -> Result<()> {
    events_of(client, namespace, target)
        .await?
        .verdict(verdict)
        .await;
    Ok(())
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
