//! `start --auto` of a StatefulSet or DaemonSet: each step's pods watched for the interval,
//! then analysed; grown, promoted, rolled back or held by the Deployment's step policy.

use std::collections::BTreeSet;

use canary_core::analysis_spec::AnalysisSpec;
use canary_core::goal::Goal;
use canary_core::kind_machines::daemonset::DaemonSetGoal;
use canary_core::rollout_math::grown_canary_nodes;
use canary_core::step_policy::{NextStep, after_verdict};
use canary_core::target::{WorkloadKind, WorkloadRef};
use canary_core::verdict::Verdict;

use super::analysis::{analyze, events_of};
use super::{Prepared, abort, promote, status};
use crate::analysis::RunOptions;
use crate::error::{CanaryError, Result};
use crate::kinds::{DaemonSetView, StatefulSetView};
use crate::kinds_drive::{KindDrive, recorded_or_none};
use crate::kinds_status::KindStatus;
use canary_core::kind_machines::record::WORKLOAD_RECORD_ANNOTATION;
use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};

/// The steps of `start --auto` after the first is held.
pub struct KindSteps<'a> {
    /// The sizes in pods (nodes), from [`super::KindStarted::sizes`].
    pub sizes: &'a [i32],
    /// The nodes a DaemonSet's steps may grow onto, from [`super::KindStarted::allowed_nodes`].
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
    let mut redriven = 0;
    loop {
        if run.steps.last() != Some(&held) {
            run.steps.push(held);
        }
        let number = steps.sizes.iter().position(|&s| s == held).unwrap_or(0) + 1;
        events
            .step(number, steps.sizes.len(), held, steps.interval.as_secs())
            .await;
        news(StepNews::Step {
            number,
            of: steps.sizes.len(),
            pods: held,
        });
        // The analysis runs beside a watch of the workload: someone else's template, a record
        // changed or removed, the workload deleted come first (a verdict on a canary another
        // actor replaced means nothing, and a canary pod the controller replaced leaves the
        // analysis waiting for pods that will not come). The step's hold driven again
        // answers it (someone else's template: 13/14; no record: 3) or holds again, and the
        // step is analysed again.
        let before = Fingerprint::read(client, namespace, target).await?;
        let analysed = tokio::select! {
            analysed = analyze(client, namespace, target, steps.spec, options) => Some(analysed?),
            changed = before.changed(client, namespace, target) => {
                changed?;
                None
            }
        };
        let Some((_, verdict)) = analysed else {
            redriven += 1;
            if redriven > MAX_REDRIVES {
                return Err(CanaryError::WorkloadStuck {
                    workload: target.to_string(),
                    why: format!(
                        "{target} kept changing under step {number} of --auto ({MAX_REDRIVES} times in a row); the \
                         canary stays as it is: see `kubectl canary status {target}`"
                    ),
                });
            }
            run.status = grow_to(drive, target, held, steps.allowed_nodes).await?;
            continue;
        };
        redriven = 0;
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

/// How many times in a row a step's hold is driven again because the workload changed
/// under its analysis before `--auto` gives up (each drive answers whatever it can).
const MAX_REDRIVES: u32 = 5;

/// What of a workload only its writers change: the pod template and the canary's record;
/// the controllers' status writes leave it alone.
#[derive(Debug, Clone, PartialEq)]
struct Fingerprint(Option<(serde_json::Value, Option<String>)>);

impl Fingerprint {
    fn of<K: kube::Resource + serde::Serialize>(object: Option<&K>) -> Self {
        Fingerprint(object.map(|object| {
            let template =
                serde_json::to_value(object).unwrap_or_default()["spec"]["template"].clone();
            let record = object
                .meta()
                .annotations
                .as_ref()
                .and_then(|a| a.get(WORKLOAD_RECORD_ANNOTATION))
                .cloned();
            (template, record)
        }))
    }

    /// The fingerprint of `target` now.
    async fn read(client: &kube::Client, namespace: &str, target: &WorkloadRef) -> Result<Self> {
        Ok(match target.kind {
            WorkloadKind::StatefulSet => Self::of(Some(
                &StatefulSetView::read(client, namespace, &target.name)
                    .await?
                    .statefulset,
            )),
            _ => Self::of(Some(
                &DaemonSetView::read(client, namespace, &target.name)
                    .await?
                    .daemonset,
            )),
        })
    }

    /// Returns once `target`'s fingerprint differs from this one (or it is deleted).
    async fn changed(
        &self,
        client: &kube::Client,
        namespace: &str,
        target: &WorkloadRef,
    ) -> Result<()> {
        match target.kind {
            WorkloadKind::StatefulSet => {
                self.changed_as::<StatefulSet>(client, namespace, &target.name)
                    .await
            }
            _ => {
                self.changed_as::<DaemonSet>(client, namespace, &target.name)
                    .await
            }
        }
    }

    async fn changed_as<K>(&self, client: &kube::Client, namespace: &str, name: &str) -> Result<()>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::Serialize
            + serde::de::DeserializeOwned
            + std::fmt::Debug
            + Send
            + 'static,
    {
        use futures::StreamExt;
        use kube::runtime::{WatchStreamExt, watcher};
        let api: kube::Api<K> = kube::Api::namespaced(client.clone(), namespace);
        let mut events = watcher::watcher(
            api,
            watcher::Config::default().fields(&format!("metadata.name={name}")),
        )
        .default_backoff()
        .boxed();
        while let Some(event) = events.next().await {
            let now = match event {
                Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object)) => {
                    Self::of(Some(&object))
                }
                Ok(watcher::Event::Delete(_)) => Self::of::<K>(None),
                _ => continue,
            };
            if now != *self {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// Grows the canary of `target` to `pods` pods (nodes, among `allowed`).
pub(super) async fn grow_to(
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
