//! `analyze`'s flags, resolved: the analysis spec (flags and file) and how long to run.

use std::time::Duration;

use canary_core::analysis_spec::AnalysisSpec;

use crate::cli::AnalyzeArgs;
use crate::config::analysis::{self, AnalysisConfigError};

/// What `analyze` runs with.
#[derive(Debug, Clone)]
pub struct AnalyzeConfig {
    /// The Deployment's name.
    pub deployment: String,
    /// The checks and how to judge them (the analysis flags and `--analysis-file`).
    pub analysis: AnalysisSpec,
    /// `--observe`: how long pod health is watched before the other checks measure.
    pub observe: Duration,
    /// `--wait`: analyse again while the checks wait to decide.
    pub wait: bool,
    /// `--report`: where to write the HTML report after the verdict.
    pub report: Option<std::path::PathBuf>,
}

impl AnalyzeConfig {
    /// Resolves `analyze`'s flags, reading the analysis file if one is named.
    pub fn resolve(args: &AnalyzeArgs) -> Result<Self, AnalysisConfigError> {
        Ok(Self {
            deployment: args.target.name.clone(),
            analysis: analysis::resolve(&args.analysis)?,
            observe: args.observe,
            wait: args.wait,
            report: args.report.clone(),
        })
    }
}
