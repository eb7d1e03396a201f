//! Canary analysis: runs the checks of an [`AnalysisSpec`] against the canary and stable
//! pods of a Deployment and combines their results into a [`Verdict`].
//!
//! Each check lives in its own module and turns whatever goes wrong while measuring (an
//! unreachable Prometheus, a pod without logs yet, a proxy error) into an inconclusive
//! [`CheckResult`] with the reason, never into an error of the whole analysis and never into
//! a pass.

pub mod clock;
pub(crate) mod error;
pub mod http;
mod kinds;
pub mod logs;
pub mod pod_health;
pub mod prometheus;

use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use tokio::time::Instant;

use canary_core::analysis_spec::{AnalysisSpec, CheckSpec, Probe};
use canary_core::record::{CanaryRecord, POD_TEMPLATE_HASH_LABEL};
use canary_core::target::WorkloadRef;
use canary_core::verdict::{self, CheckResult, Decision, Measurement, Outcome, Verdict};

pub use self::error::AnalysisError;
use crate::kinds::CONTROLLER_REVISION_LABEL;
use crate::observe::{DeploymentView, template_hash_of};

/// The pods of one side of a canary: those of one revision of the workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodGroup {
    /// The object that carries the revision: a Deployment's ReplicaSet, a StatefulSet's or
    /// DaemonSet's ControllerRevision.
    pub revision: String,
    /// The pod label that tells the sides apart: `pod-template-hash` (Deployment) or
    /// `controller-revision-hash` (StatefulSet, DaemonSet).
    pub label: &'static str,
    /// Its value on this side's pods.
    pub hash: String,
}

impl PodGroup {
    /// A Deployment's side: the pods of one ReplicaSet, by `pod-template-hash`.
    pub fn replica_set(name: impl Into<String>, hash: impl Into<String>) -> Self {
        PodGroup {
            revision: name.into(),
            label: POD_TEMPLATE_HASH_LABEL,
            hash: hash.into(),
        }
    }

    /// A StatefulSet's or DaemonSet's side: the pods of one ControllerRevision, by
    /// `controller-revision-hash`.
    pub fn controller_revision(name: impl Into<String>, hash: impl Into<String>) -> Self {
        PodGroup {
            revision: name.into(),
            label: CONTROLLER_REVISION_LABEL,
            hash: hash.into(),
        }
    }

    /// The label selector of this side's pods (`pod-template-hash=7d9f`).
    pub fn selector(&self) -> String {
        format!("{}={}", self.label, self.hash)
    }

    /// Whether `pod` is one of this side's.
    pub fn has(&self, pod: &Pod) -> bool {
        pod.labels().get(self.label) == Some(&self.hash)
    }
}

/// Which pods are the canary and which are stable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalysisTarget {
    /// The namespace of the workload.
    pub namespace: String,
    /// The workload.
    pub workload: WorkloadRef,
    /// The new release's pods.
    pub canary: PodGroup,
    /// The current release's pods.
    pub stable: PodGroup,
    /// The canary's pod template (JSON), where the HTTP checks of its own `httpGet` probes
    /// come from (`--http-check auto`); `None` when unknown.
    pub canary_template: Option<serde_json::Value>,
}

/// One side of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The new release.
    Canary,
    /// The current release.
    Stable,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Canary => "canary",
            Side::Stable => "stable",
        })
    }
}

impl AnalysisTarget {
    /// The pod group of `side`.
    pub fn group(&self, side: Side) -> &PodGroup {
        match side {
            Side::Canary => &self.canary,
            Side::Stable => &self.stable,
        }
    }

    /// What a Prometheus query template of `side` is rendered with, over `window`.
    pub fn query_context(
        &self,
        side: Side,
        window: std::time::Duration,
    ) -> canary_core::analysis_spec::QueryContext<'_> {
        let group = self.group(side);
        canary_core::analysis_spec::QueryContext {
            namespace: &self.namespace,
            workload: &self.workload.name,
            revision: &group.revision,
            revision_label: if group.label == POD_TEMPLATE_HASH_LABEL {
                "pod_template_hash"
            } else {
                "controller_revision_hash"
            },
            hash: &group.hash,
            window,
        }
    }

    /// The sides of a recorded canary: the stable ReplicaSet the record names, and the one
    /// whose template is the record's target template.
    pub fn from_record(
        view: &DeploymentView,
        record: &CanaryRecord,
    ) -> Result<Self, AnalysisError> {
        let workload = WorkloadRef::deployment(view.name());
        let canary_rs = view
            .replica_set_with_template(&record.target_template())
            .ok_or_else(|| AnalysisError::NoCanaryPods {
                workload: workload.to_string(),
                detail: "no ReplicaSet has the canary's template yet".into(),
            })?;
        Ok(AnalysisTarget {
            namespace: view.deployment.namespace().unwrap_or_default(),
            workload,
            canary: group_of(canary_rs),
            stable: PodGroup::replica_set(
                &record.stable.replica_set,
                &record.stable.pod_template_hash,
            ),
            canary_template: Some(record.target_template()),
        })
    }

    /// The sides of a rollout without a record (for instance paused by hand): the newest
    /// revision is the canary, the newest older revision that still has pods is stable.
    pub fn from_latest_revisions(view: &DeploymentView) -> Result<Self, AnalysisError> {
        let workload = WorkloadRef::deployment(view.name());
        // `view.replica_sets` is sorted newest revision first.
        let mut replica_sets = view.replica_sets.iter();
        let canary = replica_sets
            .next()
            .ok_or_else(|| AnalysisError::NoCanaryPods {
                workload: workload.to_string(),
                detail: "the Deployment has no ReplicaSet".into(),
            })?;
        let stable = replica_sets
            .find(|rs| rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0) > 0)
            .ok_or_else(|| AnalysisError::NoStablePods {
                workload: workload.to_string(),
            })?;
        Ok(AnalysisTarget {
            namespace: view.deployment.namespace().unwrap_or_default(),
            workload,
            canary: group_of(canary),
            stable: group_of(stable),
            canary_template: canary
                .spec
                .as_ref()
                .and_then(|spec| spec.template.as_ref())
                .and_then(|template| serde_json::to_value(template).ok()),
        })
    }
}

fn group_of(rs: &ReplicaSet) -> PodGroup {
    PodGroup::replica_set(rs.name_any(), template_hash_of(rs))
}

/// How [`run_analysis`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOptions {
    /// How long pod health is watched before the other checks measure (the step's interval
    /// in an automated rollout; zero for a one-off `analyze`). A critical failure seen during
    /// this time ends the analysis at once.
    pub observe_for: Duration,
    /// Whether to repeat the analysis while inconclusive checks wait (per their policy); when
    /// false the first round's verdict is returned, possibly [`Decision::Wait`].
    pub keep_waiting: bool,
    /// Pause between rounds while waiting for inconclusive checks.
    pub retry_every: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            observe_for: Duration::ZERO,
            keep_waiting: false,
            retry_every: Duration::from_secs(15),
        }
    }
}

/// Runs the checks of `spec` on `target` and returns the verdict.
///
/// Pod health is watched for `options.observe_for`; then logs, HTTP and Prometheus measure
/// (logs and Prometheus looking back over `spec.window`). All checks run concurrently; a
/// critical failure during the watch ends the round at once (a crash-looping canary is
/// reported within about a second of its status changing) and checks that had not finished
/// are reported as not run. With `options.keep_waiting` the round is repeated, each repeat
/// watching pod health for `options.retry_every` first, while the verdict is
/// [`Decision::Wait`], so the result is pass, fail or inconclusive.
///
/// Cancel by dropping the future (e.g. in a `tokio::select!` with Ctrl-C): it only reads.
pub async fn run_analysis(
    client: &kube::Client,
    target: &AnalysisTarget,
    spec: &AnalysisSpec,
    options: RunOptions,
) -> Result<Verdict, AnalysisError> {
    if spec.checks.is_empty() {
        return Err(AnalysisError::NoChecks);
    }
    // Every time-based judgement uses the API server's clock, read once per analysis.
    let clock = clock::ServerClock::read(client)
        .await
        .map_err(|detail| AnalysisError::ServerClock { detail })?;
    let mut observe_for = options.observe_for;
    let mut first_round_end: Option<Instant> = None;
    loop {
        let results = run_round(client, target, spec, &clock, observe_for).await;
        let now = Instant::now();
        let waited = first_round_end.map_or(Duration::ZERO, |start| now - start);
        first_round_end.get_or_insert(now);
        let verdict = verdict::combine(results, spec.pass_score, waited);
        if verdict.decision != Decision::Wait || !options.keep_waiting {
            return Ok(verdict);
        }
        tracing::info!(reason = %verdict.reason, "analysis inconclusive, analysing again");
        // The wait is spent watching pod health, so a crash during it still ends the wait.
        observe_for = options.retry_every;
    }
}

/// One round: every check once, pod health watched for `observe_for` first; a critical
/// failure during that watch ends the round early.
pub async fn run_round(
    client: &kube::Client,
    target: &AnalysisTarget,
    spec: &AnalysisSpec,
    clock: &clock::ServerClock,
    observe_for: Duration,
) -> Vec<CheckResult> {
    // The checks of the canary's own httpGet probes, where the spec asks for them.
    let expanded;
    let spec = if spec
        .checks
        .iter()
        .any(|c| matches!(c.probe, Probe::HttpFromProbes(_)))
    {
        expanded = AnalysisSpec {
            checks: canary_core::analysis_spec::expand_probe_checks(
                &spec.checks,
                target.canary_template.as_ref(),
            ),
            ..spec.clone()
        };
        &expanded
    } else {
        spec
    };
    let mut pending: FuturesUnordered<_> = spec
        .checks
        .iter()
        .enumerate()
        .map(|(index, check)| async move {
            (
                index,
                run_check(client, target, spec, check, clock, observe_for).await,
            )
        })
        .collect();
    // While pod health is being watched, a critical failure ends the round at once (that is
    // what makes a crash-looping canary visible within seconds). Once every check measures,
    // the round runs to completion so the verdict shows every check's numbers; each check
    // is bounded in time by its own settings.
    let observing_until = Instant::now() + observe_for;
    let mut results: Vec<Option<CheckResult>> = vec![None; spec.checks.len()];
    let mut stopped_by: Option<String> = None;
    while let Some((index, result)) = pending.next().await {
        let fatal =
            result.critical && result.counts_as_failed() && Instant::now() < observing_until;
        if fatal {
            stopped_by = Some(result.name.clone());
        }
        results[index] = Some(result);
        if fatal {
            break;
        }
    }
    drop(pending);
    results
        .into_iter()
        .zip(&spec.checks)
        .map(|(result, check)| {
            result.unwrap_or_else(|| {
                let reason = format!(
                    "not finished: the analysis stopped when critical check {} failed",
                    stopped_by.as_deref().unwrap_or("?")
                );
                not_run(check, reason)
            })
        })
        .collect()
}

async fn run_check(
    client: &kube::Client,
    target: &AnalysisTarget,
    spec: &AnalysisSpec,
    check: &CheckSpec,
    clock: &clock::ServerClock,
    observe_for: Duration,
) -> CheckResult {
    match &check.probe {
        Probe::PodHealth(settings) => {
            pod_health::run(client, target, check, settings, clock, observe_for).await
        }
        probe => {
            tokio::time::sleep(observe_for).await;
            match probe {
                Probe::Logs(settings) => {
                    logs::run(client, target, check, settings, clock, spec.window).await
                }
                Probe::Http(settings) => http::run(client, target, check, settings).await,
                Probe::Prometheus(settings) => {
                    prometheus::run(client, target, check, settings, clock, spec.window).await
                }
                Probe::AutoMetrics(settings) => {
                    prometheus::auto::run(client, target, check, settings, clock, spec.window).await
                }
                Probe::PodHealth(_) => unreachable!("handled above"),
                Probe::HttpFromProbes(_) => unreachable!("expanded in run_round"),
            }
        }
    }
}

/// A result for `check` with its name, kind, criticality and policy filled in.
pub(crate) fn result_of(
    check: &CheckSpec,
    outcome: Outcome,
    measurements: Vec<Measurement>,
    reason: impl Into<String>,
) -> CheckResult {
    CheckResult {
        name: check.name.clone(),
        kind: check.probe.kind(),
        outcome,
        critical: check.critical,
        on_inconclusive: check.on_inconclusive,
        measurements,
        reason: reason.into(),
    }
}

fn not_run(check: &CheckSpec, reason: String) -> CheckResult {
    result_of(check, Outcome::Inconclusive, Vec::new(), reason)
}

/// Lists the pods of one side.
pub(crate) async fn list_side_pods(
    client: &kube::Client,
    target: &AnalysisTarget,
    side: Side,
) -> Result<Vec<Pod>, String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &target.namespace);
    let selector = target.group(side).selector();
    pods.list(&ListParams::default().labels(&selector))
        .await
        .map(|list| {
            list.items
                .into_iter()
                .filter(|pod| pod.metadata.deletion_timestamp.is_none())
                .collect()
        })
        .map_err(|error| format!("cannot list the {side} pods ({selector}): {error}"))
}
