//! What the tests read from and put into a test's namespace besides the Deployment: its
//! pods by image, the canary record, a Service in front of `web`.

use std::collections::BTreeMap;

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
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = if selector.is_empty() {
        ListParams::default()
    } else {
        ListParams::default().labels(selector)
    };
    let mut counts = BTreeMap::new();
    for pod in api.list(&params).await.expect("list pods").items {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        for container in pod.spec.map(|s| s.containers).unwrap_or_default() {
            *counts
                .entry(container.image.unwrap_or_default())
                .or_default() += 1;
        }
    }
    counts
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
/// ConfigMaps would (no seal, no precondition but the resourceVersion read).
pub async fn edit_record(
    client: &kube::Client,
    namespace: &str,
    deployment: &str,
    edit: impl FnOnce(&mut Value),
) {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let name = record_name(deployment);
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
    api.replace(&name, &PostParams::default(), &cm)
        .await
        .expect("replace the record");
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

/// Every object of a namespace with its resourceVersion, keyed `group/kind/name`: a command
/// that changes nothing leaves this map exactly as it was (Events, Services, the history
/// ConfigMap and the record included, not only the Deployment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceVersions(pub BTreeMap<String, String>);

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
                    versions.insert(
                        key,
                        object.metadata.resource_version.clone().unwrap_or_default(),
                    );
                }
            }
        }
        Self(versions)
    }

    /// What changed from `self` to `after`: objects created, deleted or written.
    pub fn changes(&self, after: &Self) -> Vec<String> {
        let mut changes = Vec::new();
        for (key, version) in &self.0 {
            match after.0.get(key) {
                None => changes.push(format!("deleted {key}")),
                Some(now) if now != version => {
                    changes.push(format!("written {key} ({version} -> {now})"))
                }
                Some(_) => {}
            }
        }
        for key in after.0.keys().filter(|k| !self.0.contains_key(*k)) {
            changes.push(format!("created {key}"));
        }
        changes
    }
}
