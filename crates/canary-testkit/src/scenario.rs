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
