//! The key GitOps scenarios, shared by the tests under the GitOps stand-in (tests/gitops.rs)
//! and under the real Flux (tests/gitops_flux.rs): each takes a settled [`Scenario`] and runs
//! the same steps and assertions whatever applies Git.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;

/// A change from Git is held at exactly k (a pod watch never sees more new-version pods before
/// the first promote), analysed, stepped and promoted, the Deployment's own settings back
/// field by field; Argo CD's health Progressing while held and stepping, Healthy after.
pub async fn held_at_exactly_k_then_promoted(s: &Scenario) {
    let controller = s.controller("a", &[]);
    let observer = PodCountWatch::start(&s.client, &s.ns, "web", V2).await;
    s.commit(V2).await;
    s.settled_on(V2, 6).await;
    s.record_gone().await;
    s.git.stop().await;
    let most = observer.most_before_first_promote();
    assert_eq!(
        most, 1,
        "new-version pods seen at once before the first promote"
    );
    assert!(
        observer.first_promote_rv.lock().unwrap().is_some(),
        "no promote seen: {:?}",
        observer.phases()
    );
    assert_eq!(
        observer.phases(),
        [
            "starting",
            "holding",
            "promoting",
            "holding",
            "promotingFull"
        ],
        "log: {}",
        controller.log_text()
    );
    assert_eq!(observer.unavailable(), Vec::<String>::new());
    // Argo CD: Progressing while held and stepping, Healthy once promoted.
    assert_argocd_health(&observer, &["held", "stepping"]);
    s.assert_own_settings_back().await;
    assert_eq!(s.before, default_rollout());
    assert_eq!(s.said("CanaryPromoted").await, 1);
    assert_eq!(s.said("CanaryAnalysisPassed").await, 2);
    let (status, metrics) = controller.get("/metrics").await.expect("metrics served");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("kubectl_canary_controller_verdicts_total{decision=\"pass\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "kubectl_canary_controller_canary_duration_seconds_count{outcome=\"promoted\"} 1"
        ),
        "{metrics}"
    );
    assert_eq!(controller.get("/readyz").await.map(|r| r.0), Some(200));
}

/// A failing canary rests on the stable pods (Git's template, paused, the canary at 0) while
/// Git re-applies it, Argo CD's health Degraded; a revert commit releases the brake in its
/// own write.
pub async fn bad_canary_rests_on_the_stable_pods(s: &Scenario) {
    let _controller = s.controller("a", &[]);
    let observer = PodCountWatch::start(&s.client, &s.ns, "web", BAD).await;
    s.commit(BAD).await;
    s.phase_is("aborting", |r| {
        r["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["event"].as_str().unwrap().starts_with("release failed"))
    })
    .await;
    // Git keeps applying the bad manifest (three re-applies): nothing moves.
    s.reapplied(3).await;
    let d = s.deployment().await;
    let spec = d.spec.clone().unwrap();
    assert_eq!(
        spec.template.spec.unwrap().containers[0].image.as_deref(),
        Some(BAD),
        "Git's template stays"
    );
    assert_eq!(spec.paused, Some(true));
    assert_eq!(
        pods_by_image(&s.client, &s.ns).await,
        BTreeMap::from([(V1.to_string(), 5)]),
        "only stable pods"
    );
    assert_eq!(d.status.clone().unwrap().available_replicas, Some(5));
    assert_eq!(observer.most_before_first_promote(), 1);
    assert_eq!(s.said("CanaryFailed").await, 1);
    // Argo CD shows the failed canary resting on the stable pods as Degraded.
    let resting = canary_testkit::argocd::health(&[serde_json::to_value(&d).unwrap()]);
    assert_eq!(resting[0].status, "Degraded", "{resting:?}");
    // A revert commit ends it: the brake comes off in the same write, the record closes.
    s.commit(V1).await;
    assert_eq!(
        s.rollout_fields().await,
        s.before,
        "the revert write itself put the Deployment's settings back"
    );
    s.record_gone().await;
    s.settled_on(V1, 5).await;
    s.git.stop().await;
    assert_eq!(observer.unavailable(), Vec::<String>::new());
    assert_eq!(
        kubectl_canary_annotations(&s.deployment().await),
        Vec::<String>::new()
    );
    // Argo CD: Progressing while held, Degraded while failed and resting, Healthy after the
    // revert.
    assert_argocd_health(&observer, &["held", "resting"]);
}

/// A second commit mid-canary replaces the canary at exactly k against the same stable side.
pub async fn second_commit_replaces_the_canary(s: &Scenario) {
    let _controller = s.controller("a", &[]);
    let observer_v3 = PodCountWatch::start(&s.client, &s.ns, "web", V3).await;
    s.commit(V2).await;
    s.phase_is("holding", |_| true).await;
    s.commit(V3).await;
    let record = s
        .phase_is("holding", |r| r["targetImages"]["nginx"] == V3)
        .await;
    assert_eq!(
        record["originalImages"]["nginx"], V1,
        "the stable side stays"
    );
    s.pods_are(
        "the first canary's pods gone",
        &[(V1, 5), (V3, 1)],
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(observer_v3.most_before_first_promote(), 1);
    assert_eq!(s.said("CanaryReplaced").await, 1);
    s.git.stop().await;
    assert_eq!(observer_v3.unavailable(), Vec::<String>::new());
}

/// A revert commit mid-canary releases the brake in its own write; the record closes.
pub async fn revert_commit_releases_the_brake(s: &Scenario) {
    let _controller = s.controller("a", &[]);
    let observer = PodCountWatch::start(&s.client, &s.ns, "web", V2).await;
    s.commit(V2).await;
    s.phase_is("holding", |_| true).await;
    assert_eq!(s.rollout_fields().await["paused"], true);
    s.commit(V1).await;
    assert_eq!(
        s.rollout_fields().await,
        s.before,
        "released by the revert write itself"
    );
    s.record_gone().await;
    s.settled_on(V1, 5).await;
    // Re-applies of the reverted manifest change nothing.
    s.reapplied(2).await;
    s.git.stop().await;
    assert_eq!(observer.unavailable(), Vec::<String>::new());
    // Argo CD: Progressing while held, Healthy after the revert.
    assert_argocd_health(&observer, &["held"]);
    s.assert_own_settings_back().await;
    assert_eq!(s.said("CanaryReverted").await, 1);
}

/// Git changes `spec.replicas` mid-canary (6, 9 at the first step, 12 at the 25% step): the
/// count step stays 1 pod, the share step stays 25%, the sides follow.
pub async fn replicas_change_is_followed(s: &Scenario) {
    use canary_core::rollout_math::{CanaryMode, CanarySize, resolve_canary};
    let share = |replicas| {
        resolve_canary(CanarySize::Percent(25.0), replicas, CanaryMode::Surge)
            .unwrap()
            .pods
    };
    // The scenario: the 25% step differs at each size.
    assert_eq!((share(6), share(9), share(12)), (2, 3, 4));
    let (client, ns) = (&s.client, s.ns.as_str());
    let controller = s.controller("a", &[]);
    let observer = PodCountWatch::start(client, ns, "web", V2).await;
    s.commit(V2).await;
    s.phase_is("holding", |r| r["phase"]["pods"] == 1).await;
    // Available=False is expected only while the pods of a scale-up start (the brake's
    // maxUnavailable=0 counts every missing pod, as it would for any Deployment with
    // maxUnavailable 0); it must never be seen otherwise.
    let env = &s.setup.env;
    let stable_available = |replicas: i32| async move {
        canary_testkit::wait_until(
            env,
            &format!("{replicas} stable pods available"),
            Duration::from_secs(60),
            move || async move {
                deployment(client, ns)
                    .await
                    .status
                    .is_some_and(|status| status.available_replicas == Some(replicas))
            },
        )
        .await
    };
    let mut unavailable_outside_scaling = observer.unavailable();
    // Git scales to 9 at the first step: the count (1 pod) stays.
    let scaling = observer.unavailable().len();
    s.commit_manifest(&s.manifest(9, V2)).await;
    let record = s
        .phase_is("holding", |r| r["replicas"] == 9 && r["phase"]["pods"] == 1)
        .await;
    assert_eq!(record["requestedSize"], "1", "{record}");
    s.pods_are(
        "1 canary and 9 stable pods",
        &[(V2, 1), (V1, 9)],
        Duration::from_secs(60),
    )
    .await;
    stable_available(9).await;
    let scaled = observer.unavailable().len();
    assert!(scaled >= scaling);
    // The 25% step at 9 replicas, then Git scales to 12: the share stays 25%.
    s.phase_is("holding", |r| r["phase"]["pods"] == 3).await;
    unavailable_outside_scaling.extend(observer.unavailable().into_iter().skip(scaled));
    let scaling = observer.unavailable().len();
    s.commit_manifest(&s.manifest(12, V2)).await;
    s.phase_is("holding", |r| {
        r["replicas"] == 12 && r["phase"]["pods"] == 4
    })
    .await;
    s.pods_are(
        "4 canary and 12 stable pods",
        &[(V2, 4), (V1, 12)],
        Duration::from_secs(60),
    )
    .await;
    stable_available(12).await;
    let scaled = observer.unavailable().len();
    s.settled_on(V2, 12).await;
    s.record_gone().await;
    s.git.stop().await;
    assert_eq!(
        observer.most_before_first_promote(),
        1,
        "new-version pods seen at once before the first promote; log: {}",
        controller.log_text()
    );
    assert!(scaled >= scaling);
    unavailable_outside_scaling.extend(observer.unavailable().into_iter().skip(scaled));
    assert_eq!(unavailable_outside_scaling, Vec::<String>::new());
    assert_eq!(s.said("CanaryFollowedReplicas").await, 2);
    assert_eq!(s.events("CanaryStuck").await, 0);
    s.assert_own_settings_back().await;
}
