//! The workload seam: what the engine needs from "the thing being canaried", so that a
//! StatefulSet or a DaemonSet can be canaried by implementing it, not by writing a second
//! engine. Implemented for a Deployment (through its [`DeploymentView`]) now; the other two
//! kinds are read by [`crate::kinds`] into their models' facts (`canary_core::rollout_math`),
//! checked against the real controllers; see docs/ARCHITECTURE.md, "The workload seam", for
//! how they fit.
//!
//! What differs between kinds is small and named here: where the pod template is, what a
//! revision is (a ReplicaSet; a ControllerRevision) and which label marks its pods, and how
//! the canary is held at k pods (the brake) and let go. The rest (the record, the seal, the
//! foreign-change checks, the step policy, the analysis of two sides) works on those.

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use serde_json::Value;

use canary_core::machine::Observation;
use canary_core::pod::POD_TEMPLATE_HASH_LABEL;
use canary_core::record::CanaryRecord;

use crate::observe::{DeploymentView, revision_of, settings_of, template_hash_of, template_json};

/// How a kind holds a canary at k pods and lets it go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Brake {
    /// Deployment: `maxSurge=k` (or `maxUnavailable=k`) with `minReadySeconds` and
    /// `progressDeadlineSeconds` so long that no canary pod becomes Available, then paused
    /// with the Deployment's own settings back (no brake while held); released by the
    /// recorded strategy, minReadySeconds, progressDeadlineSeconds and paused.
    HeldRollingUpdate,
    /// StatefulSet (next): `updateStrategy.rollingUpdate.partition = replicas - k`: the
    /// controller updates only the k highest ordinals and stops there by itself (no timing
    /// brake needed); released by the recorded partition. An abort under `OrderedReady`
    /// must also delete the canary pods that are not Ready: the controller never replaces
    /// them (docs/ARCHITECTURE.md, "StatefulSet and DaemonSet controllers: measured").
    Partition,
    /// DaemonSet (next): `updateStrategy: OnDelete` and the tool deletes the pods of k
    /// chosen nodes; released by the recorded updateStrategy. `maxSurge=k` with a long
    /// `minReadySeconds` does not hold: a DaemonSet's minReadySeconds reaches its old pods
    /// too, so raising it with the template surges every node (measured, same section).
    OnDeleteOrHeldSurge,
}

/// One revision of a workload's pod template, with what tells its pods apart.
#[derive(Debug, Clone, PartialEq)]
pub struct Revision {
    /// The object that carries it (a ReplicaSet; a ControllerRevision).
    pub name: String,
    /// Its UID: what a seal and a record name it by.
    pub uid: String,
    /// Its revision number (newer is larger).
    pub number: i64,
    /// The value of [`Workload::REVISION_LABEL`] on its pods.
    pub hash: String,
    /// Its pod template as stored.
    pub template: Value,
}

/// What the engine needs from the workload it canaries.
pub trait Workload {
    /// The kind, as the API names it.
    const KIND: &'static str;
    /// The pod label whose value tells the sides apart (Deployment: `pod-template-hash`;
    /// StatefulSet and DaemonSet: `controller-revision-hash`).
    const REVISION_LABEL: &'static str;
    /// How this kind holds a canary and lets it go.
    const BRAKE: Brake;

    /// The workload's name.
    fn name(&self) -> String;
    /// Its UID: what tells it from a namesake created later.
    fn uid(&self) -> String;
    /// The pod template as stored.
    fn template(&self) -> Value;
    /// The pods it wants (for a DaemonSet: the nodes it runs on).
    fn replicas(&self) -> i32;
    /// Its revisions, newest first.
    fn revisions(&self) -> Vec<Revision>;
    /// The pods of one revision.
    fn pods_of(&self, revision: &Revision) -> Vec<&Pod>;
    /// Whether the brake is on now (its rollout cannot pass the canary by itself).
    fn is_braked(&self) -> bool;
    /// Whether it is being deleted (gone for the canary: foreground deletion removes the
    /// record, a dependent, first).
    fn is_being_deleted(&self) -> bool;
    /// What the state machine decides on ([`canary_core::machine::decide`]): its settings,
    /// template and status, with the canary and stable sides told apart by `record`'s
    /// templates.
    fn observation(&self, record: &CanaryRecord) -> Observation;
}

impl Workload for DeploymentView {
    const KIND: &'static str = "Deployment";
    const REVISION_LABEL: &'static str = POD_TEMPLATE_HASH_LABEL;
    const BRAKE: Brake = Brake::HeldRollingUpdate;

    fn name(&self) -> String {
        DeploymentView::name(self)
    }

    fn uid(&self) -> String {
        DeploymentView::uid(self)
    }

    fn template(&self) -> Value {
        DeploymentView::template(self)
    }

    fn replicas(&self) -> i32 {
        DeploymentView::replicas(self)
    }

    fn revisions(&self) -> Vec<Revision> {
        self.replica_sets
            .iter()
            .map(|rs| Revision {
                name: rs.name_any(),
                uid: rs.uid().unwrap_or_default(),
                number: revision_of(rs),
                hash: template_hash_of(rs),
                template: rs
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .map(template_json)
                    .unwrap_or_default(),
            })
            .collect()
    }

    fn pods_of(&self, revision: &Revision) -> Vec<&Pod> {
        self.pods_with_hash(&revision.hash)
    }

    fn is_braked(&self) -> bool {
        settings_of(&self.deployment).is_braked()
    }

    fn is_being_deleted(&self) -> bool {
        self.deployment.metadata.deletion_timestamp.is_some()
    }

    fn observation(&self, record: &CanaryRecord) -> Observation {
        DeploymentView::observation(self, record)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn view() -> DeploymentView {
        let deployment = serde_json::from_value(json!({
            "metadata": {"name": "web", "uid": "d-uid"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "nginx", "image": "nginx:1.15"}]}}}
        }))
        .unwrap();
        let replica_set = |name: &str, hash: &str, revision: &str, image: &str| {
            serde_json::from_value(json!({
                "metadata": {"name": name, "uid": format!("{name}-uid"),
                             "labels": {"app": "web", "pod-template-hash": hash},
                             "annotations": {"deployment.kubernetes.io/revision": revision}},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                         "template": {"metadata": {"labels": {"app": "web", "pod-template-hash": hash}},
                                      "spec": {"containers": [{"name": "nginx", "image": image}]}}}
            }))
            .unwrap()
        };
        let pod = |name: &str, hash: &str| {
            serde_json::from_value(json!({
                "metadata": {"name": name, "labels": {"app": "web", "pod-template-hash": hash}}
            }))
            .unwrap()
        };
        DeploymentView {
            deployment,
            replica_sets: vec![
                replica_set("web-2", "h2", "2", "nginx:1.15"),
                replica_set("web-1", "h1", "1", "nginx:1.14"),
            ],
            pods: vec![pod("a", "h1"), pod("b", "h1"), pod("c", "h2")],
        }
    }

    /// A Deployment's revisions are its ReplicaSets, told apart by `pod-template-hash`.
    #[test]
    fn a_deployments_revisions_are_its_replica_sets_and_their_pods() {
        let view = view();
        assert_eq!(Workload::name(&view), "web");
        assert_eq!(Workload::uid(&view), "d-uid");
        assert_eq!(Workload::replicas(&view), 3);
        assert!(!Workload::is_braked(&view));
        let revisions = view.revisions();
        let summary: Vec<(&str, i64, &str, usize)> = revisions
            .iter()
            .map(|r| {
                (
                    r.name.as_str(),
                    r.number,
                    r.hash.as_str(),
                    view.pods_of(r).len(),
                )
            })
            .collect();
        assert_eq!(summary, vec![("web-2", 2, "h2", 1), ("web-1", 1, "h1", 2)]);
        assert_eq!(
            revisions[1].template["spec"]["containers"][0]["image"],
            "nginx:1.14"
        );
        assert_eq!(
            <DeploymentView as Workload>::REVISION_LABEL,
            "pod-template-hash"
        );
    }
}
