//! `start`'s flags, resolved: the canary request, the steps and analysis of `--auto`, and
//! how to run.

use std::time::Duration;

use canary_core::analysis_spec::AnalysisSpec;
use canary_core::rollout_math::CanarySize;
use canary_kube::engine::StartRequest;

use canary_core::release::{Document, ReleaseError, ReleaseInput, find_deployment};

use crate::cli::StartArgs;
use crate::config::ConfigError;
use crate::config::analysis;
use crate::config::release;

/// What `start` runs with.
#[derive(Debug, Clone)]
pub struct StartConfig {
    /// The Deployment's name.
    pub deployment: String,
    /// `-f`: the manifest's documents; the Deployment's is found once the namespace is
    /// known ([`StartConfig::request_in`]).
    pub manifest: Option<ManifestFile>,
    /// The release (patches, `--env`, images; the manifest's document added by
    /// [`StartConfig::request_in`]), the first canary size (the first of `--steps`, else
    /// `--canary`), the mode and `--allow-hpa`.
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
    /// `--dark` and `--sticky`: what to do with the Services in front of the Deployment.
    pub traffic: canary_core::traffic::TrafficOptions,
    /// `--report` (with `--auto`): where to write the HTML report at the end.
    pub report: Option<std::path::PathBuf>,
}

/// A manifest file as read.
#[derive(Debug, Clone)]
pub struct ManifestFile {
    /// Its name (`-` for standard input).
    pub file: String,
    /// Its documents.
    pub documents: Vec<Document>,
}

impl StartConfig {
    /// The request for the Deployment in `namespace`: with the manifest's document of it.
    pub fn request_in(&self, namespace: &str) -> Result<StartRequest, ReleaseError> {
        let mut request = self.request.clone();
        if let Some(manifest) = &self.manifest {
            let document = find_deployment(
                &manifest.documents,
                &manifest.file,
                namespace,
                &self.deployment,
            )?;
            request.release.manifest = Some(document.clone());
        }
        Ok(request)
    }

    /// Resolves `start`'s flags (reading the manifest and patch files); the analysis flags
    /// only with `--auto`.
    pub fn resolve(args: &StartArgs) -> Result<Self, ConfigError> {
        let auto_analysis = if args.auto {
            Some(analysis::resolve(&args.analysis)?)
        } else {
            None
        };
        let manifest = args
            .filename
            .as_deref()
            .map(|path| {
                Ok::<_, ReleaseError>(ManifestFile {
                    file: path.display().to_string(),
                    documents: release::read_manifest(path)?,
                })
            })
            .transpose()?;
        Ok(Self {
            deployment: args.target.name.clone(),
            manifest,
            request: StartRequest {
                release: ReleaseInput {
                    manifest: None,
                    patches: release::read_patches(
                        &args.patch,
                        &args.patch_file,
                        args.patch_type.into(),
                    )?,
                    env: args.env.clone(),
                    images: args
                        .images
                        .iter()
                        .map(|c| (c.container.clone(), c.image.clone()))
                        .collect(),
                },
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
            traffic: canary_core::traffic::TrafficOptions {
                // Blue/Green keeps the new set dark until the switch
                dark: args.dark || args.blue_green,
                sticky_seconds: args.sticky,
                blue_green: args.blue_green,
            },
            report: args.report.clone(),
        })
    }
}

/// What `apply` runs with.
#[derive(Debug, Clone)]
pub struct ApplyConfig {
    /// Every document of the files and directories, in order.
    pub documents: Vec<Document>,
    /// The flags every canary runs with, as `start`'s ([`ApplyConfig::start_for`] makes
    /// one Deployment's `start` of them).
    pub each: EachCanary,
}

/// The flags of `apply` that each of its canaries runs with (no Deployment, no release:
/// those come from each changed Deployment's document).
#[derive(Debug, Clone)]
pub struct EachCanary {
    /// The first canary size (the first of `--steps`, else `--canary`).
    pub size: CanarySize,
    /// `--mode`.
    pub mode: canary_core::rollout_math::CanaryMode,
    /// `--allow-hpa`.
    pub allow_autoscaler: bool,
    /// `--dry-run`.
    pub dry_run: bool,
    /// Wait for the canary pods to become Ready (no `--no-wait`).
    pub wait: bool,
    /// `--auto`: the analysis spec of each step; `None` without `--auto`.
    pub auto_analysis: Option<AnalysisSpec>,
    /// `--steps`.
    pub steps: Vec<CanarySize>,
    /// `--interval`.
    pub interval: Duration,
    /// `--abort-on-interrupt`.
    pub abort_on_interrupt: bool,
}

impl ApplyConfig {
    /// Resolves `apply`'s flags, reading every manifest; the analysis flags only with
    /// `--auto`.
    pub fn resolve(args: &crate::cli::ApplyArgs) -> Result<Self, ConfigError> {
        let auto_analysis = if args.auto {
            Some(analysis::resolve(&args.analysis)?)
        } else {
            None
        };
        Ok(Self {
            documents: release::read_manifests(&args.filename)?,
            each: EachCanary {
                size: args.steps.first().copied().unwrap_or(args.canary),
                mode: args.mode.into(),
                allow_autoscaler: args.allow_hpa,
                dry_run: args.dry_run,
                wait: !args.no_wait,
                auto_analysis,
                steps: args.steps.clone(),
                interval: args.interval,
                abort_on_interrupt: args.abort_on_interrupt,
            },
        })
    }

    /// `start`'s config for the canary of one Deployment document.
    pub fn start_for(&self, document: &Document) -> StartConfig {
        let each = self.each.clone();
        StartConfig {
            deployment: document.name().to_string(),
            manifest: None,
            request: StartRequest {
                release: ReleaseInput {
                    manifest: Some(document.clone()),
                    ..ReleaseInput::default()
                },
                size: each.size,
                mode: each.mode,
                allow_autoscaler: each.allow_autoscaler,
            },
            dry_run: each.dry_run,
            wait: each.wait,
            auto_analysis: each.auto_analysis,
            steps: each.steps,
            interval: each.interval,
            abort_on_interrupt: each.abort_on_interrupt,
            // `apply` changes no Service of the Deployments it canaries.
            traffic: Default::default(),
            report: None,
        }
    }
}
