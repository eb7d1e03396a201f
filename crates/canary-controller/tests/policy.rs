//! deploy/policy.yaml evaluated by testenv's real API server: each kind of write to an
//! (opted-in or not) Deployment sent as a server-side dry run, and what the policy made of it.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use common::*;

const BRAKE: i64 = 1_000_000_000;

/// Sends `object` as a server-side-apply dry run (field manager argocd-controller) with
/// `kubeconfig`, and returns what the API server would store.
fn dry_run(setup: &Setup, kubeconfig: &Path, object: &Value) -> Value {
    let file = scratch(&setup.namespace.name).join("dry-run.json");
    std::fs::write(&file, object.to_string()).unwrap();
    let output = setup.env.run_as(
        kubeconfig,
        "kubectl",
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=argocd-controller",
            "--dry-run=server",
            "-o",
            "json",
            "-f",
            file.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn apply_for_real(setup: &Setup, object: &Value) -> Value {
    let file = scratch(&setup.namespace.name).join("apply.json");
    std::fs::write(&file, object.to_string()).unwrap();
    let output = setup.env.run(
        "kubectl",
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=argocd-controller",
            "-o",
            "json",
            "-f",
            file.to_str().unwrap(),
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Reads the stored Deployment, changes it with `edit`, and sends it as an update (`kubectl
/// replace`, the verb the controller has) with `kubeconfig`; a dry run when `dry`.
fn replace_as(setup: &Setup, kubeconfig: &Path, dry: bool, edit: impl FnOnce(&mut Value)) -> Value {
    let ns = &setup.namespace.name;
    let current = setup
        .env
        .run("kubectl", &["-n", ns, "get", "deploy", "web", "-o", "json"]);
    let mut object: Value = serde_json::from_slice(&current.stdout).unwrap();
    edit(&mut object);
    let file = scratch(ns).join("replace.json");
    std::fs::write(&file, object.to_string()).unwrap();
    let mut args = vec!["replace", "-o", "json", "-f", file.to_str().unwrap()];
    if dry {
        args.push("--dry-run=server");
    }
    let output = setup.env.run_as(kubeconfig, "kubectl", &args, &[]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn rollout(d: &Value) -> Value {
    json!({
        "maxSurge": d["spec"]["strategy"]["rollingUpdate"]["maxSurge"],
        "maxUnavailable": d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
        "minReadySeconds": d["spec"].get("minReadySeconds").cloned().unwrap_or(json!(0)),
        "progressDeadlineSeconds": d["spec"]["progressDeadlineSeconds"],
        "paused": d["spec"].get("paused").cloned().unwrap_or(json!(false)),
    })
}

fn state_annotations(d: &Value) -> BTreeMap<String, String> {
    d["metadata"]["annotations"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| {
            [
                "brake",
                "stable-images",
                "original-max-surge",
                "original-max-unavailable",
                "original-min-ready-seconds",
                "original-progress-deadline-seconds",
            ]
            .iter()
            .any(|s| k.as_str() == format!("kubectl-canary.io/{s}"))
        })
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

fn untouched() -> Value {
    json!({"maxSurge": "25%", "maxUnavailable": "25%", "minReadySeconds": 0,
           "progressDeadlineSeconds": 600, "paused": false})
}

#[tokio::test]
async fn the_policy_brakes_exactly_the_writes_it_should() {
    let Some(setup) = setup("gitops-policy").await else {
        return;
    };
    let ns = setup.namespace.name.clone();
    let admin = setup.env.kubeconfig.clone();
    let pods = BTreeMap::from([("kubectl-canary.io/canary-pods", "1")]);
    apply_for_real(&setup, &manifest(&ns, 5, "nginx:1.14", &pods));
    let with =
        |image: &str, annotations: &BTreeMap<&str, &str>| manifest(&ns, 5, image, annotations);

    // A template change of an opted-in Deployment: braked at k, originals and stable images kept.
    let braked = dry_run(&setup, &admin, &with("nginx:1.15", &pods));
    assert_eq!(
        rollout(&braked),
        json!({"maxSurge": 1, "maxUnavailable": 0, "minReadySeconds": BRAKE,
               "progressDeadlineSeconds": BRAKE + 1, "paused": false})
    );
    assert_eq!(
        state_annotations(&braked),
        BTreeMap::from([
            ("kubectl-canary.io/brake".into(), "on".into()),
            (
                "kubectl-canary.io/stable-images".into(),
                "nginx=nginx:1.14".into()
            ),
            ("kubectl-canary.io/original-max-surge".into(), "25%".into()),
            (
                "kubectl-canary.io/original-max-unavailable".into(),
                "25%".into()
            ),
            (
                "kubectl-canary.io/original-min-ready-seconds".into(),
                "0".into()
            ),
            (
                "kubectl-canary.io/original-progress-deadline-seconds".into(),
                "600".into()
            ),
        ])
    );
    // Replace mode.
    let replace = BTreeMap::from([
        ("kubectl-canary.io/canary-pods", "2"),
        ("kubectl-canary.io/mode", "replace"),
    ]);
    let braked = dry_run(&setup, &admin, &with("nginx:1.15", &replace));
    assert_eq!(rollout(&braked)["maxSurge"], 0);
    assert_eq!(rollout(&braked)["maxUnavailable"], 2);
    // Writes the policy leaves alone.
    let mut not_template = with("nginx:1.14", &pods);
    not_template["spec"]["replicas"] = json!(6);
    let mut unlabelled = with("nginx:1.15", &pods);
    unlabelled["metadata"]["labels"] = json!({});
    let mut paused = with("nginx:1.15", &pods);
    paused["spec"]["paused"] = json!(true);
    let cases: Vec<(&str, Value)> = vec![
        ("no template change", not_template),
        (
            "malformed size",
            with(
                "nginx:1.15",
                &BTreeMap::from([("kubectl-canary.io/canary-pods", "lots")]),
            ),
        ),
        (
            "size over replicas",
            with(
                "nginx:1.15",
                &BTreeMap::from([("kubectl-canary.io/canary-pods", "6")]),
            ),
        ),
        ("no size", with("nginx:1.15", &BTreeMap::new())),
        (
            "unknown mode",
            with(
                "nginx:1.15",
                &BTreeMap::from([
                    ("kubectl-canary.io/canary-pods", "1"),
                    ("kubectl-canary.io/mode", "blue"),
                ]),
            ),
        ),
        ("paused", paused),
    ];
    for (case, object) in cases {
        let result = dry_run(&setup, &admin, &object);
        let expected = if case == "paused" {
            json!({"maxSurge": "25%", "maxUnavailable": "25%", "minReadySeconds": 0,
                   "progressDeadlineSeconds": 600, "paused": true})
        } else {
            untouched()
        };
        assert_eq!(rollout(&result), expected, "{case}");
        assert!(state_annotations(&result).is_empty(), "{case}");
    }
    // The controller's own writes are never braked.
    let own = replace_as(&setup, &setup.kubeconfig, true, |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.15");
    });
    assert_eq!(rollout(&own), untouched(), "the controller's write");
    // The CLI's own brake (in its own write) is not overridden.
    let mut cli = with("nginx:1.15", &pods);
    cli["spec"]["minReadySeconds"] = json!(BRAKE);
    cli["spec"]["progressDeadlineSeconds"] = json!(BRAKE + 1);
    cli["spec"]["strategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 0}});
    let result = dry_run(&setup, &admin, &cli);
    assert_eq!(rollout(&result)["maxSurge"], 3);
    assert!(state_annotations(&result).is_empty());

    // Now for real: a canary in progress (braked, then paused as the controller would).
    apply_for_real(&setup, &with("nginx:1.15", &pods));
    replace_as(&setup, &setup.kubeconfig, false, |d| {
        d["spec"]["paused"] = json!(true)
    });
    let held = json!({"maxSurge": 1, "maxUnavailable": 0, "minReadySeconds": BRAKE,
                      "progressDeadlineSeconds": BRAKE + 1, "paused": true});
    // A self-heal re-apply whose manifest sets the strategy and paused: the brake stays.
    let mut reapply = with("nginx:1.15", &pods);
    reapply["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "50%", "maxUnavailable": "50%"}});
    reapply["spec"]["paused"] = json!(false);
    reapply["spec"]["minReadySeconds"] = json!(5);
    assert_eq!(
        rollout(&dry_run(&setup, &admin, &reapply)),
        held,
        "a re-apply keeps the brake"
    );
    // A new commit: still braked (the controller replaces the canary).
    let next = dry_run(&setup, &admin, &with("nginx:1.16", &pods));
    assert_eq!(rollout(&next), held);
    assert_eq!(
        state_annotations(&next)["kubectl-canary.io/stable-images"],
        "nginx=nginx:1.14"
    );
    // A revert commit: the Deployment's own settings back, unpaused, annotations gone, in this write.
    let revert = dry_run(&setup, &admin, &with("nginx:1.14", &pods));
    assert_eq!(
        rollout(&revert),
        untouched(),
        "the revert write releases the brake"
    );
    assert!(state_annotations(&revert).is_empty());
}
