//! The engine's update paths as request sequences, without a cluster (tower-test, the way
//! kube-rs/controller-rs tests its reconciler): each request's method, path and body, and
//! what the engine makes of a 409, a 422 and a Deployment that was re-created.

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};

use canary_core::machine::{Goal, SpecChange};
use canary_core::record::{CanaryRecord, RolloutSettings};
use canary_core::rollout_math::CanaryMode;
use k8s_openapi::api::apps::v1::Deployment;

use super::*;
use crate::error::ErrorKind;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const DEPLOYMENT_PATH: &str = "/apis/apps/v1/namespaces/ns/deployments/web";

fn record() -> CanaryRecord {
    serde_json::from_value(json!({
        "schema": 1,
        "deployment": "web",
        "deploymentUid": "d-uid",
        "replicas": 3,
        "originalTemplate": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx:1.14"}]}},
        "originalSettings": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}, "progressDeadlineSeconds": 600},
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

/// deploy/web with `uid`, at `resource_version`, its template and settings as `change`
/// writes them, the controller caught up with generation 2.
fn deployment(uid: &str, resource_version: &str, change: &SpecChange) -> Value {
    let mut deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "ns", "uid": uid, "resourceVersion": resource_version, "generation": 2},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx:1.14"}]}}
        },
        "status": {"observedGeneration": 2, "replicas": 4, "updatedReplicas": 1, "availableReplicas": 3}
    }))
    .unwrap();
    apply_change(&mut deployment, change).unwrap();
    serde_json::to_value(deployment).unwrap()
}

/// The held canary: the canary template, braked and paused at 1 pod.
fn held(record: &CanaryRecord) -> SpecChange {
    SpecChange {
        template: Some(record.target_template()),
        settings: RolloutSettings::braked(CanaryMode::Surge, 1, true),
        summary: "held".into(),
    }
}

/// Rolled back: the original template and settings.
fn rolled_back(record: &CanaryRecord) -> SpecChange {
    SpecChange {
        template: Some(record.original_template.clone()),
        settings: record.original_settings.clone(),
        summary: "rolled back".into(),
    }
}

fn respond(status: StatusCode, body: Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap()
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code, "message": message})
}

async fn body_json(request: Request<Body>) -> Value {
    let bytes = request.into_body().collect_bytes().await.unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn engine() -> (Engine, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "ns");
    (Engine::new(&client, "ns", "web"), handle)
}

/// Answers one read of the view: the Deployment, then its (empty) ReplicaSet and pod lists.
async fn serve_view(handle: &mut Handle, deployment: Value) {
    let (request, send) = handle.next_request().await.expect("GET deployment");
    assert_eq!(request.method(), Method::GET);
    assert_eq!(request.uri().path(), DEPLOYMENT_PATH);
    send.send_response(respond(StatusCode::OK, deployment));
    for (path, kind) in [
        ("/apis/apps/v1/namespaces/ns/replicasets", "ReplicaSetList"),
        ("/api/v1/namespaces/ns/pods", "PodList"),
    ] {
        let (request, send) = handle.next_request().await.expect("LIST");
        assert_eq!(request.method(), Method::GET);
        assert_eq!(request.uri().path(), path);
        assert_eq!(request.uri().query(), Some("&labelSelector=app%3Dweb"));
        send.send_response(respond(
            StatusCode::OK,
            json!({"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": []}),
        ));
    }
}

/// The record with an abort in progress.
fn aborting(record: CanaryRecord) -> CanaryRecord {
    CanaryRecord {
        phase: canary_core::record::Phase::Aborting,
        ..record
    }
}

/// The record as stored, at resourceVersion 7.
fn stored(record: &CanaryRecord) -> StoredRecord {
    StoredRecord {
        record: record.clone(),
        resource_version: "7".into(),
        uid: "cm-uid".into(),
        owner_references: vec![],
    }
}

/// Answers one read of the record (before every decision, the engine checks it is still
/// the one it works from).
async fn serve_record(handle: &mut Handle, record: &CanaryRecord) {
    let (request, send) = handle.next_request().await.expect("GET record");
    assert_eq!(request.method(), Method::GET);
    assert_eq!(
        request.uri().path(),
        "/api/v1/namespaces/ns/configmaps/web.kubectl-canary"
    );
    send.send_response(respond(
        StatusCode::OK,
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "web.kubectl-canary", "namespace": "ns", "uid": "cm-uid", "resourceVersion": "7"},
            "data": {"record.json": serde_json::to_string(record).unwrap()}
        }),
    ));
}

/// One turn of the no-wait update loop before its update: the foreign-change check (the
/// view and the record), then the view it decides on.
async fn serve_turn(handle: &mut Handle, record: &CanaryRecord, deployment: Value) {
    serve_view(handle, deployment.clone()).await;
    serve_record(handle, record).await;
    serve_view(handle, deployment).await;
}

fn quiet() -> impl FnMut(&Progress) + Send {
    |_: &Progress| {}
}

/// Someone else wrote between our read and our update: the 409 is not an error, the engine
/// reads again, decides again and updates with the new resourceVersion.
#[tokio::test]
async fn a_conflict_is_read_again_and_retried_with_the_new_resource_version() {
    let (engine, mut handle) = engine();
    // An abort in progress: its phase is recorded before it writes the Deployment.
    let record = aborting(record());
    let server = {
        let record = record.clone();
        tokio::spawn(async move {
            serve_turn(
                &mut handle,
                &record,
                deployment("d-uid", "10", &held(&record)),
            )
            .await;
            let (request, send) = handle.next_request().await.expect("PUT");
            assert_eq!(request.method(), Method::PUT);
            assert_eq!(request.uri().path(), DEPLOYMENT_PATH);
            let body = body_json(request).await;
            assert_eq!(body["metadata"]["resourceVersion"], "10");
            send.send_response(respond(
                StatusCode::CONFLICT,
                status(409, "Conflict", "the object has been modified"),
            ));
            serve_turn(
                &mut handle,
                &record,
                deployment("d-uid", "11", &held(&record)),
            )
            .await;
            let (request, send) = handle.next_request().await.expect("PUT again");
            assert_eq!(request.method(), Method::PUT);
            let body = body_json(request).await;
            assert_eq!(
                body["metadata"]["resourceVersion"], "11",
                "the retry is guarded by the version read after the conflict"
            );
            assert_eq!(
                body["spec"]["template"]["spec"]["containers"][0]["image"],
                "nginx:1.14"
            );
            assert_eq!(body["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
            let mut updated = deployment("d-uid", "12", &rolled_back(&record));
            updated["metadata"]["generation"] = json!(3);
            send.send_response(respond(StatusCode::OK, updated.clone()));
            // Read once more: rolled back, the controller still to observe it, so wait.
            serve_turn(&mut handle, &record, updated).await;
        })
    };
    let mut progress = quiet();
    engine
        .apply_until_waiting(
            &mut stored(&record),
            Goal::Abort,
            Duration::from_secs(30),
            &mut progress,
        )
        .await
        .expect("a conflict is retried, not reported");
    server.await.unwrap();
}

/// The API server rejects the update as invalid: reported as a refusal with the server's
/// words, and not retried.
#[tokio::test]
async fn an_invalid_update_is_refused_and_not_retried() {
    let (engine, mut handle) = engine();
    // An abort in progress: its phase is recorded before it writes the Deployment.
    let record = aborting(record());
    let server = {
        let record = record.clone();
        tokio::spawn(async move {
            serve_turn(
                &mut handle,
                &record,
                deployment("d-uid", "10", &held(&record)),
            )
            .await;
            let (request, send) = handle.next_request().await.expect("PUT");
            assert_eq!(request.method(), Method::PUT);
            send.send_response(respond(
                StatusCode::UNPROCESSABLE_ENTITY,
                status(
                    422,
                    "Invalid",
                    "Deployment.apps \"web\" is invalid: spec.strategy.rollingUpdate.maxSurge: Invalid value",
                ),
            ));
            handle
        })
    };
    let mut progress = quiet();
    let error = engine
        .apply_until_waiting(
            &mut stored(&record),
            Goal::Abort,
            Duration::from_secs(30),
            &mut progress,
        )
        .await
        .unwrap_err();
    drop(engine);
    let mut handle = server.await.unwrap();
    assert_eq!(error.kind(), ErrorKind::Refused, "{error}");
    let message = error.to_string();
    assert!(
        message.contains("the API server refused the update of deploy/web"),
        "{message}"
    );
    assert!(message.contains("maxSurge: Invalid value"), "{message}");
    assert!(
        handle.next_request().await.is_none(),
        "nothing is sent after a 422"
    );
}

/// The Deployment was deleted and re-created under the same name (another UID): the record
/// is not applied to it; the error says how to clear the record, and nothing is written.
#[tokio::test]
async fn a_recreated_deployment_is_not_touched() {
    let (engine, mut handle) = engine();
    let record = record();
    let stored = StoredRecord {
        record: record.clone(),
        resource_version: "7".into(),
        uid: "cm-uid".into(),
        owner_references: vec![],
    };
    let server = {
        let record = record.clone();
        tokio::spawn(async move {
            let (request, send) = handle.next_request().await.expect("GET deployment");
            assert_eq!(request.method(), Method::GET);
            assert_eq!(request.uri().path(), DEPLOYMENT_PATH);
            let recreated = deployment("another-uid", "3", &held(&record));
            send.send_response(respond(StatusCode::OK, recreated.clone()));
            // Its ReplicaSets and pods, for the foreign-change check ...
            for (path, kind) in [
                ("/apis/apps/v1/namespaces/ns/replicasets", "ReplicaSetList"),
                ("/api/v1/namespaces/ns/pods", "PodList"),
            ] {
                let (request, send) = handle.next_request().await.expect("LIST");
                assert_eq!(request.uri().path(), path);
                send.send_response(respond(
                    StatusCode::OK,
                    json!({"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": []}),
                ));
            }
            // ... then, stepping aside, one fresh look at both, and one at the Deployment.
            serve_view(&mut handle, recreated.clone()).await;
            serve_record(&mut handle, &record).await;
            serve_view(&mut handle, recreated).await;
            handle
        })
    };
    let mut progress = quiet();
    let error = engine
        .continue_to(
            stored,
            Goal::Abort,
            true,
            DriveOptions {
                timeout: Duration::from_secs(5),
                progress: &mut progress,
            },
        )
        .await
        .unwrap_err();
    drop(engine);
    let mut handle = server.await.unwrap();
    assert_eq!(error.kind(), ErrorKind::Recreated, "{error}");
    let message = error.to_string();
    assert!(
        message.contains("was deleted and created again during the canary"),
        "{message}"
    );
    assert!(
        message.contains("kubectl delete configmap web.kubectl-canary"),
        "{message}"
    );
    assert!(
        handle.next_request().await.is_none(),
        "neither the Deployment nor the record is written"
    );
}

/// The update that puts the brake on carries the seal of the record it comes from, in the
/// same request: the original settings, the stable ReplicaSet, the target images, the goal
/// and the record's digest. A record is never trusted without it.
#[tokio::test]
async fn the_brake_is_written_with_the_seal_in_one_update() {
    let (engine, mut handle) = engine();
    let mut record = record();
    record.phase = canary_core::record::Phase::Starting { pods: 1 };
    let server = {
        let record = record.clone();
        tokio::spawn(async move {
            serve_view(
                &mut handle,
                deployment("d-uid", "10", &rolled_back(&record)),
            )
            .await;
            let (request, send) = handle.next_request().await.expect("PUT");
            assert_eq!(request.method(), Method::PUT);
            let body = body_json(request).await;
            assert_eq!(
                body["spec"]["minReadySeconds"],
                canary_core::record::BRAKE_MIN_READY_SECONDS
            );
            let seal = canary_core::seal::Seal::parse(
                body["metadata"]["annotations"][canary_core::seal::SEAL_ANNOTATION]
                    .as_str()
                    .expect("the seal is in the same update as the brake"),
            )
            .unwrap();
            assert_eq!(
                seal,
                canary_core::seal::Seal::for_record(&record, Goal::Hold { pods: 1 })
            );
            assert_eq!(seal.original_settings, record.original_settings);
            assert_eq!(
                seal.record_digest,
                canary_core::seal::record_digest(&record)
            );
            let mut updated: Deployment = serde_json::from_value(body).unwrap();
            updated.metadata.resource_version = Some("11".into());
            updated.metadata.generation = Some(3);
            let updated = serde_json::to_value(updated).unwrap();
            send.send_response(respond(StatusCode::OK, updated.clone()));
            // Read once more: the controller has not observed it yet, so wait.
            serve_view(&mut handle, updated).await;
        })
    };
    let mut progress = quiet();
    // A synthesized record: this scenario serves the update path only, not the foreign checks.
    let mut stored = crate::store::StoredRecord::synthesized(record.clone());
    engine
        .apply_until_waiting(
            &mut stored,
            Goal::Hold { pods: 1 },
            Duration::from_secs(30),
            &mut progress,
        )
        .await
        .expect("one update, then waiting");
    server.await.unwrap();
}

/// Promoted: the canary template with the original settings back.
fn promoted(record: &CanaryRecord) -> SpecChange {
    SpecChange {
        template: Some(record.target_template()),
        settings: record.original_settings.clone(),
        summary: "promoted".into(),
    }
}

/// The record is gone because whoever carried out the same promotion (the GitOps controller)
/// closed it; the first read of the Deployment came before its last writes. The no-wait loop
/// reads the Deployment again, finds the goal reached, and is done: the record is not
/// called lost.
#[tokio::test]
async fn a_record_closed_by_whoever_reached_the_goal_is_done_on_a_fresh_read() {
    let (engine, mut handle) = engine();
    let record = CanaryRecord {
        phase: canary_core::record::Phase::PromotingFull,
        ..record()
    };
    let server = {
        let record = record.clone();
        tokio::spawn(async move {
            // The foreign-change check: a view still rolling out, then no record.
            serve_view(&mut handle, deployment("d-uid", "20", &promoted(&record))).await;
            let (request, send) = handle.next_request().await.expect("GET record");
            assert_eq!(
                request.uri().path(),
                "/api/v1/namespaces/ns/configmaps/web.kubectl-canary"
            );
            send.send_response(respond(
                StatusCode::NOT_FOUND,
                status(
                    404,
                    "NotFound",
                    "configmaps \"web.kubectl-canary\" not found",
                ),
            ));
            // The fresh read: every pod on the new version, the rollout complete.
            let mut done = deployment("d-uid", "21", &promoted(&record));
            done["status"] = json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3,
                                    "readyReplicas": 3, "availableReplicas": 3});
            serve_view(&mut handle, done).await;
        })
    };
    let mut progress = quiet();
    engine
        .apply_until_waiting(
            &mut stored(&record),
            Goal::PromoteFull,
            Duration::from_secs(30),
            &mut progress,
        )
        .await
        .expect("the goal is reached: done, not a lost record");
    server.await.unwrap();
}
