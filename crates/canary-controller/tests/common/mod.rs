//! Harness of the GitOps controller tests against testenv: the manifests of `deploy/`
//! applied, the controller binary run as a process with its ServiceAccount's token (so it
//! has exactly the RBAC of the manifests and the policy recognises its writes), a GitOps
//! stand-in re-applying a manifest directory, and watches that count pods and conditions.

#![allow(dead_code)]

pub mod container;
pub mod scenarios;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

#[allow(unused_imports)]
pub use canary_testkit::gitops::{GitOpsRepo, PodCountWatch};
use canary_testkit::{TestEnv, TestNamespace, kubectl};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A scratch directory of one test.
pub fn scratch(namespace: &str) -> PathBuf {
    canary_testkit::scenario::scratch("gitops", namespace)
}

/// `kubectl apply` of deploy/`file`.yaml as the tests apply it (server-side, their own field
/// manager).
pub fn deploy_apply_args(file: &str) -> Vec<String> {
    let path = repo().join(format!("deploy/{file}.yaml"));
    [
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=kc-gitops-tests",
        "-f",
        path.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

/// Applies deploy/'s namespace, ServiceAccount, RBAC and policy (not the controller's
/// Deployment: there is no container runtime) and returns a kubeconfig holding a token of
/// the controller's ServiceAccount.
pub fn install(env: &TestEnv, scratch: &Path) -> PathBuf {
    for file in ["namespace", "serviceaccount", "rbac", "policy"] {
        let args = deploy_apply_args(file);
        kubectl(env, &args.iter().map(String::as_str).collect::<Vec<_>>());
    }
    canary_testkit::token_kubeconfig(
        env,
        "kubectl-canary-system",
        "kubectl-canary-controller",
        &scratch.join("controller.kubeconfig"),
    )
}

/// The file that, while it exists, holds the recorded steps of the controllers of
/// `namespace` (a test hook: `canary_kube::test_hooks::HOLD_STEPS_WHILE`).
pub fn hold_steps_file(namespace: &str) -> PathBuf {
    scratch(namespace).join("hold-steps")
}

/// A controller process, SIGKILLed when dropped.
pub struct ControllerProcess {
    pub child: Child,
    pub identity: String,
    pub port: u16,
    pub log: PathBuf,
}

impl ControllerProcess {
    /// Starts `kubectl-canary-controller` for `namespace` with its own Lease.
    pub fn start(
        kubeconfig: &Path,
        namespace: &str,
        lease: &str,
        identity: &str,
        extra: &[&str],
    ) -> Self {
        let port = free_port();
        let log = scratch(namespace).join(format!("{identity}.log"));
        // KC_CONTROLLER_BIN: another build to compare with (the fault matrix's "before").
        let binary = std::env::var("KC_CONTROLLER_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_kubectl-canary-controller").to_string());
        let child = Command::new(binary)
            .args([
                "--namespace",
                namespace,
                "--lease-name",
                lease,
                "--identity",
                identity,
            ])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(if extra.contains(&"--lease-seconds") {
                &[][..]
            } else {
                &["--lease-seconds", "6"][..]
            })
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,canary_controller=debug")
            .env(
                canary_kube::test_hooks::HOLD_STEPS_WHILE,
                hold_steps_file(namespace),
            )
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(
                std::fs::File::options().append(true).open(&log).unwrap(),
            ))
            .spawn()
            .expect("the controller binary runs");
        Self {
            child,
            identity: identity.to_string(),
            port,
            log,
        }
    }

    /// The process's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET of one of its endpoints.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        canary_testkit::http_get(self.port, path).await
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The Deployment the stand-in applies: `web`, opted in, with the policy annotations given.
pub fn manifest(
    namespace: &str,
    replicas: i32,
    image: &str,
    annotations: &impl serde::Serialize,
) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": namespace,
            "labels": {"kubectl-canary.io/gitops": "enabled"},
            "annotations": annotations,
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": image}]},
            },
        },
    })
}

/// The record's JSON, if any.
pub async fn record(client: &kube::Client, namespace: &str) -> Option<Value> {
    canary_testkit::reads::record_json(client, namespace, "web").await
}

/// The Deployment.
pub async fn deployment(client: &kube::Client, namespace: &str) -> Deployment {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    api.get("web").await.unwrap()
}

/// Events on `web` with `reason`.
pub async fn events_with_reason(
    client: &kube::Client,
    namespace: &str,
    reason: &str,
) -> Vec<String> {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), namespace);
    api.list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .map(|e| e.note.unwrap_or_default())
        .collect()
}

/// The pods of the namespace by image, not terminating.
pub async fn pods_by_image(client: &kube::Client, namespace: &str) -> BTreeMap<String, usize> {
    canary_testkit::reads::pods_by_image(client, namespace, "").await
}

/// The analysis spec ConfigMap `web-analysis` with a strict pod-health check.
pub async fn create_analysis(client: &kube::Client, namespace: &str, spec: &str) {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "web-analysis"},
        "data": {"analysis.yaml": spec},
    }))
    .unwrap();
    api.create(&Default::default(), &cm).await.unwrap();
}

/// A strict pod-health analysis.
pub const POD_HEALTH: &str =
    "checks:\n  - name: pods\n    podHealth: { readyDeadline: 60s, maxRestarts: 0 }\n";

/// Everything one test needs.
pub struct Setup {
    pub env: TestEnv,
    pub namespace: TestNamespace,
    pub client: kube::Client,
    pub kubeconfig: PathBuf,
}

impl Drop for Setup {
    /// The test's Leases live in the controller's namespace (deploy/'s RBAC allows no other):
    /// delete them with the test. The namespace deletes itself (canary-testkit).
    fn drop(&mut self) {
        let lease = format!("lease-{}", self.namespace.name);
        let _ = self.env.run(
            "kubectl",
            &[
                "-n",
                "kubectl-canary-system",
                "delete",
                "lease",
                &lease,
                "--ignore-not-found",
            ],
        );
    }
}

/// Waits until the API server applies the brake policy: a server-side dry-run update of
/// an opted-in probe Deployment (stored with 0 replicas, so it has no pods; the update
/// asks for 1, so that the policy's first size fits) with a new image comes back braked. The API
/// server compiles a new or changed MutatingAdmissionPolicy asynchronously after it is
/// stored; a test whose first commit comes before that sees it roll out unbraked (the
/// policy's failurePolicy is Ignore). Seen in CI on a fresh testenv: the first test to
/// commit had its change rolled out at once (the controller found no brake: `Idle`) while
/// a test committing half a second later was braked.
pub async fn wait_until_policy_brakes(env: &TestEnv, client: &kube::Client, namespace: &str) {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let probe = |image: &str, replicas: i32| -> Deployment {
        serde_json::from_value(json!({
            "metadata": {
                "name": "policy-probe",
                "labels": {"kubectl-canary.io/gitops": "enabled"},
                "annotations": {"kubectl-canary.io/canary-pods": "1"},
            },
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "policy-probe"}},
                "template": {
                    "metadata": {"labels": {"app": "policy-probe"}},
                    "spec": {"containers": [{"name": "probe", "image": image}]},
                },
            },
        }))
        .unwrap()
    };
    api.create(&Default::default(), &probe("probe:1", 0))
        .await
        .expect("create the policy probe");
    let dry_run = kube::api::PostParams {
        dry_run: true,
        ..Default::default()
    };
    canary_testkit::wait_for(
        env,
        "the brake policy to be in effect (a dry-run image change of an opted-in Deployment braked)",
        Duration::from_secs(60),
        || {
            let (api, dry_run) = (api.clone(), dry_run.clone());
            let mut changed = probe("probe:2", 1);
            async move {
                let stored = api.get("policy-probe").await.ok()?;
                changed.metadata.resource_version = stored.metadata.resource_version;
                let braked = api.replace("policy-probe", &dry_run, &changed).await.ok()?;
                braked
                    .annotations()
                    .contains_key("kubectl-canary.io/brake")
                    .then_some(())
            }
        },
    )
    .await;
    api.delete("policy-probe", &Default::default())
        .await
        .expect("delete the policy probe");
}

/// A namespace and the installed manifests, the policy in effect; `None` without testenv
/// (see canary-testkit).
pub async fn setup(prefix: &str) -> Option<Setup> {
    let env = TestEnv::get()?;
    let namespace = TestNamespace::create(&env, prefix).await;
    let client = env.client().await;
    let kubeconfig = install(&env, &scratch(&namespace.name));
    wait_until_policy_brakes(&env, &client, &namespace.name).await;
    Some(Setup {
        env,
        namespace,
        client,
        kubeconfig,
    })
}

/// The stable image of the scenarios.
pub const V1: &str = "nginx:1.14";
/// The image most scenarios commit.
pub const V2: &str = "nginx:1.15";
/// A third version.
pub const V3: &str = "nginx:1.16";
/// A version whose pods crash-loop.
pub const BAD: &str = "nginx:1.15__crashloop";

/// The policy annotations: a canary of 1 pod analysed by `web-analysis` every `interval`,
/// then `steps` (none when empty).
pub fn policy(steps: &str, interval: &str) -> BTreeMap<String, String> {
    let mut annotations: BTreeMap<String, String> = [
        ("kubectl-canary.io/canary-pods", "1"),
        ("kubectl-canary.io/interval", interval),
        ("kubectl-canary.io/analysis", "web-analysis"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .into();
    if !steps.is_empty() {
        annotations.insert("kubectl-canary.io/steps".into(), steps.into());
    }
    annotations
}

/// The rollout fields of the Deployment's spec as JSON.
pub async fn rollout_fields(client: &kube::Client, namespace: &str) -> Value {
    let spec = serde_json::to_value(deployment(client, namespace).await.spec.unwrap()).unwrap();
    json!({
        "strategy": spec["strategy"],
        "minReadySeconds": spec.get("minReadySeconds").cloned().unwrap_or(Value::Null),
        "progressDeadlineSeconds": spec["progressDeadlineSeconds"],
        "paused": spec.get("paused").cloned().unwrap_or(Value::Null),
    })
}

/// The API's default rollout fields, as [`rollout_fields`] reads them.
pub fn default_rollout() -> Value {
    json!({
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
        "minReadySeconds": Value::Null,
        "progressDeadlineSeconds": 600,
        "paused": Value::Null,
    })
}

/// The Deployment's `kubectl-canary.io/` annotations other than the policy's own.
pub fn kubectl_canary_annotations(d: &Deployment) -> Vec<String> {
    d.annotations()
        .keys()
        .filter(|k| {
            k.starts_with("kubectl-canary.io/")
                && ![
                    "canary-pods",
                    "steps",
                    "interval",
                    "analysis",
                    "mode",
                    "approve-before",
                    "approval-timeout",
                    "on-approval-timeout",
                    "notify",
                ]
                .iter()
                .any(|p| k.ends_with(p))
        })
        .cloned()
        .collect()
}

/// What applies Git to the cluster in a scenario.
pub enum Git {
    /// The GitOps stand-in: `kubectl apply --server-side` as Argo CD's field manager, at each
    /// commit and every 2 s (canary_testkit::gitops).
    StandIn(GitOpsRepo),
    /// The real Flux: a Git server, source-controller and kustomize-controller
    /// (canary_testkit::flux), which applies a commit once it is pushed and re-applies by
    /// itself (drift detection) every interval and on request.
    Flux(Box<canary_testkit::flux::Flux>),
}

impl Git {
    /// A commit of `manifest`; returns once it is applied.
    pub async fn commit(&self, env: &TestEnv, manifest: &Value) {
        match self {
            Git::StandIn(repo) => repo.commit(env, manifest),
            Git::Flux(flux) => {
                flux.commit(manifest, "web").await;
            }
        }
    }

    /// Stops the stand-in's re-applies (Flux goes on re-applying on its interval).
    pub async fn stop(&self) {
        if let Git::StandIn(repo) = self {
            repo.stop().await;
        }
    }

    /// The scenario's Flux.
    pub fn flux(&self) -> &canary_testkit::flux::Flux {
        match self {
            Git::Flux(flux) => flux,
            Git::StandIn(_) => panic!("a scenario under the stand-in has no Flux"),
        }
    }
}

/// One opted-in `web` under Git, settled on [`V1`]: the setup, Git (the stand-in or Flux)
/// applying it with `annotations`, and its rollout fields before any canary.
pub struct Scenario {
    pub setup: Setup,
    pub git: Git,
    pub annotations: BTreeMap<String, String>,
    pub replicas: i32,
    pub before: Value,
    pub client: kube::Client,
    pub ns: String,
}

impl Scenario {
    /// [`setup`], the analysis spec `analysis` (none when `None`), Git applying `web` at
    /// `replicas` pods of [`V1`] with `annotations`, all pods on it.
    pub async fn settled(
        prefix: &str,
        replicas: i32,
        annotations: BTreeMap<String, String>,
        analysis: Option<&str>,
    ) -> Option<Self> {
        Self::settled_with_stable(prefix, replicas, annotations, analysis, V1).await
    }

    /// As [`Scenario::settled`], with `stable` in place of [`V1`] (a stable version whose
    /// pods take a while to become Ready, say).
    pub async fn settled_with_stable(
        prefix: &str,
        replicas: i32,
        annotations: BTreeMap<String, String>,
        analysis: Option<&str>,
        stable: &str,
    ) -> Option<Self> {
        Self::settled_by(prefix, replicas, annotations, analysis, stable, None).await
    }

    /// As [`Scenario::settled`], with the real Flux applying Git (`settings`: how its
    /// Kustomization is set up) in place of the stand-in.
    pub async fn settled_under_flux(
        prefix: &str,
        replicas: i32,
        annotations: BTreeMap<String, String>,
        analysis: Option<&str>,
        settings: canary_testkit::flux::Settings,
    ) -> Option<Self> {
        Self::settled_by(prefix, replicas, annotations, analysis, V1, Some(settings)).await
    }

    async fn settled_by(
        prefix: &str,
        replicas: i32,
        annotations: BTreeMap<String, String>,
        analysis: Option<&str>,
        stable: &str,
        flux: Option<canary_testkit::flux::Settings>,
    ) -> Option<Self> {
        let setup = setup(prefix).await?;
        let (client, ns) = (setup.client.clone(), setup.namespace.name.clone());
        if let Some(spec) = analysis {
            create_analysis(&client, &ns, spec).await;
        }
        let first = manifest(&ns, replicas, stable, &annotations);
        let git = match flux {
            None => Git::StandIn(GitOpsRepo::start(&setup.env, &ns, &first)),
            Some(settings) => Git::Flux(Box::new(
                canary_testkit::flux::Flux::start(&setup.env, &ns, &first, settings).await,
            )),
        };
        let mut scenario = Self {
            setup,
            git,
            annotations,
            replicas,
            before: Value::Null,
            client,
            ns,
        };
        scenario.settled_on(stable, replicas as usize).await;
        scenario.before = rollout_fields(&scenario.client, &scenario.ns).await;
        Some(scenario)
    }

    /// The controller for this namespace, with the test's Lease.
    pub fn controller(&self, identity: &str, extra: &[&str]) -> ControllerProcess {
        ControllerProcess::start(
            &self.setup.kubeconfig,
            &self.ns,
            &self.lease(),
            identity,
            extra,
        )
    }

    /// The test's Lease.
    pub fn lease(&self) -> String {
        format!("lease-{}", self.ns)
    }

    /// The manifest of `web` with the scenario's annotations.
    pub fn manifest(&self, replicas: i32, image: &str) -> Value {
        manifest(&self.ns, replicas, image, &self.annotations)
    }

    /// A commit of `image` at the scenario's replicas; returns once it is applied.
    pub async fn commit(&self, image: &str) {
        self.commit_manifest(&self.manifest(self.replicas, image))
            .await;
    }

    /// A commit of `manifest`; returns once it is applied.
    pub async fn commit_manifest(&self, manifest: &Value) {
        self.git.commit(&self.setup.env, manifest).await;
    }

    /// Waits until Git has re-applied the current manifest `times` times: the stand-in's
    /// applies every 2 s, or Flux's reconciles on request (each a drift detection and apply).
    pub async fn reapplied(&self, times: u32) {
        match &self.git {
            Git::StandIn(repo) => {
                let then = *repo.applies.lock().unwrap();
                canary_testkit::wait_until(
                    &self.setup.env,
                    &format!("{times} more applies of the stand-in"),
                    Duration::from_secs(30),
                    || async move { *repo.applies.lock().unwrap() >= then + times },
                )
                .await;
            }
            Git::Flux(flux) => {
                for _ in 0..times {
                    flux.reconcile().await;
                }
            }
        }
    }

    /// The rollout fields now.
    pub async fn rollout_fields(&self) -> Value {
        rollout_fields(&self.client, &self.ns).await
    }

    /// Waits until all `replicas` pods run `image`, available and updated.
    pub async fn settled_on(&self, image: &str, replicas: usize) {
        let (client, ns) = (&self.client, self.ns.clone());
        canary_testkit::wait_for(
            &self.setup.env,
            &format!("all {replicas} pods on {image}"),
            Duration::from_secs(90),
            || {
                let (client, ns) = (client.clone(), ns.clone());
                let image = image.to_string();
                async move {
                    let pods = pods_by_image(&client, &ns).await;
                    let d = deployment(&client, &ns).await;
                    let status = d.status.clone().unwrap_or_default();
                    (pods.get(&image) == Some(&replicas)
                        && pods.len() == 1
                        && status.available_replicas == Some(replicas as i32)
                        && status.updated_replicas == Some(replicas as i32))
                    .then_some(())
                }
            },
        )
        .await;
    }

    /// Waits until the pods are exactly `counts` (image, pods); the resourceVersion of the
    /// list that found them.
    pub async fn pods_are(&self, what: &str, counts: &[(&str, usize)], timeout: Duration) -> u64 {
        let want: BTreeMap<String, usize> =
            counts.iter().map(|(i, n)| (i.to_string(), *n)).collect();
        let (client, ns) = (&self.client, self.ns.as_str());
        let want = &want;
        canary_testkit::wait_for(&self.setup.env, what, timeout, || async move {
            let (counts, at) = canary_testkit::reads::pods_by_image_at(client, ns, "").await;
            (counts == *want).then_some(at)
        })
        .await
    }

    /// Waits until the record is closed.
    pub async fn record_gone(&self) {
        let (client, ns) = (&self.client, self.ns.as_str());
        canary_testkit::wait_until(
            &self.setup.env,
            "the canary record to be closed",
            Duration::from_secs(120),
            || async move { record(client, ns).await.is_none() },
        )
        .await;
    }

    /// Waits until the record is in `phase` and `extra` holds of it; returns it.
    pub async fn phase_is(&self, phase: &str, extra: impl Fn(&Value) -> bool) -> Value {
        let (client, ns) = (&self.client, self.ns.as_str());
        let extra = &extra;
        canary_testkit::wait_for(
            &self.setup.env,
            &format!("the record in phase {phase}"),
            Duration::from_secs(120),
            || async move {
                let record = record(client, ns).await?;
                (record["phase"]["name"] == phase && extra(&record)).then_some(record)
            },
        )
        .await
    }

    /// Waits until the controller has begun a canary (its record is starting or holding).
    pub async fn record_begun(&self) -> Value {
        let (client, ns) = (&self.client, self.ns.as_str());
        canary_testkit::wait_for(
            &self.setup.env,
            "the record of a begun canary",
            Duration::from_secs(120),
            || async move {
                let record = record(client, ns).await?;
                ["starting", "holding"]
                    .contains(&record["phase"]["name"].as_str().unwrap_or_default())
                    .then_some(record)
            },
        )
        .await
    }

    /// Waits up to 30 s for an Event on `web` with `reason`; returns the last one's note.
    pub async fn event(&self, reason: &str) -> String {
        let (client, ns) = (&self.client, self.ns.as_str());
        canary_testkit::wait_for(
            &self.setup.env,
            &format!("a {reason} Event"),
            Duration::from_secs(30),
            || async move { events_with_reason(client, ns, reason).await.pop() },
        )
        .await
    }

    /// How many Events on `web` have `reason`, once there is one (an Event follows the
    /// write it reports, so a test that has seen the write may ask before it exists).
    pub async fn said(&self, reason: &str) -> usize {
        self.event(reason).await;
        self.events(reason).await
    }

    /// How many Events on `web` have `reason`.
    pub async fn events(&self, reason: &str) -> usize {
        events_with_reason(&self.client, &self.ns, reason)
            .await
            .len()
    }

    /// The Deployment now.
    pub async fn deployment(&self) -> Deployment {
        deployment(&self.client, &self.ns).await
    }

    /// Asserts that the Deployment's own rollout fields are back and no annotation of the
    /// brake is left.
    pub async fn assert_own_settings_back(&self) {
        assert_eq!(
            self.rollout_fields().await,
            self.before,
            "the Deployment's own settings are back"
        );
        assert_eq!(
            kubectl_canary_annotations(&self.deployment().await),
            Vec::<String>::new()
        );
    }
}

/// One version of the Deployment as Argo CD sees it: the record's phase when it was written,
/// the shape of the canary it shows, and its health under deploy/argocd/health.lua.
pub struct ArgoView {
    /// The record's phase (empty before the record, `closed` after).
    pub phase: String,
    /// `held` (braked, paused, canary pods counted), `stepping` (braked, the record
    /// promoting), `resting` (braked, paused, no canary pod, the record aborting), `braked`
    /// (any other braked version) or `plain` (no brake).
    pub shape: &'static str,
    /// What Argo CD shows.
    pub health: canary_testkit::argocd::Health,
}

/// Argo CD's health (deploy/argocd/health.lua under gopher-lua, `canary_testkit::argocd`) of
/// every version of `web` the observer saw.
pub fn argocd_views(observer: &PodCountWatch) -> Vec<ArgoView> {
    let versions = observer.deployments_by_phase();
    let objects: Vec<Value> = versions.iter().map(|(_, d)| d.clone()).collect();
    let healths = canary_testkit::argocd::health(&objects);
    versions
        .into_iter()
        .zip(healths)
        .map(|((phase, d), health)| {
            let braked = d["metadata"]["annotations"]
                .get(canary_core::gitops::brake::BRAKE_ANNOTATION)
                .is_some();
            let paused = d["spec"]["paused"] == true;
            let observed = d["status"]["observedGeneration"] == d["metadata"]["generation"];
            let updated = d["status"]["updatedReplicas"].as_i64().unwrap_or(0);
            let shape = match (braked, phase.as_str()) {
                (false, _) => "plain",
                (true, "starting" | "holding") if paused && observed && updated > 0 => "held",
                (true, "promoting") => "stepping",
                (true, "aborting") if paused && observed && updated == 0 => "resting",
                (true, _) => "braked",
            };
            ArgoView {
                phase,
                shape,
                health,
            }
        })
        .collect()
}

/// Asserts the health Argo CD shows through a canary, version by version of the Deployment:
/// Healthy before it and at the end; Progressing while braked and not failed (held, stepping);
/// Degraded while a failed canary rests on the stable pods and never otherwise; never
/// Suspended, Unknown or Missing. Every shape of `shapes` must have been seen.
pub fn assert_argocd_health(observer: &PodCountWatch, shapes: &[&str]) {
    let seen = argocd_views(observer);
    let story = seen
        .iter()
        .map(|v| {
            format!(
                "{} {}: {} ({})",
                v.phase, v.shape, v.health.status, v.health.message
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(
        seen.first().map(|v| v.health.status.as_str()),
        Some("Healthy"),
        "{story}"
    );
    assert_eq!(
        seen.last().map(|v| v.health.status.as_str()),
        Some("Healthy"),
        "{story}"
    );
    for view in &seen {
        let want: &[&str] = match view.shape {
            "held" | "stepping" | "braked" => &["Progressing"],
            "resting" => &["Degraded"],
            _ => &["Healthy", "Progressing"],
        };
        assert!(
            want.contains(&view.health.status.as_str()),
            "{} {}: want {want:?}\n{story}",
            view.phase,
            view.shape
        );
    }
    for shape in shapes {
        assert!(
            seen.iter().any(|v| v.shape == *shape),
            "no {shape} version seen:\n{story}"
        );
    }
    eprintln!("Argo CD's health, version by version:\n{story}");
}
