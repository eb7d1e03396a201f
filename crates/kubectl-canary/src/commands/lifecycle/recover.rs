//! `abort` without a usable record: the rollback from the seal and the stable ReplicaSet.

use canary_core::machine::{Decision, Goal};
use canary_core::seal::{SEAL_ANNOTATION, Seal};
use canary_core::traffic::Release;
use canary_kube::engine::{DriveOptions, Engine};
use canary_kube::error::CanaryError;
use canary_kube::ops::next::next_decision;
use canary_kube::trust::RecordRead;

use crate::config::lifecycle::AbortConfig;
use crate::config::{Config, OutputFormat};
use crate::exit_code;
use crate::output::{
    CommandOutcome, DryRun, change_fields, notice, print_structured, progress_printer, status_text,
};

use super::release_pins;
use super::{print_result, require_change_rights};

/// `abort` without a usable record: the stable ReplicaSet named by the seal, with the seal's
/// original settings, in one update; then the record (if any) and the seal are deleted.
pub(super) async fn recover(
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
