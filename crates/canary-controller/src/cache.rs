//! The controller's informer caches: the opted-in Deployments, the ReplicaSets, the pods and
//! the canary records, each kept by one watch ([`crate::run`]), so that a reconcile reads
//! from memory what the watches already hold instead of asking the API server four times.
//!
//! What a cache cannot tell by itself is whether it has caught up with the controller's own
//! last write: a reconcile decided on a Deployment or a record older than the one it wrote
//! would take its own write for someone else's. So the caches remember, per Deployment, the
//! versions the controller itself wrote last ([`OwnWrites`]) and the versions each watch has
//! delivered; a reconcile whose caches have not yet delivered its own last writes reads
//! everything fresh, as every reconcile did before the caches (docs/gitops.md, "What the
//! controller reads").
//!
//! The ReplicaSets and pods come from the same watches as the Deployment, not from one
//! snapshot; the decisions already allow for that (the shared step turn waits while the
//! Deployment controller has not observed the Deployment's generation, and every write is
//! guarded by the resourceVersion it was decided on).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::Event;

use canary_kube::observe::DeploymentView;
use canary_kube::store::RecordVersion;

/// How many versions of one object a watch remembers having delivered: enough for the
/// writes of one reconcile and the Deployment controller's status updates between two.
const VERSIONS_KEPT: usize = 16;

/// The versions of the Deployment and of its record the controller wrote last (or found
/// by a fresh read after its write), per Deployment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OwnWrites {
    /// The Deployment's resourceVersion after the controller's last update of it.
    pub deployment: Option<String>,
    /// The record's version after the controller's last write (or deletion) of it.
    pub record: Option<RecordVersion>,
}

impl OwnWrites {
    fn is_empty(&self) -> bool {
        self.deployment.is_none() && self.record.is_none()
    }
}

/// The resourceVersions a watch has delivered, per object (`namespace/name`): the last
/// few (`VERSIONS_KEPT`) of each, noted after the reflector stored them.
#[derive(Debug, Default)]
pub struct Delivered {
    versions: Mutex<HashMap<String, VecDeque<String>>>,
}

impl Delivered {
    /// Notes what `event` delivered; `stored` is the cache it was reflected into (a relist's
    /// objects reach the cache together at its end, and are noted then).
    pub fn note<K>(&self, event: &Event<K>, stored: &Store<K>)
    where
        K: kube::Resource<DynamicType = ()> + Clone + 'static,
    {
        match event {
            Event::Apply(object) | Event::Delete(object) => self.note_object(object),
            Event::InitDone => {
                for object in stored.state() {
                    self.note_object(object.as_ref());
                }
            }
            Event::Init | Event::InitApply(_) => {}
        }
    }

    fn note_object<K: kube::Resource>(&self, object: &K) {
        let Some(version) = object.meta().resource_version.clone() else {
            return;
        };
        let key = format!(
            "{}/{}",
            object.meta().namespace.as_deref().unwrap_or_default(),
            object.meta().name.as_deref().unwrap_or_default()
        );
        let Ok(mut versions) = self.versions.lock() else {
            return;
        };
        let kept = versions.entry(key).or_default();
        if !kept.contains(&version) {
            if kept.len() == VERSIONS_KEPT {
                kept.pop_front();
            }
            kept.push_back(version);
        }
    }

    fn has(&self, key: &str, version: &str) -> bool {
        self.versions
            .lock()
            .map(|versions| {
                versions
                    .get(key)
                    .is_some_and(|kept| kept.iter().any(|v| v == version))
            })
            .unwrap_or(false)
    }
}

/// The caches and what their watches delivered.
#[derive(Clone)]
pub struct Caches {
    /// The opted-in Deployments.
    pub deployments: Store<Deployment>,
    /// The ReplicaSets (without their managedFields).
    pub replica_sets: Store<ReplicaSet>,
    /// The pods (without their managedFields).
    pub pods: Store<Pod>,
    /// The canary records (ConfigMaps labelled as managed by kubectl-canary).
    pub records: Store<ConfigMap>,
    /// The Deployments' versions the watch delivered.
    pub deployments_delivered: Arc<Delivered>,
    /// The records' versions the watch delivered.
    pub records_delivered: Arc<Delivered>,
    own: Arc<Mutex<HashMap<String, OwnWrites>>>,
}

/// What a reconcile may read from the caches.
#[derive(Debug)]
pub struct Cached {
    /// The Deployment, its ReplicaSets and pods.
    pub view: DeploymentView,
    /// The record's ConfigMap, when the cache holds one.
    pub record: Option<ConfigMap>,
}

impl Caches {
    /// Caches over the stores of the controller's watches.
    pub fn new(
        deployments: Store<Deployment>,
        replica_sets: Store<ReplicaSet>,
        pods: Store<Pod>,
        records: Store<ConfigMap>,
    ) -> Self {
        Self {
            deployments,
            replica_sets,
            pods,
            records,
            deployments_delivered: Arc::default(),
            records_delivered: Arc::default(),
            own: Arc::default(),
        }
    }

    /// Notes the versions the controller wrote last for Deployment `key` (`namespace/name`);
    /// `None` leaves the one noted before.
    pub fn note_own(&self, key: &str, writes: OwnWrites) {
        if writes.is_empty() {
            return;
        }
        if let Ok(mut own) = self.own.lock() {
            let noted = own.entry(key.to_string()).or_default();
            if writes.deployment.is_some() {
                noted.deployment = writes.deployment;
            }
            if writes.record.is_some() {
                noted.record = writes.record;
            }
        }
    }

    /// Deployment `name` of `namespace` with its ReplicaSets, pods and record's ConfigMap
    /// (named `record`), when every cache has listed and holds the controller's own last
    /// writes; `None`: read fresh.
    pub fn read(&self, namespace: &str, name: &str, record: &str) -> Option<Cached> {
        if !self.listed() {
            return None;
        }
        let key = format!("{namespace}/{name}");
        let record_key = format!("{namespace}/{record}");
        let deployment = self
            .deployments
            .get(&ObjectRef::new(name).within(namespace))?;
        let record = self
            .records
            .get(&ObjectRef::new(record).within(namespace))
            .map(|cm| (*cm).clone());
        let own = self
            .own
            .lock()
            .ok()
            .and_then(|own| own.get(&key).cloned())
            .unwrap_or_default();
        let deployment_current = own.deployment.as_deref().is_none_or(|version| {
            self.deployments_delivered.has(&key, version)
                || at_least(deployment.resource_version().as_deref(), version)
        });
        let cached_record_version = record.as_ref().and_then(|cm| cm.resource_version());
        let record_current = match &own.record {
            None => true,
            Some(RecordVersion::Stored(version)) => {
                self.records_delivered.has(&record_key, version)
                    || at_least(cached_record_version.as_deref(), version)
            }
            Some(RecordVersion::Deleted(version)) => {
                cached_record_version.as_deref() != Some(version)
            }
        };
        if !(deployment_current && record_current) {
            return None;
        }
        if let Ok(mut own) = self.own.lock() {
            // Caught up: nothing to wait for until the next write.
            own.remove(&key);
        }
        let deployment = (*deployment).clone();
        let selector = selector_of(&deployment)?;
        let in_scope = |meta: &kube::core::ObjectMeta| {
            meta.namespace.as_deref() == Some(namespace)
                && selector.matches(meta.labels.as_ref().unwrap_or(&Default::default()))
        };
        let replica_sets = self
            .replica_sets
            .state_filter(|rs| in_scope(&rs.metadata))
            .iter()
            .map(|rs| (**rs).clone())
            .collect();
        let pods = self
            .pods
            .state_filter(|pod| in_scope(&pod.metadata))
            .iter()
            .map(|pod| (**pod).clone())
            .collect();
        Some(Cached {
            view: DeploymentView::assemble(deployment, replica_sets, pods),
            record,
        })
    }

    /// Whether every cache has listed once (before that, an empty cache means nothing).
    fn listed(&self) -> bool {
        has_listed(&self.deployments)
            && has_listed(&self.replica_sets)
            && has_listed(&self.pods)
            && has_listed(&self.records)
    }
}

/// Whether `store`'s watch has listed once: its readiness, asked without waiting.
fn has_listed<K>(store: &Store<K>) -> bool
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    store
        .wait_until_ready()
        .now_or_never()
        .is_some_and(|ready| ready.is_ok())
}

/// Whether `current` is `version` or later. Versions of one resource compare as numbers
/// (KEP-5504, stable since Kubernetes 1.35): after a relist, a watch delivers only each
/// object's latest version, so the one written may never be delivered itself. Where either
/// is not a number (an older or another server), only delivery says so.
fn at_least(current: Option<&str>, version: &str) -> bool {
    match (
        current.and_then(|c| c.parse::<u64>().ok()),
        version.parse::<u64>(),
    ) {
        (Some(current), Ok(version)) => current >= version,
        _ => false,
    }
}

/// The Deployment's selector; `None` when it has none or one the caches cannot match (then
/// the reconcile lists with it on the server, which says what is wrong).
fn selector_of(deployment: &Deployment) -> Option<Selector> {
    let selector = deployment.spec.as_ref()?.selector.clone();
    let selector = Selector::try_from(selector).ok()?;
    // An empty selector selects every pod of the namespace; the API server refuses such a
    // Deployment, and the caches never stand in for its answer.
    (!selector.selects_all()).then_some(selector)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector;
    use serde_json::json;

    fn deployment(version: &str) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "d1", "resourceVersion": version},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": "web:1"}]}}}
        }))
        .unwrap()
    }

    fn replica_set(name: &str, app: &str, namespace: &str) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": app},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                              "name": "web", "uid": "d1", "controller": true}]},
        }))
        .unwrap()
    }

    fn record(version: &str) -> ConfigMap {
        serde_json::from_value(json!({
            "metadata": {"name": "web-canary", "namespace": "ns", "resourceVersion": version},
        }))
        .unwrap()
    }

    struct Fixture {
        caches: Caches,
        deployments: reflector::store::Writer<Deployment>,
        records: reflector::store::Writer<ConfigMap>,
    }

    /// Caches whose four watches have listed: the Deployment at `version`, two ReplicaSets
    /// of it, one of another app and one of another namespace, and the record at 7.
    fn listed(version: &str) -> Fixture {
        let (deployments_store, deployments) = reflector::store();
        let (replica_sets_store, mut replica_sets) = reflector::store();
        let (pods_store, mut pods) = reflector::store::<Pod>();
        let (records_store, records) = reflector::store();
        let mut fixture = Fixture {
            caches: Caches::new(
                deployments_store,
                replica_sets_store,
                pods_store,
                records_store,
            ),
            deployments,
            records,
        };
        fixture.deliver_deployment([
            Event::Init,
            Event::InitApply(deployment(version)),
            Event::InitDone,
        ]);
        for event in [
            Event::Init,
            Event::InitApply(replica_set("web-1", "web", "ns")),
            Event::InitApply(replica_set("web-2", "web", "ns")),
            Event::InitApply(replica_set("api-1", "api", "ns")),
            Event::InitApply(replica_set("web-1", "web", "other")),
            Event::InitDone,
        ] {
            replica_sets.apply_watcher_event(&event);
        }
        for event in [Event::Init, Event::InitDone] {
            pods.apply_watcher_event(&event);
        }
        fixture.deliver_record([Event::Init, Event::InitApply(record("7")), Event::InitDone]);
        fixture
    }

    impl Fixture {
        /// `events` of the Deployment's watch, reflected and noted as the watch does.
        fn deliver_deployment(&mut self, events: impl IntoIterator<Item = Event<Deployment>>) {
            for event in events {
                self.deployments.apply_watcher_event(&event);
                self.caches
                    .deployments_delivered
                    .note(&event, &self.caches.deployments);
            }
        }

        /// `events` of the records' watch, reflected and noted as the watch does.
        fn deliver_record(&mut self, events: impl IntoIterator<Item = Event<ConfigMap>>) {
            for event in events {
                self.records.apply_watcher_event(&event);
                self.caches
                    .records_delivered
                    .note(&event, &self.caches.records);
            }
        }
    }

    #[test]
    fn a_listed_cache_gives_the_view_of_the_deployments_own_objects() {
        let fixture = listed("10");
        let cached = fixture
            .caches
            .read("ns", "web", "web-canary")
            .expect("cached");
        let names: Vec<String> = cached
            .view
            .replica_sets
            .iter()
            .map(|rs| rs.name_any())
            .collect();
        assert_eq!(
            names.len(),
            2,
            "{names:?}: not api-1, not the other namespace's"
        );
        assert!(names.iter().all(|n| n.starts_with("web-")));
        assert_eq!(
            cached.record.unwrap().resource_version().as_deref(),
            Some("7")
        );
        assert!(fixture.caches.read("ns", "gone", "gone-canary").is_none());
    }

    #[test]
    fn before_every_watch_has_listed_nothing_is_read_from_the_caches() {
        let (deployments, _) = reflector::store::<Deployment>();
        let (replica_sets, _) = reflector::store::<ReplicaSet>();
        let (pods, _) = reflector::store::<Pod>();
        let (records, _) = reflector::store::<ConfigMap>();
        let caches = Caches::new(deployments, replica_sets, pods, records);
        assert!(caches.read("ns", "web", "web-canary").is_none());
    }

    #[test]
    fn an_own_deployment_write_not_yet_delivered_means_read_fresh() {
        let mut fixture = listed("10");
        fixture.caches.note_own(
            "ns/web",
            OwnWrites {
                deployment: Some("12".into()),
                record: None,
            },
        );
        assert!(
            fixture.caches.read("ns", "web", "web-canary").is_none(),
            "12 not delivered"
        );
        // Delivered, then a later status update on top: caught up all the same.
        fixture.deliver_deployment(["12", "13"].map(|v| Event::Apply(deployment(v))));
        let cached = fixture
            .caches
            .read("ns", "web", "web-canary")
            .expect("caught up");
        assert_eq!(
            cached.view.deployment.resource_version().as_deref(),
            Some("13")
        );
    }

    #[test]
    fn a_relist_that_skipped_the_written_version_is_caught_up_by_a_later_one() {
        let mut fixture = listed("10");
        fixture.caches.note_own(
            "ns/web",
            OwnWrites {
                deployment: Some("12".into()),
                record: None,
            },
        );
        fixture.deliver_deployment([
            Event::Init,
            Event::InitApply(deployment("15")),
            Event::InitDone,
        ]);
        assert!(
            fixture.caches.read("ns", "web", "web-canary").is_some(),
            "15 is after 12"
        );
        assert!(!at_least(Some("9"), "12"));
        assert!(
            !at_least(Some("abc"), "12"),
            "not numbers: only delivery counts"
        );
    }

    #[test]
    fn an_own_record_write_or_deletion_not_yet_delivered_means_read_fresh() {
        let mut fixture = listed("10");
        let written = OwnWrites {
            deployment: None,
            record: Some(RecordVersion::Stored("8".into())),
        };
        fixture.caches.note_own("ns/web", written);
        assert!(fixture.caches.read("ns", "web", "web-canary").is_none());
        fixture.deliver_record([Event::Apply(record("8"))]);
        assert!(fixture.caches.read("ns", "web", "web-canary").is_some());

        let deleted = OwnWrites {
            deployment: None,
            record: Some(RecordVersion::Deleted("8".into())),
        };
        fixture.caches.note_own("ns/web", deleted);
        assert!(
            fixture.caches.read("ns", "web", "web-canary").is_none(),
            "still there"
        );
        fixture.deliver_record([Event::Delete(record("8"))]);
        let cached = fixture
            .caches
            .read("ns", "web", "web-canary")
            .expect("gone");
        assert!(cached.record.is_none());
    }
}
