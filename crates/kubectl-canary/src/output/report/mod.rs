//! The canary report: one self-contained HTML file (inline CSS and SVG, no script, no
//! external resource; a Content-Security-Policy forbids any), readable offline and
//! shareable. Every text from the cluster is escaped: the history and the Events can be
//! written by people with fewer rights than the reader, so nothing in them may run.

mod chart;

use std::fmt::Write as _;
use std::path::Path;

use canary_core::history::{CanaryHistory, measurement_series};
use canary_core::text::{images_text, share_text};
use canary_core::verdict::{Decision, format_number};
use canary_kube::history::HistoryRead;
use canary_kube::report::ReportData;

pub use chart::{CANARY_COLOUR, STABLE_COLOUR};

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1200px;color:#222;padding:0 16px}
h1{font-size:1.5em}h2{border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:32px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}code{background:#f5f5f5;padding:1px 4px;border-radius:3px}
.verdict{font-size:1.4em;font-weight:bold;padding:8px 12px;border-radius:6px;display:inline-block}
.pass{background:#d4edda;color:#155724}.fail{background:#f8d7da;color:#721c24}
.wait,.inconclusive,.none{background:#fff3cd;color:#856404}
.charts{display:flex;flex-wrap:wrap;gap:16px}.charts figure{margin:0}
figcaption{font-weight:600;margin-bottom:4px}
.axis{font-size:11px;fill:#555}.legend{font-size:12px;font-weight:600}
.bar{width:400px;height:18px;background:#a6c8e8;border-radius:3px;overflow:hidden;display:inline-block;vertical-align:middle}
.bar span{display:block;height:100%;background:#f4a6a6}
.warn{background:#fff3cd;border-left:4px solid #e0a800;padding:8px 12px}
.muted{color:#666}
";

/// The report as one HTML page. `tool_version` is the version that made it.
pub fn render(data: &ReportData, tool_version: &str) -> String {
    let history = match &data.history {
        HistoryRead::Found(history) => Some(history.as_ref()),
        _ => None,
    };
    let title = format!(
        "Canary report: deploy/{} in namespace {}",
        data.deployment, data.namespace
    );
    let mut page = String::new();
    let _ = write!(
        page,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"icon\" href=\"data:,\">\
         <title>{}</title><style>{STYLE}</style></head><body>",
        escape(&title)
    );
    let _ = write!(
        page,
        "<h1>{}</h1><p class=\"muted\">Read from the cluster at {} by kubectl-canary {}.</p>",
        escape(&title),
        escape(&data.read_at),
        escape(tool_version)
    );
    problems_section(&mut page, &data.status);
    verdict_section(&mut page, history);
    charts_section(&mut page, history);
    now_section(&mut page, data);
    timeline_section(&mut page, data, history);
    commands_section(&mut page, history);
    sources_section(&mut page, data);
    page.push_str("</body></html>\n");
    page
}

/// What is wrong, first (nothing when nothing is): each problem with its code, side, pod
/// and newest Event; and why no promotion is advised.
fn problems_section(page: &mut String, status: &canary_kube::status::StatusReport) {
    if status.problems.is_empty() {
        return;
    }
    let _ = write!(
        page,
        "<h2>{}</h2><ul>",
        if status.unhealthy() {
            "What is wrong: the canary is unhealthy"
        } else {
            "What is wrong"
        }
    );
    for problem in &status.problems {
        let _ = write!(
            page,
            "<li class=\"warn\"><code>{}</code> ({}): {}",
            problem.code.as_str(),
            problem.side.label(),
            escape(&problem.message)
        );
        if let Some(event) = &problem.evidence.event {
            let _ = write!(page, "<br>newest event: {}", escape(event));
        }
        page.push_str("</li>");
    }
    page.push_str("</ul>");
    if let Some(withheld) = &status.promote_withheld {
        let _ = write!(
            page,
            "<p class=\"warn\">Not advised: {}</p>",
            escape(withheld)
        );
    }
    if let Some(approval) = &status.approval {
        let _ = write!(page, "<p class=\"gate\">{}</p>", escape(&approval.line()));
    }
}

fn verdict_section(page: &mut String, history: Option<&CanaryHistory>) {
    page.push_str("<h2>Verdict</h2>");
    let Some(round) = history.and_then(|h| h.rounds.last()) else {
        page.push_str(
            "<p><span class=\"verdict none\">NO ANALYSIS</span></p><p>No analysis round is recorded for this canary \
             (run <code>kubectl canary analyze</code>).</p>",
        );
        return;
    };
    let verdict = &round.verdict;
    let class = match verdict.decision {
        Decision::Pass => "pass",
        Decision::Fail => "fail",
        Decision::Wait => "wait",
        Decision::Inconclusive => "inconclusive",
    };
    let _ = write!(
        page,
        "<p><span class=\"verdict {class}\" id=\"verdict\">{}</span></p><p>{}</p>\
         <p class=\"muted\">Latest of {} analysis round(s), at {}: canary {} ({} pod(s)) against stable {} ({} pod(s)){}.</p>",
        escape(&verdict.decision.to_string().to_uppercase()),
        escape(&verdict.reason),
        history.map_or(0, |h| h.rounds.len()),
        escape(&round.at),
        escape(&round.canary_replica_set),
        round.canary_pods,
        escape(&round.stable_replica_set),
        round.stable_pods,
        verdict
            .score
            .map(|s| format!(
                ", score {} (needed {})",
                format_number(s),
                format_number(verdict.pass_score)
            ))
            .unwrap_or_default()
    );
    if let Some(blind) = &verdict.not_judged {
        let _ = write!(
            page,
            "<p class=\"warn\" id=\"not-judged\">Not judged: {}</p>",
            escape(blind)
        );
    }
    page.push_str("<table><tr><th>check</th><th>kind</th><th>result</th><th>measurements (canary / stable)</th><th>reason</th></tr>");
    for check in &verdict.checks {
        let measurements: Vec<String> = check
            .measurements
            .iter()
            .map(|m| {
                format!(
                    "{}: {} / {}",
                    m.name,
                    m.canary.map_or("-".into(), format_number),
                    m.stable.map_or("-".into(), format_number)
                )
            })
            .collect();
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td></tr>",
            escape(&check.name),
            escape(&check.kind.to_string()),
            escape(&check.outcome.to_string()),
            if check.critical {
                ""
            } else {
                " (non-critical)"
            },
            escape(&measurements.join("; ")),
            escape(&check.reason)
        );
    }
    page.push_str("</table>");
}

fn charts_section(page: &mut String, history: Option<&CanaryHistory>) {
    page.push_str("<h2>Canary against stable, over time</h2>");
    let rounds = history.map(|h| h.rounds.as_slice()).unwrap_or_default();
    let series = measurement_series(rounds);
    if series.is_empty() {
        page.push_str("<p>No measurements recorded yet.</p>");
        return;
    }
    let _ = write!(
        page,
        "<p>One point per analysis round; <span style=\"color:{CANARY_COLOUR}\">canary</span>, \
         <span style=\"color:{STABLE_COLOUR}\">stable</span>.</p><div class=\"charts\">"
    );
    let shares: Vec<chart::Point> = rounds
        .iter()
        .map(|r| {
            (
                r.at.clone(),
                r.traffic_share.map(|s| s * 100.0),
                r.traffic_share.map(|s| 100.0 - s * 100.0),
            )
        })
        .collect();
    let mut charts = vec![(
        "traffic share".to_string(),
        "% of Ready pods".to_string(),
        shares,
    )];
    charts.extend(
        series
            .into_iter()
            .map(|s| (s.check, s.measurement, s.points)),
    );
    for (check, measurement, points) in charts {
        let caption = format!("{check}: {measurement}");
        let _ = write!(
            page,
            "<figure><figcaption>{}</figcaption>{}</figure>",
            escape(&caption),
            chart::line_chart(&caption, &points)
        );
    }
    page.push_str("</div>");
}

fn now_section(page: &mut String, data: &ReportData) {
    let status = &data.status;
    page.push_str("<h2>The canary now</h2>");
    let _ = write!(
        page,
        "<p>Phase: <strong>{}</strong>{}; {} replica(s){}.</p>",
        escape(&status.phase_description),
        status
            .mode
            .map(|m| format!(" ({} mode)", escape(&m.to_string())))
            .unwrap_or_default(),
        status.replicas,
        if status.paused { ", paused" } else { "" }
    );
    if let Some(integrity) = &status.integrity {
        let _ = write!(page, "<p class=\"warn\">Record: {}</p>", escape(integrity));
    }
    if let (Some(by), Some(at)) = (&status.started_by, &status.started_at) {
        let _ = write!(page, "<p>Started by {} at {}.</p>", escape(by), escape(at));
    }
    page.push_str("<table><tr><th>side</th><th>ReplicaSet</th><th>revision</th><th>images</th><th>desired</th><th>pods</th><th>ready</th><th>available</th><th>restarts</th></tr>");
    for (label, side) in [("stable", &status.stable), ("canary", &status.canary)] {
        if let Some(side) = side {
            let _ = write!(
                page,
                "<tr><td>{label}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&side.replica_set),
                side.revision,
                escape(&images_text(&side.images)),
                side.desired,
                side.pods,
                side.ready,
                side.available,
                side.restarts
            );
        }
    }
    page.push_str("</table>");
    match status.canary_traffic_share {
        Some(share) => {
            let _ = write!(
                page,
                "<p>Traffic share: <span class=\"bar\" title=\"canary share\"><span style=\"width:{:.1}%\"></span></span> \
                 <strong>{}</strong> of requests reach the canary (its share of Ready pods behind the Service); \
                 extra pods: <strong>{}</strong>.</p>",
                share * 100.0,
                escape(&share_text(share)),
                status.extra_pods
            );
        }
        None => {
            let _ = write!(
                page,
                "<p>Traffic share: no canary pods serve now; extra pods: <strong>{}</strong>.</p>",
                status.extra_pods
            );
        }
    }
    if let Some(pending) = &status.pending {
        let _ = write!(page, "<p>Pending: {}</p>", escape(pending));
    }
    if !status.next_steps.is_empty() {
        page.push_str("<p>Next:</p><ul>");
        for step in &status.next_steps {
            let _ = write!(page, "<li><code>{}</code></li>", escape(step));
        }
        page.push_str("</ul>");
    }
}

fn timeline_section(page: &mut String, data: &ReportData, history: Option<&CanaryHistory>) {
    page.push_str("<h2>Timeline</h2><h3>Phases</h3>");
    let phases = history.map(|h| h.phases.as_slice()).unwrap_or_default();
    if phases.is_empty() {
        page.push_str("<p>No phases recorded.</p>");
    } else {
        page.push_str("<table><tr><th>at</th><th>what happened</th></tr>");
        for phase in phases {
            let _ = write!(
                page,
                "<tr><td>{}</td><td>{}</td></tr>",
                escape(&phase.at),
                escape(&phase.event)
            );
        }
        page.push_str("</table>");
    }
    page.push_str("<h3>kubectl-canary's Events on the Deployment</h3>");
    match &data.events {
        Ok(events) if events.is_empty() => {
            page.push_str("<p>None kept (the API server keeps Events for an hour by default).</p>")
        }
        Ok(events) => {
            page.push_str("<table><tr><th>at</th><th>type</th><th>reason</th><th>count</th><th>note</th></tr>");
            for event in events {
                let _ = write!(
                    page,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(&event.at),
                    escape(&event.type_),
                    escape(&event.reason),
                    event.count,
                    escape(&event.note)
                );
            }
            page.push_str("</table>");
        }
        Err(error) => {
            let _ = write!(
                page,
                "<p class=\"warn\">Events could not be read: {}</p>",
                escape(error)
            );
        }
    }
    page.push_str("<h3>The Deployment's conditions</h3>");
    if data.conditions.is_empty() {
        page.push_str("<p>None.</p>");
    } else {
        page.push_str("<table><tr><th>type</th><th>status</th><th>reason</th><th>since</th><th>message</th></tr>");
        for condition in &data.conditions {
            let _ = write!(
                page,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&condition.type_),
                escape(&condition.status),
                escape(&condition.reason),
                escape(&condition.last_transition),
                escape(&condition.message)
            );
        }
        page.push_str("</table>");
    }
}

fn commands_section(page: &mut String, history: Option<&CanaryHistory>) {
    page.push_str("<h2>Commands</h2>");
    let commands = history.map(|h| h.commands.as_slice()).unwrap_or_default();
    if commands.is_empty() {
        page.push_str("<p>No commands recorded.</p>");
        return;
    }
    page.push_str("<table><tr><th>at</th><th>command</th><th>exit code</th></tr>");
    for run in commands {
        let _ = write!(
            page,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            escape(&run.at),
            escape(&shell_words(&run.command_line)),
            run.exit_code
        );
    }
    page.push_str("</table>");
}

/// A command line as it could be typed again: words with spaces or quotes single-quoted.
fn shell_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            if !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=,%@+".contains(c))
                || w == "kubectl canary"
            {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn sources_section(page: &mut String, data: &ReportData) {
    page.push_str("<h2>Where this comes from, and what may have been altered</h2><ul>");
    let _ = write!(
        page,
        "<li><strong>The canary now</strong> and <strong>the Deployment's conditions</strong>: read from \
         deploy/{name}, its ReplicaSets and pods (written by Deployment writers and the controllers); \
         the record <code>{record}</code> was checked against the seal on the Deployment and the stable \
         ReplicaSet{integrity}.</li>",
        name = escape(&data.deployment),
        record = escape(&data.record_name),
        integrity = if data.status.integrity.is_some() {
            " and <strong>did not pass</strong> (see above)"
        } else {
            ""
        }
    );
    let history_note = match &data.history {
        HistoryRead::Missing => format!(
            "no ConfigMap <code>{}</code> exists (no canary of this Deployment was analysed or changed by \
             this version of kubectl-canary, or it was deleted)",
            escape(&data.history_name)
        ),
        HistoryRead::Unreadable(detail) => format!(
            "the ConfigMap <code>{}</code> cannot be read as a history ({}): nothing from it is shown",
            escape(&data.history_name),
            escape(detail)
        ),
        HistoryRead::Found(history) => {
            let mut note = format!(
                "from the ConfigMap <code>{}</code>. Anyone who may write ConfigMaps in namespace {} can \
                 change it, so <strong>these may have been altered</strong>; kubectl-canary only shows them \
                 and never acts on them",
                escape(&data.history_name),
                escape(&data.namespace)
            );
            if history.deployment_uid != data.deployment_uid {
                note.push_str(
                    ". <strong>It names another Deployment UID</strong>: it is of an earlier Deployment of \
                     this name, or was edited",
                );
            }
            let dropped = history.dropped;
            if dropped.rounds + dropped.commands + dropped.phases > 0 {
                let _ = write!(
                    note,
                    ". To stay bounded, the oldest {} round(s), {} command(s) and {} phase line(s) were dropped",
                    dropped.rounds, dropped.commands, dropped.phases
                );
            }
            note
        }
    };
    let _ = write!(
        page,
        "<li><strong>Verdicts, charts, phases and commands</strong>: {history_note}.</li>\
         <li><strong>Events</strong>: those reported by kubectl-canary; anyone who may create Events in \
         namespace {} can add Events that look the same.</li></ul>",
        escape(&data.namespace)
    );
}

/// Reads what the report of `engine`'s Deployment shows, renders it and writes it to
/// `path`; returns what was written, or why not.
pub async fn save(engine: &canary_kube::engine::Engine, path: &Path) -> Result<String, String> {
    let data = canary_kube::report::gather(engine)
        .await
        .map_err(|e| format!("cannot make the report: {e}"))?;
    let html = render(&data, crate::cli::VERSION);
    write_report(path, &html)
        .map_err(|e| format!("cannot write the report to {}: {e}", path.display()))?;
    Ok(format!(
        "wrote the report of deploy/{} to {}",
        data.deployment,
        path.display()
    ))
}

/// Writes the report to `path` ("-": stdout).
pub fn write_report(path: &Path, html: &str) -> std::io::Result<()> {
    if path.as_os_str() == "-" {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        out.write_all(html.as_bytes())?;
        return out.flush();
    }
    std::fs::write(path, html)
}

#[cfg(test)]
mod tests {
    use canary_core::history::{AnalysisRound, CanaryHistory};
    use canary_core::verdict::{CheckKind, CheckResult, InconclusivePolicy, Outcome, combine};

    use super::verdict_section;

    fn history_with(kind: CheckKind) -> CanaryHistory {
        let check = CheckResult {
            name: "c".into(),
            kind,
            outcome: Outcome::Pass,
            critical: true,
            on_inconclusive: InconclusivePolicy::default(),
            measurements: vec![],
            reason: "fine".into(),
        };
        let mut history = CanaryHistory::new("web", "uid");
        history.add_round(AnalysisRound {
            at: "2026-12-05T00:00:00Z".into(),
            canary_replica_set: "web-new".into(),
            stable_replica_set: "web-old".into(),
            canary_pods: 1,
            stable_pods: 3,
            traffic_share: None,
            verdict: combine(vec![check], 95.0, std::time::Duration::ZERO),
        });
        history
    }

    /// The report says when the verdict judged no requests, and only then.
    #[test]
    fn the_report_marks_a_verdict_that_judged_no_requests() {
        let mut page = String::new();
        verdict_section(&mut page, Some(&history_with(CheckKind::PodHealth)));
        assert!(
            page.contains("id=\"not-judged\">Not judged: requests"),
            "{page}"
        );
        let mut page = String::new();
        verdict_section(&mut page, Some(&history_with(CheckKind::Http)));
        assert!(!page.contains("not-judged"), "{page}");
    }
}
