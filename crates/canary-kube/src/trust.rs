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
use kube::ResourceExt;
use kube::api::{DeleteParams, PostParams, Preconditions};
use serde_json::Value;

use canary_core::machine::Goal;
use canary_core::record::{CanaryRecord, Owner, Phase, RECORD_SCHEMA, images_of};
use canary_core::seal::{
    SEAL_ANNOTATION, Seal, Tampering, held_without_record, recovery_change,
    seal_for_controller_canary, verify_record,
};

use crate::engine::{DriveOptions, Engine, Progress, mutation_point};
use crate::error::{CanaryError, Result, is_status};
use crate::observe::{DeploymentView, template_json};
use crate::status::StatusReport;
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

/// Reads the record, telling an unreadable one apart from an error of the API.
pub async fn read_record(store: &RecordStore) -> Result<RecordRead> {
    let config_map =
        store.api().get_opt(&store.name()).await.map_err(|e| {
            CanaryError::api(format!("reading the canary record {}", store.name()), e)
        })?;
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
    let uid = view.deployment.uid().unwrap_or_default();
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

impl Engine {
    /// The Deployment's canary, with its record checked against the seal and the stable
    /// ReplicaSet, and the view it was checked on.
    pub async fn canary_state(&self) -> Result<(CanaryState, DeploymentView)> {
        let view = self.view().await?;
        let read = read_record(self.store()).await?;
        Ok((classify(&view, read)?, view))
    }

    /// The status, with the record checked (see [`StatusReport::for_state`]), and the state
    /// it was built from.
    pub async fn checked_status_report(&self) -> Result<(StatusReport, CanaryState)> {
        let (state, view) = self.canary_state().await?;
        let report = StatusReport::for_state(self.namespace(), &view, &state, &self.store().name());
        Ok((report, state))
    }

    /// The record, verified and rebuilt from the trusted sources; otherwise the error that
    /// says what is wrong and what to do.
    pub async fn verified_record(&self) -> Result<StoredRecord> {
        let (state, _) = self.canary_state().await?;
        match state {
            CanaryState::None { .. } => Err(CanaryError::NoCanary {
                namespace: self.apis.namespace.clone(),
                name: self.name.clone(),
            }),
            other => other.into_verified(&self.name, &self.store().name()),
        }
    }

    /// Takes the seal off the Deployment (when the canary is over): one metadata update,
    /// read again and retried on a conflict. Returns whether there was one.
    pub async fn remove_seal(&self) -> Result<bool> {
        for _ in 0..5 {
            let mut deployment = self.deployment().await?;
            if !deployment.annotations().contains_key(SEAL_ANNOTATION) {
                return Ok(false);
            }
            set_seal(&mut deployment, None);
            match self
                .apis
                .deployments
                .replace(&self.name, &PostParams::default(), &deployment)
                .await
            {
                Ok(_) => {
                    mutation_point("seal removed");
                    return Ok(true);
                }
                Err(e) if is_status(&e, 409) => continue,
                Err(e) => {
                    return Err(CanaryError::api(
                        format!(
                            "removing the {SEAL_ANNOTATION} annotation of deploy/{}",
                            self.name
                        ),
                        e,
                    ));
                }
            }
        }
        Err(CanaryError::Refused(format!(
            "deploy/{} kept changing while its {SEAL_ANNOTATION} annotation was being removed; run the command again",
            self.name
        )))
    }

    /// Deletes a record that no update of the Deployment confirms, writing nothing to the
    /// Deployment.
    pub async fn discard_record(&self, stored: &StoredRecord) -> Result<()> {
        self.store().delete(stored).await?;
        mutation_point("unconfirmed record deleted");
        Ok(())
    }

    /// Deletes an unreadable record, only if it is still the one read.
    pub async fn delete_unreadable(&self, unreadable: &UnreadableRecord) -> Result<()> {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(unreadable.uid.clone()),
                resource_version: Some(unreadable.resource_version.clone()),
            }),
            ..Default::default()
        };
        match self
            .store()
            .api()
            .delete(&self.store().name(), &params)
            .await
        {
            Ok(_) => {
                mutation_point("unreadable record deleted");
                Ok(())
            }
            Err(e) if is_status(&e, 404) => Ok(()),
            Err(e) => Err(CanaryError::api(
                format!("deleting the canary record {}", self.store().name()),
                e,
            )),
        }
    }

    /// The record-less rollback of a sealed Deployment: the stable ReplicaSet's template and
    /// the sealed settings, rebuilt as a record the state machine can drive to an abort.
    pub fn recovery_record(&self, view: &DeploymentView, seal: &Seal) -> Result<CanaryRecord> {
        let uid = view.deployment.uid().unwrap_or_default();
        if seal.deployment_uid != uid {
            return Err(CanaryError::Refused(format!(
                "the {SEAL_ANNOTATION} annotation on deploy/{} names another Deployment (UID {}); \
                 it was copied from elsewhere: remove it with `kubectl annotate deploy/{} {SEAL_ANNOTATION}-`",
                self.name, seal.deployment_uid, self.name
            )));
        }
        let stable = stable_template(view, seal).ok_or_else(|| {
            CanaryError::Refused(format!(
                "the stable ReplicaSet {} (UID {}) named by the {SEAL_ANNOTATION} annotation is no longer \
                 a ReplicaSet of deploy/{}, so there is no trusted template to roll back to; roll back \
                 by hand (`kubectl rollout undo` after `kubectl rollout resume`)",
                seal.stable.replica_set, seal.stable.uid, self.name
            ))
        })?;
        let change = recovery_change(seal, &stable).map_err(|tampering| {
            CanaryError::Refused(format!(
                "{tampering}; there is no trusted template to roll deploy/{} back to: roll back by hand",
                self.name
            ))
        })?;
        let template = change.template.unwrap_or_default();
        Ok(CanaryRecord {
            schema: RECORD_SCHEMA,
            deployment: self.name.clone(),
            deployment_uid: uid,
            replicas: view.replicas(),
            original_images: images_of(&template),
            original_template: template,
            original_settings: change.settings,
            stable: seal.stable.clone(),
            target_images: seal.target_images.clone(),
            // Only the seal's digest of it is left: a rollback needs only the stable side.
            target_template: None,
            mode: seal.mode,
            phase: Phase::Aborting,
            started_by: Owner {
                user: "(unknown: the record is lost)".into(),
                host: String::new(),
                pid: 0,
                tool_version: env!("CARGO_PKG_VERSION").to_string(),
            },
            started_at: String::new(),
            history: vec![],
            requested_size: None,
            admitted_target_template: None,
            brake_while_held: false,
            traffic: None,
        })
    }

    /// Rolls a sealed Deployment back without its record (or ignoring it): the stable
    /// ReplicaSet's template and the sealed settings in one update, waiting until no canary
    /// pod is left unless `wait` is false; then deletes the record if there is one and
    /// takes the seal off.
    pub async fn recover_without_record(
        &self,
        seal: &Seal,
        record_to_delete: RecordRead,
        wait: bool,
        options: DriveOptions<'_>,
    ) -> Result<()> {
        let view = self.view().await?;
        let mut record = StoredRecord::synthesized(self.recovery_record(&view, seal)?);
        if wait {
            self.drive(&mut record, Goal::Abort, options.timeout, options.progress)
                .await?;
        } else {
            self.apply_until_waiting(&mut record, Goal::Abort, options.timeout, options.progress)
                .await?;
        }
        match record_to_delete {
            RecordRead::Decoded(stored) => self.store().delete(&stored).await?,
            RecordRead::Unreadable(unreadable) => self.delete_unreadable(&unreadable).await?,
            RecordRead::Missing => {}
        }
        self.remove_seal().await?;
        (options.progress)(&Progress::Released);
        Ok(())
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
