//! What a command wants the Deployment to reach. Both the record (whose phase works towards
//! a goal) and the state machine (which decides the next step towards one) use it, so it
//! lives apart from either.

use serde::{Deserialize, Serialize};

/// What a command wants the Deployment to reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "goal", rename_all = "camelCase")]
pub enum Goal {
    /// Exactly `pods` canary pods beside the stable ones, paused (the brake is on only while the controller rolls towards them).
    Hold {
        /// Canary pods.
        pods: i32,
    },
    /// The new version on every pod, the Deployment's own settings back.
    PromoteFull,
    /// The stable version on every pod, the Deployment's own settings back.
    Abort,
}
