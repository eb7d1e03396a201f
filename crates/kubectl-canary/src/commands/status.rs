//! `kubectl canary status`.

use canary_kube::engine::Engine;
use canary_kube::error::CanaryError;
use canary_kube::status::StatusReport;
use canary_kube::trust::{CanaryState, RecordRead, UnreadableRecord, classify};

use crate::config::status::StatusConfig;
use crate::config::{Config, OutputFormat};
use crate::exit_code;
use crate::output::{print_structured, status_text};

/// Prints the status once, or on every change with `--watch`; returns the exit code: 0, or
/// the code of a record that cannot be trusted or is lost.
pub async fn run(config: &Config, status: &StatusConfig) -> Result<i32, CanaryError> {
    let engine = Engine::new(&config.client, &config.namespace, &status.deployment);
    let mut last = None;
    let mut print = |report: StatusReport| {
        if last.as_ref() == Some(&report) {
            return;
        }
        if !print_structured(config.output, &report) {
            if status.watch && last.is_some() {
                println!("---");
            }
            print!(
                "{}",
                status_text(&report, config.output == OutputFormat::Wide)
            );
        }
        last = Some(report);
    };
    let (mut report, state) = engine.checked_status_report().await?;
    let code = exit_code_of(&state);
    // The Services held for this Deployment (dark canary, sticky sessions), read from the
    // Services themselves: while a dark pin holds, the canary's share of requests is 0.
    let uid = engine
        .view()
        .await?
        .deployment
        .metadata
        .uid
        .unwrap_or_default();
    let pins = canary_kube::traffic::pins(&config.client, &config.namespace, &uid).await?;
    if pins.iter().any(|(_, pin, _)| pin.is_dark()) && report.canary_traffic_share.is_some() {
        report.canary_traffic_share = Some(0.0);
    }
    print(report);
    if matches!(config.output, OutputFormat::Table | OutputFormat::Wide) {
        print!("{}", crate::output::pins_text(&pins));
    }
    if !status.watch {
        return Ok(code);
    }
    // One watch per kind (Deployment, ReplicaSets, pods, record) feeds a live view; each
    // burst of events is rendered once, and only a changed report is printed.
    let mut live = engine.live().await?;
    loop {
        live.changed(std::time::Duration::from_secs(60)).await;
        let view = live.view()?;
        let read = match live.record(engine.store()) {
            Ok(Some(stored)) => RecordRead::Decoded(stored),
            Ok(None) => RecordRead::Missing,
            Err(CanaryError::BadRecord { detail, .. }) => {
                RecordRead::Unreadable(UnreadableRecord {
                    detail,
                    uid: String::new(),
                    resource_version: String::new(),
                })
            }
            Err(other) => return Err(other),
        };
        let state = classify(&view, read)?;
        print(StatusReport::for_state(
            &config.namespace,
            &view,
            &state,
            &engine.store().name(),
        ));
    }
}

/// `status` exits non-zero when the record cannot be trusted or is lost, so scripts notice.
fn exit_code_of(state: &CanaryState) -> i32 {
    match state {
        CanaryState::Tampered { .. } | CanaryState::Unconfirmed { braked: true, .. } => {
            exit_code::RECORD_TAMPERED
        }
        CanaryState::RecordLost { .. } => exit_code::HELD_WITHOUT_RECORD,
        _ => exit_code::OK,
    }
}
