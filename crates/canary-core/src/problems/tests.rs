//! The rules, case by case (table-driven: the cases differ only in their evidence).

use super::*;
use crate::record::Phase;
use crate::verdict::Decision;

const NOW: i64 = 1_000_000;

fn pod(name: &str, ready: bool, containers: Vec<ContainerEvidence>) -> PodEvidence {
    PodEvidence {
        name: name.into(),
        side: Side::Canary,
        terminating: false,
        ready,
        not_ready_since: (!ready).then_some(NOW - 20),
        unschedulable: None,
        containers,
        event: None,
    }
}

fn container(restarts: i32) -> ContainerEvidence {
    ContainerEvidence {
        name: "nginx".into(),
        restarts,
        ..Default::default()
    }
}

fn ended(exit_code: i32, reason: &str, ago: i64) -> Termination {
    Termination {
        exit_code,
        reason: Some(reason.into()),
        finished_at: Some(NOW - ago),
    }
}

fn waiting(reason: &str, mut c: ContainerEvidence) -> ContainerEvidence {
    c.waiting_reason = Some(reason.into());
    c
}

fn last(t: Termination, mut c: ContainerEvidence) -> ContainerEvidence {
    c.last_termination = Some(t);
    c
}

fn situation(pods: Vec<PodEvidence>) -> Situation {
    Situation {
        pods,
        ready_deadline_secs: 600,
        ..Default::default()
    }
}

/// A pod case: what, the pod, the clock, the code found, words the message holds.
type PodCase = (
    &'static str,
    PodEvidence,
    Option<i64>,
    Option<ProblemCode>,
    &'static str,
);

/// Each pod state, with and without a clock: the code found (or none) and a word the
/// message must hold.
#[test]
fn each_pod_state_is_judged_the_same_at_every_moment_of_a_crash_loop() {
    let crash_last = || last(ended(1, "Error", 2), container(15));
    let cases: Vec<PodCase> = vec![
        (
            "healthy",
            pod("p", true, vec![container(0)]),
            Some(NOW),
            None,
            "",
        ),
        (
            "CrashLoopBackOff",
            pod("p", false, vec![waiting("CrashLoopBackOff", crash_last())]),
            None,
            Some(ProblemCode::CrashLoop),
            "CrashLoopBackOff",
        ),
        // Between two crashes the container runs, not Ready: the restarts and the last
        // termination still say it crash-loops (the flicker of #31).
        (
            "running between two crashes",
            pod("p", false, vec![crash_last()]),
            None,
            Some(ProblemCode::CrashLoop),
            "15 restarts, last exit 1 (Error)",
        ),
        (
            "terminated now",
            pod(
                "p",
                false,
                vec![ContainerEvidence {
                    terminated: Some(ended(1, "Error", 0)),
                    ..container(0)
                }],
            ),
            None,
            Some(ProblemCode::CrashLoop),
            "terminated, exit 1",
        ),
        (
            "OOMKilled, running again",
            pod(
                "p",
                false,
                vec![last(ended(137, "OOMKilled", 1), container(3))],
            ),
            None,
            Some(ProblemCode::OomKilled),
            "OOMKilled",
        ),
        (
            "OOMKilled, back-off",
            pod(
                "p",
                false,
                vec![waiting(
                    "CrashLoopBackOff",
                    last(ended(137, "OOMKilled", 1), container(3)),
                )],
            ),
            None,
            Some(ProblemCode::OomKilled),
            "exit 137",
        ),
        (
            "ErrImagePull",
            pod("p", false, vec![waiting("ErrImagePull", container(0))]),
            None,
            Some(ProblemCode::ImagePull),
            "ErrImagePull",
        ),
        (
            "ImagePullBackOff",
            pod("p", false, vec![waiting("ImagePullBackOff", container(0))]),
            None,
            Some(ProblemCode::ImagePull),
            "cannot be pulled",
        ),
        (
            "CreateContainerConfigError",
            pod(
                "p",
                false,
                vec![waiting("CreateContainerConfigError", container(0))],
            ),
            None,
            Some(ProblemCode::ContainerConfig),
            "CreateContainerConfigError",
        ),
        (
            "unschedulable",
            PodEvidence {
                unschedulable: Some("0/3 nodes are available: 3 Insufficient cpu.".into()),
                ..pod("p", false, vec![])
            },
            None,
            Some(ProblemCode::Unschedulable),
            "cannot be scheduled: 0/3 nodes are available: 3 Insufficient cpu.",
        ),
        (
            "not Ready within the deadline",
            pod("p", false, vec![container(0)]),
            Some(NOW),
            None,
            "",
        ),
        (
            "not Ready past the deadline",
            PodEvidence {
                not_ready_since: Some(NOW - 700),
                ..pod("p", false, vec![container(0)])
            },
            Some(NOW),
            Some(ProblemCode::NotReady),
            "not Ready for 11m40s, past the deadline of 10m",
        ),
        (
            "not Ready past the deadline, without a clock",
            PodEvidence {
                not_ready_since: Some(NOW - 700),
                ..pod("p", false, vec![container(0)])
            },
            None,
            None,
            "",
        ),
        (
            "Ready again after restarts lately",
            pod("p", true, vec![last(ended(1, "Error", 30), container(4))]),
            Some(NOW),
            Some(ProblemCode::CrashLoop),
            "30s ago",
        ),
        (
            "Ready, one restart lately",
            pod("p", true, vec![last(ended(1, "Error", 30), container(1))]),
            Some(NOW),
            None,
            "",
        ),
        (
            "Ready, restarts long ago",
            pod("p", true, vec![last(ended(1, "Error", 3600), container(4))]),
            Some(NOW),
            None,
            "",
        ),
        (
            "terminating",
            PodEvidence {
                terminating: true,
                ..pod("p", false, vec![waiting("CrashLoopBackOff", crash_last())])
            },
            None,
            None,
            "",
        ),
    ];
    for (what, pod, now, code, words) in cases {
        let problems = judge(&situation(vec![pod]), now);
        assert_eq!(
            problems.first().map(|p| p.code),
            code,
            "{what}: {problems:?}"
        );
        if let Some(problem) = problems.first() {
            assert!(
                problem.message.contains(words) && problem.message.starts_with("p: "),
                "{what}: {}",
                problem.message
            );
            assert_eq!(problem.pod.as_deref(), Some("p"), "{what}");
        }
    }
}

#[test]
fn a_crash_loop_carries_its_evidence() {
    let mut crashing = pod(
        "web-abc",
        false,
        vec![waiting(
            "CrashLoopBackOff",
            last(ended(1, "Error", 2), container(15)),
        )],
    );
    crashing.event = Some(EventEvidence {
        reason: "BackOff".into(),
        message: "Back-off restarting failed container nginx".into(),
        count: 12,
        at: Some(NOW - 1),
    });
    let problems = judge(&situation(vec![crashing]), Some(NOW));
    let evidence = &problems[0].evidence;
    assert_eq!(evidence.restarts, Some(15));
    assert_eq!(evidence.last_exit_code, Some(1));
    assert_eq!(evidence.last_exit_reason.as_deref(), Some("Error"));
    assert_eq!(evidence.reason.as_deref(), Some("CrashLoopBackOff"));
    assert_eq!(
        evidence.event.as_deref(),
        Some("BackOff: Back-off restarting failed container nginx (12 times)")
    );
    assert_eq!(problems[0].container.as_deref(), Some("nginx"));
    assert_eq!(
        problems[0].message,
        "web-abc: crash-looping (container nginx, 15 restarts, last exit 1 (Error) 2s ago; now CrashLoopBackOff)"
    );
}

fn rs(failure: Option<&str>, event: Option<&str>, pods: i32) -> ReplicaSetEvidence {
    ReplicaSetEvidence {
        name: "web-7b9".into(),
        side: Side::Canary,
        desired: 1,
        pods,
        failure: failure.map(str::to_string),
        failed_create: event.map(|m| EventEvidence {
            reason: "FailedCreate".into(),
            message: m.into(),
            count: 3,
            at: None,
        }),
    }
}

#[test]
fn a_replica_set_that_cannot_create_pods() {
    let quota = "pods \"web-7b9-x\" is forbidden: exceeded quota: pods";
    let cases = [
        (
            "condition",
            rs(Some(&format!("FailedCreate: {quota}")), None, 0),
            true,
        ),
        ("event, pods missing", rs(None, Some(quota), 0), true),
        ("event, pods all there", rs(None, Some(quota), 1), false),
        ("fine", rs(None, None, 1), false),
    ];
    for (what, rs, found) in cases {
        let problems = judge(
            &Situation {
                replica_sets: vec![rs],
                ..situation(vec![])
            },
            None,
        );
        assert_eq!(!problems.is_empty(), found, "{what}: {problems:?}");
        if found {
            assert_eq!(problems[0].code, ProblemCode::FailedCreate);
            assert!(problems[0].message.contains("exceeded quota"), "{what}");
            assert!(is_unhealthy(&problems), "{what}");
        }
    }
}

#[test]
fn the_deployments_problems_and_their_weight() {
    let verdict = |decision| VerdictEvidence {
        decision,
        reason: "critical check failed: http".into(),
        at: "2026-12-04T10:00:00Z".into(),
    };
    let cases: Vec<(&str, Situation, Vec<ProblemCode>, bool)> = vec![
        (
            "failed verdict",
            Situation {
                verdict: Some(verdict(Decision::Fail)),
                ..situation(vec![])
            },
            vec![ProblemCode::AnalysisFailed],
            true,
        ),
        (
            "passed verdict",
            Situation {
                verdict: Some(verdict(Decision::Pass)),
                ..situation(vec![])
            },
            vec![],
            false,
        ),
        (
            "foreign change",
            Situation {
                foreign: Some("someone put the stable template back".into()),
                held: Some((1, 2)),
                ..situation(vec![])
            },
            vec![ProblemCode::ForeignChange],
            false,
        ),
        (
            "size drift",
            Situation {
                held: Some((1, 2)),
                ..situation(vec![])
            },
            vec![ProblemCode::SizeDrift],
            false,
        ),
        (
            "size held",
            Situation {
                held: Some((2, 2)),
                ..situation(vec![])
            },
            vec![],
            false,
        ),
    ];
    for (what, situation, codes, unhealthy) in cases {
        let problems = judge(&situation, Some(NOW));
        assert_eq!(
            problems.iter().map(|p| p.code).collect::<Vec<_>>(),
            codes,
            "{what}"
        );
        assert_eq!(is_unhealthy(&problems), unhealthy, "{what}");
    }
}

#[test]
fn canary_problems_come_before_the_stable_sides() {
    let mut stable = pod(
        "stable-pod",
        false,
        vec![waiting("ImagePullBackOff", container(0))],
    );
    stable.side = Side::Stable;
    let canary = pod(
        "canary-pod",
        false,
        vec![waiting("ErrImagePull", container(0))],
    );
    let problems = judge(&situation(vec![stable, canary]), None);
    assert_eq!(problems[0].pod.as_deref(), Some("canary-pod"));
    assert_eq!(problems[1].side, Side::Stable);
    // A stable pod's problem alone does not make the canary unhealthy.
    assert!(!is_unhealthy(&problems[1..]));
}

fn steps(phase: Phase, problems: &[Problem], verdict: VerdictState, pending: bool) -> NextSteps {
    next_steps(&NextInput {
        name: "web",
        phase,
        pending,
        nothing_changed_yet: false,
        replicas: 6,
        problems,
        verdict,
        gate: None,
    })
}

/// A state: what, phase, problems, verdict, pending, the first step's start, promotion offered.
type NextCase<'a> = (
    &'static str,
    Phase,
    &'a [Problem],
    VerdictState,
    bool,
    &'static str,
    bool,
);

#[test]
fn next_is_ordered_by_the_state() {
    let crashing = judge(
        &situation(vec![pod(
            "web-abc",
            false,
            vec![last(ended(1, "Error", 2), container(15))],
        )]),
        None,
    );
    let drifted = judge(
        &Situation {
            held: Some((1, 2)),
            ..situation(vec![])
        },
        None,
    );
    let held = Phase::Holding { pods: 1 };
    // (state, phase, problems, verdict, pending, first step starts with, promote offered, withheld)
    let cases: Vec<NextCase> = vec![
        (
            "unhealthy",
            held,
            &crashing,
            VerdictState::None,
            false,
            "kubectl canary abort",
            false,
        ),
        (
            "unhealthy, passed before",
            held,
            &crashing,
            VerdictState::Passed,
            false,
            "kubectl canary abort",
            false,
        ),
        (
            "unhealthy, promoting",
            Phase::Promoting { from: 1, to: 2 },
            &crashing,
            VerdictState::None,
            true,
            "kubectl canary abort",
            false,
        ),
        (
            "unhealthy, promoting fully",
            Phase::PromotingFull,
            &crashing,
            VerdictState::None,
            true,
            "kubectl canary abort",
            false,
        ),
        (
            "healthy, no verdict",
            held,
            &[],
            VerdictState::None,
            false,
            "kubectl canary analyze",
            true,
        ),
        (
            "healthy, undecided",
            held,
            &[],
            VerdictState::Undecided,
            false,
            "kubectl canary analyze",
            true,
        ),
        (
            "healthy, passed",
            held,
            &[],
            VerdictState::Passed,
            false,
            "kubectl canary promote deploy/web --canary 2",
            true,
        ),
        (
            "passed at 5 of 6",
            Phase::Holding { pods: 5 },
            &[],
            VerdictState::Passed,
            false,
            "kubectl canary promote deploy/web --full",
            true,
        ),
        (
            "size drifted (not unhealthy)",
            held,
            &drifted,
            VerdictState::None,
            false,
            "kubectl canary analyze",
            true,
        ),
        (
            "pending",
            held,
            &[],
            VerdictState::None,
            true,
            "kubectl canary promote deploy/web --full",
            true,
        ),
        (
            "aborting",
            Phase::Aborting,
            &crashing,
            VerdictState::None,
            true,
            "kubectl canary abort deploy/web   # finish",
            false,
        ),
    ];
    for (what, phase, problems, verdict, pending, first, promote) in cases {
        let next = steps(phase, problems, verdict, pending);
        assert!(next.steps[0].starts_with(first), "{what}: {:?}", next.steps);
        let offers_promote = next.steps.iter().any(|s| s.contains(" promote "));
        assert_eq!(offers_promote, promote, "{what}: {:?}", next.steps);
        let unhealthy = is_unhealthy(problems) && phase != Phase::Aborting;
        assert_eq!(next.promote_withheld.is_some(), unhealthy, "{what}");
        if unhealthy {
            assert!(
                next.steps[0].contains("crashLoop on pod web-abc"),
                "{what}: {:?}",
                next.steps
            );
            assert!(
                next.promote_withheld
                    .as_deref()
                    .unwrap()
                    .contains("web-abc: crash-looping"),
                "{what}"
            );
        }
    }
}
