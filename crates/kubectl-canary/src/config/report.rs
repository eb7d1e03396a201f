//! `report`'s flags, resolved.

use std::path::PathBuf;

use crate::cli::ReportArgs;

/// What `report` runs with.
#[derive(Debug, Clone)]
pub struct ReportConfig {
    /// The Deployment's name.
    pub deployment: String,
    /// The HTML file to write ("-": stdout).
    pub out: PathBuf,
}

impl From<&ReportArgs> for ReportConfig {
    fn from(args: &ReportArgs) -> Self {
        Self {
            deployment: args.target.name.clone(),
            out: args.out.clone(),
        }
    }
}
