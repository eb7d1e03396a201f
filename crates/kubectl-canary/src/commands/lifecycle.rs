//! `kubectl canary promote` and `kubectl canary abort`: both continue a recorded canary
//! towards a new goal.

use canary_core::machine::{Decision, Goal, decide};
use canary_core::rollout_math::{grows, resolve_canary};
use canary_kube::engine::{DriveOptions, Engine};
use canary_kube::error::CanaryError;
use canary_kube::preflight;

use crate::config::lifecycle::{AbortConfig, PromoteConfig};
use crate::config::{Config, OutputFormat};
use crate::exit_code;
use crate::output::{change_fields, print_structured, progress_printer, status_text};

/// Runs `promote`.
pub async fn promote(config: &Config, promote: &PromoteConfig) -> Result<i32, CanaryError> {
    let name = &promote.deployment;
    let engine = Engine::new(&config.client, &config.namespace, name);
    let mut stored = engine.record().await?;
    let goal = match promote.canary {
        None => Goal::PromoteFull,
        Some(size) => {
            // The size asked for is kept as asked (a share stays a share if replicas change).
            stored.record.requested_size = Some(size);
            let record = &stored.record;
            // Against the replicas now: an HPA or `kubectl scale` may have changed them.
            let replicas = engine.view().await?.replicas();
            let canary = resolve_canary(size, replicas, record.mode)
                .map_err(|e| CanaryError::Refused(e.to_string()))?;
            if let Some(held) = record.held_pods()
                && !grows(held, canary.pods)
            {
                return Err(CanaryError::Refused(format!(
                    "--canary {size} is {} pod(s), but the canary already has {held}; a canary only grows: \
                     give a larger size, or use --full to roll out to every pod",
                    canary.pods
                )));
            }
            if canary.pods >= replicas {
                return Err(CanaryError::Refused(format!(
                    "--canary {size} is {} pod(s), every pod of deploy/{name}: use `kubectl canary promote deploy/{name} --full`",
                    canary.pods
                )));
            }
            Goal::Hold { pods: canary.pods }
        }
    };
    let by_hand = match goal {
        Goal::PromoteFull => format!(
            "kubectl rollout resume deploy/{name}   (and put maxSurge/maxUnavailable back by hand)"
        ),
        _ => format!(
            "kubectl rollout resume deploy/{name} && kubectl rollout pause deploy/{name}   (a race again)"
        ),
    };
    run_goal(
        config,
        &engine,
        stored,
        goal,
        promote.dry_run,
        promote.wait,
        &by_hand,
    )
    .await
}

/// Runs `abort`.
pub async fn abort(config: &Config, abort: &AbortConfig) -> Result<i32, CanaryError> {
    let name = &abort.deployment;
    let engine = Engine::new(&config.client, &config.namespace, name);
    let stored = engine.record().await?;
    let by_hand = format!(
        "kubectl rollout undo deploy/{name}   (refused while paused: \"you cannot rollback a paused deployment\"; \
         resuming first rolls the canary forward)"
    );
    run_goal(
        config,
        &engine,
        stored,
        Goal::Abort,
        abort.dry_run,
        abort.wait,
        &by_hand,
    )
    .await
}

async fn run_goal(
    config: &Config,
    engine: &Engine,
    stored: canary_kube::store::StoredRecord,
    goal: Goal,
    dry_run: bool,
    wait: bool,
    by_hand: &str,
) -> Result<i32, CanaryError> {
    let name = stored.record.deployment.clone();
    let human = matches!(config.output, OutputFormat::Table | OutputFormat::Wide);
    let command = match goal {
        Goal::Abort => "kubectl canary abort",
        _ => "kubectl canary promote",
    };
    preflight::require(
        engine.client(),
        engine.namespace(),
        command,
        &[preflight::READ, preflight::CHANGE],
    )
    .await?;
    if dry_run {
        let view = engine.view().await?;
        let decision = decide(&stored.record, goal, &view.observation(&stored.record));
        if !print_structured(config.output, &decision) {
            println!("dry run: nothing changed.");
            match decision {
                Decision::Apply(change) => {
                    println!("It would update deploy/{name}: {}", change.summary);
                    println!("  {}", change_fields(&change));
                }
                Decision::Resize(resize) => println!("It would {}", resize.summary),
                Decision::Wait(_) | Decision::Reached => {
                    println!(
                        "No update needed; it would wait for the controller and then delete the record."
                    )
                }
                Decision::Stuck(stuck) => {
                    println!("It could not proceed: {}", stuck.explain(&name))
                }
            }
        }
        return Ok(exit_code::OK);
    }
    if human {
        println!("{command} deploy/{name}:");
        println!("  by hand: {by_hand}");
    }
    // The first SIGINT/SIGTERM leaves the record's intent in place (crate::signals).
    let _handling = crate::signals::Handling::begin();
    let mut printer = progress_printer(config.output);
    let outcome = tokio::select! {
        result = engine.continue_to(stored, goal, wait, DriveOptions { timeout: config.timeout, progress: &mut printer }) => result,
        _ = crate::signals::interrupted() => {
            println!("interrupted: the record keeps the intent; run the same command again to finish, \
                      or see `kubectl canary status deploy/{name}`");
            return Ok(exit_code::INTERRUPTED);
        }
    }?;
    if outcome.is_some() || human {
        let report = engine.status_report().await?;
        if !print_structured(config.output, &report) {
            print!("{}", status_text(&report, false));
        }
    }
    Ok(exit_code::OK)
}
