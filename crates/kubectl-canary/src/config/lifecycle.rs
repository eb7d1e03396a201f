//! `promote`'s and `abort`'s flags, resolved.

use canary_core::rollout_math::CanarySize;

use crate::cli::{AbortArgs, PromoteArgs};
use crate::config::notify::{NotifyConfig, NotifyFlagError};

/// What `promote` runs with.
#[derive(Debug, Clone)]
pub struct PromoteConfig {
    /// The Deployment's name.
    pub deployment: String,
    /// `--canary`: the size to grow to; `None` is `--full`.
    pub canary: Option<CanarySize>,
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
