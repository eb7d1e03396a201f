//! `kubectl canary status`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use canary_kube::engine::Engine;
use canary_kube::error::CanaryError;
use canary_kube::history::{HistoryRead, HistoryStore};
use canary_kube::live::LiveView;
use canary_kube::problems::Reads;
use canary_kube::status::StatusReport;
use canary_kube::trust::{CanaryState, RecordRead, UnreadableRecord, classify};

use crate::config::status::StatusConfig;
use crate::config::{Config, OutputFormat};
use crate::exit_code;
use crate::output::live::{self, Action, KeyOutcome, LiveModel, VerdictLine};
use crate::output::{print_structured, status_text};

/// How `status` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusOutcome {
    /// With this exit code.
    Exit(i32),
    /// The live view's user confirmed an action: the caller runs it as the command would
    /// (`promote --full`, `abort`).
    Then(Action),
}

/// Prints the status once, or on every change with `--watch`: a full-screen live view on
/// a terminal, else one document per change. Returns how it ended: an exit code (0, or the
/// code of a record that cannot be trusted or is lost), or an action confirmed in the view.
pub async fn run(config: &Config, status: &StatusConfig) -> Result<StatusOutcome, CanaryError> {
    let engine = Engine::new(&config.client, &config.namespace, &status.deployment);
    let human = matches!(config.output, OutputFormat::Table | OutputFormat::Wide);
    if status.watch && human && std::io::stdout().is_terminal() && std::io::stdin().is_terminal() {
        return live_view(config, &engine, &status.deployment).await;
    }
    // What was printed last, as printed: a report that differs only where no format shows
    // it (`judging`, the evidence its problems were judged from, the API server's clock
    // among it) is not a change, and printing it would repeat a document.
    let mut last: Option<String> = None;
    let mut print = |report: StatusReport| {
        let document = match config.output {
            OutputFormat::Table | OutputFormat::Wide => {
                status_text(&report, config.output == OutputFormat::Wide)
            }
            _ => serde_json::to_string(&report).expect("output always serializes"),
        };
        if last.as_ref() == Some(&document) {
            return;
        }
        if status.watch {
            print_change(config.output, &report, last.is_some());
        } else if !print_structured(config.output, &report) {
            print!("{document}");
        }
        last = Some(document);
    };
    // The Events, the last verdict and the API server's clock (the evidence that does not
    // flicker between two crashes, #31) are read beside the state.
    let (state, reads) = tokio::join!(
        engine.canary_state(),
        Reads::read(&config.client, &config.namespace, &status.deployment)
    );
    let (state, view) = state?;
    let mut report =
        StatusReport::for_state(&config.namespace, &view, &state, &engine.store().name());
    reads.apply(&mut report);
    let code = exit_code_of(&state, &report);
    // The Services held for this Deployment (dark canary, sticky sessions), read from the
    // Services themselves: while a dark pin holds, the canary's share of requests is 0.
    let uid = view.deployment.metadata.uid.clone().unwrap_or_default();
    let pins = canary_kube::traffic::pins(&config.client, &config.namespace, &uid).await?;
    report.with_pins(&pins);
    print(report);
    if matches!(config.output, OutputFormat::Table | OutputFormat::Wide) {
        print!("{}", crate::output::pins_text(&pins));
    }
    if !status.watch {
        return Ok(StatusOutcome::Exit(code));
    }
    // One watch per kind (Deployment, ReplicaSets, pods, record) feeds a live view; each
    // burst of events is rendered once, and only a changed report is printed.
    let mut live = engine.live().await?;
    loop {
        live.changed(Duration::from_secs(60)).await;
        let (mut report, _) = report_now(config, &engine, &live)?;
        Reads::read(&config.client, &config.namespace, &status.deployment)
            .await
            .apply(&mut report);
        print(report);
    }
}

/// One document per change, as each format separates documents: one JSON document per
/// line, YAML documents each opened by `---`, text reports separated by `---`.
fn print_change(format: OutputFormat, report: &StatusReport, after_another: bool) {
    use std::io::Write;
    match format {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string(report).expect("output always serializes")
        ),
        OutputFormat::Yaml => print!(
            "---\n{}",
            serde_saphyr::to_string(report).expect("output always serializes")
        ),
        OutputFormat::Table | OutputFormat::Wide => {
            if after_another {
                println!("---");
            }
            print!("{}", status_text(report, format == OutputFormat::Wide));
        }
    }
    let _ = std::io::stdout().flush();
}

/// The status as the live view's watches show it, with the classified state.
fn report_now(
    config: &Config,
    engine: &Engine,
    live: &LiveView,
) -> Result<(StatusReport, CanaryState), CanaryError> {
    let view = live.view()?;
    let read = match live.record(engine.store()) {
        Ok(Some(stored)) => RecordRead::Decoded(stored),
        Ok(None) => RecordRead::Missing,
        Err(CanaryError::BadRecord { detail, .. }) => RecordRead::Unreadable(UnreadableRecord {
            detail,
            uid: String::new(),
            resource_version: String::new(),
        }),
        Err(other) => return Err(other),
    };
    let state = classify(&view, read)?;
    let report = StatusReport::for_state(&config.namespace, &view, &state, &engine.store().name());
    Ok((report, state))
}

/// How often the Events and the history (the last verdict) are read again: they have no
/// watch here, and a list every few seconds is cheap.
const SLOW_READS_EVERY: Duration = Duration::from_secs(3);

/// The full-screen view: redrawn on every change the watches see and every key; `q`
/// leaves, `p`/`a` ask, then hand the action back to the caller.
async fn live_view(
    config: &Config,
    engine: &Engine,
    name: &str,
) -> Result<StatusOutcome, CanaryError> {
    let mut live = engine.live().await?;
    let (keys_tx, mut keys) = tokio::sync::mpsc::unbounded_channel::<char>();
    // crossterm's reads block: a thread of their own feeds the keys in.
    std::thread::spawn(move || {
        use ratatui::crossterm::event::{Event, KeyCode, KeyEventKind, KeyModifiers, read};
        while let Ok(event) = read() {
            let Event::Key(key) = event else { continue };
            if key.kind != KeyEventKind::Press {
                continue;
            }
            let c = match key.code {
                KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => 'q',
                KeyCode::Char(c) => c,
                KeyCode::Esc => '\u{1b}',
                _ => continue,
            };
            if keys_tx.send(c).is_err() {
                break;
            }
        }
    });
    let mut terminal = match ratatui::try_init() {
        Ok(terminal) => terminal,
        Err(error) => {
            eprintln!("error: cannot use the terminal for the live view: {error}");
            return Ok(StatusOutcome::Exit(exit_code::ERROR));
        }
    };
    let result = live_loop(config, engine, name, &mut live, &mut keys, &mut terminal).await;
    ratatui::restore();
    result
}

async fn live_loop(
    config: &Config,
    engine: &Engine,
    name: &str,
    live: &mut LiveView,
    keys: &mut tokio::sync::mpsc::UnboundedReceiver<char>,
    terminal: &mut ratatui::DefaultTerminal,
) -> Result<StatusOutcome, CanaryError> {
    let history = HistoryStore::new(engine.client(), engine.namespace(), name);
    let mut model: Option<LiveModel> = None;
    let mut slow_reads_at: Option<Instant> = None;
    let mut reads = Reads::default();
    loop {
        let (mut report, state) = report_now(config, engine, live)?;
        if slow_reads_at.is_none_or(|at| at.elapsed() >= SLOW_READS_EVERY) {
            // Bounded like the other slow reads; a clock read before is kept.
            if let Ok(fresh) = tokio::time::timeout(
                SLOW_READS_EVERY,
                Reads::read(engine.client(), engine.namespace(), name),
            )
            .await
            {
                reads = fresh.with_clock(reads.clock);
            }
        }
        reads.apply(&mut report);
        let view = live.view()?;
        let pods_of = |side: &Option<canary_kube::status::SideStatus>| {
            side.as_ref()
                .map(|s| {
                    view.pods_with_hash(&s.pod_template_hash)
                        .into_iter()
                        .map(live::pod_line)
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut next = model.take().unwrap_or(LiveModel {
            report: report.clone(),
            stable_pods: vec![],
            canary_pods: vec![],
            events: vec![],
            verdict: None,
            confirming: None,
            asking_again: false,
            notice: None,
        });
        next.stable_pods = pods_of(&report.stable);
        next.canary_pods = pods_of(&report.canary);
        next.report = report;
        if slow_reads_at.is_none_or(|at| at.elapsed() >= SLOW_READS_EVERY) {
            slow_reads_at = Some(Instant::now());
            next.notice = None;
            // Bounded, so an API server that stops answering never freezes the view.
            let events = tokio::time::timeout(
                SLOW_READS_EVERY,
                canary_kube::events::read_events(engine.client(), engine.namespace(), name),
            )
            .await;
            match events {
                Ok(Ok(events)) => next.events = events,
                Ok(Err(error)) => next.notice = Some(format!("Events: {error}")),
                Err(_) => next.notice = Some("Events: no answer".into()),
            }
            if let Ok(Ok(HistoryRead::Found(found))) =
                tokio::time::timeout(SLOW_READS_EVERY, history.read()).await
            {
                next.verdict = found.rounds.last().map(|round| VerdictLine {
                    at: round.at.clone(),
                    decision: round.verdict.decision.to_string(),
                    reason: round.verdict.reason.clone(),
                });
            }
        }
        let drawn = terminal.draw(|frame| live::draw(frame, &next));
        if let Err(error) = drawn {
            return Err(CanaryError::Refused(format!(
                "the terminal stopped taking the live view: {error}"
            )));
        }
        let code = exit_code_of(&state, &next.report);
        let outcome = tokio::select! {
            _ = live.changed(SLOW_READS_EVERY) => KeyOutcome::Redraw,
            key = keys.recv() => match key {
                Some(key) => live::key(&mut next, key),
                None => KeyOutcome::Quit,
            },
        };
        match outcome {
            KeyOutcome::Redraw => model = Some(next),
            KeyOutcome::Quit => return Ok(StatusOutcome::Exit(code)),
            KeyOutcome::Run(action) => return Ok(StatusOutcome::Then(action)),
        }
    }
}

/// `status` exits non-zero when the record cannot be trusted or is lost, or when the canary
/// is unhealthy ("held but unhealthy"), so scripts notice.
fn exit_code_of(state: &CanaryState, report: &StatusReport) -> i32 {
    match state {
        CanaryState::Tampered { .. } | CanaryState::Unconfirmed { braked: true, .. } => {
            exit_code::RECORD_TAMPERED
        }
        CanaryState::RecordLost { .. } => exit_code::HELD_WITHOUT_RECORD,
        _ if report.unhealthy() => exit_code::CANARY_UNHEALTHY,
        _ => exit_code::OK,
    }
}
