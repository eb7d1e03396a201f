//! The controller's container image run as a kubelet would run deploy/controller.yaml's pod:
//! built by `scripts/image` from the binary under test, its ServiceAccount's token (from the
//! TokenRequest API), the cluster's CA and the namespace mounted read-only at
//! `/var/run/secrets/kubernetes.io/serviceaccount` in the kubelet's layout, the in-cluster
//! environment, a read-only root file system, the image's non-root user, no capabilities.
//! Containers run with the host's network (the test environment's API server is on loopback).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use kube::Api;

use super::repo;

/// Where a kubelet mounts a pod's ServiceAccount credentials.
pub const SERVICE_ACCOUNT_MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The controller's namespace and ServiceAccount in deploy/.
const CONTROLLER_NAMESPACE: &str = "kubectl-canary-system";
const CONTROLLER_ACCOUNT: &str = "kubectl-canary-controller";

/// `scripts/image podman ARGS`: podman with this machine's runtime settings.
pub fn podman(args: &[&str]) -> Output {
    Command::new(repo().join("scripts/image"))
        .arg("podman")
        .args(args)
        .output()
        .expect("scripts/image runs")
}

/// Builds the image from the controller binary under test (or `KC_CONTROLLER_BIN`'s, say a
/// release build) as `tag`; the error says why not (the container tools missing or unusable,
/// the build failing).
pub fn build_image(tag: &str) -> Result<String, String> {
    let binary = std::env::var("KC_CONTROLLER_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_kubectl-canary-controller").to_string());
    let output = Command::new(repo().join("scripts/image"))
        .args(["build", "--binary", &binary, "--tag", tag])
        .output()
        .map_err(|e| format!("cannot run scripts/image: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "scripts/image build failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(tag.to_string())
}

/// The image built for a test, untagged when dropped (its layers stay cached).
pub struct TestImage {
    /// The image reference.
    pub tag: String,
}

impl TestImage {
    /// Builds the image for the test `namespace`. Where it cannot be built the test fails
    /// under `KC_TESTENV_REQUIRED=1` (CI) and otherwise says so and does nothing.
    pub fn build(namespace: &str) -> Option<Self> {
        let tag = format!("localhost/kubectl-canary-controller:test-{namespace}");
        match build_image(&tag) {
            Ok(tag) => Some(Self { tag }),
            Err(error) if std::env::var("KC_TESTENV_REQUIRED").as_deref() == Ok("1") => {
                panic!("the controller image cannot be built here: {error}")
            }
            Err(error) => {
                eprintln!(
                    "note: this test did nothing: the controller image cannot be built here: {error}"
                );
                None
            }
        }
    }
}

impl Drop for TestImage {
    fn drop(&mut self) {
        let _ = podman(&["rmi", &self.tag]);
    }
}

/// Writes `files` as a kubelet's atomic writer lays out a projected volume: the files in a
/// timestamped folder, `..data` a link to it, each name a link through `..data`; files 0644.
pub fn kubelet_volume(dir: &Path, files: &[(&str, &[u8])]) {
    use std::os::unix::fs::{PermissionsExt, symlink};
    std::fs::create_dir_all(dir).unwrap();
    let stamp = "..2026_01_01_00_00_00.000000001";
    let data = dir.join(stamp);
    std::fs::create_dir_all(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    for (name, content) in files {
        let path = data.join(name);
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        symlink(format!("..data/{name}"), dir.join(name)).unwrap();
    }
    symlink(stamp, dir.join("..data")).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The controller's ServiceAccount volume in `scratch`: a token from the TokenRequest API
/// (what the kubelet asks for: 3607 s, the API server's audiences), the cluster's CA as the
/// kubelet projects it (the `kube-root-ca.crt` ConfigMap of the pod's namespace), and the
/// namespace.
pub async fn service_account_volume(client: &kube::Client, scratch: &Path) -> PathBuf {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), CONTROLLER_NAMESPACE);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3607),
            ..Default::default()
        }),
        ..Default::default()
    };
    let token = accounts
        .create_token_request(CONTROLLER_ACCOUNT, &Default::default(), &request)
        .await
        .expect("a token of the controller's ServiceAccount")
        .status
        .and_then(|status| status.token)
        .expect("the TokenRequest's token");
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), CONTROLLER_NAMESPACE);
    let ca = config_maps
        .get("kube-root-ca.crt")
        .await
        .expect("the kube-root-ca.crt ConfigMap (root-ca-certificate-publisher)")
        .data
        .and_then(|mut d| d.remove("ca.crt"))
        .expect("ca.crt in kube-root-ca.crt");
    let dir = scratch.join("serviceaccount");
    kubelet_volume(
        &dir,
        &[
            ("ca.crt", ca.as_bytes()),
            ("namespace", CONTROLLER_NAMESPACE.as_bytes()),
            ("token", token.as_bytes()),
        ],
    );
    dir
}

/// One container of the controller's image, removed when dropped.
pub struct ControllerContainer {
    /// The container's name.
    pub name: String,
    /// Its Lease identity (`POD_NAME`).
    pub identity: String,
    /// The loopback port of its HTTP server.
    pub port: u16,
}

impl ControllerContainer {
    /// Runs `image` as deploy/controller.yaml's container with `volume` mounted where the
    /// kubelet mounts it, against the API server at `apiserver`, for the test's `namespace`
    /// and `lease` (the Lease in the controller's own namespace, as deploy/'s RBAC allows).
    pub fn start(
        image: &str,
        volume: &Path,
        apiserver: SocketAddr,
        namespace: &str,
        lease: &str,
        identity: &str,
    ) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let name = format!("kc-{namespace}-{identity}");
        let _ = podman(&["rm", "-f", "--time", "0", &name]);
        let mount = format!("{}:{SERVICE_ACCOUNT_MOUNT}:ro", volume.display());
        let host = format!("KUBERNETES_SERVICE_HOST={}", apiserver.ip());
        let service_port = format!("KUBERNETES_SERVICE_PORT={}", apiserver.port());
        let pod_name = format!("POD_NAME={identity}");
        let listen = format!("--listen=127.0.0.1:{port}");
        let output = podman(&[
            "run",
            "--detach",
            "--name",
            &name,
            "--network",
            "host",
            // readOnlyRootFilesystem: true (and no tmpfs podman would add on /tmp and /run)
            "--read-only",
            "--read-only-tmpfs=false",
            // capabilities: drop ALL; allowPrivilegeEscalation: false
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--log-driver",
            "k8s-file",
            "--volume",
            &mount,
            "--env",
            &host,
            "--env",
            &service_port,
            "--env",
            &pod_name,
            "--env",
            "RUST_LOG=info,canary_controller=debug",
            image,
            &listen,
            "--namespace",
            namespace,
            "--lease-name",
            lease,
            "--lease-seconds",
            "10",
        ]);
        assert!(
            output.status.success(),
            "podman run {name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Self {
            name,
            identity: identity.to_string(),
            port,
        }
    }

    /// GET of one of its endpoints.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        canary_testkit::http_get(self.port, path).await
    }

    /// Its log so far (`podman logs`).
    pub fn log_text(&self) -> String {
        let output = podman(&["logs", &self.name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }

    /// A field of `podman inspect` (a Go template such as `{{.State.Pid}}`).
    pub fn inspect(&self, template: &str) -> String {
        let output = podman(&["inspect", "--format", template, &self.name]);
        assert!(
            output.status.success(),
            "podman inspect {}: {}",
            self.name,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// The host's view of the container's main process: `/proc/PID/FILE`.
    pub fn proc_file(&self, file: &str) -> String {
        let pid = self.inspect("{{.State.Pid}}");
        std::fs::read_to_string(format!("/proc/{pid}/{file}"))
            .unwrap_or_else(|e| panic!("/proc/{pid}/{file} of {}: {e}", self.name))
    }

    /// `podman stop` as the kubelet stops a container: SIGTERM, SIGKILL after the grace
    /// period (deploy/controller.yaml's 30 s); returns the exit code.
    pub fn stop(&self) -> i32 {
        let output = podman(&["stop", "--time", "30", &self.name]);
        assert!(
            output.status.success(),
            "podman stop {}: {}",
            self.name,
            String::from_utf8_lossy(&output.stderr)
        );
        self.inspect("{{.State.ExitCode}}")
            .parse()
            .expect("an exit code")
    }
}

impl Drop for ControllerContainer {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", "--time", "0", &self.name]);
    }
}
