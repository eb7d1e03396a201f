//! A release of any pod template change: images, a manifest, patches, environment
//! variables, combined; what it changes, field by field, and why an input is refused.
//!
//! The canary's template comes only from the user's own input (the command line and the
//! files it names), never from the cluster beyond the live Deployment it starts from.

mod diff;
mod error;
mod input;
mod manifest;
mod patch;

pub use diff::{FieldChange, summarize, template_diff};
pub use error::ReleaseError;
pub use input::{EnvChange, ReleaseInput, desired_deployment, desired_workload};
pub use manifest::{Document, find_deployment, find_workload, parse_documents, parse_yaml};
pub use patch::{Patch, PatchType, apply_patch};

/// Checks that a release changes the pod template of `workload` (`deploy/web`), and
/// returns what it changes.
pub fn check_changes(
    workload: &str,
    original: &serde_json::Value,
    target: &serde_json::Value,
    from: &str,
) -> Result<Vec<FieldChange>, ReleaseError> {
    let changes = template_diff(original, target);
    if changes.is_empty() {
        return Err(ReleaseError::NoTemplateChange {
            workload: workload.to_string(),
            from: from.to_string(),
        });
    }
    Ok(changes)
}
