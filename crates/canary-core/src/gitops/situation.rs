//! What a release is, from the Deployment's template, the brake's annotations and the
//! record; and the record's next phase after each event of a GitOps release.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::machine::{TemplateState, template_state};
use crate::record::{
    CanaryRecord, Owner, Phase, RECORD_SCHEMA, RolloutSettings, StableRevision, changed_images,
    images_of, replica_set_template_matches, without_template_hash,
};
use crate::rollout_math::CanaryMode;

/// The `toolVersion` prefix of records the controller writes (`kubectl-canary-controller/0.1.0`):
/// the controller acts only on those, and leaves canaries started with the CLI to the CLI.
pub const CONTROLLER_TOOL: &str = "kubectl-canary-controller";

/// Whether the controller started this canary.
pub fn is_controller_record(record: &CanaryRecord) -> bool {
    record
        .started_by
        .tool_version
        .strip_prefix(CONTROLLER_TOOL)
        .is_some_and(|rest| rest.starts_with('/'))
}

/// Where a Deployment's release stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    /// No brake, no record: nothing to do.
    Idle,
    /// Braked by the policy, not recorded yet: a new canary begins.
    Begin,
    /// The recorded canary goes on.
    Continue,
    /// The template is the recorded stable one again (a revert commit, or `kubectl canary
    /// abort`): put the Deployment's own settings back and close the record.
    Reverted,
    /// The policy braked yet another template while a canary was recorded (a new commit):
    /// the new version replaces the canary.
    Superseded,
    /// The template changed to another version without the brake (the policy did not
    /// match: the opt-in label or the annotations were removed): the record is stale.
    Abandoned,
}

/// Classifies a Deployment's release.
pub fn classify(template: &Value, record: Option<&CanaryRecord>, braked: bool) -> Release {
    match record {
        None if braked => Release::Begin,
        None => Release::Idle,
        Some(record) => match template_state(record, template) {
            TemplateState::Original => Release::Reverted,
            TemplateState::Canary => Release::Continue,
            TemplateState::Foreign if braked => Release::Superseded,
            TemplateState::Foreign => Release::Abandoned,
        },
    }
}

/// Reads `name=image,...` (the policy's stable-images annotation) into a map.
pub fn parse_images_signature(signature: &str) -> Option<BTreeMap<String, String>> {
    signature
        .split(',')
        .map(|pair| {
            let (name, image) = pair.split_once('=')?;
            (!name.is_empty() && !image.is_empty()).then(|| (name.to_string(), image.to_string()))
        })
        .collect()
}

/// The stable side of a braked change of any part of the pod template: of the
/// Deployment's ReplicaSets (`(revision, template)`, templates as stored, with the hash
/// label), the newest one that is not the current template's (the template the braked
/// write replaced: the controller gives a re-used template a new revision), when its images
/// are the policy's annotated stable images. Returns its index and its template without
/// the hash label; `None` when there is none or its images are not the annotated ones.
pub fn stable_of_braked_change(
    replica_sets: &[(i64, &Value)],
    current: &Value,
    stable_images: &str,
) -> Option<(usize, Value)> {
    let (index, (_, template)) = replica_sets
        .iter()
        .enumerate()
        .filter(|(_, (_, template))| !replica_set_template_matches(template, current))
        .max_by_key(|(_, (revision, _))| *revision)?;
    let template = without_template_hash(template);
    (crate::gitops::brake::images_signature(&template) == stable_images)
        .then_some((index, template))
}

/// Everything a new controller-run record is made of.
#[derive(Debug, Clone)]
pub struct NewCanary<'a> {
    /// The Deployment's name and UID.
    pub deployment: (&'a str, &'a str),
    /// `spec.replicas`.
    pub replicas: i32,
    /// The stable template (see [`stable_of_braked_change`]).
    pub stable_template: Value,
    /// The stable ReplicaSet.
    pub stable: StableRevision,
    /// The canary's template (the Deployment's, as Git has it).
    pub canary_template: &'a Value,
    /// The Deployment's own settings, from the brake's annotations.
    pub original_settings: RolloutSettings,
    /// Surge or replace.
    pub mode: CanaryMode,
    /// The first size.
    pub pods: i32,
    /// The controller's identity.
    pub owner: Owner,
    /// RFC 3339 time.
    pub now: &'a str,
}

/// The record of a canary the controller begins: the same format as the CLI's, so the
/// CLI's `status`, `promote` and `abort` work on it.
pub fn begin_record(canary: NewCanary<'_>) -> CanaryRecord {
    let target_images = changed_images(&canary.stable_template, canary.canary_template);
    let mut record = CanaryRecord {
        schema: RECORD_SCHEMA,
        deployment: canary.deployment.0.to_string(),
        deployment_uid: canary.deployment.1.to_string(),
        replicas: canary.replicas,
        original_images: images_of(&canary.stable_template),
        original_template: canary.stable_template,
        original_settings: canary.original_settings,
        stable: canary.stable,
        target_images,
        target_template: Some(canary.canary_template.clone()),
        mode: canary.mode,
        phase: Phase::Starting { pods: canary.pods },
        started_by: canary.owner,
        started_at: canary.now.to_string(),
        history: Vec::new(),
        admitted_target_template: None,
        requested_size: None,
        // The policy releases the brake in the same write as a revert.
        brake_while_held: true,
        traffic: None,
        gate: None,
    };
    record.note(
        canary.now,
        format!(
            "gitops: a change ({}) was braked at {} canary pod(s) by the admission policy",
            record.change_summary(),
            canary.pods
        ),
    );
    record
}

/// The record after a new commit replaced the canary: the same stable side and settings,
/// the new images, back to the first step.
pub fn supersede(
    record: &CanaryRecord,
    canary_template: &Value,
    pods: i32,
    now: &str,
) -> CanaryRecord {
    let mut next = record.clone();
    next.target_images = changed_images(&record.original_template, canary_template);
    next.target_template = Some(canary_template.clone());
    next.schema = RECORD_SCHEMA;
    next.phase = Phase::Starting { pods };
    next.note(
        now,
        format!(
            "gitops: a new commit ({}) replaced the canary; starting again at {pods} pod(s)",
            next.change_summary()
        ),
    );
    next
}

/// The phase after an analysis passed at `held` pods: the next step, or 100%.
pub fn after_pass(sizes: &[i32], held: i32) -> Phase {
    crate::step_policy::after_verdict(crate::verdict::Decision::Pass, sizes, held)
        .phase()
        .expect("a pass always moves on")
}

/// The one change a failed canary still needs under GitOps: the Deployment keeps Git's
/// template (reverting it would fight Git, which would apply it again), is paused with the
/// brake on, and its canary ReplicaSet is scaled to 0, so only stable pods serve until the
/// next commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldOnStable {
    /// Pause (the brake stays).
    Pause,
    /// Scale the canary ReplicaSet to 0.
    ScaleCanaryToZero,
    /// Waiting for the canary pods to go.
    CanaryPodsTerminating(i32),
    /// At rest on the stable pods.
    Resting,
}

/// The next step of [`HoldOnStable`], from the settings and the canary ReplicaSet's
/// desired and existing pods.
pub fn hold_on_stable(
    settings: &RolloutSettings,
    canary_desired: i32,
    canary_pods: i32,
) -> HoldOnStable {
    if !settings.is_paused() {
        HoldOnStable::Pause
    } else if canary_desired > 0 {
        HoldOnStable::ScaleCanaryToZero
    } else if canary_pods > 0 {
        HoldOnStable::CanaryPodsTerminating(canary_pods)
    } else {
        HoldOnStable::Resting
    }
}

#[cfg(test)]
mod stable_side_tests {
    use serde_json::json;

    use super::*;

    fn rs(image: &str, mode: &str, hash: &str) -> Value {
        json!({"metadata": {"labels": {"app": "web", "pod-template-hash": hash}},
               "spec": {"containers": [{"name": "web", "image": image,
                        "env": [{"name": "MODE", "value": mode}]}]}})
    }

    /// An env-only commit: the stable side is the newest other ReplicaSet, with the
    /// annotated images; a signature that does not match finds none.
    #[test]
    fn the_stable_side_of_any_template_change_is_the_newest_other_replica_set() {
        let (old, stable, canary) = (
            rs("web:0", "a", "0"),
            rs("web:1", "a", "1"),
            rs("web:1", "b", "2"),
        );
        let current = without_template_hash(&canary);
        let sets = [(1, &old), (2, &stable), (3, &canary)];
        let (index, template) = stable_of_braked_change(&sets, &current, "web=web:1").unwrap();
        assert_eq!(index, 1);
        assert_eq!(template, without_template_hash(&stable));
        assert_eq!(stable_of_braked_change(&sets, &current, "web=web:9"), None);
        // A rollback to an old template: the controller gave it the newest revision.
        let sets = [(4, &old), (2, &stable), (3, &canary)];
        assert_eq!(
            stable_of_braked_change(&sets, &current, "web=web:0").map(|(i, _)| i),
            Some(0)
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::record::with_images;
    use serde_json::json;

    use super::*;
    use crate::record::sample_record;

    #[test]
    fn releases_are_told_apart_by_template_and_brake() {
        let record = sample_record();
        let canary = record.target_template();
        let stable = record.original_template.clone();
        let other = with_images(
            &stable,
            &BTreeMap::from([("nginx".to_string(), "nginx:1.16".to_string())]),
        );
        assert_eq!(classify(&canary, None, false), Release::Idle);
        assert_eq!(classify(&canary, None, true), Release::Begin);
        assert_eq!(classify(&canary, Some(&record), true), Release::Continue);
        assert_eq!(classify(&stable, Some(&record), false), Release::Reverted);
        assert_eq!(classify(&other, Some(&record), true), Release::Superseded);
        assert_eq!(classify(&other, Some(&record), false), Release::Abandoned);
    }

    #[test]
    fn images_signatures_are_read() {
        assert_eq!(
            parse_images_signature("nginx=nginx:1.14,log=busybox:1"),
            Some(std::collections::BTreeMap::from([
                ("log".to_string(), "busybox:1".to_string()),
                ("nginx".to_string(), "nginx:1.14".to_string())
            ]))
        );
        assert_eq!(parse_images_signature("nginx"), None);
        assert_eq!(parse_images_signature(""), None);
    }

    #[test]
    fn a_new_commit_restarts_at_the_first_step_with_the_same_stable_side() {
        let record = Phase::Holding { pods: 3 };
        let record = CanaryRecord {
            phase: record,
            ..sample_record()
        };
        let template = json!({"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:1.16"}]}});
        let next = supersede(&record, &template, 1, "t");
        assert_eq!(next.phase, Phase::Starting { pods: 1 });
        assert_eq!(next.stable, record.stable);
        assert_eq!(next.original_settings, record.original_settings);
        assert_eq!(next.target_template(), template);
    }

    #[test]
    fn steps_then_full() {
        assert_eq!(after_pass(&[1, 3], 1), Phase::Promoting { from: 1, to: 3 });
        assert_eq!(after_pass(&[1, 3], 3), Phase::PromotingFull);
    }

    #[test]
    fn hold_on_stable_pauses_then_empties_the_canary() {
        let running = RolloutSettings::braked(CanaryMode::Surge, 1, false);
        let paused = running.with_paused(true);
        assert_eq!(hold_on_stable(&running, 1, 1), HoldOnStable::Pause);
        assert_eq!(
            hold_on_stable(&paused, 1, 1),
            HoldOnStable::ScaleCanaryToZero
        );
        assert_eq!(
            hold_on_stable(&paused, 0, 1),
            HoldOnStable::CanaryPodsTerminating(1)
        );
        assert_eq!(hold_on_stable(&paused, 0, 0), HoldOnStable::Resting);
    }
}
