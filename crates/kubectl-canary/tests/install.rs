//! The GitOps mode's one-file install: `scripts/release-archives` writes `install.yaml`
//! (deploy/ through kustomize, the controller's image set to the release's), and the API
//! server takes every object of it (`kubectl apply --server-side --dry-run=server`).

mod common;

use std::path::Path;
use std::process::Command;

use canary_testkit::TestEnv;
use common::BIN;

#[test]
fn install_yaml_names_the_release_image_and_the_api_server_takes_all_of_it() {
    let Some(env) = TestEnv::get() else {
        return;
    };
    let out = std::env::temp_dir().join(format!("kc-install-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let image = "registry.example/kubectl-canary-controller:9.9.9";
    let output = Command::new(root.join("scripts/release-archives"))
        .args(["--bin", BIN, "--out", out.to_str().unwrap()])
        .args(["--version", "v9.9.9", "--image", image])
        .output()
        .expect("scripts/release-archives runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let install = out.join("install.yaml");
    let text = std::fs::read_to_string(&install).expect("install.yaml written");
    let images: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("image: "))
        .collect();
    assert_eq!(images, [image], "the controller runs the release's image");
    let kinds: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("kind: "))
        .collect();
    for kind in [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
        "Deployment",
    ] {
        assert!(kinds.contains(&kind), "{kind} in install.yaml: {kinds:?}");
    }
    // A server-side dry run creates nothing, so the namespaced objects need their namespace
    // to exist (a real apply creates it first): the GitOps tests create the same one.
    let namespace = env.run(
        "kubectl",
        &[
            "apply",
            "--server-side",
            "--field-manager=kc-install-tests",
            "-f",
            root.join("deploy/namespace.yaml").to_str().unwrap(),
        ],
    );
    assert!(namespace.status.success(), "{namespace:?}");
    // --force-conflicts: on the shared environment the GitOps tests apply deploy/policy.yaml
    // under a field manager of their own, and kustomize re-folds the policy's folded CEL
    // strings (a blank line before each more-indented line; whitespace to CEL), so the same
    // fields hold other text and a plain apply conflicts with them.
    let dry_run = env.run(
        "kubectl",
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=kc-install-tests",
            "--dry-run=server",
            "-f",
            install.to_str().unwrap(),
        ],
    );
    let stdout = String::from_utf8_lossy(&dry_run.stdout);
    assert!(
        dry_run.status.success(),
        "the API server refused install.yaml: {}\n{stdout}",
        String::from_utf8_lossy(&dry_run.stderr)
    );
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.ends_with("serverside-applied (server dry run)"))
            .count(),
        kinds.len(),
        "every object taken: {stdout}"
    );
    std::fs::remove_dir_all(&out).ok();
}
