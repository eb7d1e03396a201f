//! The real Flux for the GitOps tests (docs/gitops.md, "Flux"): source-controller and
//! kustomize-controller built from their Go modules (`testenv/flux`, built and cached by
//! `scripts/testenv flux` when a test first asks for them), run as processes against the
//! running testenv for one test's namespace, with a Git server of their own (`git
//! http-backend` behind `testenv/flux/gitserver`, on loopback) serving the test's repository.
//!
//! Each test runs its own pair of controllers that watch only its namespace
//! (`--watch-all-namespaces=false`, `RUNTIME_NAMESPACE`), without leader election, each with a
//! ServiceAccount of that namespace and a token of it (the RBAC of `testenv/flux/rbac.yaml`:
//! kustomize-controller may apply Deployments in that namespace and nothing else). So tests run
//! side by side without two controllers reconciling the same object. Every port (health,
//! metrics, source-controller's artifact server, the Git server) is on 127.0.0.1. The CRDs
//! come from the same modules (their `config/crd/bases`) and are applied when Flux starts.
//!
//! Where Flux cannot be built or started, [`Flux::start`] fails the test: a test under Flux
//! never passes without it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};

use crate::{TestEnv, kubectl};

/// What `scripts/testenv flux` prints: the controllers' binaries, their CRD folders, the Git
/// server and git.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// source-controller's binary.
    pub source_controller: PathBuf,
    /// kustomize-controller's binary.
    pub kustomize_controller: PathBuf,
    /// The CRD folders of both modules (`config/crd/bases`).
    pub crds: Vec<PathBuf>,
    /// The Git server (`testenv/flux/gitserver`).
    pub gitserver: PathBuf,
    /// The git the tests commit and push with.
    pub git: PathBuf,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Flux binaries, built by `scripts/testenv flux` on first use (minutes on a cold machine,
/// then cached by hash). Fails the test when they cannot be built.
pub fn binaries() -> &'static Binaries {
    static BINARIES: OnceLock<Binaries> = OnceLock::new();
    BINARIES.get_or_init(|| {
        let output = Command::new(repo().join("scripts/testenv"))
            .arg("flux")
            .output()
            .expect("scripts/testenv runs");
        assert!(
            output.status.success(),
            "scripts/testenv flux failed, so Flux cannot run (fix the build below, or see docs/gitops.md \"Flux\"): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let vars: BTreeMap<String, String> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let path = |key: &str| {
            PathBuf::from(
                vars.get(key)
                    .unwrap_or_else(|| panic!("scripts/testenv flux printed no {key}: {vars:?}")),
            )
        };
        Binaries {
            source_controller: path("FLUX_SOURCE_CONTROLLER_BIN"),
            kustomize_controller: path("FLUX_KUSTOMIZE_CONTROLLER_BIN"),
            crds: vec![
                path("FLUX_SOURCE_CONTROLLER_CRDS"),
                path("FLUX_KUSTOMIZE_CONTROLLER_CRDS"),
            ],
            gitserver: path("FLUX_GITSERVER_BIN"),
            git: match vars.get("FLUX_GIT").filter(|g| !g.is_empty()) {
                Some(git) => PathBuf::from(git),
                None => panic!(
                    "git is not installed; the Flux tests commit, push and serve with it (scripts/ensure-test-tools installs it)"
                ),
            },
        }
    })
}

/// The JSON pointers of the brake's fields, which the Kustomization's `spec.ignore` leaves
/// out of drift detection (docs/gitops.md "Flux").
pub const BRAKE_FIELDS: [&str; 5] = [
    "/spec/strategy/rollingUpdate/maxSurge",
    "/spec/strategy/rollingUpdate/maxUnavailable",
    "/spec/minReadySeconds",
    "/spec/progressDeadlineSeconds",
    "/spec/paused",
];

/// How the test's Kustomization is set up; the default is what docs/gitops.md recommends.
#[derive(Debug, Clone, Copy, Default)]
pub struct Settings {
    /// `spec.ignore` of the brake's fields ([`BRAKE_FIELDS`]) for opted-in Deployments, which
    /// docs/gitops.md once recommended and now warns against: with kustomize-controller v1.9.6
    /// every apply of a manifest that leaves those fields out fails while they differ.
    pub ignore_brake_fields: bool,
    /// `spec.wait: true`: Flux waits (up to the Kustomization's `timeout`) for what it
    /// applied to become Current (kstatus) before it reports the commit applied (30 s).
    pub wait: bool,
}

/// A process of the test's Flux, killed when dropped.
struct Process {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Process {
    fn spawn(name: &'static str, dir: &Path, mut command: Command) -> Self {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = command
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self { name, child, log }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A command that is killed with the test process (`setpriv --pdeathsig KILL`): a test that
/// panics or is killed leaves no controller behind.
fn command(program: &Path) -> Command {
    let mut command = Command::new("setpriv");
    command.args(["--pdeathsig", "KILL", "--"]).arg(program);
    command
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The test's Flux: its Git repository (one branch, `main`, one file `web.yaml`), the Git
/// server, source-controller and kustomize-controller, and the GitRepository and
/// Kustomization `web` that apply the repository to the namespace.
pub struct Flux {
    env: TestEnv,
    namespace: String,
    dir: PathBuf,
    work: PathBuf,
    client: kube::Client,
    processes: Vec<Process>,
    health_ports: Vec<(&'static str, u16)>,
    tokens: AtomicU32,
    /// The repository's URL on the Git server.
    pub url: String,
}

/// The GitRepository kind.
fn git_repositories(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("source.toolkit.fluxcd.io", "v1", "GitRepository");
    Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::from_gvk_with_plural(&gvk, "gitrepositories"),
    )
}

/// The Kustomization kind.
fn kustomizations(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("kustomize.toolkit.fluxcd.io", "v1", "Kustomization");
    Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::from_gvk_with_plural(&gvk, "kustomizations"),
    )
}

impl Flux {
    /// Starts Flux for `namespace` with `manifest` as the repository's first commit, and
    /// returns once Flux has applied it.
    pub async fn start(
        env: &TestEnv,
        namespace: &str,
        manifest: &Value,
        settings: Settings,
    ) -> Self {
        let bins = binaries();
        let dir = crate::scenario::scratch("flux", namespace);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("repos")).unwrap();
        // The CRDs, from the modules the controllers are built from.
        for crds in &bins.crds {
            kubectl(
                env,
                &[
                    "apply",
                    "--server-side",
                    "--force-conflicts",
                    "--field-manager=kc-flux-tests",
                    "-f",
                    crds.to_str().unwrap(),
                ],
            );
        }
        kubectl(
            env,
            &[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                "crd/gitrepositories.source.toolkit.fluxcd.io",
                "crd/kustomizations.kustomize.toolkit.fluxcd.io",
            ],
        );
        // Identities and RBAC in the test's namespace.
        let rbac = std::fs::read_to_string(repo().join("testenv/flux/rbac.yaml"))
            .unwrap()
            .replace("NAMESPACE", namespace);
        let rbac_file = dir.join("rbac.yaml");
        std::fs::write(&rbac_file, rbac).unwrap();
        kubectl(
            env,
            &["apply", "--server-side", "-f", rbac_file.to_str().unwrap()],
        );
        let kubeconfig = |sa: &str| {
            crate::token_kubeconfig(env, namespace, sa, &dir.join(format!("{sa}.kubeconfig")))
        };
        let (source_kubeconfig, kustomize_kubeconfig) = (
            kubeconfig("source-controller"),
            kubeconfig("kustomize-controller"),
        );

        // The Git server and the repository.
        let mut processes = Vec::new();
        let address_file = dir.join("gitserver.address");
        let mut git_server = command(&bins.gitserver);
        git_server
            .arg("--root")
            .arg(dir.join("repos"))
            .arg("--address-file")
            .arg(&address_file);
        processes.push(Process::spawn("gitserver", &dir, git_server));
        let address = wait_file(&address_file, &processes);
        let url = format!("http://{}/web.git", address.trim());
        git(
            &dir,
            &[
                "init",
                "--quiet",
                "--bare",
                "--initial-branch=main",
                "repos/web.git",
            ],
        );
        let work = dir.join("work");
        git(&dir, &["init", "--quiet", "--initial-branch=main", "work"]);
        git(&work, &["remote", "add", "origin", &url]);

        let mut flux = Self {
            env: env.clone(),
            namespace: namespace.to_string(),
            dir: dir.clone(),
            work,
            client: env.client().await,
            processes,
            health_ports: Vec::new(),
            tokens: AtomicU32::new(0),
            url,
        };
        let first = flux.commit_and_push(manifest, "first commit");

        // The controllers.
        std::fs::create_dir_all(dir.join("storage")).unwrap();
        let storage_port = free_port();
        let storage = format!("127.0.0.1:{storage_port}");
        let controller =
            |name: &'static str, binary: &Path, kubeconfig: &Path, extra: &[String]| {
                let health = free_port();
                let mut command = command(binary);
                command
                    .args([
                        "--watch-all-namespaces=false",
                        "--enable-leader-election=false",
                        "--log-encoding=console",
                        "--events-addr=",
                        &format!("--health-addr=127.0.0.1:{health}"),
                        &format!("--metrics-addr=127.0.0.1:{}", free_port()),
                    ])
                    .args(extra)
                    .env("KUBECONFIG", kubeconfig)
                    .env("RUNTIME_NAMESPACE", namespace);
                (Process::spawn(name, &dir, command), (name, health))
            };
        let (process, health) = controller(
            "source-controller",
            &bins.source_controller,
            &source_kubeconfig,
            &[
                format!("--storage-path={}", dir.join("storage").display()),
                format!("--storage-addr={storage}"),
                format!("--storage-adv-addr={storage}"),
            ],
        );
        flux.processes.push(process);
        flux.health_ports.push(health);
        let (process, health) = controller(
            "kustomize-controller",
            &bins.kustomize_controller,
            &kustomize_kubeconfig,
            &[
                "--no-remote-bases=true".to_string(),
                // No watch of labelled ConfigMaps and Secrets (they feed post-build
                // substitutions and decryption, which the tests do not use): it would need
                // list and watch on the namespace's Secrets.
                "--feature-gates=DisableConfigWatchers=true".to_string(),
            ],
        );
        flux.processes.push(process);
        flux.health_ports.push(health);
        for (name, port) in flux.health_ports.clone() {
            flux.wait(
                &format!("{name}'s /readyz"),
                Duration::from_secs(60),
                || async move {
                    crate::http_get(port, "/readyz")
                        .await
                        .filter(|(s, _)| *s == 200)
                        .map(|_| ())
                },
            )
            .await;
        }

        // The GitRepository and the Kustomization.
        let mut kustomization = json!({
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {
                // Flux re-applies by itself this often; the tests ask for reconciles
                // (`reconcile`, the requestedAt annotation) where they need one.
                "interval": "10s",
                "retryInterval": "2s",
                // With `wait`, the time Flux gives what it applied to become Current.
                "timeout": "30s",
                "sourceRef": {"kind": "GitRepository", "name": "web"},
                "path": "./",
                "prune": true,
                "force": false,
            },
        });
        if settings.wait {
            kustomization["spec"]["wait"] = json!(true);
        }
        if settings.ignore_brake_fields {
            kustomization["spec"]["ignore"] = json!([{
                "paths": BRAKE_FIELDS,
                "target": {"kind": "Deployment", "labelSelector": "kubectl-canary.io/gitops=enabled"},
            }]);
        }
        let objects = json!({"apiVersion": "v1", "kind": "List", "items": [
            {
                "apiVersion": "source.toolkit.fluxcd.io/v1",
                "kind": "GitRepository",
                "metadata": {"name": "web", "namespace": namespace},
                "spec": {"interval": "1m", "timeout": "20s", "url": flux.url, "ref": {"branch": "main"}},
            },
            kustomization,
        ]});
        let file = dir.join("flux-objects.json");
        std::fs::write(&file, serde_json::to_string_pretty(&objects).unwrap()).unwrap();
        kubectl(
            env,
            &[
                "apply",
                "--server-side",
                "--field-manager=kc-flux-tests",
                "-f",
                file.to_str().unwrap(),
            ],
        );
        flux.applied(&first).await;
        flux
    }

    /// Writes `manifest` as `web.yaml` (JSON is YAML), commits and pushes; returns the commit.
    fn commit_and_push(&self, manifest: &Value, message: &str) -> String {
        std::fs::write(
            self.work.join("web.yaml"),
            serde_json::to_string_pretty(manifest).unwrap(),
        )
        .unwrap();
        git(&self.work, &["add", "web.yaml"]);
        git(
            &self.work,
            &[
                "-c",
                "user.name=kubectl-canary tests",
                "-c",
                "user.email=tests@kubectl-canary.invalid",
                "commit",
                "--quiet",
                "--allow-empty",
                "-m",
                message,
            ],
        );
        git(&self.work, &["push", "--quiet", "origin", "HEAD:main"]);
        git(&self.work, &["rev-parse", "HEAD"]).trim().to_string()
    }

    /// A commit of `manifest`, pushed; returns once kustomize-controller has applied it (the
    /// GitRepository asked to fetch at once with the requestedAt annotation, rather than
    /// after its interval). Returns the commit.
    pub async fn commit(&self, manifest: &Value, message: &str) -> String {
        let commit = self.commit_and_push(manifest, message);
        self.request(&git_repositories(&self.client, &self.namespace))
            .await;
        self.applied(&commit).await;
        commit
    }

    /// The commit `main` points at.
    pub fn head(&self) -> String {
        git(&self.work, &["rev-parse", "HEAD"]).trim().to_string()
    }

    /// A commit of `manifest`, pushed, that kustomize-controller fails to apply (or, with
    /// `wait`, to see become Current in time): returns the message of the Kustomization's
    /// `Ready=False` for that commit.
    pub async fn commit_failing(&self, manifest: &Value, message: &str) -> String {
        let commit = self.commit_and_push(manifest, message);
        self.request(&git_repositories(&self.client, &self.namespace))
            .await;
        let client = self.client.clone();
        let namespace = self.namespace.clone();
        self.wait(
            &format!("kustomize-controller to fail on commit {commit}"),
            Duration::from_secs(60),
            || {
                let api = kustomizations(&client, &namespace);
                let commit = commit.clone();
                async move {
                    let k = api.get("web").await.ok()?;
                    let status = &k.data["status"];
                    let attempted = status["lastAttemptedRevision"]
                        .as_str()
                        .is_some_and(|r| r.ends_with(&commit));
                    let condition = status["conditions"]
                        .as_array()?
                        .iter()
                        .find(|c| c["type"] == "Ready" && c["status"] == "False")?;
                    attempted.then(|| {
                        condition["message"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string()
                    })
                }
            },
        )
        .await
    }

    /// Asks kustomize-controller for a reconcile (the requestedAt annotation, as `flux
    /// reconcile kustomization` does) and waits until it has handled it: one drift detection
    /// and apply of the repository's current revision.
    pub async fn reconcile(&self) {
        let api = kustomizations(&self.client, &self.namespace);
        let token = self.request(&api).await;
        let client = self.client.clone();
        let namespace = self.namespace.clone();
        self.wait(
            &format!("kustomize-controller to handle the reconcile request {token}"),
            Duration::from_secs(60),
            || {
                let api = kustomizations(&client, &namespace);
                let token = token.clone();
                async move {
                    let k = api.get("web").await.ok()?;
                    let status = &k.data["status"];
                    (status["lastHandledReconcileAt"] == token.as_str()
                        && ready(status) == Some(true))
                    .then_some(())
                }
            },
        )
        .await;
    }

    /// Sets `reconcile.fluxcd.io/requestedAt` on the object `web` to a new token; returns it.
    async fn request(&self, api: &Api<DynamicObject>) -> String {
        let token = format!(
            "kc-{}-{}",
            std::process::id(),
            self.tokens.fetch_add(1, Ordering::SeqCst)
        );
        api.patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": token}}}),
            ),
        )
        .await
        .unwrap_or_else(|e| panic!("cannot request a reconcile: {e}"));
        token
    }

    /// Waits until the Kustomization has applied `commit` and is Ready.
    pub async fn applied(&self, commit: &str) {
        let client = self.client.clone();
        let namespace = self.namespace.clone();
        self.wait(
            &format!("kustomize-controller to apply commit {commit}"),
            Duration::from_secs(90),
            || {
                let api = kustomizations(&client, &namespace);
                async move {
                    let k = api.get("web").await.ok()?;
                    let status = &k.data["status"];
                    (status["lastAppliedRevision"]
                        .as_str()
                        .is_some_and(|r| r.ends_with(commit))
                        && ready(status) == Some(true))
                    .then_some(())
                }
            },
        )
        .await;
    }

    /// The Kustomization `web` as the API server has it.
    pub async fn kustomization(&self) -> Value {
        let k = kustomizations(&self.client, &self.namespace)
            .get("web")
            .await
            .unwrap();
        serde_json::to_value(k).unwrap()
    }

    /// The log of one of Flux's processes (`gitserver`, `source-controller`,
    /// `kustomize-controller`).
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default()
    }

    /// The last lines of every Flux log, for failure messages.
    fn log_tails(&self) -> String {
        self.processes
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(&p.log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                format!(
                    "--- {} (last 20 lines) ---\n{}",
                    p.name,
                    lines[lines.len().saturating_sub(20)..].join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Polls `check` every 100 ms until it returns `Some`; fails the test after `timeout`
    /// with the tails of Flux's logs, or at once when one of its processes has exited.
    async fn wait<T, F, Fut>(&self, what: &str, timeout: Duration, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(value) = check().await {
                return value;
            }
            let exited = self.processes.iter().find(|p| !running(p.child.id()));
            if let Some(p) = exited {
                panic!(
                    "{} exited while waiting for {what}\n{}",
                    p.name,
                    self.log_tails()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {}s waiting for {what}\n{}\n--- kube-apiserver (tail) ---\n{}",
                    timeout.as_secs(),
                    self.log_tails(),
                    self.env.log_tail("kube-apiserver", 10)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Flux {
    /// Stops the controllers, then takes Flux's finalizers off the GitRepository and the
    /// Kustomization: with no controller left to remove them, they would keep the test's
    /// namespace terminating for good.
    fn drop(&mut self) {
        self.processes.clear();
        for object in [
            "kustomizations.kustomize.toolkit.fluxcd.io/web",
            "gitrepositories.source.toolkit.fluxcd.io/web",
        ] {
            let _ = self.env.run(
                "kubectl",
                &[
                    "-n",
                    &self.namespace,
                    "patch",
                    object,
                    "--type=merge",
                    "-p",
                    r#"{"metadata":{"finalizers":null}}"#,
                ],
            );
        }
    }
}

/// Whether the process `pid` (a child, so not reaped before it is dropped) still runs: its
/// `/proc/PID/stat` exists and its state is not `Z` (exited).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

/// The Ready condition's status of a Flux object's status, if any.
fn ready(status: &Value) -> Option<bool> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .map(|c| c["status"] == "True")
}

/// Waits up to 10 s for the Git server to write its address.
fn wait_file(path: &Path, processes: &[Process]) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "the Git server did not start within 10 s: {}",
            std::fs::read_to_string(&processes[0].log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs git in `dir`; fails the test with git's message when it fails.
fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new(&binaries().git)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run git: {e}"));
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
