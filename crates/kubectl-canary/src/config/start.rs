//! `start`'s flags, resolved: the canary request, the steps and analysis of `--auto`, and
//! how to run.

use std::time::Duration;

use canary_core::analysis_spec::AnalysisSpec;
use canary_core::rollout_math::CanarySize;
use canary_kube::engine::StartRequest;

use crate::cli::StartArgs;
use crate::config::analysis::{self, AnalysisConfigError};

/// What `start` runs with.
#[derive(Debug, Clone)]
pub struct StartConfig {
    /// The Deployment's name.
    pub deployment: String,
    /// The images, the first canary size (the first of `--steps`, else `--canary`), the mode
    /// and `--allow-hpa`.
    pub request: StartRequest,
    /// `--dry-run`: print the exact changes, change nothing.
    pub dry_run: bool,
    /// Wait for the canary pods to become Ready (no `--no-wait`).
    pub wait: bool,
    /// `--auto`: the analysis spec of each step, read and checked before anything changes;
    /// `None` without `--auto`.
    pub auto_analysis: Option<AnalysisSpec>,
    /// `--steps`: the canary sizes before 100% (empty without `--auto`).
    pub steps: Vec<CanarySize>,
    /// `--interval`: how long each automated step runs before it is analysed.
    pub interval: Duration,
    /// `--abort-on-interrupt`: Ctrl-C during `--auto` rolls back.
    pub abort_on_interrupt: bool,
    /// `--report` (with `--auto`): where to write the HTML report at the end.
    pub report: Option<std::path::PathBuf>,
}

impl StartConfig {
    /// Resolves `start`'s flags; the analysis flags only with `--auto`.
    pub fn resolve(args: &StartArgs) -> Result<Self, AnalysisConfigError> {
        let auto_analysis = if args.auto {
            Some(analysis::resolve(&args.analysis)?)
        } else {
            None
        };
        Ok(Self {
            deployment: args.target.name.clone(),
            request: StartRequest {
                images: args
                    .images
                    .iter()
                    .map(|c| (c.container.clone(), c.image.clone()))
                    .collect(),
                size: args.steps.first().copied().unwrap_or(args.canary),
                mode: args.mode.into(),
                allow_autoscaler: args.allow_hpa,
            },
            dry_run: args.dry_run,
            wait: !args.no_wait,
            auto_analysis,
            steps: args.steps.clone(),
            interval: args.interval,
            abort_on_interrupt: args.abort_on_interrupt,
            report: args.report.clone(),
        })
    }
}
