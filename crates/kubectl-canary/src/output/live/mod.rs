//! The full-screen live view of `status --watch` on a terminal (ratatui): both sides with
//! their pods and states, the traffic share as a bar, the phase and the next step, the
//! newest Events and the last verdict, and the keys. Drawing only: the model is built by
//! the status command from the watch, the Events and the history.

mod model;

pub use model::pod_line;

use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Gauge, Paragraph, Wrap};

use canary_core::text::{images_text, share_text};
use canary_kube::events::EventLine;
use canary_kube::status::{SideStatus, StatusReport};

/// One pod as the view lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodLine {
    /// The pod's name.
    pub name: String,
    /// Its state as `kubectl get pods` words it (Running, CrashLoopBackOff, Terminating...).
    pub state: String,
    /// Whether it is Ready.
    pub ready: bool,
    /// Container restarts.
    pub restarts: i32,
}

/// The last analysis verdict, from the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerdictLine {
    /// When it was reached.
    pub at: String,
    /// pass, fail, wait, inconclusive.
    pub decision: String,
    /// Why.
    pub reason: String,
}

/// What a key asks for, once confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `kubectl canary promote --full`.
    PromoteFull,
    /// `kubectl canary abort`.
    Abort,
}

/// Everything the view shows.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveModel {
    /// The status, as `status` builds it.
    pub report: StatusReport,
    /// The stable side's pods.
    pub stable_pods: Vec<PodLine>,
    /// The canary side's pods.
    pub canary_pods: Vec<PodLine>,
    /// The newest of the tool's Events on the Deployment, oldest first.
    pub events: Vec<EventLine>,
    /// The last verdict, if any analysis is recorded.
    pub verdict: Option<VerdictLine>,
    /// An action waiting for y/n.
    pub confirming: Option<Action>,
    /// The question is the second one: promoting an unhealthy canary was confirmed once.
    pub asking_again: bool,
    /// A line about the view itself (a read that failed...).
    pub notice: Option<String>,
}

/// How many Events the view lists.
pub const EVENTS_SHOWN: usize = 5;

/// Draws the view.
pub fn draw(frame: &mut Frame, model: &LiveModel) {
    let report = &model.report;
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(3),
            Constraint::Length(problems_height(report, frame.area().width)),
            Constraint::Min(6),
            Constraint::Length(3),
            Constraint::Length(next_height(model, frame.area().width)),
            Constraint::Length(EVENTS_SHOWN as u16 + 2),
            Constraint::Length(1),
        ])
        .split(frame.area());
    header(frame, rows[0], report);
    problems(frame, rows[1], report);
    let sides = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Percentage(50), Constraint::Percentage(50)])
        .split(rows[2]);
    side(
        frame,
        sides[0],
        "stable",
        report.stable.as_ref(),
        &model.stable_pods,
    );
    side(
        frame,
        sides[1],
        if report.unhealthy() {
            "canary (unhealthy)"
        } else {
            "canary"
        },
        report.canary.as_ref(),
        &model.canary_pods,
    );
    traffic(frame, rows[3], report);
    next(frame, rows[4], model);
    events(frame, rows[5], &model.events);
    footer(frame, rows[6], model);
}

/// How many problems the view lists (the rest are counted).
pub const PROBLEMS_SHOWN: usize = 4;

/// The problems box, each problem wrapped to the width: none when nothing is wrong.
fn problems_height(report: &StatusReport, width: u16) -> u16 {
    if report.problems.is_empty() {
        return 0;
    }
    let lines: usize = report
        .problems
        .iter()
        .take(PROBLEMS_SHOWN)
        .map(|p| {
            wrapped(
                p.side.label().len() + p.code.as_str().len() + 3 + p.message.len(),
                width,
            )
        })
        .sum();
    2 + lines.min(8) as u16 + u16::from(report.problems.len() > PROBLEMS_SHOWN)
}

/// How many lines of a box `width` wide (borders included) a text of `chars` takes.
fn wrapped(chars: usize, width: u16) -> usize {
    // Wrapping at words leaves the ends of lines short: count an eighth of each as lost.
    let inner = usize::from(width.saturating_sub(2));
    let inner = (inner - inner / 8).max(1);
    chars.div_ceil(inner).max(1)
}

/// What is wrong, first: each problem with its code and pod, in red.
fn problems(frame: &mut Frame, area: Rect, report: &StatusReport) {
    if report.problems.is_empty() {
        return;
    }
    let mut lines: Vec<Line> = report
        .problems
        .iter()
        .take(PROBLEMS_SHOWN)
        .map(|p| {
            Line::from(vec![
                Span::styled(
                    format!("{} {}: ", p.side.label(), p.code.as_str()),
                    Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
                ),
                Span::raw(p.message.clone()),
            ])
        })
        .collect();
    if report.problems.len() > PROBLEMS_SHOWN {
        lines.push(Line::from(format!(
            "... and {} more (kubectl canary status)",
            report.problems.len() - PROBLEMS_SHOWN
        )));
    }
    let title = if report.unhealthy() {
        " UNHEALTHY: what is wrong "
    } else {
        " what is wrong "
    };
    frame.render_widget(
        Paragraph::new(lines)
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .border_style(Style::new().fg(Color::Red))
                    .title(title),
            )
            .wrap(Wrap { trim: false }),
        area,
    );
}

/// The next-steps box fits the verdict, the pending line and every step, wrapped (within
/// reason).
fn next_height(model: &LiveModel, width: u16) -> u16 {
    let report = &model.report;
    let lines = 1
        + report
            .pending
            .as_ref()
            .map_or(0, |p| wrapped(p.len() + 30, width))
        + report
            .next_steps
            .iter()
            .map(|s| wrapped(s.len() + 6, width))
            .sum::<usize>()
        + usize::from(report.promote_withheld.is_some())
        + report
            .approval
            .as_ref()
            .map_or(0, |a| wrapped(a.line().len(), width));
    2 + lines.min(8) as u16
}

fn header(frame: &mut Frame, area: Rect, report: &StatusReport) {
    let mode = report
        .mode
        .map(|m| format!(" ({m} mode)"))
        .unwrap_or_default();
    let paused = if report.paused { ", paused" } else { "" };
    let mut lines = vec![Line::from(vec![
        Span::styled("phase: ", Style::new().add_modifier(Modifier::BOLD)),
        Span::raw(format!("{}{mode}", report.phase_description)),
        Span::raw(format!("   {} replicas{paused}", report.replicas)),
    ])];
    if let Some(integrity) = &report.integrity {
        lines = vec![Line::styled(
            format!("record: {integrity}"),
            Style::new().fg(Color::Yellow),
        )];
    }
    let title = format!(
        " kubectl canary: deploy/{} in {} ",
        report.deployment, report.namespace
    );
    frame.render_widget(
        Paragraph::new(lines)
            .block(Block::default().borders(Borders::ALL).title(title))
            .wrap(Wrap { trim: true }),
        area,
    );
}

fn side(frame: &mut Frame, area: Rect, label: &str, side: Option<&SideStatus>, pods: &[PodLine]) {
    let colour = match label {
        "stable" => Color::Green,
        "canary" => Color::Yellow,
        _ => Color::Red,
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(Style::new().fg(colour))
        .title(format!(" {label} "));
    let Some(side) = side else {
        frame.render_widget(Paragraph::new("none").block(block), area);
        return;
    };
    let mut lines = vec![
        Line::from(format!(
            "{} (rev {})  {}",
            side.replica_set,
            side.revision,
            images_text(&side.images)
        )),
        Line::from(format!(
            "desired {}  ready {}  available {}  restarts {}",
            side.desired, side.ready, side.available, side.restarts
        )),
    ];
    // Columns as wide as their longest entry, so a pod fits one line where it can.
    let name_width = pods.iter().map(|p| p.name.len()).max().unwrap_or(0);
    let state_width = pods.iter().map(|p| p.state.len()).max().unwrap_or(0);
    for pod in pods {
        let style = if pod.ready {
            Style::new().fg(Color::Green)
        } else {
            Style::new().fg(Color::Red)
        };
        lines.push(Line::from(vec![
            Span::raw(format!("{:<name_width$}  ", pod.name)),
            Span::styled(format!("{:<state_width$}", pod.state), style),
            Span::raw(format!(
                "  {}  restarts {}",
                if pod.ready { "ready" } else { "not ready" },
                pod.restarts
            )),
        ]));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        area,
    );
}

fn traffic(frame: &mut Frame, area: Rect, report: &StatusReport) {
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" traffic to the canary (share of Ready pods behind the Service) ");
    let share = report.canary_traffic_share.unwrap_or(0.0).clamp(0.0, 1.0);
    let label = match report.canary_traffic_share {
        Some(share) => format!(
            "{} of requests; extra pods: {}",
            share_text(share),
            report.extra_pods
        ),
        None => format!("no canary pod serves; extra pods: {}", report.extra_pods),
    };
    frame.render_widget(
        Gauge::default()
            .block(block)
            .gauge_style(Style::new().fg(Color::Red).bg(Color::Blue))
            .ratio(share)
            .label(label),
        area,
    );
}

fn next(frame: &mut Frame, area: Rect, model: &LiveModel) {
    let report = &model.report;
    let mut lines = vec![];
    match &model.verdict {
        Some(verdict) => lines.push(Line::from(vec![
            Span::styled("last verdict: ", Style::new().add_modifier(Modifier::BOLD)),
            Span::styled(
                verdict.decision.to_uppercase(),
                Style::new().fg(match verdict.decision.as_str() {
                    "pass" => Color::Green,
                    "fail" => Color::Red,
                    _ => Color::Yellow,
                }),
            ),
            Span::raw(format!(
                " at {}: {}",
                verdict.at.get(11..19).unwrap_or(&verdict.at),
                verdict.reason
            )),
        ])),
        None => lines.push(Line::from("last verdict: none recorded")),
    }
    if let Some(pending) = &report.pending {
        let label = if report.foreign.is_some() {
            "changed by someone else"
        } else {
            "pending"
        };
        lines.push(Line::from(format!("{label}: {pending}")));
    }
    if let Some(approval) = &report.approval {
        lines.push(Line::styled(approval.line(), Style::new().fg(Color::Cyan)));
    }
    for step in &report.next_steps {
        lines.push(Line::from(format!("next: {step}")));
    }
    if report.promote_withheld.is_some() {
        // The problem itself is at the top of the view.
        lines.push(Line::styled(
            "not advised: promote (unsafe while the canary is unhealthy, see above)",
            Style::new().fg(Color::Red),
        ));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .block(Block::default().borders(Borders::ALL).title(" next "))
            .wrap(Wrap { trim: true }),
        area,
    );
}

fn events(frame: &mut Frame, area: Rect, events: &[EventLine]) {
    let lines: Vec<Line> = events
        .iter()
        .rev()
        .take(EVENTS_SHOWN)
        .map(|e| {
            let style = if e.type_ == "Warning" {
                Style::new().fg(Color::Yellow)
            } else {
                Style::new()
            };
            Line::styled(
                format!(
                    "{} {} {}",
                    e.at.get(11..19).unwrap_or(&e.at),
                    e.reason,
                    e.note
                ),
                style,
            )
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" newest events "),
        ),
        area,
    );
}

fn footer(frame: &mut Frame, area: Rect, model: &LiveModel) {
    let unhealthy = canary_core::problems::first_unhealthy(&model.report.problems);
    let line = match model.confirming {
        Some(Action::PromoteFull) if model.asking_again => Line::styled(
            // One line: the problem by code and pod (its evidence is at the top).
            format!(
                "deploy/{} is UNHEALTHY ({}): promote it to every pod anyway? y: yes, any other key: no",
                model.report.deployment,
                unhealthy.map_or(String::new(), |p| p.short())
            ),
            Style::new().fg(Color::White).bg(Color::Red),
        ),
        Some(Action::PromoteFull) => Line::styled(
            format!(
                "Promote deploy/{} to every pod (promote --full)? y: yes, any other key: no",
                model.report.deployment
            ),
            Style::new().fg(Color::Black).bg(Color::Yellow),
        ),
        Some(Action::Abort) => Line::styled(
            format!(
                "Abort: roll deploy/{} back to the stable version? y: yes, any other key: no",
                model.report.deployment
            ),
            Style::new().fg(Color::Black).bg(Color::Yellow),
        ),
        None => Line::from(format!(
            "{}{}",
            if unhealthy.is_some() {
                "q: quit   a: abort (advised: the canary is unhealthy)   p: promote --full (unsafe, asks twice)"
            } else {
                "q: quit   p: promote --full   a: abort"
            },
            model
                .notice
                .as_ref()
                .map(|n| format!("   ({n})"))
                .unwrap_or_default()
        )),
    };
    frame.render_widget(Paragraph::new(line), area);
}

/// What a key press does in a given state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOutcome {
    /// Nothing (redraw).
    Redraw,
    /// Leave the view.
    Quit,
    /// Leave the view and run the action.
    Run(Action),
}

/// Applies a key to the model: `q`/Esc quits; `p`/`a` ask for confirmation, `y` confirms,
/// any other key cancels. Promoting an unhealthy canary asks a second time, naming the
/// problem.
pub fn key(model: &mut LiveModel, key: char) -> KeyOutcome {
    if let Some(action) = model.confirming.take() {
        let again = std::mem::take(&mut model.asking_again);
        if key != 'y' && key != 'Y' {
            return KeyOutcome::Redraw;
        }
        if action == Action::PromoteFull && !again && model.report.unhealthy() {
            model.confirming = Some(action);
            model.asking_again = true;
            return KeyOutcome::Redraw;
        }
        return KeyOutcome::Run(action);
    }
    match key {
        'q' | 'Q' | '\u{1b}' => KeyOutcome::Quit,
        'p' | 'P' => {
            model.confirming = Some(Action::PromoteFull);
            KeyOutcome::Redraw
        }
        'a' | 'A' => {
            model.confirming = Some(Action::Abort);
            KeyOutcome::Redraw
        }
        _ => KeyOutcome::Redraw,
    }
}

#[cfg(test)]
mod tests;
