//! Prometheus metrics of the controller, served at `/metrics`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A label with one value.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    /// `starting`, `holding`, `promoting`, `promotingFull`, `aborting`.
    pub phase: String,
}

/// The verdict of an analysis.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabel {
    /// `pass`, `fail`, `wait`, `inconclusive`.
    pub decision: String,
}

/// How a canary ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `promoted`, `failed`, `reverted`, `superseded`, `released`.
    pub outcome: String,
}

/// The kind of an API request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerbLabel {
    /// `watch`, `read`, `create`, `update`, `patch`, `delete`.
    pub verb: String,
}

/// What kind of error a reconcile ended with.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// A short, bounded label (see `ReconcileError::metric_label`).
    pub reason: String,
}

/// One of the controller's watches.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WatchLabel {
    /// `deployments`, `replicasets` or `records`.
    pub watch: String,
}

/// A failed list or watch request of one watch.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WatchErrorLabel {
    /// `deployments`, `replicasets` or `records`.
    pub watch: String,
    /// The HTTP status (`403`, `410`, `500`, ...) or `transport` (no answer: refused,
    /// reset, timed out) or `other`.
    pub code: String,
}

/// What a watch last did, for the age gauge, readiness and the blind leader's bound.
#[derive(Clone, Copy, Debug)]
struct WatchState {
    /// The last object event, or the last time the watch (re)started listing.
    last_event: Instant,
    /// Since when the watch has not been listed and watching (`None`: it is).
    down_since: Option<Instant>,
    /// Whether it listed at least once (a relist after that is a restart).
    listed: bool,
}

/// A watch that has not been watching for a while.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blind {
    /// The watch.
    pub watch: String,
    /// For how long.
    pub down_for: Duration,
    /// The last error code it saw, if any.
    pub last_code: Option<String>,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    // 5 s .. about 23 h.
    Histogram::new(exponential_buckets(5.0, 2.0, 15))
}

/// The controller's metrics.
pub struct Metrics {
    registry: Registry,
    canaries: Family<PhaseLabel, Gauge>,
    verdicts: Family<DecisionLabel, Counter>,
    durations: HistogramFamily<OutcomeLabel>,
    reconciles: Counter,
    errors: Family<ReasonLabel, Counter>,
    leader: Gauge,
    requests: Family<VerbLabel, Counter>,
    phases: Mutex<BTreeMap<String, String>>,
    watch_restarts: Family<WatchLabel, Counter>,
    watch_errors: Family<WatchErrorLabel, Counter>,
    watch_age: Family<WatchLabel, Gauge<f64, AtomicU64>>,
    watch_up: Family<WatchLabel, Gauge>,
    watches: Mutex<BTreeMap<String, (WatchState, Option<String>)>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kubectl_canary_controller");
        let canaries = Family::<PhaseLabel, Gauge>::default();
        let verdicts = Family::<DecisionLabel, Counter>::default();
        let durations: HistogramFamily<OutcomeLabel> =
            Family::new_with_constructor(duration_histogram);
        let reconciles = Counter::default();
        let errors = Family::<ReasonLabel, Counter>::default();
        let leader = Gauge::default();
        let requests = Family::<VerbLabel, Counter>::default();
        registry.register(
            "canaries",
            "Canaries in progress, by phase",
            canaries.clone(),
        );
        registry.register(
            "verdicts",
            "Analysis verdicts, by decision",
            verdicts.clone(),
        );
        registry.register(
            "canary_duration_seconds",
            "From the brake to the end of a canary, by outcome",
            durations.clone(),
        );
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles that ended with an error, by reason",
            errors.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease",
            leader.clone(),
        );
        registry.register(
            "api_requests",
            "Requests this process sent to the Kubernetes API server, by verb",
            requests.clone(),
        );
        let watch_restarts = Family::<WatchLabel, Counter>::default();
        let watch_errors = Family::<WatchErrorLabel, Counter>::default();
        let watch_age = Family::<WatchLabel, Gauge<f64, AtomicU64>>::default();
        let watch_up = Family::<WatchLabel, Gauge>::default();
        registry.register(
            "watch_restarts",
            "Times a watch had to list again after its first list (an API server restart, a 410 Gone, a lost connection)",
            watch_restarts.clone(),
        );
        registry.register(
            "watch_errors",
            "Failed list or watch requests of a watch, by HTTP status or `transport`",
            watch_errors.clone(),
        );
        registry.register(
            "watch_last_event_age_seconds",
            "Seconds since a watch's last object event or (re)list",
            watch_age.clone(),
        );
        registry.register(
            "watch_up",
            "1 while a watch is listed and watching, 0 from its first error until it lists again",
            watch_up.clone(),
        );
        Self {
            registry,
            canaries,
            verdicts,
            durations,
            reconciles,
            errors,
            leader,
            requests,
            phases: Mutex::new(BTreeMap::new()),
            watch_restarts,
            watch_errors,
            watch_age,
            watch_up,
            watches: Mutex::new(BTreeMap::new()),
        }
    }

    /// Sets the phase of the canary of `deployment` (`namespace/name`); `None` when it has none.
    pub fn set_phase(&self, deployment: &str, phase: Option<&str>) {
        let mut phases = self.phases.lock().expect("metrics lock");
        match phase {
            Some(phase) => phases.insert(deployment.to_string(), phase.to_string()),
            None => phases.remove(deployment),
        };
        self.canaries.clear();
        for phase in phases.values() {
            self.canaries
                .get_or_create(&PhaseLabel {
                    phase: phase.clone(),
                })
                .inc();
        }
    }

    /// Counts a verdict.
    pub fn verdict(&self, decision: &str) {
        self.verdicts
            .get_or_create(&DecisionLabel {
                decision: decision.to_string(),
            })
            .inc();
    }

    /// Records how long a finished canary took.
    pub fn finished(&self, outcome: &str, seconds: f64) {
        self.durations
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_string(),
            })
            .observe(seconds);
    }

    /// Counts a reconcile.
    pub fn reconciled(&self) {
        self.reconciles.inc();
    }

    /// Counts a reconcile error.
    pub fn error(&self, reason: &str) {
        self.errors
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Sets whether this replica leads.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Counts one API request.
    pub fn api_request(&self, verb: &str) {
        self.requests
            .get_or_create(&VerbLabel {
                verb: verb.to_string(),
            })
            .inc();
    }

    fn watch_label(watch: &str) -> WatchLabel {
        WatchLabel {
            watch: watch.to_string(),
        }
    }

    /// A watch starts (leading began): down until its first list completes.
    pub fn watch_started(&self, watch: &str) {
        let now = Instant::now();
        let state = WatchState {
            last_event: now,
            down_since: Some(now),
            listed: false,
        };
        self.watches
            .lock()
            .expect("metrics lock")
            .insert(watch.to_string(), (state, None));
        self.watch_up
            .get_or_create(&Self::watch_label(watch))
            .set(0);
    }

    /// A watch begins a (re)list; after its first one, that is a restart.
    pub fn watch_listing(&self, watch: &str) {
        let mut watches = self.watches.lock().expect("metrics lock");
        if let Some((state, _)) = watches.get_mut(watch) {
            if state.listed {
                self.watch_restarts
                    .get_or_create(&Self::watch_label(watch))
                    .inc();
            }
            state.last_event = Instant::now();
        }
    }

    /// A watch completed its list and watches.
    pub fn watch_listed(&self, watch: &str) {
        let mut watches = self.watches.lock().expect("metrics lock");
        if let Some((state, code)) = watches.get_mut(watch) {
            state.listed = true;
            state.down_since = None;
            state.last_event = Instant::now();
            *code = None;
        }
        self.watch_up
            .get_or_create(&Self::watch_label(watch))
            .set(1);
    }

    /// A watch received an object event.
    pub fn watch_event(&self, watch: &str) {
        if let Some((state, _)) = self.watches.lock().expect("metrics lock").get_mut(watch) {
            state.last_event = Instant::now();
        }
    }

    /// A list or watch request of a watch failed with `code`.
    pub fn watch_error(&self, watch: &str, code: &str) {
        self.watch_errors
            .get_or_create(&WatchErrorLabel {
                watch: watch.to_string(),
                code: code.to_string(),
            })
            .inc();
        if let Some((state, last)) = self.watches.lock().expect("metrics lock").get_mut(watch) {
            state.down_since.get_or_insert_with(Instant::now);
            *last = Some(code.to_string());
        }
        self.watch_up
            .get_or_create(&Self::watch_label(watch))
            .set(0);
    }

    /// The watches end (leading ended): nothing to be blind to.
    pub fn watches_stopped(&self) {
        self.watches.lock().expect("metrics lock").clear();
        self.watch_up.clear();
        self.watch_age.clear();
    }

    /// The watch that has been down longest, if any is down.
    pub fn blind(&self) -> Option<Blind> {
        let now = Instant::now();
        self.watches
            .lock()
            .expect("metrics lock")
            .iter()
            .filter_map(|(watch, (state, code))| {
                state.down_since.map(|since| Blind {
                    watch: watch.clone(),
                    down_for: now.saturating_duration_since(since),
                    last_code: code.clone(),
                })
            })
            .max_by_key(|blind| blind.down_for)
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let now = Instant::now();
        for (watch, (state, _)) in self.watches.lock().expect("metrics lock").iter() {
            self.watch_age.get_or_create(&Self::watch_label(watch)).set(
                now.saturating_duration_since(state.last_event)
                    .as_secs_f64(),
            );
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_counted_per_deployment() {
        let metrics = Metrics::new();
        metrics.set_phase("a/web", Some("holding"));
        metrics.set_phase("b/web", Some("holding"));
        metrics.set_phase("b/web", Some("aborting"));
        metrics.verdict("pass");
        metrics.finished("promoted", 12.0);
        let text = metrics.encode();
        assert!(
            text.contains("kubectl_canary_controller_canaries{phase=\"holding\"} 1"),
            "{text}"
        );
        assert!(text.contains("kubectl_canary_controller_canaries{phase=\"aborting\"} 1"));
        assert!(text.contains("kubectl_canary_controller_verdicts_total{decision=\"pass\"} 1"));
        metrics.set_phase("a/web", None);
        assert!(!metrics.encode().contains("phase=\"holding\""));
    }

    #[test]
    fn a_watch_is_blind_from_its_first_error_until_it_lists_again_and_relists_count() {
        let metrics = Metrics::new();
        metrics.watch_started("deployments");
        assert_eq!(metrics.blind().map(|b| b.watch), Some("deployments".into()));
        metrics.watch_listing("deployments");
        metrics.watch_listed("deployments");
        assert_eq!(metrics.blind(), None);
        metrics.watch_error("deployments", "410");
        metrics.watch_listing("deployments");
        metrics.watch_error("deployments", "403");
        let blind = metrics.blind().expect("down since the 410");
        assert_eq!(blind.last_code.as_deref(), Some("403"));
        let text = metrics.encode();
        for line in [
            r#"kubectl_canary_controller_watch_restarts_total{watch="deployments"} 1"#,
            r#"kubectl_canary_controller_watch_errors_total{watch="deployments",code="403"} 1"#,
            r#"kubectl_canary_controller_watch_errors_total{watch="deployments",code="410"} 1"#,
            r#"kubectl_canary_controller_watch_up{watch="deployments"} 0"#,
            r#"kubectl_canary_controller_watch_last_event_age_seconds{watch="deployments"}"#,
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        metrics.watch_listing("deployments");
        metrics.watch_listed("deployments");
        assert_eq!(metrics.blind(), None);
        assert!(
            metrics.encode().contains(
                r#"kubectl_canary_controller_watch_restarts_total{watch="deployments"} 2"#
            )
        );
        metrics.watches_stopped();
        assert_eq!(metrics.blind(), None);
    }
}
