//! Someone else's pod template on a StatefulSet or DaemonSet whose canary is recorded on it:
//! what it is, and how the canary answers without fighting it (as a Deployment's does,
//! [`crate::foreign`]).
//!
//! - the recorded stable template back (`kubectl apply` of the old manifest, a GitOps
//!   self-heal, `kubectl rollout undo`): the canary is aborted the tool's way (its own brake
//!   released, a StatefulSet's forced rollback, a DaemonSet's canary pods deleted) and
//!   closed; nothing to undo;
//! - another version: the canary's brake is released (a StatefulSet's partition, a
//!   DaemonSet's updateStrategy back as recorded), so that version rolls out as the
//!   workload's own strategy says, and the canary is closed. The tool never writes a template
//!   over theirs.

use serde::Serialize;
use serde_json::Value;

/// Someone else's pod template, as the canary sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ForeignTemplate {
    /// The recorded stable template is back although the canary was set.
    RevertedToStable,
    /// A template that is neither the stable nor the canary one.
    ReplacedByOtherVersion,
}

impl ForeignTemplate {
    /// What the canary did about it, for `workload` (`sts/db`), in words.
    pub fn explain(self, workload: &str) -> String {
        match self {
            Self::RevertedToStable => format!(
                "someone else put the stable pod template of {workload} back during the canary: the canary was \
                 aborted (every pod on the stable revision, the workload's own update strategy back) and is \
                 closed; nothing to undo"
            ),
            Self::ReplacedByOtherVersion => format!(
                "someone else set another pod template on {workload} during the canary: its brake was released \
                 (the workload's own update strategy back) so that their version rolls out as the workload's \
                 strategy says, and the canary is closed; the tool did not write over their template"
            ),
        }
    }
}

/// Someone else's template, if `observed` is one: `original` and `canary` are the recorded
/// templates, `recorded` whether this canary's record is on the workload (written with the
/// canary template, so the original template back means someone put it back) and
/// `aborting` whether the recorded goal is an abort (then the original template is the
/// abort's own doing).
///
/// ```
/// use canary_core::kind_machines::foreign::{ForeignTemplate, foreign_template};
/// use serde_json::json;
///
/// let (v1, v2, v3) = (json!({"image": "1"}), json!({"image": "2"}), json!({"image": "3"}));
/// assert_eq!(foreign_template(&v1, &v2, &v2, true, false), None);
/// assert_eq!(foreign_template(&v1, &v2, &v1, true, false), Some(ForeignTemplate::RevertedToStable));
/// assert_eq!(foreign_template(&v1, &v2, &v1, false, false), None, "a start not yet written");
/// assert_eq!(foreign_template(&v1, &v2, &v1, true, true), None, "an abort's own revert");
/// assert_eq!(foreign_template(&v1, &v2, &v3, true, false), Some(ForeignTemplate::ReplacedByOtherVersion));
/// ```
pub fn foreign_template(
    original: &Value,
    canary: &Value,
    observed: &Value,
    recorded: bool,
    aborting: bool,
) -> Option<ForeignTemplate> {
    if observed != original && observed != canary {
        Some(ForeignTemplate::ReplacedByOtherVersion)
    } else if observed == original && recorded && !aborting {
        Some(ForeignTemplate::RevertedToStable)
    } else {
        None
    }
}
