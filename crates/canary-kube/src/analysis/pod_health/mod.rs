//! Pod health: readiness, restarts and failure states of the canary pods, compared with the
//! stable pods, from a watch on both sides' pods so that a crash is seen as soon as the
//! kubelet reports it.

mod assess;
mod state;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, ResourceExt};
use tokio::time::Instant;

use canary_core::analysis_spec::{CheckSpec, PodHealthSpec};
use canary_core::duration::format_duration;
use canary_core::verdict::{CheckResult, Outcome};

pub use assess::{Assessment, assess};

use super::clock::ServerClock;
use super::{AnalysisTarget, result_of};

/// How often time-based conditions (the Ready deadline) are re-evaluated while watching.
const REEVALUATE_EVERY: Duration = Duration::from_millis(500);

/// How long to wait for the first list of pods before giving up as inconclusive.
const SYNC_TIMEOUT: Duration = Duration::from_secs(20);

/// Watches both sides' pods for `observe_for` (at least until the first list) and returns
/// as soon as the canary shows a failure, else the state at the end.
pub async fn run(
    client: &kube::Client,
    target: &AnalysisTarget,
    check: &CheckSpec,
    settings: &PodHealthSpec,
    clock: &ServerClock,
    observe_for: Duration,
) -> CheckResult {
    let api: Api<Pod> = Api::namespaced(client.clone(), &target.namespace);
    // Both sides carry the same label (one workload, one kind).
    let selector = format!(
        "{} in ({},{})",
        target.canary.label, target.canary.hash, target.stable.hash
    );
    let stream =
        watcher::watcher(api, watcher::Config::default().labels(&selector)).default_backoff();
    futures::pin_mut!(stream);
    let started = Instant::now();
    let observe_until = started + observe_for;
    let sync_deadline = started + SYNC_TIMEOUT.max(observe_for);
    let mut pods: BTreeMap<String, Pod> = BTreeMap::new();
    let mut listing: BTreeMap<String, Pod> = BTreeMap::new();
    let mut synced = false;
    let mut last_error: Option<String> = None;
    let mut tick = tokio::time::interval(REEVALUATE_EVERY);
    loop {
        tokio::select! {
            event = stream.next() => match event {
                Some(Ok(Event::Init)) => listing.clear(),
                Some(Ok(Event::InitApply(pod))) => {
                    listing.insert(pod.name_any(), pod);
                }
                Some(Ok(Event::InitDone)) => {
                    pods = std::mem::take(&mut listing);
                    synced = true;
                }
                Some(Ok(Event::Apply(pod))) => {
                    pods.insert(pod.name_any(), pod);
                }
                Some(Ok(Event::Delete(pod))) => {
                    pods.remove(&pod.name_any());
                }
                Some(Err(error)) => {
                    // The backoff retries; remember why in case it never recovers.
                    last_error = Some(error.to_string());
                }
                None => break,
            },
            _ = tick.tick() => {}
            _ = tokio::time::sleep_until(sync_deadline), if !synced => {
                return result_of(
                    check,
                    Outcome::Inconclusive,
                    Vec::new(),
                    format!(
                        "could not list the pods ({selector}) within {}: {}",
                        format_duration(sync_deadline - started),
                        last_error.as_deref().unwrap_or("no answer from the API server")
                    ),
                );
            }
        }
        if !synced {
            continue;
        }
        let assessment = assess(pods.values(), target, settings, clock.now());
        if assessment.outcome == Outcome::Fail || Instant::now() >= observe_until {
            return result_of(
                check,
                assessment.outcome,
                assessment.measurements,
                assessment.reason,
            );
        }
    }
    let assessment = assess(pods.values(), target, settings, clock.now());
    result_of(
        check,
        assessment.outcome,
        assessment.measurements,
        assessment.reason,
    )
}
