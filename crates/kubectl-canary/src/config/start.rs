//! `start`'s flags, resolved: the canary request, the steps and analysis of `--auto`, and
//! how to run.

use std::time::Duration;

use canary_core::analysis_spec::AnalysisSpec;
use canary_core::gate::ApprovalTimeout;
use canary_core::rollout_math::CanarySize;
use canary_kube::engine::StartRequest;

use canary_core::release::{Document, ReleaseError, ReleaseInput, find_workload};

use canary_core::traffic::TrafficOptions;

use crate::cli::{AnalysisFlags, CanaryRunFlags, StartArgs};
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
    /// [`StartConfig::request_in`]).
    pub release: ReleaseInput,
    /// How the canary runs: its first size, mode, `--allow-hpa`, `--dry-run`, waiting and
    /// `--auto`'s steps (as each canary of `apply` runs).
    pub run: EachCanary,
    /// `--dark` and `--sticky`: what to do with the Services in front of the Deployment.
    pub traffic: TrafficOptions,
    /// `--report` (with `--auto`): where to write the HTML report at the end.
    pub report: Option<std::path::PathBuf>,
}

/// A manifest file as read.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestFile {
    /// Its name (`-` for standard input).
    pub file: String,
    /// Its documents.
    pub documents: Vec<Document>,
}

impl ManifestFile {
    /// `release` with the manifest's document of `target` in `namespace`.
    pub fn release_for(
        &self,
        release: &ReleaseInput,
        namespace: &str,
        target: &canary_core::target::WorkloadRef,
    ) -> Result<ReleaseInput, ReleaseError> {
        let document = find_workload(&self.documents, &self.file, namespace, target)?;
        Ok(ReleaseInput {
            manifest: Some(document.clone()),
            ..release.clone()
        })
    }
}

/// `start`'s release as its flags give it, the manifest (`-f`) read but not yet looked up
/// (that needs the namespace): the manifest's documents, and the patches, `--env` and images.
pub fn release_of(args: &StartArgs) -> Result<(Option<ManifestFile>, ReleaseInput), ReleaseError> {
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
    let release = ReleaseInput {
        manifest: None,
        patches: release::read_patches(&args.patch, &args.patch_file, args.patch_type.into())?,
        env: args.env.clone(),
        images: args
            .images
            .iter()
            .map(|c| (c.container.clone(), c.image.clone()))
            .collect(),
    };
    Ok((manifest, release))
}

impl StartConfig {
    /// The request for the Deployment in `namespace`: with the manifest's document of it.
    pub fn request_in(&self, namespace: &str) -> Result<StartRequest, ReleaseError> {
        let mut request = StartRequest {
            release: self.release.clone(),
            size: self.run.size,
            mode: self.run.mode,
            allow_autoscaler: self.run.allow_autoscaler,
        };
        if let Some(manifest) = &self.manifest {
            let target = canary_core::target::WorkloadRef::deployment(&self.deployment);
            request.release = manifest.release_for(&request.release, namespace, &target)?;
        }
        Ok(request)
    }

    /// Resolves `start`'s flags (reading the manifest and patch files); the analysis flags
    /// only with `--auto`.
    pub fn resolve(args: &StartArgs) -> Result<Self, ConfigError> {
        let each = EachCanary::resolve(&args.run, &args.analysis)?;
        let (manifest, release) = release_of(args)?;
        let traffic = canary_core::traffic::TrafficOptions {
            // Blue/Green keeps the new set dark until the switch
            dark: args.dark || args.blue_green,
            sticky_seconds: args.sticky,
            blue_green: args.blue_green,
        };
        let mut start = each.start(args.target.name.clone(), release, traffic);
        start.manifest = manifest;
        start.report = args.report.clone();
        Ok(start)
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
    /// `--approve-before`, as written: checked against the steps once they are resolved
    /// to pods (before anything is written).
    pub approve_before: Vec<String>,
    /// `--approval-timeout` with `--on-approval-timeout`.
    pub approval_timeout: Option<ApprovalTimeout>,
    /// `--notify`, `--report-url`.
    pub notify: crate::config::notify::NotifyConfig,
}

impl EachCanary {
    /// Resolves the flags of how a canary runs; the analysis flags only with `--auto`.
    pub fn resolve(run: &CanaryRunFlags, analysis: &AnalysisFlags) -> Result<Self, ConfigError> {
        let auto_analysis = if run.auto {
            Some(analysis::resolve(analysis)?)
        } else {
            None
        };
        Ok(Self {
            size: run.steps.first().copied().unwrap_or(run.canary),
            mode: run.mode.into(),
            allow_autoscaler: run.allow_hpa,
            dry_run: run.dry_run,
            wait: !run.no_wait,
            auto_analysis,
            steps: run.steps.clone(),
            interval: run.interval,
            abort_on_interrupt: run.abort_on_interrupt,
            approve_before: run.approve_before.clone(),
            approval_timeout: run
                .approval_timeout
                .as_deref()
                .map(|after| ApprovalTimeout::parse(after, run.on_approval_timeout.as_deref()))
                .transpose()?,
            notify: crate::config::notify::NotifyConfig::resolve(&run.notify)?,
        })
    }

    /// `start`'s config of Deployment `deployment` with `release` and `traffic` (no
    /// manifest file, no report).
    fn start(
        self,
        deployment: String,
        release: ReleaseInput,
        traffic: TrafficOptions,
    ) -> StartConfig {
        StartConfig {
            deployment,
            manifest: None,
            release,
            run: self,
            traffic,
            report: None,
        }
    }
}

impl ApplyConfig {
    /// Resolves `apply`'s flags, reading every manifest; the analysis flags only with
    /// `--auto`.
    pub fn resolve(args: &crate::cli::ApplyArgs) -> Result<Self, ConfigError> {
        Ok(Self {
            documents: release::read_manifests(&args.filename)?,
            each: EachCanary::resolve(&args.run, &args.analysis)?,
        })
    }

    /// `start`'s config for the canary of one Deployment document.
    pub fn start_for(&self, document: &Document) -> StartConfig {
        let release = ReleaseInput {
            manifest: Some(document.clone()),
            ..ReleaseInput::default()
        };
        // `apply` changes no Service of the Deployments it canaries.
        self.each.clone().start(
            document.name().to_string(),
            release,
            TrafficOptions::default(),
        )
    }
}
