//! The controller's container image (crates/canary-controller/Containerfile, built by
//! scripts/image from the binary under test) run as deploy/controller.yaml asks: two
//! containers with the in-cluster configuration (the ServiceAccount's token, the CA and the
//! namespace where a kubelet mounts them, `KUBERNETES_SERVICE_HOST`/`PORT`), a read-only root
//! file system, the image's non-root user, against testenv's API server. One leads, both
//! answer `/readyz` and `/metrics`, the leader carries out a canary, and `podman stop`
//! (SIGTERM) of the leader hands the Lease to the other.

mod common;

use std::time::Duration;

use common::container::{ControllerContainer, TestImage, service_account_volume};
use common::*;

/// The holder of `lease` in the controller's namespace, if any.
async fn lease_holder(client: &kube::Client, lease: &str) -> Option<String> {
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(client.clone(), "kubectl-canary-system");
    leases
        .get_opt(lease)
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec?.holder_identity)
}

/// The value of the `..._leader` gauge a replica reports.
async fn leader_gauge(container: &ControllerContainer) -> Option<String> {
    let (status, metrics) = container.get("/metrics").await?;
    (status == 200).then_some(())?;
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("kubectl_canary_controller_leader "))
        .map(str::to_string)
}

#[tokio::test]
async fn two_containers_of_the_image_elect_a_leader_that_carries_out_a_canary_and_hands_over_on_sigterm()
 {
    let Some(s) = Scenario::settled("gitops-image", 4, policy("", "6s"), Some(POD_HEALTH)).await
    else {
        return;
    };
    let Some(image) = TestImage::build(&s.ns) else {
        return;
    };
    let (env, client, lease) = (&s.setup.env, &s.client, s.lease());
    let lease = lease.as_str();
    let volume = service_account_volume(client, &scratch(&s.ns)).await;
    let (_, apiserver) = env.apiserver();
    let start = |identity: &str| {
        ControllerContainer::start(&image.tag, &volume, apiserver, &s.ns, lease, identity)
    };

    let first = start("first");
    canary_testkit::wait_until(
        env,
        "the first container to lead",
        Duration::from_secs(60),
        || async move { lease_holder(client, lease).await.as_deref() == Some("first") },
    )
    .await;
    let second = start("second");
    for container in [&first, &second] {
        canary_testkit::wait_until(
            env,
            &format!("{} to answer /readyz with 200", container.name),
            Duration::from_secs(30),
            || async move { container.get("/readyz").await.map(|r| r.0) == Some(200) },
        )
        .await;
    }
    // As the manifest demands: the image's non-root user, a read-only root.
    for container in [&first, &second] {
        let status = container.proc_file("status");
        let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        assert_eq!(
            uid.split_whitespace().skip(1).collect::<Vec<_>>(),
            ["65532"; 4],
            "{status}"
        );
        let mounts = container.proc_file("mounts");
        let root = mounts
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some("/"))
            .unwrap();
        let options = root.split_whitespace().nth(3).unwrap();
        assert!(options.split(',').any(|o| o == "ro"), "{root}");
    }
    // One leader: the Lease's holder, and the only replica that says it leads.
    assert_eq!(leader_gauge(&first).await.as_deref(), Some("1"));
    assert_eq!(leader_gauge(&second).await.as_deref(), Some("0"));
    assert_eq!(lease_holder(client, lease).await.as_deref(), Some("first"));

    // A canary, carried out by the leader.
    let observer = PodCountWatch::start(client, &s.ns, "web", V2).await;
    s.commit(V2).await;
    s.phase_is("holding", |_| true).await;
    s.settled_on(V2, 4).await;
    s.record_gone().await;
    assert_eq!(observer.most_before_first_promote(), 1);
    assert_eq!(observer.unavailable(), Vec::<String>::new());
    assert_eq!(s.said("CanaryPromoted").await, 1);
    s.assert_own_settings_back().await;
    let (leader_log, standby_log) = (first.log_text(), second.log_text());
    assert!(leader_log.contains("CanaryPromoted"), "{leader_log}");
    assert!(!standby_log.contains("CanaryPromoted"), "{standby_log}");
    let (status, metrics) = first.get("/metrics").await.expect("metrics served");
    assert_eq!(status, 200);
    assert!(
        metrics.contains(
            "kubectl_canary_controller_canary_duration_seconds_count{outcome=\"promoted\"} 1"
        ),
        "{metrics}"
    );

    // SIGTERM to the leader (podman stop, as the kubelet stops it): a clean exit, the Lease
    // released, the other container leads.
    assert_eq!(
        first.stop(),
        i32::from(canary_controller::exit_code::STOPPED),
        "{}",
        first.log_text()
    );
    assert_ne!(
        lease_holder(client, lease).await.as_deref(),
        Some("first"),
        "the Lease was released"
    );
    canary_testkit::wait_until(
        env,
        "the second container to lead",
        Duration::from_secs(30),
        || async move { lease_holder(client, lease).await.as_deref() == Some("second") },
    )
    .await;
    let second = &second;
    canary_testkit::wait_until(
        env,
        "the second container to report that it leads and be ready",
        Duration::from_secs(30),
        || async move {
            leader_gauge(second).await.as_deref() == Some("1")
                && second.get("/readyz").await.map(|r| r.0) == Some(200)
        },
    )
    .await;
    s.git.stop().await;
}
