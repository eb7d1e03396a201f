//! `abort`: which case a canary state is. Rolling a verified canary back, recovering a
//! Deployment held without its record (or, with `--recover`, ignoring it), discarding a
//! record no update of the Deployment confirms, deleting an unreadable record of a
//! Deployment that carries no brake, finishing a cleanup left undone, or putting back
//! Services a finished canary left pinned.

use canary_core::seal::Seal;

use crate::engine::Engine;
use crate::error::Result;
use crate::observe::{DeploymentView, settings_of};
use crate::store::StoredRecord;
use crate::trust::{CanaryState, RecordRead, UnreadableRecord};

/// What `abort` does with the canary state it found.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // chosen once per command, never stored in bulk
pub enum AbortCase {
    /// A verified canary: roll it back.
    RollBack(StoredRecord),
    /// No usable record (missing, unreadable, tampered with `--recover`, or ignored with
    /// `--recover`): roll back from the seal and the stable ReplicaSet alone.
    Recover {
        /// The seal on the Deployment.
        seal: Seal,
        /// What was read of the record.
        record: RecordRead,
    },
    /// A record no update of the Deployment confirms: delete it, write nothing else.
    DiscardUnconfirmed(StoredRecord),
    /// An unreadable record beside a Deployment that carries no brake: delete it.
    DeleteUnreadable(UnreadableRecord),
    /// No record, but a finished canary's seal is still on: take it off.
    FinishCleanup,
    /// No record and no seal: put back Services a canary left pinned, if any.
    ReleaseLeftoverPins,
}

/// Chooses abort's case from the canary state (and the view it was read on). `recover`:
/// `--recover`; `dry_run`: a dry run has no cleanup to finish. Anything else is the state's
/// error (or "no canary").
pub fn abort_case(
    engine: &Engine,
    state: CanaryState,
    view: &DeploymentView,
    recover: bool,
    dry_run: bool,
) -> Result<AbortCase> {
    Ok(match state {
        CanaryState::Verified { stored, .. } if !recover => AbortCase::RollBack(stored),
        CanaryState::Verified { stored, seal } | CanaryState::Tampered { stored, seal, .. }
            if recover =>
        {
            AbortCase::Recover {
                seal,
                record: RecordRead::Decoded(stored),
            }
        }
        CanaryState::RecordLost { seal, unreadable } => AbortCase::Recover {
            seal,
            record: unreadable.map_or(RecordRead::Missing, RecordRead::Unreadable),
        },
        CanaryState::Unconfirmed {
            stored,
            braked: false,
        } => AbortCase::DiscardUnconfirmed(stored),
        CanaryState::Unreadable(unreadable) if !settings_of(&view.deployment).is_braked() => {
            AbortCase::DeleteUnreadable(unreadable)
        }
        CanaryState::None {
            leftover_seal: Some(_),
        } if !dry_run => AbortCase::FinishCleanup,
        CanaryState::None { .. } if !dry_run => AbortCase::ReleaseLeftoverPins,
        CanaryState::None { .. } => return Err(engine.no_canary()),
        other => return Err(other.error(engine.name(), &engine.store().name())),
    })
}
