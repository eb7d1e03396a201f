//! The flags of a StatefulSet or DaemonSet canary (`start`, `status`, `promote`, `abort` of
//! `sts/NAME` or `ds/NAME`), resolved. Those kinds take a subset of a Deployment's flags; a
//! flag given for one that it does not take is refused by name, before anything is read.

use clap::ArgMatches;
use clap::parser::ValueSource;

use canary_core::image::ImageChange;
use canary_core::rollout_math::CanarySize;
use canary_core::target::{WorkloadKind, WorkloadRef};

use clap::CommandFactory;

use crate::cli::{Cli, Command};

/// What a StatefulSet or DaemonSet command does.
#[derive(Debug, Clone, PartialEq)]
pub enum KindAction {
    /// `start`: the new images, the size, and for a DaemonSet the nodes to choose from.
    Start {
        /// `CONTAINER=IMAGE`.
        images: Vec<ImageChange>,
        /// `--canary`.
        size: CanarySize,
        /// `--nodes SELECTOR` (DaemonSets).
        nodes: Option<String>,
    },
    /// `status`.
    Status,
    /// `promote --canary SIZE` (`Some`) or `--full` (`None`).
    Promote(Option<CanarySize>),
    /// `abort`.
    Abort,
}

/// A StatefulSet or DaemonSet command, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct KindConfig {
    /// The workload.
    pub target: WorkloadRef,
    /// What to do.
    pub action: KindAction,
}

/// Why a StatefulSet or DaemonSet command was refused before it ran.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KindConfigError {
    /// A command these kinds do not have yet.
    #[error(
        "`{command}` works on Deployments only for now; a canary of {target} takes start, status, promote and abort; nothing was changed"
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
    /// A bare `promote`: these kinds have no approval gates.
    #[error(
        "give the size to grow {target}'s canary to (--canary 3 or --canary 50%) or --full; nothing was changed"
    )]
    NoPromoteSize {
        /// The workload.
        target: String,
    },
}

/// The flags (clap's ids) each command takes for these kinds, besides the global ones.
fn allowed(command: &Command, kind: WorkloadKind) -> &'static [&'static str] {
    match (command, kind) {
        (Command::Start(_), WorkloadKind::DaemonSet) => &["target", "images", "canary", "nodes"],
        (Command::Start(_), _) => &["target", "images", "canary"],
        (Command::Promote(_), _) => &["target", "canary", "full"],
        _ => &["target"],
    }
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
            Command::Start(_) | Command::Status(_) | Command::Promote(_) | Command::Abort(_)
        ) {
            return Err(KindConfigError::Command {
                command: command.name(),
                target: named,
            });
        }
        let sub = matches
            .subcommand_matches(command.name())
            .unwrap_or(matches);
        let takes = allowed(command, target.kind);
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
                !takes.contains(id) && !GLOBAL.contains(id) && !groups.iter().any(|g| g == id)
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
                allowed: takes
                    .iter()
                    .filter(|id| !["target", "images"].contains(id))
                    .map(|id| format!("--{id}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let action = match command {
            Command::Start(args) => KindAction::Start {
                images: args.images.clone(),
                size: args.run.canary,
                nodes: args.nodes.clone(),
            },
            Command::Status(_) => KindAction::Status,
            Command::Promote(args) if args.full => KindAction::Promote(None),
            Command::Promote(args) => match args.canary {
                Some(size) => KindAction::Promote(Some(size)),
                None => return Err(KindConfigError::NoPromoteSize { target: named }),
            },
            _ => KindAction::Abort,
        };
        Ok(Self {
            target: target.clone(),
            action,
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
                images: vec![ImageChange::parse("db=db:2").unwrap()],
                size: CanarySize::Pods(2),
                nodes: None
            }
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
                "kubectl-canary start sts/db db=db:2 --dry-run --auto",
                "sts/db: a canary of a StatefulSet does not take --auto, --dry-run; it takes --canary (and",
            ),
            (
                "kubectl-canary start sts/db db=db:2 --nodes a=b",
                "does not take --nodes",
            ),
            (
                "kubectl-canary start ds/a a=a:2 --mode replace",
                "a canary of a DaemonSet does not take --mode; it takes --canary, --nodes",
            ),
            (
                "kubectl-canary status sts/db --watch",
                "does not take --watch",
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
                "kubectl-canary analyze sts/db --http-check :80/",
                "`analyze` works on Deployments only for now",
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
