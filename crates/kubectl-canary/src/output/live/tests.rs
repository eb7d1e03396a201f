//! The live view drawn on ratatui's TestBackend, compared with reviewed snapshots.

use std::collections::BTreeMap;

use canary_core::rollout_math::CanaryMode;
use canary_kube::events::EventLine;
use canary_kube::status::{SideStatus, StatusPhase, StatusReport};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::*;

fn side(rs: &str, revision: i64, image: &str, desired: i32, ready: i32) -> SideStatus {
    SideStatus {
        replica_set: rs.into(),
        revision,
        pod_template_hash: rs.rsplit('-').next().unwrap().into(),
        images: BTreeMap::from([("nginx".to_string(), image.to_string())]),
        desired,
        pods: desired,
        ready,
        available: ready,
        restarts: 0,
        problems: vec![],
    }
}

fn pod(name: &str, state: &str, ready: bool, restarts: i32) -> PodLine {
    PodLine {
        name: name.into(),
        state: state.into(),
        ready,
        restarts,
    }
}

fn held_canary() -> LiveModel {
    LiveModel {
        report: StatusReport {
            namespace: "shop".into(),
            deployment: "web".into(),
            problems: vec![],
            replicas: 3,
            paused: true,
            phase: StatusPhase::Holding,
            phase_description: "holding 1 canary pod(s)".into(),
            mode: Some(CanaryMode::Surge),
            started_by: Some("alice on laptop (pid 42, kubectl-canary 0.1.0)".into()),
            started_at: Some("2026-11-30T10:00:00Z".into()),
            stable: Some(side("web-5d8f7c", 1, "nginx:1.14", 3, 3)),
            canary: Some(side("web-7b9c6d", 2, "nginx:1.15", 1, 1)),
            canary_traffic_share: Some(0.25),
            extra_pods: 1,
            pending: None,
            waiting: None,
            foreign: None,
            next_steps: vec![
                "kubectl canary promote deploy/web --full".into(),
                "kubectl canary abort deploy/web".into(),
            ],
            promote_withheld: None,
            history: vec![],
            integrity: None,
            release: None,
            canary_size: None,
            approval: None,
            template_changes: vec![],
            notification_failures: vec![],
            judging: Default::default(),
        },
        stable_pods: vec![
            pod("web-5d8f7c-aaaaa", "Running", true, 0),
            pod("web-5d8f7c-bbbbb", "Running", true, 0),
            pod("web-5d8f7c-ccccc", "Running", true, 0),
        ],
        canary_pods: vec![pod("web-7b9c6d-xxxxx", "Running", true, 0)],
        events: vec![
            EventLine {
                at: "2026-11-30T10:00:01Z".into(),
                type_: "Normal".into(),
                reason: "CanaryStarted".into(),
                note: "1 canary pod of nginx:1.15".into(),
                count: 1,
            },
            EventLine {
                at: "2026-11-30T10:01:00Z".into(),
                type_: "Normal".into(),
                reason: "AnalysisPassed".into(),
                note: "pod-health pass".into(),
                count: 1,
            },
        ],
        verdict: Some(VerdictLine {
            at: "2026-11-30T10:01:00Z".into(),
            decision: "pass".into(),
            reason: "2 of 2 checks passed (score 100, needed 95)".into(),
        }),
        confirming: None,
        asking_again: false,
        notice: None,
    }
}

fn drawn(model: &LiveModel) -> String {
    let mut terminal = Terminal::new(TestBackend::new(100, 30)).expect("a test terminal");
    terminal.draw(|frame| draw(frame, model)).expect("drawn");
    format!("{}", terminal.backend())
}

#[test]
fn a_held_canary_with_its_pods_share_verdict_and_events() {
    insta::assert_snapshot!(drawn(&held_canary()));
}

/// A canary whose pod crash-loops, as judged from its evidence (Running between two crashes:
/// the restarts and the last exit still say it).
fn crash_looping() -> LiveModel {
    use canary_core::problems::{ContainerEvidence, PodEvidence, Side, Situation, Termination};
    let mut model = held_canary();
    model.report.judging.situation = Situation {
        pods: vec![PodEvidence {
            name: "web-7b9c6d-xxxxx".into(),
            side: Side::Canary,
            terminating: false,
            ready: false,
            not_ready_since: None,
            unschedulable: None,
            containers: vec![ContainerEvidence {
                name: "nginx".into(),
                restarts: 4,
                last_termination: Some(Termination {
                    exit_code: 1,
                    reason: Some("Error".into()),
                    finished_at: None,
                }),
                ..Default::default()
            }],
            event: None,
        }],
        ready_deadline_secs: 600,
        ..Default::default()
    };
    model.report.judging.next = Some(canary_kube::problems::NextBasis {
        phase: canary_core::record::Phase::Holding { pods: 1 },
        pending: false,
        nothing_changed_yet: false,
        gate: None,
    });
    model.report.judge(None);
    let canary = model.report.canary.as_mut().unwrap();
    canary.ready = 0;
    canary.available = 0;
    canary.restarts = 4;
    model.canary_pods = vec![pod("web-7b9c6d-xxxxx", "Running", false, 4)];
    model.report.canary_traffic_share = Some(0.0);
    model.verdict = None;
    model
}

#[test]
fn a_crash_looping_canary_shows_what_is_wrong_first() {
    let model = crash_looping();
    let screen = drawn(&model);
    insta::assert_snapshot!(screen);
    // The problem leads: it is drawn above the sides, abort is the first step, promotion
    // is not advised, and the keys put abort first.
    let at = |text: &str| {
        screen
            .find(text)
            .unwrap_or_else(|| panic!("{text}:\n{screen}"))
    };
    assert!(at("canary crashLoop") < at(" stable "), "{screen}");
    assert!(
        at("next: kubectl canary abort") < at("not advised"),
        "{screen}"
    );
    assert!(!screen.contains("next: kubectl canary promote"), "{screen}");
    assert!(
        at("a: abort (advised") < at("p: promote --full (unsafe"),
        "{screen}"
    );
}

#[test]
fn promoting_an_unhealthy_canary_asks_twice_naming_the_problem() {
    let mut model = crash_looping();
    assert_eq!(key(&mut model, 'p'), KeyOutcome::Redraw);
    assert_eq!(
        key(&mut model, 'y'),
        KeyOutcome::Redraw,
        "a second question"
    );
    assert!(model.asking_again);
    let screen = drawn(&model);
    assert!(
        screen.contains(
            "UNHEALTHY (crashLoop on pod web-7b9c6d-xxxxx): promote it to every pod anyway?"
        ),
        "{screen}"
    );
    assert_eq!(key(&mut model, 'y'), KeyOutcome::Run(Action::PromoteFull));
    // A no at the second question cancels.
    key(&mut model, 'p');
    key(&mut model, 'y');
    assert_eq!(key(&mut model, 'n'), KeyOutcome::Redraw);
    assert_eq!((model.confirming, model.asking_again), (None, false));
    // Abort asks once.
    key(&mut model, 'a');
    assert_eq!(key(&mut model, 'y'), KeyOutcome::Run(Action::Abort));
}

#[test]
fn promote_and_abort_ask_first_and_any_other_key_cancels() {
    let mut model = held_canary();
    assert_eq!(key(&mut model, 'a'), KeyOutcome::Redraw);
    assert_eq!(model.confirming, Some(Action::Abort));
    insta::assert_snapshot!(drawn(&model));
    assert_eq!(key(&mut model, 'n'), KeyOutcome::Redraw);
    assert_eq!(model.confirming, None);
    assert_eq!(key(&mut model, 'p'), KeyOutcome::Redraw);
    assert_eq!(key(&mut model, 'y'), KeyOutcome::Run(Action::PromoteFull));
    assert_eq!(key(&mut model, 'a'), KeyOutcome::Redraw);
    assert_eq!(key(&mut model, 'y'), KeyOutcome::Run(Action::Abort));
    assert_eq!(key(&mut model, 'q'), KeyOutcome::Quit);
    // A `q` while asked cancels the question; it does not quit.
    key(&mut model, 'p');
    assert_eq!(key(&mut model, 'q'), KeyOutcome::Redraw);
}
