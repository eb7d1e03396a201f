//! Reading a StatefulSet or a DaemonSet with its ControllerRevisions and pods, and reducing
//! them to the facts `canary_core::rollout_math` decides on ([`StatefulSetFacts`],
//! [`DaemonSetFacts`]) and the pods its models hold. The DaemonSet counterpart of
//! [`crate::observe`] (which reads a Deployment with its ReplicaSets).
//!
//! A revision of either kind is a ControllerRevision the workload controls; its pods carry
//! its identity in `controller-revision-hash`: a StatefulSet writes the revision's *name*
//! there (also its `status.updateRevision`), a DaemonSet the revision's hash label (measured,
//! docs/ARCHITECTURE.md, "StatefulSet and DaemonSet controllers: measured").
//! `crates/canary-kube/tests/kinds_model.rs` reads the real controllers' work through these
//! views.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use serde_json::Value;

use canary_core::kind_machines::daemonset::{DaemonSetChange, DaemonSetObservation};
use canary_core::kind_machines::statefulset::{StatefulSetChange, StatefulSetObservation};
use canary_core::rollout_math::{
    DaemonPod, DaemonSetFacts, OrdinalHealth, OrdinalPod, PodManagementPolicy, StatefulSetFacts,
};

use crate::error::{CanaryError, Result, is_status};
use crate::observe::{label_selector_string, pod_is_ready, template_json};
use crate::workload::Revision;

/// The pod label of both kinds that names the revision a pod was created from.
pub const CONTROLLER_REVISION_LABEL: &str = "controller-revision-hash";

/// A StatefulSet, the ControllerRevisions it controls (newest first) and its pods, read at
/// one moment.
#[derive(Debug, Clone)]
pub struct StatefulSetView {
    /// The StatefulSet.
    pub statefulset: StatefulSet,
    /// Its ControllerRevisions, newest revision first.
    pub revisions: Vec<ControllerRevision>,
    /// Pods matching its selector.
    pub pods: Vec<Pod>,
}

/// A DaemonSet, the ControllerRevisions it controls (newest first) and its pods, read at one
/// moment.
#[derive(Debug, Clone)]
pub struct DaemonSetView {
    /// The DaemonSet.
    pub daemonset: DaemonSet,
    /// Its ControllerRevisions, newest revision first.
    pub revisions: Vec<ControllerRevision>,
    /// Pods matching its selector.
    pub pods: Vec<Pod>,
}

impl StatefulSetView {
    /// Reads StatefulSet `name` in `namespace` with its revisions and pods.
    ///
    /// ```no_run
    /// # async fn example(client: kube::Client) -> canary_kube::error::Result<()> {
    /// use canary_kube::kinds::StatefulSetView;
    ///
    /// let view = StatefulSetView::read(&client, "shop", "db").await?;
    /// println!("{} pods on {}", view.pods.len(), view.facts().update_revision);
    /// # Ok(()) }
    /// ```
    pub async fn read(client: &kube::Client, namespace: &str, name: &str) -> Result<Self> {
        let statefulset: StatefulSet = get(client, namespace, "sts", name).await?;
        let selector = statefulset.spec.as_ref().map(|s| &s.selector);
        let uid = statefulset.uid().unwrap_or_default();
        let (revisions, pods) =
            revisions_and_pods(client, namespace, &uid, selector, "sts", name).await?;
        Ok(Self {
            statefulset,
            revisions,
            pods,
        })
    }

    /// What a canary plan decides on ([`canary_core::rollout_math::plan_statefulset_canary`]).
    pub fn facts(&self) -> StatefulSetFacts {
        let spec = self.statefulset.spec.clone().unwrap_or_default();
        let status = self.statefulset.status.clone().unwrap_or_default();
        let strategy = spec.update_strategy.unwrap_or_default();
        StatefulSetFacts {
            name: self.statefulset.name_any(),
            replicas: spec.replicas.unwrap_or(1),
            on_delete: strategy.type_.as_deref() == Some("OnDelete"),
            partition: strategy
                .rolling_update
                .and_then(|r| r.partition)
                .unwrap_or(0),
            current_revision: status.current_revision.unwrap_or_default(),
            update_revision: status.update_revision.unwrap_or_default(),
            caught_up: caught_up(
                self.statefulset.metadata.generation,
                status.observed_generation,
            ),
        }
    }

    /// `spec.podManagementPolicy`.
    pub fn policy(&self) -> PodManagementPolicy {
        PodManagementPolicy::parse(
            self.statefulset
                .spec
                .as_ref()
                .and_then(|s| s.pod_management_policy.as_deref()),
        )
    }

    /// The pods by ordinal, as [`canary_core::rollout_math::StatefulSetModel`] holds them.
    /// Pods whose name is not `<statefulset>-<ordinal>` are not the StatefulSet's and are left
    /// out.
    pub fn pods_by_ordinal(&self) -> BTreeMap<i32, OrdinalPod> {
        let prefix = format!("{}-", self.statefulset.name_any());
        self.pods
            .iter()
            .filter_map(|pod| {
                let ordinal = pod.name_any().strip_prefix(&prefix)?.parse().ok()?;
                let health = if pod.metadata.deletion_timestamp.is_some() {
                    OrdinalHealth::Terminating
                } else if pod_is_ready(pod) {
                    OrdinalHealth::Ready
                } else {
                    OrdinalHealth::NotReady
                };
                Some((
                    ordinal,
                    OrdinalPod {
                        revision: revision_of(pod),
                        health,
                    },
                ))
            })
            .collect()
    }

    /// Its revisions, newest first; a revision's pods carry its name.
    pub fn revision_list(&self) -> Vec<Revision> {
        self.revisions
            .iter()
            .map(|r| revision(r, r.name_any()))
            .collect()
    }
}

impl StatefulSetView {
    /// What the StatefulSet machine decides on
    /// ([`canary_core::kind_machines::statefulset::decide`]).
    pub fn observation(&self) -> StatefulSetObservation {
        StatefulSetObservation {
            facts: self.facts(),
            policy: self.policy(),
            template: self
                .statefulset
                .spec
                .as_ref()
                .map(|s| template_json(&s.template))
                .unwrap_or(Value::Null),
            pods: self.pods_by_ordinal(),
        }
    }

    /// The StatefulSet as read with `change` written into it: the template when the change
    /// carries one, and a rolling update with the change's partition (its other fields, such
    /// as `maxUnavailable`, kept). It carries the resourceVersion read, for a guarded write.
    pub fn changed(&self, change: &StatefulSetChange) -> Result<StatefulSet> {
        let mut updated = self.statefulset.clone();
        let spec = updated.spec.get_or_insert_with(Default::default);
        if let Some(template) = &change.template {
            spec.template = pod_template_from(template)?;
        }
        let strategy = spec.update_strategy.get_or_insert_with(Default::default);
        strategy.type_ = Some("RollingUpdate".to_owned());
        strategy
            .rolling_update
            .get_or_insert_with(Default::default)
            .partition = Some(change.partition);
        Ok(updated)
    }

    /// The pods of `ordinals`, as read (for guarded deletions).
    pub fn pods_at(&self, ordinals: &[i32]) -> Vec<&Pod> {
        let names: Vec<String> = ordinals
            .iter()
            .map(|o| format!("{}-{o}", self.statefulset.name_any()))
            .collect();
        self.pods
            .iter()
            .filter(|p| names.contains(&p.name_any()))
            .collect()
    }
}

impl DaemonSetView {
    /// Reads DaemonSet `name` in `namespace` with its revisions and pods.
    pub async fn read(client: &kube::Client, namespace: &str, name: &str) -> Result<Self> {
        let daemonset: DaemonSet = get(client, namespace, "ds", name).await?;
        let selector = daemonset.spec.as_ref().map(|s| &s.selector);
        let uid = daemonset.uid().unwrap_or_default();
        let (revisions, pods) =
            revisions_and_pods(client, namespace, &uid, selector, "ds", name).await?;
        Ok(Self {
            daemonset,
            revisions,
            pods,
        })
    }

    /// The hash of its template now: the newest revision's (empty before the controller has
    /// made one).
    pub fn template_revision(&self) -> String {
        self.revisions
            .first()
            .and_then(|r| r.labels().get(CONTROLLER_REVISION_LABEL).cloned())
            .unwrap_or_default()
    }

    /// The pods by node, as [`canary_core::rollout_math::DaemonSetModel`] holds them: every
    /// node that runs one of its pods (pods being deleted left out; a node that should run a
    /// pod and has none is only known to the controller, whose status then counts fewer
    /// scheduled pods than desired, see [`DaemonSetView::facts`]).
    pub fn pods_by_node(&self) -> BTreeMap<String, Option<DaemonPod>> {
        self.pods
            .iter()
            .filter(|pod| pod.metadata.deletion_timestamp.is_none())
            .filter_map(|pod| {
                let node = pod.spec.as_ref()?.node_name.clone()?;
                let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
                Some((
                    node,
                    Some(DaemonPod {
                        revision: revision_of(pod),
                        ready: pod_is_ready(pod),
                        finished: matches!(phase, Some("Failed" | "Succeeded")),
                    }),
                ))
            })
            .collect()
    }

    /// What a canary plan decides on ([`canary_core::rollout_math::plan_daemonset_canary`]):
    /// its nodes are those running its pods, plus a placeholder without a pod for each node
    /// the controller wants a pod on and has none (`desiredNumberScheduled` beyond the pods
    /// seen), so that a plan refuses while one is missing.
    pub fn facts(&self) -> DaemonSetFacts {
        let status = self.daemonset.status.clone().unwrap_or_default();
        let mut nodes = self.pods_by_node();
        let missing = (status.desired_number_scheduled as usize).saturating_sub(nodes.len());
        for i in 0..missing {
            nodes.insert(format!("(a node without its pod, {})", i + 1), None);
        }
        DaemonSetFacts {
            name: self.daemonset.name_any(),
            stable_revision: self.template_revision(),
            nodes,
            caught_up: caught_up(
                self.daemonset.metadata.generation,
                status.observed_generation,
            ),
        }
    }

    /// Its revisions, newest first; a revision's pods carry its hash label.
    pub fn revision_list(&self) -> Vec<Revision> {
        self.revisions
            .iter()
            .map(|r| {
                let hash = r
                    .labels()
                    .get(CONTROLLER_REVISION_LABEL)
                    .cloned()
                    .unwrap_or_default();
                revision(r, hash)
            })
            .collect()
    }
}

impl DaemonSetView {
    /// What the DaemonSet machine decides on
    /// ([`canary_core::kind_machines::daemonset::decide`]).
    pub fn observation(&self) -> DaemonSetObservation {
        let spec = self.daemonset.spec.as_ref();
        DaemonSetObservation {
            template: spec
                .map(|s| template_json(&s.template))
                .unwrap_or(Value::Null),
            strategy: spec
                .and_then(|s| s.update_strategy.as_ref())
                .map(template_json)
                .unwrap_or(Value::Null),
            caught_up: self.facts().caught_up,
            template_revision: self.template_revision(),
            nodes: self.pods_by_node(),
        }
    }

    /// The DaemonSet as read with `change` written into it: the template when the change
    /// carries one, and the update strategy, every field. It carries the resourceVersion
    /// read, for a guarded write.
    pub fn changed(&self, change: &DaemonSetChange) -> Result<DaemonSet> {
        let mut updated = self.daemonset.clone();
        let spec = updated.spec.get_or_insert_with(Default::default);
        if let Some(template) = &change.template {
            spec.template = pod_template_from(template)?;
        }
        spec.update_strategy = serde_json::from_value(change.strategy.clone()).map_err(|e| {
            CanaryError::Refused(format!("the recorded updateStrategy is unusable: {e}"))
        })?;
        Ok(updated)
    }

    /// The pods (not being deleted) on `nodes`, as read (for guarded deletions).
    pub fn pods_on(&self, nodes: &[String]) -> Vec<&Pod> {
        self.pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| {
                p.spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_ref())
                    .is_some_and(|n| nodes.contains(n))
            })
            .collect()
    }
}

fn pod_template_from(template: &Value) -> Result<k8s_openapi::api::core::v1::PodTemplateSpec> {
    serde_json::from_value(template.clone())
        .map_err(|e| CanaryError::Refused(format!("the recorded pod template is unusable: {e}")))
}

fn caught_up(generation: Option<i64>, observed: Option<i64>) -> bool {
    observed.unwrap_or(0) >= generation.unwrap_or(0)
}

/// A pod's `controller-revision-hash`.
fn revision_of(pod: &Pod) -> String {
    pod.labels()
        .get(CONTROLLER_REVISION_LABEL)
        .cloned()
        .unwrap_or_default()
}

/// A ControllerRevision as the workload seam's [`Revision`]: its stored pod template is
/// `data.spec.template` (both controllers store the patch that restores the template).
fn revision(r: &ControllerRevision, hash: String) -> Revision {
    let template = r
        .data
        .as_ref()
        .map(|d| d.0.clone())
        .and_then(|d| d.get("spec").and_then(|s| s.get("template")).cloned())
        .unwrap_or(Value::Null);
    Revision {
        name: r.name_any(),
        uid: r.uid().unwrap_or_default(),
        number: r.revision,
        hash,
        template,
    }
}

async fn get<K>(
    client: &kube::Client,
    namespace: &str,
    short: &'static str,
    name: &str,
) -> Result<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    api.get(name).await.map_err(|e| {
        if is_status(&e, 404) {
            CanaryError::WorkloadNotFound {
                kind: short,
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            }
        } else {
            CanaryError::api(format!("reading {short}/{name}"), e)
        }
    })
}

/// The ControllerRevisions `uid` controls (newest first) and the pods of `selector`, side by
/// side.
async fn revisions_and_pods(
    client: &kube::Client,
    namespace: &str,
    uid: &str,
    selector: Option<&LabelSelector>,
    short: &str,
    name: &str,
) -> Result<(Vec<ControllerRevision>, Vec<Pod>)> {
    let params = ListParams::default().labels(&label_selector_string(selector));
    let revisions: Api<ControllerRevision> = Api::namespaced(client.clone(), namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let (revisions, pods) = tokio::join!(revisions.list(&params), pods.list(&params));
    let mut revisions: Vec<ControllerRevision> = revisions
        .map_err(|e| CanaryError::api(format!("listing the revisions of {short}/{name}"), e))?
        .items
        .into_iter()
        .filter(|r| {
            r.owner_references()
                .iter()
                .any(|o| o.controller == Some(true) && o.uid == uid)
        })
        .collect();
    revisions.sort_by_key(|r| std::cmp::Reverse(r.revision));
    let pods = pods
        .map_err(|e| CanaryError::api(format!("listing the pods of {short}/{name}"), e))?
        .items;
    Ok((revisions, pods))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(name: &str, revision: &str, node: &str, ready: bool, phase: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app": "x", CONTROLLER_REVISION_LABEL: revision}},
            "spec": {"nodeName": node, "containers": []},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
        }))
        .unwrap()
    }

    fn controller_revision(name: &str, hash: &str, number: i64, image: &str) -> ControllerRevision {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {CONTROLLER_REVISION_LABEL: hash}},
            "revision": number,
            "data": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}}
        }))
        .unwrap()
    }

    /// A StatefulSet's pods by ordinal (a namesake pod of another name is not one of them),
    /// and its revisions named as its pods name them.
    #[test]
    fn a_statefulsets_pods_are_known_by_ordinal_and_revision_name() {
        let view = StatefulSetView {
            statefulset: serde_json::from_value(json!({
                "metadata": {"name": "db", "generation": 3},
                "spec": {"replicas": 3, "serviceName": "db", "podManagementPolicy": "Parallel",
                         "selector": {"matchLabels": {"app": "x"}},
                         "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}},
                         "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": []}}},
                "status": {"replicas": 3, "observedGeneration": 2, "currentRevision": "db-a", "updateRevision": "db-b"}
            }))
            .unwrap(),
            revisions: vec![
                controller_revision("db-b", "b", 2, "db:v2"),
                controller_revision("db-a", "a", 1, "db:v1"),
            ],
            pods: vec![
                pod("db-0", "db-a", "n0", true, "Running"),
                pod("db-2", "db-b", "n1", false, "Running"),
                pod("dbx-1", "db-a", "n0", true, "Running"),
            ],
        };
        let facts = view.facts();
        assert_eq!((facts.partition, facts.caught_up), (2, false));
        assert_eq!(view.policy(), PodManagementPolicy::Parallel);
        let pods = view.pods_by_ordinal();
        assert_eq!(pods.keys().copied().collect::<Vec<_>>(), [0, 2]);
        assert_eq!(pods[&2].health, OrdinalHealth::NotReady);
        let revisions = view.revision_list();
        assert_eq!(
            (revisions[0].hash.as_str(), revisions[0].number),
            ("db-b", 2)
        );
        assert_eq!(
            revisions[1].template["spec"]["containers"][0]["image"],
            "db:v1"
        );
    }

    /// A DaemonSet's pods by node, a finished pod told apart, and a node the controller
    /// wants a pod on and has none standing in the facts so that a plan refuses.
    #[test]
    fn a_daemonsets_pods_are_known_by_node_and_a_missing_one_is_counted() {
        let view = DaemonSetView {
            daemonset: serde_json::from_value(json!({
                "metadata": {"name": "agent", "generation": 1},
                "spec": {"selector": {"matchLabels": {"app": "x"}},
                         "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": []}}},
                "status": {"observedGeneration": 1, "desiredNumberScheduled": 3, "currentNumberScheduled": 2,
                           "numberMisscheduled": 0, "numberReady": 1}
            }))
            .unwrap(),
            revisions: vec![controller_revision("agent-7f", "7f", 1, "agent:v1")],
            pods: vec![
                pod("agent-a", "7f", "n0", true, "Running"),
                pod("agent-b", "7f", "n1", false, "Failed"),
            ],
        };
        assert_eq!(view.template_revision(), "7f");
        let nodes = view.pods_by_node();
        assert!(nodes["n1"].as_ref().unwrap().finished);
        let facts = view.facts();
        assert_eq!(facts.nodes.len(), 3);
        assert_eq!(facts.nodes.values().filter(|p| p.is_none()).count(), 1);
        let refusal = canary_core::rollout_math::plan_daemonset_canary(
            &facts,
            canary_core::rollout_math::CanarySize::Pods(1),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(refusal.contains("without a Ready pod"), "{refusal}");
    }

    /// A machine's change written into the object as read: the template and the brake
    /// only, every other field (the resourceVersion read among them) kept.
    #[test]
    fn a_change_writes_the_template_and_the_brake_only() {
        let statefulset: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": "db", "resourceVersion": "41"},
            "spec": {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": {"app": "x"}},
                     "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0, "maxUnavailable": 2}},
                     "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "db", "image": "db:1"}]}}}
        }))
        .unwrap();
        let view = StatefulSetView {
            statefulset,
            revisions: vec![],
            pods: vec![],
        };
        let canary = json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "db", "image": "db:2"}]}});
        let changed = view
            .changed(&StatefulSetChange {
                template: Some(canary.clone()),
                partition: 2,
                summary: String::new(),
            })
            .unwrap();
        let before = serde_json::to_value(&view.statefulset).unwrap();
        let after = serde_json::to_value(&changed).unwrap();
        assert_eq!(
            after["spec"]["updateStrategy"]["rollingUpdate"],
            json!({"partition": 2, "maxUnavailable": 2})
        );
        assert_eq!(after["spec"]["template"], canary);
        assert_eq!(
            (&after["metadata"], &after["spec"]["replicas"]),
            (&before["metadata"], &before["spec"]["replicas"])
        );
        assert!(
            view.changed(&StatefulSetChange {
                template: Some(json!({"spec": 3})),
                partition: 0,
                summary: String::new()
            })
            .is_err()
        );

        let daemonset: DaemonSet = serde_json::from_value(json!({
            "metadata": {"name": "agent", "resourceVersion": "7"},
            "spec": {"selector": {"matchLabels": {"app": "x"}},
                     "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
                     "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": []}}}
        }))
        .unwrap();
        let view = DaemonSetView {
            daemonset,
            revisions: vec![],
            pods: vec![],
        };
        let changed = view
            .changed(&DaemonSetChange {
                template: None,
                strategy: json!({"type": "OnDelete"}),
                summary: String::new(),
            })
            .unwrap();
        let after = serde_json::to_value(&changed).unwrap();
        assert_eq!(after["spec"]["updateStrategy"], json!({"type": "OnDelete"}));
        assert_eq!(after["metadata"]["resourceVersion"], "7");
    }
}
