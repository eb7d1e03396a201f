//! Logs: error lines per pod per minute in the canary and stable pods over the analysis
//! window, read through the API server's log endpoint (`pods/{name}/log?sinceSeconds=`),
//! judged by [`canary_core::verdict::logs::judge_logs`].
//!
//! Spans are measured on the API server's clock ([`ServerClock`]) from the container
//! instance whose log is read; when a log is larger than the byte cap only its newest part is
//! read and the rate divides by the time that part covers (the `read` module).

mod read;
mod sample;

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::ResourceExt;

use canary_core::analysis_spec::{CheckSpec, LogsSpec};
use canary_core::verdict::logs::{PodLogCount, SideLogs, judge_logs, log_span};
use canary_core::verdict::{CheckResult, Outcome};

use super::clock::ServerClock;
use super::{AnalysisTarget, Side, list_side_pods, result_of};
pub use sample::MAX_LOG_PODS_PER_SIDE;

/// Log reads in flight at once per side, to spare the API server and the kubelets.
const CONCURRENT_LOG_READS: usize = 5;

/// Reads and counts the logs of both sides and compares their error rates.
pub async fn run(
    client: &kube::Client,
    target: &AnalysisTarget,
    check: &CheckSpec,
    settings: &LogsSpec,
    clock: &ServerClock,
    window: Duration,
) -> CheckResult {
    let (canary, stable) = futures::join!(
        read_side(client, target, settings, clock, window, Side::Canary),
        read_side(client, target, settings, clock, window, Side::Stable)
    );
    let (canary, stable) = match (canary, stable) {
        (Ok(canary), Ok(stable)) => (canary, stable),
        (Err(problem), _) | (_, Err(problem)) => {
            return result_of(check, Outcome::Inconclusive, Vec::new(), problem);
        }
    };
    let (outcome, measurements, reason) = judge_logs(&canary, &stable, settings, window);
    result_of(check, outcome, measurements, reason)
}

async fn read_side(
    client: &kube::Client,
    target: &AnalysisTarget,
    settings: &LogsSpec,
    clock: &ServerClock,
    window: Duration,
    side: Side,
) -> Result<SideLogs, String> {
    let all_pods = list_side_pods(client, target, side).await?;
    let sample = sample::sample_pods(all_pods);
    let api: Api<Pod> = Api::namespaced(client.clone(), &target.namespace);
    let reads = sample.pods.iter().map(|pod| {
        let api = api.clone();
        let name = pod.name_any();
        let container = settings
            .container
            .clone()
            .or_else(|| sample::default_container(pod));
        let instance = container
            .as_deref()
            .map(|c| sample::instance_of(pod, c))
            .unwrap_or_default();
        async move {
            let now = clock.now().as_second();
            let window_start = now - window.as_secs() as i64;
            let read = read::read_newest(
                &api,
                &name,
                container.as_deref(),
                window,
                settings.max_bytes_per_pod,
                &settings.patterns,
            )
            .await
            .map_err(|error| format!("{name}: {error}"))?;
            // A cut log covers from its first line read to its last; a whole one up to the
            // read (or the instance's end).
            let end = match (read.truncated, read.last_line, instance.finished) {
                (true, Some(last), _) => last,
                (_, _, Some(finished)) => finished.min(now),
                _ => now,
            };
            let observed = log_span(
                window_start,
                instance.started,
                end,
                read.first_line,
                read.truncated,
            );
            Ok::<_, String>(PodLogCount {
                pod: name,
                error_lines: read.counter.errors,
                lines: read.counter.lines,
                observed,
                truncated: read.truncated,
            })
        }
    });
    let mut side_logs = SideLogs {
        not_sampled: sample.not_sampled,
        ..SideLogs::default()
    };
    let mut reads = futures::stream::iter(reads).buffer_unordered(CONCURRENT_LOG_READS);
    while let Some(read) = reads.next().await {
        match read {
            Ok(count) => side_logs.pods.push(count),
            Err(problem) => side_logs.unreadable.push(problem),
        }
    }
    Ok(side_logs)
}
