//! Rendering: tables for people, JSON/YAML for scripts, progress lines while waiting.

pub mod live;
mod plan;
pub mod report;
mod verdict;

pub use plan::{explanation_text, plan_text};
pub use verdict::verdict_text;

use std::io::Write;

use canary_core::machine::{SpecChange, Waiting};
use canary_core::record::images_of;
use canary_core::text::{images_text, share_text};
use canary_kube::engine::Progress;
use canary_kube::status::{SideStatus, StatusReport};
use comfy_table::{Table, presets::NOTHING};
use serde::Serialize;

use crate::cli::OutputFormat;

/// Prints a value as JSON or YAML; returns false for the human formats.
pub fn print_structured<T: Serialize>(format: OutputFormat, value: &T) -> bool {
    match format {
        OutputFormat::Json => {
            println!(
                "{}",
                serde_json::to_string_pretty(value).expect("output always serializes")
            );
            true
        }
        OutputFormat::Yaml => {
            print!(
                "{}",
                serde_saphyr::to_string(value).expect("output always serializes")
            );
            true
        }
        OutputFormat::Table | OutputFormat::Wide => false,
    }
}

/// A progress line for a step the engine took or waits for.
pub fn progress_line(progress: &Progress) -> String {
    match progress {
        Progress::Recorded { phase } => format!(
            "  ✓ recorded in the cluster: {} (the record is the lock, and lets any later run continue)",
            phase.describe()
        ),
        Progress::Updated { summary } => format!("  ✓ {summary}"),
        Progress::Waiting { waiting } => format!("  … {}", waiting_words(waiting)),
        Progress::Released => {
            "  ✓ deleted the canary record: the Deployment is free again".to_string()
        }
        Progress::Warning { message } => format!("  ! {message}"),
    }
}

/// What the engine waits for, in words.
pub fn waiting_words(waiting: &Waiting) -> String {
    match waiting {
        Waiting::ControllerToObserve => {
            "waiting for the Deployment controller to observe the change".into()
        }
        Waiting::BrakeTakingHold { available } => format!(
            "waiting for the brake to take hold: {available} canary pod(s) still counted Available"
        ),
        Waiting::CanaryScaling {
            canary,
            stable,
            wanted_canary,
            wanted_stable,
        } => format!(
            "waiting for the controller: canary ReplicaSet {canary}/{wanted_canary} pods, stable {stable}/{wanted_stable}"
        ),
        Waiting::RollingOut {
            updated,
            available,
            replicas,
            canary_pods_left,
        } => {
            if *canary_pods_left > 0 {
                format!(
                    "rolling back: {available}/{replicas} stable pods available, {canary_pods_left} canary pod(s) left"
                )
            } else {
                format!("rolling out: {updated}/{replicas} pods updated, {available} available")
            }
        }
    }
}

/// A progress callback that prints each step to stderr (stdout stays for results), unless
/// the output is structured and quiet is wanted.
pub fn progress_printer(format: OutputFormat) -> impl FnMut(&Progress) + Send {
    move |progress| {
        if matches!(format, OutputFormat::Table | OutputFormat::Wide) {
            println!("{}", progress_line(progress));
        } else {
            eprintln!("{}", progress_line(progress));
        }
        let _ = std::io::stdout().flush();
    }
}

fn images_cell(side: &SideStatus) -> String {
    images_text(&side.images)
}

/// The human status view.
pub fn status_text(report: &StatusReport, wide: bool) -> String {
    let mut out = String::new();
    let paused = if report.paused { ", paused" } else { "" };
    out.push_str(&format!(
        "deploy/{} in namespace {}: {} replicas{paused}\n",
        report.deployment, report.namespace, report.replicas
    ));
    out.push_str(&format!("phase: {}", report.phase));
    if let Some(mode) = report.mode {
        out.push_str(&format!(" ({mode} mode)"));
    }
    out.push('\n');
    if let Some(integrity) = &report.integrity {
        out.push_str(&format!("record: {integrity}\n"));
    }
    if let (Some(by), Some(at)) = (&report.started_by, &report.started_at) {
        out.push_str(&format!("started by {by} at {at}\n"));
    }
    let mut table = Table::new();
    table.load_style(NOTHING);
    let mut header = vec![
        "SIDE",
        "REVISION",
        "IMAGES",
        "DESIRED",
        "READY",
        "AVAILABLE",
        "RESTARTS",
    ];
    if wide {
        header.extend(["REPLICASET", "HASH", "PODS"]);
    }
    table.set_header(header);
    for (label, side) in [("stable", &report.stable), ("canary", &report.canary)] {
        if let Some(side) = side {
            let mut row = vec![
                label.to_string(),
                side.revision.to_string(),
                images_cell(side),
                side.desired.to_string(),
                side.ready.to_string(),
                side.available.to_string(),
                side.restarts.to_string(),
            ];
            if wide {
                row.extend([
                    side.replica_set.clone(),
                    side.pod_template_hash.clone(),
                    side.pods.to_string(),
                ]);
            }
            table.add_row(row);
        }
    }
    out.push_str(&table.to_string());
    out.push('\n');
    if let Some(share) = report.canary_traffic_share {
        out.push_str(&format!(
            "traffic: {} of requests reach the canary (its share of Ready pods behind the Service); extra pods: {}\n",
            share_text(share),
            report.extra_pods
        ));
    }
    for side in [&report.stable, &report.canary].into_iter().flatten() {
        for problem in &side.problems {
            out.push_str(&format!("problem: {problem}\n"));
        }
    }
    if let Some(pending) = &report.pending {
        let label = if report.foreign.is_some() {
            "changed by someone else"
        } else {
            "pending"
        };
        out.push_str(&format!("{label}: {pending}\n"));
    }
    if !report.next_steps.is_empty() {
        out.push_str("next:\n");
        for step in &report.next_steps {
            out.push_str(&format!("  {step}\n"));
        }
    }
    if wide && !report.history.is_empty() {
        out.push_str("history:\n");
        for line in &report.history {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}

/// The fields a [`SpecChange`] sets, on one line, for dry runs.
pub fn change_fields(change: &SpecChange) -> String {
    let settings = &change.settings;
    let template = change
        .template
        .as_ref()
        .map(|t| format!(", pod template with {}", images_text(&images_of(t))))
        .unwrap_or_default();
    format!(
        "spec.strategy={} minReadySeconds={} progressDeadlineSeconds={} paused={}{template}",
        settings.strategy,
        settings.min_ready_seconds.unwrap_or(0),
        settings
            .progress_deadline_seconds
            .map_or("unset".into(), |v| v.to_string()),
        settings.paused.unwrap_or(false),
    )
}
