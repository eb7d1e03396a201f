//! `kubectl canary start --auto`: automated progression. At each step the canary runs for
//! the interval with its pods' health watched, is analysed against the stable pods, and is
//! promoted on a pass or rolled back on a failure, up to 100%.

use canary_core::analysis_spec::AnalysisSpec;
use canary_core::gate::ApprovalGates;
use canary_core::machine::Goal;
use canary_core::step_policy::NextStep;
use canary_kube::analysis::{AnalysisTarget, RunOptions, run_analysis};
use canary_kube::engine::{DriveOptions, Engine, GateOutcome};
use canary_kube::error::CanaryError;
use canary_kube::ops;
use canary_kube::store::StoredRecord;

use crate::config::start::StartConfig;
use crate::config::{Config, OutputFormat};
use crate::exit_code;
use crate::output::{
    AutoOutcome, AutoResult, notice, print_structured, progress_printer, verdict_text,
};

/// Runs the steps after `start` has held the first one; returns the exit code. `sizes`
/// (from [`canary_core::rollout_math::step_sizes`]) and `spec` were checked before start changed anything.
pub async fn run(
    config: &Config,
    start: &StartConfig,
    engine: &Engine,
    held: StoredRecord,
    sizes: &[i32],
    gates: &ApprovalGates,
    spec: &AnalysisSpec,
) -> Result<i32, CanaryError> {
    let human = matches!(config.output, OutputFormat::Table | OutputFormat::Wide);
    let name = held.record.deployment.clone();
    let view = engine.view().await?;
    let events = engine.events(&view.deployment);
    let mut outcome = AutoOutcome {
        outcome: AutoResult::Inconclusive,
        steps: vec![],
        verdicts: vec![],
    };
    let mut stored = held;
    let mut printer = progress_printer(config.output);
    // The step held now: its place among the steps, and its pods; whether to grow to it
    // first (not for the first step, nor when a step is analysed again).
    let (mut index, mut pods) = (0, sizes[0]);
    let mut grow = false;
    loop {
        if grow {
            notice(&format!(
                "step {}: growing the canary to {pods} pod(s)",
                index + 1
            ));
            let next = tokio::select! {
                result = engine.continue_to(stored, Goal::Hold { pods }, true, DriveOptions { timeout: config.timeout, progress: &mut printer }) => result?,
                _ = crate::signals::interrupted() => return interrupted(config, engine, start, &name, outcome).await,
            };
            stored = next.expect("holding keeps the record");
        }
        if outcome.steps.last() != Some(&pods) {
            outcome.steps.push(pods);
        }
        events
            .normal(
                "CanaryStep",
                format!(
                    "kubectl-canary: step {} of {}: {pods} canary pod(s), analysing for {}s",
                    index + 1,
                    sizes.len(),
                    start.run.interval.as_secs()
                ),
            )
            .await;
        notice(&format!(
            "step {}/{}: {pods} canary pod(s); watching pod health for {}s, then analysing",
            index + 1,
            sizes.len(),
            start.run.interval.as_secs()
        ));
        // The analysis runs while a watch looks for foreign changes: what someone else does
        // during the interval comes first (a verdict on a canary another actor replaced
        // means nothing, and their change is not to be fought). A followed change of
        // replicas holds the canary at its new size and analyses again.
        let (verdict, view, target) = loop {
            let view = engine.view().await?;
            let target = AnalysisTarget::from_record(&view, &stored.record)?;
            let options = RunOptions {
                observe_for: start.run.interval,
                keep_waiting: true,
                ..RunOptions::default()
            };
            tokio::select! {
                verdict = run_analysis(engine.client(), &target, spec, options) => break (verdict?, view, target),
                change = engine.next_foreign(&stored) => {
                    engine.handle_foreign(change?, &mut stored, &mut printer).await?;
                    stored = engine
                        .hold_again(
                            stored,
                            DriveOptions {
                                timeout: config.timeout,
                                progress: &mut printer,
                            },
                        )
                        .await?;
                }
                _ = crate::signals::interrupted() => return interrupted(config, engine, start, &name, outcome).await,
            }
        };
        if human {
            print!("{}", verdict_text(&verdict));
        }
        events.verdict_moment(&verdict, &stored.record).await;
        if let Some(warning) = canary_kube::history::note_round(
            engine.client(),
            &view,
            Some(stored.record.started_at.as_str()),
            &target,
            &verdict,
        )
        .await
        {
            tracing::warn!("{warning}");
        }
        let decision = verdict.decision;
        outcome.verdicts.push(verdict);
        // The controller takes the same step after its analyses.
        let next = ops::step::after_analysis(&stored.record, decision, sizes, pods).step;
        if let Some(before) = canary_core::step_policy::gate_before(gates, next) {
            notice(&format!(
                "the analysis passed; {before} waits for an approval: `kubectl canary promote deploy/{name}` \
                 by someone allowed to update deploy/{name}{}",
                start
                    .run
                    .approval_timeout
                    .map(|t| format!(" (timeout {t})"))
                    .unwrap_or_default()
            ));
            let waited = tokio::select! {
                waited = engine.await_approval(&mut stored, before, start.run.approval_timeout, &mut printer) => waited?,
                _ = crate::signals::interrupted() => return interrupted(config, engine, start, &name, outcome).await,
            };
            match waited {
                GateOutcome::Approved => notice(&format!("{before}: approved")),
                GateOutcome::TimedOut => {
                    notice(&format!("nobody approved {before} in time: rolling back"));
                    return roll_back(config, engine, &name, stored, outcome, &mut printer).await;
                }
                GateOutcome::Foreign(change) => {
                    // As during an analysis: follow a change of replicas, hold again and
                    // analyse this step again (its verdict was on the old size).
                    engine
                        .handle_foreign(change, &mut stored, &mut printer)
                        .await?;
                    stored = engine
                        .hold_again(
                            stored,
                            DriveOptions {
                                timeout: config.timeout,
                                progress: &mut printer,
                            },
                        )
                        .await?;
                    grow = false;
                    continue;
                }
            }
        }
        match next {
            NextStep::Grow { to, .. } => (index, pods, grow) = (index + 1, to, true),
            NextStep::PromoteFull => break,
            NextStep::RollBack => {
                notice("the canary failed its analysis: rolling back");
                return roll_back(config, engine, &name, stored, outcome, &mut printer).await;
            }
            NextStep::Hold => {
                if human {
                    println!(
                        "the analysis stayed inconclusive: the canary stays held and recorded; decide with \
                         `kubectl canary promote deploy/{name} --full` or `kubectl canary abort deploy/{name}`"
                    );
                }
                finish(config, &outcome);
                return Ok(exit_code::INCONCLUSIVE);
            }
        }
    }
    match outcome.verdicts.last().and_then(|v| v.not_judged.as_ref()) {
        Some(blind) => notice(&format!(
            "every step passed: promoting to 100%, although the verdicts did not judge {blind}"
        )),
        None => notice("every step passed: promoting to 100%"),
    }
    let promote = engine.continue_to(
        stored,
        Goal::PromoteFull,
        true,
        DriveOptions {
            timeout: config.timeout,
            progress: &mut printer,
        },
    );
    tokio::select! {
        result = promote => { result?; }
        _ = crate::signals::interrupted() => {
            if start.run.abort_on_interrupt {
                return interrupted(config, engine, start, &name, outcome).await;
            }
            return Ok(left_with_intent(config, engine, &name, "promote --full", outcome).await);
        }
    }
    outcome.outcome = AutoResult::Promoted;
    finish(config, &outcome);
    Ok(exit_code::OK)
}

/// Rolls the canary back (a failed analysis, an approval that did not come in time).
async fn roll_back(
    config: &Config,
    engine: &Engine,
    name: &str,
    stored: StoredRecord,
    mut outcome: AutoOutcome,
    printer: &mut (dyn FnMut(&canary_kube::engine::Progress) + Send),
) -> Result<i32, CanaryError> {
    let rollback = engine.continue_to(
        stored,
        Goal::Abort,
        true,
        DriveOptions {
            timeout: config.timeout,
            progress: printer,
        },
    );
    tokio::select! {
        result = rollback => { result?; }
        _ = crate::signals::interrupted() => {
            return Ok(left_with_intent(config, engine, name, "abort", outcome).await);
        }
    }
    outcome.outcome = AutoResult::RolledBack;
    finish(config, &outcome);
    Ok(exit_code::ROLLED_BACK)
}

/// A signal during the rollback or the final promote: the record, written before the
/// Deployment, says how far it got; report that and how to complete it (leaving the
/// controller to go on is safer than turning around halfway).
async fn left_with_intent(
    config: &Config,
    engine: &Engine,
    name: &str,
    command: &str,
    mut outcome: AutoOutcome,
) -> i32 {
    let shown = match engine.record().await {
        Ok(stored) => stored.record.phase.describe(),
        Err(error) => format!("unreadable ({error})"),
    };
    notice(&format!(
        "interrupted: the record shows: {shown}; finish with `kubectl canary {command} deploy/{name}`, \
         or see `kubectl canary status deploy/{name}`"
    ));
    outcome.outcome = AutoResult::Interrupted;
    finish(config, &outcome);
    exit_code::INTERRUPTED
}

fn finish(config: &Config, outcome: &AutoOutcome) {
    print_structured(config.output, outcome);
}

/// Ctrl-C during the automated run: leave the canary held and recorded, or roll back with
/// `--abort-on-interrupt`; say how to continue.
async fn interrupted(
    config: &Config,
    engine: &Engine,
    start: &StartConfig,
    name: &str,
    mut outcome: AutoOutcome,
) -> Result<i32, CanaryError> {
    outcome.outcome = AutoResult::Interrupted;
    // The step the signal cancelled may have written without reading the answer.
    engine.interrupted();
    let stored = engine.verified_record().await?;
    let mut quiet = |_: &canary_kube::engine::Progress| {};
    if start.run.abort_on_interrupt {
        notice("interrupted: rolling back (--abort-on-interrupt)");
        engine
            .continue_to(
                stored,
                Goal::Abort,
                true,
                DriveOptions {
                    timeout: config.timeout,
                    progress: &mut quiet,
                },
            )
            .await?;
        notice("rolled back to the stable version");
    } else {
        let pods = engine.hold_where_recorded(stored, config.timeout).await?;
        notice(&format!(
            "interrupted: the canary stays held and recorded at {pods} pod(s); continue with \
             `kubectl canary promote deploy/{name} --canary N|--full` or `kubectl canary abort deploy/{name}`"
        ));
    }
    finish(config, &outcome);
    Ok(exit_code::INTERRUPTED)
}
