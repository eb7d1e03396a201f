//! Test helpers for kubectl-canary integration tests against the project's test
//! environment (`scripts/testenv up`): the environment's coordinates, a namespace per test,
//! Deployments shaped like the handout's, waits that fail with the controller's logs, and a
//! field-by-field comparison of Deployment specs.

pub mod actors;
pub mod api_cost;
pub mod argocd;
pub mod flux;
pub mod foreign;
pub mod gitops;
pub mod kinds;
pub mod proxy;
pub mod reads;
pub mod receiver;
pub mod scenario;
pub mod terminal;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Namespace};
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use serde_json::{Value, json};

/// Where a running test environment is, read from its env file.
#[derive(Debug, Clone)]
pub struct TestEnv {
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// The kubeconfig of the user bound only to the `view` ClusterRole.
    pub restricted_kubeconfig: PathBuf,
    /// The Prometheus base URL.
    pub prometheus_url: String,
    /// The folder of component logs.
    pub logs: PathBuf,
    /// Every key of the env file.
    pub vars: BTreeMap<String, String>,
}

/// The env file of the test environment.
pub fn env_file() -> PathBuf {
    let dir =
        std::env::var("KC_TESTENV_DIR").unwrap_or_else(|_| "/tmp/kubectl-canary-testenv".into());
    Path::new(&dir).join("env")
}

impl TestEnv {
    /// The API server's URL and address, from the env file's `KC_APISERVER_URL` (what a
    /// fault test proxies or points a client at).
    pub fn apiserver(&self) -> (String, std::net::SocketAddr) {
        let url = self
            .vars
            .get("KC_APISERVER_URL")
            .cloned()
            .expect("KC_APISERVER_URL in the env file");
        let address = url
            .trim_start_matches("https://")
            .parse()
            .expect("the API server's address");
        (url, address)
    }

    /// The running test environment. Without one, a test returns early with a note, unless
    /// `KC_TESTENV_REQUIRED=1` (CI), where a missing environment fails the test.
    pub fn get() -> Option<Self> {
        let path = env_file();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) => {
                if std::env::var("KC_TESTENV_REQUIRED").as_deref() == Ok("1") {
                    panic!(
                        "KC_TESTENV_REQUIRED=1 but the test environment is not up ({}: {error}); run scripts/testenv up",
                        path.display()
                    );
                }
                eprintln!(
                    "note: no test environment at {}; this test did nothing (run scripts/testenv up)",
                    path.display()
                );
                return None;
            }
        };
        let vars: BTreeMap<String, String> = text
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
            .collect();
        let var = |key: &str| vars.get(key).cloned().unwrap_or_default();
        Some(Self {
            kubeconfig: PathBuf::from(var("KUBECONFIG")),
            restricted_kubeconfig: PathBuf::from(var("KC_RESTRICTED_KUBECONFIG")),
            prometheus_url: var("KC_PROMETHEUS_URL"),
            logs: PathBuf::from(var("KC_TESTENV_LOGS")),
            vars,
        })
    }

    /// An admin client.
    pub async fn client(&self) -> Client {
        client_for(&self.kubeconfig).await
    }

    /// A client of the restricted user.
    pub async fn restricted_client(&self) -> Client {
        client_for(&self.restricted_kubeconfig).await
    }

    /// The last lines of a component's log, for failure messages.
    pub fn log_tail(&self, component: &str, lines: usize) -> String {
        let path = self.logs.join(format!("{component}.log"));
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let all: Vec<&str> = text.lines().collect();
                all[all.len().saturating_sub(lines)..].join("\n")
            }
            Err(e) => format!("(no log at {}: {e})", path.display()),
        }
    }

    /// Runs a binary (the CLI under test, or kubectl) with the admin kubeconfig.
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        self.run_as(&self.kubeconfig, program, args, &[])
    }

    /// Runs a binary with a given kubeconfig and extra environment variables.
    pub fn run_as(
        &self,
        kubeconfig: &Path,
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Output {
        let mut command = std::process::Command::new(program);
        command
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env_remove("KUBECTL_CANARY_CRASH_AFTER");
        for (k, v) in env {
            command.env(k, v);
        }
        command
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
    }
}

/// Writes a kubeconfig for the ServiceAccount `service_account` of `namespace` to `path`: the
/// environment's API server and CA, and a token of the ServiceAccount (`kubectl create token`,
/// 2 h), so that a process run with it has exactly that account's RBAC. Returns `path`.
pub fn token_kubeconfig(
    env: &TestEnv,
    namespace: &str,
    service_account: &str,
    path: &Path,
) -> PathBuf {
    let kubectl = |args: &[&str]| {
        let output = env.run("kubectl", args);
        assert!(
            output.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    };
    let token = kubectl(&[
        "-n",
        namespace,
        "create",
        "token",
        service_account,
        "--duration=2h",
    ]);
    let server = kubectl(&[
        "config",
        "view",
        "--minify",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ]);
    let ca = kubectl(&[
        "config",
        "view",
        "--minify",
        "--raw",
        "-o",
        "jsonpath={.clusters[0].cluster.certificate-authority-data}",
    ]);
    let kubeconfig = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "testenv", "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": [{"name": service_account, "user": {"token": token}}],
        "contexts": [{"name": service_account, "context": {"cluster": "testenv", "user": service_account}}],
        "current-context": service_account,
    });
    std::fs::write(path, serde_json::to_string_pretty(&kubeconfig).unwrap()).unwrap();
    path.to_path_buf()
}

/// A minimal HTTP/1.0 GET of `path` on 127.0.0.1:`port` (a process's health or metrics
/// endpoint; the tests need no HTTP client crate): the status and the body, `None` when it
/// does not answer.
pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await.ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// Runs kubectl with the admin kubeconfig and returns what it printed; fails the test when
/// kubectl fails.
pub fn kubectl(env: &TestEnv, args: &[&str]) -> String {
    let output = env.run("kubectl", args);
    assert!(
        output.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn client_for(kubeconfig: &Path) -> Client {
    let file = Kubeconfig::read_from(kubeconfig)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", kubeconfig.display()));
    let config = kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("cannot use {}: {e}", kubeconfig.display()));
    Client::try_from(config).expect("a client from the test kubeconfig")
}

/// A namespace of one test, deleted when dropped.
pub struct TestNamespace {
    /// Its name.
    pub name: String,
    kubeconfig: PathBuf,
}

static SEQUENCE: AtomicU32 = AtomicU32::new(0);

impl TestNamespace {
    /// Creates a fresh namespace named after `prefix`.
    pub async fn create(env: &TestEnv, prefix: &str) -> Self {
        let name = format!(
            "{}-{}-{}",
            prefix,
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::SeqCst)
        );
        let api: Api<Namespace> = Api::all(env.client().await);
        api.create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    labels: Some(BTreeMap::from([(
                        "kubectl-canary.io/test".into(),
                        "true".into(),
                    )])),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("cannot create namespace {name}: {e}"));
        Self {
            name,
            kubeconfig: env.kubeconfig.clone(),
        }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // The test's runtime may be gone: delete from a runtime and client of our own.
        let name = self.name.clone();
        let kubeconfig = self.kubeconfig.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let api: Api<Namespace> = Api::all(client_for(&kubeconfig).await);
                api.delete(&name, &DeleteParams::background()).await.ok()
            })
        })
        .join();
    }
}

/// The handout's Deployment: `replicas` pods of `image` in container `nginx`, port 80,
/// scraped by Prometheus, with the given strategy (`None`: the API's default 25%/25%).
pub fn web_deployment(
    name: &str,
    replicas: i32,
    image: &str,
    strategy: Option<Value>,
) -> Deployment {
    let mut spec = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {
                    "labels": {"app": name},
                    "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "80"}
                },
                "spec": {"containers": [{"name": "nginx", "image": image, "ports": [{"containerPort": 80}]}]}
            }
        }
    });
    if let Some(strategy) = strategy {
        spec["spec"]["strategy"] = strategy;
    }
    serde_json::from_value(spec).expect("a valid Deployment")
}

/// The first container of a Deployment's pod template, for a test to change before it
/// creates the Deployment (`web_deployment` has one container, `nginx`).
pub fn first_container(deployment: &mut Deployment) -> &mut Container {
    let spec = deployment.spec.as_mut().expect("a Deployment spec");
    let pod = spec.template.spec.as_mut().expect("a pod template spec");
    pod.containers.first_mut().expect("a container")
}

/// Creates a Deployment and waits until it is fully rolled out.
pub async fn create_settled(env: &TestEnv, namespace: &str, deployment: &Deployment) -> Deployment {
    let api: Api<Deployment> = Api::namespaced(env.client().await, namespace);
    let name = deployment.metadata.name.clone().unwrap_or_default();
    api.create(&PostParams::default(), deployment)
        .await
        .unwrap_or_else(|e| panic!("cannot create deploy/{name}: {e}"));
    wait_settled(env, namespace, &name, Duration::from_secs(60)).await
}

/// Waits until a Deployment's rollout is complete, as `kubectl rollout status` judges it.
pub async fn wait_settled(
    env: &TestEnv,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Deployment {
    let api: Api<Deployment> = Api::namespaced(env.client().await, namespace);
    wait_for(
        env,
        &format!("deploy/{name} in {namespace} to settle"),
        timeout,
        || async {
            let d = api.get(name).await.ok()?;
            let replicas = d.spec.as_ref()?.replicas.unwrap_or(1);
            let status = d.status.clone()?;
            let settled = status.observed_generation >= d.metadata.generation
                && status.updated_replicas.unwrap_or(0) == replicas
                && status.replicas.unwrap_or(0) == replicas
                && status.available_replicas.unwrap_or(0) == replicas;
            settled.then_some(d)
        },
    )
    .await
}

/// Polls `check` until it returns `Some`, or fails the test after `timeout` with the
/// controller-manager's last log lines. Tests use it where a watch would only add noise;
/// the tool itself waits on watches.
pub async fn wait_for<T, F, Fut>(env: &TestEnv, what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out after {}s waiting for {what}\n--- kube-controller-manager log (tail) ---\n{}",
                timeout.as_secs(),
                env.log_tail("kube-controller-manager", 30)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `check` until it holds, or fails the test after `timeout` as [`wait_for`] does.
pub async fn wait_until<F, Fut>(env: &TestEnv, what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(env, what, timeout, || {
        let holds = check();
        async move { holds.await.then_some(()) }
    })
    .await
}

/// Waits until every pod matching `selector` in `namespace` is Ready (a side of a canary:
/// `pod-template-hash=...`).
pub async fn wait_pods_ready(env: &TestEnv, namespace: &str, selector: &str, timeout: Duration) {
    wait_pods_condition(env, namespace, selector, ("Ready", "True"), timeout).await;
}

/// Waits until every pod matching `selector` in `namespace` has the condition `(type,
/// status)`, e.g. `("PodScheduled", "False")`: the scheduler's verdict.
pub async fn wait_pods_condition(
    env: &TestEnv,
    namespace: &str,
    selector: &str,
    (type_, status): (&str, &str),
    timeout: Duration,
) {
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(env.client().await, namespace);
    let params = kube::api::ListParams::default().labels(selector);
    wait_for(
        env,
        &format!("pods {selector} in {namespace} {type_}={status}"),
        timeout,
        || async {
            let list = pods.list(&params).await.ok()?;
            list.items
                .iter()
                .all(|p| {
                    p.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == type_ && c.status == status))
                })
                .then_some(())
        },
    )
    .await;
}

/// A Deployment's spec as JSON.
pub async fn spec_of(env: &TestEnv, namespace: &str, name: &str) -> Value {
    let api: Api<Deployment> = Api::namespaced(env.client().await, namespace);
    let d = api
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("cannot read deploy/{name}: {e}"));
    serde_json::to_value(d.spec).expect("a spec serializes")
}

/// Every leaf of two JSON values that differs, as `path: before -> after`.
pub fn differences(before: &Value, after: &Value) -> Vec<String> {
    fn walk(path: String, a: &Value, b: &Value, out: &mut Vec<String>) {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    walk(
                        format!("{path}.{k}"),
                        x.get(k).unwrap_or(&Value::Null),
                        y.get(k).unwrap_or(&Value::Null),
                        out,
                    );
                }
            }
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
                for (i, (p, q)) in x.iter().zip(y).enumerate() {
                    walk(format!("{path}[{i}]"), p, q, out);
                }
            }
            _ if a != b => out.push(format!("{path}: {a} -> {b}")),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(String::new(), before, after, &mut out);
    out
}

/// Asserts that two specs are equal field by field, apart from the listed paths (e.g.
/// `.template.spec.containers[0].image` after a promotion).
pub fn assert_spec_equal_except(before: &Value, after: &Value, allowed: &[&str]) {
    let unexpected: Vec<String> = differences(before, after)
        .into_iter()
        .filter(|d| !allowed.iter().any(|a| d.starts_with(&format!("{a}:"))))
        .collect();
    assert!(
        unexpected.is_empty(),
        "the Deployment spec differs from the original:\n{}",
        unexpected.join("\n")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_each_leaf() {
        let a = json!({"a": 1, "b": {"c": [1, 2]}, "d": null});
        let b = json!({"a": 1, "b": {"c": [1, 3]}, "e": true});
        assert_eq!(
            differences(&a, &b),
            vec![
                ".b.c[1]: 2 -> 3".to_string(),
                ".e: null -> true".to_string()
            ]
        );
        assert_spec_equal_except(&a, &json!({"a": 1, "b": {"c": [1, 2]}}), &[]);
    }
}
