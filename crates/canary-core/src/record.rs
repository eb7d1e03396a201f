//! The canary record: everything the tool changes on a Deployment, written to the cluster
//! before the first change, and the intent of the command in progress.
//!
//! The record is what makes the tool crash-safe: every later run reads it and decides what
//! to do from it and from what it observes (see [`crate::machine`]), never from the memory
//! of a process that may have died.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::goal::Goal;
use crate::rollout_math::{CanaryMode, CanarySize};

/// Version of the record's layout written by this tool; a record of a version it does not
/// read is refused, not guessed at. Version 2 added `targetTemplate` (a canary of any pod
/// template change, not only of images).
pub const RECORD_SCHEMA: u32 = 2;

/// The record layouts this tool reads: version 1 (a canary of images, before
/// `targetTemplate`) and the current one.
pub const RECORD_SCHEMAS_READ: [u32; 2] = [1, RECORD_SCHEMA];

/// `minReadySeconds` while the canary is held: no canary pod can become Available, so the
/// controller cannot take the rollout past the canary size. About 31 years.
pub const BRAKE_MIN_READY_SECONDS: i32 = 1_000_000_000;

/// `progressDeadlineSeconds` while braked: validation wants it greater than minReadySeconds.
pub const BRAKE_PROGRESS_DEADLINE_SECONDS: i32 = BRAKE_MIN_READY_SECONDS + 1;

pub use crate::pod::POD_TEMPLATE_HASH_LABEL;

/// The fields of a Deployment's spec that drive the rollout and that the tool changes.
///
/// Values are kept exactly as the API server returned them (absent stays absent), so that
/// putting them back restores the spec field by field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSettings {
    /// `spec.strategy`, as JSON.
    pub strategy: Value,
    /// `spec.minReadySeconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i32>,
    /// `spec.progressDeadlineSeconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_seconds: Option<i32>,
    /// `spec.paused`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}

impl RolloutSettings {
    /// The settings that hold a canary of `pods` pods: the brake, and the strategy that
    /// makes the controller create exactly `pods` canary pods.
    pub fn braked(mode: CanaryMode, pods: i32, paused: bool) -> Self {
        let fenceposts = crate::rollout_math::brake_strategy(mode, pods);
        Self {
            strategy: serde_json::json!({
                "type": "RollingUpdate",
                "rollingUpdate": {
                    "maxSurge": fenceposts.max_surge,
                    "maxUnavailable": fenceposts.max_unavailable,
                },
            }),
            min_ready_seconds: Some(BRAKE_MIN_READY_SECONDS),
            progress_deadline_seconds: Some(BRAKE_PROGRESS_DEADLINE_SECONDS),
            paused: Some(paused),
        }
    }

    /// The same settings with `paused` set.
    pub fn with_paused(&self, paused: bool) -> Self {
        Self {
            paused: Some(paused),
            ..self.clone()
        }
    }

    /// Whether the two mean the same to the controller (an absent `minReadySeconds` is 0,
    /// an absent `paused` is false).
    pub fn equivalent(&self, other: &Self) -> bool {
        self.strategy == other.strategy
            && self.min_ready_seconds.unwrap_or(0) == other.min_ready_seconds.unwrap_or(0)
            && self.progress_deadline_seconds == other.progress_deadline_seconds
            && self.paused.unwrap_or(false) == other.paused.unwrap_or(false)
    }

    /// Whether the brake is on.
    pub fn is_braked(&self) -> bool {
        self.min_ready_seconds == Some(BRAKE_MIN_READY_SECONDS)
    }

    /// Whether `spec.paused` is true.
    pub fn is_paused(&self) -> bool {
        self.paused.unwrap_or(false)
    }
}

/// The stable ReplicaSet, recorded before the first change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StableRevision {
    /// ReplicaSet name.
    pub replica_set: String,
    /// ReplicaSet UID, so a recreated namesake is not mistaken for it.
    pub uid: String,
    /// The `deployment.kubernetes.io/revision` of the ReplicaSet.
    pub revision: String,
    /// Its `pod-template-hash` label.
    pub pod_template_hash: String,
}

/// Who started the canary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Owner {
    /// The Kubernetes user as the API server authenticated it.
    pub user: String,
    /// The host the CLI ran on.
    pub host: String,
    /// The CLI's process id.
    pub pid: u32,
    /// The tool's version.
    pub tool_version: String,
}

/// What the command in progress is trying to reach. Another run continues it, or replaces
/// it with an abort.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "camelCase")]
pub enum Phase {
    /// `start` is bringing the canary to `pods` pods.
    Starting {
        /// Wanted canary pods.
        pods: i32,
    },
    /// The canary is held, paused, at `pods` pods.
    Holding {
        /// Canary pods held.
        pods: i32,
    },
    /// `promote --canary` is taking the canary from `from` to `to` pods.
    Promoting {
        /// Canary pods before.
        from: i32,
        /// Wanted canary pods.
        to: i32,
    },
    /// `promote --full` is rolling the new version out to every pod.
    PromotingFull,
    /// `abort` is rolling back to the stable version.
    Aborting,
}

impl Phase {
    /// The goal this phase works towards.
    pub fn goal(self) -> Goal {
        match self {
            Phase::Starting { pods }
            | Phase::Holding { pods }
            | Phase::Promoting { to: pods, .. } => Goal::Hold { pods },
            Phase::PromotingFull => Goal::PromoteFull,
            Phase::Aborting => Goal::Abort,
        }
    }

    /// The phase a command working towards `goal` records, coming from this phase: a start
    /// interrupted before its hold stays a start; growing a held canary is a promotion from
    /// the size held.
    pub fn towards(self, goal: Goal) -> Phase {
        match goal {
            Goal::Hold { pods } => match self {
                Phase::Starting { .. } => Phase::Starting { pods },
                _ => Phase::Promoting {
                    from: self.held_pods().unwrap_or(0),
                    to: pods,
                },
            },
            Goal::PromoteFull => Phase::PromotingFull,
            Goal::Abort => Phase::Aborting,
        }
    }

    /// Canary pods currently held, if the canary reached a held state.
    pub fn held_pods(self) -> Option<i32> {
        match self {
            Phase::Holding { pods } => Some(pods),
            Phase::Promoting { from, .. } => Some(from),
            _ => None,
        }
    }

    /// A few words for people.
    pub fn describe(self) -> String {
        match self {
            Phase::Starting { pods } => format!("starting a canary of {pods} pod(s)"),
            Phase::Holding { pods } => format!("holding a canary of {pods} pod(s)"),
            Phase::Promoting { from, to } => {
                format!("promoting the canary from {from} to {to} pod(s)")
            }
            Phase::PromotingFull => "promoting to 100%".to_string(),
            Phase::Aborting => "aborting, rolling back to the stable version".to_string(),
        }
    }
}

/// One line of the record's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// RFC 3339 time.
    pub at: String,
    /// What happened.
    pub event: String,
}

/// The record kept in the cluster for one canary of one Deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CanaryRecord {
    /// Layout version, [`RECORD_SCHEMA`].
    pub schema: u32,
    /// The Deployment's name.
    pub deployment: String,
    /// The Deployment's UID: a record for a deleted and recreated namesake is stale.
    pub deployment_uid: String,
    /// `spec.replicas` when the canary started.
    pub replicas: i32,
    /// The pod template before the canary, exactly as read.
    pub original_template: Value,
    /// The rollout settings before the canary, exactly as read.
    pub original_settings: RolloutSettings,
    /// The stable ReplicaSet.
    pub stable: StableRevision,
    /// Container name to image, before.
    pub original_images: BTreeMap<String, String>,
    /// Container name to image, for the canary: the containers whose image the release
    /// changes (empty for a release of other fields only). In a version 1 record, without
    /// `target_template`, these images make the canary's template.
    pub target_images: BTreeMap<String, String>,
    /// The canary's pod template as the user's own input made it (images, a manifest, a
    /// patch, environment variables), exactly as sent. Absent in version 1 records: there
    /// the canary's template is the original with `target_images`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_template: Option<Value>,
    /// Surge (extra pods) or replace (none).
    pub mode: CanaryMode,
    /// The command in progress, or the held state.
    pub phase: Phase,
    /// Who started the canary.
    pub started_by: Owner,
    /// When the canary started (RFC 3339).
    pub started_at: String,
    /// What happened so far, oldest first.
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    /// The canary's pod template as the API server stored it, when admission (a mutating
    /// policy or webhook) changed the one the tool sent: that is the canary's template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admitted_target_template: Option<Value>,
    /// The canary size as the user asked for it (a pod count or a share), so a change of
    /// `spec.replicas` keeps what was asked: a share stays a share, a count stays a count.
    /// Absent: the held pod count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_size: Option<CanarySize>,
    /// Keep the brake on while held. Only for canaries run by the GitOps controller, whose
    /// admission policy takes the brake off in the same write as a revert; a CLI canary is
    /// held without it (docs/brake-during-hold.md).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub brake_while_held: bool,
    /// What `start` asked for the Services in front of the Deployment (dark canary, sticky
    /// sessions). For `status` and history only: what is put back on a Service comes from
    /// that Service's own annotation (`canary_core::traffic`), never from the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<crate::traffic::TrafficOptions>,
    /// The approval gate the held canary waits at, if any ([`crate::gate`]): for `status`,
    /// the report and whoever takes the canary over. Only the workload's annotation
    /// approves it; any new phase ends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<crate::gate::AwaitedGate>,
}

impl CanaryRecord {
    /// The pod template of the canary: the original with the target images, or what the
    /// API server stored of it after admission.
    pub fn target_template(&self) -> Value {
        self.admitted_target_template
            .clone()
            .unwrap_or_else(|| self.sent_target_template())
    }

    /// The pod template of the canary as the tool sends it: the recorded target template,
    /// or (a version 1 record) the original with the target images.
    pub fn sent_target_template(&self) -> Value {
        self.target_template
            .clone()
            .unwrap_or_else(|| with_images(&self.original_template, &self.target_images))
    }

    /// What the canary changes in the pod template, field by field.
    pub fn template_changes(&self) -> Vec<crate::release::FieldChange> {
        crate::release::template_diff(&self.original_template, &self.sent_target_template())
    }

    /// What the canary changes, in one line: images by name, other fields by path.
    pub fn change_summary(&self) -> String {
        crate::release::summarize(&self.template_changes())
    }

    /// The record of this canary held at `pods` canary pods (the CLI's engine and the
    /// controller write it alike).
    pub fn held(&self, pods: i32, at: &str) -> CanaryRecord {
        let mut record = self.clone();
        record.phase = Phase::Holding { pods };
        record.note(at, format!("holding {pods} canary pod(s), paused"));
        record
    }

    /// Appends a history line.
    pub fn note(&mut self, at: &str, event: impl Into<String>) {
        self.history.push(HistoryEntry {
            at: at.to_string(),
            event: event.into(),
        });
    }

    /// Canary pods currently held, if the canary reached a held state.
    pub fn held_pods(&self) -> Option<i32> {
        self.phase.held_pods()
    }
}

/// The lists of a pod template whose containers can be canaried: the application
/// containers and the init containers (native sidecars are init containers with
/// `restartPolicy: Always`; a new image of an ordinary init container is a release too).
/// Names are unique across both lists (the API server enforces it).
const CONTAINER_LISTS: [&str; 2] = ["/spec/containers", "/spec/initContainers"];

/// The container images of a pod template, by container name, init containers and native
/// sidecars included.
pub fn images_of(template: &Value) -> BTreeMap<String, String> {
    CONTAINER_LISTS
        .iter()
        .filter_map(|list| template.pointer(list).and_then(Value::as_array))
        .flatten()
        .filter_map(|c| {
            Some((
                c.get("name")?.as_str()?.to_string(),
                c.get("image")?.as_str()?.to_string(),
            ))
        })
        .collect()
}

/// The images `target` runs that `original` does not run under the same container name
/// (a new image, or a container added): what a release changes of images.
pub fn changed_images(original: &Value, target: &Value) -> BTreeMap<String, String> {
    let before = images_of(original);
    images_of(target)
        .into_iter()
        .filter(|(name, image)| before.get(name) != Some(image))
        .collect()
}

/// A copy of `template` with the given containers' images replaced (in either list).
pub fn with_images(template: &Value, images: &BTreeMap<String, String>) -> Value {
    let mut template = template.clone();
    for list in CONTAINER_LISTS {
        let Some(containers) = template.pointer_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for container in containers {
            let name = container
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_string);
            if let Some(image) = name.and_then(|n| images.get(&n)) {
                container["image"] = Value::String(image.clone());
            }
        }
    }
    template
}

/// A ReplicaSet's template without the controller's `pod-template-hash` label (and
/// without the labels map if that was its only label): the Deployment template it was
/// made from.
pub fn without_template_hash(rs_template: &Value) -> Value {
    let mut template = rs_template.clone();
    if let Some(labels) = template
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(POD_TEMPLATE_HASH_LABEL);
        if labels.is_empty() {
            template["metadata"]
                .as_object_mut()
                .map(|m| m.remove("labels"));
        }
    }
    template
}

/// Whether a ReplicaSet's template is the given Deployment template: equal once the
/// controller's `pod-template-hash` label is taken out (the controller's own rule).
pub fn replica_set_template_matches(rs_template: &Value, deployment_template: &Value) -> bool {
    normalize(&without_template_hash(rs_template)) == normalize(deployment_template)
}

/// Drops empty objects and nulls, which the API server sometimes omits and sometimes not.
pub fn normalize(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), normalize(v)))
                .filter(|(_, v)| !matches!(v, Value::Object(m) if m.is_empty()))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(normalize).collect()),
        other => other.clone(),
    }
}

/// A record of a 10-replica `web` with the Kubernetes default strategy, starting a
/// 1-pod surge canary of nginx:1.15: the fixture of this crate's tests.
#[cfg(test)]
pub(crate) fn sample_record() -> CanaryRecord {
    let template = serde_json::json!({"metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "nginx", "image": "nginx:1.14"}]}});
    CanaryRecord {
        schema: RECORD_SCHEMA,
        deployment: "web".into(),
        deployment_uid: "uid".into(),
        replicas: 10,
        original_images: images_of(&template),
        original_template: template,
        original_settings: RolloutSettings {
            strategy: serde_json::json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
            min_ready_seconds: None,
            progress_deadline_seconds: Some(600),
            paused: None,
        },
        stable: StableRevision {
            replica_set: "web-1".into(),
            uid: "rs".into(),
            revision: "1".into(),
            pod_template_hash: "1".into(),
        },
        target_images: BTreeMap::from([("nginx".into(), "nginx:1.15".into())]),
        target_template: None,
        mode: CanaryMode::Surge,
        phase: Phase::Starting { pods: 1 },
        started_by: Owner {
            user: "u".into(),
            host: "h".into(),
            pid: 1,
            tool_version: "t".into(),
        },
        started_at: "now".into(),
        history: vec![],
        admitted_target_template: None,
        requested_size: None,
        brake_while_held: false,
        traffic: None,
        gate: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template() -> Value {
        json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [
                {"name": "nginx", "image": "nginx:1.14"},
                {"name": "side", "image": "busybox:1"}
            ]}
        })
    }

    #[test]
    fn replaces_only_named_images() {
        let images = BTreeMap::from([("nginx".to_string(), "nginx:1.15".to_string())]);
        let changed = with_images(&template(), &images);
        assert_eq!(
            images_of(&changed),
            BTreeMap::from([
                ("nginx".to_string(), "nginx:1.15".to_string()),
                ("side".to_string(), "busybox:1".to_string())
            ])
        );
    }

    #[test]
    fn replica_set_template_ignores_only_the_hash_label() {
        let mut rs = template();
        rs["metadata"]["labels"]["pod-template-hash"] = json!("abc123");
        assert!(replica_set_template_matches(&rs, &template()));
        rs["metadata"]["labels"]["extra"] = json!("x");
        assert!(!replica_set_template_matches(&rs, &template()));
    }

    #[test]
    fn settings_equivalence_treats_absent_as_default() {
        let a = RolloutSettings {
            strategy: json!({"type": "RollingUpdate"}),
            min_ready_seconds: None,
            progress_deadline_seconds: Some(600),
            paused: None,
        };
        let b = RolloutSettings {
            min_ready_seconds: Some(0),
            paused: Some(false),
            ..a.clone()
        };
        assert!(a.equivalent(&b));
        assert!(!a.equivalent(&a.with_paused(true)));
    }

    #[test]
    fn record_round_trips_through_json() {
        let record = CanaryRecord {
            phase: Phase::Promoting { from: 1, to: 3 },
            ..sample_record()
        };
        let text = serde_json::to_string(&record).unwrap();
        assert_eq!(serde_json::from_str::<CanaryRecord>(&text).unwrap(), record);
        assert!(text.contains(r#""phase":{"name":"promoting","from":1,"to":3}"#));
    }

    #[test]
    fn init_containers_and_native_sidecars_can_be_canaried() {
        let template = serde_json::json!({"spec": {
            "initContainers": [
                {"name": "migrate", "image": "migrate:1"},
                {"name": "proxy", "image": "envoy:1.30", "restartPolicy": "Always"}
            ],
            "containers": [{"name": "app", "image": "app:1"}]
        }});
        let images = images_of(&template);
        assert_eq!(
            images.into_iter().collect::<Vec<_>>(),
            [
                ("app".to_string(), "app:1".to_string()),
                ("migrate".to_string(), "migrate:1".to_string()),
                ("proxy".to_string(), "envoy:1.30".to_string())
            ]
        );
        let new = with_images(
            &template,
            &BTreeMap::from([("proxy".to_string(), "envoy:1.31".to_string())]),
        );
        assert_eq!(new["spec"]["initContainers"][1]["image"], "envoy:1.31");
        assert_eq!(new["spec"]["initContainers"][1]["restartPolicy"], "Always");
        assert_eq!(new["spec"]["initContainers"][0]["image"], "migrate:1");
        assert_eq!(new["spec"]["containers"][0]["image"], "app:1");
    }
}
