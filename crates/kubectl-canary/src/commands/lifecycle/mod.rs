//! `kubectl canary promote` and `kubectl canary abort`: both continue a recorded canary
//! towards a new goal.

use canary_core::gate::{APPROVE_ANNOTATION, AwaitedGate, GatedStep};
use canary_core::machine::{Decision, Goal};
use canary_core::traffic::Release;
use canary_kube::engine::{DriveOptions, Engine};
use canary_kube::error::CanaryError;
use canary_kube::gate::approval_of;
use canary_kube::ops::abort::{AbortCase, abort_case};
use canary_kube::ops::next::next_decision;
use canary_kube::ops::promote::{GateCase, PromoteCase, gate_case, promote_case, promote_goal};
use canary_kube::preflight;
use canary_kube::traffic;

mod blue_green;
mod cleanup;
mod recover;

use self::blue_green::switch_sets;
use self::cleanup::{finish_cleanup, release_leftover_pins, release_pins};
use self::recover::recover;
use crate::config::lifecycle::{AbortConfig, PromoteConfig};
use crate::config::{Config, OutputFormat};
use crate::exit_code;
use crate::output::{
    CommandOutcome, CommandResult, DryRun, change_fields, notice, print_structured,
    progress_printer, status_text,
};

/// Runs `promote`.
pub async fn promote(config: &Config, promote: &PromoteConfig) -> Result<i32, CanaryError> {
    let notifier = crate::notices::notifier(
        config,
        &promote.notify,
        &promote.deployment,
        canary_core::notify::Sender::Cli,
    )
    .await?;
    let result = promote_with(config, promote, notifier.clone()).await;
    crate::notices::flush(&notifier).await;
    result
}

async fn promote_with(
    config: &Config,
    promote: &PromoteConfig,
    notifier: canary_kube::notify::Notifier,
) -> Result<i32, CanaryError> {
    let name = &promote.deployment;
    let engine = Engine::new(&config.client, &config.namespace, name).with_notifier(notifier);
    // One view for the whole command: its watches decide every step, and the state is
    // read from them. A user who may not list or watch is refused by the preflight below,
    // which names what is missing.
    watch_all(&engine).await?;
    let (state, view) = engine.canary_state().await?;
    let mut stored = match promote_case(&engine, state, promote.ask, promote.dry_run)? {
        PromoteCase::FinishCleanup => return finish_cleanup(config, &engine, name).await,
        PromoteCase::ReleaseLeftoverPins => {
            return release_leftover_pins(config, &engine, name, "promote").await;
        }
        PromoteCase::Promote(stored) => stored,
    };
    match gate_case(name, &stored, approval_of(&view.deployment), promote.ask)? {
        Some(GateCase::Approve(gate)) => {
            return approve(config, &engine, name, &gate, promote.dry_run).await;
        }
        Some(GateCase::PromoteHere) | None => {}
    }
    let goal = promote_goal(&engine, &mut stored, promote.canary).await?;
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

/// How long a bare `promote` waits for the run (or controller) at the gate to take the step
/// it approved.
const GATE_PICKUP: std::time::Duration = std::time::Duration::from_secs(30);

/// A bare `promote` at an approval gate: writes the gate's approval on the Deployment and
/// waits for whoever waits there to take the step.
async fn approve(
    config: &Config,
    engine: &Engine,
    name: &str,
    gate: &AwaitedGate,
    dry_run: bool,
) -> Result<i32, CanaryError> {
    require_change_rights(engine, "kubectl canary promote", dry_run).await?;
    if dry_run {
        println!(
            "dry run: nothing changed. It would approve {} of deploy/{name}: annotation {}={} on the Deployment.",
            gate.before, APPROVE_ANNOTATION, gate.token
        );
        return Ok(exit_code::OK);
    }
    engine.approve(canary_kube::write::CLI, gate).await?;
    notice(&format!(
        "approved {} of deploy/{name}; waiting for the run that waits at the gate to take it",
        gate.before
    ));
    if !engine.gate_taken(gate, GATE_PICKUP).await? {
        let waiting = engine
            .record()
            .await
            .map(|stored| {
                let by = &stored.record.started_by;
                format!("{} on {}, pid {}", by.user, by.host, by.pid)
            })
            .unwrap_or_else(|_| "the run that started it".into());
        return Err(CanaryError::TimedOut {
            what: format!(
                "the run at the approval gate of deploy/{name} to take the approved step ({}); the approval is \
                 written, but the run that waited ({waiting}) may be gone: take the step yourself with \
                 `kubectl canary promote deploy/{name} {}`",
                gate.before,
                match gate.before {
                    GatedStep::Full => "--full".to_string(),
                    GatedStep::Pods(pods) => format!("--canary {pods}"),
                }
            ),
            seconds: GATE_PICKUP.as_secs(),
            last: "still waiting at the gate".into(),
        });
    }
    print_result(
        config,
        "promote",
        name,
        CommandOutcome::Approved,
        format!(
            "approved {} of deploy/{name}: the run that waited takes it (see `kubectl canary status deploy/{name}`)",
            gate.before
        ),
        None,
    );
    Ok(exit_code::OK)
}

/// Runs `abort`: rolls a verified canary back; recovers a Deployment held without its
/// record (or, with `--recover`, ignoring it) from the seal and the stable ReplicaSet;
/// discards a record no update of the Deployment confirms; finishes a cleanup left undone.
pub async fn abort(config: &Config, abort: &AbortConfig) -> Result<i32, CanaryError> {
    let notifier = crate::notices::notifier(
        config,
        &abort.notify,
        &abort.deployment,
        canary_core::notify::Sender::Cli,
    )
    .await?;
    let result = abort_with(config, abort, notifier.clone()).await;
    crate::notices::flush(&notifier).await;
    result
}

async fn abort_with(
    config: &Config,
    abort: &AbortConfig,
    notifier: canary_kube::notify::Notifier,
) -> Result<i32, CanaryError> {
    let name = &abort.deployment;
    let engine = Engine::new(&config.client, &config.namespace, name).with_notifier(notifier);
    // One view for the whole command: its watches decide every step, and the state is
    // read from them. A user who may not list or watch is refused by the preflight below,
    // which names what is missing.
    watch_all(&engine).await?;
    let (state, view) = engine.canary_state().await?;
    let stored = match abort_case(&engine, state, &view, abort.recover, abort.dry_run)? {
        AbortCase::RollBack(stored) => stored,
        AbortCase::Recover { seal, record } => {
            return recover(config, &engine, abort, seal, record).await;
        }
        AbortCase::DiscardUnconfirmed(stored) => {
            require_change_rights(&engine, "kubectl canary abort", abort.dry_run).await?;
            if abort.dry_run {
                println!(
                    "dry run: nothing changed. It would delete the record {}, which no update of deploy/{name} \
                     confirms, and write nothing to the Deployment.",
                    engine.store().name()
                );
                return Ok(exit_code::OK);
            }
            engine.discard_record(&stored).await?;
            let message = format!(
                "deleted the record {}: no update of deploy/{name} by kubectl-canary confirms it (a start that \
                 stopped before changing anything, or a record someone created); nothing was written to the Deployment",
                engine.store().name()
            );
            let expected = stored.record.traffic.is_some();
            release_pins(config, &engine, Release::All, expected).await?;
            print_result(
                config,
                "abort",
                name,
                CommandOutcome::RecordDiscarded,
                message,
                None,
            );
            return Ok(exit_code::OK);
        }
        AbortCase::DeleteUnreadable(unreadable) => {
            require_change_rights(&engine, "kubectl canary abort", abort.dry_run).await?;
            if abort.dry_run {
                println!(
                    "dry run: nothing changed. It would delete the unreadable record {}.",
                    engine.store().name()
                );
                return Ok(exit_code::OK);
            }
            engine.delete_unreadable(&unreadable).await?;
            let message = format!(
                "deleted the unreadable record {} ({}); deploy/{name} carries no canary, nothing was written to it",
                engine.store().name(),
                unreadable.detail
            );
            print_result(
                config,
                "abort",
                name,
                CommandOutcome::UnreadableRecordDeleted,
                message,
                None,
            );
            return Ok(exit_code::OK);
        }
        AbortCase::FinishCleanup => return finish_cleanup(config, &engine, name).await,
        AbortCase::ReleaseLeftoverPins => {
            return release_leftover_pins(config, &engine, name, "abort").await;
        }
    };
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
        let decision = next_decision(engine, &stored.record, goal).await?;
        let dry_run = DryRun {
            dry_run: true,
            next: &decision,
        };
        if !print_structured(config.output, &dry_run) {
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
            let uid = &stored.record.deployment_uid;
            let blue_green = stored.record.traffic.is_some_and(|t| t.blue_green);
            for (service, pin, _) in traffic::pins(engine.client(), engine.namespace(), uid).await?
            {
                if blue_green {
                    let side = if goal == Goal::Abort { "old" } else { "new" };
                    println!(
                        "It would first switch service/{service} to the {side} set in one update and wait for its endpoints."
                    );
                } else if pin.is_dark() && goal != Goal::Abort {
                    println!(
                        "It would first let service/{service} select the canary pods (the dark pin released)."
                    );
                }
                if !matches!(goal, Goal::Hold { .. }) {
                    println!(
                        "It would put service/{service} back exactly as it was once the canary is over."
                    );
                }
            }
        }
        return Ok(exit_code::OK);
    }
    if human {
        println!("{command} deploy/{name}:");
        println!("  by hand: {by_hand}");
    }
    // Whether this canary asked for pins (the record says; a user who cannot see Services
    // is warned only then).
    let pinned = stored.record.traffic.is_some();
    if stored.record.traffic.is_some_and(|t| t.blue_green) {
        // Blue/Green: every Service to one set in one update (the new one on promote, the
        // old one on abort), and the old set stays until the dataplane has followed.
        switch_sets(config, engine, &stored.record, goal).await?;
    } else if goal != Goal::Abort && pinned {
        // Promote lets the canary pods in: the Services select every pod of the Deployment
        // again (a dark canary's pin released; sticky sessions stay until the end). Only a
        // canary whose record asked for pins has any to release now; pins left by an
        // earlier, interrupted one are put back with the rest at the end.
        release_pins(config, engine, Release::Selector, pinned).await?;
    }
    // The first SIGINT/SIGTERM leaves the record's intent in place (crate::signals).
    let _handling = crate::signals::Handling::begin();
    let mut printer = progress_printer(config.output);
    let outcome = tokio::select! {
        result = engine.continue_to(stored, goal, wait, DriveOptions { timeout: config.timeout, progress: &mut printer }) => result,
        _ = crate::signals::interrupted() => {
            let message = format!("interrupted: the record keeps the intent; run the same command again to finish, \
                      or see `kubectl canary status deploy/{name}`");
            notice(&message);
            print_result(config, short_name(goal), &name, CommandOutcome::Interrupted, message, None);
            return Ok(exit_code::INTERRUPTED);
        }
    }?;
    if outcome.is_none() {
        // The canary is over (promoted or rolled back, record deleted): the Services exactly
        // as they were before it.
        release_pins(config, engine, Release::All, pinned).await?;
    }
    let report = engine.status_report().await?;
    config.remember(engine).await;
    if human {
        print!("{}", status_text(&report, false));
        return Ok(exit_code::OK);
    }
    let (result, message) = match goal {
        Goal::Abort => (
            CommandOutcome::RolledBack,
            format!(
                "rolled back: the stable version runs on every pod of deploy/{name}, the canary is closed"
            ),
        ),
        Goal::PromoteFull => (
            CommandOutcome::Promoted,
            format!(
                "promoted: the new version runs on every pod of deploy/{name}, the canary is closed"
            ),
        ),
        Goal::Hold { pods } => (
            CommandOutcome::Held,
            format!("the canary of deploy/{name} is held at {pods} pod(s)"),
        ),
    };
    print_result(
        config,
        short_name(goal),
        &name,
        result,
        message,
        Some(report),
    );
    Ok(exit_code::OK)
}

/// Starts the command's live view; a list or watch RBAC forbids leaves the reads to
/// fresh requests (the preflight then refuses with what is missing).
async fn watch_all(engine: &Engine) -> Result<(), CanaryError> {
    match engine.live().await {
        Err(error) if error.kind() == canary_kube::error::ErrorKind::Forbidden => Ok(()),
        other => other.map(|_| ()),
    }
}

/// The command working towards `goal`, as a result document names it.
fn short_name(goal: Goal) -> &'static str {
    match goal {
        Goal::Abort => "abort",
        _ => "promote",
    }
}

/// Prints a command's result: the document with `-o json|yaml`, else `message`.
pub(super) fn print_result(
    config: &Config,
    command: &'static str,
    name: &str,
    outcome: CommandOutcome,
    message: String,
    status: Option<canary_kube::status::StatusReport>,
) {
    let result = CommandResult {
        command,
        namespace: config.namespace.clone(),
        deployment: name.to_string(),
        outcome,
        message,
        status,
    };
    crate::output::print_result(config.output, &result);
}

pub(super) async fn require_change_rights(
    engine: &Engine,
    command: &str,
    dry_run: bool,
) -> Result<(), CanaryError> {
    let permissions: &[&[preflight::Permission]] = if dry_run {
        &[preflight::READ]
    } else {
        &[preflight::READ, preflight::CHANGE]
    };
    preflight::require(engine.client(), engine.namespace(), command, permissions).await
}
