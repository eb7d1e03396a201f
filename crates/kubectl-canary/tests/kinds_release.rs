//! Releases of StatefulSets and DaemonSets beyond images, through the CLI on the testenv's
//! real controllers: `--env`, `--patch` and `-f` (the workload's document of a manifest)
//! give the canary's pod template, defaulted by a dry-run update; promote leaves the spec as
//! the release asked and abort as it was, field by field; a release that changes anything
//! outside the pod template, names no such workload or container, or changes nothing is
//! refused with nothing written.
//!
//! Needs the testenv (`scripts/testenv up`). Without it the tests print a note and pass,
//! unless `KC_TESTENV_REQUIRED=1`, when they fail.

mod common;

use canary_testkit::kinds::{
    SimNodes, create_settled_daemonset, create_settled_statefulset, daemonset, live_pods,
    statefulset, workload_state,
};
use canary_testkit::{TestEnv, TestNamespace, differences};
use common::*;
use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use kube::Api;
use serde_json::{Value, json};

/// A file of `text` for `-f` or `--patch-file`, removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> Self {
        let path = std::env::temp_dir().join(format!("{}-{name}", std::process::id()));
        std::fs::write(&path, text).expect("write a temporary file");
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        std::fs::remove_file(&self.0).ok();
    }
}

/// The env of container 0 of the pod named `pod`.
async fn env_of(client: &kube::Client, ns: &str, selector: &str, pod: &str) -> Value {
    let pods = live_pods(client, ns, selector).await;
    let found = pods
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(pod))
        .unwrap_or_else(|| panic!("pod {pod}"));
    serde_json::to_value(&found.spec.as_ref().unwrap().containers[0].env).unwrap()
}

/// `--env` on a StatefulSet: the canary pod (the highest ordinal) runs with it, the others
/// without; promote leaves exactly that change in the spec; a second release that changes
/// nothing more is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_env_release_of_a_statefulset_is_canaried_and_promoted() {
    let Some(env) = TestEnv::get() else { return };
    let client = env.client().await;
    let namespace = TestNamespace::create(&env, "kinds-env").await;
    let ns = namespace.name.as_str();
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    create_settled_statefulset(
        &env,
        &client,
        ns,
        &statefulset("db", 3, "db:v1", "OrderedReady", true),
    )
    .await;
    let before = workload_state(&api, "db").await;

    let out = canary(&env, ns, &["start", "sts/db", "--env", "db:MODE=b"]).await;
    assert_exit(&out, 0, "start --env");
    assert_eq!(
        env_of(&client, ns, "app=db", "db-2").await,
        json!([{"name": "MODE", "value": "b"}])
    );
    assert_eq!(env_of(&client, ns, "app=db", "db-0").await, Value::Null);
    assert_exit(
        &canary(&env, ns, &["promote", "sts/db", "--full"]).await,
        0,
        "promote",
    );
    assert_eq!(
        differences(&before, &workload_state(&api, "db").await),
        [".spec.template.spec.containers[0].env: null -> [{\"name\":\"MODE\",\"value\":\"b\"}]"]
    );
    let same = canary(&env, ns, &["start", "sts/db", "--env", "db:MODE=b"]).await;
    assert_exit(&same, 4, "a release that changes nothing");
    assert!(
        text(&same).contains("leaves the pod template of sts/db as it is"),
        "{}",
        text(&same)
    );
}

/// `-f` with the DaemonSet's document among others, and `--patch`: the canary node runs the
/// release; abort puts the spec back field by field. A manifest that also changes the
/// updateStrategy, one without the DaemonSet, and `--env` of an unknown container are
/// refused with nothing written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_release_of_a_daemonset_is_canaried_and_aborted() {
    let Some(env) = TestEnv::get() else { return };
    let client = env.client().await;
    let namespace = TestNamespace::create(&env, "kinds-manifest").await;
    let ns = namespace.name.as_str();
    let mut nodes = SimNodes::new(ns);
    nodes.add(&env, 3).await;
    let api: Api<DaemonSet> = Api::namespaced(client.clone(), ns);
    let live = daemonset("agent", ns, "agent:v1");
    create_settled_daemonset(&env, &client, ns, &live, 3).await;
    let before = workload_state(&api, "agent").await;

    let mut released = serde_json::to_value(&live).unwrap();
    released["spec"]["template"]["spec"]["containers"][0]["image"] = json!("agent:v2");
    released["spec"]["template"]["metadata"]["labels"]["track"] = json!("new");
    let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "agent"},
                         "spec": {"selector": {"app": "agent"}, "ports": [{"port": 80}]}});
    let manifest = TempFile::new("agent.yaml", &format!("{service}\n---\n{released}\n"));
    let patch = r#"{"spec":{"template":{"spec":{"containers":[{"name":"agent","args":["-v"]}]}}}}"#;

    let mut outside = released.clone();
    outside["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
    let outside = TempFile::new("outside.yaml", &outside.to_string());
    let only_service = TempFile::new("service.yaml", &service.to_string());
    let refusals: [(&[&str], i32, &str); 3] = [
        (
            &["start", "ds/agent", "-f", outside.path()],
            4,
            "the release also changes spec.updateStrategy of ds/agent, outside the pod template",
        ),
        (
            &["start", "ds/agent", "-f", only_service.path()],
            4,
            "has no DaemonSet agent",
        ),
        (
            &["start", "ds/agent", "--env", "sidecar:X=1"],
            4,
            "container 'sidecar' (--env sidecar:X=1) is not in the pod template of ds/agent",
        ),
    ];
    for (args, code, says) in refusals {
        let out = canary(&env, ns, args).await;
        assert_exit(&out, code, &args.join(" "));
        assert!(
            text(&out).contains(says),
            "{}: {}",
            args.join(" "),
            text(&out)
        );
        assert_eq!(
            differences(&before, &workload_state(&api, "agent").await),
            Vec::<String>::new()
        );
    }

    let out = canary(
        &env,
        ns,
        &["start", "ds/agent", "-f", manifest.path(), "--patch", patch],
    )
    .await;
    assert_exit(&out, 0, "start -f --patch");
    let canary_pods: Vec<_> = live_pods(&client, ns, "app=agent,track=new").await;
    assert_eq!(canary_pods.len(), 1, "one node runs the release");
    let container = &canary_pods[0].spec.as_ref().unwrap().containers[0];
    assert_eq!(container.image.as_deref(), Some("agent:v2"));
    assert_eq!(container.args, Some(vec!["-v".to_owned()]));
    assert_exit(&canary(&env, ns, &["abort", "ds/agent"]).await, 0, "abort");
    assert_eq!(
        differences(&before, &workload_state(&api, "agent").await),
        Vec::<String>::new()
    );
    nodes.remove_with(&env, &client, "agent").await;
}
