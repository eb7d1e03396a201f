//! Traffic through the Service, on testenv's real dataplane (kube-proxy in the pod network
//! namespace, requests sent from there to the ClusterIP by `testenv traffic`):
//! - a dark canary (`start --dark`) gets exactly 0 requests out of thousands until promote,
//!   can be checked through the pod proxy, and gets its pod share after promote;
//! - with `--sticky` every client address sees one version only;
//! - every Service change is put back field by field on promote and abort, and after a
//!   crash at every mutation point of start, promote and abort;
//! - a Service the tool may not or should not change is refused before anything changes.

mod common;

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use canary_core::traffic::PIN_ANNOTATION;
use canary_testkit::reads;
use canary_testkit::scenario::web_namespace;
use canary_testkit::{
    TestEnv, TestNamespace, assert_spec_equal_except, differences, spec_of, wait_settled,
};
use common::*;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use serde_json::{Value, json};

const REFUSED: i32 = 4;
const FORBIDDEN: i32 = 6;
const IMAGE_PATH: &str = ".template.spec.containers[0].image";

/// Creates Service `name` selecting `app=web`, port 80, with a label and an annotation of
/// its owner's (which must be kept).
async fn create_service(env: &TestEnv, ns: &str, name: &str) {
    let metadata = json!({"labels": {"team": "a"}, "annotations": {"note": "kept"}});
    reads::create_service(&env.client().await, ns, name, metadata).await;
}

/// A traffic scenario's start: `web` at `replicas` pods behind Service `web`.
struct Served {
    ns: TestNamespace,
    /// The Deployment's spec before.
    original: Value,
    /// The Service before.
    before: Value,
}

/// `web` at `replicas` pods of nginx:1.14 behind Service `web`; their state as it was.
async fn served_web(env: &TestEnv, prefix: &str, replicas: i32) -> Served {
    let ns = web_namespace(env, prefix, replicas).await;
    create_service(env, &ns.name, "web").await;
    let original = spec_of(env, &ns.name, "web").await;
    let before = service_state(env, &ns.name, "web").await;
    Served {
        ns,
        original,
        before,
    }
}

/// Waits until `web` settles; asserts that its spec is `original` but for `allowed` and
/// that the Service is back as `before` was.
async fn assert_restored(
    env: &TestEnv,
    ns: &str,
    original: &Value,
    before: &Value,
    allowed: &[&str],
    context: &str,
) {
    wait_settled(env, ns, "web", Duration::from_secs(60)).await;
    assert_spec_equal_except(original, &spec_of(env, ns, "web").await, allowed);
    assert_service_restored(before, &service_state(env, ns, "web").await, context);
}

/// The whole Service as stored, minus what the API server changes on every write.
async fn service_state(env: &TestEnv, ns: &str, name: &str) -> Value {
    let api: Api<Service> = Api::namespaced(env.client().await, ns);
    let mut v = serde_json::to_value(api.get(name).await.unwrap()).unwrap();
    let meta = v["metadata"].as_object_mut().unwrap();
    meta.remove("resourceVersion");
    meta.remove("managedFields");
    v
}

fn assert_service_restored(before: &Value, after: &Value, context: &str) {
    let diff = differences(before, after);
    assert!(
        diff.is_empty(),
        "{context}: the Service differs from the original:\n{}",
        diff.join("\n")
    );
}

/// What `testenv traffic` reports, and per source address the images that answered.
struct Measured {
    requests: u64,
    failed: u64,
    by_image: BTreeMap<String, u64>,
    by_source: BTreeMap<String, BTreeMap<String, u64>>,
}

/// Sends `requests` requests (a new connection each) from `sources` addresses of the pod
/// subnet to the Service's ClusterIP, from inside the pod namespace, through kube-proxy.
async fn measure(env: &TestEnv, ns: &str, service: &str, requests: u32, sources: u32) -> Measured {
    let api: Api<Service> = Api::namespaced(env.client().await, ns);
    let ip = api
        .get(service)
        .await
        .unwrap()
        .spec
        .unwrap()
        .cluster_ip
        .unwrap();
    let bin = env.vars.get("KC_TESTENV_BIN").cloned().expect(
        "KC_TESTENV_BIN missing from the env file: this testenv has no kube-proxy dataplane; restart it with this branch's testenv",
    );
    let subnet = env.vars["KC_POD_SUBNET"].clone();
    let prefix: Vec<&str> = subnet.split('.').take(2).collect();
    let srcs: Vec<String> = (0..sources)
        .map(|i| format!("{}.{}.250.{}", prefix[0], prefix[1], 100 + i))
        .collect();
    let args = vec![
        "traffic".to_string(),
        "--netns".into(),
        env.vars["KC_POD_NETNS"].clone(),
        "--pod-subnet".into(),
        subnet,
        "--target".into(),
        format!("{ip}:80"),
        "--requests".into(),
        requests.to_string(),
        "--sources".into(),
        srcs.join(","),
    ];
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(bin)
            .args(&args)
            .output()
            .expect("testenv traffic runs")
    })
    .await
    .unwrap();
    assert!(out.status.success(), "testenv traffic: {}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("a summary");
    let counts = |v: &Value| -> BTreeMap<String, u64> {
        v.as_object()
            .into_iter()
            .flatten()
            .map(|(k, n)| (k.clone(), n.as_u64().unwrap()))
            .collect()
    };
    Measured {
        requests: v["requests"].as_u64().unwrap(),
        failed: v["failed"].as_u64().unwrap(),
        by_image: counts(&v["byImage"]),
        by_source: v["bySource"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, m)| (k.clone(), counts(m)))
            .collect(),
    }
}

/// Waits until kube-proxy serves a new Service (it syncs its rules within a second).
async fn wait_served(env: &TestEnv, ns: &str, service: &str) {
    for _ in 0..40 {
        let m = measure(env, ns, service, 20, 1).await;
        if m.failed == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("service/{service} not served through its ClusterIP after 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dark_canary_gets_no_service_traffic_until_promote() {
    let Some(env) = TestEnv::get() else { return };
    let Served {
        ns,
        original,
        before,
    } = served_web(&env, "dark", 4).await;
    wait_served(&env, &ns.name, "web").await;

    let out = start_canary(
        &env,
        &ns.name,
        "nginx:1.15",
        "1",
        &["--dark"],
        "start --dark",
    )
    .await;
    assert!(text(&out).contains("dark"), "{}", text(&out));

    let dark = measure(&env, &ns.name, "web", 3000, 4).await;
    assert_eq!(dark.requests, 3000);
    assert_eq!(dark.failed, 0, "no failed request while dark");
    assert_eq!(
        dark.by_image.get("nginx:1.15").copied().unwrap_or(0),
        0,
        "a dark canary gets no Service traffic: {:?}",
        dark.by_image
    );
    // ... but it runs and answers through the pod proxy
    let pods = kubectl(
        &env,
        &[
            "-n",
            &ns.name,
            "get",
            "pods",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.spec.containers[0].image}{\"\\n\"}{end}",
        ],
    )
    .await;
    let canary_pod = String::from_utf8_lossy(&pods.stdout)
        .lines()
        .find(|l| l.ends_with("nginx:1.15"))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .expect("a canary pod");
    let proxied = kubectl(
        &env,
        &[
            "get",
            "--raw",
            &format!("/api/v1/namespaces/{}/pods/{canary_pod}:80/proxy/", ns.name),
        ],
    )
    .await;
    assert!(
        String::from_utf8_lossy(&proxied.stdout).contains("(nginx:1.15)"),
        "{}",
        text(&proxied)
    );
    let status = canary(&env, &ns.name, &["status", "deploy/web"]).await;
    assert_exit(&status, 0, "status");
    let status_text = String::from_utf8_lossy(&status.stdout).to_string();
    assert!(
        status_text.contains("service/web: dark")
            && status_text.contains("traffic: 0.0% of requests"),
        "status shows the pin:\n{status_text}"
    );

    // promote lets the canary in: 2 canary pods of 6, a third of the requests
    let out = canary(&env, &ns.name, &["promote", "deploy/web", "--canary", "2"]).await;
    assert_exit(&out, 0, "promote --canary 2");
    assert_service_restored(
        &before,
        &service_state(&env, &ns.name, "web").await,
        "after promote (dark only: nothing left pinned)",
    );
    // kube-proxy follows the EndpointSlices within its sync period
    let mut shared = measure(&env, &ns.name, "web", 300, 2).await;
    for _ in 0..20 {
        if shared.by_image.get("nginx:1.15").copied().unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        shared = measure(&env, &ns.name, "web", 300, 2).await;
    }
    let shared = measure(&env, &ns.name, "web", 3000, 4).await;
    let canary_share = shared.by_image.get("nginx:1.15").copied().unwrap_or(0) as f64 / 3000.0;
    assert_eq!(shared.failed, 0);
    // 1/3 expected; the binomial standard deviation is under 0.009
    assert!(
        (0.28..0.39).contains(&canary_share),
        "after promote the canary gets its pod share (2 of 6): {canary_share} {:?}",
        shared.by_image
    );

    let out = canary(&env, &ns.name, &["promote", "deploy/web", "--full"]).await;
    assert_exit(&out, 0, "promote --full");
    assert_restored(
        &env,
        &ns.name,
        &original,
        &before,
        &[IMAGE_PATH],
        "after promote --full",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_sessions_keep_each_client_on_one_version_and_abort_restores() {
    let Some(env) = TestEnv::get() else { return };
    let Served {
        ns,
        original,
        before,
    } = served_web(&env, "sticky", 4).await;

    start_canary(
        &env,
        &ns.name,
        "nginx:1.15",
        "2",
        &["--sticky", "10m"],
        "start --sticky",
    )
    .await;
    let svc = service_state(&env, &ns.name, "web").await;
    assert_eq!(svc["spec"]["sessionAffinity"], "ClientIP");
    assert_eq!(
        svc["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"],
        600
    );
    assert!(svc["metadata"]["annotations"][PIN_ANNOTATION].is_string());

    // the canary pods' endpoints reach kube-proxy within its sync period
    for _ in 0..40 {
        if measure(&env, &ns.name, "web", 200, 8)
            .await
            .by_image
            .contains_key("nginx:1.15")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // 24 clients, 100 requests each (a new connection each): one version per client; with
    // 2 canary pods of 6, some clients on each side (all 24 on one: p < 1e-4)
    let m = measure(&env, &ns.name, "web", 2400, 24).await;
    assert_eq!(m.failed, 0);
    assert_eq!(m.by_source.len(), 24);
    for (source, images) in &m.by_source {
        assert_eq!(
            images.len(),
            1,
            "client {source} saw more than one version: {images:?}"
        );
    }
    assert_eq!(
        m.by_image.len(),
        2,
        "both versions serve some clients: {:?}",
        m.by_image
    );

    let out = canary(&env, &ns.name, &["abort", "deploy/web"]).await;
    assert_exit(&out, 0, "abort");
    assert_restored(&env, &ns.name, &original, &before, &[], "after abort").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_the_tool_may_not_or_should_not_change_are_refused_before_any_change() {
    let Some(env) = TestEnv::get() else { return };
    let ns = web_namespace(&env, "svc-refuse", 2).await;
    let original = deployment_json(&env, &ns.name, "web").await;
    let start = ["start", "deploy/web", "nginx=nginx:1.15", "--dark"];
    let unchanged = |context: &'static str| {
        let env = env.clone();
        let ns = ns.name.clone();
        let original = original.clone();
        async move {
            assert_eq!(
                deployment_json(&env, &ns, "web").await,
                original,
                "{context}: Deployment unchanged"
            );
            assert!(
                !record_exists(&env, &ns, "web").await,
                "{context}: no record"
            );
        }
    };

    // no Service in front of the Deployment
    let out = canary(&env, &ns.name, &start).await;
    assert_exit(&out, REFUSED, "no Service");
    assert!(text(&out).contains("no Service"), "{}", text(&out));
    unchanged("no Service").await;

    // managed by a GitOps controller (server-side apply as Argo CD does)
    let manifest = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: {}\nspec:\n  selector:\n    app: web\n  ports:\n  - port: 80\n",
        ns.name
    );
    let path = std::env::temp_dir().join(format!("kc-svc-{}.yaml", ns.name));
    std::fs::write(&path, manifest).unwrap();
    let out = kubectl(
        &env,
        &[
            "apply",
            "--server-side",
            "--field-manager=argocd-controller",
            "-f",
            path.to_str().unwrap(),
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let svc_before = service_state(&env, &ns.name, "web").await;
    let out = canary(&env, &ns.name, &start).await;
    assert_exit(&out, REFUSED, "GitOps-managed Service");
    assert!(text(&out).contains("argocd-controller"), "{}", text(&out));
    unchanged("GitOps-managed Service").await;
    assert_service_restored(
        &svc_before,
        &service_state(&env, &ns.name, "web").await,
        "refused",
    );
    let out = kubectl(&env, &["-n", &ns.name, "delete", "service", "web"]).await;
    assert!(out.status.success(), "{}", text(&out));

    // a Service that also selects pods of something else: pinning would cut them off
    create_service(&env, &ns.name, "web").await;
    let out = kubectl(
        &env,
        &[
            "-n",
            &ns.name,
            "run",
            "other",
            "--image=nginx:1.14",
            "--labels=app=web",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let out = canary(&env, &ns.name, &start).await;
    assert_exit(&out, REFUSED, "Service selecting another pod");
    assert!(text(&out).contains("pod other"), "{}", text(&out));
    unchanged("Service selecting another pod").await;
    let out = kubectl(
        &env,
        &["-n", &ns.name, "delete", "pod", "other", "--wait=false"],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));

    // RBAC: a user who may do everything but update the Service (the restricted user, given
    // the documented Role without `update services`)
    let svc_before = service_state(&env, &ns.name, "web").await;
    let role = r#"{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role","metadata":{"name":"no-svc-update"},"rules":[
        {"apiGroups":["apps"],"resources":["deployments"],"verbs":["get","list","watch","update"]},
        {"apiGroups":["apps"],"resources":["replicasets"],"verbs":["list","watch","update"]},
        {"apiGroups":[""],"resources":["pods"],"verbs":["list","watch"]},
        {"apiGroups":[""],"resources":["configmaps"],"verbs":["get","list","watch","create","update","delete"]},
        {"apiGroups":["autoscaling"],"resources":["horizontalpodautoscalers"],"verbs":["list"]},
        {"apiGroups":[""],"resources":["services"],"verbs":["get","list"]}]}"#;
    let path = std::env::temp_dir().join(format!("kc-role-{}.json", ns.name));
    std::fs::write(&path, role).unwrap();
    for args in [
        vec!["-n", &ns.name, "apply", "-f", path.to_str().unwrap()],
        vec![
            "-n",
            &ns.name,
            "create",
            "rolebinding",
            "no-svc-update",
            "--role=no-svc-update",
            "--user=restricted",
        ],
    ] {
        let out = kubectl(&env, &args).await;
        assert!(out.status.success(), "{}", text(&out));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let restricted = env.restricted_kubeconfig.clone();
    let mut args = vec!["-n".to_string(), ns.name.clone()];
    args.extend(start.iter().map(|s| s.to_string()));
    let env2 = env.clone();
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        env2.run_as(&restricted, BIN, &args, &[])
    })
    .await
    .unwrap();
    assert_exit(&out, FORBIDDEN, "no update on the Service");
    assert!(text(&out).contains("update services/web"), "{}", text(&out));
    unchanged("no update on the Service").await;
    assert_service_restored(
        &svc_before,
        &service_state(&env, &ns.name, "web").await,
        "forbidden",
    );
}

/// Runs `command` crashing after mutation `n` (test hook), then recovers with `recovery`;
/// the Service and the Deployment must be back as before, field by field. Returns whether it
/// crashed.
async fn crash_and_recover(
    env: &TestEnv,
    command: &[&str],
    held: Option<&[&str]>,
    n: usize,
    recovery: &[&str],
) -> bool {
    let Served {
        ns,
        original,
        before,
    } = served_web(env, "svc-crash", 3).await;
    if let Some(flags) = held {
        let mut start = vec!["start", "deploy/web", "nginx=nginx:1.15"];
        start.extend_from_slice(flags);
        let out = canary(env, &ns.name, &start).await;
        assert_exit(&out, 0, "setup start");
    }
    let context = format!(
        "`{}` crashing after mutation {n}, recovered by `{}`",
        command.join(" "),
        recovery.join(" ")
    );
    let out = canary_with(
        env,
        &ns.name,
        command,
        &[("KUBECTL_CANARY_CRASH_AFTER", &n.to_string())],
    )
    .await;
    let crashed = out.status.signal() == Some(6);
    if !crashed {
        assert_exit(&out, 0, &format!("{context}: ran to the end"));
    }
    let status = canary(env, &ns.name, &["status", "deploy/web"]).await;
    assert!(
        matches!(status.status.code(), Some(0) | Some(20)),
        "{context}: status explains the state\n{}",
        text(&status)
    );
    let out = canary(env, &ns.name, recovery).await;
    if out.status.code() == Some(20) {
        // an unconfirmed record (start died right after creating it) is not promoted:
        // abort discards it
        let out = canary(env, &ns.name, &["abort", "deploy/web"]).await;
        assert_exit(
            &out,
            0,
            &format!("{context}: abort after an unconfirmed record"),
        );
    } else {
        assert!(
            matches!(out.status.code(), Some(0) | Some(3)),
            "{context}: recovery\n{}",
            text(&out)
        );
    }
    wait_settled(env, &ns.name, "web", Duration::from_secs(60)).await;
    assert!(
        !record_exists(env, &ns.name, "web").await,
        "{context}: record left behind"
    );
    // a promotion that had completed (or a recovery by promote) leaves the new image
    let allowed: &[&str] = if recovery.contains(&"promote") || command.contains(&"promote") {
        &[IMAGE_PATH]
    } else {
        &[]
    };
    let after = spec_of(env, &ns.name, "web").await;
    let image = after
        .pointer("/template/spec/containers/0/image")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if image == "nginx:1.14" {
        assert_spec_equal_except(&original, &after, &[]);
    } else {
        assert_spec_equal_except(&original, &after, allowed);
    }
    assert_service_restored(
        &before,
        &service_state(env, &ns.name, "web").await,
        &context,
    );
    crashed
}

async fn every_point(env: &TestEnv, command: &[&str], held: Option<&[&str]>, recovery: &[&str]) {
    for n in 1..=12 {
        if !crash_and_recover(env, command, held, n, recovery).await {
            // the hook must have fired before: a command that never crashes proves nothing
            assert!(
                n > 1,
                "`{}` did not crash after its first mutation (test-hooks feature?)",
                command.join(" ")
            );
            eprintln!(
                "`{}`: {} mutation point(s), each crashed and recovered by `{}`",
                command.join(" "),
                n - 1,
                recovery.join(" ")
            );
            return;
        }
    }
    panic!(
        "`{}` still crashing after 12 mutation points",
        command.join(" ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_every_mutation_point_of_start_leaves_services_restorable() {
    let Some(env) = TestEnv::get() else { return };
    let start = [
        "start",
        "deploy/web",
        "nginx=nginx:1.15",
        "--dark",
        "--sticky",
        "5m",
    ];
    every_point(&env, &start, None, &["abort", "deploy/web"]).await;
    every_point(&env, &start, None, &["promote", "deploy/web", "--full"]).await;
    let blue_green = ["start", "deploy/web", "nginx=nginx:1.15", "--blue-green"];
    every_point(&env, &blue_green, None, &["abort", "deploy/web"]).await;
}

/// The held canary of the crash tests: dark with sticky sessions.
const DARK_STICKY: &[&str] = &["--dark", "--sticky", "5m"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_every_mutation_point_of_a_blue_green_promote_or_abort_leaves_services_restorable()
 {
    let Some(env) = TestEnv::get() else { return };
    let held: Option<&[&str]> = Some(&["--blue-green"]);
    every_point(
        &env,
        &["promote", "deploy/web", "--full"],
        held,
        &["abort", "deploy/web"],
    )
    .await;
    every_point(
        &env,
        &["promote", "deploy/web", "--full"],
        held,
        &["promote", "deploy/web", "--full"],
    )
    .await;
    every_point(
        &env,
        &["abort", "deploy/web"],
        held,
        &["abort", "deploy/web"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_every_mutation_point_of_promote_and_abort_leaves_services_restorable() {
    let Some(env) = TestEnv::get() else { return };
    every_point(
        &env,
        &["promote", "deploy/web", "--full"],
        Some(DARK_STICKY),
        &["promote", "deploy/web", "--full"],
    )
    .await;
    every_point(
        &env,
        &["abort", "deploy/web"],
        Some(DARK_STICKY),
        &["abort", "deploy/web"],
    )
    .await;
    every_point(
        &env,
        &["promote", "deploy/web", "--canary", "2"],
        Some(DARK_STICKY),
        &["abort", "deploy/web"],
    )
    .await;
}

/// A bounded request loop through a whole lifecycle: `testenv traffic` in the background
/// (4 clients, a new connection per request) until `stop` is called; then every request.
struct Loop {
    stop_file: std::path::PathBuf,
    log: std::path::PathBuf,
    handle: tokio::task::JoinHandle<std::process::Output>,
}

/// One request of the loop: when it was sent (Unix seconds), the image that answered, or
/// the error.
struct Request {
    t: f64,
    image: Option<String>,
    failed: bool,
}

async fn start_loop(env: &TestEnv, ns: &str, service: &str) -> Loop {
    let api: Api<Service> = Api::namespaced(env.client().await, ns);
    let ip = api
        .get(service)
        .await
        .unwrap()
        .spec
        .unwrap()
        .cluster_ip
        .unwrap();
    let dir = std::env::temp_dir();
    let stop_file = dir.join(format!("kc-loop-stop-{ns}"));
    let log = dir.join(format!("kc-loop-{ns}.jsonl"));
    let _ = std::fs::remove_file(&stop_file);
    let subnet = env.vars["KC_POD_SUBNET"].clone();
    let prefix: Vec<&str> = subnet.split('.').take(2).collect();
    let sources: Vec<String> = (0..4)
        .map(|i| format!("{}.{}.250.{}", prefix[0], prefix[1], 140 + i))
        .collect();
    let args = vec![
        "traffic".to_string(),
        "--netns".into(),
        env.vars["KC_POD_NETNS"].clone(),
        "--pod-subnet".into(),
        subnet.clone(),
        "--target".into(),
        format!("{ip}:80"),
        "--duration".into(),
        "3m".into(),
        "--interval".into(),
        "5ms".into(),
        "--sources".into(),
        sources.join(","),
        "--stop-file".into(),
        stop_file.to_string_lossy().to_string(),
        "--log".into(),
        log.to_string_lossy().to_string(),
    ];
    let bin = env.vars["KC_TESTENV_BIN"].clone();
    let handle = tokio::task::spawn_blocking(move || {
        std::process::Command::new(bin)
            .args(&args)
            .output()
            .expect("testenv traffic runs")
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    Loop {
        stop_file,
        log,
        handle,
    }
}

async fn stop_loop(l: Loop) -> Vec<Request> {
    std::fs::write(&l.stop_file, b"stop").unwrap();
    let out = l.handle.await.unwrap();
    assert!(out.status.success(), "testenv traffic: {}", text(&out));
    let requests = std::fs::read_to_string(&l.log)
        .unwrap()
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            Request {
                t: v["t"].as_f64().unwrap(),
                image: v["image"].as_str().map(str::to_string),
                failed: v.get("err").is_some() || v["code"].as_u64() != Some(200),
            }
        })
        .collect();
    let _ = std::fs::remove_file(&l.log);
    let _ = std::fs::remove_file(&l.stop_file);
    requests
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Requests sent in [from, to) answered by `image`, and all requests in that window.
fn answered_by(requests: &[Request], from: f64, to: f64, image: &str) -> (usize, usize) {
    let window: Vec<&Request> = requests
        .iter()
        .filter(|r| r.t >= from && r.t < to)
        .collect();
    (
        window
            .iter()
            .filter(|r| r.image.as_deref() == Some(image))
            .count(),
        window.len(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_switches_in_one_update_without_a_failed_request() {
    let Some(env) = TestEnv::get() else { return };
    let Served {
        ns,
        original,
        before,
    } = served_web(&env, "bluegreen", 4).await;
    wait_served(&env, &ns.name, "web").await;
    let requests = start_loop(&env, &ns.name, "web").await;

    let out = start_release(&env, &ns.name, &["--blue-green"]).await;
    assert_exit(&out, 0, "start --blue-green");
    assert_eq!(
        replica_sets_by_image(&env, &ns.name).await,
        vec![("nginx:1.14".to_string(), 4), ("nginx:1.15".to_string(), 4)],
        "a full second set beside the old one"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let promote_sent = unix_now();
    let out = canary(&env, &ns.name, &["promote", "deploy/web", "--full"]).await;
    assert_exit(&out, 0, "promote");
    let promoted = unix_now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let requests = stop_loop(requests).await;

    let failed = requests.iter().filter(|r| r.failed).count();
    assert_eq!(
        failed,
        0,
        "no failed request through the whole lifecycle ({} requests)",
        requests.len()
    );
    let (new_before, all_before) = answered_by(&requests, 0.0, promote_sent, "nginx:1.15");
    assert!(all_before > 100, "requests before the switch: {all_before}");
    assert_eq!(
        new_before, 0,
        "no request to the new set before the switch (of {all_before})"
    );
    let (old_after, all_after) = answered_by(&requests, promoted, f64::MAX, "nginx:1.14");
    assert!(all_after > 100, "requests after the switch: {all_after}");
    assert_eq!(
        old_after, 0,
        "no request to the old set after the switch (of {all_after})"
    );
    eprintln!(
        "blue/green: {} requests, 0 failed; before promote {all_before} all old; after promote {all_after} all new",
        requests.len()
    );
    assert_restored(
        &env,
        &ns.name,
        &original,
        &before,
        &[IMAGE_PATH],
        "after the Blue/Green promote",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_abort_after_the_switch_goes_back_without_a_failed_request() {
    let Some(env) = TestEnv::get() else { return };
    let Served {
        ns,
        original,
        before,
    } = served_web(&env, "bluegreen-back", 3).await;
    wait_served(&env, &ns.name, "web").await;
    let out = start_release(&env, &ns.name, &["--blue-green"]).await;
    assert_exit(&out, 0, "start --blue-green");
    let out = canary(&env, &ns.name, &["promote", "deploy/web", "--canary", "2"]).await;
    assert_exit(&out, REFUSED, "a Blue/Green release is promoted whole");
    let requests = start_loop(&env, &ns.name, "web").await;
    // promote dies right after switching the Service: the new set serves
    let out = canary_with(
        &env,
        &ns.name,
        &["promote", "deploy/web", "--full"],
        &[("KUBECTL_CANARY_CRASH_AFTER", "1")],
    )
    .await;
    assert_eq!(out.status.signal(), Some(6), "{}", text(&out));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let switched = unix_now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let abort_sent = unix_now();
    let out = canary(&env, &ns.name, &["abort", "deploy/web"]).await;
    assert_exit(&out, 0, "abort after the switch");
    let aborted = unix_now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let requests = stop_loop(requests).await;

    assert_eq!(
        requests.iter().filter(|r| r.failed).count(),
        0,
        "no failed request"
    );
    let (old_switched, all_switched) = answered_by(&requests, switched, abort_sent, "nginx:1.14");
    assert!(all_switched > 20);
    assert_eq!(
        old_switched, 0,
        "the switch had been made: only the new set served"
    );
    let (new_after, all_after) = answered_by(&requests, aborted, f64::MAX, "nginx:1.15");
    assert!(all_after > 100);
    assert_eq!(
        new_after, 0,
        "after abort only the old set serves (of {all_after})"
    );
    assert_restored(
        &env,
        &ns.name,
        &original,
        &before,
        &[],
        "after the Blue/Green abort",
    )
    .await;
}
