//! The analysis of a StatefulSet's or DaemonSet's canary: its two revisions' pods, the
//! checks, and the verdict as an Event on the workload.

use canary_core::analysis_spec::AnalysisSpec;
use canary_core::target::{WorkloadKind, WorkloadRef};
use canary_core::verdict::Verdict;

use crate::analysis::{AnalysisTarget, RunOptions, run_analysis};
use crate::error::Result;
use crate::kinds::{DaemonSetView, StatefulSetView};
use crate::kinds_events::KindEvents;
use crate::preflight::{KindCommand, require_kind};

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

/// The Events of the canary of `target` (its workload read for the reference).
pub(super) async fn events_of(
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
