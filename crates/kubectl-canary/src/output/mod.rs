//! Rendering: tables for people, JSON/YAML for scripts, progress lines while waiting.

pub mod colour;
mod document;
pub mod kinds;
pub mod live;
mod plan;
pub mod report;
mod traffic;
mod verdict;

pub use document::{
    AutoOutcome, AutoResult, CommandOutcome, CommandResult, Document, DryRun, Envelope,
    ExplainReport, PlanReport,
};

pub use plan::{explanation_text, plan_text};
pub use traffic::{pins_text, released_text};
pub use verdict::verdict_text;

use std::io::Write;

use canary_core::machine::{SpecChange, Waiting};
use canary_core::record::images_of;
use canary_core::text::{images_text, share_text};
use canary_kube::engine::Progress;
use canary_kube::status::{SideStatus, StatusReport};
use comfy_table::{Cell, Table, presets::NOTHING};

use crate::cli::OutputFormat;

/// Prints a document as JSON or YAML (with its `apiVersion` and `kind`); returns false for
/// the human formats. A YAML document starts with `---`, so that several (`status --watch`)
/// form one valid stream.
pub fn print_structured<T: Document>(format: OutputFormat, value: &T) -> bool {
    match structured_text(format, value) {
        Some(text) => {
            print!("{text}");
            let _ = std::io::stdout().flush();
            true
        }
        None => false,
    }
}

/// The document as printed in `format`, or `None` for the human formats.
pub fn structured_text<T: Document>(format: OutputFormat, value: &T) -> Option<String> {
    let document = Envelope::of(value);
    match format {
        OutputFormat::Json => Some(format!(
            "{}\n",
            serde_json::to_string_pretty(&document).expect("output always serializes")
        )),
        OutputFormat::Yaml => Some(format!(
            "---\n{}",
            serde_saphyr::to_string(&document).expect("output always serializes")
        )),
        OutputFormat::Table | OutputFormat::Wide => None,
    }
}

/// Prints a command's result: the document with `-o json|yaml`; else its message, on stdout
/// (an interruption's message was said on stderr already).
pub fn print_result(format: OutputFormat, result: &CommandResult) {
    if !print_structured(format, result) && result.outcome != CommandOutcome::Interrupted {
        println!("{}", result.message);
    }
}

/// Prints a message for people about what is going on (progress, a signal) to stderr, in
/// every output mode: stdout holds only the result.
pub fn notice(message: &str) {
    eprintln!("{message}");
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
    canary_core::text::waiting_text(waiting)
}

/// A progress callback that prints each step to stderr, in every output mode (stdout holds
/// only the result).
pub fn progress_printer(_format: OutputFormat) -> impl FnMut(&Progress) + Send {
    move |progress| notice(&progress_line(progress))
}

fn images_cell(side: &SideStatus) -> String {
    images_text(&side.images)
}

/// The human status view, coloured when stdout is a terminal (and `NO_COLOR` is not set).
pub fn status_text(report: &StatusReport, wide: bool) -> String {
    status_text_in(report, wide, colour::stdout_enabled())
}

/// The human status view: what is wrong first, then the phase, both sides and the next
/// steps (the advised one first).
pub fn status_text_in(report: &StatusReport, wide: bool, colour: bool) -> String {
    let mut out = String::new();
    let paused = if report.paused { ", paused" } else { "" };
    out.push_str(&format!(
        "deploy/{} in namespace {}: {} replicas{paused}\n",
        report.deployment, report.namespace, report.replicas
    ));
    out.push_str(&problems_text(&report.problems, colour));
    out.push_str(&format!("phase: {}", report.phase_description));
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
    if let Some(release) = &report.release {
        out.push_str(&format!("release: {release}\n"));
        if wide {
            for change in &report.template_changes {
                out.push_str(&format!("  {}\n", change.line()));
            }
        }
    }
    if let Some(size) = &report.canary_size {
        out.push_str(&size.line());
        out.push('\n');
    }
    if let Some(approval) = &report.approval {
        out.push_str(&colour::paint(
            &approval.line(),
            colour::Paint::Canary,
            colour,
        ));
        out.push('\n');
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
    if colour {
        table.enforce_styling();
    }
    let canary_paint = if report.unhealthy() {
        colour::Paint::Problem
    } else {
        colour::Paint::Canary
    };
    for (label, side, paint) in [
        ("stable", &report.stable, colour::Paint::Stable),
        ("canary", &report.canary, canary_paint),
    ] {
        if let Some(side) = side {
            let label = if colour {
                Cell::new(label).fg(paint.cell())
            } else {
                Cell::new(label)
            };
            let mut row = vec![
                label,
                Cell::new(side.revision),
                Cell::new(images_cell(side)),
                Cell::new(side.desired),
                Cell::new(side.ready),
                Cell::new(side.available),
                Cell::new(side.restarts),
            ];
            if wide {
                row.extend([
                    Cell::new(&side.replica_set),
                    Cell::new(&side.pod_template_hash),
                    Cell::new(side.pods),
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
    for failure in &report.notification_failures {
        let times = if failure.count > 1 {
            format!(", {} times", failure.count)
        } else {
            String::new()
        };
        out.push_str(&colour::paint(
            &format!(
                "notification failed ({}{times}): {}",
                failure.at, failure.message
            ),
            colour::Paint::Problem,
            colour,
        ));
        out.push('\n');
    }
    if let Some(withheld) = &report.promote_withheld {
        out.push_str(&colour::paint(
            &format!("not advised: {withheld}"),
            colour::Paint::Problem,
            colour,
        ));
        out.push('\n');
    }
    if wide && !report.history.is_empty() {
        out.push_str("history:\n");
        for line in &report.history {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}

/// The problems, one line each (`problem (SIDE, CODE): MESSAGE`) with the newest relevant
/// Event under it; nothing when nothing is wrong.
pub fn problems_text(problems: &[canary_core::problems::Problem], colour: bool) -> String {
    let mut out = String::new();
    for problem in problems {
        let line = format!(
            "problem ({}, {}): {}",
            problem.side.label(),
            problem.code.as_str(),
            problem.message
        );
        out.push_str(&colour::paint(&line, colour::Paint::Problem, colour));
        out.push('\n');
        if let Some(event) = &problem.evidence.event {
            out.push_str(&format!("  newest event: {event}\n"));
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
