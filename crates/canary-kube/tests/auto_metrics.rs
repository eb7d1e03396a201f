//! Analysis with no query written, on testenv's real Prometheus: for each request-metric
//! family the simulated pods export (`metrics-<family>` tokens), a canary answering errors
//! and a slow canary fail and a good canary passes; pods exporting no known family fall back
//! to the HTTP check with the reason; a canary with no traffic and no port to send requests
//! to is inconclusive with the sample size needed. Prometheus is found in the cluster (the
//! `monitoring/prometheus-operated` Service testenv runs) when no address is given. Also the
//! HTTP check's sequential sampling on a 20% error canary.
//!
//! Without a test environment the tests return early, unless `KC_TESTENV_REQUIRED=1`.

mod common;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use canary_core::analysis_spec::{
    AnalysisSpec, AutoMetricsSpec, HttpSpec, Probe, PrometheusAddress,
};
use canary_core::verdict::{CheckResult, Outcome};
use canary_kube::analysis::{self, AnalysisTarget, RunOptions};
use canary_testkit::scenario::{brake_canary_by_hand, side_with_image};
use canary_testkit::{TestEnv, TestNamespace, create_settled, wait_for};
use common::{check, latest_sides};

const WINDOW: Duration = Duration::from_secs(30);

/// A Deployment `web` of one stable pod of `stable_image` and one canary pod of
/// `canary_image` held by the brake, as `start` makes it; `ports` declared or not.
async fn canary(
    env: &TestEnv,
    namespace: &str,
    stable_image: &str,
    canary_image: &str,
    ports: bool,
) -> (kube::Client, AnalysisTarget) {
    let client = env.client().await;
    let mut container = json!({"name": "nginx", "image": stable_image});
    if ports {
        container["ports"] = json!([{"containerPort": 80}]);
    }
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {
                    "labels": {"app": "web"},
                    "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "80"}
                },
                "spec": {"containers": [container]}
            }
        }
    }))
    .expect("a valid Deployment");
    create_settled(env, namespace, &deployment).await;
    brake_canary_by_hand(
        &client,
        namespace,
        json!({"spec": {"containers": [{"name": "nginx", "image": canary_image}]}}),
    )
    .await;
    // The canary pod running for the whole window, so Prometheus has its history.
    wait_for(
        env,
        "a canary pod running for the window",
        WINDOW + Duration::from_secs(60),
        || async {
            let (_, canary_pods) = side_with_image(&client, namespace, canary_image).await?;
            let now = k8s_openapi::jiff::Timestamp::now().as_second();
            let aged = |pod: &Pod| {
                let started = pod.status.as_ref().and_then(|s| s.start_time.as_ref());
                started.is_some_and(|t| now - t.0.as_second() >= WINDOW.as_secs() as i64 + 3)
            };
            (canary_pods.len() == 1 && canary_pods.iter().all(aged)).then_some(())
        },
    )
    .await;
    let target = latest_sides(&client, namespace).await;
    (client, target)
}

async fn run_once(client: &kube::Client, target: &AnalysisTarget, probe: Probe) -> CheckResult {
    let spec = AnalysisSpec {
        window: WINDOW,
        checks: vec![check("auto-metrics", probe)],
        ..AnalysisSpec::default()
    };
    let verdict = analysis::run_analysis(client, target, &spec, RunOptions::default())
        .await
        .expect("the analysis runs");
    verdict.checks.into_iter().next().expect("one check")
}

fn auto(address: Option<&str>) -> Probe {
    Probe::AutoMetrics(AutoMetricsSpec::new(
        address.map(|url| PrometheusAddress::Url(url.into())),
        WINDOW,
    ))
}

fn assert_result(result: &CheckResult, expected: Outcome, reason_contains: &[&str], case: &str) {
    assert_eq!(
        result.outcome, expected,
        "{case}: {} ({:?})",
        result.reason, result.measurements
    );
    for part in reason_contains {
        assert!(
            result.reason.contains(part),
            "{case}: the reason should mention {part:?}: {}",
            result.reason
        );
    }
}

/// For each exported family: errors and latency fail, a good canary passes, with the series
/// used named. The micrometer cases find Prometheus in the cluster themselves.
#[tokio::test]
async fn each_family_fails_errors_and_latency_and_passes_a_good_canary() {
    let Some(env) = TestEnv::get() else { return };
    let url = env.prometheus_url.clone();
    // (token, the series named in the reason, whether Prometheus is found in the cluster)
    let families = [
        (
            "prometheus",
            "Prometheus client http_requests_total by code",
            false,
        ),
        (
            "otel",
            "OpenTelemetry http_server_request_duration_seconds by http_response_status_code",
            false,
        ),
        (
            "micrometer",
            "Micrometer http_server_requests_seconds by status",
            true,
        ),
    ];
    // (case, the canary's extra tokens, outcome, what the reason names)
    let cases = [
        (
            "errors",
            "__errors-40",
            Outcome::Fail,
            "error ratio: canary",
        ),
        (
            "latency",
            "__latency-200ms",
            Outcome::Fail,
            "mean latency (s): canary",
        ),
        ("good", "", Outcome::Pass, "series used"),
    ];
    let mut runs = Vec::new();
    for (token, series, discover) in families {
        for (case, extra, outcome, names) in cases {
            let env = env.clone();
            let url = url.clone();
            runs.push(async move {
                let ns = TestNamespace::create(&env, &format!("am-{token}-{case}")).await;
                let stable = format!("nginx:1.14__metrics-{token}");
                let canary_image = format!("nginx:1.15__metrics-{token}{extra}");
                let (client, target) = canary(&env, &ns.name, &stable, &canary_image, true).await;
                let address = (!discover).then_some(url.as_str());
                let result = run_once(&client, &target, auto(address)).await;
                let found = if discover {
                    "service monitoring/prometheus-operated:9090"
                } else {
                    "Prometheus at http"
                };
                assert_result(
                    &result,
                    outcome,
                    &[series, names, found],
                    &format!("{token} {case}"),
                );
                assert!(
                    result.measurements[0].canary.unwrap_or(0.0) >= 50.0,
                    "{token} {case}: requests {:?}",
                    result.measurements
                );
            });
        }
    }
    futures::future::join_all(runs).await;
}

/// Pods exporting no known family: the reason says so and the HTTP check (its own traffic
/// through the pod proxy) decides, failing a canary that answers errors.
#[tokio::test]
async fn no_known_family_falls_back_to_the_http_check_with_the_reason() {
    let Some(env) = TestEnv::get() else { return };
    let url = env.prometheus_url.clone();
    let cases = [
        ("good", "nginx:1.15__metrics-none", Outcome::Pass),
        ("bad", "nginx:1.15__metrics-none__errors-50", Outcome::Fail),
    ];
    let runs = cases.into_iter().map(|(case, image, outcome)| {
        let env = env.clone();
        let url = url.clone();
        async move {
            let ns = TestNamespace::create(&env, &format!("am-none-{case}")).await;
            let (client, target) =
                canary(&env, &ns.name, "nginx:1.14__metrics-none", image, true).await;
            let result = run_once(&client, &target, auto(Some(&url))).await;
            assert_result(
                &result,
                outcome,
                &[
                    "the pods export none of the known request-metric families",
                    "fell back to the HTTP check on port 80/ through the pod proxy",
                    "error rate canary",
                ],
                case,
            );
        }
    });
    futures::future::join_all(runs).await;
}

/// No traffic (`rps-0`) and no declared port to make any: inconclusive, with the requests
/// per side needed, never a pass.
#[tokio::test]
async fn a_canary_without_traffic_is_inconclusive_with_the_sample_needed() {
    let Some(env) = TestEnv::get() else { return };
    let ns = TestNamespace::create(&env, "am-quiet").await;
    let (client, target) = canary(
        &env,
        &ns.name,
        "nginx:1.14__rps-0",
        "nginx:1.15__rps-0",
        false,
    )
    .await;
    let result = run_once(&client, &target, auto(Some(&env.prometheus_url))).await;
    assert_result(
        &result,
        Outcome::Inconclusive,
        &[
            "too little traffic to judge by the metrics: the canary pods served 0 requests",
            "at least 50 per side are needed",
            "no HTTP check to fall back on: the canary pods declare no TCP container port",
        ],
        "no traffic",
    );
}

/// The case for the HTTP check: 20% errors fails in the first round, at a look well
/// before the default bound of 200 requests per side. Usually not at the first look (20
/// requests): it rejects only at Fisher p <= 0.0032 (the Pocock-type spending at t = 0.1),
/// which takes 8 or more errors of 20 against none, and that happens in about 3% of runs
/// (P(Binomial(20, 0.2) >= 8) = 0.032); so the first look counts as "before the bound" too.
#[tokio::test]
async fn a_canary_with_20_percent_errors_fails_the_http_check_in_one_round() {
    let Some(env) = TestEnv::get() else { return };
    let ns = TestNamespace::create(&env, "am-http-20").await;
    let (client, target) =
        canary(&env, &ns.name, "nginx:1.14", "nginx:1.15__errors-20", true).await;
    let http = HttpSpec {
        rate_per_second: 40.0,
        ..HttpSpec::new(80, "/")
    };
    let result = run_once(&client, &target, Probe::Http(http)).await;
    assert_result(
        &result,
        Outcome::Fail,
        &["Fisher p=", "of at most 200 requests per side"],
        "20%",
    );
    let sent = result.measurements[0].canary.expect("requests sent");
    assert!(
        (20.0..200.0).contains(&sent) && sent % 20.0 == 0.0,
        "stopped at a look before the bound: {sent}"
    );
}
