//! What the tests read from and put into a test's namespace besides the Deployment: its
//! pods by image, the canary record, a Service in front of `web`.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::{Value, json};

/// The record ConfigMap of deploy/`deployment`.
pub fn record_name(deployment: &str) -> String {
    format!("{deployment}.kubectl-canary")
}

/// How many pods (not terminating) run each image, over every container of the pods that
/// match `selector` (`""`: every pod of the namespace).
pub async fn pods_by_image(
    client: &kube::Client,
    namespace: &str,
    selector: &str,
) -> BTreeMap<String, usize> {
    pods_by_image_at(client, namespace, selector).await.0
}

/// [`pods_by_image`] with the resourceVersion of the list it counted: pod events at or
/// before it are in the count, later ones are not (resourceVersions of one resource compare
/// as numbers since Kubernetes 1.35, KEP-5504).
pub async fn pods_by_image_at(
    client: &kube::Client,
    namespace: &str,
    selector: &str,
) -> (BTreeMap<String, usize>, u64) {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = if selector.is_empty() {
        ListParams::default()
    } else {
        ListParams::default().labels(selector)
    };
    let list = api.list(&params).await.expect("list pods");
    let at = list
        .metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .expect("a list's resourceVersion is a number");
    let mut counts = BTreeMap::new();
    for pod in list.items {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        for container in pod.spec.map(|s| s.containers).unwrap_or_default() {
            *counts
                .entry(container.image.unwrap_or_default())
                .or_default() += 1;
        }
    }
    (counts, at)
}

/// The canary record of deploy/`deployment`, parsed; `None` when there is none (or its
/// `record.json` is not JSON).
pub async fn record_json(
    client: &kube::Client,
    namespace: &str,
    deployment: &str,
) -> Option<Value> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let cm = api
        .get_opt(&record_name(deployment))
        .await
        .expect("read the record")?;
    serde_json::from_str(cm.data?.get("record.json")?).ok()
}

/// Replaces the record's `record.json` with `edit` applied to it, as someone who may write
/// ConfigMaps would (no seal, no precondition but the resourceVersion read). Like `kubectl
/// edit`, the writer reads again and re-applies the edit when the record changed under it (the
/// controller may be writing its phase at the same moment): the edit always lands.
pub async fn edit_record(
    client: &kube::Client,
    namespace: &str,
    deployment: &str,
    edit: impl Fn(&mut Value),
) {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let name = record_name(deployment);
    for _attempt in 0..10 {
        let mut cm = api.get(&name).await.expect("the record");
        let data = cm.data.get_or_insert_with(Default::default);
        let mut record: Value = data
            .get("record.json")
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or(Value::Null);
        edit(&mut record);
        let text = match record {
            Value::String(raw) => raw,
            other => other.to_string(),
        };
        data.insert("record.json".into(), text);
        match api.replace(&name, &PostParams::default(), &cm).await {
            Ok(_) => return,
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(e) => panic!("replace the record: {e}"),
        }
    }
    panic!("replace the record: 10 conflicts in a row");
}

/// The record edit of a ConfigMap writer trying to get a privileged container of their
/// choice written back as "the stable version".
pub fn privileged_original_template(record: &mut Value) {
    record["originalTemplate"]["spec"]["containers"][0]["image"] = json!("evil:1");
    record["originalTemplate"]["spec"]["containers"][0]["securityContext"] =
        json!({"privileged": true});
}

/// Service `name` selecting `app=web` on port 80, with `metadata` merged into its own
/// (labels, annotations).
pub fn web_service(name: &str, metadata: Value) -> Service {
    let mut service = json!({
        "metadata": {"name": name},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 80}]},
    });
    if let (Some(into), Value::Object(extra)) = (service["metadata"].as_object_mut(), metadata) {
        into.extend(extra);
    }
    serde_json::from_value(service).expect("a valid Service")
}

/// Creates [`web_service`] in `namespace`.
pub async fn create_service(client: &kube::Client, namespace: &str, name: &str, metadata: Value) {
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    api.create(&PostParams::default(), &web_service(name, metadata))
        .await
        .unwrap_or_else(|e| panic!("cannot create svc/{name}: {e}"));
}

/// The writers the test environment itself runs, as `managedFields` names them: its
/// kube-controller-manager and kube-scheduler run inside the `testenv` binary, its kubelets
/// are `testenv-podsim`; the real binaries' names are there for other clusters.
pub const ENVIRONMENT_MANAGERS: &[&str] = &[
    "testenv",
    "testenv-podsim",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
];

/// One object as [`NamespaceVersions`] saw it: its resourceVersion and its `managedFields`
/// entries (manager, operation, subresource, time, fields), which say who wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    /// `metadata.resourceVersion`.
    pub resource_version: String,
    /// Each `managedFields` entry: its manager, and the rest of it (operation,
    /// subresource, time, fields) as one string.
    pub entries: BTreeSet<(String, String)>,
}

impl ObjectVersion {
    /// The managers of the entries in `self` that `before` did not have.
    fn new_managers(&self, before: Option<&ObjectVersion>) -> BTreeSet<String> {
        self.entries
            .iter()
            .filter(|entry| before.is_none_or(|b| !b.entries.contains(*entry)))
            .map(|(manager, _)| manager.clone())
            .collect()
    }
}

/// Every object of a namespace with its resourceVersion and writers, keyed
/// `group/kind/name`: a command that changes nothing leaves every object as it was (Events,
/// Services, the history ConfigMap and the record included, not only the Deployment), except
/// for what the environment's own controllers write meanwhile (an HPA's status, their
/// Events), which [`NamespaceVersions::changes`] tells apart by `managedFields`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceVersions(pub BTreeMap<String, ObjectVersion>);

impl NamespaceVersions {
    /// Reads every listable namespaced kind the API server serves (found by discovery), so a
    /// kind the tool might write to is never left out by a hand-kept list.
    pub async fn read(client: &kube::Client, namespace: &str) -> Self {
        use kube::api::DynamicObject;
        use kube::discovery::{Discovery, Scope, verbs};
        let discovery = Discovery::new(client.clone())
            .run()
            .await
            .expect("API discovery");
        let mut versions = BTreeMap::new();
        for group in discovery.groups() {
            for (resource, capabilities) in group.recommended_resources() {
                if capabilities.scope != Scope::Namespaced
                    || !capabilities.supports_operation(verbs::LIST)
                {
                    continue;
                }
                let api: Api<DynamicObject> =
                    Api::namespaced_with(client.clone(), namespace, &resource);
                let list = api
                    .list(&ListParams::default())
                    .await
                    .unwrap_or_else(|e| panic!("listing {} in {namespace}: {e}", resource.plural));
                for object in list.items {
                    let key = format!(
                        "{}/{}/{}",
                        resource.group,
                        resource.kind,
                        object.metadata.name.clone().unwrap_or_default()
                    );
                    let entries = object
                        .metadata
                        .managed_fields
                        .iter()
                        .flatten()
                        .map(|entry| {
                            let rest = format!(
                                "{:?} {:?} {:?} {:?}",
                                entry.operation, entry.subresource, entry.time, entry.fields_v1
                            );
                            (entry.manager.clone().unwrap_or_default(), rest)
                        })
                        .collect();
                    let version = ObjectVersion {
                        resource_version: object.metadata.resource_version.unwrap_or_default(),
                        entries,
                    };
                    versions.insert(key, version);
                }
            }
        }
        Self(versions)
    }

    /// What changed from `self` to `after`: objects created, deleted or written, except a
    /// write or creation whose new `managedFields` entries all belong to the environment's
    /// own controllers ([`ENVIRONMENT_MANAGERS`]). A write with no new entry (the same
    /// manager writing the same fields within the same second) is counted, whoever made it.
    pub fn changes(&self, after: &Self) -> Vec<String> {
        let by_environment = |managers: &BTreeSet<String>| {
            !managers.is_empty()
                && managers
                    .iter()
                    .all(|m| ENVIRONMENT_MANAGERS.contains(&m.as_str()))
        };
        let mut changes = Vec::new();
        for (key, version) in &self.0 {
            match after.0.get(key) {
                None => changes.push(format!("deleted {key}")),
                Some(now) if now.resource_version != version.resource_version => {
                    let managers = now.new_managers(Some(version));
                    if !by_environment(&managers) {
                        changes.push(format!(
                            "written {key} ({} -> {}, by {managers:?})",
                            version.resource_version, now.resource_version
                        ))
                    }
                }
                Some(_) => {}
            }
        }
        for (key, now) in after.0.iter().filter(|(k, _)| !self.0.contains_key(*k)) {
            let managers = now.new_managers(None);
            if !by_environment(&managers) {
                changes.push(format!("created {key} (by {managers:?})"));
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(version: &str, entries: &[&str]) -> ObjectVersion {
        ObjectVersion {
            resource_version: version.into(),
            entries: entries
                .iter()
                .map(|e| {
                    let (manager, rest) = e.split_once('|').unwrap();
                    (manager.to_string(), rest.to_string())
                })
                .collect(),
        }
    }

    fn namespace(objects: &[(&str, ObjectVersion)]) -> NamespaceVersions {
        NamespaceVersions(
            objects
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn only_writes_of_the_environments_controllers_are_told_apart() {
        let hpa_before = object("10", &["testenv|Update|status|t1|f"]);
        let before = namespace(&[("autoscaling/HPA/web", hpa_before.clone())]);
        // (after, changes counted)
        let cases: &[(NamespaceVersions, usize)] = &[
            // The HPA controller updated its status; it created an Event.
            (
                namespace(&[
                    (
                        "autoscaling/HPA/web",
                        object("11", &["testenv|Update|status|t2|f"]),
                    ),
                    ("/Event/web.1", object("12", &["testenv|Update||t2|f"])),
                ]),
                0,
            ),
            // The tool (any other manager) wrote the HPA, or created an Event.
            (
                namespace(&[(
                    "autoscaling/HPA/web",
                    object(
                        "11",
                        &["testenv|Update|status|t1|f", "unknown|Update||t2|g"],
                    ),
                )]),
                1,
            ),
            (
                namespace(&[
                    ("autoscaling/HPA/web", hpa_before.clone()),
                    ("/Event/web.1", object("12", &["unknown|Update||t2|f"])),
                ]),
                1,
            ),
            // A new resourceVersion with no new entry is counted; so is a deletion.
            (
                namespace(&[(
                    "autoscaling/HPA/web",
                    object("11", &["testenv|Update|status|t1|f"]),
                )]),
                1,
            ),
            (namespace(&[]), 1),
        ];
        for (after, counted) in cases {
            assert_eq!(before.changes(after).len(), *counted, "{after:?}");
        }
    }
}
