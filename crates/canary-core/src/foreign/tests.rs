use serde_json::json;

use super::*;
use crate::machine::ReplicaSetObservation;
use crate::record::{RolloutSettings, sample_record};
use crate::rollout_math::CanaryMode;

fn held(record: &CanaryRecord) -> Observation {
    Observation {
        generation: 3,
        observed_generation: 3,
        replicas: 10,
        template: record.target_template(),
        settings: RolloutSettings::braked(CanaryMode::Surge, 1, true),
        updated_replicas: 1,
        status_replicas: 11,
        available_replicas: 10,
        canary: Some(ReplicaSetObservation {
            name: "c".into(),
            desired: 1,
            ready: 1,
            available: 0,
            pods: 1,
            terminating: 0,
        }),
        stable: None,
        other_pods: 0,
    }
}

fn holding() -> CanaryRecord {
    CanaryRecord {
        phase: Phase::Holding { pods: 1 },
        ..sample_record()
    }
}

fn known(record: &CanaryRecord) -> KnownRecord<'_> {
    KnownRecord {
        record,
        resource_version: "5",
        canary_seen: false,
    }
}

fn same(record: &CanaryRecord) -> SeenRecord<'_> {
    SeenRecord::Present {
        record,
        resource_version: "5",
    }
}

#[test]
fn nothing_foreign_in_a_held_canary() {
    let record = holding();
    let obs = held(&record);
    assert_eq!(
        classify(known(&record), same(&record), Some("uid"), Some(&obs)),
        None
    );
}

#[test]
fn every_class_is_told_apart() {
    let record = holding();
    let mut obs = held(&record);
    let classify_with = |seen: SeenRecord<'_>, uid: Option<&str>, obs: &Observation| {
        classify(known(&record), seen, uid, Some(obs))
    };
    assert!(matches!(
        classify_with(same(&record), Some("other"), &obs),
        Some(ForeignChange::Recreated { now_uid: Some(u), .. }) if u == "other"
    ));
    assert!(matches!(
        classify_with(same(&record), None, &obs),
        Some(ForeignChange::Recreated { now_uid: None, .. })
    ));
    assert_eq!(
        classify_with(SeenRecord::Gone, Some("uid"), &obs),
        Some(ForeignChange::RecordLost)
    );
    let aborting = CanaryRecord {
        phase: Phase::Aborting,
        ..record.clone()
    };
    let seen = SeenRecord::Present {
        record: &aborting,
        resource_version: "6",
    };
    assert!(matches!(
        classify_with(seen, Some("uid"), &obs),
        Some(ForeignChange::SupersededByAnotherRun { by: Some(_), .. })
    ));
    // A newer version with the same phase and owner (a history note) is not a takeover.
    let seen = SeenRecord::Present {
        record: &record,
        resource_version: "6",
    };
    assert_eq!(classify_with(seen, Some("uid"), &obs), None);

    obs.template = record.original_template.clone();
    assert_eq!(
        classify_with(same(&record), Some("uid"), &obs),
        Some(ForeignChange::RevertedToStable)
    );
    obs.template = json!({"spec": {"containers": [{"name": "nginx", "image": "nginx:9"}]}});
    assert_eq!(
        classify_with(same(&record), Some("uid"), &obs),
        Some(ForeignChange::ReplacedByOtherVersion {
            images: "nginx=nginx:9".into()
        })
    );
    obs.template = record.target_template();
    obs.replicas = 20;
    assert_eq!(
        classify_with(same(&record), Some("uid"), &obs),
        Some(ForeignChange::Rescaled {
            recorded: 10,
            now: 20
        })
    );
}

#[test]
fn the_tool_s_own_states_are_not_foreign() {
    // start before its first update: the stable template with the original settings.
    let record = sample_record();
    let mut obs = held(&record);
    obs.template = record.original_template.clone();
    obs.settings = record.original_settings.clone();
    assert_eq!(
        classify(known(&record), same(&record), Some("uid"), Some(&obs)),
        None
    );
    // ... but the stable template under the brake is a revert.
    obs.settings = RolloutSettings::braked(CanaryMode::Surge, 1, false);
    assert_eq!(
        classify(known(&record), same(&record), Some("uid"), Some(&obs)),
        Some(ForeignChange::RevertedToStable)
    );
    // Untouched (a crashed abort, then promote): nothing foreign, whatever the phase.
    let promoting = CanaryRecord {
        phase: Phase::PromotingFull,
        ..sample_record()
    };
    obs.settings = record.original_settings.clone();
    assert_eq!(
        classify(known(&promoting), same(&promoting), Some("uid"), Some(&obs)),
        None
    );
    // ... but once this run has seen the canary (promote --full restored the settings
    // first), the stable template coming back is a revert.
    let seen = KnownRecord {
        canary_seen: true,
        ..known(&promoting)
    };
    assert_eq!(
        classify(seen, same(&promoting), Some("uid"), Some(&obs)),
        Some(ForeignChange::RevertedToStable)
    );
    // An abort wants the stable template; a promotion ignores replicas.
    for phase in [Phase::Aborting, Phase::PromotingFull] {
        let record = CanaryRecord {
            phase,
            ..sample_record()
        };
        let mut obs = held(&record);
        obs.replicas = 20;
        if phase == Phase::Aborting {
            obs.template = record.original_template.clone();
        }
        assert_eq!(
            classify(known(&record), same(&record), Some("uid"), Some(&obs)),
            None,
            "{phase:?}"
        );
    }
}

/// A share stays a share (within one pod), a count stays the count; impossible sizes stop.
#[test]
fn a_rescale_is_followed_keeping_what_was_asked() {
    let rescaled = |now| ForeignChange::Rescaled { recorded: 10, now };
    let share = CanaryRecord {
        requested_size: Some(CanarySize::Percent(10.0)),
        ..holding()
    };
    let obs = held(&share);
    assert_eq!(
        rescaled(20).response(&share, &obs),
        ForeignResponse::Follow {
            replicas: 20,
            pods: 2
        }
    );
    let count = holding();
    assert_eq!(
        rescaled(20).response(&count, &obs),
        ForeignResponse::Follow {
            replicas: 20,
            pods: 1
        }
    );
    let replace = CanaryRecord {
        mode: CanaryMode::Replace,
        requested_size: Some(CanarySize::Pods(3)),
        phase: Phase::Holding { pods: 3 },
        ..holding()
    };
    assert_eq!(rescaled(3).response(&replace, &obs), ForeignResponse::Stop);
    let next = followed(&share, 20, 2, "t");
    assert_eq!(next.replicas, 20);
    assert_eq!(next.phase, Phase::Holding { pods: 2 });
    assert_eq!(next.history.len(), 1);
}

/// A record closed by whoever finished the same goal ends the run as done; anything
/// short of that (the goal not reached, the record still there or unread, another kind
/// of change) keeps the usual response.
#[test]
fn a_record_closed_by_whoever_reached_the_same_goal_means_done() {
    let record = holding();
    let mut promoted = held(&record);
    promoted.settings = record.original_settings.clone();
    promoted.updated_replicas = 10;
    promoted.status_replicas = 10;
    promoted.canary = Some(ReplicaSetObservation {
        name: "c".into(),
        desired: 10,
        ready: 10,
        available: 10,
        pods: 10,
        terminating: 0,
    });
    promoted.stable = Some(ReplicaSetObservation {
        name: "s".into(),
        desired: 0,
        ready: 0,
        available: 0,
        pods: 0,
        terminating: 0,
    });
    assert_eq!(
        decide(&record, Goal::PromoteFull, &promoted),
        Decision::Reached,
        "the observation is a finished promotion"
    );
    let superseded = ForeignChange::SupersededByAnotherRun {
        now: "it finished and released the canary".into(),
        by: None,
    };
    for change in [ForeignChange::RecordLost, superseded.clone()] {
        assert_eq!(
            change.response_towards(&record, Goal::PromoteFull, SeenRecord::Gone, &promoted),
            ForeignResponse::Done,
            "{change:?}"
        );
        // The goal not reached: the usual response (stop).
        assert_eq!(
            change.response_towards(&record, Goal::PromoteFull, SeenRecord::Gone, &held(&record)),
            ForeignResponse::Stop,
            "{change:?}"
        );
        // A record still there, or not looked at: not closed.
        for now in [same(&record), SeenRecord::Unchecked] {
            assert_eq!(
                change.response_towards(&record, Goal::PromoteFull, now, &promoted),
                ForeignResponse::Stop,
                "{change:?}"
            );
        }
    }
    // An abort reached by someone else's revert and release.
    let mut restored = held(&record);
    restored.template = record.original_template.clone();
    restored.settings = record.original_settings.clone();
    restored.updated_replicas = 10;
    restored.status_replicas = 10;
    restored.canary = None;
    assert_eq!(
        superseded.response_towards(&record, Goal::Abort, SeenRecord::Gone, &restored),
        ForeignResponse::Done
    );
    // Other changes are never "done", even with the record gone.
    assert_eq!(
        ForeignChange::RevertedToStable.response_towards(
            &record,
            Goal::Abort,
            SeenRecord::Gone,
            &restored
        ),
        ForeignResponse::Close
    );
}

#[test]
fn a_gone_record_with_the_deployment_restored_is_another_run_s_finished_abort() {
    let record = holding();
    let mut obs = held(&record);
    obs.template = record.original_template.clone();
    obs.settings = record.original_settings.clone();
    assert!(matches!(
        classify(known(&record), SeenRecord::Gone, Some("uid"), Some(&obs)),
        Some(ForeignChange::SupersededByAnotherRun { by: None, .. })
    ));
}

#[test]
fn responses_release_the_brake_or_stop_and_never_reapply_the_canary() {
    let record = holding();
    let obs = held(&record);
    let reverted = ForeignChange::RevertedToStable;
    let ForeignResponse::Release(change) = reverted.response(&record, &obs) else {
        panic!("a braked revert is released")
    };
    assert_eq!(change.template, None, "the other actor's template stays");
    assert_eq!(change.settings, record.original_settings);
    let mut restored = obs.clone();
    restored.settings = record.original_settings.clone();
    assert_eq!(
        reverted.response(&record, &restored),
        ForeignResponse::Close
    );
    assert_eq!(
        ForeignChange::RecordLost.response(&record, &obs),
        ForeignResponse::Stop
    );
    for change in [
        ForeignChange::RevertedToStable,
        ForeignChange::ReplacedByOtherVersion { images: "x".into() },
        ForeignChange::RecordLost,
        ForeignChange::SupersededByAnotherRun {
            now: "x".into(),
            by: None,
        },
    ] {
        let text = change.next_step("web");
        assert!(!text.contains("--canary"), "{text}");
        assert!(!text.contains("set image"), "{text}");
        assert!(!text.contains("promote"), "{text}");
    }
}
