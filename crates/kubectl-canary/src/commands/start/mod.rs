//! `kubectl canary start`.

pub mod apply;
mod auto;

use std::time::Duration;

use canary_core::rollout_math::step_sizes;
use canary_core::text::{images_text, share_text};
use canary_kube::engine::{CanaryPods, DriveOptions, Engine, StartPlan};
use canary_kube::error::CanaryError;
use canary_kube::observe::DeploymentView;
use canary_kube::trust::CanaryState;

use crate::config::start::StartConfig;
use crate::config::{Config, OutputFormat};
use crate::exit_code;
use crate::output::{
    CommandOutcome, CommandResult, change_fields, notice, print_result, print_structured,
    progress_printer,
};

/// Runs `start`; returns the exit code.
pub async fn run(config: &Config, start: &StartConfig) -> Result<i32, CanaryError> {
    let planned = plan(config, start).await?;
    execute(config, start, planned).await
}

/// A start checked and worked out, nothing changed yet.
pub(crate) struct PlannedStart {
    engine: Engine,
    plan: StartPlan,
    view: DeploymentView,
    steps: Vec<i32>,
}

/// Checks everything `start` needs and works out what it will do, changing nothing.
pub(crate) async fn plan(
    config: &Config,
    start: &StartConfig,
) -> Result<PlannedStart, CanaryError> {
    let engine = Engine::new(&config.client, &config.namespace, &start.deployment);
    let request = start.request_in(&config.namespace)?;
    let (plan, view) = engine.plan_start(&request, start.dry_run).await?;
    let steps =
        step_sizes(&start.steps, &plan.canary).map_err(|e| CanaryError::Refused(e.to_string()))?;
    Ok(PlannedStart {
        engine,
        plan,
        view,
        steps,
    })
}

/// Carries out a planned start (or prints it, with `--dry-run`); returns the exit code.
pub(crate) async fn execute(
    config: &Config,
    start: &StartConfig,
    planned: PlannedStart,
) -> Result<i32, CanaryError> {
    let PlannedStart {
        engine,
        plan,
        view,
        steps,
    } = planned;
    let name = &start.deployment;
    let canary = plan.canary;
    let human = !matches!(config.output, OutputFormat::Json | OutputFormat::Yaml);
    if human {
        println!(
            "start deploy/{name}: {} canary pod(s) changing {} beside {} stable ({} mode): {} of traffic, {} extra pod(s)",
            canary.pods,
            plan.record.change_summary(),
            canary.stable_pods,
            canary.mode,
            share_text(canary.traffic_share()),
            canary.extra_pods()
        );
        if start.manifest.is_none() && start.request.release.images_only() {
            println!(
                "  by hand: kubectl set image deploy/{name} {} && kubectl rollout pause deploy/{name}   (a race: the pause lands whenever it lands)",
                images_text(&start.request.release.images)
            );
        }
    }
    if start.dry_run {
        if !print_structured(config.output, &plan) {
            println!("dry run: nothing changed. The pod template would change:");
            for change in &plan.template_changes {
                println!("    {}", change.line());
            }
            println!("It would:");
            println!(
                "  1. create configmap/{} recording the original settings and the stable ReplicaSet {} (revision {})",
                engine.store().name(),
                plan.stable.replica_set,
                plan.stable.revision
            );
            for (i, change) in plan.changes.iter().enumerate() {
                println!("  {}. update deploy/{name}: {}", i + 2, change.summary);
                println!("     {}", change_fields(change));
            }
        }
        return Ok(exit_code::OK);
    }
    // From here on the first SIGINT/SIGTERM settles into a safe state (crate::signals).
    let _handling = crate::signals::Handling::begin();
    let mut printer = progress_printer(config.output);
    let started = tokio::select! {
        result = engine.start(plan.clone(), &view, DriveOptions { timeout: config.timeout, progress: &mut printer }) => result,
        _ = crate::signals::interrupted() => {
            return interrupted(&engine, config).await;
        }
    }?;
    if human {
        println!(
            "  ✓ held: exactly {} canary pod(s) and {} stable, Deployment paused (no brake while held)\n    by hand: kubectl rollout pause deploy/{name}",
            canary.pods, canary.stable_pods
        );
    }
    if let Some(spec) = &start.auto_analysis {
        return auto::run(config, start, &engine, started, &steps, spec).await;
    }
    let mut code = exit_code::OK;
    if start.wait {
        let ready = tokio::select! {
            ready = wait_for_canary_pods(&engine, started.clone(), config.timeout, human, &mut printer) => ready?,
            _ = crate::signals::interrupted() => {
                notice(&format!("interrupted: the canary stays held and recorded; see `kubectl canary status deploy/{name}`"));
                return Ok(exit_code::INTERRUPTED);
            }
        };
        if !ready {
            code = exit_code::CANARY_UNHEALTHY;
        }
    }
    let report = engine.status_report().await?;
    if !print_structured(config.output, &report) {
        print!("{}", crate::output::status_text(&report, false));
    }
    Ok(code)
}

/// Waits until the canary pods are Ready, reporting the first problem (unschedulable,
/// crash-looping, image pull failure, a ReplicaSet that cannot create pods) as soon as it
/// shows. A foreign change ends the wait as it ends the engine's. Returns whether they are
/// ready.
async fn wait_for_canary_pods(
    engine: &Engine,
    mut started: canary_kube::store::StoredRecord,
    timeout: Duration,
    human: bool,
    progress: &mut (dyn FnMut(&canary_kube::engine::Progress) + Send),
) -> Result<bool, CanaryError> {
    let outcome = engine
        .wait_for_canary_pods(&mut started, timeout, progress)
        .await?;
    let record = &started.record;
    // The size held now (a followed change of replicas can change it).
    let pods = record.held_pods().unwrap_or(1);
    if human {
        match &outcome {
            CanaryPods::Unhealthy { problem } => {
                println!("  ✗ the canary is held but unhealthy: {problem}");
                println!(
                    "    look closer with `kubectl canary status deploy/{}`; roll back with `kubectl canary abort deploy/{}`",
                    record.deployment, record.deployment
                );
            }
            CanaryPods::CannotCreate { failure } => {
                println!("  ✗ the canary is held but has no pod: {failure}");
                println!(
                    "    fix the cause (quota, limit range, admission policy) and the ReplicaSet retries; \
                     or roll back with `kubectl canary abort deploy/{}`",
                    record.deployment
                );
            }
            CanaryPods::Ready { ready } => {
                println!("  ✓ {ready}/{pods} canary pod(s) Ready and receiving traffic")
            }
            CanaryPods::NotReadyInTime { ready } => println!(
                "  ✗ only {ready}/{pods} canary pod(s) Ready after {}s",
                timeout.as_secs()
            ),
        }
    }
    Ok(matches!(outcome, CanaryPods::Ready { .. }))
}

/// Ctrl-C during `start`: leave either nothing changed or a recorded, paused canary, and
/// say which.
async fn interrupted(engine: &Engine, config: &Config) -> Result<i32, CanaryError> {
    let message = settle_interrupted(engine, config).await?;
    notice(&message);
    let record = engine.store().name();
    let result = CommandResult {
        command: "start",
        namespace: config.namespace.clone(),
        deployment: record.trim_end_matches(".kubectl-canary").to_string(),
        outcome: CommandOutcome::Interrupted,
        message,
        status: None,
    };
    print_result(config.output, &result);
    Ok(exit_code::INTERRUPTED)
}

/// Leaves either nothing changed or a recorded, paused canary; returns which, in words.
async fn settle_interrupted(engine: &Engine, config: &Config) -> Result<String, CanaryError> {
    // The listener said it is settling; a second signal ends the process from there.
    let stored = match engine.canary_state().await?.0 {
        CanaryState::None { .. } => {
            return Ok("interrupted before any change: nothing was changed".into());
        }
        // No update of the Deployment was made (none carries the seal): drop the record.
        CanaryState::Unconfirmed {
            stored,
            braked: false,
        } => {
            engine.discard_record(&stored).await?;
            return Ok(
                "interrupted before the Deployment was changed: removed the record, nothing is changed"
                    .into(),
            );
        }
        CanaryState::Verified { stored, .. } => stored,
        other => {
            return Err(other.error(
                engine.store().name().trim_end_matches(".kubectl-canary"),
                &engine.store().name(),
            ));
        }
    };
    let pods = engine.hold_where_recorded(stored, config.timeout).await?;
    Ok(format!(
        "interrupted after the Deployment was changed: left a recorded, paused canary of {pods} pod(s); \
         continue with `kubectl canary promote deploy/{0} ...` or roll back with `kubectl canary abort deploy/{0}`",
        engine.store().name().trim_end_matches(".kubectl-canary")
    ))
}
