//! `kubectl canary promote` and `kubectl canary abort`: both continue a recorded canary
//! towards a new goal.

use canary_core::machine::{Decision, Goal};
use canary_core::seal::{SEAL_ANNOTATION, Seal};
use canary_core::traffic::Release;
use canary_kube::engine::{DriveOptions, Engine};
use canary_kube::error::CanaryError;
use canary_kube::ops::abort::{AbortCase, abort_case};
use canary_kube::ops::next::next_decision;
use canary_kube::ops::promote::{PromoteCase, promote_case, promote_goal};
use canary_kube::ops::switch::{self, Switched};
use canary_kube::preflight;
use canary_kube::traffic;
use canary_kube::trust::RecordRead;

use crate::config::lifecycle::{AbortConfig, PromoteConfig};
use crate::config::{Config, OutputFormat};
use crate::exit_code;
use crate::output::{
    CommandOutcome, CommandResult, DryRun, change_fields, notice, print_structured,
    progress_printer, released_text, status_text,
};

/// Runs `promote`.
pub async fn promote(config: &Config, promote: &PromoteConfig) -> Result<i32, CanaryError> {
    let name = &promote.deployment;
    let engine = Engine::new(&config.client, &config.namespace, name);
    let mut stored = match promote_case(&engine, engine.canary_state().await?.0, promote.dry_run)? {
        PromoteCase::FinishCleanup => return finish_cleanup(config, &engine, name).await,
        PromoteCase::ReleaseLeftoverPins => {
            return release_leftover_pins(config, &engine, name, "promote").await;
        }
        PromoteCase::Promote(stored) => stored,
    };
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

/// Runs `abort`: rolls a verified canary back; recovers a Deployment held without its
/// record (or, with `--recover`, ignoring it) from the seal and the stable ReplicaSet;
/// discards a record no update of the Deployment confirms; finishes a cleanup left undone.
pub async fn abort(config: &Config, abort: &AbortConfig) -> Result<i32, CanaryError> {
    let name = &abort.deployment;
    let engine = Engine::new(&config.client, &config.namespace, name);
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
    } else if goal != Goal::Abort {
        // Promote lets the canary pods in: the Services select every pod of the Deployment
        // again (a dark canary's pin released; sticky sessions stay until the end).
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

/// The command working towards `goal`, as a result document names it.
fn short_name(goal: Goal) -> &'static str {
    match goal {
        Goal::Abort => "abort",
        _ => "promote",
    }
}

/// Prints a command's result: the document with `-o json|yaml`, else `message`.
fn print_result(
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

async fn require_change_rights(
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

/// No record, but the seal of a finished canary is still on the Deployment (the last step
/// of a promotion or rollback did not run): takes it off, so the Deployment's annotations
/// are as they were before the canary.
async fn finish_cleanup(config: &Config, engine: &Engine, name: &str) -> Result<i32, CanaryError> {
    require_change_rights(engine, "kubectl canary", false).await?;
    release_pins(config, engine, Release::All, false).await?;
    engine.remove_seal().await?;
    let message = format!(
        "no canary is running; removed the {SEAL_ANNOTATION} annotation a finished canary left on the Deployment"
    );
    print_result(
        config,
        "abort",
        name,
        CommandOutcome::SealRemoved,
        message,
        None,
    );
    Ok(exit_code::OK)
}

/// `abort` without a usable record: the stable ReplicaSet named by the seal, with the seal's
/// original settings, in one update; then the record (if any) and the seal are deleted.
async fn recover(
    config: &Config,
    engine: &Engine,
    abort: &AbortConfig,
    seal: Seal,
    record: RecordRead,
) -> Result<i32, CanaryError> {
    let name = &abort.deployment;
    let human = matches!(config.output, OutputFormat::Table | OutputFormat::Wide);
    require_change_rights(engine, "kubectl canary abort", abort.dry_run).await?;
    let view = engine.view().await?;
    let recovery = engine.recovery_record(&view, &seal)?;
    if abort.dry_run {
        let decision = next_decision(engine, &recovery, Goal::Abort).await?;
        let dry_run = DryRun {
            dry_run: true,
            next: &decision,
        };
        if !print_structured(config.output, &dry_run) {
            println!("dry run: nothing changed.");
            if let Decision::Apply(change) = decision {
                println!("It would update deploy/{name}: {}", change.summary);
                println!("  {}", change_fields(&change));
            }
            println!(
                "Then it would delete the record {} (if any) and the {SEAL_ANNOTATION} annotation.",
                engine.store().name()
            );
        }
        return Ok(exit_code::OK);
    }
    if human {
        let why = match &record {
            RecordRead::Missing => "its record is missing".to_string(),
            RecordRead::Unreadable(u) => format!("its record is unreadable ({})", u.detail),
            RecordRead::Decoded(_) => "--recover: the record is ignored".to_string(),
        };
        println!(
            "kubectl canary abort deploy/{name}: {why}; rolling back to the stable ReplicaSet {} with the \
             original settings kept in the {SEAL_ANNOTATION} annotation",
            seal.stable.replica_set
        );
    }
    let mut printer = progress_printer(config.output);
    let options = DriveOptions {
        timeout: config.timeout,
        progress: &mut printer,
    };
    tokio::select! {
        result = engine.recover_without_record(&seal, record, abort.wait, options) => result?,
        _ = tokio::signal::ctrl_c() => {
            let message = format!("interrupted: run `kubectl canary abort deploy/{name}` again to finish");
            notice(&message);
            print_result(config, "abort", name, CommandOutcome::Interrupted, message, None);
            return Ok(exit_code::INTERRUPTED);
        }
    }
    release_pins(config, engine, Release::All, true).await?;
    let report = engine.status_report().await?;
    if human {
        print!("{}", status_text(&report, false));
        return Ok(exit_code::OK);
    }
    let message = format!(
        "rolled back: the stable ReplicaSet {} runs on every pod of deploy/{name} with the original settings",
        seal.stable.replica_set
    );
    print_result(
        config,
        "abort",
        name,
        CommandOutcome::RolledBack,
        message,
        Some(report),
    );
    Ok(exit_code::OK)
}

/// Releases this Deployment's pins on the Services in front of it (found on the Services
/// themselves, see `canary_kube::traffic`) and says what was done; that Services could not
/// be listed only when pins are `expected`.
async fn release_pins(
    config: &Config,
    engine: &Engine,
    release: Release,
    expected: bool,
) -> Result<(), CanaryError> {
    let uid = engine
        .view()
        .await?
        .deployment
        .metadata
        .uid
        .unwrap_or_default();
    let mut released = traffic::release(engine.client(), engine.namespace(), &uid, release).await?;
    released.services_hidden &= expected;
    if matches!(config.output, OutputFormat::Table | OutputFormat::Wide) {
        let what = match release {
            Release::Selector => "selects every pod of the Deployment again (canary pods included)",
            Release::All => "put back exactly as it was before the canary",
        };
        print!("{}", released_text(&released, what));
    }
    Ok(())
}

/// No canary, but Services still pinned by one (a start interrupted before it changed the
/// Deployment, or a promotion or rollback interrupted after deleting its record): puts
/// them back; without any, "no canary".
async fn release_leftover_pins(
    config: &Config,
    engine: &Engine,
    name: &str,
    command: &'static str,
) -> Result<i32, CanaryError> {
    let uid = engine
        .view()
        .await?
        .deployment
        .metadata
        .uid
        .unwrap_or_default();
    if traffic::pins(engine.client(), engine.namespace(), &uid)
        .await?
        .is_empty()
    {
        return Err(engine.no_canary());
    }
    require_change_rights(engine, "kubectl canary", false).await?;
    release_pins(config, engine, Release::All, true).await?;
    print_result(
        config,
        command,
        name,
        CommandOutcome::ServicesRestored,
        "no canary is running; put back the Services a finished or interrupted canary had left pinned"
            .to_string(),
        None,
    );
    Ok(exit_code::OK)
}

/// Blue/Green: every Service to one set ([`canary_kube::ops::switch`]), said.
async fn switch_sets(
    config: &Config,
    engine: &Engine,
    record: &canary_core::record::CanaryRecord,
    goal: Goal,
) -> Result<(), CanaryError> {
    let Switched { services, hash } =
        switch::switch_sets(engine, record, goal, config.timeout).await?;
    if matches!(config.output, OutputFormat::Table | OutputFormat::Wide) {
        let side = if goal == Goal::Abort { "old" } else { "new" };
        for service in &services {
            println!(
                "  ✓ service/{service}: switched to the {side} set (pod-template-hash={hash}) in one update; its endpoints follow"
            );
        }
    }
    Ok(())
}
