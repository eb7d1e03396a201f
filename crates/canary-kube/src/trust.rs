//! Where every value written to a Deployment comes from.
//!
//! The record is a ConfigMap: whoever may write ConfigMaps in the namespace may edit it,
//! and that is often more people (and bots) than may write the Deployment. So the record is
//! untrusted input: before any use it is checked against the seal (an annotation only the
//! Deployment's writers can write, see [`canary_core::seal`]) and the stable ReplicaSet
//! (owned by the Deployment, found by UID), and used only as rebuilt from those. A
//! Deployment that carries the brake and the seal but whose record is gone is recognised,
//! and rolled back from the seal and the stable ReplicaSet alone.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use serde_json::Value;

use canary_core::seal::{
    SEAL_ANNOTATION, Seal, Tampering, held_without_record, seal_for_controller_canary,
    verify_record,
};

use crate::error::{CanaryError, Result};
use crate::observe::{DeploymentView, template_json};
use crate::store::{RecordStore, StoredRecord, locked};

/// The seal on a Deployment, if it carries one.
pub fn seal_of(deployment: &Deployment) -> Result<Option<Seal>> {
    let Some(text) = deployment.annotations().get(SEAL_ANNOTATION) else {
        return Ok(None);
    };
    Seal::parse(text).map(Some).map_err(|detail| {
        CanaryError::Refused(format!(
            "the {SEAL_ANNOTATION} annotation on deploy/{} is unreadable ({detail}); only a writer \
             of the Deployment can have changed it: check it with `kubectl get deploy/{} -o yaml`",
            deployment.name_any(),
            deployment.name_any()
        ))
    })
}

/// Puts the seal on a Deployment object, or takes it off; other annotations stay as they are.
pub fn set_seal(deployment: &mut Deployment, seal: Option<&Seal>) {
    let annotations = deployment
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new);
    match seal {
        Some(seal) => {
            annotations.insert(SEAL_ANNOTATION.to_string(), seal.to_annotation());
        }
        None => {
            annotations.remove(SEAL_ANNOTATION);
        }
    }
    if annotations.is_empty() {
        deployment.metadata.annotations = None;
    }
}

/// The template of the Deployment's ReplicaSet with the UID the seal names, as stored (with
/// its `pod-template-hash` label). Only ReplicaSets the Deployment controls are in a view.
pub fn stable_template(view: &DeploymentView, seal: &Seal) -> Option<Value> {
    view.replica_sets
        .iter()
        .find(|rs| rs.uid().as_deref() == Some(seal.stable.uid.as_str()))
        .and_then(|rs| rs.spec.as_ref())
        .and_then(|spec| spec.template.as_ref())
        .map(template_json)
}

/// A record ConfigMap that exists but cannot be read.
#[derive(Debug, Clone)]
pub struct UnreadableRecord {
    /// Why it cannot be read.
    pub detail: String,
    /// Its UID, so only this object is deleted.
    pub uid: String,
    /// Its resourceVersion, likewise.
    pub resource_version: String,
}

/// The record as read.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // read once per command, never stored in bulk
pub enum RecordRead {
    /// No record.
    Missing,
    /// A record that parses (not yet checked).
    Decoded(StoredRecord),
    /// A ConfigMap by the record's name that does not parse.
    Unreadable(UnreadableRecord),
}

impl RecordRead {
    /// The resourceVersion of the ConfigMap read, if there was one.
    pub fn resource_version(&self) -> Option<&str> {
        match self {
            RecordRead::Missing => None,
            RecordRead::Decoded(stored) => Some(&stored.resource_version),
            RecordRead::Unreadable(unreadable) => Some(&unreadable.resource_version),
        }
    }
}

/// Reads the record, telling an unreadable one apart from an error of the API.
pub async fn read_record(store: &RecordStore) -> Result<RecordRead> {
    let config_map =
        store.api().get_opt(&store.name()).await.map_err(|e| {
            CanaryError::api(format!("reading the canary record {}", store.name()), e)
        })?;
    record_read(store, config_map)
}

/// The record in `config_map` (as read or watched), telling an unreadable one apart.
pub fn record_read(store: &RecordStore, config_map: Option<ConfigMap>) -> Result<RecordRead> {
    let Some(config_map) = config_map else {
        return Ok(RecordRead::Missing);
    };
    let uid = config_map.uid().unwrap_or_default();
    let resource_version = config_map.resource_version().unwrap_or_default();
    Ok(match store.decode(config_map) {
        Ok(stored) => RecordRead::Decoded(stored),
        Err(CanaryError::BadRecord { detail, .. }) => RecordRead::Unreadable(UnreadableRecord {
            detail,
            uid,
            resource_version,
        }),
        Err(other) => return Err(other),
    })
}

/// A Deployment's canary, with its record checked.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // read once per command, never stored in bulk
pub enum CanaryState {
    /// No canary. A seal left by a finished canary whose last step did not run (or brought
    /// back by `kubectl rollout undo`, which copies a ReplicaSet's annotations) is harmless.
    None {
        /// That leftover seal.
        leftover_seal: Option<Seal>,
    },
    /// A canary whose record matches the seal and the stable ReplicaSet; the record is the
    /// one rebuilt from those.
    Verified {
        /// The rebuilt record, with the ConfigMap's resourceVersion.
        stored: StoredRecord,
        /// The seal.
        seal: Seal,
    },
    /// A record no update of the Deployment confirms (no seal): a start that stopped before
    /// changing anything, or a record someone created.
    Unconfirmed {
        /// The record as read.
        stored: StoredRecord,
        /// Whether the Deployment carries the brake anyway (its seal was removed by a writer
        /// of the Deployment, or an older kubectl-canary started the canary).
        braked: bool,
    },
    /// A record that differs from the seal or the stable ReplicaSet.
    Tampered {
        /// The record as read.
        stored: StoredRecord,
        /// The difference.
        tampering: Tampering,
        /// The seal.
        seal: Seal,
    },
    /// The Deployment is held (brake and seal) but the record is gone or unreadable.
    RecordLost {
        /// The seal.
        seal: Seal,
        /// The unreadable record, if there is one.
        unreadable: Option<UnreadableRecord>,
    },
    /// An unreadable record on a Deployment without a seal.
    Unreadable(UnreadableRecord),
}

/// Classifies the canary of a Deployment from a view of it and its record.
pub fn classify(view: &DeploymentView, read: RecordRead) -> Result<CanaryState> {
    let seal = seal_of(&view.deployment)?;
    let uid = view.uid();
    Ok(match (read, seal) {
        (RecordRead::Decoded(stored), Some(seal)) => {
            let stable = stable_template(view, &seal);
            match verify_record(&stored.record, &seal, &uid, stable.as_ref()) {
                Ok(record) => CanaryState::Verified {
                    stored: StoredRecord { record, ..stored },
                    seal,
                },
                Err(tampering) => CanaryState::Tampered {
                    stored,
                    tampering,
                    seal,
                },
            }
        }
        (RecordRead::Decoded(stored), None) => {
            match canary_core::gitops::brake::BrakeAnnotations::from_annotations(
                view.deployment.annotations(),
            ) {
                // A canary run by the GitOps controller: the admission policy's annotations
                // stand in for the seal.
                Some(Ok(brake)) => {
                    let stable = view
                        .replica_sets
                        .iter()
                        .find(|rs| rs.uid().as_deref() == Some(stored.record.stable.uid.as_str()))
                        .and_then(|rs| rs.spec.as_ref())
                        .and_then(|spec| spec.template.as_ref())
                        .map(template_json);
                    let checked = seal_for_controller_canary(
                        &stored.record,
                        &brake,
                        &uid,
                        &view.template(),
                        stable.as_ref(),
                    )
                    .and_then(|seal| {
                        verify_record(&stored.record, &seal, &uid, stable.as_ref())
                            .map(|record| (record, seal))
                    });
                    match checked {
                        Ok((record, seal)) => CanaryState::Verified {
                            stored: StoredRecord { record, ..stored },
                            seal,
                        },
                        Err(tampering) => CanaryState::Tampered {
                            seal: Seal {
                                original_settings: brake.original.clone(),
                                ..Seal::for_record(&stored.record, stored.record.phase.goal())
                            },
                            stored,
                            tampering,
                        },
                    }
                }
                _ => {
                    let braked = crate::observe::settings_of(&view.deployment).is_braked();
                    CanaryState::Unconfirmed { stored, braked }
                }
            }
        }
        (read, Some(seal)) => {
            let unreadable = match read {
                RecordRead::Unreadable(unreadable) => Some(unreadable),
                _ => None,
            };
            let held = seal.deployment_uid == uid
                && held_without_record(&seal, &crate::observe::settings_of(&view.deployment));
            match (held, unreadable) {
                (true, unreadable) => CanaryState::RecordLost { seal, unreadable },
                (false, Some(unreadable)) => CanaryState::Unreadable(unreadable),
                (false, None) => CanaryState::None {
                    leftover_seal: Some(seal),
                },
            }
        }
        (RecordRead::Unreadable(unreadable), None) => CanaryState::Unreadable(unreadable),
        (RecordRead::Missing, None) => CanaryState::None {
            leftover_seal: None,
        },
    })
}

impl CanaryState {
    /// The verified record, or the error that says why there is none.
    pub fn into_verified(self, deployment: &str, record_name: &str) -> Result<StoredRecord> {
        match self {
            CanaryState::Verified { stored, .. } => Ok(stored),
            other => Err(other.error(deployment, record_name)),
        }
    }

    /// The error a command that needs a verified record reports in this state.
    pub fn error(&self, deployment: &str, record_name: &str) -> CanaryError {
        let tampered = |tampering: Tampering, hint: String| CanaryError::RecordTampered {
            deployment: deployment.to_string(),
            name: record_name.to_string(),
            tampering: Box::new(tampering),
            hint,
        };
        match self {
            CanaryState::Verified { stored, .. } => locked(&stored.record),
            CanaryState::None { .. } => CanaryError::NoCanary {
                namespace: String::new(),
                name: deployment.to_string(),
            },
            CanaryState::Unconfirmed { braked: false, .. } => tampered(
                Tampering::NotSealed,
                format!(
                    "The Deployment is as it was before any canary: `kubectl canary abort deploy/{deployment}` \
                     discards the record without writing to the Deployment."
                ),
            ),
            CanaryState::Unconfirmed { braked: true, .. } => tampered(
                Tampering::NotSealed,
                format!(
                    "The Deployment carries the brake without the seal, so its original settings are not \
                     known from a trusted source: put back the template and the strategy, minReadySeconds, \
                     progressDeadlineSeconds and paused by hand (`kubectl edit deploy/{deployment}`), then \
                     `kubectl canary abort deploy/{deployment}` discards the record."
                ),
            ),
            CanaryState::Tampered { tampering, .. } => tampered(
                tampering.clone(),
                format!(
                    "Find out who changed it (`kubectl get configmap {record_name} -o yaml`, the API server's \
                     audit log). `kubectl canary abort deploy/{deployment} --recover` rolls back from the \
                     Deployment's seal and stable ReplicaSet alone, ignoring the record, and deletes it."
                ),
            ),
            CanaryState::RecordLost { seal, unreadable } => CanaryError::HeldWithoutRecord {
                deployment: deployment.to_string(),
                name: record_name.to_string(),
                how: match unreadable {
                    Some(u) => format!("unreadable ({})", u.detail),
                    None => "missing".into(),
                },
                stable: seal.stable.replica_set.clone(),
                annotation: SEAL_ANNOTATION,
            },
            CanaryState::Unreadable(unreadable) => CanaryError::BadRecord {
                name: record_name.to_string(),
                detail: unreadable.detail.clone(),
            },
        }
    }

    /// A line for `status` when the record cannot be used as it is.
    pub fn warning(&self, deployment: &str, record_name: &str) -> Option<String> {
        match self {
            CanaryState::Verified { .. } => None,
            CanaryState::None {
                leftover_seal: Some(_),
            } => Some(format!(
                "deploy/{deployment} carries a {SEAL_ANNOTATION} annotation left by a finished canary; \
                 harmless (the next start replaces it, abort removes it)"
            )),
            CanaryState::None { .. } => None,
            other => Some(other.error(deployment, record_name).to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use canary_core::record::{RolloutSettings, StableRevision};
    use canary_core::rollout_math::CanaryMode;
    use canary_core::seal::SealedGoal;
    use serde_json::json;

    use super::*;

    fn seal() -> Seal {
        Seal {
            version: canary_core::seal::SEAL_VERSION,
            deployment_uid: "d-uid".into(),
            original_settings: RolloutSettings {
                strategy: json!({"type": "RollingUpdate"}),
                min_ready_seconds: None,
                progress_deadline_seconds: Some(600),
                paused: None,
            },
            stable: StableRevision {
                replica_set: "web-1".into(),
                uid: "rs-uid".into(),
                revision: "1".into(),
                pod_template_hash: "1".into(),
            },
            target_images: BTreeMap::from([("nginx".into(), "nginx:1.15".into())]),
            mode: CanaryMode::Surge,
            goal: SealedGoal::Hold { pods: 1 },
            record_digest: "sha256:0".into(),
            stable_template_digest: "sha256:1".into(),
            target_template_digest: Some("sha256:2".into()),
        }
    }

    /// The seal is added and removed without touching the Deployment's other annotations,
    /// and a Deployment that had none has none again.
    #[test]
    fn the_seal_leaves_other_annotations_exactly_as_they_were() {
        let mut deployment: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web", "annotations": {"team": "a", "deployment.kubernetes.io/revision": "3"}}
        }))
        .unwrap();
        let before = deployment.metadata.annotations.clone();
        set_seal(&mut deployment, Some(&seal()));
        assert_eq!(seal_of(&deployment).unwrap(), Some(seal()));
        set_seal(&mut deployment, None);
        assert_eq!(deployment.metadata.annotations, before);

        let mut bare: Deployment =
            serde_json::from_value(json!({"metadata": {"name": "web"}})).unwrap();
        set_seal(&mut bare, Some(&seal()));
        set_seal(&mut bare, None);
        assert_eq!(bare.metadata.annotations, None);
    }

    #[test]
    fn an_unreadable_seal_is_an_error_naming_the_annotation() {
        let deployment: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web", "annotations": {SEAL_ANNOTATION: "{not json"}}
        }))
        .unwrap();
        let error = seal_of(&deployment).unwrap_err().to_string();
        assert!(error.contains(SEAL_ANNOTATION), "{error}");
    }
}
