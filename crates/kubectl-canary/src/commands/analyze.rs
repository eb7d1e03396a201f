//! `kubectl canary analyze`: runs the analysis checks once on a running canary, prints the
//! verdict with every check's numbers and reason, and records it as an Event on the
//! Deployment.

use comfy_table::{Table, presets::NOTHING};

use canary_core::analysis_spec::{AnalysisSpec, format_duration};
use canary_core::verdict::{Decision, Verdict, format_number};
use canary_kube::analysis::{AnalysisTarget, RunOptions, run_analysis};
use canary_kube::engine::Engine;
use canary_kube::error::CanaryError;
use canary_kube::events::EventSink;
use canary_kube::trust::CanaryState;

use crate::cli::AnalyzeArgs;
use crate::config::Config;
use crate::config::analysis;
use crate::exit_code;
use crate::output::print_structured;

/// Runs `analyze`; returns the exit code for the verdict.
pub async fn run(config: &Config, args: &AnalyzeArgs) -> Result<i32, CanaryError> {
    let spec = match analysis::resolve(&args.analysis) {
        Ok(spec) => spec,
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(exit_code::USAGE);
        }
    };
    let engine = Engine::new(&config.client, &config.namespace, &args.target.name);
    // Which pods are canary and which stable comes from the checked record only: an edited
    // record could otherwise make the verdict compare the wrong pods.
    let (state, view) = engine.canary_state().await?;
    let stored = match state {
        CanaryState::Verified { stored, .. } => Some(stored),
        CanaryState::None { .. } => None,
        CanaryState::RecordLost { .. } => {
            eprintln!(
                "note: {}",
                state.error(&args.target.name, &engine.store().name())
            );
            None
        }
        other => return Err(other.error(&args.target.name, &engine.store().name())),
    };
    let target = match &stored {
        Some(stored) => AnalysisTarget::from_record(&view, &stored.record),
        None => AnalysisTarget::from_latest_revisions(&view),
    };
    let target = match target {
        Ok(target) => target,
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(exit_code::NOT_FOUND);
        }
    };
    if print_structured_is_off(config) {
        eprintln!("{}", describe_run(&target, &spec, stored.is_none()));
        if !args.observe.is_zero() {
            eprintln!(
                "watching the pods' health for {} before the other checks measure (a failure ends it at once)",
                format_duration(args.observe)
            );
        }
    }
    let options = RunOptions {
        observe_for: args.observe,
        keep_waiting: args.wait,
        ..RunOptions::default()
    };
    let verdict = match run_analysis(&config.client, &target, &spec, options).await {
        Ok(verdict) => verdict,
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(exit_code::USAGE);
        }
    };
    if !print_structured(config.output, &verdict) {
        print!("{}", verdict_text(&verdict));
        if verdict.decision == Decision::Wait {
            eprintln!(
                "some checks cannot decide yet; run again later, or add --wait to analyse again until they decide (up to their waiting limit)"
            );
        }
    }
    let events = EventSink::new(&config.client, &view.deployment);
    let note = event_note(&verdict);
    match verdict.decision {
        Decision::Pass => events.normal("AnalysisPassed", note).await,
        Decision::Fail => events.warning("AnalysisFailed", note).await,
        Decision::Wait | Decision::Inconclusive => {
            events.normal("AnalysisInconclusive", note).await
        }
    }
    Ok(exit_code_for(verdict.decision))
}

fn print_structured_is_off(config: &Config) -> bool {
    matches!(
        config.output,
        crate::cli::OutputFormat::Table | crate::cli::OutputFormat::Wide
    )
}

/// The exit code of an analysis verdict: 0 pass, [`exit_code::CANARY_UNHEALTHY`] fail,
/// [`exit_code::INCONCLUSIVE`] inconclusive or still waiting.
pub fn exit_code_for(decision: Decision) -> i32 {
    match decision {
        Decision::Pass => exit_code::OK,
        Decision::Fail => exit_code::CANARY_UNHEALTHY,
        Decision::Wait | Decision::Inconclusive => exit_code::INCONCLUSIVE,
    }
}

fn describe_run(target: &AnalysisTarget, spec: &AnalysisSpec, without_record: bool) -> String {
    let origin = if without_record {
        " (no canary record: newest revision against the previous one with pods)"
    } else {
        ""
    };
    format!(
        "analysing deploy/{}: canary {} vs stable {}{origin}, window {}, checks: {}",
        target.deployment,
        target.canary.replica_set,
        target.stable.replica_set,
        format_duration(spec.window),
        spec.checks
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// A one-paragraph summary for the Deployment's Event.
pub fn event_note(verdict: &Verdict) -> String {
    let checks: Vec<String> = verdict
        .checks
        .iter()
        .map(|c| format!("{} {}", c.name, c.outcome))
        .collect();
    format!(
        "analysis {}: {} [{}]",
        verdict.decision,
        verdict.reason,
        checks.join(", ")
    )
}

fn value_text(value: Option<f64>) -> String {
    value.map(format_number).unwrap_or_else(|| "-".into())
}

/// The verdict as a table of every check's measurements followed by each check's reason.
pub fn verdict_text(verdict: &Verdict) -> String {
    let mut table = Table::new();
    table.load_style(NOTHING);
    table.set_header(["CHECK", "RESULT", "MEASURE", "CANARY", "STABLE"]);
    for check in &verdict.checks {
        let result = format!(
            "{}{}",
            check.outcome,
            if check.critical {
                ""
            } else {
                " (non-critical)"
            }
        );
        if check.measurements.is_empty() {
            table.add_row([check.name.as_str(), result.as_str(), "-", "-", "-"]);
        }
        for (index, measurement) in check.measurements.iter().enumerate() {
            let (name, result) = if index == 0 {
                (check.name.as_str(), result.as_str())
            } else {
                ("", "")
            };
            table.add_row([
                name.to_string(),
                result.to_string(),
                measurement.name.clone(),
                value_text(measurement.canary),
                value_text(measurement.stable),
            ]);
        }
    }
    let mut text = format!(
        "verdict: {} — {}\n",
        verdict.decision.to_string().to_uppercase(),
        verdict.reason
    );
    if let Some(score) = verdict.score {
        text.push_str(&format!(
            "score: {} (needed {})\n",
            format_number(score),
            format_number(verdict.pass_score)
        ));
    }
    text.push('\n');
    for line in table.lines() {
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text.push('\n');
    for check in &verdict.checks {
        text.push_str(&format!(
            "  {} ({}): {}\n",
            check.name, check.kind, check.reason
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use canary_core::verdict::{
        CheckKind, CheckResult, InconclusivePolicy, Measurement, Outcome, combine,
    };
    use std::time::Duration;

    #[test]
    fn verdict_text_lists_every_check_with_numbers_and_reason() {
        let checks = vec![
            CheckResult {
                name: "pod-health".into(),
                kind: CheckKind::PodHealth,
                outcome: Outcome::Fail,
                critical: true,
                on_inconclusive: InconclusivePolicy::default(),
                measurements: vec![
                    Measurement::new("pods Ready", Some(0.0), Some(3.0)),
                    Measurement::new("container restarts", Some(4.0), Some(0.0)),
                ],
                reason: "1 of 1 canary pods failing: web-x: container web: CrashLoopBackOff".into(),
            },
            CheckResult {
                name: "prometheus-1".into(),
                kind: CheckKind::Prometheus,
                outcome: Outcome::Inconclusive,
                critical: false,
                on_inconclusive: InconclusivePolicy::Pass,
                measurements: vec![],
                reason: "Prometheus at http://127.0.0.1:1/ is unreachable: connection refused"
                    .into(),
            },
        ];
        let verdict = combine(checks, 95.0, Duration::ZERO);
        let text = verdict_text(&verdict);
        assert!(
            text.starts_with("verdict: FAIL — critical check failed: pod-health"),
            "{text}"
        );
        assert!(text.contains("container restarts"), "{text}");
        assert!(text.contains("inconclusive (non-critical)"), "{text}");
        assert!(
            text.contains(
                "prometheus-1 (prometheus): Prometheus at http://127.0.0.1:1/ is unreachable"
            ),
            "{text}"
        );
        assert_eq!(exit_code_for(verdict.decision), exit_code::CANARY_UNHEALTHY);
        assert!(event_note(&verdict).contains("pod-health fail, prometheus-1 inconclusive"));
    }
}
