//! Every branch of the controller's reconcile without a cluster: the public `reconcile` runs
//! against a tower-test mock client answered by a small in-memory API (the Deployment, its
//! ReplicaSets and pods, ConfigMaps, Events), the way kube-rs/controller-rs tests its
//! reconciler. Each scenario is a row: the world before (the Deployment's template and brake,
//! the sides' sizes, the record's phase) and what the reconcile must have written. The
//! answers are the API server's in shape only (resourceVersion preconditions, 404, 409);
//! what the real controllers do is the integration tests' part (`tests/gitops.rs`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::apps::v1::Deployment;
use kube::client::Body;
use serde_json::{Value, json};

use canary_controller::metrics::Metrics;
use canary_controller::reconcile::{Context, reconcile};
use canary_core::gitops::brake::{
    BRAKE_ANNOTATION, ORIGINAL_MAX_SURGE_ANNOTATION, ORIGINAL_MAX_UNAVAILABLE_ANNOTATION,
    ORIGINAL_MIN_READY_ANNOTATION, ORIGINAL_PROGRESS_DEADLINE_ANNOTATION, STABLE_IMAGES_ANNOTATION,
};
use canary_core::gitops::situation::CONTROLLER_TOOL;
use canary_core::record::{Owner, RolloutSettings};
use canary_core::rollout_math::CanaryMode;

const V1: &str = "nginx:1.14";
const V2: &str = "nginx:1.15";
const V3: &str = "nginx:1.16";
const NS: &str = "ns";
const RECORD: &str = "web.kubectl-canary";

/// The pod template of `image`, as the Deployment holds it.
fn template(image: &str) -> Value {
    json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "nginx", "image": image}]}})
}

/// The hash label value of `image`'s ReplicaSet.
fn hash(image: &str) -> String {
    format!("h{}", image.replace(['.', ':'], ""))
}

/// What the cluster holds: a small API server over JSON objects.
#[derive(Default)]
struct World {
    deployment: Value,
    replica_sets: Vec<Value>,
    pods: Vec<Value>,
    config_maps: BTreeMap<String, Value>,
    /// (reason, note) of every Event published.
    events: Vec<(String, String)>,
    /// `METHOD path` of every write.
    writes: Vec<String>,
    /// Requests it had no answer for.
    unexpected: Vec<String>,
    resource_version: u64,
}

/// The sides of a scenario: `(image, revision, replicas, ready pods)`.
type Side = (&'static str, i64, i32, i32);

impl World {
    /// deploy/web at `replicas` with `image`'s template; braked by the policy (stable images
    /// [`V1`], the API's default settings kept in the annotations) when `braked`, `paused` as
    /// given; the controller caught up; `sides` its ReplicaSets and Ready pods.
    fn new(replicas: i32, image: &str, braked: bool, paused: bool, sides: &[Side]) -> Self {
        let mut annotations = BTreeMap::from([
            ("kubectl-canary.io/canary-pods".to_string(), "1".to_string()),
            ("kubectl-canary.io/interval".to_string(), "5s".to_string()),
        ]);
        let mut spec = json!({
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": template(image),
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "progressDeadlineSeconds": 600,
        });
        if braked {
            for (key, value) in [
                (BRAKE_ANNOTATION, "on"),
                (STABLE_IMAGES_ANNOTATION, "nginx=nginx:1.14"),
                (ORIGINAL_MAX_SURGE_ANNOTATION, "25%"),
                (ORIGINAL_MAX_UNAVAILABLE_ANNOTATION, "25%"),
                (ORIGINAL_MIN_READY_ANNOTATION, "0"),
                (ORIGINAL_PROGRESS_DEADLINE_ANNOTATION, "600"),
            ] {
                annotations.insert(key.into(), value.into());
            }
            let settings =
                serde_json::to_value(RolloutSettings::braked(CanaryMode::Surge, 1, paused))
                    .unwrap();
            for (key, value) in settings.as_object().unwrap() {
                spec[key] = value.clone();
            }
        } else if paused {
            spec["paused"] = json!(true);
        }
        let total: i32 = sides.iter().map(|s| s.2).sum();
        let ready: i32 = sides.iter().map(|s| s.3).sum();
        let updated = sides
            .iter()
            .filter(|s| s.0 == image)
            .map(|s| s.2)
            .sum::<i32>();
        let deployment = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": "web", "namespace": NS, "uid": "d-uid", "generation": 2,
                "labels": {"kubectl-canary.io/gitops": "enabled"},
                "annotations": annotations,
            },
            "spec": spec,
            "status": {"observedGeneration": 2, "replicas": total, "updatedReplicas": updated,
                       "readyReplicas": ready, "availableReplicas": ready},
        });
        let mut world = Self {
            deployment,
            ..Self::default()
        };
        for &(image, revision, replicas, ready) in sides {
            let hash = hash(image);
            let mut rs_template = template(image);
            rs_template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
            world.replica_sets.push(json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {
                    "name": format!("web-{hash}"), "namespace": NS, "uid": format!("rs-{hash}"),
                    "labels": {"app": "web", "pod-template-hash": hash},
                    "annotations": {"deployment.kubernetes.io/revision": revision.to_string()},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                         "uid": "d-uid", "controller": true}],
                    "resourceVersion": "1",
                },
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web", "pod-template-hash": hash}},
                         "template": rs_template},
                "status": {"replicas": replicas, "readyReplicas": ready, "availableReplicas": ready},
            }));
            for i in 0..replicas {
                let ready = if i < ready { "True" } else { "False" };
                world.pods.push(json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": format!("web-{hash}-{i}"), "namespace": NS,
                                 "uid": format!("pod-{hash}-{i}"),
                                 "labels": {"app": "web", "pod-template-hash": hash},
                                 "creationTimestamp": "2026-01-01T00:00:00Z"},
                    "spec": {"containers": [{"name": "nginx", "image": image}]},
                    "status": {"phase": "Running",
                               "conditions": [{"type": "Ready", "status": ready}],
                               "containerStatuses": [{"name": "nginx", "image": image, "imageID": "",
                                                      "ready": ready == "True", "restartCount": 0}]},
                }));
            }
        }
        world
    }

    /// With `record` stored as the canary record.
    fn with_record(mut self, record: &Value) -> Self {
        self.config_maps.insert(
            RECORD.into(),
            json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": RECORD, "namespace": NS, "resourceVersion": "1", "uid": "cm-uid",
                             "labels": {"kubectl-canary.io/deployment": "web"}},
                "data": {"record.json": record.to_string()},
            }),
        );
        self
    }

    fn next_version(&mut self) -> String {
        self.resource_version += 1;
        (100 + self.resource_version).to_string()
    }

    /// The record now, parsed.
    fn record(&self) -> Option<Value> {
        let text = self.config_maps.get(RECORD)?["data"]["record.json"].as_str()?;
        serde_json::from_str(text).ok()
    }

    fn reasons(&self) -> Vec<&str> {
        self.events.iter().map(|(r, _)| r.as_str()).collect()
    }

    fn replica_set(&self, image: &str) -> &Value {
        let name = format!("web-{}", hash(image));
        self.replica_sets
            .iter()
            .find(|rs| rs["metadata"]["name"] == name.as_str())
            .expect("the ReplicaSet")
    }

    /// The answer to one request.
    fn answer(&mut self, method: &Method, path: &str, query: &str, body: Value) -> (u16, Value) {
        let deployment = format!("/apis/apps/v1/namespaces/{NS}/deployments/web");
        let config_maps = format!("/api/v1/namespaces/{NS}/configmaps");
        let replica_sets = format!("/apis/apps/v1/namespaces/{NS}/replicasets");
        let pods = format!("/api/v1/namespaces/{NS}/pods");
        if *method != Method::GET {
            self.writes.push(format!("{method} {path}"));
        }
        match (method.as_str(), path) {
            ("GET", p) if p == deployment => {
                let mut d = self.deployment.clone();
                d["metadata"]["resourceVersion"] = json!(self.deployment_version());
                (200, d)
            }
            ("PUT", p) if p == deployment => {
                if body["metadata"]["resourceVersion"] != json!(self.deployment_version()) {
                    return (409, status(409, "Conflict", "the object has been modified"));
                }
                let mut stored = body;
                let version = self.next_version();
                stored["metadata"]["resourceVersion"] = json!(version);
                stored["status"] = self.deployment["status"].clone();
                self.deployment = stored.clone();
                (200, stored)
            }
            ("GET", p) if p == replica_sets => (200, list("ReplicaSetList", &self.replica_sets)),
            ("GET", p) if p == pods => (200, list("PodList", &self.pods)),
            ("PATCH", p) if p.starts_with(&replica_sets) && p.ends_with("/scale") => {
                let name = p
                    .trim_start_matches(&format!("{replica_sets}/"))
                    .trim_end_matches("/scale");
                let Some(rs) = self
                    .replica_sets
                    .iter_mut()
                    .find(|rs| rs["metadata"]["name"] == name)
                else {
                    return (404, status(404, "NotFound", name));
                };
                rs["spec"]["replicas"] = body["spec"]["replicas"].clone();
                let scale = json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
                                   "metadata": {"name": name, "namespace": NS},
                                   "spec": {"replicas": body["spec"]["replicas"]}});
                (200, scale)
            }
            ("GET", p) if p.starts_with(&format!("{config_maps}/")) => {
                let name = &p[config_maps.len() + 1..];
                match self.config_maps.get(name) {
                    Some(cm) => (200, cm.clone()),
                    None => (404, status(404, "NotFound", name)),
                }
            }
            ("POST", p) if p == config_maps => {
                let name = body["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if self.config_maps.contains_key(&name) {
                    return (409, status(409, "AlreadyExists", &name));
                }
                let mut stored = body;
                stored["metadata"]["resourceVersion"] = json!(self.next_version());
                stored["metadata"]["uid"] = json!(format!("cm-{name}"));
                self.config_maps.insert(name, stored.clone());
                (201, stored)
            }
            ("PUT", p) if p.starts_with(&format!("{config_maps}/")) => {
                let name = p[config_maps.len() + 1..].to_string();
                let Some(current) = self.config_maps.get(&name) else {
                    return (404, status(404, "NotFound", &name));
                };
                if body["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"] {
                    return (409, status(409, "Conflict", "the object has been modified"));
                }
                let mut stored = body;
                stored["metadata"]["resourceVersion"] = json!(self.next_version());
                self.config_maps.insert(name, stored.clone());
                (200, stored)
            }
            ("DELETE", p) if p.starts_with(&format!("{config_maps}/")) => {
                let name = &p[config_maps.len() + 1..];
                match self.config_maps.remove(name) {
                    Some(_) => (200, status(200, "Success", name)),
                    None => (404, status(404, "NotFound", name)),
                }
            }
            ("POST", p) if p.ends_with("/events") => {
                let reason = body["reason"].as_str().unwrap_or_default().to_string();
                let note = body["note"].as_str().unwrap_or_default().to_string();
                self.events.push((reason, note));
                (201, body)
            }
            _ => {
                self.unexpected.push(format!("{method} {path}?{query}"));
                (500, status(500, "InternalError", "no answer in this test"))
            }
        }
    }

    /// The Deployment's resourceVersion (stored in its metadata once written).
    fn deployment_version(&self) -> String {
        self.deployment["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("1")
            .to_string()
    }
}

fn list(kind: &str, items: &[Value]) -> Value {
    json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "1"}, "items": items})
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Status", "status": if code < 300 { "Success" } else { "Failure" },
           "code": code, "reason": reason, "message": message, "metadata": {}})
}

/// Runs one reconcile of deploy/web against `world`; returns the world after it.
async fn reconcile_once(world: World) -> World {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, NS);
    let world = Arc::new(Mutex::new(world));
    let server = {
        let world = world.clone();
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let bytes = body.collect_bytes().await.unwrap_or_default();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let (code, answer) = world.lock().unwrap().answer(
                    &parts.method,
                    parts.uri.path(),
                    parts.uri.query().unwrap_or_default(),
                    body,
                );
                send.send_response(
                    Response::builder()
                        .status(StatusCode::from_u16(code).unwrap())
                        .header("content-type", "application/json")
                        .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                        .unwrap(),
                );
            }
        })
    };
    let ctx = Arc::new(Context::new(
        client,
        Arc::new(Metrics::new()),
        None,
        Owner {
            user: "system:serviceaccount:kubectl-canary-system:kubectl-canary-controller".into(),
            host: "test".into(),
            pid: 1,
            tool_version: format!("{CONTROLLER_TOOL}/test"),
        },
    ));
    let deployment: Deployment =
        serde_json::from_value(world.lock().unwrap().deployment.clone()).unwrap();
    let outcome = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        reconcile(Arc::new(deployment), ctx),
    )
    .await
    .expect("the reconcile finishes");
    server.abort();
    let world = std::mem::take(&mut *world.lock().unwrap());
    assert!(
        world.unexpected.is_empty(),
        "requests the test has no answer for: {:?}",
        world.unexpected
    );
    outcome.unwrap_or_else(|e| panic!("the reconcile failed: {e}; writes: {:?}", world.writes));
    world
}

/// The record the controller writes when it begins the canary of [`V2`] over 3 pods of
/// [`V1`] (the "start" row's outcome), with `phase` and its last history line `at`.
async fn record_in(phase: Value, at: &str) -> Value {
    let begun = reconcile_once(World::new(
        3,
        V2,
        true,
        false,
        &[(V1, 1, 3, 3), (V2, 2, 0, 0)],
    ))
    .await;
    let mut record = begun.record().expect("the start row records a canary");
    record["phase"] = phase;
    if let Some(last) = record["history"].as_array_mut().and_then(|h| h.last_mut()) {
        last["at"] = json!(at);
    }
    record
}

const LONG_AGO: &str = "2020-01-01T00:00:00Z";

#[tokio::test]
async fn start_a_braked_change_is_recorded_with_the_replaced_replica_set_as_stable() {
    let world = reconcile_once(World::new(
        3,
        V2,
        true,
        false,
        &[(V1, 1, 3, 3), (V2, 2, 0, 0)],
    ))
    .await;
    let record = world.record().expect("a record");
    assert_eq!(record["phase"], json!({"name": "starting", "pods": 1}));
    assert_eq!(record["stable"]["replicaSet"], format!("web-{}", hash(V1)));
    assert_eq!(record["stable"]["uid"], format!("rs-{}", hash(V1)));
    assert_eq!(record["originalImages"], json!({"nginx": V1}));
    assert_eq!(record["targetImages"], json!({"nginx": V2}));
    assert_eq!(record["deploymentUid"], "d-uid");
    assert_eq!(record["replicas"], 3);
    assert!(
        record["startedBy"]["toolVersion"]
            .as_str()
            .unwrap()
            .starts_with("kubectl-canary-controller/")
    );
    assert_eq!(world.reasons(), ["CanaryStarted"]);
    assert_eq!(world.writes.len(), 2, "{:?}", world.writes); // the record, the Event
}

#[tokio::test]
async fn lost_record_a_held_canary_without_its_record_is_recorded_again_from_the_cluster() {
    // Held at 1 canary pod (paused, braked), the record deleted.
    let world = reconcile_once(World::new(
        3,
        V2,
        true,
        true,
        &[(V1, 1, 3, 3), (V2, 2, 1, 1)],
    ))
    .await;
    let record = world.record().expect("the record again");
    assert_eq!(record["stable"]["replicaSet"], format!("web-{}", hash(V1)));
    assert_eq!(record["originalTemplate"], template(V1));
    assert_eq!(
        record["originalSettings"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
        "the Deployment's own settings, from the brake's annotations"
    );
    assert_eq!(world.reasons(), ["CanaryStarted"]);
}

#[tokio::test]
async fn hold_a_canary_at_its_size_is_recorded_as_held() {
    let record = record_in(json!({"name": "starting", "pods": 1}), LONG_AGO).await;
    let world = reconcile_once(
        World::new(3, V2, true, true, &[(V1, 1, 3, 3), (V2, 2, 1, 1)]).with_record(&record),
    )
    .await;
    assert_eq!(
        world.record().unwrap()["phase"],
        json!({"name": "holding", "pods": 1}),
        "writes: {:?}",
        world.writes
    );
    assert_eq!(world.reasons(), ["CanaryHeld"]);
    assert!(
        !world.writes.iter().any(|w| w.contains("deployments")),
        "nothing written to the Deployment: {:?}",
        world.writes
    );
}

#[tokio::test]
async fn start_to_hold_a_canary_not_yet_paused_is_paused_before_it_is_held() {
    let record = record_in(json!({"name": "starting", "pods": 1}), LONG_AGO).await;
    let world = reconcile_once(
        World::new(3, V2, true, false, &[(V1, 1, 3, 3), (V2, 2, 1, 1)]).with_record(&record),
    )
    .await;
    assert_eq!(
        world.deployment["spec"]["paused"], true,
        "{:?}",
        world.writes
    );
    assert_eq!(
        world.record().unwrap()["phase"],
        json!({"name": "starting", "pods": 1}),
        "held only once the pause is seen"
    );
}

#[tokio::test]
async fn step_a_held_canary_whose_interval_passed_is_promoted() {
    // No analysis configured: a pass after the interval.
    let record = record_in(json!({"name": "holding", "pods": 1}), LONG_AGO).await;
    let world = reconcile_once(
        World::new(3, V2, true, true, &[(V1, 1, 3, 3), (V2, 2, 1, 1)]).with_record(&record),
    )
    .await;
    assert_eq!(
        world.record().unwrap()["phase"]["name"],
        "promotingFull",
        "writes: {:?}",
        world.writes
    );
    assert_eq!(world.reasons(), ["CanaryAnalysisPassed"]);
}

#[tokio::test]
async fn step_a_held_canary_within_its_interval_is_left_held() {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let record = record_in(json!({"name": "holding", "pods": 1}), &now).await;
    let mut world = World::new(3, V2, true, true, &[(V1, 1, 3, 3), (V2, 2, 1, 1)]);
    world.deployment["metadata"]["annotations"]["kubectl-canary.io/interval"] = json!("1h");
    let world = reconcile_once(world.with_record(&record)).await;
    assert_eq!(world.record().unwrap(), record, "the record untouched");
    assert_eq!(world.writes, Vec::<String>::new());
}

#[tokio::test]
async fn fail_a_failed_canary_is_scaled_to_zero_and_rests_on_the_stable_pods() {
    let mut record = record_in(json!({"name": "aborting"}), LONG_AGO).await;
    record["history"]
        .as_array_mut()
        .unwrap()
        .push(json!({"at": LONG_AGO, "event": "analysis failed at 1 pod(s): pods restarted"}));
    let braked_paused = || World::new(3, V2, true, true, &[(V1, 1, 3, 3), (V2, 2, 1, 1)]);
    let world = reconcile_once(braked_paused().with_record(&record)).await;
    assert_eq!(
        world.replica_set(V2)["spec"]["replicas"],
        0,
        "the canary scaled to 0: {:?}",
        world.writes
    );
    assert_eq!(world.replica_set(V1)["spec"]["replicas"], 3);
    assert!(!world.writes.iter().any(|w| w.contains("deployments")));
    // Then, its pods gone: resting, said once.
    let world = reconcile_once(
        World::new(3, V2, true, true, &[(V1, 1, 3, 3), (V2, 2, 0, 0)]).with_record(&record),
    )
    .await;
    let rested = world.record().unwrap();
    assert_eq!(rested["phase"]["name"], "aborting");
    assert!(
        rested["history"].as_array().unwrap().last().unwrap()["event"]
            .as_str()
            .unwrap()
            .starts_with("release failed"),
        "{rested}"
    );
    assert_eq!(world.reasons(), ["CanaryRolledBack"]);
    assert_eq!(
        world.deployment["spec"]["template"],
        template(V2),
        "Git's template stays"
    );
}

#[tokio::test]
async fn revert_the_stable_template_back_releases_the_brake_in_one_write() {
    let record = record_in(json!({"name": "holding", "pods": 1}), LONG_AGO).await;
    let world = reconcile_once(
        World::new(3, V1, true, true, &[(V1, 1, 3, 3), (V2, 2, 1, 1)]).with_record(&record),
    )
    .await;
    let spec = &world.deployment["spec"];
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    );
    assert_eq!(spec["progressDeadlineSeconds"], 600);
    assert!(spec["minReadySeconds"].is_null(), "{spec}");
    assert_ne!(spec["paused"], true, "{spec}");
    let annotations = world.deployment["metadata"]["annotations"]
        .as_object()
        .unwrap();
    assert!(
        !annotations.contains_key(BRAKE_ANNOTATION)
            && !annotations.contains_key(STABLE_IMAGES_ANNOTATION),
        "{annotations:?}"
    );
    assert_eq!(spec["template"], template(V1));
    // Then, every pod stable again: the record is closed.
    let world = reconcile_once(
        World::new(3, V1, false, false, &[(V1, 1, 3, 3), (V2, 2, 0, 0)]).with_record(&record),
    )
    .await;
    assert!(world.record().is_none(), "{:?}", world.writes);
    assert_eq!(world.reasons(), ["CanaryReverted"]);
}

#[tokio::test]
async fn replace_a_new_commit_mid_canary_restarts_it_over_the_same_stable_side() {
    let record = record_in(json!({"name": "holding", "pods": 1}), LONG_AGO).await;
    let world = reconcile_once(
        World::new(
            3,
            V3,
            true,
            false,
            &[(V1, 1, 3, 3), (V2, 2, 1, 1), (V3, 3, 0, 0)],
        )
        .with_record(&record),
    )
    .await;
    let replaced = world.record().expect("the record stays");
    assert_eq!(replaced["targetImages"], json!({"nginx": V3}));
    assert_eq!(replaced["originalImages"], json!({"nginx": V1}));
    assert_eq!(replaced["stable"], record["stable"]);
    assert_eq!(replaced["phase"], json!({"name": "starting", "pods": 1}));
    assert_eq!(world.reasons(), ["CanaryReplaced"]);
}

#[tokio::test]
async fn rescale_a_replicas_change_while_held_is_followed_by_the_record() {
    let record = record_in(json!({"name": "holding", "pods": 1}), LONG_AGO).await;
    let world = reconcile_once(
        World::new(6, V2, true, true, &[(V1, 1, 3, 3), (V2, 2, 1, 1)]).with_record(&record),
    )
    .await;
    let followed = world.record().unwrap();
    assert_eq!(followed["replicas"], 6, "{:?}", world.writes);
    assert_eq!(
        followed["phase"],
        json!({"name": "holding", "pods": 1}),
        "a count stays a count"
    );
    assert_eq!(world.reasons(), ["CanaryFollowedReplicas"]);
}

#[tokio::test]
async fn a_record_whose_stable_template_was_changed_is_not_acted_on() {
    let mut record = record_in(json!({"name": "holding", "pods": 1}), LONG_AGO).await;
    canary_testkit::reads::privileged_original_template(&mut record);
    let world = reconcile_once(
        World::new(3, V2, true, true, &[(V1, 1, 3, 3), (V2, 2, 1, 1)]).with_record(&record),
    )
    .await;
    assert_eq!(world.reasons(), ["CanaryRecordChanged"]);
    assert_eq!(world.writes.len(), 1, "only the Event: {:?}", world.writes);
}

#[tokio::test]
async fn step_promoting_to_every_pod_puts_the_settings_back_and_drops_the_brake_in_one_write() {
    let record = record_in(json!({"name": "promotingFull"}), LONG_AGO).await;
    let world = reconcile_once(
        World::new(3, V2, true, true, &[(V1, 1, 3, 3), (V2, 2, 1, 1)]).with_record(&record),
    )
    .await;
    let deployments = world
        .writes
        .iter()
        .filter(|w| w.contains("deployments"))
        .count();
    assert_eq!(deployments, 1, "one write: {:?}", world.writes);
    let spec = &world.deployment["spec"];
    assert_eq!(spec["template"], template(V2), "Git's template stays");
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    );
    assert_eq!(spec["progressDeadlineSeconds"], 600);
    assert_ne!(spec["paused"], true, "{spec}");
    let annotations = &world.deployment["metadata"]["annotations"];
    assert!(
        annotations.get(BRAKE_ANNOTATION).is_none(),
        "the brake's annotations go in the same write: {annotations}"
    );
    assert_eq!(
        world.record().unwrap()["phase"]["name"],
        "promotingFull",
        "closed only once every pod runs the new version"
    );
}

#[tokio::test]
async fn step_promoted_to_every_pod_closes_the_record() {
    let record = record_in(json!({"name": "promotingFull"}), LONG_AGO).await;
    let world = reconcile_once(
        World::new(3, V2, false, false, &[(V1, 1, 0, 0), (V2, 2, 3, 3)]).with_record(&record),
    )
    .await;
    assert!(world.record().is_none(), "{:?}", world.writes);
    assert_eq!(world.reasons(), ["CanaryPromoted"]);
    assert!(
        !world.writes.iter().any(|w| w.contains("deployments")),
        "nothing written to the Deployment: {:?}",
        world.writes
    );
}

/// A held canary of 1 pod whose gate before 100% waits (since `since`), deploy/web gated
/// with `annotations` besides the policy's, and `approval` on the Deployment, if any.
async fn at_gate(annotations: &[(&str, &str)], since: &str, approval: Option<&str>) -> World {
    let mut record = record_in(json!({"name": "holding", "pods": 1}), LONG_AGO).await;
    let token = canary_core::gate::token(
        canary_core::gate::GatedStep::Full,
        "d-uid",
        record["startedAt"].as_str().unwrap(),
    );
    record["gate"] = json!({"before": "full", "since": since, "token": token});
    let mut world = World::new(3, V2, true, true, &[(V1, 1, 3, 3), (V2, 2, 1, 1)]);
    let deployment_annotations = &mut world.deployment["metadata"]["annotations"];
    deployment_annotations["kubectl-canary.io/approve-before"] = json!("full");
    for (key, value) in annotations {
        deployment_annotations[format!("kubectl-canary.io/{key}")] = json!(value);
    }
    if let Some(approval) = approval {
        let approval = if approval == "token" {
            token.as_str()
        } else {
            approval
        };
        deployment_annotations[canary_core::gate::APPROVE_ANNOTATION] = json!(approval);
    }
    world.with_record(&record)
}

#[tokio::test]
async fn gate_a_passing_step_the_policy_gates_waits_held_for_its_approval() {
    let record = record_in(json!({"name": "holding", "pods": 1}), LONG_AGO).await;
    let mut world = World::new(3, V2, true, true, &[(V1, 1, 3, 3), (V2, 2, 1, 1)]);
    world.deployment["metadata"]["annotations"]["kubectl-canary.io/approve-before"] = json!("full");
    let world = reconcile_once(world.with_record(&record)).await;
    let written = world.record().unwrap();
    assert_eq!(written["phase"], json!({"name": "holding", "pods": 1}));
    assert_eq!(written["gate"]["before"], "full", "{written}");
    assert_eq!(world.reasons(), ["CanaryAwaitingApproval"]);
    assert!(
        !world.writes.iter().any(|w| w.contains("deployments")),
        "nothing written to the Deployment: {:?}",
        world.writes
    );
}

/// Each state of a gate, a row: the policy's extra annotations, when the wait began, the
/// approval on the Deployment, and the phase, gate and Events after one reconcile.
#[tokio::test]
async fn gate_each_state_of_a_waiting_gate_leads_to_one_next_step() {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    type Row<'a> = (
        &'a str,
        &'a [(&'a str, &'a str)],
        &'a str,
        Option<&'a str>,
        &'a str,
        bool,
        &'a [&'a str],
    );
    let rows: &[Row] = &[
        ("waiting", &[], &now, None, "holding", true, &[]),
        (
            "another canary's approval",
            &[],
            &now,
            Some("full.0000"),
            "holding",
            true,
            &[],
        ),
        (
            "approved",
            &[],
            &now,
            Some("token"),
            "promotingFull",
            false,
            &["CanaryApproved"],
        ),
        (
            "timed out",
            &[("approval-timeout", "5s")],
            LONG_AGO,
            None,
            "aborting",
            false,
            &["CanaryApprovalTimedOut"],
        ),
        (
            "overdue, waiting on",
            &[("approval-timeout", "5s"), ("on-approval-timeout", "wait")],
            LONG_AGO,
            None,
            "holding",
            true,
            &["CanaryApprovalOverdue"],
        ),
    ];
    for (what, annotations, since, approval, phase, gated, reasons) in rows {
        let world = reconcile_once(at_gate(annotations, since, *approval).await).await;
        let record = world.record().unwrap();
        assert_eq!(
            record["phase"]["name"], *phase,
            "{what}: {:?}",
            world.writes
        );
        assert_eq!(record.get("gate").is_some(), *gated, "{what}: {record}");
        assert_eq!(world.reasons(), *reasons, "{what}");
    }
    // The owners dropping the gate in Git releases the step.
    let mut world = at_gate(&[], &now, None).await;
    world.deployment["metadata"]["annotations"]
        .as_object_mut()
        .unwrap()
        .remove("kubectl-canary.io/approve-before");
    let world = reconcile_once(world).await;
    assert_eq!(world.record().unwrap()["phase"]["name"], "promotingFull");
}

#[tokio::test]
async fn gate_a_token_forged_in_the_record_approves_nothing() {
    // A ConfigMap writer sets the record's token to what the Deployment carries: the
    // controller computes the token itself, so this approves nothing.
    let mut world = at_gate(&[], LONG_AGO, Some("full.forged")).await;
    let mut record = world.record().unwrap();
    record["gate"]["token"] = json!("full.forged");
    world = world.with_record(&record);
    let world = reconcile_once(world).await;
    assert_eq!(world.record().unwrap()["phase"]["name"], "holding");
    assert_eq!(world.reasons(), Vec::<&str>::new());
}
