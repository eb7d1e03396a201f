//! The Kubernetes Event that records a verdict on the Deployment: which type and reason go
//! with each decision, and the one-paragraph note. The Event is written by canary-kube.

use super::combine::{Decision, Verdict};

/// The Event that records a verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerdictEvent {
    /// A Warning Event (a failed analysis) rather than a Normal one.
    pub warning: bool,
    /// The Event's reason: `AnalysisPassed`, `AnalysisFailed` or `AnalysisInconclusive`.
    pub reason: &'static str,
    /// The Event's note.
    pub note: String,
}

/// The Event for `verdict`.
pub fn verdict_event(verdict: &Verdict) -> VerdictEvent {
    let (warning, reason) = match verdict.decision {
        Decision::Pass => (false, "AnalysisPassed"),
        Decision::Fail => (true, "AnalysisFailed"),
        Decision::Wait | Decision::Inconclusive => (false, "AnalysisInconclusive"),
    };
    VerdictEvent {
        warning,
        reason,
        note: event_note(verdict),
    }
}

/// A one-paragraph summary of a verdict: decision, reason and every check's outcome.
pub fn event_note(verdict: &Verdict) -> String {
    let checks: Vec<String> = verdict
        .checks
        .iter()
        .map(|c| format!("{} {}", c.name, c.outcome))
        .collect();
    format!(
        "analysis {}: {} [{}]",
        verdict.decision,
        verdict.reason,
        checks.join(", ")
    )
}
