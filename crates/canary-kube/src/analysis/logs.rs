//! Logs: error lines per pod per minute in the canary and stable pods over the analysis
//! window, read through the API server's log endpoint (`pods/{name}/log?sinceSeconds=`).

use std::time::Duration;

use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::LogParams;
use kube::{Api, ResourceExt};
use regex::Regex;

use canary_core::analysis_spec::{CheckSpec, LogsSpec, MAX_LOG_BYTES_PER_POD};
use canary_core::duration::format_duration;
use canary_core::stats;
use canary_core::verdict::{CheckResult, Measurement, Outcome, format_number};

use super::{AnalysisTarget, Side, list_side_pods, result_of};

/// Confidence needed before a higher canary error-line rate counts as a failure.
pub const LOG_RATE_CONFIDENCE: f64 = 0.98;

/// At most this many pods' logs are read per side.
pub const MAX_LOG_PODS_PER_SIDE: usize = 20;

/// Log reads in flight at once per side, to spare the API server and the kubelets.
const CONCURRENT_LOG_READS: usize = 5;

/// Below this much observed log time on a side the rates mean little: a pod started five
/// seconds ago with no error yet is no evidence of a good release.
const MIN_OBSERVED: Duration = Duration::from_secs(20);

/// Error lines counted in one pod's log.
#[derive(Debug, Clone, PartialEq)]
pub struct PodLogCount {
    /// The pod.
    pub pod: String,
    /// Lines matching an error pattern.
    pub error_lines: usize,
    /// All lines read.
    pub lines: usize,
    /// How much time the log covers: the window, or the pod's age if it is younger.
    pub observed: Duration,
}

impl PodLogCount {
    /// Error lines per minute.
    pub fn rate_per_minute(&self) -> f64 {
        self.error_lines as f64 / (self.observed.as_secs_f64() / 60.0)
    }
}

/// Counts the lines of `text` matching any of `patterns`.
pub fn count_error_lines(text: &str, patterns: &[Regex]) -> (usize, usize) {
    let mut counter = LineCounter::default();
    for line in text.lines() {
        counter.add(line, patterns);
    }
    (counter.errors, counter.lines)
}

/// Reads and counts the logs of both sides and compares their error rates.
pub async fn run(
    client: &kube::Client,
    target: &AnalysisTarget,
    check: &CheckSpec,
    settings: &LogsSpec,
    window: Duration,
) -> CheckResult {
    let (canary, stable) = futures::join!(
        read_side(client, target, settings, window, Side::Canary),
        read_side(client, target, settings, window, Side::Stable)
    );
    let (canary, stable) = match (canary, stable) {
        (Ok(canary), Ok(stable)) => (canary, stable),
        (Err(problem), _) | (_, Err(problem)) => {
            return result_of(check, Outcome::Inconclusive, Vec::new(), problem);
        }
    };
    let result = judge(&canary, &stable, settings, window);
    result_of(check, result.0, result.1, result.2)
}

/// What was read from one side.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SideLogs {
    /// Counts of the pods whose logs could be read.
    pub pods: Vec<PodLogCount>,
    /// Pods whose logs could not be read, with why.
    pub unreadable: Vec<String>,
    /// Pods left out of the sample (see [`MAX_LOG_PODS_PER_SIDE`]).
    pub not_sampled: usize,
}

async fn read_side(
    client: &kube::Client,
    target: &AnalysisTarget,
    settings: &LogsSpec,
    window: Duration,
    side: Side,
) -> Result<SideLogs, String> {
    let all_pods = list_side_pods(client, target, side).await?;
    let pods = sample_pods(all_pods);
    let api: Api<Pod> = Api::namespaced(client.clone(), &target.namespace);
    let now = Timestamp::now();
    let reads = pods.pods.iter().map(|pod| {
        let api = api.clone();
        let name = pod.name_any();
        let age = pod
            .metadata
            .creation_timestamp
            .as_ref()
            .and_then(|created| u64::try_from(now.as_second() - created.0.as_second()).ok())
            .map(Duration::from_secs)
            .unwrap_or(window);
        let params = LogParams {
            container: settings
                .container
                .clone()
                .or_else(|| default_container(pod)),
            since_seconds: Some(window.as_secs().max(1) as i64),
            limit_bytes: Some(MAX_LOG_BYTES_PER_POD),
            ..LogParams::default()
        };
        async move {
            match count_pod_log(&api, &name, &params, &settings.patterns).await {
                Ok(counter) => Ok(PodLogCount {
                    pod: name,
                    error_lines: counter.errors,
                    lines: counter.lines,
                    observed: age.min(window),
                }),
                Err(error) => Err(format!("{name}: {error}")),
            }
        }
    });
    let mut side_logs = SideLogs {
        not_sampled: pods.not_sampled,
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

/// Error lines and all lines of a log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct LineCounter {
    errors: usize,
    lines: usize,
}

impl LineCounter {
    fn add(&mut self, line: &str, patterns: &[Regex]) {
        self.lines += 1;
        if patterns.iter().any(|p| p.is_match(line)) {
            self.errors += 1;
        }
    }
}

/// Streams one pod's log and counts its lines, so memory stays at one line whatever the
/// log's size (up to [`MAX_LOG_BYTES_PER_POD`]).
async fn count_pod_log(
    api: &Api<Pod>,
    name: &str,
    params: &LogParams,
    patterns: &[Regex],
) -> Result<LineCounter, String> {
    let reader = api
        .log_stream(name, params)
        .await
        .map_err(|e| e.to_string())?;
    futures::pin_mut!(reader);
    let mut counter = LineCounter::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| format!("reading the log: {e}"))?;
        if read == 0 {
            return Ok(counter);
        }
        // Logs are not always UTF-8; a replaced byte does not hide an error word.
        counter.add(String::from_utf8_lossy(&line).trim_end(), patterns);
    }
}

/// The pods whose logs are read.
struct PodSample {
    pods: Vec<Pod>,
    not_sampled: usize,
}

/// At most [`MAX_LOG_PODS_PER_SIDE`] pods, spread evenly over the name order: the rate per
/// pod needs a sample, not every pod of a large Deployment.
fn sample_pods(mut pods: Vec<Pod>) -> PodSample {
    if pods.len() <= MAX_LOG_PODS_PER_SIDE {
        return PodSample {
            pods,
            not_sampled: 0,
        };
    }
    pods.sort_by_key(|p| p.name_any());
    let total = pods.len();
    let picked: Vec<Pod> = (0..MAX_LOG_PODS_PER_SIDE)
        .map(|i| pods[i * total / MAX_LOG_PODS_PER_SIDE].clone())
        .collect();
    PodSample {
        pods: picked,
        not_sampled: total - MAX_LOG_PODS_PER_SIDE,
    }
}

/// The container `kubectl logs` would pick: the one named by the
/// `kubectl.kubernetes.io/default-container` annotation, else the first. Without a name the
/// API refuses to read the log of a pod with several containers.
fn default_container(pod: &Pod) -> Option<String> {
    pod.annotations()
        .get("kubectl.kubernetes.io/default-container")
        .cloned()
        .or_else(|| {
            pod.spec
                .as_ref()?
                .containers
                .first()
                .map(|c| c.name.clone())
        })
}

fn side_rate(side: &SideLogs) -> Option<f64> {
    let observed: f64 = side.pods.iter().map(|p| p.observed.as_secs_f64()).sum();
    if side.pods.is_empty() || observed <= 0.0 {
        return None;
    }
    // Mean of the per-pod rates, weighted by how long each pod was observed.
    let errors: usize = side.pods.iter().map(|p| p.error_lines).sum();
    let pod_minutes = observed / 60.0;
    Some(errors as f64 / pod_minutes)
}

/// Compares the two sides' error rates: the canary fails when its rate is above
/// `max_ratio` times the stable rate and at least `min_increase_per_minute` above it.
pub fn judge(
    canary: &SideLogs,
    stable: &SideLogs,
    settings: &LogsSpec,
    window: Duration,
) -> (Outcome, Vec<Measurement>, String) {
    let canary_rate = side_rate(canary);
    let stable_rate = side_rate(stable);
    let total_lines = |side: &SideLogs| side.pods.iter().map(|p| p.lines).sum::<usize>() as f64;
    let error_lines =
        |side: &SideLogs| side.pods.iter().map(|p| p.error_lines).sum::<usize>() as f64;
    let measurements = vec![
        Measurement::new("error lines per pod per minute", canary_rate, stable_rate),
        Measurement::new(
            "error lines",
            Some(error_lines(canary)),
            Some(error_lines(stable)),
        ),
        Measurement::new(
            "log lines read",
            Some(total_lines(canary)),
            Some(total_lines(stable)),
        ),
        Measurement::new(
            "pods read",
            Some(canary.pods.len() as f64),
            Some(stable.pods.len() as f64),
        ),
    ];
    let unreadable_note = |side: &SideLogs, name: &str| {
        if side.unreadable.is_empty() {
            String::new()
        } else {
            format!("; {name} logs not readable: {}", side.unreadable.join("; "))
        }
    };
    let sampled_note = |side: &SideLogs, name: &str| {
        if side.not_sampled == 0 {
            String::new()
        } else {
            format!(
                "; {name}: logs of {} of {} pods read",
                side.pods.len() + side.unreadable.len(),
                side.pods.len() + side.unreadable.len() + side.not_sampled
            )
        }
    };
    let notes = format!(
        "{}{}{}{}",
        unreadable_note(canary, "canary"),
        unreadable_note(stable, "stable"),
        sampled_note(canary, "canary"),
        sampled_note(stable, "stable")
    );
    let (Some(canary_rate), Some(stable_rate)) = (canary_rate, stable_rate) else {
        let missing = if canary_rate.is_none() {
            "canary"
        } else {
            "stable"
        };
        return (
            Outcome::Inconclusive,
            measurements,
            format!(
                "no readable {missing} pod logs over the last {}{notes}",
                format_duration(window)
            ),
        );
    };
    let canary_observed: Duration = canary.pods.iter().map(|p| p.observed).sum();
    if canary_observed < MIN_OBSERVED {
        return (
            Outcome::Inconclusive,
            measurements,
            format!(
                "the canary pods' logs cover only {} in all, too little to judge{notes}",
                format_duration(canary_observed)
            ),
        );
    }
    let summary = format!(
        "canary {} vs stable {} error lines per pod per minute over the last {}",
        format_number(canary_rate),
        format_number(stable_rate),
        format_duration(window)
    );
    let worse = canary_rate > stable_rate * settings.max_ratio
        && canary_rate - stable_rate >= settings.min_increase_per_minute;
    if worse {
        // A handful of lines can exceed the ratio by chance; a failure must be a rate that
        // chance explains rarely (error lines as Poisson events over the pod-minutes read).
        let pod_minutes = |side: &SideLogs| {
            side.pods
                .iter()
                .map(|p| p.observed.as_secs_f64())
                .sum::<f64>()
                / 60.0
        };
        let p_value = stats::poisson_rate_greater(
            error_lines(canary) as u64,
            pod_minutes(canary),
            error_lines(stable) as u64,
            pod_minutes(stable),
        )
        .unwrap_or(1.0);
        if p_value < 1.0 - LOG_RATE_CONFIDENCE {
            (
                Outcome::Fail,
                measurements,
                format!(
                    "{summary}: more than {}x the stable rate and at least {} per minute more (p={}){notes}",
                    format_number(settings.max_ratio),
                    format_number(settings.min_increase_per_minute),
                    format_number(p_value)
                ),
            )
        } else {
            (
                Outcome::Inconclusive,
                measurements,
                format!(
                    "{summary}: higher, but with so few lines it may be chance (p={}){notes}",
                    format_number(p_value)
                ),
            )
        }
    } else {
        (Outcome::Pass, measurements, format!("{summary}{notes}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(counts: &[(usize, u64)]) -> SideLogs {
        SideLogs {
            pods: counts
                .iter()
                .enumerate()
                .map(|(i, &(error_lines, seconds))| PodLogCount {
                    pod: format!("p{i}"),
                    error_lines,
                    lines: error_lines + 100,
                    observed: Duration::from_secs(seconds),
                })
                .collect(),
            unreadable: Vec::new(),
            not_sampled: 0,
        }
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn reads_the_container_kubectl_would_pick() {
        let pod = |annotations: serde_json::Value| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "p", "annotations": annotations},
                "spec": {"containers": [{"name": "sidecar"}, {"name": "web"}]},
            }))
            .unwrap()
        };
        assert_eq!(
            default_container(&pod(serde_json::json!({}))).as_deref(),
            Some("sidecar")
        );
        let annotated = pod(serde_json::json!({"kubectl.kubernetes.io/default-container": "web"}));
        assert_eq!(default_container(&annotated).as_deref(), Some("web"));
    }

    #[test]
    fn large_sides_are_sampled_and_say_so() {
        let pods: Vec<Pod> = (0..55)
            .map(|i| {
                serde_json::from_value(
                    serde_json::json!({"metadata": {"name": format!("p{i:02}")}}),
                )
                .unwrap()
            })
            .collect();
        let sample = sample_pods(pods);
        assert_eq!(
            (sample.pods.len(), sample.not_sampled),
            (MAX_LOG_PODS_PER_SIDE, 35)
        );
        assert_eq!(sample.pods[0].name_any(), "p00");
        assert_eq!(sample.pods[19].name_any(), "p52");
        let mut stable = side(&[(0, 60); 20]);
        stable.not_sampled = 35;
        let (_, _, reason) = judge(&side(&[(0, 60)]), &stable, &LogsSpec::default(), MINUTE);
        assert!(
            reason.contains("stable: logs of 20 of 55 pods read"),
            "{reason}"
        );
    }

    #[test]
    fn counts_lines_matching_any_pattern() {
        let patterns = LogsSpec::default().patterns;
        let text = "GET / 200\n2026/11/26 [error] 1#1: boom\nfatal: disk full\nok\n";
        assert_eq!(count_error_lines(text, &patterns), (2, 4));
    }

    #[test]
    fn clearly_worse_canary_fails() {
        let (outcome, measurements, reason) = judge(
            &side(&[(60, 60)]),
            &side(&[(2, 60), (0, 60)]),
            &LogsSpec::default(),
            MINUTE,
        );
        assert_eq!(outcome, Outcome::Fail, "{reason}");
        assert_eq!(measurements[0].canary, Some(60.0));
        assert_eq!(measurements[0].stable, Some(1.0));
    }

    #[test]
    fn small_absolute_differences_pass() {
        // One error line against none is "infinitely" worse by ratio, but not clearly worse.
        let (outcome, _, reason) = judge(
            &side(&[(0, 60)]),
            &side(&[(0, 60)]),
            &LogsSpec::default(),
            MINUTE,
        );
        assert_eq!(outcome, Outcome::Pass, "{reason}");
        let settings = LogsSpec {
            min_increase_per_minute: 2.0,
            ..LogsSpec::default()
        };
        let (outcome, _, reason) = judge(&side(&[(1, 60)]), &side(&[(0, 60)]), &settings, MINUTE);
        assert_eq!(outcome, Outcome::Pass, "{reason}");
    }

    #[test]
    fn a_few_extra_lines_are_inconclusive_not_a_failure() {
        // 3 lines in a minute against 1 in two pod-minutes passes the ratio, not chance.
        let (outcome, _, reason) = judge(
            &side(&[(3, 60)]),
            &side(&[(1, 60), (0, 60)]),
            &LogsSpec::default(),
            MINUTE,
        );
        assert_eq!(outcome, Outcome::Inconclusive, "{reason}");
        assert!(reason.contains("may be chance"), "{reason}");
    }

    #[test]
    fn young_pods_are_judged_per_minute_observed() {
        // 10 errors in the 30 s a young canary pod has existed is 20 per minute.
        let (outcome, measurements, _) = judge(
            &side(&[(10, 30)]),
            &side(&[(10, 60)]),
            &LogsSpec::default(),
            MINUTE,
        );
        assert_eq!(measurements[0].canary, Some(20.0));
        assert_eq!(outcome, Outcome::Pass);
    }

    #[test]
    fn too_little_canary_log_or_no_pods_is_inconclusive() {
        let (outcome, _, reason) = judge(
            &side(&[(0, 5)]),
            &side(&[(0, 60)]),
            &LogsSpec::default(),
            MINUTE,
        );
        assert_eq!(outcome, Outcome::Inconclusive);
        assert!(reason.contains("too little"), "{reason}");
        let mut unreadable = side(&[]);
        unreadable
            .unreadable
            .push("c1: container is waiting to start".into());
        let (outcome, _, reason) =
            judge(&unreadable, &side(&[(0, 60)]), &LogsSpec::default(), MINUTE);
        assert_eq!(outcome, Outcome::Inconclusive);
        assert!(reason.contains("no readable canary pod logs"), "{reason}");
        assert!(reason.contains("waiting to start"), "{reason}");
    }
}
