use serde_json::json;

use super::*;

fn record(mode: CanaryMode) -> CanaryRecord {
    CanaryRecord {
        mode,
        ..crate::record::sample_record()
    }
}

fn rs(desired: i32, pods: i32) -> Option<ReplicaSetObservation> {
    Some(ReplicaSetObservation {
        name: "rs".into(),
        desired,
        ready: pods,
        available: 0,
        pods,
        terminating: 0,
    })
}

fn settled(record: &CanaryRecord) -> Observation {
    Observation {
        generation: 1,
        observed_generation: 1,
        replicas: 10,
        template: record.original_template.clone(),
        settings: record.original_settings.clone(),
        updated_replicas: 10,
        status_replicas: 10,
        available_replicas: 10,
        canary: None,
        stable: rs(10, 10),
        other_pods: 0,
    }
}

/// Plays the controller's part by hand through a whole start, checking each decision.
#[test]
fn start_sets_brake_then_pauses_at_exact_size() {
    let record = record(CanaryMode::Surge);
    let goal = Goal::Hold { pods: 1 };
    let mut obs = settled(&record);
    let Decision::Apply(change) = decide(&record, goal, &obs) else {
        panic!("expected an update")
    };
    assert_eq!(change.template, Some(record.target_template()));
    assert!(change.settings.is_braked() && !change.settings.is_paused());
    obs.template = change.template.unwrap();
    obs.settings = change.settings;
    obs.generation = 2;
    assert_eq!(
        decide(&record, goal, &obs),
        Decision::Wait(Waiting::ControllerToObserve)
    );
    obs.observed_generation = 2;
    obs.canary = rs(0, 0);
    assert!(matches!(
        decide(&record, goal, &obs),
        Decision::Wait(Waiting::CanaryScaling { .. })
    ));
    obs.canary = rs(1, 1);
    let Decision::Apply(pause) = decide(&record, goal, &obs) else {
        panic!("expected the pause")
    };
    assert!(pause.template.is_none() && pause.settings.is_paused());
    assert!(
        !pause.settings.is_braked(),
        "held at rest without the brake: the Deployment's own minReadySeconds"
    );
    assert_eq!(
        pause.settings.min_ready_seconds,
        record.original_settings.min_ready_seconds
    );
    obs.settings = pause.settings;
    obs.generation = 3;
    obs.observed_generation = 3;
    assert_eq!(decide(&record, goal, &obs), Decision::Reached);
}

#[test]
fn replace_mode_waits_for_the_stable_side_to_shrink() {
    let record = record(CanaryMode::Replace);
    let goal = Goal::Hold { pods: 2 };
    let mut obs = settled(&record);
    obs.template = record.target_template();
    obs.settings = RolloutSettings::braked(CanaryMode::Replace, 2, false);
    obs.canary = rs(2, 2);
    obs.stable = rs(10, 10);
    assert!(matches!(
        decide(&record, goal, &obs),
        Decision::Wait(Waiting::CanaryScaling {
            wanted_stable: 8,
            ..
        })
    ));
    obs.stable = rs(8, 8);
    assert!(matches!(decide(&record, goal, &obs), Decision::Apply(c) if c.settings.is_paused()));
}

#[test]
fn step_promote_resumes_braked_at_the_new_size() {
    let record = record(CanaryMode::Surge);
    let mut obs = settled(&record);
    obs.template = record.target_template();
    obs.settings = RolloutSettings::braked(CanaryMode::Surge, 1, true);
    obs.canary = rs(1, 1);
    let Decision::Apply(change) = decide(&record, Goal::Hold { pods: 3 }, &obs) else {
        panic!("expected an update")
    };
    assert_eq!(
        change.settings,
        RolloutSettings::braked(CanaryMode::Surge, 3, false)
    );
    assert_eq!(
        decide(&record, Goal::Hold { pods: 0 }, &obs),
        Decision::Stuck(Stuck::CanaryLargerThanWanted {
            canary: 1,
            wanted: 0
        })
    );
}

/// After a change of `spec.replicas` spread over both sides (stable 19, canary 2 for a
/// canary of 1 at 20 replicas): braked and rolling, the stable side is grown and the
/// canary shrunk directly, then the pause.
#[test]
fn a_rescaled_canary_is_resized_directly_while_rolling_braked() {
    let record = CanaryRecord {
        replicas: 20,
        ..record(CanaryMode::Surge)
    };
    let goal = Goal::Hold { pods: 1 };
    let mut obs = settled(&record);
    obs.replicas = 20;
    obs.template = record.target_template();
    obs.settings = RolloutSettings::braked(CanaryMode::Surge, 1, false);
    obs.stable = rs(19, 19);
    obs.canary = rs(2, 2);
    let Decision::Resize(grow) = decide(&record, goal, &obs) else {
        panic!("expected the stable side grown")
    };
    assert_eq!((grow.from, grow.to), (19, 20));
    obs.stable = rs(20, 19);
    let Decision::Resize(shrink) = decide(&record, goal, &obs) else {
        panic!("expected the canary shrunk")
    };
    assert_eq!((shrink.from, shrink.to), (2, 1));
    obs.canary = rs(1, 2);
    assert!(matches!(decide(&record, goal, &obs), Decision::Apply(c) if c.settings.is_paused()));
}

/// Growing from a held canary whose pods are Available: the brake first (paused, the
/// strategy untouched), the resume only once no canary pod counts Available.
#[test]
fn growing_from_rest_brakes_first_and_resumes_once_no_canary_pod_is_available() {
    let record = record(CanaryMode::Surge);
    let goal = Goal::Hold { pods: 3 };
    let mut obs = settled(&record);
    obs.template = record.target_template();
    obs.settings = held_settings(&record, 1);
    obs.canary = rs(1, 1);
    obs.canary.as_mut().unwrap().available = 1;
    let Decision::Apply(brake) = decide(&record, goal, &obs) else {
        panic!("expected the brake")
    };
    assert!(brake.settings.is_braked() && brake.settings.is_paused());
    assert_eq!(brake.settings.strategy, obs.settings.strategy);
    obs.settings = brake.settings;
    assert_eq!(
        decide(&record, goal, &obs),
        Decision::Wait(Waiting::BrakeTakingHold { available: 1 })
    );
    obs.canary.as_mut().unwrap().available = 0;
    let Decision::Apply(resume) = decide(&record, goal, &obs) else {
        panic!("expected the resume")
    };
    assert_eq!(
        resume.settings,
        RolloutSettings::braked(CanaryMode::Surge, 3, false)
    );
}

/// Paused, the controller scales the stable side to 0 once a canary ReplicaSet as large
/// as the Deployment has every pod Available: such a canary stays braked while held.
#[test]
fn a_canary_as_large_as_the_deployment_stays_braked_while_held() {
    let record = CanaryRecord {
        replicas: 1,
        ..record(CanaryMode::Surge)
    };
    assert!(held_settings(&record, 1).is_braked());
    assert!(held_settings(&record, 1).is_paused());
    let larger = CanaryRecord {
        replicas: 2,
        ..record.clone()
    };
    assert!(!held_settings(&larger, 1).is_braked());
}

#[test]
fn abort_is_not_held_by_terminating_canary_pods() {
    let record = record(CanaryMode::Surge);
    let mut obs = settled(&record);
    obs.canary = rs(0, 2);
    obs.canary.as_mut().unwrap().terminating = 1;
    assert!(matches!(
        decide(&record, Goal::Abort, &obs),
        Decision::Wait(Waiting::RollingOut {
            canary_pods_left: 1,
            ..
        })
    ));
    obs.canary.as_mut().unwrap().terminating = 2;
    assert_eq!(decide(&record, Goal::Abort, &obs), Decision::Reached);
}

#[test]
fn abort_restores_everything_in_one_update_then_waits_for_canary_pods_to_go() {
    let record = record(CanaryMode::Surge);
    let mut obs = settled(&record);
    obs.template = record.target_template();
    obs.settings = RolloutSettings::braked(CanaryMode::Surge, 1, true);
    obs.canary = rs(1, 1);
    let Decision::Apply(change) = decide(&record, Goal::Abort, &obs) else {
        panic!("expected an update")
    };
    assert_eq!(change.template, Some(record.original_template.clone()));
    assert_eq!(change.settings, record.original_settings);
    obs.template = record.original_template.clone();
    obs.settings = record.original_settings.clone();
    obs.canary = rs(0, 1);
    assert!(matches!(
        decide(&record, Goal::Abort, &obs),
        Decision::Wait(Waiting::RollingOut {
            canary_pods_left: 1,
            ..
        })
    ));
    obs.canary = rs(0, 0);
    assert_eq!(decide(&record, Goal::Abort, &obs), Decision::Reached);
}

#[test]
fn promote_full_restores_settings_and_waits_for_completion() {
    let record = record(CanaryMode::Surge);
    let mut obs = settled(&record);
    obs.template = record.target_template();
    obs.settings = RolloutSettings::braked(CanaryMode::Surge, 1, true);
    let Decision::Apply(change) = decide(&record, Goal::PromoteFull, &obs) else {
        panic!("expected an update")
    };
    assert!(change.template.is_none());
    assert_eq!(change.settings, record.original_settings);
    obs.settings = record.original_settings.clone();
    obs.updated_replicas = 4;
    assert!(matches!(
        decide(&record, Goal::PromoteFull, &obs),
        Decision::Wait(Waiting::RollingOut { .. })
    ));
    obs.updated_replicas = 10;
    assert_eq!(decide(&record, Goal::PromoteFull, &obs), Decision::Reached);
}

#[test]
fn foreign_template_and_rescaling_need_a_person() {
    let record = record(CanaryMode::Surge);
    let mut obs = settled(&record);
    obs.template = json!({"spec": {"containers": [{"name": "nginx", "image": "other:1"}]}});
    assert_eq!(
        decide(&record, Goal::Hold { pods: 1 }, &obs),
        Decision::Stuck(Stuck::TemplateChangedElsewhere)
    );
    assert!(matches!(
        decide(&record, Goal::Abort, &obs),
        Decision::Apply(_)
    ));
    obs.template = record.target_template();
    obs.replicas = 12;
    assert!(matches!(
        decide(&record, Goal::Hold { pods: 1 }, &obs),
        Decision::Stuck(Stuck::ReplicasChanged { .. })
    ));
}
