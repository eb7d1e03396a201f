//! The seal: what only a writer of the Deployment can vouch for, kept in an annotation on
//! the Deployment and written in the same update as the brake.
//!
//! The record is a ConfigMap, and the right to write ConfigMaps is often granted more widely
//! than the right to write Deployments. So nothing the tool writes to a Deployment may come
//! from the record alone (no confused deputy):
//! - the stable template comes from the stable ReplicaSet (owned by the Deployment, found by
//!   the UID in the seal), with the controller's `pod-template-hash` label removed;
//! - the canary template is the record's, checked against the sealed digest of the template
//!   the user's own command sent (a version 1 seal: the stable template with the sealed
//!   target images);
//! - the original strategy, minReadySeconds, progressDeadlineSeconds and paused come from
//!   the seal;
//! - the record's own copies are a cross-check: [`verify_record`] refuses a record that
//!   differs from the seal or from the ReplicaSet, and returns the record rebuilt from the
//!   trusted sources.
//!
//! The seal also carries a digest of the record's content that never changes during a
//! canary (templates, images, settings, owner, start time), so any edit of those fields is
//! detected, and the goal of the tool's last write, so the recorded phase can be checked.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::machine::{Goal, SpecChange};
use crate::record::{
    CanaryRecord, Owner, Phase, RolloutSettings, StableRevision, normalize, without_template_hash,
};
use crate::rollout_math::CanaryMode;

/// The Deployment annotation holding the seal.
///
/// The Deployment controller copies a Deployment's annotations onto its *new* ReplicaSet
/// (the canary's) and never removes them there: the copy on the ReplicaSet is inert (only
/// the Deployment's annotation is ever read) and holds nothing secret.
pub const SEAL_ANNOTATION: &str = "kubectl-canary.io/seal";

/// Version of the seal's layout written by this tool; another version is refused, not
/// guessed at. Version 2 added `targetTemplateDigest`.
pub const SEAL_VERSION: u32 = 2;

/// The seal layouts this tool reads: version 1 (a canary of images) and the current one.
pub const SEAL_VERSIONS_READ: [u32; 2] = [1, SEAL_VERSION];

/// The goal of the tool's last write to the Deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "camelCase")]
pub enum SealedGoal {
    /// Holding a canary of `pods` pods.
    Hold {
        /// Canary pods.
        pods: i32,
    },
    /// Rolling out to every pod.
    PromoteFull,
    /// Rolling back.
    Abort,
}

impl From<Goal> for SealedGoal {
    fn from(goal: Goal) -> Self {
        match goal {
            Goal::Hold { pods } => SealedGoal::Hold { pods },
            Goal::PromoteFull => SealedGoal::PromoteFull,
            Goal::Abort => SealedGoal::Abort,
        }
    }
}

/// The seal's content, as JSON in [`SEAL_ANNOTATION`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Seal {
    /// [`SEAL_VERSION`].
    pub version: u32,
    /// The Deployment's UID: a seal copied onto another Deployment is refused.
    pub deployment_uid: String,
    /// The rollout settings before the canary: what promote and abort put back.
    pub original_settings: RolloutSettings,
    /// The stable ReplicaSet, whose template abort puts back.
    pub stable: StableRevision,
    /// Container name to image, for the canary.
    pub target_images: BTreeMap<String, String>,
    /// Surge or replace.
    pub mode: CanaryMode,
    /// The goal of the tool's last write.
    pub goal: SealedGoal,
    /// `sha256:` digest of the record's fixed content, see [`record_digest`].
    pub record_digest: String,
    /// `sha256:` digest of the stable template (see [`template_digest`]): without the record,
    /// the stable ReplicaSet's template is checked against it, so not even a writer of
    /// ReplicaSets can choose what a recovery writes.
    pub stable_template_digest: String,
    /// `sha256:` digest of the canary's template as the user's command made it (see
    /// [`template_digest`]): the record's `targetTemplate` must have it, so a writer of
    /// ConfigMaps cannot choose the template a later promote writes. Absent in version 1
    /// seals, whose canary template is the stable one with `targetImages`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_template_digest: Option<String>,
}

impl Seal {
    /// The seal of a record, written with an update towards `goal`.
    pub fn for_record(record: &CanaryRecord, goal: Goal) -> Self {
        Self {
            version: seal_version(record),
            deployment_uid: record.deployment_uid.clone(),
            original_settings: record.original_settings.clone(),
            stable: record.stable.clone(),
            target_images: record.target_images.clone(),
            mode: record.mode,
            goal: goal.into(),
            record_digest: record_digest(record),
            stable_template_digest: template_digest(&record.original_template),
            target_template_digest: target_digest(record),
        }
    }

    /// Reads a seal from the annotation's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let seal: Seal = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if !SEAL_VERSIONS_READ.contains(&seal.version) {
            return Err(format!(
                "version {} written by another version of kubectl-canary (this one reads 1 and {SEAL_VERSION})",
                seal.version
            ));
        }
        if (seal.version >= 2) != seal.target_template_digest.is_some() {
            return Err(format!(
                "version {} {} a target template digest",
                seal.version,
                if seal.version >= 2 { "without" } else { "with" }
            ));
        }
        Ok(seal)
    }

    /// The annotation's text.
    pub fn to_annotation(&self) -> String {
        serde_json::to_string(self).expect("a seal always serializes")
    }
}

/// The part of the record that never changes during a canary. `phase` and `history`
/// change without a Deployment write and are checked otherwise; `replicas` is never
/// written to a Deployment (a changed value only makes decisions stop).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FixedContent<'a> {
    schema: u32,
    deployment: &'a str,
    deployment_uid: &'a str,
    original_template: Value,
    original_settings: &'a RolloutSettings,
    stable: &'a StableRevision,
    original_images: &'a BTreeMap<String, String>,
    target_images: &'a BTreeMap<String, String>,
    // Absent from version 1 records, whose digest therefore stays what it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    target_template: Option<Value>,
    mode: CanaryMode,
    started_by: &'a Owner,
    started_at: &'a str,
}

/// The digest of a record's target template, `None` for a version 1 record (without one).
fn target_digest(record: &CanaryRecord) -> Option<String> {
    record.target_template.as_ref().map(template_digest)
}

/// The version of the seal a record is written with: 2 with a target template.
fn seal_version(record: &CanaryRecord) -> u32 {
    if record.target_template.is_some() {
        SEAL_VERSION
    } else {
        1
    }
}

/// `sha256:<hex>` of the record's fixed content, keys sorted and the template normalized
/// (nulls and empty objects dropped), so a record and the same record rebuilt from the
/// ReplicaSet have the same digest.
pub fn record_digest(record: &CanaryRecord) -> String {
    let content = FixedContent {
        schema: record.schema,
        deployment: &record.deployment,
        deployment_uid: &record.deployment_uid,
        original_template: normalize(&record.original_template),
        original_settings: &record.original_settings,
        stable: &record.stable,
        original_images: &record.original_images,
        target_images: &record.target_images,
        target_template: record.target_template.as_ref().map(normalize),
        mode: record.mode,
        started_by: &record.started_by,
        started_at: &record.started_at,
    };
    sha256_of(&serde_json::to_value(&content).expect("the fixed content serializes"))
}

/// `sha256:<hex>` of a pod template (the `pod-template-hash` label removed, normalized, keys
/// sorted): equal for a Deployment template and its ReplicaSet's.
pub fn template_digest(template: &Value) -> String {
    sha256_of(&normalize(&without_template_hash(template)))
}

fn sha256_of(value: &Value) -> String {
    let mut canonical = String::new();
    write_canonical(value, &mut canonical);
    let hash = Sha256::digest(canonical.as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// JSON with object keys sorted, whatever map type serde_json was built with.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// How a record differs from what only the Deployment's writers and its controller own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Tampering {
    /// A record exists but the Deployment carries no seal: no kubectl-canary update of the
    /// Deployment ever confirmed it.
    #[error(
        "the Deployment carries no {SEAL_ANNOTATION} annotation, so no update of the Deployment by \
         kubectl-canary confirms this record: a start stopped before changing anything, or someone \
         created the record"
    )]
    NotSealed,
    /// The seal or the record names another Deployment.
    #[error(
        "the record or the seal belongs to another Deployment (UID {found}, this one is {expected})"
    )]
    OtherDeployment {
        /// UID of the Deployment now.
        expected: String,
        /// UID found.
        found: String,
    },
    /// A field the seal holds differs in the record.
    #[error("its {field} differs from the {SEAL_ANNOTATION} annotation on the Deployment")]
    DiffersFromSeal {
        /// The record's field.
        field: &'static str,
    },
    /// The digest differs: the original template, images, owner or start time were edited.
    #[error(
        "its content (original template, original images, owner or start time) no longer matches \
         the digest in the {SEAL_ANNOTATION} annotation on the Deployment"
    )]
    DigestMismatch,
    /// The stable ReplicaSet's template is not the one sealed (a writer of ReplicaSets
    /// changed it).
    #[error(
        "the template of the stable ReplicaSet {replica_set} differs from the one sealed in the \
         {SEAL_ANNOTATION} annotation: someone changed the ReplicaSet"
    )]
    ReplicaSetChanged {
        /// The stable ReplicaSet.
        replica_set: String,
    },
    /// The record's target template is not the one the seal's digest vouches for.
    #[error(
        "its target template differs from the one whose digest the {SEAL_ANNOTATION} annotation on the \
         Deployment holds (the pod template the canary was started with)"
    )]
    TargetTemplateDiffers,
    /// The stable ReplicaSet named by the seal is not owned by the Deployment any more.
    #[error(
        "the stable ReplicaSet {name} (UID {uid}) named by the seal is not a ReplicaSet of the Deployment"
    )]
    StableReplicaSetMissing {
        /// Name.
        name: String,
        /// UID.
        uid: String,
    },
    /// The record's original template is not the stable ReplicaSet's.
    #[error("its original template differs from the stable ReplicaSet {replica_set}'s template")]
    TemplateDiffersFromReplicaSet {
        /// The stable ReplicaSet.
        replica_set: String,
    },
    /// A controller-run canary's record differs from the brake annotations the admission
    /// policy wrote on the Deployment, or from the Deployment's template.
    #[error(
        "its {field} differs from what the Deployment says (the controller's brake annotations \
         or its pod template)"
    )]
    DiffersFromBrake {
        /// The record's field.
        field: &'static str,
    },
    /// The recorded phase cannot follow the tool's last write.
    #[error(
        "its phase ({phase}) cannot follow the last update kubectl-canary made to the Deployment ({sealed})"
    )]
    PhaseInconsistent {
        /// The phase, in words.
        phase: String,
        /// The sealed goal, in words.
        sealed: String,
    },
}

/// Checks a record against the seal and the stable ReplicaSet's template, and returns the
/// record rebuilt from those trusted sources: the stable template from the ReplicaSet (hash
/// label removed); settings, stable ReplicaSet, target images and mode from the seal.
///
/// `stable_template` is the template of the Deployment's ReplicaSet whose UID is
/// `seal.stable.uid`, or `None` if the Deployment owns no such ReplicaSet.
pub fn verify_record(
    record: &CanaryRecord,
    seal: &Seal,
    deployment_uid: &str,
    stable_template: Option<&Value>,
) -> Result<CanaryRecord, Tampering> {
    for found in [&seal.deployment_uid, &record.deployment_uid] {
        if found != deployment_uid {
            return Err(Tampering::OtherDeployment {
                expected: deployment_uid.to_string(),
                found: found.clone(),
            });
        }
    }
    let differs = |field| Err(Tampering::DiffersFromSeal { field });
    if record.mode != seal.mode {
        return differs("mode");
    }
    if record.stable != seal.stable {
        return differs("stable ReplicaSet");
    }
    if record.original_settings != seal.original_settings {
        return differs(
            "original settings (strategy, minReadySeconds, progressDeadlineSeconds, paused)",
        );
    }
    if record.target_images != seal.target_images {
        return differs("target images");
    }
    if target_digest(record) != seal.target_template_digest {
        return Err(Tampering::TargetTemplateDiffers);
    }
    if record_digest(record) != seal.record_digest {
        return Err(Tampering::DigestMismatch);
    }
    let stable_template = stable_template.ok_or_else(|| Tampering::StableReplicaSetMissing {
        name: seal.stable.replica_set.clone(),
        uid: seal.stable.uid.clone(),
    })?;
    if template_digest(stable_template) != seal.stable_template_digest {
        return Err(Tampering::ReplicaSetChanged {
            replica_set: seal.stable.replica_set.clone(),
        });
    }
    let stable_template = without_template_hash(stable_template);
    if normalize(&stable_template) != normalize(&record.original_template) {
        return Err(Tampering::TemplateDiffersFromReplicaSet {
            replica_set: seal.stable.replica_set.clone(),
        });
    }
    if !phase_can_follow(record.phase, seal.goal) {
        return Err(Tampering::PhaseInconsistent {
            phase: record.phase.describe(),
            sealed: describe_goal(seal.goal),
        });
    }
    Ok(CanaryRecord {
        original_template: stable_template,
        original_settings: seal.original_settings.clone(),
        stable: seal.stable.clone(),
        target_images: seal.target_images.clone(),
        mode: seal.mode,
        ..record.clone()
    })
}

/// The seal of a canary run by the GitOps controller, whose brake and original settings were
/// written by the admission policy in annotations on the Deployment
/// ([`crate::gitops::brake`]) instead of a seal: built from what only the Deployment's
/// writers own, after checking the record against it. The original settings must be those
/// annotations' (the record's copy is kept when equivalent), the target images the
/// Deployment's own template's, and the stable ReplicaSet's images the annotated stable
/// images. The phase and the digest are taken from the record: the controller keeps no
/// copy of them, so a phase edit on a controller-run canary is not detected (and acted
/// upon only by a command given that goal).
pub fn seal_for_controller_canary(
    record: &CanaryRecord,
    brake: &crate::gitops::brake::BrakeAnnotations,
    deployment_uid: &str,
    deployment_template: &Value,
    stable_template: Option<&Value>,
) -> Result<Seal, Tampering> {
    if !brake.original.equivalent(&record.original_settings) {
        return Err(Tampering::DiffersFromBrake {
            field: "original settings (strategy, minReadySeconds, progressDeadlineSeconds, paused)",
        });
    }
    // The canary's template is the Deployment's own (Git's): a record naming another is
    // refused, whether it carries the template (version 2) or only its images (version 1).
    let target_differs = match &record.target_template {
        Some(target) => template_digest(target) != template_digest(deployment_template),
        None => crate::record::images_of(deployment_template) != record.target_images,
    };
    if target_differs {
        return Err(Tampering::DiffersFromBrake {
            field: "target template",
        });
    }
    let stable_template = stable_template.ok_or_else(|| Tampering::StableReplicaSetMissing {
        name: record.stable.replica_set.clone(),
        uid: record.stable.uid.clone(),
    })?;
    if crate::gitops::brake::images_signature(stable_template) != brake.stable_images {
        return Err(Tampering::DiffersFromBrake {
            field: "stable ReplicaSet (its images are not the annotated stable images)",
        });
    }
    Ok(Seal {
        version: seal_version(record),
        deployment_uid: deployment_uid.to_string(),
        original_settings: record.original_settings.clone(),
        stable: record.stable.clone(),
        target_images: record.target_images.clone(),
        mode: record.mode,
        goal: record.phase.goal().into(),
        record_digest: record_digest(record),
        stable_template_digest: template_digest(stable_template),
        target_template_digest: target_digest(record),
    })
}

/// Whether a recorded phase can follow the tool's last write towards `sealed`.
///
/// A command records its intent before it writes the Deployment, so a record may be one
/// intent ahead of the seal: an abort or a full promotion may always be intended (and
/// no command acts on an intent it was not given on its command line), a larger canary
/// after a held one. What cannot happen is a held size the tool never wrote, or a
/// promotion from a size that was not held.
pub fn phase_can_follow(phase: Phase, sealed: SealedGoal) -> bool {
    match (phase, sealed) {
        (Phase::Holding { pods }, SealedGoal::Hold { pods: held }) => pods == held,
        (Phase::Holding { .. }, _) => false,
        (Phase::Starting { .. }, SealedGoal::Hold { .. }) => true,
        (Phase::Starting { .. }, _) => false,
        (Phase::Promoting { from, to }, SealedGoal::Hold { pods }) => {
            from < to && (pods == from || pods == to)
        }
        // Promoting after an abort or a full promotion was intended starts from nothing held.
        (Phase::Promoting { from, to }, _) => from == 0 && to > 0,
        (Phase::PromotingFull | Phase::Aborting, _) => true,
    }
}

/// A sealed goal in words.
pub fn describe_goal(goal: SealedGoal) -> String {
    match goal {
        SealedGoal::Hold { pods } => format!("holding a canary of {pods} pod(s)"),
        SealedGoal::PromoteFull => "promoting to 100%".into(),
        SealedGoal::Abort => "rolling back".into(),
    }
}

/// Whether a sealed Deployment without a record is still held by a canary: its settings
/// are not the sealed originals, and they are the tool's: the brake, or the canary strategy
/// of the size the seal's last write was holding (a held canary may be paused without the
/// brake). Otherwise the seal is left over from a finished canary (its last step, taking
/// the seal off, did not run) or was copied back from a ReplicaSet by `kubectl rollout
/// undo`; such a seal may be stale, and a Deployment someone else paused or changed is not
/// mistaken for a canary: the seal is then never used to write anything.
pub fn held_without_record(seal: &Seal, settings_now: &RolloutSettings) -> bool {
    if settings_now.equivalent(&seal.original_settings) {
        return false;
    }
    let canary_strategy = match seal.goal {
        SealedGoal::Hold { pods } => Some(RolloutSettings::braked(seal.mode, pods, true).strategy),
        SealedGoal::PromoteFull | SealedGoal::Abort => None,
    };
    settings_now.is_braked() || canary_strategy.as_ref() == Some(&settings_now.strategy)
}

/// The one update that rolls a sealed Deployment back without its record: the stable
/// ReplicaSet's template (hash label removed), checked against the sealed digest, and the
/// sealed original settings.
pub fn recovery_change(seal: &Seal, stable_template: &Value) -> Result<SpecChange, Tampering> {
    if template_digest(stable_template) != seal.stable_template_digest {
        return Err(Tampering::ReplicaSetChanged {
            replica_set: seal.stable.replica_set.clone(),
        });
    }
    Ok(SpecChange {
        template: Some(without_template_hash(stable_template)),
        settings: seal.original_settings.clone(),
        summary: format!(
            "roll back without the record: the template of the stable ReplicaSet {} and the \
             strategy, minReadySeconds, progressDeadlineSeconds and paused state kept in the \
             {SEAL_ANNOTATION} annotation",
            seal.stable.replica_set
        ),
    })
}

#[cfg(test)]
mod tests;
