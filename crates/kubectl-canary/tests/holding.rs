//! A held canary while no command runs: the real horizontal-pod-autoscaler controller
//! raises and lowers the Deployment's floor, the paused Deployment's controller spreads each
//! change over both sides in proportion, `status` shows the size asked against the size
//! running and offers the restoring command, and that command puts the size asked back
//! (shrinking the canary ReplicaSet when it grew), after which a pod watch sees the canary
//! never above the size asked (docs/holding.md).

mod common;

use std::time::Duration;

use canary_testkit::gitops::PodCountWatch;
use canary_testkit::scenario::web_namespace;
use canary_testkit::{TestEnv, wait_for};
use common::*;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::Api;
use kube::api::ListParams;

async fn kubectl_ok(env: &TestEnv, args: &[&str]) {
    let out = kubectl(env, args).await;
    assert!(out.status.success(), "kubectl {args:?}: {}", text(&out));
}

/// Sets the HPA's floor and ceiling to `replicas` and waits for the real HPA controller to
/// scale deploy/web there.
async fn hpa_to(env: &TestEnv, ns: &str, replicas: i32) {
    kubectl_ok(
        env,
        &[
            "-n",
            ns,
            "patch",
            "hpa",
            "web",
            "--type=merge",
            "-p",
            &format!(r#"{{"spec":{{"minReplicas":{replicas},"maxReplicas":{replicas}}}}}"#),
        ],
    )
    .await;
    let api: Api<Deployment> = Api::namespaced(env.client().await, ns);
    wait_for(
        env,
        &format!("the HPA controller to scale deploy/web to {replicas}"),
        Duration::from_secs(90),
        || async {
            let d = api.get("web").await.ok()?;
            (d.spec?.replicas == Some(replicas)).then_some(())
        },
    )
    .await;
}

/// The ReplicaSets' sizes by image once the Deployment's controller has acted on the
/// Deployment's last change: it writes the ReplicaSets before the status that says it
/// observed the generation.
async fn settled_sides(env: &TestEnv, ns: &str) -> Vec<(String, i32)> {
    let deployments: Api<Deployment> = Api::namespaced(env.client().await, ns);
    wait_for(
        env,
        "the Deployment's controller to act on the rescale",
        Duration::from_secs(60),
        || async {
            let d = deployments.get("web").await.ok()?;
            (d.status.as_ref()?.observed_generation >= d.metadata.generation).then_some(())
        },
    )
    .await;
    replica_sets_by_image(env, ns).await
}

/// The canary ReplicaSet's size (nginx:1.15).
fn canary_of(sides: &[(String, i32)]) -> i32 {
    sides
        .iter()
        .find(|(image, _)| image == "nginx:1.15")
        .map_or(0, |(_, n)| *n)
}

fn stable_of(sides: &[(String, i32)]) -> i32 {
    sides
        .iter()
        .find(|(image, _)| image == "nginx:1.14")
        .map_or(0, |(_, n)| *n)
}

/// Waits until the canary ReplicaSet is at `pods` and its pods number `pods`.
async fn canary_pods_are(env: &TestEnv, ns: &str, pods: usize) {
    let client = env.client().await;
    wait_for(
        env,
        &format!("{pods} canary pod(s)"),
        Duration::from_secs(60),
        || async {
            let by_image = canary_testkit::reads::pods_by_image(&client, ns, "app=web").await;
            (by_image.get("nginx:1.15").copied().unwrap_or(0) == pods).then_some(())
        },
    )
    .await;
}

/// One scenario: a canary asked as `size` on `replicas` pods under an HPA, the floor moved to
/// each of `floors` in turn with no command running; after each, `status` shows both sizes
/// and, where they differ, the restoring command, which is run. Returns the sizes measured
/// after each rescale (canary, stable) before any restore, for the report.
async fn hold_through_rescales(
    env: &TestEnv,
    prefix: &str,
    replicas: i32,
    size: &str,
    floors: &[(i32, i32)],
    rescaler: Rescaler,
) -> Vec<(i32, i32, i32)> {
    let ns = web_namespace(env, prefix, replicas).await;
    let n = ns.name.as_str();
    if rescaler == Rescaler::KubectlScale {
        return hold_through_kubectl_scale(env, n, size, floors).await;
    }
    kubectl_ok(
        env,
        &[
            "-n",
            n,
            "autoscale",
            "deploy/web",
            &format!("--min={replicas}"),
            &format!("--max={replicas}"),
            "--cpu-percent=80",
        ],
    )
    .await;
    let out = canary(
        env,
        n,
        &[
            "start",
            "deploy/web",
            "nginx=nginx:1.15",
            "--canary",
            size,
            "--allow-hpa",
        ],
    )
    .await;
    assert_exit(&out, 0, "start --allow-hpa");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("spreads the change over the stable and canary ReplicaSets in proportion")
            && said.contains(&format!("promote deploy/web --canary {size}")),
        "start --allow-hpa says up front what the HPA does while held: {}",
        text(&out)
    );
    held_through(env, n, size, floors, rescaler).await
}

/// Without an HPA: `kubectl scale` (or Git) changes spec.replicas.
async fn hold_through_kubectl_scale(
    env: &TestEnv,
    n: &str,
    size: &str,
    floors: &[(i32, i32)],
) -> Vec<(i32, i32, i32)> {
    let out = canary(
        env,
        n,
        &["start", "deploy/web", "nginx=nginx:1.15", "--canary", size],
    )
    .await;
    assert_exit(&out, 0, "start");
    held_through(env, n, size, floors, Rescaler::KubectlScale).await
}

/// Who changes spec.replicas while the canary is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rescaler {
    /// The real HPA controller, its floor and ceiling moved.
    Hpa,
    /// `kubectl scale`.
    KubectlScale,
}

async fn rescale(env: &TestEnv, ns: &str, replicas: i32, rescaler: Rescaler) {
    match rescaler {
        Rescaler::Hpa => hpa_to(env, ns, replicas).await,
        Rescaler::KubectlScale => {
            kubectl_ok(
                env,
                &[
                    "-n",
                    ns,
                    "scale",
                    "deploy/web",
                    &format!("--replicas={replicas}"),
                ],
            )
            .await
        }
    }
}

/// The rescales of a held canary, each followed by `status` and the restoring command.
async fn held_through(
    env: &TestEnv,
    n: &str,
    size: &str,
    floors: &[(i32, i32)],
    rescaler: Rescaler,
) -> Vec<(i32, i32, i32)> {
    let client = env.client().await;
    let watch = PodCountWatch::start(&client, n, "web", "nginx:1.15").await;
    let mut measured = vec![];
    for &(floor, asked) in floors {
        rescale(env, n, floor, rescaler).await;
        let sides = settled_sides(env, n).await;
        let running = canary_of(&sides);
        measured.push((floor, running, stable_of(&sides)));
        let status = canary(env, n, &["status", "deploy/web"]).await;
        assert_exit(&status, 0, "status after the rescale");
        let shown = String::from_utf8_lossy(&status.stdout);
        assert!(
            shown.contains(&format!(
                "canary size: asked {asked} pod(s) (--canary {size}), running {running} pod(s)"
            )),
            "status shows the size asked and running:\n{shown}"
        );
        let restore = format!("kubectl canary promote deploy/web --canary {size}");
        // Offered whether or not the sizes differ: the record takes the new count too.
        assert!(
            shown.contains(&restore),
            "status offers the restoring command:\n{shown}"
        );
        let out = canary(env, n, &["promote", "deploy/web", "--canary", size]).await;
        assert_exit(&out, 0, "the restoring command");
        let sides = replica_sets_by_image(env, n).await;
        assert_eq!(
            (canary_of(&sides), stable_of(&sides)),
            (asked, floor),
            "after {restore}: the canary at the size asked, the stable side at spec.replicas"
        );
        canary_pods_are(env, n, asked as usize).await;
        // From here on the canary never runs more pods than asked (until the next rescale,
        // which no command watches).
        let from = watch.pod_counts.lock().unwrap().len();
        let status = canary(env, n, &["status", "deploy/web"]).await;
        let shown = String::from_utf8_lossy(&status.stdout);
        assert!(
            shown.contains(&format!("running {asked} pod(s)\n")),
            "status after the restore:\n{shown}"
        );
        let counts = watch.pod_counts.lock().unwrap()[from..].to_vec();
        assert!(
            counts.iter().all(|(_, pods)| *pods <= asked as usize),
            "the canary exceeded {asked} pod(s) after the restoring command: {counts:?}"
        );
    }
    // The canary stays held at the size asked (not above) until it is promoted.
    let before_full = watch.pod_counts.lock().unwrap().len();
    let rs: Api<ReplicaSet> = Api::namespaced(client.clone(), n);
    let canary_rs = rs
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|r| r.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0) > 0)
        .count();
    assert_eq!(canary_rs, 2, "both sides still run");
    let counts = watch.pod_counts.lock().unwrap()[before_full..].to_vec();
    assert!(
        counts
            .iter()
            .all(|(_, pods)| *pods <= floors.last().unwrap().1 as usize)
    );
    assert_exit(
        &canary(env, n, &["promote", "deploy/web", "--full"]).await,
        0,
        "promote --full",
    );
    measured
}

/// A count: `--canary 1` on 3 pods, the floor raised to 6 (the controller gives the canary a
/// second pod) and lowered to 3 again; each time the size asked is what holds after the
/// restoring command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_count_is_restored_after_the_hpa_moves_the_floor() {
    let Some(env) = TestEnv::get() else { return };
    let measured =
        hold_through_rescales(&env, "hold-count", 3, "1", &[(6, 1), (3, 1)], Rescaler::Hpa).await;
    eprintln!(
        "count: (floor, canary, stable) after each rescale, before any command: {measured:?}"
    );
    assert!(
        measured[0].1 > 1,
        "the controller spread the raise over the canary too (the case this is about): {measured:?}"
    );
}

/// A share: `--canary 25%` on 4 pods (1 pod: 1 of 5 Ready pods), the floor raised to 6 (25%
/// is 2 pods there), to 8 (3 pods) and lowered to 4; the share is what holds after the
/// restoring command each time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_share_is_restored_after_the_hpa_moves_the_floor() {
    let Some(env) = TestEnv::get() else { return };
    let measured = hold_through_rescales(
        &env,
        "hold-share",
        4,
        "25%",
        &[(6, 2), (8, 3), (4, 1)],
        Rescaler::Hpa,
    )
    .await;
    eprintln!(
        "share: (floor, canary, stable) after each rescale, before any command: {measured:?}"
    );
}

/// `kubectl scale` 4 -> 6 of a held canary of 2 (the foreign-actions table's "rescaled /
/// holding" cell): the controller gives the canary a third pod; `promote --canary 2` puts it
/// back at 2 beside 6.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_count_is_restored_after_kubectl_scale() {
    let Some(env) = TestEnv::get() else { return };
    let measured = hold_through_rescales(
        &env,
        "hold-scale",
        4,
        "2",
        &[(6, 2)],
        Rescaler::KubectlScale,
    )
    .await;
    eprintln!(
        "kubectl scale: (replicas, canary, stable) after the rescale, before any command: {measured:?}"
    );
}

/// `start --auto` watches while it analyses: the HPA raises the floor from 3 to 6 during the
/// first step, the run follows (the record takes 6 replicas) and holds the canary of 1
/// again; from then on the pod watch sees at most 1 canary pod until the final promotion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_auto_keeps_the_size_asked_through_an_hpa_rescale() {
    let Some(env) = TestEnv::get() else { return };
    let ns = web_namespace(&env, "hold-auto", 3).await;
    let n = ns.name.clone();
    kubectl_ok(
        &env,
        &[
            "-n",
            &n,
            "autoscale",
            "deploy/web",
            "--min=3",
            "--max=3",
            "--cpu-percent=80",
        ],
    )
    .await;
    let client = env.client().await;
    let watch = PodCountWatch::start(&client, &n, "web", "nginx:1.15").await;
    let run = {
        let (env, n) = (env.clone(), n.clone());
        tokio::spawn(async move {
            canary(
                &env,
                &n,
                &[
                    "start",
                    "deploy/web",
                    "nginx=nginx:1.15",
                    "--allow-hpa",
                    "--auto",
                    "--steps",
                    "1",
                    "--interval",
                    "40s",
                ],
            )
            .await
        })
    };
    wait_for(
        &env,
        "the first step held",
        Duration::from_secs(60),
        || async {
            let record = canary_testkit::reads::record_json(&client, &n, "web").await?;
            (record["phase"]["name"] == "holding").then_some(())
        },
    )
    .await;
    hpa_to(&env, &n, 6).await;
    wait_for(
        &env,
        "the run to follow the rescale and hold 1 canary pod beside 6",
        Duration::from_secs(40),
        || async {
            let record = canary_testkit::reads::record_json(&client, &n, "web").await?;
            let sides = replica_sets_by_image(&env, &n).await;
            (record["replicas"] == 6
                && record["phase"]["name"] == "holding"
                && canary_of(&sides) == 1
                && stable_of(&sides) == 6)
                .then_some(())
        },
    )
    .await;
    canary_pods_are(&env, &n, 1).await;
    let from = watch.pod_counts.lock().unwrap().len();
    let phases_from = watch.phases.lock().unwrap().len();
    let out = run.await.expect("start --auto runs");
    assert_exit(&out, 0, "start --auto");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("this run watches it and holds the size asked again"),
        "{}",
        text(&out)
    );
    // No check was given and web has no httpGet probe: it says so before promoting.
    assert!(
        said.contains("promoting to 100%, although the verdicts did not judge requests"),
        "{}",
        text(&out)
    );
    // Until the final promotion was recorded, never more than the 1 pod asked.
    let phases = watch.phases.lock().unwrap().clone();
    let counts = watch.pod_counts.lock().unwrap()[from..].to_vec();
    let promote_rv = watch.first_promote_rv.lock().unwrap().expect("promoted");
    let before_promote: Vec<_> = counts.iter().filter(|(rv, _)| *rv < promote_rv).collect();
    assert!(
        before_promote.iter().all(|(_, pods)| *pods <= 1),
        "the canary exceeded 1 pod after the run followed the rescale: {before_promote:?} (phases {:?})",
        &phases[phases_from..]
    );
}
