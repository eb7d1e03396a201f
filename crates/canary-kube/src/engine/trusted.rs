//! The engine's side of [`crate::trust`]: the canary state read and checked for a command,
//! the seal taken off, records discarded, and a Deployment held without its record rolled
//! back from the seal and the stable ReplicaSet alone.

use std::sync::atomic::Ordering;

use kube::ResourceExt;
use kube::api::{DeleteParams, PostParams, Preconditions};

use canary_core::gate::APPROVE_ANNOTATION;
use canary_core::machine::Goal;
use canary_core::record::{CanaryRecord, Owner, Phase, RECORD_SCHEMA, images_of};
use canary_core::seal::{SEAL_ANNOTATION, Seal, recovery_change};

use super::{DriveOptions, Engine, Progress, mutation_point};
use crate::error::{CanaryError, Result, is_status};
use crate::observe::DeploymentView;
use crate::status::StatusReport;
use crate::store::StoredRecord;
use crate::trust::{
    CanaryState, RecordRead, UnreadableRecord, classify, read_record, record_read, set_seal,
    stable_template,
};

impl Engine {
    /// The Deployment's canary, with its record checked against the seal and the stable
    /// ReplicaSet, and the view it was checked on: the command's live view once it runs
    /// (caught up with the command's own writes), fresh reads before.
    pub async fn canary_state(&self) -> Result<(CanaryState, DeploymentView)> {
        let watching = self.live_view.initialized();
        let interrupted = self.interrupted.swap(false, Ordering::SeqCst);
        if watching && !interrupted {
            let live = self.live().await?;
            let view = live.view()?;
            let read = record_read(self.store(), live.record_map())?;
            return Ok((classify(&view, read)?, view));
        }
        let (view, read) = tokio::join!(self.view(), read_record(self.store()));
        let (view, read) = (view?, read?);
        // What a fresh read found while the live view runs is newer than what the view may
        // hold: it catches up with it before any decision on it.
        if watching {
            self.store.note_read(read.resource_version());
            if let Some(version) = view.deployment.metadata.resource_version.clone() {
                self.noted_deployment(version);
            }
        }
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

    /// Takes the seal off the Deployment (when the canary is over), with the approval of a
    /// gate the canary passed (the tool's own annotations, never the user's): one metadata
    /// update, read again and retried on a conflict. Returns whether there was a seal.
    pub async fn remove_seal(&self) -> Result<bool> {
        for attempt in 0..5 {
            // The live view's copy first (a conflict reads again).
            let mut deployment = match attempt {
                0 => self.current_view().await?.deployment,
                _ => self.deployment().await?,
            };
            let sealed = deployment.annotations().contains_key(SEAL_ANNOTATION);
            let approved = deployment.annotations().contains_key(APPROVE_ANNOTATION);
            if !sealed && !approved {
                return Ok(false);
            }
            set_seal(&mut deployment, None);
            deployment.annotations_mut().remove(APPROVE_ANNOTATION);
            match self
                .apis
                .deployments
                .replace(&self.name, &PostParams::default(), &deployment)
                .await
            {
                Ok(updated) => {
                    self.wrote_deployment(&updated);
                    mutation_point("seal removed");
                    return Ok(sealed);
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
        let uid = view.uid();
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
            gate: None,
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
