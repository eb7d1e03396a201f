//! The next change towards a goal, decided on what is read now: what `--dry-run` shows.

use canary_core::machine::{Decision, Goal, decide};
use canary_core::record::CanaryRecord;

use crate::engine::Engine;
use crate::error::Result;
use crate::workload::Workload;

/// What the state machine would do next for `record` towards `goal`, on the Deployment as it
/// is now (a dry run: nothing is written).
pub async fn next_decision(engine: &Engine, record: &CanaryRecord, goal: Goal) -> Result<Decision> {
    let view = engine.view().await?;
    Ok(decide(record, goal, &Workload::observation(&view, record)))
}
