use serde_json::json;

use super::*;
use crate::record::sample_record;

fn sealed(phase: Phase, goal: Goal) -> (CanaryRecord, Seal, Value) {
    let record = CanaryRecord {
        phase,
        ..sample_record()
    };
    let seal = Seal::for_record(&record, goal);
    let mut rs_template = record.original_template.clone();
    rs_template["metadata"]["labels"]["pod-template-hash"] = json!("abc");
    (record, seal, rs_template)
}

type Edit = Box<dyn Fn(&mut CanaryRecord)>;

fn held() -> (CanaryRecord, Seal, Value) {
    sealed(Phase::Holding { pods: 1 }, Goal::Hold { pods: 1 })
}

#[test]
fn an_untouched_record_verifies_and_comes_back_from_the_trusted_sources() {
    let (record, seal, rs) = held();
    let trusted = verify_record(&record, &seal, "uid", Some(&rs)).unwrap();
    assert_eq!(trusted, record);
    assert_eq!(
        trusted
            .original_template
            .pointer("/metadata/labels/pod-template-hash"),
        None,
        "the hash label is removed"
    );
}

#[test]
fn equal_templates_in_another_json_form_verify() {
    let (mut record, _, rs) = held();
    record.original_template["spec"]["volumes"] = Value::Null;
    record.original_template["metadata"]["annotations"] = json!({});
    let seal = Seal::for_record(&record, Goal::Hold { pods: 1 });
    let trusted = verify_record(&record, &seal, "uid", Some(&rs)).unwrap();
    assert_eq!(
        trusted.original_template,
        without_template_hash(&rs),
        "the template written is the ReplicaSet's"
    );
}

/// Every field a ConfigMap writer might change, and what the check says about it.
#[test]
fn every_edit_of_the_record_is_detected() {
    let (record, seal, rs) = held();
    let privileged = {
        let mut t = record.original_template.clone();
        t["spec"]["containers"][0]["securityContext"] = json!({"privileged": true});
        t["spec"]["containers"][0]["image"] = json!("evil:1");
        t
    };
    let edits: Vec<(&str, Edit, &str)> = vec![
        (
            "original template",
            Box::new(move |r| r.original_template = privileged.clone()),
            "digest",
        ),
        (
            "original images",
            Box::new(|r| {
                r.original_images.insert("nginx".into(), "evil:1".into());
            }),
            "digest",
        ),
        (
            "target images",
            Box::new(|r| {
                r.target_images.insert("nginx".into(), "evil:1".into());
            }),
            "target images",
        ),
        (
            "minReadySeconds",
            Box::new(|r| r.original_settings.min_ready_seconds = Some(5)),
            "original settings",
        ),
        (
            "paused",
            Box::new(|r| r.original_settings.paused = Some(true)),
            "original settings",
        ),
        (
            "strategy",
            Box::new(|r| r.original_settings.strategy = json!({"type": "Recreate"})),
            "original settings",
        ),
        (
            "stable ReplicaSet",
            Box::new(|r| r.stable.uid = "other".into()),
            "stable ReplicaSet",
        ),
        ("mode", Box::new(|r| r.mode = CanaryMode::Replace), "mode"),
        (
            "owner",
            Box::new(|r| r.started_by.user = "mallory".into()),
            "digest",
        ),
        (
            "start time",
            Box::new(|r| r.started_at = "later".into()),
            "digest",
        ),
        (
            "Deployment UID",
            Box::new(|r| r.deployment_uid = "other".into()),
            "another Deployment",
        ),
        (
            "held size",
            Box::new(|r| r.phase = Phase::Holding { pods: 5 }),
            "phase",
        ),
    ];
    for (what, edit, expected) in edits {
        let mut changed = record.clone();
        edit(&mut changed);
        let error = verify_record(&changed, &seal, "uid", Some(&rs))
            .expect_err(what)
            .to_string();
        assert!(
            error.contains(expected),
            "{what}: {error} should mention {expected}"
        );
    }
}

/// A record with the digest recomputed by whoever edited it still differs from the
/// ReplicaSet or the seal.
#[test]
fn a_consistent_forgery_still_differs_from_the_replica_set() {
    let (mut record, seal, rs) = held();
    record.original_template["spec"]["containers"][0]["image"] = json!("evil:1");
    let forged_seal = Seal {
        record_digest: record_digest(&record),
        ..seal.clone()
    };
    assert_eq!(
        verify_record(&record, &forged_seal, "uid", Some(&rs)),
        Err(Tampering::TemplateDiffersFromReplicaSet {
            replica_set: "web-1".into()
        })
    );
}

/// A writer of ReplicaSets who changes the stable ReplicaSet's template (and the record
/// to match) is caught by the sealed template digest.
#[test]
fn a_changed_stable_replica_set_is_refused() {
    let (mut record, seal, mut rs) = held();
    rs["spec"]["containers"][0]["image"] = json!("evil:1");
    assert!(matches!(
        verify_record(&record, &seal, "uid", Some(&rs)),
        Err(Tampering::ReplicaSetChanged { .. })
    ));
    record.original_template["spec"]["containers"][0]["image"] = json!("evil:1");
    assert!(verify_record(&record, &seal, "uid", Some(&rs)).is_err());
}

#[test]
fn a_missing_stable_replica_set_or_another_deployment_is_refused() {
    let (record, seal, _) = held();
    assert!(matches!(
        verify_record(&record, &seal, "uid", None),
        Err(Tampering::StableReplicaSetMissing { .. })
    ));
    assert!(matches!(
        verify_record(&record, &seal, "recreated", None),
        Err(Tampering::OtherDeployment { .. })
    ));
}

#[test]
fn phases_that_a_crashed_run_can_leave_are_accepted_others_not() {
    let hold = |pods| SealedGoal::Hold { pods };
    let ok = [
        (Phase::Holding { pods: 1 }, hold(1)),
        (Phase::Starting { pods: 2 }, hold(1)),
        (Phase::Promoting { from: 1, to: 3 }, hold(1)),
        (Phase::Promoting { from: 1, to: 3 }, hold(3)),
        (Phase::Promoting { from: 0, to: 2 }, SealedGoal::Abort),
        (Phase::PromotingFull, hold(1)),
        (Phase::Aborting, SealedGoal::PromoteFull),
    ];
    for (phase, goal) in ok {
        assert!(phase_can_follow(phase, goal), "{phase:?} after {goal:?}");
    }
    let bad = [
        (Phase::Holding { pods: 2 }, hold(1)),
        (Phase::Holding { pods: 1 }, SealedGoal::Abort),
        (Phase::Starting { pods: 1 }, SealedGoal::PromoteFull),
        (Phase::Promoting { from: 2, to: 3 }, hold(1)),
        (Phase::Promoting { from: 3, to: 1 }, hold(3)),
    ];
    for (phase, goal) in bad {
        assert!(!phase_can_follow(phase, goal), "{phase:?} after {goal:?}");
    }
}

/// A canary run by the GitOps controller has the policy's annotations instead of a seal:
/// the record is checked against them, the Deployment's template and the stable
/// ReplicaSet's images.
#[test]
fn a_controller_run_canary_is_checked_against_the_brake_annotations() {
    let (record, _, rs) = held();
    let annotations = std::collections::BTreeMap::from([
        ("kubectl-canary.io/brake".to_string(), "1".to_string()),
        (
            "kubectl-canary.io/stable-images".to_string(),
            "nginx=nginx:1.14".to_string(),
        ),
        (
            "kubectl-canary.io/original-max-surge".to_string(),
            "25%".to_string(),
        ),
        (
            "kubectl-canary.io/original-max-unavailable".to_string(),
            "25%".to_string(),
        ),
        (
            "kubectl-canary.io/original-min-ready-seconds".to_string(),
            "0".to_string(),
        ),
        (
            "kubectl-canary.io/original-progress-deadline-seconds".to_string(),
            "600".to_string(),
        ),
    ]);
    let brake = crate::gitops::brake::BrakeAnnotations::from_annotations(&annotations)
        .unwrap()
        .unwrap();
    let canary = record.target_template();
    let seal = seal_for_controller_canary(&record, &brake, "uid", &canary, Some(&rs)).unwrap();
    assert_eq!(
        verify_record(&record, &seal, "uid", Some(&rs)).unwrap(),
        record
    );
    let mut edited = record.clone();
    edited.original_settings.min_ready_seconds = Some(30);
    assert!(seal_for_controller_canary(&edited, &brake, "uid", &canary, Some(&rs)).is_err());
    let mut edited = record.clone();
    edited.target_images.insert("nginx".into(), "evil:1".into());
    assert!(seal_for_controller_canary(&edited, &brake, "uid", &canary, Some(&rs)).is_err());
    let mut other_rs = rs.clone();
    other_rs["spec"]["containers"][0]["image"] = json!("nginx:1.13");
    assert!(
        seal_for_controller_canary(&record, &brake, "uid", &canary, Some(&other_rs)).is_err(),
        "a stable ReplicaSet without the annotated stable images"
    );
}

/// A record of any template change (version 2): its target template is vouched for by
/// the seal's digest, so a writer of ConfigMaps cannot choose what a promote writes;
/// taking it out or adding one to a version 1 record is refused too.
#[test]
fn the_target_template_of_any_release_is_sealed() {
    let mut record = sample_record();
    let mut target = record.original_template.clone();
    target["spec"]["containers"][0]["env"] = json!([{"name": "MODE", "value": "b"}]);
    record.target_template = Some(target.clone());
    record.target_images = BTreeMap::new();
    record.phase = Phase::Holding { pods: 1 };
    let seal = Seal::for_record(&record, Goal::Hold { pods: 1 });
    assert_eq!(seal.version, SEAL_VERSION);
    assert_eq!(Seal::parse(&seal.to_annotation()).unwrap(), seal);
    let mut rs = record.original_template.clone();
    rs["metadata"]["labels"]["pod-template-hash"] = json!("abc");
    let trusted = verify_record(&record, &seal, "uid", Some(&rs)).unwrap();
    assert_eq!(trusted.sent_target_template(), target);
    assert_eq!(trusted.change_summary(), "+spec.containers[nginx].env");
    let mut privileged = record.clone();
    privileged.target_template.as_mut().unwrap()["spec"]["containers"][0]["securityContext"] =
        json!({"privileged": true});
    assert_eq!(
        verify_record(&privileged, &seal, "uid", Some(&rs)),
        Err(Tampering::TargetTemplateDiffers)
    );
    let mut dropped = record.clone();
    dropped.target_template = None;
    assert_eq!(
        verify_record(&dropped, &seal, "uid", Some(&rs)),
        Err(Tampering::TargetTemplateDiffers),
        "without it the canary would be the stable template with the target images"
    );
    let old = sample_record();
    let old_seal = Seal::for_record(&old, Goal::Hold { pods: 1 });
    assert_eq!(
        old_seal.version, 1,
        "a version 1 record keeps a version 1 seal"
    );
    let mut added = CanaryRecord {
        phase: Phase::Starting { pods: 1 },
        ..old.clone()
    };
    added.target_template = Some(target);
    assert_eq!(
        verify_record(&added, &old_seal, "uid", Some(&rs)),
        Err(Tampering::TargetTemplateDiffers)
    );
    let mut inconsistent = serde_json::to_value(&seal).unwrap();
    inconsistent["version"] = json!(1);
    assert!(Seal::parse(&inconsistent.to_string()).is_err());
}

#[test]
fn the_seal_round_trips_and_refuses_other_versions_and_fields() {
    let (_, seal, _) = held();
    assert_eq!(Seal::parse(&seal.to_annotation()).unwrap(), seal);
    let mut other = serde_json::to_value(&seal).unwrap();
    other["version"] = json!(3);
    assert!(
        Seal::parse(&other.to_string())
            .unwrap_err()
            .contains("version 3")
    );
    other["version"] = json!(1);
    other["extra"] = json!("x");
    assert!(Seal::parse(&other.to_string()).is_err());
}

#[test]
fn without_the_record_a_held_deployment_is_told_from_a_leftover_seal() {
    let (record, seal, rs) = held();
    let braked = RolloutSettings::braked(CanaryMode::Surge, 1, true);
    assert!(held_without_record(&seal, &braked));
    let paused_without_brake = RolloutSettings {
        min_ready_seconds: None,
        progress_deadline_seconds: Some(600),
        ..braked.clone()
    };
    assert!(
        held_without_record(&seal, &paused_without_brake),
        "held, paused with the canary's strategy and without the brake"
    );
    assert!(
        !held_without_record(&seal, &record.original_settings),
        "after a promotion or a rollback whose last step did not run"
    );
    let paused_by_hand = record.original_settings.with_paused(true);
    assert!(
        !held_without_record(&seal, &paused_by_hand),
        "a stale seal on a Deployment someone paused is not a canary"
    );
    let stale = Seal {
        goal: SealedGoal::Abort,
        ..seal.clone()
    };
    assert!(
        !held_without_record(&stale, &paused_without_brake),
        "a seal whose last write was a rollback holds nothing"
    );
    let change = recovery_change(&seal, &rs).unwrap();
    assert_eq!(change.template, Some(record.original_template.clone()));
    assert_eq!(change.settings, record.original_settings);
    let mut edited_rs = rs.clone();
    edited_rs["spec"]["containers"][0]["image"] = json!("evil:1");
    assert!(matches!(
        recovery_change(&seal, &edited_rs),
        Err(Tampering::ReplicaSetChanged { .. })
    ));
}
