//! `kubectl canary analyze`: runs the analysis checks once on a running canary, prints the
//! verdict with every check's numbers and reason, and records it as an Event on the
//! Deployment.

use canary_core::analysis_spec::{AnalysisSpec, format_duration};
use canary_core::verdict::Decision;
use canary_kube::analysis::{AnalysisTarget, RunOptions, run_analysis};
use canary_kube::engine::Engine;
use canary_kube::error::CanaryError;
use canary_kube::events::EventSink;
use canary_kube::trust::CanaryState;

use crate::config::analyze::AnalyzeConfig;
use crate::config::{Config, OutputFormat};
use crate::exit_code;
use crate::output::{print_structured, verdict_text};

/// Runs `analyze`; returns the exit code for the verdict.
pub async fn run(config: &Config, analyze: &AnalyzeConfig) -> Result<i32, CanaryError> {
    let spec = &analyze.analysis;
    let engine = Engine::new(&config.client, &config.namespace, &analyze.deployment);
    // Which pods are canary and which stable comes from the checked record only: an edited
    // record could otherwise make the verdict compare the wrong pods.
    let (state, view) = engine.canary_state().await?;
    let stored = match state {
        CanaryState::Verified { stored, .. } => Some(stored),
        CanaryState::None { .. } => None,
        CanaryState::RecordLost { .. } => {
            eprintln!(
                "note: {}",
                state.error(&analyze.deployment, &engine.store().name())
            );
            None
        }
        other => return Err(other.error(&analyze.deployment, &engine.store().name())),
    };
    let target = match &stored {
        Some(stored) => AnalysisTarget::from_record(&view, &stored.record),
        None => AnalysisTarget::from_latest_revisions(&view),
    };
    let target = target?;
    if print_structured_is_off(config) {
        eprintln!("{}", describe_run(&target, spec, stored.is_none()));
        // The verdict is about the canary as it runs, which may not be the size asked.
        if let Some(size) = stored.as_ref().and_then(|stored| {
            canary_kube::status::CanarySizeStatus::of(
                &analyze.deployment,
                &stored.record,
                &view.observation(&stored.record),
            )
        }) {
            eprintln!("{}", size.line());
        }
        if !analyze.observe.is_zero() {
            eprintln!(
                "watching the pods' health for {} before the other checks measure (a failure ends it at once)",
                format_duration(analyze.observe)
            );
        }
    }
    let options = RunOptions {
        observe_for: analyze.observe,
        keep_waiting: analyze.wait,
        ..RunOptions::default()
    };
    let verdict = run_analysis(&config.client, &target, spec, options).await?;
    if !print_structured(config.output, &verdict) {
        print!("{}", verdict_text(&verdict));
        if verdict.decision == Decision::Wait {
            eprintln!(
                "some checks cannot decide yet; run again later, or add --wait to analyse again until they decide (up to their waiting limit)"
            );
        }
    }
    let events = EventSink::new(&config.client, &view.deployment);
    events.verdict(&verdict).await;
    let started_at = stored.as_ref().map(|s| s.record.started_at.as_str());
    if let Some(warning) =
        canary_kube::history::note_round(&config.client, &view, started_at, &target, &verdict).await
    {
        tracing::warn!("{warning}");
    }
    Ok(exit_code::for_verdict(verdict.decision))
}

fn print_structured_is_off(config: &Config) -> bool {
    matches!(config.output, OutputFormat::Table | OutputFormat::Wide)
}

fn describe_run(target: &AnalysisTarget, spec: &AnalysisSpec, without_record: bool) -> String {
    let origin = if without_record {
        " (no canary record: newest revision against the previous one with pods)"
    } else {
        ""
    };
    format!(
        "analysing {}: canary {} vs stable {}{origin}, window {}, checks: {}",
        target.workload,
        target.canary.revision,
        target.stable.revision,
        format_duration(spec.window),
        // The checks as they run: the canary's httpGet probes' checks by name.
        canary_core::analysis_spec::expand_probe_checks(
            &spec.checks,
            target.canary_template.as_ref()
        )
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
    )
}
