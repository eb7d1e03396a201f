//! Every flag of `kubectl canary`, in one place. Values are parsed here; turning them into
//! a configuration (kubeconfig, namespace, timeouts) happens in `config`.

// The doc comments here are the `--help` text people read in a terminal, where `[:]PORT`
// and bare URLs are right; rustdoc would have them as links.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::bare_urls)]

use std::path::PathBuf;
use std::time::Duration;

use canary_core::image::ImageChange;
use canary_core::release::{EnvChange, PatchType};
use canary_core::rollout_math::{CanaryMode, CanarySize, IntOrPercent};
use canary_core::target::WorkloadRef;
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

impl Command {
    /// The workload the command names, if it names one.
    pub fn workload(&self) -> Option<&WorkloadRef> {
        match self {
            Command::Start(args) => Some(&args.target),
            Command::Status(args) => Some(&args.target),
            Command::Promote(args) => Some(&args.target),
            Command::Abort(args) => Some(&args.target),
            Command::Analyze(args) => Some(&args.target),
            Command::Plan(args) => args.target.as_ref(),
            Command::Report(args) => Some(&args.target),
            Command::Apply(_) | Command::Completion(_) | Command::Man(_) | Command::Complete(_) => {
                None
            }
        }
    }

    /// The command's name, as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Start(_) => "start",
            Command::Status(_) => "status",
            Command::Promote(_) => "promote",
            Command::Abort(_) => "abort",
            Command::Analyze(_) => "analyze",
            Command::Plan(_) => "plan",
            Command::Apply(_) => "apply",
            Command::Report(_) => "report",
            Command::Completion(_) => "completion",
            Command::Man(_) => "man",
            Command::Complete(_) => "__complete",
        }
    }
}

/// `--version`: the crate's version and the commit it was built from (see build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("KUBECTL_CANARY_COMMIT"),
    ")"
);

/// `kubectl canary`: exact, safe canary releases of plain Deployments, with nothing but the
/// Deployment's own rolling update.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-canary",
    bin_name = "kubectl canary",
    version = VERSION,
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
    #[arg(long, global = true, value_parser = parse_analysis_duration, default_value = "10m")]
    pub timeout: Duration,
    /// Username to impersonate for the operation (kubectl's --as).
    #[arg(long = "as", global = true, value_name = "USER")]
    pub as_user: Option<String>,
    /// Group to impersonate for the operation; repeat for several (kubectl's --as-group).
    #[arg(long = "as-group", global = true, value_name = "GROUP")]
    pub as_group: Vec<String>,
    /// Bearer token for authentication to the API server (kubectl's --token).
    #[arg(long, global = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Longest wait for one answer of the API server before the request is retried or
    /// given up, e.g. 15s (kubectl's --request-timeout; default 15s). Every retry stays
    /// within --timeout.
    #[arg(long, global = true, value_parser = parse_analysis_duration)]
    pub request_timeout: Option<Duration>,
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
    Start(Box<StartArgs>),
    /// Show the stable and canary sides, the traffic share, the phase and what to do next.
    Status(StatusArgs),
    /// Grow the canary to a larger exact size (--canary), or roll out to every pod (--full).
    Promote(PromoteArgs),
    /// Roll back to the stable version in one atomic update (works while paused).
    Abort(AbortArgs),
    /// Run the analysis checks once on a running canary and print the verdict.
    Analyze(Box<AnalyzeArgs>),
    /// Show what a canary size really gives: traffic share, extra pods and their cost.
    Plan(PlanArgs),
    /// Apply manifests as `kubectl apply` would, with a canary for each Deployment whose
    /// pod template changes (for CI pipelines).
    Apply(Box<ApplyArgs>),
    /// Write a self-contained HTML report of the canary: verdict, charts, timeline, commands.
    Report(ReportArgs),
    /// Print a shell completion script (bash, zsh, fish) or kubectl's plugin completion
    /// script `kubectl_complete-canary`.
    Completion(CompletionArgs),
    /// Write the man pages, generated from this command line, into a directory.
    Man(ManArgs),
    /// Completions for kubectl's plugin completion (`kubectl_complete-canary` calls this).
    #[command(name = "__complete", hide = true, disable_help_flag = true)]
    Complete(CompleteArgs),
}

/// `report` flags.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  # The report of the canary on deploy/web (running or finished), opened in any browser
  kubectl canary report deploy/web --out web-canary.html")]
pub struct ReportArgs {
    /// The Deployment (deploy/NAME).
    #[arg(value_parser = parse_target)]
    pub target: WorkloadRef,
    /// The HTML file to write ("-" for stdout).
    #[arg(long, value_name = "FILE", default_value = "canary-report.html")]
    pub out: PathBuf,
}

/// `completion` flags.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  kubectl-canary completion bash > /etc/bash_completion.d/kubectl-canary
  kubectl-canary completion zsh > \"${fpath[1]}/_kubectl-canary\"
  kubectl-canary completion fish > ~/.config/fish/completions/kubectl-canary.fish
  # `kubectl canary <TAB>` (kubectl 1.26 or later): an executable on PATH
  kubectl-canary completion kubectl-plugin > ~/.local/bin/kubectl_complete-canary
  chmod +x ~/.local/bin/kubectl_complete-canary")]
pub struct CompletionArgs {
    /// The shell, or kubectl-plugin for the `kubectl_complete-canary` script.
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

/// What `completion` prints a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    /// bash.
    Bash,
    /// zsh.
    Zsh,
    /// fish.
    Fish,
    /// kubectl's plugin completion: the executable `kubectl_complete-canary`.
    KubectlPlugin,
}

/// `man` flags.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Directory to write kubectl-canary.1 and one page per command into.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// `__complete` arguments: the words after `kubectl canary`, the last one being completed.
#[derive(Debug, Args)]
pub struct CompleteArgs {
    /// The words typed so far.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub words: Vec<String>,
}

/// `plan` flags.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  # The achievable sizes nearest 5% for a live Deployment, with their cost
  kubectl canary plan deploy/web --canary 5%

  # The same without a cluster
  kubectl canary plan --replicas 10 --canary 5% --cpu 100m --memory 128Mi

  # How the native rolling update moves, and what kubectl-canary does instead
  kubectl canary plan deploy/web --canary 1 --explain")]
pub struct PlanArgs {
    /// The Deployment (deploy/NAME); leave out and give --replicas to plan without a cluster.
    #[arg(value_parser = parse_target, required_unless_present = "replicas", conflicts_with = "replicas")]
    pub target: Option<WorkloadRef>,
    /// Plan without a cluster, for a Deployment of this many replicas.
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    pub replicas: Option<i32>,
    /// Canary size: a number of pods (1) or a share of traffic (5%).
    #[arg(long, default_value = "1", value_parser = parse_canary_size)]
    pub canary: CanarySize,
    /// The mode --explain walks through (the plan itself shows both).
    #[arg(long, value_enum, default_value_t = ModeArg::Surge)]
    pub mode: ModeArg,
    /// Teaching view: the states the native rolling update walks through, where a
    /// hand-typed `kubectl rollout pause` can land, and kubectl-canary's steps instead.
    #[arg(long)]
    pub explain: bool,
    /// Without a cluster: the Deployment's maxSurge (default 25%).
    #[arg(long, requires = "replicas", value_parser = parse_int_or_percent)]
    pub max_surge: Option<IntOrPercent>,
    /// Without a cluster: the Deployment's maxUnavailable (default 25%).
    #[arg(long, requires = "replicas", value_parser = parse_int_or_percent)]
    pub max_unavailable: Option<IntOrPercent>,
    /// Without a cluster: CPU request of one pod (250m, 0.5).
    #[arg(long, requires = "replicas", value_parser = parse_cpu)]
    pub cpu: Option<i64>,
    /// Without a cluster: memory request of one pod (128Mi, 1G).
    #[arg(long, requires = "replicas", value_parser = parse_memory)]
    pub memory: Option<i64>,
}

fn parse_int_or_percent(arg: &str) -> Result<IntOrPercent, String> {
    arg.parse::<IntOrPercent>().map_err(|e| e.to_string())
}

fn parse_cpu(arg: &str) -> Result<i64, String> {
    canary_core::plan::parse_cpu_millis(arg).map_err(|e| e.to_string())
}

fn parse_memory(arg: &str) -> Result<i64, String> {
    canary_core::plan::parse_memory_bytes(arg).map_err(|e| e.to_string())
}

/// `start` flags.
#[derive(Debug, Args)]
#[command(after_help = START_EXAMPLES)]
#[command(group(clap::ArgGroup::new("release").required(true).multiple(true)
    .args(["images", "filename", "patch", "patch_file", "env"])))]
pub struct StartArgs {
    /// The workload: deploy/NAME, sts/NAME or ds/NAME.
    #[arg(value_parser = parse_target)]
    pub target: WorkloadRef,
    /// New images, CONTAINER=IMAGE.
    #[arg(value_parser = parse_image_change)]
    pub images: Vec<ImageChange>,
    /// The release as a manifest (YAML or JSON, several documents allowed, `-` for standard
    /// input): the canary runs the pod template of its Deployment of this name and namespace.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub filename: Option<PathBuf>,
    /// The release as a patch of the Deployment (kubectl patch's -p); repeat for several.
    #[arg(short = 'p', long, value_name = "PATCH")]
    pub patch: Vec<String>,
    /// The release as a patch read from a file; repeat for several.
    #[arg(long, value_name = "FILE")]
    pub patch_file: Vec<PathBuf>,
    /// A DaemonSet canary (ds/NAME): choose its nodes among those this label selector
    /// selects (default: any node that runs the DaemonSet), by name.
    #[arg(long, value_name = "SELECTOR")]
    pub nodes: Option<String>,
    /// How --patch and --patch-file are applied (kubectl patch's --type).
    #[arg(long = "type", value_enum, default_value_t = PatchTypeArg::Strategic)]
    pub patch_type: PatchTypeArg,
    /// Set an environment variable of a container, CONTAINER:NAME=VALUE; repeat for several.
    #[arg(long, value_name = "CONTAINER:NAME=VALUE", value_parser = parse_env_change)]
    pub env: Vec<EnvChange>,
    /// How each canary runs (shared with `apply`).
    #[command(flatten)]
    pub run: CanaryRunFlags,
    /// Dark canary: the Services in front of the Deployment select only the stable pods
    /// until `promote` (the canary pods run and can be checked through the pod proxy, but
    /// get no Service traffic). The Services are found, checked and put back exactly.
    #[arg(long, conflicts_with = "auto")]
    pub dark: bool,
    /// Sticky sessions: sessionAffinity ClientIP on the Services in front of the Deployment
    /// for the duration of the canary, with this timeout (default 1h, at most 24h), so a
    /// client stays on one pod and so on one version. Not for traffic that reaches the pods
    /// through an ingress or gateway balancing to pod IPs (configure affinity there).
    #[arg(long, value_name = "TIMEOUT", num_args = 0..=1, default_missing_value = "1h",
          value_parser = parse_sticky, conflicts_with = "auto")]
    pub sticky: Option<i32>,
    /// Blue/Green: the new version comes up as a full second set of pods (a surge canary
    /// as large as the Deployment, under the brake) while the Services stay on the old
    /// set; `promote` switches each Service to the new set in one update, then completes
    /// the rollout; `abort`, before or after the switch, goes back in one update.
    #[arg(long, conflicts_with_all = ["auto", "dark", "canary", "mode", "steps"])]
    pub blue_green: bool,
    /// With --auto: at the end, write the HTML report of the canary to this file (as
    /// `kubectl canary report` does).
    #[arg(long, value_name = "FILE", requires = "auto")]
    pub report: Option<PathBuf>,
    /// The checks of each step's analysis (with --auto).
    #[command(flatten)]
    pub analysis: AnalysisFlags,
}

/// The flags of how a canary runs, the same for `start` and for each canary of `apply`:
/// its size and mode, a dry run, `--allow-hpa`, waiting, and `--auto`'s steps.
#[derive(Debug, Args)]
pub struct CanaryRunFlags {
    /// Canary size: a number of pods (1) or a share of traffic (10%).
    #[arg(long, default_value = "1", value_parser = parse_canary_size, allow_negative_numbers = true)]
    pub canary: CanarySize,
    /// surge: canary pods are extra pods; replace: they replace stable pods (no extra cost).
    #[arg(long, value_enum, default_value_t = ModeArg::Surge)]
    pub mode: ModeArg,
    /// Print the exact changes (with `apply`, also what would be applied), change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Start although a HorizontalPodAutoscaler targets the Deployment.
    #[arg(long)]
    pub allow_hpa: bool,
    /// Return once the canary is held, without waiting for its pods to become Ready.
    #[arg(long)]
    pub no_wait: bool,
    /// Automated progression: at each step wait, analyse, promote on pass, abort on fail,
    /// all the way to 100%. Exit 0 promoted, 11 rolled back, 12 inconclusive or timed out.
    #[arg(long)]
    pub auto: bool,
    /// With --auto: the canary sizes to go through before 100%, e.g. 10%,50%; the first is
    /// where the canary starts (instead of --canary).
    #[arg(long, value_delimiter = ',', value_parser = parse_canary_size, requires = "auto", conflicts_with = "canary")]
    pub steps: Vec<CanarySize>,
    /// With --auto: how long each step runs, its pods' health watched all along, before the
    /// other checks measure.
    #[arg(long, value_parser = parse_analysis_duration, default_value = "1m")]
    pub interval: Duration,
    /// With --auto: Ctrl-C rolls back instead of leaving the canary held and recorded.
    #[arg(long, requires = "auto")]
    pub abort_on_interrupt: bool,
    /// With --auto: after a passing analysis, wait before this step until someone allowed
    /// to update the Deployment approves with `kubectl canary promote deploy/NAME`: `full`
    /// (before 100%), `every`, or a size of --steps (3, 50%). Repeatable, or comma-separated.
    #[arg(long, value_name = "STEP", value_delimiter = ',', requires = "auto")]
    pub approve_before: Vec<String>,
    /// With --approve-before: how long a step waits for its approval (30m, 2h); then
    /// --on-approval-timeout. Without it a gate waits until approved or aborted.
    #[arg(long, value_name = "DURATION", requires = "approve_before")]
    pub approval_timeout: Option<String>,
    /// What an approval timeout does: `abort` (roll back; the default) or `wait` (say the
    /// approval is overdue, once, and keep waiting).
    #[arg(long, value_name = "abort|wait", requires = "approval_timeout")]
    pub on_approval_timeout: Option<String>,
    /// Where the canary's moments are sent.
    #[command(flatten)]
    pub notify: NotifyFlags,
}

/// Notifications (docs/notifications.md): the same for `start`, `apply`, `promote` and
/// `abort`.
#[derive(Debug, Args, Default)]
pub struct NotifyFlags {
    /// Send the canary's moments (started, held, analysis, promoted, rolled back, ...) to
    /// this endpoint: a URL (Slack and Teams told by their host; slack+https://,
    /// teams+https://, webhook+https:// to say; a webhook's signing key from
    /// $KUBECTL_CANARY_NOTIFY_KEY), or the name of an endpoint of the Secret
    /// kubectl-canary-notify in the namespace. Repeat for several.
    #[arg(long = "notify", value_name = "URL_OR_NAME")]
    pub notify: Vec<String>,
    /// Link each notice to the canary's HTML report under this URL (BASE/NAMESPACE/NAME.html,
    /// or BASE with {namespace} and {deployment} replaced).
    #[arg(long = "report-url", value_name = "BASE")]
    pub report_url: Option<String>,
}

const START_EXAMPLES: &str = "\
Examples:
  # A new image: exactly 1 canary pod beside the stable ones
  kubectl canary start deploy/web nginx=nginx:1.15 --canary 1

  # Any release of the pod template: a manifest (its Deployment web; - reads standard input)
  kubectl canary start deploy/web -f manifests/web.yaml
  kustomize build overlays/prod | kubectl canary start deploy/web -f -

  # A patch (strategic by default; --type json|merge), an environment variable, combined
  kubectl canary start deploy/web --patch-file patches/args.yaml
  kubectl canary start deploy/web --type merge --patch-file patches/labels.json
  kubectl canary start deploy/web --env nginx:LOG_LEVEL=debug nginx=nginx:1.15

  # What would change, field by field, changing nothing
  kubectl canary start deploy/web -f web.yaml --dry-run

The release changes only the pod template: a manifest or patch that also changes replicas,
strategy, minReadySeconds, progressDeadlineSeconds, revisionHistoryLimit, paused, the
selector or the Deployment's labels or annotations is refused (apply those separately).";

/// How a patch is applied (kubectl patch's --type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PatchTypeArg {
    /// RFC 6902 JSON patch: a list of operations.
    Json,
    /// RFC 7386 merge patch: null deletes, lists are replaced.
    Merge,
    /// Strategic merge patch: containers, env, volumes... merged by name.
    Strategic,
}

impl From<PatchTypeArg> for PatchType {
    fn from(arg: PatchTypeArg) -> Self {
        match arg {
            PatchTypeArg::Json => PatchType::Json,
            PatchTypeArg::Merge => PatchType::Merge,
            PatchTypeArg::Strategic => PatchType::Strategic,
        }
    }
}

fn parse_env_change(arg: &str) -> Result<EnvChange, String> {
    EnvChange::parse(arg).map_err(|e| e.to_string())
}

/// `apply` flags.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  # A CI pipeline's `kubectl apply -f manifests/`, with a canary for each changed pod template
  kubectl canary apply -f manifests/ --auto --steps 10%,50% --interval 1m --http-check :80/

  # What it would do, changing nothing
  kubectl canary apply -f manifests/ --dry-run

Every object that is not a Deployment whose pod template changes is applied first, as
`kubectl apply --server-side --force-conflicts --field-manager=kubectl-canary` would (so a
new ConfigMap exists before the canary's pods need it). Then each such Deployment gets a
canary, one after the other, with the flags below; the first that does not end well stops
the rest and decides the exit code. Nothing is changed when any input is refused.")]
pub struct ApplyArgs {
    /// Manifest files or directories (their *.yaml, *.yml and *.json files, not
    /// recursively); `-` for standard input. Repeat for several.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "DIR_OR_FILE",
        required = true
    )]
    pub filename: Vec<PathBuf>,
    /// How each canary runs (as `start`'s).
    #[command(flatten)]
    pub run: CanaryRunFlags,
    /// The checks of each step's analysis (with --auto).
    #[command(flatten)]
    pub analysis: AnalysisFlags,
}

/// `--sticky`'s timeout in whole seconds, 1 s to 24 h (the API server's range).
fn parse_sticky(arg: &str) -> Result<i32, String> {
    let d = parse_analysis_duration(arg)?;
    let secs = d.as_secs();
    if d.subsec_nanos() != 0 || secs == 0 || secs > canary_core::traffic::MAX_STICKY_SECONDS as u64
    {
        return Err(format!(
            "--sticky {arg}: a timeout of whole seconds from 1s to 24h (sessionAffinityConfig.clientIP.timeoutSeconds)"
        ));
    }
    Ok(secs as i32)
}

/// `status` flags.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The workload: deploy/NAME, sts/NAME or ds/NAME.
    #[arg(value_parser = parse_target)]
    pub target: WorkloadRef,
    /// Keep printing as things change (from the watch stream).
    #[arg(short = 'w', long)]
    pub watch: bool,
}

/// `promote` flags. A bare `promote` approves the step an approval gate holds back
/// (`start --auto --approve-before`, or the GitOps policy's); with no gate awaited it is
/// refused with the two choices rather than taken as 100% (a person typing it may expect
/// the next step, and rolling out to every pod is the one promote that cannot be undone by
/// growing).
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("size").required(false).args(["canary", "full"])))]
pub struct PromoteArgs {
    /// The workload: deploy/NAME, sts/NAME or ds/NAME.
    #[arg(value_parser = parse_target)]
    pub target: WorkloadRef,
    /// Grow the canary to this size: pods (3) or a share of traffic (50%).
    #[arg(long, value_parser = parse_canary_size, conflicts_with = "full", allow_negative_numbers = true)]
    pub canary: Option<CanarySize>,
    /// Roll the new version out to every pod and put back the Deployment's own settings
    /// (Blue/Green: switch the Services to the new set). Required for 100%.
    #[arg(long)]
    pub full: bool,
    /// Print the exact changes, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Return once the update is made, without waiting for the rollout to finish.
    #[arg(long)]
    pub no_wait: bool,
    /// Where the canary's moments are sent.
    #[command(flatten)]
    pub notify: NotifyFlags,
}

/// `abort` flags.
#[derive(Debug, Args)]
pub struct AbortArgs {
    /// The workload: deploy/NAME, sts/NAME or ds/NAME.
    #[arg(value_parser = parse_target)]
    pub target: WorkloadRef,
    /// Print the exact changes, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Return once the rollback update is made, without waiting for the canary pods to go.
    #[arg(long)]
    pub no_wait: bool,
    /// Roll back from the Deployment alone, ignoring the record: the stable ReplicaSet named
    /// by the Deployment's kubectl-canary.io/seal annotation and the original settings kept
    /// there; the record is deleted at the end. For a record changed outside kubectl-canary.
    /// (A Deployment whose record is lost is recovered by a plain abort.)
    #[arg(long)]
    pub recover: bool,
    /// Where the canary's moments are sent.
    #[command(flatten)]
    pub notify: NotifyFlags,
}

/// `analyze` flags.
#[derive(Debug, Args)]
#[command(after_help = ANALYZE_EXAMPLES)]
pub struct AnalyzeArgs {
    /// The Deployment (deploy/NAME).
    #[arg(value_parser = parse_target)]
    pub target: WorkloadRef,
    /// The checks and how to judge them.
    #[command(flatten)]
    pub analysis: AnalysisFlags,
    /// Watch pod health this long before the other checks measure (a crash during it fails at once).
    #[arg(long, value_parser = parse_analysis_duration, default_value = "0s", value_name = "DURATION")]
    pub observe: Duration,
    /// While checks are inconclusive and their policy is to wait, analyse again until they
    /// decide or their waiting limit passes (default: report the first result).
    #[arg(long)]
    pub wait: bool,
    /// After the verdict, write the HTML report of the canary to this file (as
    /// `kubectl canary report` does).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

const ANALYZE_EXAMPLES: &str = "\
Examples:
  # Pod health and error lines in the logs (the default checks)
  kubectl canary analyze deploy/web

  # Also compare HTTP answers of canary and stable pods, and a Prometheus latency series
  kubectl canary analyze deploy/web --http-check :8080/healthz --log-errors \\
    --prometheus http://prometheus:9090 \\
    --query 'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{ {{selector}} }[1m])))'

  # The full form: a YAML analysis spec (see docs/analysis.md)
  kubectl canary analyze deploy/web --analysis-file analysis.yaml

Exit codes: 0 pass, 10 fail, 12 inconclusive (or still waiting), others as for every command.";

/// The analysis checks, as flags for the common cases and a YAML file for the full form.
/// Shared by `analyze` and `start --auto`.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Analysis")]
pub struct AnalysisFlags {
    /// A YAML analysis spec (window, checks, thresholds, policies); flags add checks to it.
    #[arg(long, value_name = "FILE")]
    pub analysis_file: Option<PathBuf>,
    /// Leave out the pod health check (readiness, restarts, CrashLoopBackOff, OOMKilled, pull errors).
    #[arg(long)]
    pub no_pod_health: bool,
    /// A canary pod not Ready this long after its creation fails the pod health check.
    #[arg(long, value_parser = parse_analysis_duration, value_name = "DURATION")]
    pub ready_deadline: Option<Duration>,
    /// Compare error lines per pod per minute in the logs; optionally with your own regex
    /// (--log-errors='\[error\]'); repeat for several patterns.
    #[arg(long, value_name = "REGEX", num_args = 0..=1, require_equals = true, default_missing_value = "")]
    pub log_errors: Option<Vec<String>>,
    /// The container whose logs are read (default: the one `kubectl logs` picks).
    #[arg(long, value_name = "NAME")]
    pub log_container: Option<String>,
    /// GET through the API server's pod proxy on canary and stable pods: [:]PORT[/PATH], e.g. :8080/healthz;
    /// `auto`: at the pod template's own httpGet readiness and liveness probes (the default, where the
    /// template has them, when no HTTP or Prometheus check is given); `none`: not even those.
    #[arg(long, value_name = "PORT/PATH|auto|none")]
    pub http_check: Vec<String>,
    /// GET through the API server's service proxy, as users see it: SERVICE:PORT[/PATH].
    #[arg(long, value_name = "SERVICE:PORT/PATH")]
    pub http_service_check: Vec<String>,
    /// The most requests per side for each HTTP check, which stops as soon as the error rates
    /// are decided (looks every 20; default 200, at most 1000).
    #[arg(long, value_name = "N")]
    pub http_requests: Option<u32>,
    /// Requests per second per side for each HTTP check (at most 50).
    #[arg(long, value_name = "RATE")]
    pub http_rate: Option<f64>,
    /// Status codes that count as success (default: any below 400); repeat or separate with commas.
    #[arg(long, value_name = "CODE", value_delimiter = ',')]
    pub http_expect_status: Vec<u16>,
    /// Prometheus URL for --query, e.g. http://prometheus.monitoring:9090; without --query,
    /// the pods' own request metrics are found and judged (see --auto-metrics).
    #[arg(long, value_name = "URL", conflicts_with = "prometheus_service")]
    pub prometheus: Option<String>,
    /// Judge the pods' own request metrics with no query written: on --prometheus, or a
    /// Prometheus found in the cluster (the prometheus-operated Service, or one labelled as
    /// Prometheus); an HTTP check when there are none.
    #[arg(long)]
    pub auto_metrics: bool,
    /// Prometheus reached through the API server's service proxy: [https://]NAMESPACE/SERVICE:PORT.
    #[arg(long, value_name = "NS/SERVICE:PORT")]
    pub prometheus_service: Option<String>,
    /// A PromQL template run for canary and stable; {{selector}} becomes
    /// namespace="...",pod_template_hash="..." (also {{hash}}, {{replicaset}}, {{window}}).
    #[arg(long, value_name = "PROMQL")]
    pub query: Vec<String>,
    /// Step of the range queries over the window; "0s" makes instant queries.
    #[arg(long, value_parser = parse_analysis_duration, value_name = "DURATION")]
    pub query_step: Option<Duration>,
    /// Which change of the queried values is bad.
    #[arg(long, value_enum, value_name = "DIRECTION")]
    pub query_direction: Option<DirectionArg>,
    /// Relative change of the queried values tolerated (0.1 = 10%).
    #[arg(long, value_name = "FRACTION")]
    pub query_tolerance: Option<f64>,
    /// Fail when the canary's queried value is above this.
    #[arg(long, value_name = "VALUE")]
    pub query_max: Option<f64>,
    /// How far back logs and range queries look.
    #[arg(long, value_parser = parse_analysis_duration, value_name = "DURATION")]
    pub window: Option<Duration>,
    /// What an inconclusive check does: wait (up to 5m), wait:DURATION, fail or pass.
    #[arg(long, value_parser = parse_inconclusive_policy, value_name = "POLICY")]
    pub on_inconclusive: Option<canary_core::verdict::InconclusivePolicy>,
    /// Percentage of checks that must pass; failing critical checks fail regardless.
    #[arg(long, value_name = "PERCENT")]
    pub pass_score: Option<f64>,
    /// Make the flag checks non-critical (they only lower the score).
    #[arg(long)]
    pub non_critical: bool,
}

/// `--query-direction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DirectionArg {
    /// Higher is worse (latency, errors).
    Increase,
    /// Lower is worse (throughput, success rate).
    Decrease,
    /// Any significant change is bad.
    Either,
}

impl From<DirectionArg> for canary_core::verdict::Direction {
    fn from(direction: DirectionArg) -> Self {
        match direction {
            DirectionArg::Increase => Self::Increase,
            DirectionArg::Decrease => Self::Decrease,
            DirectionArg::Either => Self::Either,
        }
    }
}

fn parse_analysis_duration(arg: &str) -> Result<Duration, String> {
    canary_core::analysis_spec::parse_duration(arg).map_err(|e| e.to_string())
}

fn parse_inconclusive_policy(
    arg: &str,
) -> Result<canary_core::verdict::InconclusivePolicy, String> {
    canary_core::analysis_spec::parse_inconclusive_policy(arg)
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

fn parse_target(arg: &str) -> Result<WorkloadRef, String> {
    WorkloadRef::parse(arg).map_err(|e| e.to_string())
}

fn parse_image_change(arg: &str) -> Result<ImageChange, String> {
    ImageChange::parse(arg).map_err(|e| e.to_string())
}

fn parse_canary_size(arg: &str) -> Result<CanarySize, String> {
    arg.parse::<CanarySize>().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// A bare `promote` parses (it approves the step an approval gate holds back; with no
    /// gate the command refuses it, naming both choices: never 100% by default), and
    /// `--canary` and `--full` exclude each other.
    #[test]
    fn promote_takes_a_size_full_or_nothing() {
        assert!(Cli::try_parse_from(["kubectl-canary", "promote", "deploy/web"]).is_ok());
        let error = Cli::try_parse_from([
            "kubectl-canary",
            "promote",
            "deploy/web",
            "--canary",
            "3",
            "--full",
        ])
        .unwrap_err();
        assert_eq!(
            crate::exit_code::for_cli_error(&error),
            crate::exit_code::USAGE
        );
        for args in [["--canary", "3"].as_slice(), ["--full"].as_slice()] {
            let mut line = vec!["kubectl-canary", "promote", "deploy/web"];
            line.extend(args);
            assert!(Cli::try_parse_from(line).is_ok(), "{args:?}");
        }
        assert!(
            Cli::try_parse_from([
                "kubectl-canary",
                "promote",
                "deploy/web",
                "--canary",
                "3",
                "--full"
            ])
            .is_err()
        );
    }

    /// `start` needs something to release; images, a manifest, patches and `--env` combine.
    #[test]
    fn start_needs_a_release_and_its_ways_in_combine() {
        assert!(Cli::try_parse_from(["kubectl-canary", "start", "deploy/web"]).is_err());
        let cli = Cli::try_parse_from([
            "kubectl-canary",
            "start",
            "deploy/web",
            "web=web:2",
            "-f",
            "-",
            "--patch",
            "{}",
            "--type",
            "merge",
            "--env",
            "web:A=1",
        ])
        .unwrap();
        let Command::Start(args) = cli.command else {
            panic!("start");
        };
        assert_eq!(args.images.len(), 1);
        assert_eq!(args.filename.as_deref(), Some(std::path::Path::new("-")));
        assert_eq!(args.patch_type, PatchTypeArg::Merge);
        assert_eq!(args.env[0].to_string(), "web:A=1");
        assert!(
            Cli::try_parse_from(["kubectl-canary", "start", "deploy/web", "--env", "web=1"])
                .is_err()
        );
        assert!(Cli::try_parse_from(["kubectl-canary", "apply"]).is_err());
    }
}
