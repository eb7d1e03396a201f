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
mod tests;
