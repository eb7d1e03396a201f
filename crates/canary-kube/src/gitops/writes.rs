//! The controller's writes, through the one writer ([`crate::write`]) as the controller's
//! field manager. Each is one update guarded by the resourceVersion it decided on; a
//! conflict is not an error, the next reconcile decides again.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::{Api, ResourceExt};

use canary_core::gitops::brake::STATE_ANNOTATIONS;
use canary_core::machine::SpecChange;

use crate::error::Result;
use crate::write::{CONTROLLER, changed};
pub use crate::write::{CONTROLLER_FIELD_MANAGER as FIELD_MANAGER, Written};

/// Updates `deployment` (as read) with `change`, and when `release` also removes the
/// brake's annotations in the same write, so the admission policy stops holding the
/// settings exactly when they are put back (and the approval of a gate the canary passed:
/// the canary is over). [`Written::Stored`] carries the stored resourceVersion.
pub async fn update_deployment(
    api: &Api<Deployment>,
    deployment: &Deployment,
    change: &SpecChange,
    release: bool,
) -> Result<Written> {
    let mut updated = changed(deployment, change)?;
    if release {
        let annotations = updated.annotations_mut();
        for key in STATE_ANNOTATIONS {
            annotations.remove(key);
        }
        annotations.remove(canary_core::gate::APPROVE_ANNOTATION);
    }
    Ok(match CONTROLLER.replace_deployment(api, &updated).await? {
        Written::Stored(stored) => Written::Stored(stored.resource_version().unwrap_or_default()),
        Written::Conflict => Written::Conflict,
    })
}

/// Scales a ReplicaSet to 0 through its scale subresource, if it still has the UID it was
/// read with (a recreated namesake is left alone).
pub async fn scale_replica_set_to_zero(
    api: &Api<ReplicaSet>,
    replica_set: &ReplicaSet,
) -> Result<Written<()>> {
    scale_replica_set(api, replica_set, 0).await
}

/// Scales a ReplicaSet to `replicas` through its scale subresource, if it is unchanged since
/// it was read (a recreated namesake, or one someone scaled meanwhile, is left alone:
/// [`Written::Conflict`], decide again).
pub async fn scale_replica_set(
    api: &Api<ReplicaSet>,
    replica_set: &ReplicaSet,
    replicas: i32,
) -> Result<Written<()>> {
    CONTROLLER
        .resize_replica_set(api, replica_set, replicas)
        .await
}

#[cfg(test)]
mod tests {
    //! The controller's writes checked without a cluster: method, path, query and body.

    use canary_core::gitops::brake::{BRAKE_ANNOTATION, STABLE_IMAGES_ANNOTATION};
    use canary_core::record::RolloutSettings;
    use http::{Method, Request, Response, StatusCode};
    use kube::client::Body;
    use serde_json::{Value, json};

    use super::*;

    fn deployment() -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "resourceVersion": "41",
                "annotations": {BRAKE_ANNOTATION: "on", STABLE_IMAGES_ANNOTATION: "nginx=nginx:1.14",
                                "kubectl-canary.io/canary-pods": "1"}},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "nginx", "image": "nginx:1.15"}]}},
                     "paused": true, "minReadySeconds": 1000000000}
        }))
        .unwrap()
    }

    async fn body_json(request: Request<Body>) -> Value {
        let bytes = request.into_body().collect_bytes().await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    /// Releasing: one PUT guarded by the resourceVersion read, as the controller's field
    /// manager, with the Deployment's own settings and none of the brake's annotations (the
    /// policy's own annotations are left).
    #[tokio::test]
    async fn a_release_puts_settings_back_and_removes_the_brakes_annotations_in_one_write() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let api: Api<Deployment> = Api::namespaced(kube::Client::new(service, "ns"), "ns");
        let settings = RolloutSettings {
            strategy: json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
            min_ready_seconds: None,
            progress_deadline_seconds: Some(600),
            paused: None,
        };
        let change = SpecChange {
            template: None,
            settings,
            summary: "release".into(),
        };
        let server = tokio::spawn(async move {
            let (request, send) = handle.next_request().await.expect("PUT");
            assert_eq!(request.method(), Method::PUT);
            assert_eq!(
                request.uri().path(),
                "/apis/apps/v1/namespaces/ns/deployments/web"
            );
            assert!(
                request
                    .uri()
                    .query()
                    .unwrap_or_default()
                    .contains("fieldManager=kubectl-canary-controller"),
                "{:?}",
                request.uri()
            );
            let body = body_json(request).await;
            assert_eq!(body["metadata"]["resourceVersion"], "41");
            assert_eq!(
                body["metadata"]["annotations"],
                json!({"kubectl-canary.io/canary-pods": "1"})
            );
            assert_eq!(body["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
            assert!(body["spec"].get("minReadySeconds").is_none());
            assert!(body["spec"].get("paused").is_none());
            assert_eq!(body["spec"]["progressDeadlineSeconds"], 600);
            let mut stored = body.clone();
            stored["metadata"]["resourceVersion"] = json!("42");
            send.send_response(
                Response::builder()
                    .status(StatusCode::OK)
                    .body(Body::from(serde_json::to_vec(&stored).unwrap()))
                    .unwrap(),
            );
        });
        let written = update_deployment(&api, &deployment(), &change, true)
            .await
            .unwrap();
        assert_eq!(written, Written::Stored("42".into()));
        server.await.unwrap();
    }

    /// A conflict is not an error: the next reconcile decides again.
    #[tokio::test]
    async fn a_conflict_is_reported_as_such() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let api: Api<Deployment> = Api::namespaced(kube::Client::new(service, "ns"), "ns");
        let change = SpecChange {
            template: None,
            settings: RolloutSettings::braked(
                canary_core::rollout_math::CanaryMode::Surge,
                1,
                true,
            ),
            summary: "pause".into(),
        };
        let server = tokio::spawn(async move {
            let (_, send) = handle.next_request().await.expect("PUT");
            let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "reason": "Conflict", "code": 409, "message": "the object has been modified"});
            send.send_response(
                Response::builder()
                    .status(StatusCode::CONFLICT)
                    .body(Body::from(serde_json::to_vec(&status).unwrap()))
                    .unwrap(),
            );
        });
        let written = update_deployment(&api, &deployment(), &change, false)
            .await
            .unwrap();
        assert_eq!(written, Written::Conflict);
        server.await.unwrap();
    }
}
