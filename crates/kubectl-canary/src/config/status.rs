//! `status`'s flags, resolved.

use crate::cli::StatusArgs;

/// What `status` runs with.
#[derive(Debug, Clone)]
pub struct StatusConfig {
    /// The Deployment's name.
    pub deployment: String,
    /// `--watch`: keep printing as things change.
    pub watch: bool,
}

impl From<&StatusArgs> for StatusConfig {
    fn from(args: &StatusArgs) -> Self {
        Self {
            deployment: args.target.name.clone(),
            watch: args.watch,
        }
    }
}
