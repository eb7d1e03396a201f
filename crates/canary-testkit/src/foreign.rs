//! Foreign actions: what someone other than kubectl-canary does to `web` while a canary
//! runs (a GitOps self-heal, `kubectl set image`, `kubectl scale`, the record deleted, the
//! Deployment deleted and created again). The foreign-change tests and the generator of
//! docs/results/foreign-actions.md act through these, so an action means the same thing in
//! both.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::{DeleteParams, PostParams};

use crate::actors::GitOpsLoop;
use crate::reads::record_name;
use crate::{TestEnv, wait_until, web_deployment};

/// One foreign action on deploy/web.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForeignAction {
    /// A GitOps sync applies the stable manifest (`replicas` pods of the stable image) once.
    Revert,
    /// `kubectl set image` of a third version, nginx:1.16.
    OtherVersion,
    /// `kubectl scale` to the given replicas.
    Rescale(i32),
    /// The record ConfigMap deleted.
    DeleteRecord,
    /// The Deployment deleted (foreground) and created again as the stable manifest.
    Recreate,
}

impl ForeignAction {
    /// Does it in `namespace`; `stable` and `replicas` make the stable manifest (Revert,
    /// Recreate). Fails the test when a step of it fails.
    pub async fn apply(self, env: &TestEnv, namespace: &str, stable: &str, replicas: i32) {
        let kubectl = |args: Vec<String>| {
            let env = env.clone();
            async move {
                let out = tokio::task::spawn_blocking(move || {
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    env.run("kubectl", &args)
                })
                .await
                .expect("kubectl runs");
                assert!(
                    out.status.success(),
                    "kubectl: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        };
        let ns = namespace.to_string();
        match self {
            ForeignAction::Revert => {
                let manifest = serde_json::to_value(web_deployment("web", replicas, stable, None))
                    .expect("json");
                GitOpsLoop::start(env, namespace, &manifest, Duration::from_secs(60), 1).stop();
            }
            ForeignAction::OtherVersion => {
                kubectl(
                    ["-n", &ns, "set", "image", "deploy/web", "nginx=nginx:1.16"]
                        .map(String::from)
                        .to_vec(),
                )
                .await
            }
            ForeignAction::Rescale(to) => {
                let to = format!("--replicas={to}");
                kubectl(
                    ["-n", &ns, "scale", "deploy/web", &to]
                        .map(String::from)
                        .to_vec(),
                )
                .await
            }
            ForeignAction::DeleteRecord => {
                kubectl(
                    ["-n", &ns, "delete", "configmap", &record_name("web")]
                        .map(String::from)
                        .to_vec(),
                )
                .await
            }
            ForeignAction::Recreate => {
                let api: Api<Deployment> = Api::namespaced(env.client().await, namespace);
                api.delete("web", &DeleteParams::foreground())
                    .await
                    .expect("delete");
                wait_until(
                    env,
                    "the Deployment gone",
                    Duration::from_secs(30),
                    || async { matches!(api.get_opt("web").await, Ok(None)) },
                )
                .await;
                api.create(
                    &PostParams::default(),
                    &web_deployment("web", replicas, stable, None),
                )
                .await
                .expect("create again");
            }
        }
    }
}
