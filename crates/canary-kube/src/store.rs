//! The canary record in the cluster: a ConfigMap owned by the Deployment.
//!
//! A ConfigMap rather than Deployment annotations, because the controller copies a
//! Deployment's annotations onto its ReplicaSets; owned by the Deployment, so it is
//! garbage-collected with it. Creating it is the lock: a second start meets AlreadyExists.
//! Whoever may write ConfigMaps may write it: it is read here as it is, and checked against
//! the seal on the Deployment and the stable ReplicaSet in [`crate::trust`] before any use.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::{Api, ResourceExt};

use canary_core::record::{CanaryRecord, RECORD_SCHEMA, RECORD_SCHEMAS_READ};

use crate::error::{CanaryError, Result, is_status};

/// The current time, RFC 3339, as records (and every history line) write it.
pub fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

/// The key of the record in the ConfigMap's data.
pub const RECORD_KEY: &str = "record.json";

/// Label put on every record, to find them all (`kubectl get cm -l app.kubernetes.io/managed-by=kubectl-canary`).
pub const MANAGED_BY_LABEL: (&str, &str) = ("app.kubernetes.io/managed-by", "kubectl-canary");

/// Label naming the Deployment a record belongs to (the full name is in the record and
/// its owner reference; the label is for selecting).
pub const DEPLOYMENT_LABEL: &str = "kubectl-canary.io/deployment";

/// The longest label value the API server accepts.
const LABEL_VALUE_MAX: usize = 63;

/// The [`DEPLOYMENT_LABEL`] value for a Deployment: its name when it fits in a label value
/// (63 characters), else its first 54 characters, `-` and 8 hex digits of a hash of the whole
/// name, so two long names sharing a prefix still get different values. Deployment names
/// are lowercase alphanumerics, `-` and `.`, all valid in a label value.
pub fn deployment_label_value(deployment: &str) -> String {
    if deployment.len() <= LABEL_VALUE_MAX {
        return deployment.to_string();
    }
    // FNV-1a: stable across versions and platforms (the value is stored in the cluster).
    let hash = deployment.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let prefix = deployment[..54].trim_end_matches(['-', '.']);
    format!("{prefix}-{:08x}", hash as u32)
}

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
    /// The ConfigMap's owner references, kept on every update.
    pub owner_references: Vec<OwnerReference>,
}

impl StoredRecord {
    /// A record rebuilt from the Deployment (a recovery without the record): no ConfigMap
    /// backs it, so nothing is written to or watched for it.
    pub fn synthesized(record: CanaryRecord) -> Self {
        Self {
            record,
            resource_version: String::new(),
            uid: String::new(),
            owner_references: Vec::new(),
        }
    }

    /// Whether no ConfigMap backs this record (see [`StoredRecord::synthesized`]).
    pub fn is_synthesized(&self) -> bool {
        self.uid.is_empty()
    }
}

/// Reads and writes the record of one Deployment.
#[derive(Clone)]
pub struct RecordStore {
    api: Api<ConfigMap>,
    deployment: String,
    /// The newest version of the record this command knows of, shared by the store's
    /// clones (see [`RecordStore::newest_known`]).
    newest: Arc<Mutex<Option<RecordVersion>>>,
}

/// A version of the record this command knows of (written, or read fresh): what a watch
/// must have delivered before a decision taken on it can tell this command's own write from
/// another run's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordVersion {
    /// Created or replaced; the resourceVersion stored.
    Stored(String),
    /// Deleted; the resourceVersion it had.
    Deleted(String),
}

impl RecordStore {
    /// The store for `deployment` in `namespace`.
    pub fn new(client: &kube::Client, namespace: &str, deployment: &str) -> Self {
        Self {
            api: Api::namespaced(client.clone(), namespace),
            deployment: deployment.to_string(),
            newest: Arc::default(),
        }
    }

    /// The newest version of the record this command knows of: its own last write through
    /// this store (or a clone of it), or a fresh read noted with [`RecordStore::note_read`].
    pub fn newest_known(&self) -> Option<RecordVersion> {
        self.newest.lock().ok().and_then(|w| w.clone())
    }

    fn wrote(&self, version: RecordVersion) {
        if let Ok(mut newest) = self.newest.lock() {
            *newest = Some(version);
        }
    }

    /// Notes what a fresh read of the record found (its resourceVersion; `None`: no
    /// record) as the newest version known: a record gone is the deletion of the one known
    /// before.
    pub fn note_read(&self, version: Option<&str>) {
        let Ok(mut newest) = self.newest.lock() else {
            return;
        };
        *newest = match (version, newest.take()) {
            (Some(version), _) => Some(RecordVersion::Stored(version.to_string())),
            (None, Some(RecordVersion::Stored(version) | RecordVersion::Deleted(version))) => {
                Some(RecordVersion::Deleted(version))
            }
            (None, None) => None,
        };
    }

    fn stored(&self, cm: ConfigMap) -> Result<StoredRecord> {
        if let Some(version) = cm.resource_version() {
            self.wrote(RecordVersion::Stored(version));
        }
        self.decode(cm)
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

    /// The ConfigMap API of the namespace.
    pub fn api(&self) -> Api<ConfigMap> {
        self.api.clone()
    }

    /// Reads a record out of its ConfigMap.
    pub fn decode(&self, cm: ConfigMap) -> Result<StoredRecord> {
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
        if !RECORD_SCHEMAS_READ.contains(&record.schema) {
            return Err(bad(format!(
                "schema {} written by another version of kubectl-canary (this one reads 1 and {RECORD_SCHEMA})",
                record.schema
            )));
        }
        // Version 1 describes the canary by images, version 2 by its whole template.
        if (record.schema >= 2) != record.target_template.is_some() {
            return Err(bad(format!(
                "schema {} {} targetTemplate",
                record.schema,
                if record.schema >= 2 {
                    "without"
                } else {
                    "with"
                }
            )));
        }
        Ok(StoredRecord {
            record,
            resource_version: cm.resource_version().unwrap_or_default(),
            uid: cm.uid().unwrap_or_default(),
            owner_references: cm.metadata.owner_references.clone().unwrap_or_default(),
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
                        DEPLOYMENT_LABEL.into(),
                        deployment_label_value(&self.deployment),
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
            Ok(cm) => self.stored(cm),
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
        cm.metadata.owner_references = Some(stored.owner_references.clone());
        match self
            .api
            .replace(&self.name(), &PostParams::default(), &cm)
            .await
        {
            Ok(cm) => self.stored(cm),
            Err(e) if is_status(&e, 409) => {
                // A retried PUT whose first answer was lost (a connection reset after the API
                // server took it) meets its own write: the record now is exactly the one
                // written, in the same ConfigMap. Anything else is another writer.
                if let Some(now) = self.get().await?
                    && now.uid == stored.uid
                    && serde_json::to_value(&now.record).ok() == serde_json::to_value(record).ok()
                {
                    self.wrote(RecordVersion::Stored(now.resource_version.clone()));
                    return Ok(now);
                }
                Err(CanaryError::Refused(format!(
                    "the canary record {} was changed by another kubectl-canary run meanwhile; \
                     check `kubectl canary status deploy/{}` and retry",
                    self.name(),
                    self.deployment
                )))
            }
            Err(e) => Err(CanaryError::api(
                format!("updating the canary record {}", self.name()),
                e,
            )),
        }
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
            Ok(_) => {
                self.wrote(RecordVersion::Deleted(stored.resource_version.clone()));
                Ok(())
            }
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

#[cfg(test)]
mod tests {
    //! Request sequences checked without a cluster: each request's method, path and body.

    use http::{Method, Request, Response, StatusCode};
    use kube::client::Body;
    use serde_json::{Value, json};

    use super::*;

    type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

    fn record() -> CanaryRecord {
        serde_json::from_value(json!({
            "schema": 1,
            "deployment": "web",
            "deploymentUid": "d-uid",
            "replicas": 3,
            "originalTemplate": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.14"}]}},
            "originalSettings": {"strategy": {"type": "RollingUpdate"}},
            "stable": {"replicaSet": "web-1", "uid": "rs-uid", "revision": "1", "podTemplateHash": "1"},
            "originalImages": {"nginx": "nginx:1.14"},
            "targetImages": {"nginx": "nginx:1.15"},
            "mode": "surge",
            "phase": {"name": "holding", "pods": 1},
            "startedBy": {"user": "alice", "host": "laptop", "pid": 42, "toolVersion": "0.1.0"},
            "startedAt": "2026-01-01T00:00:00Z"
        }))
        .expect("a valid record")
    }

    fn config_map_json(record: &CanaryRecord, resource_version: &str) -> Value {
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "web.kubectl-canary", "namespace": "ns", "uid": "cm-uid", "resourceVersion": resource_version},
            "data": {RECORD_KEY: serde_json::to_string(record).unwrap()}
        })
    }

    fn respond(status: StatusCode, body: Value) -> Response<Body> {
        Response::builder()
            .status(status)
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap()
    }

    async fn body_json(request: Request<Body>) -> Value {
        let bytes = request.into_body().collect_bytes().await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn store() -> (RecordStore, Handle) {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(service, "ns");
        (RecordStore::new(&client, "ns", "web"), handle)
    }

    fn deployment() -> Deployment {
        serde_json::from_value(
            json!({"metadata": {"name": "web", "namespace": "ns", "uid": "d-uid"}}),
        )
        .unwrap()
    }

    /// A second start meets the record: POST answered 409, then a GET of the holder, and the
    /// error names who holds it.
    #[tokio::test]
    async fn creating_an_existing_record_reports_the_holder() {
        let (store, mut handle) = store();
        let held = record();
        let server = tokio::spawn(async move {
            let (request, send) = handle.next_request().await.expect("POST");
            assert_eq!(request.method(), Method::POST);
            assert_eq!(request.uri().path(), "/api/v1/namespaces/ns/configmaps");
            let body = body_json(request).await;
            assert_eq!(
                body["metadata"]["ownerReferences"][0]["uid"], "d-uid",
                "owned by the Deployment"
            );
            assert_eq!(
                body["metadata"]["labels"]["app.kubernetes.io/managed-by"],
                "kubectl-canary"
            );
            send.send_response(respond(
                StatusCode::CONFLICT,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "AlreadyExists", "code": 409, "message": "exists"}),
            ));
            let (request, send) = handle.next_request().await.expect("GET");
            assert_eq!(request.method(), Method::GET);
            assert_eq!(
                request.uri().path(),
                "/api/v1/namespaces/ns/configmaps/web.kubectl-canary"
            );
            send.send_response(respond(StatusCode::OK, config_map_json(&held, "7")));
        });
        let error = store.create(&record(), &deployment()).await.unwrap_err();
        server.await.unwrap();
        let message = error.to_string();
        assert!(matches!(error, CanaryError::Locked { .. }), "{message}");
        assert!(
            message.contains("started by alice on laptop (pid 42)"),
            "{message}"
        );
    }

    /// Updates carry the resourceVersion read, so a concurrent writer makes them fail (409)
    /// instead of being overwritten; the owner reference is kept without another read.
    #[tokio::test]
    async fn updates_are_guarded_by_the_resource_version_read() {
        let (store, mut handle) = store();
        let stored = StoredRecord {
            record: record(),
            resource_version: "7".into(),
            uid: "cm-uid".into(),
            owner_references: serde_json::from_value(json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d-uid"}])).unwrap(),
        };
        let server = tokio::spawn(async move {
            let (request, send) = handle.next_request().await.expect("PUT");
            assert_eq!(request.method(), Method::PUT);
            let body = body_json(request).await;
            assert_eq!(body["metadata"]["resourceVersion"], "7");
            assert_eq!(body["metadata"]["ownerReferences"][0]["uid"], "d-uid");
            send.send_response(respond(
                StatusCode::CONFLICT,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409, "message": "changed"}),
            ));
            // The record as another writer left it.
            let (request, send) = handle.next_request().await.expect("GET");
            assert_eq!(request.method(), Method::GET);
            let mut theirs = record();
            theirs.deployment_uid = "someone-else".into();
            send.send_response(respond(StatusCode::OK, config_map_json(&theirs, "8")));
        });
        let error = store.update(&stored, &stored.record).await.unwrap_err();
        server.await.unwrap();
        assert!(
            error
                .to_string()
                .contains("changed by another kubectl-canary run"),
            "{error}"
        );
    }

    /// A PUT retried after its answer was lost meets its own write (409): the record read
    /// back is exactly the one written, so the update stands.
    #[tokio::test]
    async fn an_update_that_meets_its_own_write_stands() {
        let (store, mut handle) = store();
        let stored = StoredRecord {
            record: record(),
            resource_version: "7".into(),
            uid: "cm-uid".into(),
            owner_references: vec![],
        };
        let server = tokio::spawn(async move {
            let (_, send) = handle.next_request().await.expect("PUT");
            send.send_response(respond(
                StatusCode::CONFLICT,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409, "message": "changed"}),
            ));
            let (request, send) = handle.next_request().await.expect("GET");
            assert_eq!(request.method(), Method::GET);
            send.send_response(respond(StatusCode::OK, config_map_json(&record(), "8")));
        });
        let now = store.update(&stored, &stored.record).await.unwrap();
        server.await.unwrap();
        assert_eq!(now.resource_version, "8");
    }

    /// Deleting the record is conditional on the UID and resourceVersion read.
    #[tokio::test]
    async fn deletion_is_conditional_on_what_was_read() {
        let (store, mut handle) = store();
        let stored = StoredRecord {
            record: record(),
            resource_version: "9".into(),
            uid: "cm-uid".into(),
            owner_references: vec![],
        };
        let server = tokio::spawn(async move {
            let (request, send) = handle.next_request().await.expect("DELETE");
            assert_eq!(request.method(), Method::DELETE);
            let body = body_json(request).await;
            assert_eq!(
                body["preconditions"],
                json!({"resourceVersion": "9", "uid": "cm-uid"})
            );
            send.send_response(respond(StatusCode::OK, config_map_json(&record(), "9")));
        });
        store.delete(&stored).await.unwrap();
        server.await.unwrap();
    }

    #[test]
    fn a_long_deployment_name_gets_a_valid_distinct_label_value() {
        assert_eq!(deployment_label_value("web"), "web");
        let name63 = "a".repeat(63);
        assert_eq!(deployment_label_value(&name63), name63);
        let long_a = format!("{}-one", "x".repeat(70));
        let long_b = format!("{}-two", "x".repeat(70));
        let (a, b) = (
            deployment_label_value(&long_a),
            deployment_label_value(&long_b),
        );
        assert!(a.len() <= 63 && b.len() <= 63, "{a} {b}");
        assert_ne!(a, b);
        assert!(a.starts_with(&"x".repeat(54)));
        assert_eq!(a, deployment_label_value(&long_a), "stable");
        let dashes = format!("{}-{}", "y".repeat(53), "z".repeat(20));
        let value = deployment_label_value(&dashes);
        assert!(
            value.starts_with(&format!("{}-", "y".repeat(53))) && !value.contains("--"),
            "{value}"
        );
    }
}
