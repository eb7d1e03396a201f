//! The canary record in the cluster: a ConfigMap owned by the Deployment.
//!
//! A ConfigMap rather than Deployment annotations, because the controller copies a
//! Deployment's annotations onto its ReplicaSets; owned by the Deployment, so it is
//! garbage-collected with it. Creating it is the lock: a second start meets AlreadyExists.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::{Api, ResourceExt};

use canary_core::record::{CanaryRecord, RECORD_SCHEMA};

use crate::error::{CanaryError, Result, is_status};

/// The key of the record in the ConfigMap's data.
pub const RECORD_KEY: &str = "record.json";

/// Label put on every record, to find them all (`kubectl get cm -l app.kubernetes.io/managed-by=kubectl-canary`).
pub const MANAGED_BY_LABEL: (&str, &str) = ("app.kubernetes.io/managed-by", "kubectl-canary");

/// The name of a Deployment's record.
pub fn record_name(deployment: &str) -> String {
    format!("{deployment}.kubectl-canary")
}

/// A record as read, with the resourceVersion that guards the next write.
#[derive(Debug, Clone)]
pub struct StoredRecord {
    /// The record.
    pub record: CanaryRecord,
    /// The ConfigMap's resourceVersion.
    pub resource_version: String,
    /// The ConfigMap's UID.
    pub uid: String,
}

/// Reads and writes the record of one Deployment.
#[derive(Clone)]
pub struct RecordStore {
    api: Api<ConfigMap>,
    deployment: String,
}

impl RecordStore {
    /// The store for `deployment` in `namespace`.
    pub fn new(client: &kube::Client, namespace: &str, deployment: &str) -> Self {
        Self {
            api: Api::namespaced(client.clone(), namespace),
            deployment: deployment.to_string(),
        }
    }

    /// The ConfigMap's name.
    pub fn name(&self) -> String {
        record_name(&self.deployment)
    }

    /// Reads the record, if there is one.
    pub async fn get(&self) -> Result<Option<StoredRecord>> {
        match self.api.get_opt(&self.name()).await {
            Ok(Some(cm)) => self.decode(cm).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(CanaryError::api(
                format!("reading the canary record {}", self.name()),
                e,
            )),
        }
    }

    fn decode(&self, cm: ConfigMap) -> Result<StoredRecord> {
        let bad = |detail: String| CanaryError::BadRecord {
            name: self.name(),
            detail,
        };
        let text = cm
            .data
            .as_ref()
            .and_then(|d| d.get(RECORD_KEY))
            .ok_or_else(|| bad(format!("no {RECORD_KEY} key")))?;
        let record: CanaryRecord =
            serde_json::from_str(text).map_err(|e| bad(format!("{RECORD_KEY}: {e}")))?;
        if record.schema != RECORD_SCHEMA {
            return Err(bad(format!(
                "schema {} written by another version of kubectl-canary (this one reads {RECORD_SCHEMA})",
                record.schema
            )));
        }
        Ok(StoredRecord {
            record,
            resource_version: cm.resource_version().unwrap_or_default(),
            uid: cm.uid().unwrap_or_default(),
        })
    }

    fn config_map(
        &self,
        record: &CanaryRecord,
        owner: Option<&Deployment>,
        resource_version: Option<String>,
    ) -> ConfigMap {
        let owner_references = owner.map(|d| {
            vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: d.name_any(),
                uid: d.uid().unwrap_or_default(),
                controller: Some(false),
                block_owner_deletion: Some(false),
            }]
        });
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(self.name()),
                labels: Some(BTreeMap::from([
                    (MANAGED_BY_LABEL.0.into(), MANAGED_BY_LABEL.1.into()),
                    (
                        "kubectl-canary.io/deployment".into(),
                        self.deployment.clone(),
                    ),
                ])),
                owner_references,
                resource_version,
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                RECORD_KEY.to_string(),
                serde_json::to_string_pretty(record).expect("a record always serializes"),
            )])),
            ..Default::default()
        }
    }

    /// Creates the record: takes the lock. An existing record is reported with its holder.
    pub async fn create(&self, record: &CanaryRecord, owner: &Deployment) -> Result<StoredRecord> {
        match self
            .api
            .create(
                &PostParams::default(),
                &self.config_map(record, Some(owner), None),
            )
            .await
        {
            Ok(cm) => self.decode(cm),
            Err(e) if is_status(&e, 409) => Err(match self.get().await? {
                Some(held) => locked(&held.record),
                None => CanaryError::Refused(format!(
                    "the canary record {} appeared and vanished while starting; try again",
                    self.name()
                )),
            }),
            Err(e) => Err(CanaryError::api(
                format!("creating the canary record {}", self.name()),
                e,
            )),
        }
    }

    /// Replaces the record if nobody changed it since `stored` was read.
    pub async fn update(
        &self,
        stored: &StoredRecord,
        record: &CanaryRecord,
    ) -> Result<StoredRecord> {
        let mut cm = self.config_map(record, None, Some(stored.resource_version.clone()));
        // Keep the owner reference the record was created with.
        if let Ok(current) = self.api.get(&self.name()).await {
            cm.metadata.owner_references = current.metadata.owner_references;
        }
        let cm = self
            .api
            .replace(&self.name(), &PostParams::default(), &cm)
            .await
            .map_err(|e| {
                if is_status(&e, 409) {
                    CanaryError::Refused(format!(
                        "the canary record {} was changed by another kubectl-canary run meanwhile; \
                         check `kubectl canary status deploy/{}` and retry",
                        self.name(),
                        self.deployment
                    ))
                } else {
                    CanaryError::api(format!("updating the canary record {}", self.name()), e)
                }
            })?;
        self.decode(cm)
    }

    /// Deletes the record (releases the lock), only if it is still the one read.
    pub async fn delete(&self, stored: &StoredRecord) -> Result<()> {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(stored.uid.clone()),
                resource_version: Some(stored.resource_version.clone()),
            }),
            ..Default::default()
        };
        match self.api.delete(&self.name(), &params).await {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, 404) => Ok(()),
            Err(e) => Err(CanaryError::api(
                format!("deleting the canary record {}", self.name()),
                e,
            )),
        }
    }
}

/// The error for a Deployment whose record is held.
pub fn locked(record: &CanaryRecord) -> CanaryError {
    let by = &record.started_by;
    CanaryError::Locked {
        deployment: record.deployment.clone(),
        holder: format!(
            "started by {} on {} (pid {}) at {}, now {}",
            by.user,
            by.host,
            by.pid,
            record.started_at,
            record.phase.describe()
        ),
    }
}
