//! Every flag of `kubectl canary`, in one place. Values are parsed here; turning them into
//! a configuration (kubeconfig, namespace, timeouts) happens in `config`.

use std::path::PathBuf;
use std::time::Duration;

use canary_core::image::ImageChange;
use canary_core::rollout_math::{CanaryMode, CanarySize};
use canary_core::target::DeploymentRef;
use clap::{Args, Parser, Subcommand, ValueEnum};

const EXAMPLES: &str = "\
Examples:
  # Exactly 1 new pod beside the 10 stable ones, held there (the handout's 1:10 canary)
  kubectl canary start deploy/web nginx=nginx:1.15 --canary 1

  # 10% of pods, without extra pods (replace mode)
  kubectl canary start deploy/web nginx=nginx:1.15 --canary 10% --mode replace

  # Where things stand, following changes live
  kubectl canary status deploy/web --watch

  # Grow the canary to 3 pods, then roll out to every pod
  kubectl canary promote deploy/web --canary 3
  kubectl canary promote deploy/web --full

  # Back to the stable version in one update (works while paused, unlike rollout undo)
  kubectl canary abort deploy/web";

/// `kubectl canary`: exact, safe canary releases of plain Deployments, with nothing but the
/// Deployment's own rolling update.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-canary",
    bin_name = "kubectl canary",
    version,
    after_help = EXAMPLES,
    propagate_version = true
)]
pub struct Cli {
    /// Flags every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes, with kubectl's names.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Namespace of the Deployment (default: the kubeconfig context's namespace).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Longest wait for the controller, e.g. 90s, 10m.
    #[arg(long, global = true, value_parser = parse_duration, default_value = "10m")]
    pub timeout: Duration,
    /// More detail on stderr (-v, -vv).
    #[arg(short = 'v', long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable.
    Table,
    /// Human-readable with more columns.
    Wide,
    /// JSON, for scripts.
    Json,
    /// YAML, for scripts.
    Yaml,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Put exactly k new pods beside the stable ones and hold there.
    Start(StartArgs),
    /// Show the stable and canary sides, the traffic share, the phase and what to do next.
    Status(StatusArgs),
    /// Grow the canary to a larger exact size, or roll out to every pod (--full).
    Promote(PromoteArgs),
    /// Roll back to the stable version in one atomic update (works while paused).
    Abort(AbortArgs),
}

/// `start` flags.
#[derive(Debug, Args)]
#[command(after_help = "Example: kubectl canary start deploy/web nginx=nginx:1.15 --canary 1")]
pub struct StartArgs {
    /// The Deployment (deploy/NAME).
    #[arg(value_parser = parse_target)]
    pub target: DeploymentRef,
    /// New images, CONTAINER=IMAGE, one or more.
    #[arg(required = true, value_parser = parse_image_change)]
    pub images: Vec<ImageChange>,
    /// Canary size: a number of pods (1) or a share of traffic (10%).
    #[arg(long, default_value = "1", value_parser = parse_canary_size)]
    pub canary: CanarySize,
    /// surge: canary pods are extra pods; replace: they replace stable pods (no extra cost).
    #[arg(long, value_enum, default_value_t = ModeArg::Surge)]
    pub mode: ModeArg,
    /// Print the exact changes, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Start although a HorizontalPodAutoscaler targets the Deployment.
    #[arg(long)]
    pub allow_hpa: bool,
    /// Return once the canary is held, without waiting for its pods to become Ready.
    #[arg(long)]
    pub no_wait: bool,
}

/// `status` flags.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The Deployment (deploy/NAME).
    #[arg(value_parser = parse_target)]
    pub target: DeploymentRef,
    /// Keep printing as things change (from the watch stream).
    #[arg(short = 'w', long)]
    pub watch: bool,
}

/// `promote` flags.
#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// The Deployment (deploy/NAME).
    #[arg(value_parser = parse_target)]
    pub target: DeploymentRef,
    /// Grow the canary to this size: pods (3) or a share of traffic (50%).
    #[arg(long, value_parser = parse_canary_size, conflicts_with = "full")]
    pub canary: Option<CanarySize>,
    /// Roll the new version out to every pod and put back the Deployment's own settings.
    #[arg(long)]
    pub full: bool,
    /// Print the exact changes, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Return once the update is made, without waiting for the rollout to finish.
    #[arg(long)]
    pub no_wait: bool,
}

/// `abort` flags.
#[derive(Debug, Args)]
pub struct AbortArgs {
    /// The Deployment (deploy/NAME).
    #[arg(value_parser = parse_target)]
    pub target: DeploymentRef,
    /// Print the exact changes, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Return once the rollback update is made, without waiting for the canary pods to go.
    #[arg(long)]
    pub no_wait: bool,
}

/// `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Canary pods are added beside all stable pods (costs k extra pods).
    Surge,
    /// Canary pods replace stable pods (no extra pods).
    Replace,
}

impl From<ModeArg> for CanaryMode {
    fn from(mode: ModeArg) -> Self {
        match mode {
            ModeArg::Surge => CanaryMode::Surge,
            ModeArg::Replace => CanaryMode::Replace,
        }
    }
}

fn parse_target(arg: &str) -> Result<DeploymentRef, String> {
    DeploymentRef::parse(arg).map_err(|e| e.to_string())
}

fn parse_image_change(arg: &str) -> Result<ImageChange, String> {
    ImageChange::parse(arg).map_err(|e| e.to_string())
}

fn parse_canary_size(arg: &str) -> Result<CanarySize, String> {
    arg.parse::<CanarySize>().map_err(|e| e.to_string())
}

/// Parses `90s`, `10m`, `1h`, `1m30s` or a plain number of seconds.
pub fn parse_duration(arg: &str) -> Result<Duration, String> {
    let bad = || format!("'{arg}' is not a duration: write e.g. 30s, 5m, 1h or 1m30s");
    if let Ok(seconds) = arg.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let mut total = 0u64;
    let mut number = String::new();
    for c in arg.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let value: u64 = number.parse().map_err(|_| bad())?;
        number.clear();
        total += value
            * match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                _ => return Err(bad()),
            };
    }
    if !number.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("m").is_err());
    }
}
