//! Turns the parsed flags into what the commands run with, once, before a command runs:
//! [`Config`] (a Kubernetes client for the chosen kubeconfig and context, the namespace, the
//! output format and the timeout) and one plain, validated config per command
//! ([`CommandConfig`]). Commands receive these, never the clap structs of `cli`.

pub mod analysis;
pub mod analyze;
pub mod kinds;
pub mod lifecycle;
pub mod notify;
pub mod plan;
pub mod release;
pub mod report;
pub mod start;
pub mod status;

use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

pub use crate::cli::OutputFormat;
use crate::cli::{Command, GlobalArgs};
use analysis::AnalysisConfigError;
use analyze::AnalyzeConfig;
use canary_kube::error::ErrorKind;
use lifecycle::{AbortConfig, PromoteConfig};
use plan::PlanConfig;
use report::ReportConfig;
use start::{ApplyConfig, StartConfig};
use status::StatusConfig;

/// What every command runs with.
pub struct Config {
    /// The client.
    pub client: kube::Client,
    /// The namespace of the Deployment.
    pub namespace: String,
    /// How to print.
    pub output: OutputFormat,
    /// Longest wait for the controller.
    pub timeout: Duration,
    /// What this run changed in the cluster, for honest error messages.
    pub ledger: canary_kube::client::WriteLedger,
    /// What the command last saw of its Deployment and record, for its line in the history
    /// (set by the commands that watch; see [`Config::remember`]).
    pub known: std::sync::Arc<std::sync::Mutex<Option<canary_kube::history::KnownState>>>,
}

/// Why the configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The kubeconfig could not be read or used.
    #[error("cannot use the kubeconfig{where_}: {detail}")]
    Kubeconfig {
        /// Which file, if one was named.
        where_: String,
        /// What went wrong.
        detail: String,
    },
    /// The analysis flags or file cannot be used.
    #[error(transparent)]
    Analysis(#[from] AnalysisConfigError),
    /// A manifest or patch cannot be used.
    #[error(transparent)]
    Release(#[from] canary_core::release::ReleaseError),
    /// An approval gate or its timeout cannot be read.
    #[error(transparent)]
    Gate(#[from] canary_core::gate::GateError),
    /// `--notify` or `--report-url` cannot be used.
    #[error(transparent)]
    Notify(#[from] notify::NotifyFlagError),
    /// A StatefulSet or DaemonSet command that cannot run as given.
    #[error(transparent)]
    Kind(#[from] kinds::KindConfigError),
    /// `--nodes` for a workload that is not a DaemonSet.
    #[error(
        "--nodes chooses the nodes of a DaemonSet canary (ds/NAME); {0} is a Deployment; nothing was changed"
    )]
    NodesOfADeployment(String),
}

impl ConfigError {
    /// What kind of failure this is, for [`crate::exit_code::for_error`]: a kubeconfig that
    /// cannot be used means the API server cannot be reached; bad analysis input is a usage
    /// error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ConfigError::Kubeconfig { .. } => ErrorKind::Unreachable,
            ConfigError::Release(error)
            | ConfigError::Kind(kinds::KindConfigError::Release(error))
                if !error.is_malformed() =>
            {
                ErrorKind::Refused
            }
            ConfigError::Analysis(_)
            | ConfigError::Release(_)
            | ConfigError::Gate(_)
            | ConfigError::Notify(_)
            | ConfigError::Kind(_)
            | ConfigError::NodesOfADeployment(_) => ErrorKind::Usage,
        }
    }
}

/// The command to run, with its flags resolved.
#[derive(Debug, Clone)]
pub enum CommandConfig {
    /// `start`.
    Start(Box<StartConfig>),
    /// `status`.
    Status(StatusConfig),
    /// `promote`.
    Promote(PromoteConfig),
    /// `abort`.
    Abort(AbortConfig),
    /// `analyze`.
    Analyze(Box<AnalyzeConfig>),
    /// `plan`.
    Plan(PlanConfig),
    /// `apply`.
    Apply(Box<ApplyConfig>),
    /// `report`.
    Report(ReportConfig),
    /// `start`, `status`, `promote` or `abort` of a StatefulSet or DaemonSet.
    Kind(kinds::KindConfig),
}

impl CommandConfig {
    /// Resolves the command's flags (reading an analysis file if one is named); `matches`:
    /// the parsed command line (a StatefulSet's or DaemonSet's command refuses the flags it
    /// does not take by whether they were given).
    pub fn resolve(command: &Command, matches: &clap::ArgMatches) -> Result<Self, ConfigError> {
        if let Some(target) = command.workload()
            && target.kind != canary_core::target::WorkloadKind::Deployment
        {
            return Ok(Self::Kind(kinds::KindConfig::resolve(
                command, target, matches,
            )?));
        }
        if let Command::Start(args) = command
            && args.nodes.is_some()
        {
            return Err(ConfigError::NodesOfADeployment(args.target.to_string()));
        }
        Ok(match command {
            Command::Start(args) => Self::Start(Box::new(StartConfig::resolve(args)?)),
            Command::Status(args) => Self::Status(args.into()),
            Command::Promote(args) => Self::Promote(PromoteConfig::resolve(args)?),
            Command::Abort(args) => Self::Abort(AbortConfig::resolve(args)?),
            Command::Analyze(args) => Self::Analyze(Box::new(AnalyzeConfig::resolve(args)?)),
            Command::Plan(args) => Self::Plan(args.into()),
            Command::Apply(args) => Self::Apply(Box::new(ApplyConfig::resolve(args)?)),
            Command::Report(args) => Self::Report(args.into()),
            Command::Completion(_) | Command::Man(_) | Command::Complete(_) => {
                unreachable!("shell integration runs before any configuration is resolved")
            }
        })
    }
}

impl Config {
    /// Keeps what `engine`'s live view shows at the end of a command, so noting the command
    /// in the history reads nothing again.
    pub async fn remember(&self, engine: &canary_kube::engine::Engine) {
        let known = engine.known_state().await;
        if let Ok(mut slot) = self.known.lock() {
            *slot = known;
        }
    }

    /// Resolves the global flags.
    pub async fn resolve(global: &GlobalArgs) -> Result<Self, ConfigError> {
        let options = KubeConfigOptions {
            context: global.context.clone(),
            ..Default::default()
        };
        let where_ = global
            .kubeconfig
            .as_ref()
            .map(|p| format!(" {}", p.display()))
            .unwrap_or_default();
        let error = |detail: String| ConfigError::Kubeconfig {
            where_: where_.clone(),
            detail,
        };
        let mut kube_config = match &global.kubeconfig {
            Some(path) => {
                let file = Kubeconfig::read_from(path).map_err(|e| error(e.to_string()))?;
                kube::Config::from_custom_kubeconfig(file, &options)
                    .await
                    .map_err(|e| error(e.to_string()))?
            }
            None if global.context.is_some() => kube::Config::from_kubeconfig(&options)
                .await
                .map_err(|e| error(e.to_string()))?,
            None => kube::Config::infer()
                .await
                .map_err(|e| error(e.to_string()))?,
        };
        let namespace = global
            .namespace
            .clone()
            .unwrap_or_else(|| kube_config.default_namespace.clone());
        apply_identity_flags(&mut kube_config, global);
        let policy = canary_kube::client::RequestPolicy::new(
            global.timeout,
            global
                .request_timeout
                .unwrap_or(canary_kube::client::DEFAULT_REQUEST_TIMEOUT),
        );
        let (client, ledger) =
            canary_kube::client::build(kube_config, policy).map_err(|e| error(e.to_string()))?;
        Ok(Self {
            client,
            namespace,
            output: global.output,
            timeout: global.timeout,
            ledger,
            known: Default::default(),
        })
    }
}

/// kubectl's `--as`, `--as-group` and `--token`: they override what the kubeconfig says,
/// as they do for kubectl (a token replaces every other way the context authenticates).
fn apply_identity_flags(config: &mut kube::Config, global: &GlobalArgs) {
    if let Some(user) = &global.as_user {
        config.auth_info.impersonate = Some(user.clone());
    }
    if !global.as_group.is_empty() {
        config.auth_info.impersonate_groups = Some(global.as_group.clone());
    }
    if let Some(token) = &global.token {
        let auth = &mut config.auth_info;
        auth.token = Some(secrecy::SecretString::from(token.clone()));
        auth.token_file = None;
        auth.exec = None;
        auth.auth_provider = None;
        auth.username = None;
        auth.password = None;
        // A client certificate would authenticate first and hide the token's identity.
        auth.client_certificate = None;
        auth.client_certificate_data = None;
        auth.client_key = None;
        auth.client_key_data = None;
    }
}
