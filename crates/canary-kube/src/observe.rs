//! Reading a Deployment with its ReplicaSets and pods, and reducing them to the facts the
//! core logic decides on.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use serde_json::Value;

use canary_core::machine::{Observation, ReplicaSetObservation};
use canary_core::record::{
    CanaryRecord, POD_TEMPLATE_HASH_LABEL, RolloutSettings, images_of, replica_set_template_matches,
};
use canary_core::validate::DeploymentFacts;

use crate::error::{CanaryError, Result, is_status};

/// The annotation in which the controller keeps a ReplicaSet's revision.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";

/// A Deployment, the ReplicaSets it owns and their pods, read at one moment.
#[derive(Debug, Clone)]
pub struct DeploymentView {
    /// The Deployment.
    pub deployment: Deployment,
    /// ReplicaSets whose controller is the Deployment, newest revision first.
    pub replica_sets: Vec<ReplicaSet>,
    /// Pods matching the Deployment's selector.
    pub pods: Vec<Pod>,
}

/// The typed APIs of one namespace.
#[derive(Clone)]
pub struct NamespaceApis {
    /// Namespace.
    pub namespace: String,
    /// Deployments.
    pub deployments: Api<Deployment>,
    /// ReplicaSets.
    pub replica_sets: Api<ReplicaSet>,
    /// Pods.
    pub pods: Api<Pod>,
}

impl NamespaceApis {
    /// The APIs of `namespace`.
    pub fn new(client: &kube::Client, namespace: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            deployments: Api::namespaced(client.clone(), namespace),
            replica_sets: Api::namespaced(client.clone(), namespace),
            pods: Api::namespaced(client.clone(), namespace),
        }
    }

    /// Reads the Deployment, its ReplicaSets and pods. A missing Deployment is looked for in
    /// other namespaces so the error can say where it is.
    pub async fn view(&self, client: &kube::Client, name: &str) -> Result<DeploymentView> {
        let deployment = self.deployment(client, name).await?;
        self.view_of(deployment).await
    }

    /// Reads Deployment `name`; not found, the error says where one of that name exists.
    pub async fn deployment(&self, client: &kube::Client, name: &str) -> Result<Deployment> {
        match self.deployments.get(name).await {
            Ok(deployment) => Ok(deployment),
            Err(e) if is_status(&e, 404) => Err(CanaryError::DeploymentNotFound {
                namespace: self.namespace.clone(),
                name: name.to_string(),
                hint: elsewhere_hint(client, name).await,
            }),
            Err(e) => Err(CanaryError::api(format!("reading deploy/{name}"), e)),
        }
    }

    /// Reads the ReplicaSets and pods of an already read Deployment.
    pub async fn view_of(&self, deployment: Deployment) -> Result<DeploymentView> {
        let name = deployment.name_any();
        let selector = selector_string(&deployment);
        let params = ListParams::default().labels(&selector);
        // Side by side: a status is two round trips, not three.
        let (replica_sets, pods) =
            tokio::join!(self.replica_sets.list(&params), self.pods.list(&params));
        let replica_sets = replica_sets
            .map_err(|e| CanaryError::api(format!("listing the ReplicaSets of deploy/{name}"), e))?
            .items;
        let pods = pods
            .map_err(|e| CanaryError::api(format!("listing the pods of deploy/{name}"), e))?
            .items;
        Ok(DeploymentView::assemble(deployment, replica_sets, pods))
    }
}

async fn elsewhere_hint(client: &kube::Client, name: &str) -> String {
    let all: Api<Deployment> = Api::all(client.clone());
    let params = ListParams::default().fields(&format!("metadata.name={name}"));
    match all.list_metadata(&params).await {
        Ok(list) if !list.items.is_empty() => {
            let namespaces: Vec<String> = list.items.iter().filter_map(|d| d.namespace()).collect();
            format!(
                ", but it exists in namespace {}: add -n {}",
                namespaces.join(", "),
                namespaces[0]
            )
        }
        _ => "; check the name and the namespace (-n)".to_string(),
    }
}

/// The Deployment's selector as a label-selector string (see [`label_selector_string`]).
pub fn selector_string(deployment: &Deployment) -> String {
    label_selector_string(deployment.spec.as_ref().map(|s| &s.selector))
}

/// A workload's selector as a label-selector string: `matchLabels` and `matchExpressions`
/// both (a selector of expressions only must not become the empty selector, which selects
/// every pod of the namespace).
pub fn label_selector_string(selector: Option<&LabelSelector>) -> String {
    let Some(selector) = selector else {
        return String::new();
    };
    let labels = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"));
    let expressions = selector.match_expressions.iter().flatten().map(|e| {
        let values = e.values.clone().unwrap_or_default().join(",");
        match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            // The API server accepts no other operator for a workload's selector.
            other => format!("{} {other} ({values})", e.key),
        }
    });
    labels.chain(expressions).collect::<Vec<_>>().join(",")
}

/// Whether a pod is Ready, by [`canary_core::pod::is_ready`].
pub fn pod_is_ready(pod: &Pod) -> bool {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    canary_core::pod::is_ready(
        conditions
            .into_iter()
            .flatten()
            .map(|c| (c.type_.as_str(), c.status.as_str())),
    )
}

/// A ReplicaSet's revision number (0 if absent).
pub fn revision_of(rs: &ReplicaSet) -> i64 {
    rs.annotations()
        .get(REVISION_ANNOTATION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// A ReplicaSet's `pod-template-hash` label.
pub fn template_hash_of(rs: &ReplicaSet) -> String {
    rs.labels()
        .get(POD_TEMPLATE_HASH_LABEL)
        .cloned()
        .unwrap_or_default()
}

/// The pod template of a Deployment or ReplicaSet as JSON.
pub fn template_json<T: serde::Serialize>(template: &T) -> Value {
    serde_json::to_value(template).unwrap_or(Value::Null)
}

/// The rollout settings of a Deployment, exactly as stored.
pub fn settings_of(deployment: &Deployment) -> RolloutSettings {
    let spec = deployment.spec.clone().unwrap_or_default();
    RolloutSettings {
        strategy: spec
            .strategy
            .as_ref()
            .map(template_json)
            .unwrap_or(Value::Null),
        min_ready_seconds: spec.min_ready_seconds,
        progress_deadline_seconds: spec.progress_deadline_seconds,
        paused: spec.paused,
    }
}

impl DeploymentView {
    /// A view from a Deployment, the ReplicaSets matching its selector (only those it
    /// controls are kept, newest revision first) and the pods matching its selector.
    pub fn assemble(deployment: Deployment, replica_sets: Vec<ReplicaSet>, pods: Vec<Pod>) -> Self {
        let uid = deployment.metadata.uid.clone().unwrap_or_default();
        let mut replica_sets: Vec<ReplicaSet> = replica_sets
            .into_iter()
            .filter(|rs| {
                rs.owner_references()
                    .iter()
                    .any(|o| o.controller == Some(true) && o.uid == uid)
            })
            .collect();
        replica_sets.sort_by_key(|rs| std::cmp::Reverse(revision_of(rs)));
        Self {
            deployment,
            replica_sets,
            pods,
        }
    }

    /// The Deployment's name.
    pub fn name(&self) -> String {
        self.deployment.name_any()
    }

    /// The Deployment's UID (empty before it is stored): what tells it from a namesake.
    pub fn uid(&self) -> String {
        self.deployment.uid().unwrap_or_default()
    }

    /// `spec.replicas` (1 when unset, the API's default).
    pub fn replicas(&self) -> i32 {
        self.deployment
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1)
    }

    /// The Deployment's pod template as JSON.
    pub fn template(&self) -> Value {
        self.deployment
            .spec
            .as_ref()
            .map(|s| template_json(&s.template))
            .unwrap_or(Value::Null)
    }

    /// The ReplicaSet whose template is `template`, if any.
    pub fn replica_set_with_template(&self, template: &Value) -> Option<&ReplicaSet> {
        self.replica_sets.iter().find(|rs| {
            rs.spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| replica_set_template_matches(&template_json(t), template))
        })
    }

    /// Pods carrying a `pod-template-hash`, counted with terminating ones.
    pub fn pods_with_hash(&self, hash: &str) -> Vec<&Pod> {
        self.pods
            .iter()
            .filter(|p| p.labels().get(POD_TEMPLATE_HASH_LABEL).map(String::as_str) == Some(hash))
            .collect()
    }

    fn replica_set_observation(&self, rs: &ReplicaSet) -> ReplicaSetObservation {
        let status = rs.status.clone().unwrap_or_default();
        let pods = self.pods_with_hash(&template_hash_of(rs));
        ReplicaSetObservation {
            name: rs.name_any(),
            desired: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
            ready: status.ready_replicas.unwrap_or(0),
            available: status.available_replicas.unwrap_or(0),
            pods: pods.len() as i32,
            terminating: pods
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_some())
                .count() as i32,
        }
    }

    /// The observation the state machine decides on, with canary and stable sides told
    /// apart by the recorded templates.
    pub fn observation(&self, record: &CanaryRecord) -> Observation {
        let status = self.deployment.status.clone().unwrap_or_default();
        let canary_rs = self.replica_set_with_template(&record.target_template());
        let stable_rs = self.replica_set_with_template(&record.original_template);
        let known: Vec<String> = [canary_rs, stable_rs]
            .into_iter()
            .flatten()
            .map(template_hash_of)
            .collect();
        let other_pods = self
            .pods
            .iter()
            .filter(|p| {
                p.labels()
                    .get(POD_TEMPLATE_HASH_LABEL)
                    .is_none_or(|h| !known.contains(h))
            })
            .count() as i32;
        Observation {
            generation: self.deployment.metadata.generation.unwrap_or(0),
            observed_generation: status.observed_generation.unwrap_or(0),
            replicas: self.replicas(),
            template: self.template(),
            settings: settings_of(&self.deployment),
            updated_replicas: status.updated_replicas.unwrap_or(0),
            status_replicas: status.replicas.unwrap_or(0),
            available_replicas: status.available_replicas.unwrap_or(0),
            canary: canary_rs.map(|rs| self.replica_set_observation(rs)),
            stable: stable_rs.map(|rs| self.replica_set_observation(rs)),
            other_pods,
        }
    }

    /// The facts `start` checks.
    pub fn facts(&self) -> DeploymentFacts {
        let spec = self.deployment.spec.clone().unwrap_or_default();
        let status = self.deployment.status.clone().unwrap_or_default();
        let mut hashes_with_pods: Vec<&String> = self
            .pods
            .iter()
            .filter_map(|p| p.labels().get(POD_TEMPLATE_HASH_LABEL))
            .collect();
        hashes_with_pods.sort();
        hashes_with_pods.dedup();
        let rs_with_pods = self
            .replica_sets
            .iter()
            .filter(|rs| {
                rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0) > 0
                    || hashes_with_pods.contains(&&template_hash_of(rs))
            })
            .count();
        DeploymentFacts {
            name: self.name(),
            replicas: self.replicas(),
            strategy_type: spec
                .strategy
                .and_then(|s| s.type_)
                .unwrap_or_else(|| "RollingUpdate".into()),
            paused: spec.paused.unwrap_or(false),
            caught_up: status.observed_generation.unwrap_or(0)
                >= self.deployment.metadata.generation.unwrap_or(0),
            updated_replicas: status.updated_replicas.unwrap_or(0),
            available_replicas: status.available_replicas.unwrap_or(0),
            status_replicas: status.replicas.unwrap_or(0),
            replica_sets_with_pods: rs_with_pods,
            images: images_of(&self.template()),
        }
    }

    /// Container images of the pod template, by container.
    pub fn images(&self) -> BTreeMap<String, String> {
        images_of(&self.template())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

    #[test]
    fn a_selector_of_expressions_only_is_not_the_empty_selector() {
        let requirement = |key: &str, operator: &str, values: &[&str]| LabelSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        };
        let deployment = Deployment {
            spec: Some(k8s_openapi::api::apps::v1::DeploymentSpec {
                selector: LabelSelector {
                    match_labels: None,
                    match_expressions: Some(vec![
                        requirement("app", "In", &["web", "web2"]),
                        requirement("tier", "NotIn", &["db"]),
                        requirement("track", "Exists", &[]),
                        requirement("legacy", "DoesNotExist", &[]),
                    ]),
                },
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            selector_string(&deployment),
            "app in (web,web2),tier notin (db),track,!legacy"
        );
    }
}
