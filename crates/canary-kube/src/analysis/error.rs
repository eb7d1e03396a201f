//! Why an analysis could not run at all; a leaf of the crate (the crate's error wraps it),
//! so it imports nothing of the crate.

use thiserror::Error;

/// An analysis that could not run at all. Problems of single checks are inconclusive check
/// results instead.
#[derive(Debug, Error)]
pub enum AnalysisError {
    /// The spec has no checks, so nothing could show the canary is good.
    #[error("the analysis spec has no checks")]
    NoChecks,
    /// There is no canary revision to analyse.
    #[error("{workload} has no canary to analyse: {detail}")]
    NoCanaryPods {
        /// The workload, as kubectl names it (`deploy/web`, `sts/db`).
        workload: String,
        /// What is missing.
        detail: String,
    },
    /// The API server's clock, which every time-based judgement uses, could not be read.
    #[error("{detail}")]
    ServerClock {
        /// Why.
        detail: String,
    },
    /// There are no stable pods to compare the canary with.
    #[error("{workload} has no older revision with pods to compare the canary with")]
    NoStablePods {
        /// The workload, as kubectl names it (`deploy/web`, `sts/db`).
        workload: String,
    },
}
