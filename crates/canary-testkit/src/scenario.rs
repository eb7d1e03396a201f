//! The starting points most scenarios share: a namespace with a settled `web`, the images
//! of the two sides, a scratch folder.

use std::path::PathBuf;

use serde_json::Value;

use crate::{TestEnv, TestNamespace, create_settled, spec_of, web_deployment};

/// The stable image every scenario starts from.
pub const STABLE: &str = "nginx:1.14";
/// The image most scenarios canary.
pub const CANARY: &str = "nginx:1.15";

/// A fresh namespace named after `prefix` with `web` settled at `replicas` pods of
/// [`STABLE`].
pub async fn web_namespace(env: &TestEnv, prefix: &str, replicas: i32) -> TestNamespace {
    let ns = TestNamespace::create(env, prefix).await;
    create_settled(
        env,
        &ns.name,
        &web_deployment("web", replicas, STABLE, None),
    )
    .await;
    ns
}

/// [`web_namespace`], and `web`'s spec as created (to compare the end with).
pub async fn web_namespace_with_spec(
    env: &TestEnv,
    prefix: &str,
    replicas: i32,
) -> (TestNamespace, Value) {
    let ns = web_namespace(env, prefix, replicas).await;
    let before = spec_of(env, &ns.name, "web").await;
    (ns, before)
}

/// The manifest "in Git" of `web` as [`web_deployment`] writes it, for GitOps stand-ins.
pub fn web_manifest(replicas: i32, image: &str) -> Value {
    serde_json::to_value(web_deployment("web", replicas, image, None)).expect("json")
}

/// A scratch folder of this test process: `$TMPDIR/kc-KIND-PID-NAME`, created if missing.
pub fn scratch(kind: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kc-{kind}-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// minReadySeconds and progressDeadlineSeconds-1 of the brake: no canary pod becomes
/// Available, so the controller stops at the surge.
pub const BRAKE_SECONDS: i32 = 1_000_000_000;

/// Holds a canary of `web` by hand, as `start` would (strategic merge, maxSurge 1 under the
/// brake): `template` is the canary's pod template patch (`{"spec": {"containers": ...}}`,
/// with any metadata).
pub async fn brake_canary_by_hand(client: &kube::Client, namespace: &str, template: Value) {
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::api::{Api, Patch, PatchParams};
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            // Strategic merge, as `start` does: containers are merged by name.
            &Patch::Strategic(serde_json::json!({"spec": {
                "minReadySeconds": BRAKE_SECONDS,
                "progressDeadlineSeconds": BRAKE_SECONDS + 1,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                "template": template,
            }})),
        )
        .await
        .expect("the canary update");
}

/// The ReplicaSet of `web` whose first container runs `image`, and its pods; `None` while
/// there is none (or a read fails).
pub async fn side_with_image(
    client: &kube::Client,
    namespace: &str,
    image: &str,
) -> Option<(
    k8s_openapi::api::apps::v1::ReplicaSet,
    Vec<k8s_openapi::api::core::v1::Pod>,
)> {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use k8s_openapi::api::core::v1::Pod;
    use kube::ResourceExt;
    use kube::api::{Api, ListParams};
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = replica_sets
        .list(&ListParams::default().labels("app=web"))
        .await
        .ok()?;
    let side = list.items.into_iter().find(|rs| {
        rs.spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .and_then(|t| t.spec.as_ref())
            .is_some_and(|s| s.containers[0].image.as_deref() == Some(image))
    })?;
    let hash = side.labels().get("pod-template-hash")?.clone();
    let side_pods = pods
        .list(&ListParams::default().labels(&format!("pod-template-hash={hash}")))
        .await
        .ok()?;
    Some((side, side_pods.items))
}
