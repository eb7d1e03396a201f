//! Prometheus metrics of the controller, served at `/metrics`.

use std::collections::BTreeMap;
use std::sync::Mutex;

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

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
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
}
