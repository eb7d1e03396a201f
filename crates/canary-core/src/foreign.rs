//! Foreign changes: what someone else did to a canary's Deployment or record, told apart
//! from what the tool itself did, and what the tool does about each.
//!
//! kubectl-canary is never alone on a Deployment: a GitOps controller re-applies the manifest,
//! an HPA changes `spec.replicas`, a colleague runs kubectl, another run of the tool takes
//! over. Every decision first asks [`classify`] whether the world is still the one the run
//! was working in. The rule for the answer ([`ForeignChange::response`]): never fight the
//! other actor (nothing re-applies the canary over their change), never leave the brake on a
//! ReplicaSet the tool no longer steers, and say what happened and what fixes it.

use serde::Serialize;

use crate::machine::{
    Decision, Goal, Observation, SpecChange, TemplateState, decide, template_state,
};
use crate::record::{CanaryRecord, Owner, Phase, images_of};
use crate::rollout_math::{CanarySize, resolve_canary};

/// What a run watching a canary last knew of its record.
#[derive(Debug, Clone, Copy)]
pub struct KnownRecord<'a> {
    /// The record as this run read or wrote it last.
    pub record: &'a CanaryRecord,
    /// Its resourceVersion then.
    pub resource_version: &'a str,
    /// Whether this run has seen the canary template on the Deployment (set it, or found
    /// it set). After that, the stable template coming back is someone else's doing even
    /// when the Deployment's own settings are back (`promote --full` restores them first).
    pub canary_seen: bool,
}

/// The record as it is now in the cluster.
#[derive(Debug, Clone, Copy)]
pub enum SeenRecord<'a> {
    /// There is no record.
    Gone,
    /// A record, with its resourceVersion.
    Present {
        /// The record.
        record: &'a CanaryRecord,
        /// Its resourceVersion.
        resource_version: &'a str,
    },
    /// Not looked at (a read-only command that has only the record it just read).
    Unchecked,
}

/// A change someone else made during a canary, as classified from observation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "camelCase")]
pub enum ForeignChange {
    /// The pod template is the recorded stable one again although the canary was set:
    /// `kubectl apply` of the old manifest, a GitOps self-heal, `set image` or `rollout undo`.
    RevertedToStable,
    /// The pod template is neither the stable nor the canary one: someone rolls out another
    /// version.
    ReplacedByOtherVersion {
        /// The images of the template now, `container=image ...`.
        images: String,
    },
    /// `spec.replicas` changed (an HPA or `kubectl scale`) while a size was being held.
    Rescaled {
        /// When the canary started.
        recorded: i32,
        /// Now.
        now: i32,
    },
    /// The Deployment was deleted, and perhaps created again under the same name.
    Recreated {
        /// The UID in the record.
        recorded_uid: String,
        /// The UID now, if a namesake exists.
        now_uid: Option<String>,
    },
    /// The record was deleted, or rewritten beyond reading, by someone else.
    RecordLost,
    /// Another run of kubectl-canary took the canary over (its phase or owner changed).
    SupersededByAnotherRun {
        /// What the other run is doing, or that it finished and released the canary.
        now: String,
        /// Who started the run that now holds the record, if any.
        by: Option<String>,
    },
}

/// What the tool does about a foreign change.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "response", rename_all = "camelCase")]
pub enum ForeignResponse {
    /// Take the brake off (the Deployment's own settings back, the template as the other
    /// actor left it) with this update, then close the record with the reason.
    Release(SpecChange),
    /// The Deployment's own settings are already back: close the record with the reason.
    Close,
    /// Follow a change of `spec.replicas`: record the new count and the canary size that
    /// keeps what the user asked for, then hold that size.
    Follow {
        /// `spec.replicas` now.
        replicas: i32,
        /// Canary pods that keep the size asked for (a share stays a share within one pod,
        /// a count stays the count).
        pods: i32,
    },
    /// Touch nothing more and stop.
    Stop,
    /// The record was closed by whoever finished the goal this run drives towards (the
    /// GitOps controller carrying out a CLI promote or abort, say): the run is done, not
    /// lost or superseded; touch nothing more and end as if it had got there itself.
    Done,
}

impl ForeignChange {
    /// What the tool does about it, given the Deployment as observed.
    pub fn response(&self, record: &CanaryRecord, observed: &Observation) -> ForeignResponse {
        match self {
            ForeignChange::RevertedToStable | ForeignChange::ReplacedByOtherVersion { .. } => {
                if observed.settings.equivalent(&record.original_settings) {
                    ForeignResponse::Close
                } else {
                    ForeignResponse::Release(SpecChange {
                        template: None,
                        settings: record.original_settings.clone(),
                        summary: "take the canary's brake off: put back the Deployment's own \
                                  strategy, minReadySeconds, progressDeadlineSeconds and paused \
                                  state, leaving the pod template as the other actor set it"
                            .to_string(),
                    })
                }
            }
            ForeignChange::Rescaled { now, .. } => match follow_size(record, *now) {
                Some(pods) => ForeignResponse::Follow {
                    replicas: *now,
                    pods,
                },
                None => ForeignResponse::Stop,
            },
            ForeignChange::Recreated { .. }
            | ForeignChange::RecordLost
            | ForeignChange::SupersededByAnotherRun { .. } => ForeignResponse::Stop,
        }
    }

    /// What a run driving towards `goal` does about it, given the record as it is now and
    /// the Deployment as observed: [`ForeignResponse::Done`] when the record is gone (or
    /// reads as another run's because it is gone) and the Deployment is where the run wanted
    /// it, else [`ForeignChange::response`].
    pub fn response_towards(
        &self,
        record: &CanaryRecord,
        goal: Goal,
        now: SeenRecord<'_>,
        observed: &Observation,
    ) -> ForeignResponse {
        let record_closed = matches!(
            self,
            ForeignChange::RecordLost | ForeignChange::SupersededByAnotherRun { .. }
        ) && matches!(now, SeenRecord::Gone);
        if record_closed && decide(record, goal, observed) == Decision::Reached {
            return ForeignResponse::Done;
        }
        self.response(record, observed)
    }

    /// What happened, in a sentence.
    pub fn what_happened(&self, deployment: &str) -> String {
        match self {
            ForeignChange::RevertedToStable => format!(
                "someone else put the stable pod template back on deploy/{deployment} during the canary \
                 (kubectl apply of the old manifest, a GitOps self-heal, set image or rollout undo)"
            ),
            ForeignChange::ReplacedByOtherVersion { images } => format!(
                "someone else set another pod template on deploy/{deployment} during the canary ({images})"
            ),
            ForeignChange::Rescaled { recorded, now } => format!(
                "spec.replicas of deploy/{deployment} changed from {recorded} to {now} during the canary \
                 (an HPA or kubectl scale); the controller spread the change over both sides"
            ),
            ForeignChange::Recreated {
                recorded_uid,
                now_uid,
            } => match now_uid {
                Some(uid) => format!(
                    "deploy/{deployment} was deleted and created again during the canary (UID {recorded_uid} \
                     is now {uid}): the canary belonged to the deleted one"
                ),
                None => format!(
                    "deploy/{deployment} was deleted during the canary (UID {recorded_uid}); its record goes with it"
                ),
            },
            ForeignChange::RecordLost => format!(
                "the canary record of deploy/{deployment} was deleted (or made unreadable) by someone else \
                 while this run worked on it"
            ),
            ForeignChange::SupersededByAnotherRun { now, by } => format!(
                "another kubectl-canary run took over the canary of deploy/{deployment}{}: {now}",
                by.as_ref()
                    .map(|b| format!(" (started by {b})"))
                    .unwrap_or_default()
            ),
        }
    }

    /// What the tool did about it and what fixes it, in a sentence or two. None proposes
    /// putting the canary back over the other actor's change.
    pub fn next_step(&self, deployment: &str) -> String {
        match self {
            ForeignChange::RevertedToStable => format!(
                "kubectl-canary stepped aside: the brake is off and the Deployment's own settings are back, so \
                 the stable version runs on every pod; the canary is closed. To try the new version again, \
                 change it where the stable template came from (Git, CI) first, then \
                 `kubectl canary start deploy/{deployment} ...`"
            ),
            ForeignChange::ReplacedByOtherVersion { .. } => format!(
                "kubectl-canary stepped aside: the brake is off and the Deployment's own settings are back, so \
                 the other actor's version rolls out as the Deployment's strategy says; the canary is closed. \
                 Watch it with `kubectl rollout status deploy/{deployment}`"
            ),
            ForeignChange::Rescaled { .. } => format!(
                "the canary size asked for cannot be kept at this replica count: \
                 `kubectl canary abort deploy/{deployment}` or `kubectl canary promote deploy/{deployment} --full`"
            ),
            ForeignChange::Recreated {
                now_uid: Some(_), ..
            } => format!(
                "nothing was changed on the new deploy/{deployment}; its old record is garbage-collected with \
                 the deleted Deployment (or delete it: `kubectl delete configmap {deployment}.kubectl-canary`); \
                 start a new canary if wanted"
            ),
            ForeignChange::Recreated { now_uid: None, .. } => {
                "nothing is left to do: the Deployment and its canary are gone".to_string()
            }
            ForeignChange::RecordLost => format!(
                "this run stopped and changed nothing more; see `kubectl canary status deploy/{deployment}`, \
                 and roll back with `kubectl canary abort deploy/{deployment}`"
            ),
            ForeignChange::SupersededByAnotherRun { .. } => format!(
                "this run stopped and changed nothing more; the other run continues. See \
                 `kubectl canary status deploy/{deployment}`"
            ),
        }
    }

    /// Both sentences.
    pub fn explain(&self, deployment: &str) -> String {
        format!(
            "{}; {}",
            self.what_happened(deployment),
            self.next_step(deployment)
        )
    }

    /// A line for the record's history and the Deployment's Events.
    pub fn closing_note(&self) -> String {
        match self {
            ForeignChange::RevertedToStable => {
                "closed: the stable template was put back by someone else; brake released"
                    .to_string()
            }
            ForeignChange::ReplacedByOtherVersion { images } => {
                format!("closed: someone else set another template ({images}); brake released")
            }
            other => format!("stopped: {other:?}"),
        }
    }
}

/// The canary pods that keep the size asked for at `replicas`, if that is possible (a
/// share rounds as at start; a count stays the count; the canary must stay smaller than the
/// Deployment in replace mode and at least one pod).
pub fn follow_size(record: &CanaryRecord, replicas: i32) -> Option<i32> {
    let pods = match record.phase {
        Phase::Starting { pods } | Phase::Holding { pods } | Phase::Promoting { to: pods, .. } => {
            pods
        }
        Phase::PromotingFull | Phase::Aborting => return None,
    };
    let size = record.requested_size.unwrap_or(CanarySize::Pods(pods));
    resolve_canary(size, replicas, record.mode)
        .ok()
        .map(|c| c.pods)
}

/// The record after following a change of `spec.replicas` to `replicas` with a canary of
/// `pods`: the new count, the phase at the new size, a history line.
pub fn followed(record: &CanaryRecord, replicas: i32, pods: i32, at: &str) -> CanaryRecord {
    let mut next = record.clone();
    next.replicas = replicas;
    next.phase = match record.phase {
        Phase::Starting { .. } => Phase::Starting { pods },
        Phase::Holding { .. } => Phase::Holding { pods },
        Phase::Promoting { from, .. } => Phase::Promoting { from, to: pods },
        other => other,
    };
    next.note(
        at,
        format!(
            "spec.replicas changed from {} to {replicas} (HPA or kubectl scale): the canary follows at {pods} pod(s)",
            record.replicas
        ),
    );
    next
}

/// Whether the Deployment is exactly as it was before the canary, settings included: then
/// nothing of the canary is left to take off, whoever did it (`start` before its first
/// update, an `abort` that died before deleting the record). A revert by someone else
/// leaves the tool's settings (the brake, or the pause and the canary strategy) behind.
fn untouched(record: &CanaryRecord, observed: &Observation) -> bool {
    observed.settings.equivalent(&record.original_settings)
}

fn owner_words(owner: &Owner) -> String {
    format!("{} on {} (pid {})", owner.user, owner.host, owner.pid)
}

/// Classifies what is observed against what the run knows. `None`: nothing foreign, decide
/// as usual. The checks go from the most to the least fundamental: another Deployment,
/// another record, another template, another size.
pub fn classify(
    known: KnownRecord<'_>,
    seen: SeenRecord<'_>,
    deployment_uid: Option<&str>,
    observed: Option<&Observation>,
) -> Option<ForeignChange> {
    let record = known.record;
    if deployment_uid != Some(record.deployment_uid.as_str()) {
        return Some(ForeignChange::Recreated {
            recorded_uid: record.deployment_uid.clone(),
            now_uid: deployment_uid.map(str::to_string),
        });
    }
    match seen {
        SeenRecord::Unchecked => {}
        SeenRecord::Gone => {
            // Gone while the Deployment is back to exactly what it was: another run finished
            // an abort (or a promotion found nothing to do) and released it.
            let released = observed.is_some_and(|o| {
                template_state(record, &o.template) == TemplateState::Original
                    && o.settings.equivalent(&record.original_settings)
            });
            return Some(if released {
                ForeignChange::SupersededByAnotherRun {
                    now: "it finished and released the canary".into(),
                    by: None,
                }
            } else {
                ForeignChange::RecordLost
            });
        }
        SeenRecord::Present {
            record: now,
            resource_version,
        } => {
            if resource_version != known.resource_version
                && (now.phase != record.phase
                    || now.started_by != record.started_by
                    || now.started_at != record.started_at)
            {
                return Some(ForeignChange::SupersededByAnotherRun {
                    now: now.phase.describe(),
                    by: Some(owner_words(&now.started_by)),
                });
            }
        }
    }
    let observed = observed?;
    match template_state(record, &observed.template) {
        TemplateState::Foreign => {
            return Some(ForeignChange::ReplacedByOtherVersion {
                images: images_of(&observed.template)
                    .iter()
                    .map(|(c, i)| format!("{c}={i}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            });
        }
        TemplateState::Original
            if !matches!(record.phase, Phase::Aborting)
                && (known.canary_seen || !untouched(record, observed)) =>
        {
            return Some(ForeignChange::RevertedToStable);
        }
        _ => {}
    }
    let holding = matches!(
        record.phase,
        Phase::Starting { .. } | Phase::Holding { .. } | Phase::Promoting { .. }
    );
    if holding && observed.replicas != record.replicas {
        return Some(ForeignChange::Rescaled {
            recorded: record.replicas,
            now: observed.replicas,
        });
    }
    None
}

#[cfg(test)]
mod tests {
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
                change.response_towards(
                    &record,
                    Goal::PromoteFull,
                    SeenRecord::Gone,
                    &held(&record)
                ),
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
}
