//! The flags of a StatefulSet or DaemonSet canary (`start`, `status`, `promote`, `abort`,
//! `analyze` of `sts/NAME` or `ds/NAME`), resolved. Those kinds take a subset of a
//! Deployment's flags; a flag given for one that it does not take is refused by name, before
//! anything is read.

use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory};

use canary_core::analysis_spec::AnalysisSpec;
use canary_core::release::{ReleaseError, ReleaseInput};
use canary_core::rollout_math::CanarySize;
use canary_core::target::{WorkloadKind, WorkloadRef};

use crate::cli::{AnalysisFlags, Cli, Command};
use crate::config::analysis::{self, AnalysisConfigError};
use crate::config::start::{ManifestFile, release_of};

/// What a StatefulSet or DaemonSet command does.
#[derive(Debug, Clone, PartialEq)]
pub enum KindAction {
    /// `start`: the new images, the size, for a DaemonSet the nodes to choose from, and
    /// `--auto`'s steps.
    Start {
        /// The release: `CONTAINER=IMAGE`, `--patch`, `--env` (the manifest's document is
        /// looked up in `manifest` once the namespace is known).
        release: Box<ReleaseInput>,
        /// `-f`: the manifest, read.
        manifest: Option<ManifestFile>,
        /// `--canary`, or the first of `--steps`.
        size: CanarySize,
        /// `--nodes SELECTOR` (DaemonSets).
        nodes: Option<String>,
        /// `--auto`: its steps and analysis; `None` without.
        auto: Option<Box<KindAuto>>,
    },
    /// `analyze`.
    Analyze(Box<KindAnalyze>),
    /// `plan --canary SIZE`.
    Plan(CanarySize),
    /// `status`, with `--watch` (`true`): a document on every change.
    Status(bool),
    /// `promote --canary SIZE` (`Some`) or `--full` (`None`).
    Promote(Option<CanarySize>),
    /// `abort`.
    Abort,
}

/// `start --auto` of a StatefulSet or DaemonSet.
#[derive(Debug, Clone, PartialEq)]
pub struct KindAuto {
    /// `--steps` (empty: `--canary` is the only step before 100%).
    pub steps: Vec<CanarySize>,
    /// The checks of every step (the analysis flags and `--analysis-file`).
    pub analysis: AnalysisSpec,
    /// `--interval`.
    pub interval: Duration,
}

/// `analyze` of a StatefulSet or DaemonSet.
#[derive(Debug, Clone, PartialEq)]
pub struct KindAnalyze {
    /// The checks (the analysis flags and `--analysis-file`).
    pub analysis: AnalysisSpec,
    /// `--observe`.
    pub observe: Duration,
    /// `--wait`.
    pub wait: bool,
}

/// A StatefulSet or DaemonSet command, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct KindConfig {
    /// The workload.
    pub target: WorkloadRef,
    /// What to do.
    pub action: KindAction,
    /// `--dry-run` (start, promote, abort): say what the command would do first, write
    /// nothing.
    pub dry_run: bool,
}

/// Why a StatefulSet or DaemonSet command was refused before it ran.
#[derive(Debug, thiserror::Error)]
pub enum KindConfigError {
    /// A command these kinds do not have yet.
    #[error(
        "`{command}` works on Deployments only for now; a canary of {target} takes start, status, promote, abort, analyze and plan; nothing was changed"
    )]
    Command {
        /// The command.
        command: &'static str,
        /// The workload.
        target: String,
    },
    /// Flags these kinds do not take.
    #[error(
        "{target}: a canary of a {kind} does not take {flags}; it takes {allowed} (and the global flags); nothing was changed"
    )]
    Flags {
        /// The workload.
        target: String,
        /// Its kind.
        kind: &'static str,
        /// The flags given, as typed.
        flags: String,
        /// The flags it takes.
        allowed: String,
    },
    /// The analysis flags or file cannot be used.
    #[error(transparent)]
    Analysis(#[from] AnalysisConfigError),
    /// A manifest or patch cannot be used.
    #[error(transparent)]
    Release(#[from] ReleaseError),
    /// A bare `promote`: these kinds have no approval gates.
    #[error(
        "give the size to grow {target}'s canary to (--canary 3 or --canary 50%) or --full; nothing was changed"
    )]
    NoPromoteSize {
        /// The workload.
        target: String,
    },
}

/// The flags (clap's ids) each command takes for these kinds, besides the global ones, and
/// whether it takes the analysis flags too (`analyze`, and `start` with `--auto`).
fn allowed(command: &Command, kind: WorkloadKind) -> (Vec<&'static str>, bool) {
    match (command, kind) {
        // A release's flags, then the canary's, in the order a refusal lists them.
        (Command::Start(args), kind) => {
            let mut takes = RELEASE.to_vec();
            takes.push("canary");
            if kind == WorkloadKind::DaemonSet {
                takes.push("nodes");
            }
            takes.extend(["dry_run", "auto"]);
            if args.run.auto {
                takes.extend(["steps", "interval"]);
            }
            (takes, args.run.auto)
        }
        (Command::Promote(_), _) => (vec!["target", "canary", "full", "dry_run"], false),
        (Command::Abort(_), _) => (vec!["target", "dry_run"], false),
        (Command::Status(_), _) => (vec!["target", "watch"], false),
        (Command::Analyze(_), _) => (vec!["target", "observe", "wait"], true),
        (Command::Plan(_), _) => (vec!["target", "canary"], false),
        _ => (vec!["target"], false),
    }
}

/// The ids of the workload argument and of a release's flags, which the message of a
/// refusal names as one.
const RELEASE: &[&str] = &[
    "target",
    "images",
    "filename",
    "patch",
    "patch_file",
    "patch_type",
    "env",
];

/// The ids of the analysis flags (`--http-check`, `--prometheus`, `--analysis-file`, ...).
fn analysis_flag_ids() -> Vec<String> {
    AnalysisFlags::augment_args(clap::Command::new("analysis"))
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .collect()
}

/// The flags every command takes (kubectl's).
const GLOBAL: &[&str] = &[
    "namespace",
    "context",
    "kubeconfig",
    "output",
    "timeout",
    "as_user",
    "as_group",
    "token",
    "request_timeout",
    "verbose",
];

impl KindConfig {
    /// The release of a `start` in `namespace`: its flags' with the manifest's document of
    /// the workload (`-f`); `None` for the other commands.
    pub fn release_in(&self, namespace: &str) -> Result<Option<ReleaseInput>, ReleaseError> {
        let KindAction::Start {
            release, manifest, ..
        } = &self.action
        else {
            return Ok(None);
        };
        Ok(Some(match manifest {
            Some(manifest) => manifest.release_for(release, namespace, &self.target)?,
            None => ReleaseInput::clone(release),
        }))
    }

    /// Resolves `command` for its StatefulSet or DaemonSet `target`; `matches`: the parsed
    /// command line, to tell the flags given from the defaults.
    pub fn resolve(
        command: &Command,
        target: &WorkloadRef,
        matches: &ArgMatches,
    ) -> Result<Self, KindConfigError> {
        let named = target.to_string();
        if !matches!(
            command,
            Command::Start(_)
                | Command::Status(_)
                | Command::Promote(_)
                | Command::Abort(_)
                | Command::Analyze(_)
                | Command::Plan(_)
        ) {
            return Err(KindConfigError::Command {
                command: command.name(),
                target: named,
            });
        }
        let sub = matches
            .subcommand_matches(command.name())
            .unwrap_or(matches);
        let (takes, with_analysis) = allowed(command, target.kind);
        let analysis_ids = if with_analysis {
            analysis_flag_ids()
        } else {
            Vec::new()
        };
        // Argument groups (`release`, `size`) have ids too; only arguments are flags.
        let definition = Cli::command();
        let groups: Vec<String> = definition
            .find_subcommand(command.name())
            .map(|c| c.get_groups().map(|g| g.get_id().to_string()).collect())
            .unwrap_or_default();
        let mut refused: Vec<String> = sub
            .ids()
            .map(|id| id.as_str())
            .filter(|id| {
                !takes.contains(id)
                    && !GLOBAL.contains(id)
                    && !groups.iter().any(|g| g == id)
                    && !analysis_ids.iter().any(|a| a == id)
            })
            .filter(|id| sub.value_source(id) == Some(ValueSource::CommandLine))
            .map(|id| format!("--{}", id.replace('_', "-")))
            .collect();
        refused.sort();
        if !refused.is_empty() {
            return Err(KindConfigError::Flags {
                target: named,
                kind: target.kind.name(),
                flags: refused.join(", "),
                allowed: matches!(command, Command::Start(_))
                    .then(|| "a release (images, -f, --patch, --env)".to_owned())
                    .into_iter()
                    .chain(
                        takes
                            .iter()
                            .filter(|id| !RELEASE.contains(id))
                            .map(|id| format!("--{}", id.replace('_', "-"))),
                    )
                    .chain(with_analysis.then(|| "the analysis flags".to_owned()))
                    .chain(
                        (matches!(command, Command::Start(_)) && !with_analysis).then(|| {
                            "and with --auto: --steps, --interval and the analysis flags".to_owned()
                        }),
                    )
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let action = match command {
            Command::Start(args) => {
                let (manifest, release) = release_of(args)?;
                KindAction::Start {
                    release: Box::new(release),
                    manifest,
                    size: args.run.steps.first().copied().unwrap_or(args.run.canary),
                    nodes: args.nodes.clone(),
                    auto: match args.run.auto {
                        true => Some(Box::new(KindAuto {
                            steps: args.run.steps.clone(),
                            analysis: analysis::resolve(&args.analysis)?,
                            interval: args.run.interval,
                        })),
                        false => None,
                    },
                }
            }
            Command::Analyze(args) => KindAction::Analyze(Box::new(KindAnalyze {
                analysis: analysis::resolve(&args.analysis)?,
                observe: args.observe,
                wait: args.wait,
            })),
            Command::Status(args) => KindAction::Status(args.watch),
            Command::Plan(args) => KindAction::Plan(args.canary),
            Command::Promote(args) if args.full => KindAction::Promote(None),
            Command::Promote(args) => match args.canary {
                Some(size) => KindAction::Promote(Some(size)),
                None => return Err(KindConfigError::NoPromoteSize { target: named }),
            },
            _ => KindAction::Abort,
        };
        let dry_run = match command {
            Command::Start(args) => args.run.dry_run,
            Command::Promote(args) => args.dry_run,
            Command::Abort(args) => args.dry_run,
            _ => false,
        };
        Ok(Self {
            target: target.clone(),
            action,
            dry_run,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::FromArgMatches;

    use super::*;

    fn resolve(line: &str) -> Result<KindConfig, KindConfigError> {
        let matches = Cli::command()
            .try_get_matches_from(line.split_whitespace())
            .unwrap();
        let cli = Cli::from_arg_matches(&matches).unwrap();
        let target = cli.command.workload().unwrap().clone();
        KindConfig::resolve(&cli.command, &target, &matches)
    }

    /// What each kind takes, and every refusal by name.
    #[test]
    fn a_kind_command_takes_its_flags_and_refuses_the_others_by_name() {
        let start =
            resolve("kubectl-canary -n x start sts/db db=db:2 --canary 2 --timeout 5m").unwrap();
        assert_eq!(
            start.action,
            KindAction::Start {
                release: Box::new(ReleaseInput {
                    images: [("db".to_owned(), "db:2".to_owned())].into(),
                    ..ReleaseInput::default()
                }),
                manifest: None,
                size: CanarySize::Pods(2),
                nodes: None,
                auto: None,
            }
        );
        let auto = resolve(
            "kubectl-canary start sts/db db=db:2 --auto --steps 1,50% --interval 10s --http-check :80/ --log-errors",
        )
        .unwrap();
        let KindAction::Start {
            size,
            auto: Some(auto),
            ..
        } = auto.action
        else {
            panic!("{auto:?}")
        };
        assert_eq!(size, CanarySize::Pods(1));
        assert_eq!(auto.steps, [CanarySize::Pods(1), CanarySize::Percent(50.0)]);
        assert_eq!(auto.interval, Duration::from_secs(10));
        assert!(auto.analysis.checks.len() >= 2, "{:?}", auto.analysis);
        let analyze =
            resolve("kubectl-canary analyze ds/a --observe 5s --http-check :80/").unwrap();
        assert!(
            matches!(analyze.action, KindAction::Analyze(ref a) if a.observe == Duration::from_secs(5)),
            "{analyze:?}"
        );
        let nodes = resolve("kubectl-canary start ds/agent a=a:2 --nodes zone=b").unwrap();
        assert!(
            matches!(nodes.action, KindAction::Start { nodes: Some(ref s), .. } if s == "zone=b")
        );
        assert_eq!(
            resolve("kubectl-canary promote sts/db --full")
                .unwrap()
                .action,
            KindAction::Promote(None)
        );
        let refusals = [
            (
                "kubectl-canary start sts/db db=db:2 --dry-run --mode replace",
                "sts/db: a canary of a StatefulSet does not take --mode; it takes a release (images, -f, --patch, --env), --canary, --dry-run, --auto, and with --auto: --steps, --interval and the analysis flags (and",
            ),
            (
                "kubectl-canary start sts/db db=db:2 --auto --abort-on-interrupt",
                "does not take --abort-on-interrupt; it takes a release (images, -f, --patch, --env), --canary, --dry-run, --auto, --steps, --interval, the analysis flags",
            ),
            (
                "kubectl-canary start sts/db db=db:2 --http-check :80/",
                "does not take --http-check",
            ),
            (
                "kubectl-canary start sts/db db=db:2 --nodes a=b",
                "does not take --nodes",
            ),
            (
                "kubectl-canary start ds/a a=a:2 --mode replace",
                "a canary of a DaemonSet does not take --mode; it takes a release (images, -f, --patch, --env), --canary, --nodes",
            ),
            (
                "kubectl-canary promote sts/db",
                "give the size to grow sts/db's canary",
            ),
            (
                "kubectl-canary abort ds/a --recover",
                "does not take --recover",
            ),
            (
                "kubectl-canary analyze sts/db --report r.html",
                "does not take --report; it takes --observe, --wait, the analysis flags",
            ),
            (
                "kubectl-canary plan sts/db --explain",
                "does not take --explain; it takes --canary",
            ),
            (
                "kubectl-canary report ds/a",
                "`report` works on Deployments only for now",
            ),
        ];
        for (line, says) in refusals {
            let error = resolve(line).unwrap_err().to_string();
            assert!(error.contains(says), "{line}: {error}");
        }
    }
}
