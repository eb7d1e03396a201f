//! The GitOps controller under the real Flux: the key scenarios of tests/gitops.rs (shared,
//! `common::scenarios`) with source-controller and kustomize-controller (built from their Go
//! modules, `canary_testkit::flux`) applying a Git repository served by `git http-backend`,
//! drift detection on (Flux v1 compares and re-applies at every reconcile; the tests ask for
//! reconciles with the requestedAt annotation). And what docs/gitops.md claims of Flux: which
//! fields kustomize-controller takes over, and that the brake holds with and without the
//! Kustomization's ignore rules.

mod common;

use std::collections::BTreeMap;

use canary_testkit::flux::Settings;
use serde_json::Value;

use common::*;

/// A scenario under Flux with the strict pod-health analysis: `web` at `replicas` pods of V1
/// under `annotations`, the Kustomization set up as docs/gitops.md recommends.
async fn under_flux(
    prefix: &str,
    replicas: i32,
    annotations: BTreeMap<String, String>,
) -> Option<Scenario> {
    Scenario::settled_under_flux(
        prefix,
        replicas,
        annotations,
        Some(POD_HEALTH),
        Settings::default(),
    )
    .await
}

#[tokio::test]
async fn under_flux_a_git_change_is_held_at_exactly_k_then_analysed_and_promoted() {
    let Some(s) = under_flux("flux-promote", 6, policy("3", "6s")).await else {
        return;
    };
    scenarios::held_at_exactly_k_then_promoted(&s).await;
    // Flux's next reconciles leave the promoted Deployment as it is.
    s.reapplied(2).await;
    s.assert_own_settings_back().await;
}

#[tokio::test]
async fn under_flux_a_bad_canary_rests_on_the_stable_pods_while_flux_keeps_applying_it() {
    let Some(s) = under_flux("flux-bad", 5, policy("", "5s")).await else {
        return;
    };
    scenarios::bad_canary_rests_on_the_stable_pods(&s).await;
}

#[tokio::test]
async fn under_flux_a_second_commit_mid_canary_replaces_it_at_exactly_k() {
    let Some(s) = under_flux("flux-second", 5, policy("", "60s")).await else {
        return;
    };
    scenarios::second_commit_replaces_the_canary(&s).await;
}

#[tokio::test]
async fn under_flux_a_revert_commit_mid_canary_releases_the_brake_in_the_same_write() {
    let Some(s) = under_flux("flux-revert", 5, policy("", "60s")).await else {
        return;
    };
    scenarios::revert_commit_releases_the_brake(&s).await;
}

#[tokio::test]
async fn under_flux_a_replicas_change_in_git_mid_canary_is_followed() {
    let Some(s) = under_flux("flux-rescale", 6, policy("25%", "15s")).await else {
        return;
    };
    scenarios::replicas_change_is_followed(&s).await;
}

/// The managers of the fields of `web`: manager (operation) -> the top-level paths of its
/// fieldsV1 under `spec` and `metadata.annotations` it owns.
fn managers(d: &Value) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for entry in d["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if entry.get("subresource").is_some() {
            continue;
        }
        let key = format!(
            "{} ({})",
            entry["manager"].as_str().unwrap_or_default(),
            entry["operation"].as_str().unwrap_or_default()
        );
        let fields = &entry["fieldsV1"];
        let mut owned = Vec::new();
        for (k, v) in fields["f:spec"].as_object().into_iter().flatten() {
            if k == "f:strategy" {
                for (k2, _) in v["f:rollingUpdate"].as_object().into_iter().flatten() {
                    owned.push(format!("spec.strategy.rollingUpdate.{}", &k2[2..]));
                }
            } else {
                owned.push(format!("spec.{}", &k[2..]));
            }
        }
        for (k, _) in fields["f:metadata"]["f:annotations"]
            .as_object()
            .into_iter()
            .flatten()
        {
            owned.push(format!("annotation {}", &k[2..]));
        }
        owned.sort();
        out.insert(key, owned);
    }
    out
}

/// What kustomize-controller does to the brake and to the controller's writes while a canary
/// is held: the brake's fields, the pause and the held count stay through its reconciles
/// (drift detection: a server-side dry-run apply, which the policy brakes as it brakes the
/// apply, compared with the object, then the apply), and the canary is promoted with the
/// Deployment's own settings back.
async fn the_brake_holds_through_flux_reconciles(prefix: &str) {
    let Some(s) = under_flux(prefix, 4, policy("", "12s")).await else {
        return;
    };
    let controller = s.controller("a", &[]);
    let observer = PodCountWatch::start(&s.client, &s.ns, "web", V2).await;
    s.commit(V2).await;
    s.phase_is("holding", |_| true).await;
    let held = s.rollout_fields().await;
    assert_eq!(held["paused"], true, "{held}");
    assert_eq!(held["minReadySeconds"], 1_000_000_000, "{held}");
    let before = serde_json::to_value(s.deployment().await).unwrap();
    eprintln!(
        "field managers while held, before Flux's reconciles: {:#?}",
        managers(&before)
    );
    let controller_fields = "kubectl-canary-controller (Update)";
    assert_eq!(
        managers(&before).get(controller_fields).map(Vec::as_slice),
        Some(&["spec.paused".to_string()][..]),
        "the controller's pause is its own field before Flux's reconciles"
    );
    s.reapplied(3).await;
    let after = serde_json::to_value(s.deployment().await).unwrap();
    eprintln!(
        "field managers while held, after 3 Flux reconciles: {:#?}",
        managers(&after)
    );
    // kustomize-controller takes over the fields of every manager whose name starts with
    // `kubectl` (its clean-up of `kubectl` and `kubectl apply` edits matches by prefix), the
    // controller's included, and its apply leaves `spec.paused` out; the policy keeps the
    // pause while the brake is on, so it stays true with no manager at all.
    let after_managers = managers(&after);
    assert!(
        !after_managers.contains_key(controller_fields),
        "{after_managers:#?}"
    );
    assert!(
        after_managers
            .values()
            .all(|fields| !fields.contains(&"spec.paused".to_string())),
        "{after_managers:#?}"
    );
    assert_eq!(
        s.rollout_fields().await,
        held,
        "Flux's reconciles changed the brake"
    );
    assert_eq!(
        kubectl_canary_annotations(&s.deployment().await),
        kubectl_canary_annotations(&serde_json::from_value(before).unwrap()),
        "Flux's reconciles changed the brake's annotations"
    );
    assert_eq!(pods_by_image(&s.client, &s.ns).await.get(V2), Some(&1));
    s.settled_on(V2, 4).await;
    s.record_gone().await;
    assert_eq!(
        observer.most_before_first_promote(),
        1,
        "log: {}",
        controller.log_text()
    );
    assert_eq!(observer.unavailable(), Vec::<String>::new());
    s.reapplied(1).await;
    s.assert_own_settings_back().await;
}

#[tokio::test]
async fn under_flux_the_policy_keeps_the_brake_through_its_reconciles_without_ignore_rules() {
    the_brake_holds_through_flux_reconciles("flux-reapply").await;
}

/// The Kustomization `spec.ignore` rules for the brake's fields that docs/gitops.md used to
/// recommend: once a commit is braked, the dry run that kustomize-controller v1.9.6 compares
/// with differs from the object at the ignored paths, it copies the object's values into the
/// manifest with JSON-patch `replace` operations, and a manifest that leaves those fields out
/// (as most do) has no such path: the apply of that commit fails, every retry, and Git's
/// change is not applied at all.
#[tokio::test]
async fn under_flux_ignore_rules_for_the_brake_fields_make_the_commit_fail_to_apply() {
    let Some(s) = Scenario::settled_under_flux(
        "flux-ignore",
        3,
        policy("", "12s"),
        Some(POD_HEALTH),
        Settings {
            ignore_brake_fields: true,
            wait: false,
        },
    )
    .await
    else {
        return;
    };
    let _controller = s.controller("a", &[]);
    let message = s.git.flux().commit_failing(&s.manifest(3, V2), "V2").await;
    assert!(
        message.contains("replace operation does not apply: doc is missing path: /spec/strategy/rollingUpdate/maxSurge"),
        "{message}"
    );
    let d = s.deployment().await;
    assert_eq!(
        d.spec.unwrap().template.spec.unwrap().containers[0]
            .image
            .as_deref(),
        Some(V1),
        "the commit was not applied"
    );
}

/// docs/gitops.md said an annotation not in Git is left alone by Flux's server-side apply.
/// Not when it was written by a manager whose name starts with `kubectl`: `kubectl annotate`
/// writes as `kubectl-annotate` (Update), kustomize-controller's clean-up takes that entry
/// over (prefix `kubectl`), and its next apply, which leaves the annotation out, removes it.
#[tokio::test]
async fn under_flux_an_annotation_written_with_kubectl_annotate_is_removed_by_its_next_reconcile() {
    let Some(s) = under_flux("flux-annotate", 2, policy("", "1m")).await else {
        return;
    };
    let note = "example.com/note";
    let output = s.setup.env.run(
        "kubectl",
        &[
            "-n",
            &s.ns,
            "annotate",
            "deploy/web",
            &format!("{note}=by-hand"),
        ],
    );
    assert!(output.status.success(), "{output:?}");
    let annotated = serde_json::to_value(s.deployment().await).unwrap();
    assert_eq!(annotated["metadata"]["annotations"][note], "by-hand");
    assert!(
        managers(&annotated).contains_key("kubectl-annotate (Update)"),
        "{:#?}",
        managers(&annotated)
    );
    s.reapplied(1).await;
    let after = serde_json::to_value(s.deployment().await).unwrap();
    assert_eq!(
        after["metadata"]["annotations"].get(note),
        None,
        "managers after Flux's reconcile: {:#?}",
        managers(&after)
    );
}

/// With `wait: true` Flux reports a commit applied only once what it applied is Current
/// (kstatus: for a Deployment, every replica updated and available). A held canary is not: the
/// Kustomization of the braked commit is `Ready=False` after its timeout (a health-check
/// failure naming the Deployment), which holds back what depends on it, as Argo CD's
/// `Progressing` holds back later sync waves; once the canary is promoted, Flux's retry finds
/// the Deployment Current and the Kustomization Ready on that commit.
#[tokio::test]
async fn under_flux_with_wait_the_kustomization_is_not_ready_until_the_canary_is_promoted() {
    let Some(s) = Scenario::settled_under_flux(
        "flux-wait",
        3,
        // Longer than the Kustomization's 30 s timeout: Flux gives up waiting while held.
        // (With a 10 s timeout and a 20 s interval one run saw Flux wait 25 s and succeed
        // after the promotion, so the margin is kept wide.)
        policy("", "40s"),
        Some(POD_HEALTH),
        Settings {
            ignore_brake_fields: false,
            wait: true,
        },
    )
    .await
    else {
        return;
    };
    let _controller = s.controller("a", &[]);
    let flux = s.git.flux();
    let message = flux.commit_failing(&s.manifest(3, V2), "V2").await;
    assert!(
        message.contains(&format!("Deployment/{}/web status: 'InProgress'", s.ns)),
        "{message}"
    );
    let record = s.phase_is("holding", |_| true).await;
    assert_eq!(record["phase"]["pods"], 1, "{record}");
    // Promoted after the 40 s interval; Flux's retries then find the Deployment Current.
    flux.applied(&flux.head()).await;
    s.settled_on(V2, 3).await;
    s.record_gone().await;
    eprintln!("the Kustomization while the canary held: {message}");
}
