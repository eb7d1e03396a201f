//! `promote`'s and `abort`'s flags, resolved.

use canary_core::rollout_math::CanarySize;
use canary_kube::ops::promote::PromoteAsk;

use crate::cli::{AbortArgs, PromoteArgs};
use crate::config::notify::{NotifyConfig, NotifyFlagError};

/// What `promote` runs with.
#[derive(Debug, Clone)]
pub struct PromoteConfig {
    /// The Deployment's name.
    pub deployment: String,
    /// `--canary`: the size to grow to; `None` is `--full` (or, with neither, an approval).
    pub canary: Option<CanarySize>,
    /// What was asked: a size, `--full`, or (neither) the approval of an awaited step.
    pub ask: PromoteAsk,
    /// `--dry-run`: print the exact changes, change nothing.
    pub dry_run: bool,
    /// Wait for the rollout to finish (no `--no-wait`).
    pub wait: bool,
    /// `--notify`, `--report-url`.
    pub notify: NotifyConfig,
}

impl PromoteConfig {
    /// Resolves `promote`'s flags.
    pub fn resolve(args: &PromoteArgs) -> Result<Self, NotifyFlagError> {
        Ok(Self {
            deployment: args.target.name.clone(),
            canary: args.canary,
            ask: match (args.canary, args.full) {
                (Some(size), _) => PromoteAsk::Canary(size),
                (None, true) => PromoteAsk::Full,
                (None, false) => PromoteAsk::Approve,
            },
            dry_run: args.dry_run,
            wait: !args.no_wait,
            notify: NotifyConfig::resolve(&args.notify)?,
        })
    }
}

/// What `abort` runs with.
#[derive(Debug, Clone)]
pub struct AbortConfig {
    /// The Deployment's name.
    pub deployment: String,
    /// `--dry-run`: print the exact changes, change nothing.
    pub dry_run: bool,
    /// Wait for the canary pods to go (no `--no-wait`).
    pub wait: bool,
    /// `--recover`: roll back from the Deployment's seal and stable ReplicaSet alone,
    /// ignoring the record.
    pub recover: bool,
    /// `--notify`, `--report-url`.
    pub notify: NotifyConfig,
}

impl AbortConfig {
    /// Resolves `abort`'s flags.
    pub fn resolve(args: &AbortArgs) -> Result<Self, NotifyFlagError> {
        Ok(Self {
            deployment: args.target.name.clone(),
            dry_run: args.dry_run,
            wait: !args.no_wait,
            recover: args.recover,
            notify: NotifyConfig::resolve(&args.notify)?,
        })
    }
}
