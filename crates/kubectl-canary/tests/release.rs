//! Any release of the pod template, each way in, against the real controllers: an image,
//! an environment variable, arguments, RESOURCES, a sidecar added, a ConfigMap reference
//! renamed, a patch of each type, a manifest (file and standard input), and `apply -f` of a
//! directory. Each: exactly the canary size asked for, `abort` restores the spec field by
//! field, `promote --full` ends with exactly the spec Kubernetes itself makes of the same
//! input (`kubectl set image|set env|patch|apply --dry-run=server`, run before the canary).
//! Bad input is refused, naming the file and line, and changes nothing.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use canary_core::record::replica_set_template_matches;
use canary_testkit::{
    TestEnv, TestNamespace, assert_spec_equal_except, create_settled, spec_of, wait_settled,
    web_deployment,
};
use common::*;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::{Value, json};

const REFUSED: i32 = 4;
const USAGE: i32 = 2;
const REPLICAS: i32 = 4;

/// The Deployment every release starts from: nginx:1.14 with an environment variable and
/// a ConfigMap volume (`web-config-1`), and the ConfigMaps `web-config-1` and
/// `web-config-2`.
async fn base(env: &TestEnv, namespace: &str, name: &str) -> Value {
    let configs: Api<ConfigMap> = Api::namespaced(env.client().await, namespace);
    for config in ["web-config-1", "web-config-2"] {
        let _ = configs
            .create(
                &PostParams::default(),
                &serde_json::from_value(
                    json!({"metadata": {"name": config}, "data": {"mode": config}}),
                )
                .unwrap(),
            )
            .await;
    }
    let mut deployment =
        serde_json::to_value(web_deployment(name, REPLICAS, "nginx:1.14", None)).unwrap();
    let pod = &mut deployment["spec"]["template"]["spec"];
    pod["containers"][0]["env"] = json!([{"name": "MODE", "value": "a"}]);
    pod["containers"][0]["volumeMounts"] = json!([{"name": "config", "mountPath": "/etc/web"}]);
    pod["volumes"] = json!([{"name": "config", "configMap": {"name": "web-config-1"}}]);
    let deployment: Deployment = serde_json::from_value(deployment).unwrap();
    create_settled(env, namespace, &deployment).await;
    spec_of(env, namespace, name).await
}

/// A manifest of `name` as `base` made it, changed by `edit`, after a Service.
fn manifest(name: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut deployment =
        serde_json::to_value(web_deployment(name, REPLICAS, "nginx:1.14", None)).unwrap();
    let pod = &mut deployment["spec"]["template"]["spec"];
    pod["containers"][0]["env"] = json!([{"name": "MODE", "value": "a"}]);
    pod["containers"][0]["volumeMounts"] = json!([{"name": "config", "mountPath": "/etc/web"}]);
    pod["volumes"] = json!([{"name": "config", "configMap": {"name": "web-config-1"}}]);
    edit(&mut deployment);
    let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}});
    format!(
        "# the Service first, then the Deployment\n{}---\n{}",
        serde_saphyr::to_string(&service).unwrap(),
        serde_saphyr::to_string(&deployment).unwrap()
    )
}

fn write(dir: &Path, file: &str, text: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap();
    path
}

/// A directory of the test's files, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(namespace: &str) -> Self {
        Self(std::env::temp_dir().join(format!("kubectl-canary-release-{namespace}")))
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The spec Kubernetes makes of an input: `kubectl ARGS --dry-run=server -o json`.
async fn oracle(env: &TestEnv, namespace: &str, args: &[&str]) -> Value {
    let mut full = vec!["-n", namespace];
    full.extend(args);
    full.extend(["--dry-run=server", "-o", "json"]);
    let out = kubectl(env, &full).await;
    assert_exit(&out, 0, &format!("kubectl {args:?}"));
    let object: Value = serde_json::from_slice(&out.stdout).expect("kubectl prints JSON");
    let object = match object.get("items") {
        // `kubectl apply -f` of several objects prints a List.
        Some(items) => items
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["kind"] == "Deployment")
            .cloned()
            .expect("the Deployment"),
        None => object,
    };
    object["spec"].clone()
}

/// Desired pods of the stable side (ReplicaSets of `stable`'s template) and of the canary
/// (ReplicaSets of `canary`'s template); panics on a ReplicaSet with pods of neither.
async fn sides(
    env: &TestEnv,
    namespace: &str,
    name: &str,
    stable: &Value,
    canary: &Value,
) -> (i32, i32) {
    let api: Api<ReplicaSet> = Api::namespaced(env.client().await, namespace);
    let mut sizes = (0, 0);
    for rs in api
        .list(&ListParams::default().labels(&format!("app={name}")))
        .await
        .unwrap()
        .items
    {
        let spec = rs.spec.clone().unwrap_or_default();
        let desired = spec.replicas.unwrap_or(0);
        let template = serde_json::to_value(&spec.template).unwrap();
        if replica_set_template_matches(&template, &stable["template"]) {
            sizes.0 += desired;
        } else if replica_set_template_matches(&template, &canary["template"]) {
            sizes.1 += desired;
        } else {
            assert_eq!(desired, 0, "a ReplicaSet of neither template: {template}");
        }
    }
    sizes
}

/// One way in: `start ARGS` (through `sh -c` when `shell` is set, for standard input),
/// held at exactly 1 canary pod, aborted (spec back field by field), started again,
/// promoted (spec exactly `expected`).
async fn scenario(
    env: &TestEnv,
    namespace: &str,
    start: Vec<String>,
    expected: &Value,
    shell: bool,
    summary: &str,
) {
    let before = spec_of(env, namespace, "web").await;
    assert_ne!(
        before["template"], expected["template"],
        "the release changes the template"
    );
    for finish in ["abort", "promote"] {
        let args: Vec<&str> = start.iter().map(String::as_str).collect();
        let out = if shell {
            let env = env.clone();
            let line = format!("{BIN} -n {namespace} {}", args.join(" "));
            tokio::task::spawn_blocking(move || env.run("sh", &["-c", &line]))
                .await
                .unwrap()
        } else {
            canary(env, namespace, &args).await
        };
        assert_exit(&out, 0, &format!("start {args:?}"));
        assert_eq!(
            sides(env, namespace, "web", &before, expected).await,
            (REPLICAS, 1),
            "exactly 1 canary pod beside the {REPLICAS} stable ({args:?})"
        );
        let status = canary(env, namespace, &["status", "deploy/web", "-o", "json"]).await;
        assert_exit(&status, 0, "status");
        let report: Value = serde_json::from_slice(&status.stdout).unwrap();
        let release = report["release"].as_str().unwrap_or_default();
        assert!(
            release.contains(summary),
            "status names the change: {release} (want {summary})"
        );
        assert!(!report["templateChanges"].as_array().unwrap().is_empty());
        if finish == "abort" {
            assert_exit(
                &canary(env, namespace, &["abort", "deploy/web"]).await,
                0,
                "abort",
            );
            wait_settled(env, namespace, "web", Duration::from_secs(60)).await;
            assert_spec_equal_except(&before, &spec_of(env, namespace, "web").await, &[]);
        } else {
            assert_exit(
                &canary(env, namespace, &["promote", "deploy/web", "--full"]).await,
                0,
                "promote",
            );
            wait_settled(env, namespace, "web", Duration::from_secs(60)).await;
            assert_spec_equal_except(expected, &spec_of(env, namespace, "web").await, &[]);
            assert_eq!(
                sides(env, namespace, "web", &before, expected).await,
                (0, REPLICAS),
                "every pod runs the release"
            );
        }
        assert!(
            !record_exists(env, namespace, "web").await,
            "the record is gone"
        );
    }
}

/// A way in whose expected spec comes from `kubectl ORACLE --dry-run=server`.
async fn way_in(env: &TestEnv, prefix: &str, start: &[&str], oracle_args: &[&str], summary: &str) {
    let ns = TestNamespace::create(env, prefix).await;
    base(env, &ns.name, "web").await;
    let expected = oracle(env, &ns.name, oracle_args).await;
    let mut args = vec!["start".to_string(), "deploy/web".to_string()];
    args.extend(start.iter().map(|s| s.to_string()));
    args.extend(["--canary".to_string(), "1".to_string()]);
    scenario(env, &ns.name, args, &expected, false, summary).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_an_env_var_and_args_are_canaried() {
    let Some(env) = TestEnv::get() else { return };
    const ARGS_PATCH: &str = r#"{"spec":{"template":{"spec":{"containers":[{"name":"nginx","args":["-g","daemon off;"]}]}}}}"#;
    futures::join!(
        way_in(
            &env,
            "rel-image",
            &["nginx=nginx:1.15"],
            &["set", "image", "deploy/web", "nginx=nginx:1.15"],
            "nginx=nginx:1.15"
        ),
        way_in(
            &env,
            "rel-env",
            &["--env", "nginx:MODE=b"],
            &["set", "env", "deploy/web", "-c", "nginx", "MODE=b"],
            "spec.containers[nginx].env[MODE].value"
        ),
        way_in(
            &env,
            "rel-args",
            &["--patch", ARGS_PATCH],
            &["patch", "deploy/web", "-p", ARGS_PATCH],
            "spec.containers[nginx].args"
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_a_sidecar_and_each_patch_type_are_canaried() {
    let Some(env) = TestEnv::get() else { return };
    const RESOURCES: &str = r#"[{"op":"add","path":"/spec/template/spec/containers/0/resources","value":{"requests":{"cpu":"50m","memory":"32Mi"}}}]"#;
    const SIDECAR: &str = r#"{"spec":{"template":{"spec":{"containers":[{"name":"log","image":"busybox:1.36","args":["sleep","3600"]}]}}}}"#;
    const MERGE: &str = r#"{"spec":{"template":{"metadata":{"annotations":{"release":"2"}}}}}"#;
    futures::join!(
        way_in(
            &env,
            "rel-json",
            &["--type", "json", "--patch", RESOURCES],
            &["patch", "deploy/web", "--type", "json", "-p", RESOURCES],
            "spec.containers[nginx].resources"
        ),
        way_in(
            &env,
            "rel-sidecar",
            &["--patch", SIDECAR],
            &["patch", "deploy/web", "-p", SIDECAR],
            "+spec.containers[log]"
        ),
        way_in(
            &env,
            "rel-merge",
            &["--type", "merge", "--patch", MERGE],
            &["patch", "deploy/web", "--type", "merge", "-p", MERGE],
            "metadata.annotations.release"
        ),
    );
}

/// A renamed ConfigMap (kustomize's configMapGenerator) from a multi-document manifest
/// file, and a sidecar and an environment variable from a manifest on standard input,
/// combined with an image on the command line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_from_a_file_and_standard_input_are_canaried() {
    let Some(env) = TestEnv::get() else { return };
    let renamed = async {
        let ns = TestNamespace::create(&env, "rel-manifest").await;
        base(&env, &ns.name, "web").await;
        let files = Scratch::new(&ns.name);
        let file = write(
            &files,
            "web.yaml",
            &manifest("web", |d| {
                d["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"] =
                    json!("web-config-2")
            }),
        );
        let path = file.display().to_string();
        let expected = oracle(&env, &ns.name, &["apply", "-f", &path]).await;
        scenario(
            &env,
            &ns.name,
            vec![
                "start".into(),
                "deploy/web".into(),
                "-f".into(),
                path.clone(),
            ],
            &expected,
            false,
            "spec.volumes[config].configMap.name",
        )
        .await;
    };
    let stdin = async {
        let ns = TestNamespace::create(&env, "rel-stdin").await;
        base(&env, &ns.name, "web").await;
        let text = manifest("web", |d| {
            let containers = d["spec"]["template"]["spec"]["containers"]
                .as_array_mut()
                .unwrap();
            containers[0]["env"] = json!([{"name": "MODE", "value": "c"}]);
            containers.push(json!({"name": "log", "image": "busybox:1.36"}));
        });
        let files = Scratch::new(&ns.name);
        let file = write(&files, "stdin.yaml", &text);
        let path = file.display().to_string();
        // What kubectl makes of the manifest, with the image given beside it.
        let applied = oracle(&env, &ns.name, &["apply", "-f", &path]).await;
        let mut expected = applied.clone();
        expected["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.15");
        scenario(
            &env,
            &ns.name,
            vec![
                "start".into(),
                "deploy/web".into(),
                "-f".into(),
                "-".into(),
                "nginx=nginx:1.15".into(),
                format!("< {path}"),
            ],
            &expected,
            true,
            "nginx=nginx:1.15",
        )
        .await;
    };
    futures::join!(renamed, stdin);
}

/// `apply -f DIR` of a Service, a new ConfigMap and two Deployments whose templates change:
/// the others applied, each Deployment canaried with `--auto` and promoted; the exit code is
/// the outcome. Then a release whose first canary crash-loops: rolled back, exit 11, the
/// second Deployment left as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_of_a_directory_canaries_each_changed_deployment() {
    let Some(env) = TestEnv::get() else { return };
    let ns = TestNamespace::create(&env, "rel-apply").await;
    base(&env, &ns.name, "web").await;
    base(&env, &ns.name, "api").await;
    let files = Scratch::new(&ns.name);
    let dir = files.join("manifests");
    let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-config-3"}, "data": {"mode": "3"}});
    write(
        &dir,
        "config.yaml",
        &serde_saphyr::to_string(&config).unwrap(),
    );
    write(
        &dir,
        "web.yaml",
        &manifest("web", |d| {
            d["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"] = json!("web-config-3")
        }),
    );
    write(
        &dir,
        "api.yaml",
        &manifest("api", |d| {
            d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.15")
        })
        .replace(
            "kind: Service\nmetadata:\n  name: api",
            "kind: Service\nmetadata:\n  name: api-svc",
        ),
    );
    write(&dir, "notes.txt", "not a manifest");
    let path = dir.display().to_string();
    let before_web = spec_of(&env, &ns.name, "web").await;
    let expected_web = oracle(
        &env,
        &ns.name,
        &["apply", "-f", &dir.join("web.yaml").display().to_string()],
    )
    .await;
    let expected_api = oracle(
        &env,
        &ns.name,
        &["apply", "-f", &dir.join("api.yaml").display().to_string()],
    )
    .await;
    let dry = canary(&env, &ns.name, &["apply", "-f", &path, "--dry-run"]).await;
    assert_exit(&dry, 0, "apply --dry-run");
    let said = String::from_utf8_lossy(&dry.stdout);
    assert!(
        said.contains("2 Deployment(s) released with a canary (deploy/api, deploy/web)"),
        "{said}"
    );
    assert!(
        said.contains("~ spec.volumes[config].configMap.name: \"web-config-1\" → \"web-config-3\""),
        "{said}"
    );
    assert_spec_equal_except(&before_web, &spec_of(&env, &ns.name, "web").await, &[]);
    assert!(!record_exists(&env, &ns.name, "web").await);

    let out = canary(
        &env,
        &ns.name,
        &["apply", "-f", &path, "--auto", "--interval", "2s"],
    )
    .await;
    assert_exit(&out, 0, "apply --auto");
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(env.client().await, &ns.name);
    assert!(
        services.get_opt("web").await.unwrap().is_some(),
        "the Service is applied"
    );
    let configs: Api<ConfigMap> = Api::namespaced(env.client().await, &ns.name);
    assert!(
        configs.get_opt("web-config-3").await.unwrap().is_some(),
        "the ConfigMap is applied"
    );
    for (name, expected) in [("web", &expected_web), ("api", &expected_api)] {
        wait_settled(&env, &ns.name, name, Duration::from_secs(60)).await;
        assert_spec_equal_except(expected, &spec_of(&env, &ns.name, name).await, &[]);
        assert!(!record_exists(&env, &ns.name, name).await);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("1 canary pod(s) changing nginx=nginx:1.15"),
        "{stdout}"
    );

    // The next release: api crash-loops, so its canary is rolled back and web is not touched.
    write(
        &dir,
        "api.yaml",
        &manifest("api", |d| {
            d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.16__crashloop")
        })
        .replace(
            "kind: Service\nmetadata:\n  name: api",
            "kind: Service\nmetadata:\n  name: api-svc",
        ),
    );
    write(
        &dir,
        "web.yaml",
        &manifest("web", |d| {
            d["spec"]["template"]["spec"]["containers"][0]["env"] =
                json!([{"name": "MODE", "value": "z"}]);
        }),
    );
    let api_before = spec_of(&env, &ns.name, "api").await;
    let web_before = spec_of(&env, &ns.name, "web").await;
    let out = canary(
        &env,
        &ns.name,
        &["apply", "-f", &path, "--auto", "--interval", "20s"],
    )
    .await;
    assert_exit(&out, 11, "apply --auto with a crash-looping release");
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("not released (their manifests not applied): deploy/web"),
        "{}",
        text(&out)
    );
    wait_settled(&env, &ns.name, "api", Duration::from_secs(60)).await;
    assert_spec_equal_except(&api_before, &spec_of(&env, &ns.name, "api").await, &[]);
    assert_spec_equal_except(&web_before, &spec_of(&env, &ns.name, "web").await, &[]);
}

/// One bad input: what it is, its manifest (or none), other flags, the exit code, and
/// what the message must say.
type BadCase<'a> = (&'a str, PathBuf, Vec<&'a str>, i32, Vec<String>);

/// Bad input: refused with what was wrong (file and line) and what to do; nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_release_input_is_refused_and_changes_nothing() {
    let Some(env) = TestEnv::get() else { return };
    let ns = TestNamespace::create(&env, "rel-bad").await;
    base(&env, &ns.name, "web").await;
    let files = Scratch::new(&ns.name);
    let dir = files.to_path_buf();
    let service_only =
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports: [{port: 80}]\n";
    let cases: Vec<BadCase> = vec![
        (
            "another kind",
            write(&dir, "service.yaml", service_only),
            vec![],
            REFUSED,
            vec![
                "service.yaml has no Deployment web".into(),
                "Service/web (line 1)".into(),
            ],
        ),
        (
            "another Deployment",
            write(&dir, "api.yaml", &manifest("api", |_| {})),
            vec![],
            REFUSED,
            vec![
                "has no Deployment web".into(),
                "Deployment/api (line 12)".into(),
            ],
        ),
        (
            "another selector",
            write(
                &dir,
                "selector.yaml",
                &manifest("web", |d| {
                    d["spec"]["selector"] = json!({"matchLabels": {"app": "web", "tier": "x"}});
                    d["spec"]["template"]["metadata"]["labels"]["tier"] = json!("x");
                }),
            ),
            vec![],
            REFUSED,
            vec!["selector.yaml, line 12: spec.selector differs".into()],
        ),
        (
            "unparseable",
            write(
                &dir,
                "broken.yaml",
                &format!("{}\n  containers: [oops\n", manifest("web", |_| {})),
            ),
            vec![],
            USAGE,
            vec![
                "broken.yaml, line ".into(),
                "cannot be read as YAML or JSON".into(),
            ],
        ),
        (
            "only a ConfigMap's content",
            write(
                &dir,
                "same.yaml",
                &format!(
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config-1\ndata:\n  mode: changed\n---\n{}",
                    manifest("web", |_| {})
                ),
            ),
            vec![],
            REFUSED,
            vec![
                "does not change the pod template".into(),
                "give it a new name".into(),
            ],
        ),
        (
            "replicas outside the template",
            write(
                &dir,
                "scaled.yaml",
                &manifest("web", |d| {
                    d["spec"]["replicas"] = json!(6);
                    d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.15");
                }),
            ),
            vec![],
            REFUSED,
            vec![
                "also changes spec.replicas".into(),
                "apply them separately".into(),
            ],
        ),
        (
            "a patch outside the template",
            PathBuf::new(),
            vec!["--patch", r#"{"spec":{"minReadySeconds":9}}"#],
            REFUSED,
            vec!["--patch: the release also changes spec.minReadySeconds".into()],
        ),
        (
            "an unknown container",
            PathBuf::new(),
            vec!["--env", "db:MODE=b"],
            REFUSED,
            vec!["container 'db' (--env db:MODE=b) is not in the pod template".into()],
        ),
        (
            "a malformed --env",
            PathBuf::new(),
            vec!["--env", "nginx=MODE"],
            USAGE,
            vec!["CONTAINER:NAME=VALUE".into()],
        ),
    ];
    for (what, file, extra, code, expected) in cases {
        let before = deployment_json(&env, &ns.name, "web").await;
        let path = file.display().to_string();
        let mut args = vec!["start", "deploy/web"];
        if !path.is_empty() {
            args.extend(["-f", &path]);
        }
        args.extend(extra);
        let out = canary(&env, &ns.name, &args).await;
        assert_exit(&out, code, what);
        let stderr = String::from_utf8_lossy(&out.stderr);
        for part in &expected {
            assert!(
                stderr.contains(part.as_str()),
                "{what}: {part:?} not in\n{stderr}"
            );
        }
        assert_eq!(
            before,
            deployment_json(&env, &ns.name, "web").await,
            "{what}: nothing written"
        );
        assert!(
            !record_exists(&env, &ns.name, "web").await,
            "{what}: no record"
        );
    }
    // apply: one refused Deployment refuses the whole apply before anything is applied.
    let apply_dir = dir.join("apply");
    write(
        &apply_dir,
        "a-service.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: fresh\nspec:\n  ports: [{port: 80}]\n",
    );
    write(
        &apply_dir,
        "web.yaml",
        &manifest("web", |d| {
            d["spec"]["replicas"] = json!(6);
            d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.15");
        }),
    );
    let out = canary(
        &env,
        &ns.name,
        &["apply", "-f", &apply_dir.display().to_string()],
    )
    .await;
    assert_exit(&out, REFUSED, "apply with a refused Deployment");
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(env.client().await, &ns.name);
    assert!(
        services.get_opt("fresh").await.unwrap().is_none(),
        "nothing applied"
    );
    // An object the API server refuses (a port out of range) stops apply before the valid
    // ConfigMap beside it is applied.
    let invalid_dir = dir.join("invalid");
    write(
        &invalid_dir,
        "a-config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fresh-config\ndata:\n  a: b\n",
    );
    write(
        &invalid_dir,
        "b-service.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: broken\nspec:\n  ports: [{port: 70000}]\n",
    );
    let out = canary(
        &env,
        &ns.name,
        &["apply", "-f", &invalid_dir.display().to_string()],
    )
    .await;
    assert_exit(&out, REFUSED, "apply with an invalid Service");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("b-service.yaml, line 1): the API server refuses it"),
        "{}",
        text(&out)
    );
    let configs: Api<ConfigMap> = Api::namespaced(env.client().await, &ns.name);
    assert!(
        configs.get_opt("fresh-config").await.unwrap().is_none(),
        "nothing applied"
    );
}
