//! What a pod of a Deployment requests, and how much room the cluster's nodes have left:
//! the inputs of the planner's capacity check (`canary_core::plan::check_capacity`).

use k8s_openapi::api::core::v1::{Container, Node, Pod, PodSpec, ResourceRequirements};
use kube::api::{ListParams, ObjectList};
use kube::{Api, Client};

use canary_core::plan::{
    ClusterCapacity, NodeCapacity, PlanError, Resources, parse_cpu_millis, parse_memory_bytes,
    parse_units,
};

use crate::error::{CanaryError, is_status};

/// The CPU and memory one container requests. A missing request with a limit set is the
/// limit, as the API server defaults it when the pod is created.
fn container_requests(resources: Option<&ResourceRequirements>) -> Result<Resources, PlanError> {
    let Some(resources) = resources else {
        return Ok(Resources::default());
    };
    let pick = |name: &str| {
        resources
            .requests
            .as_ref()
            .and_then(|r| r.get(name))
            .or_else(|| resources.limits.as_ref().and_then(|l| l.get(name)))
            .map(|q| q.0.clone())
    };
    Ok(Resources {
        cpu_millis: pick("cpu").map_or(Ok(0), |q| parse_cpu_millis(&q))?,
        memory_bytes: pick("memory").map_or(Ok(0), |q| parse_memory_bytes(&q))?,
    })
}

fn max_each(a: Resources, b: Resources) -> Resources {
    Resources {
        cpu_millis: a.cpu_millis.max(b.cpu_millis),
        memory_bytes: a.memory_bytes.max(b.memory_bytes),
    }
}

/// What the scheduler counts for one pod of `spec`: the sum over containers and sidecars
/// (init containers with `restartPolicy: Always`), or more if a plain init container (plus
/// the sidecars started before it) asks for more, plus the pod overhead.
pub fn pod_requests(spec: &PodSpec) -> Result<Resources, PlanError> {
    let requests_of = |c: &Container| container_requests(c.resources.as_ref());
    let mut sum = Resources::default();
    for container in &spec.containers {
        sum = sum.plus(requests_of(container)?);
    }
    let mut sidecars = Resources::default();
    let mut init_peak = Resources::default();
    for init in spec.init_containers.iter().flatten() {
        let requests = requests_of(init)?;
        if init.restart_policy.as_deref() == Some("Always") {
            sidecars = sidecars.plus(requests);
        } else {
            init_peak = max_each(init_peak, sidecars.plus(requests));
        }
    }
    let mut total = max_each(sum.plus(sidecars), init_peak);
    if let Some(overhead) = &spec.overhead {
        let get = |name: &str| overhead.get(name).map(|q| q.0.clone());
        total = total.plus(Resources {
            cpu_millis: get("cpu").map_or(Ok(0), |q| parse_cpu_millis(&q))?,
            memory_bytes: get("memory").map_or(Ok(0), |q| parse_memory_bytes(&q))?,
        });
    }
    Ok(total)
}

/// Free allocatable capacity of every schedulable, Ready node: allocatable minus what the
/// pods bound to it request. When RBAC forbids listing nodes or pods cluster-wide, the
/// result says so instead of failing the plan; other API errors are errors.
pub async fn cluster_capacity(client: &Client) -> Result<ClusterCapacity, CanaryError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node_list = match nodes.list(&ListParams::default()).await {
        Ok(list) => list,
        Err(e) if is_status(&e, 403) => {
            return Ok(ClusterCapacity::Unavailable {
                reason: "listing nodes is forbidden for this user (the capacity check needs `list nodes` and `list pods` cluster-wide)".to_owned(),
            });
        }
        Err(e) => return Err(CanaryError::api("list nodes", e)),
    };
    let pods: Api<Pod> = Api::all(client.clone());
    // Finished pods hold no resources on their node.
    let running = ListParams::default()
        .fields("status.phase!=Succeeded,status.phase!=Failed,spec.nodeName!=");
    let pod_list = match list_all_pages(&pods, running).await {
        Ok(list) => list,
        Err(e) if is_status(&e, 403) => {
            return Ok(ClusterCapacity::Unavailable {
                reason: "listing pods in all namespaces is forbidden for this user, so what the nodes already run is unknown".to_owned(),
            });
        }
        Err(e) => return Err(CanaryError::api("list pods in all namespaces", e)),
    };
    let mut capacities = Vec::new();
    for node in &node_list.items {
        let name = node.metadata.name.clone().unwrap_or_default();
        let spec = node.spec.clone().unwrap_or_default();
        let status = node.status.clone().unwrap_or_default();
        let ready = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        if spec.unschedulable == Some(true) || !ready {
            continue;
        }
        let allocatable = status.allocatable.unwrap_or_default();
        let get = |key: &str| allocatable.get(key).map(|q| q.0.clone());
        let invalid = |e: PlanError| CanaryError::Refused(format!("node {name}: {e}"));
        let mut capacity = NodeCapacity {
            name: name.clone(),
            allocatable: Resources {
                cpu_millis: get("cpu")
                    .map_or(Ok(0), |q| parse_cpu_millis(&q))
                    .map_err(invalid)?,
                memory_bytes: get("memory")
                    .map_or(Ok(0), |q| parse_memory_bytes(&q))
                    .map_err(invalid)?,
            },
            allocatable_pods: get("pods")
                .map_or(Ok(0), |q| parse_units(&q))
                .map_err(invalid)?,
            requested: Resources::default(),
            pods: 0,
        };
        for pod in pod_list
            .items
            .iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&name))
        {
            if let Some(spec) = &pod.spec {
                // A pod whose requests cannot be read still takes a slot.
                capacity.requested = capacity
                    .requested
                    .plus(pod_requests(spec).unwrap_or_default());
            }
            capacity.pods += 1;
        }
        capacities.push(capacity);
    }
    Ok(ClusterCapacity::Nodes { nodes: capacities })
}

/// Pods per page of the cluster-wide listing: a large cluster's pods are read in pages the
/// API server can answer quickly, not in one response of every pod.
pub const POD_PAGE_SIZE: u32 = 500;

/// Every pod the parameters select, page by page (`limit` and `continue`).
async fn list_all_pages(
    pods: &Api<Pod>,
    params: ListParams,
) -> Result<ObjectList<Pod>, kube::Error> {
    let mut params = params.limit(POD_PAGE_SIZE);
    let mut all = pods.list(&params).await?;
    while let Some(token) = all.metadata.continue_.clone().filter(|t| !t.is_empty()) {
        params = params.continue_token(&token);
        let page = pods.list(&params).await?;
        all.items.extend(page.items);
        all.metadata.continue_ = page.metadata.continue_;
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(value: serde_json::Value) -> PodSpec {
        serde_json::from_value(value).expect("valid PodSpec")
    }

    #[test]
    fn requests_sum_containers_and_take_limits_for_missing_requests() {
        let spec = spec(json!({"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "128Mi"}}},
            {"name": "b", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
            {"name": "c"},
        ]}));
        assert_eq!(
            pod_requests(&spec),
            Ok(Resources {
                cpu_millis: 1250,
                memory_bytes: (128 + 1024) << 20
            })
        );
    }

    #[test]
    fn init_containers_count_at_their_peak_and_sidecars_always() {
        let spec = spec(json!({
            "initContainers": [
                {"name": "sidecar", "restartPolicy": "Always", "resources": {"requests": {"cpu": "100m"}}},
                {"name": "migrate", "resources": {"requests": {"cpu": "2", "memory": "64Mi"}}},
            ],
            "containers": [{"name": "app", "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}}}],
            "overhead": {"cpu": "10m"},
        }));
        // CPU: max(500m + 100m sidecar, 100m sidecar + 2 init) = 2.1, + 10m overhead.
        // Memory: max(256Mi, 64Mi) = 256Mi.
        assert_eq!(
            pod_requests(&spec),
            Ok(Resources {
                cpu_millis: 2110,
                memory_bytes: 256 << 20
            })
        );
    }

    #[test]
    fn unreadable_quantities_are_errors() {
        let spec = spec(json!({"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "lots"}}},
        ]}));
        assert!(pod_requests(&spec).is_err());
    }

    #[tokio::test]
    async fn the_cluster_wide_pod_listing_is_read_page_by_page() {
        use http::{Request, Response};
        use kube::client::Body;
        let (mock, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(mock, "default");
        let pods: Api<Pod> = Api::all(client);
        let listing =
            tokio::spawn(async move { list_all_pages(&pods, ListParams::default()).await });
        let page = |names: &[&str], token: &str| {
            let items: Vec<serde_json::Value> = names
                .iter()
                .map(|n| serde_json::json!({"metadata": {"name": n}}))
                .collect();
            let body = serde_json::json!({
                "apiVersion": "v1", "kind": "PodList",
                "metadata": {"continue": token}, "items": items
            });
            Response::builder()
                .body(Body::from(serde_json::to_vec(&body).unwrap()))
                .unwrap()
        };
        let (first, send) = handle.next_request().await.unwrap();
        let query = first.uri().query().unwrap_or_default().to_string();
        assert!(query.contains("limit=500"), "{query}");
        assert!(!query.contains("continue="), "{query}");
        send.send_response(page(&["a", "b"], "next-page"));
        let (second, send) = handle.next_request().await.unwrap();
        let query = second.uri().query().unwrap_or_default().to_string();
        assert!(query.contains("continue=next-page"), "{query}");
        send.send_response(page(&["c"], ""));
        let all = listing.await.unwrap().unwrap();
        let names: Vec<_> = all
            .items
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
    }
}
