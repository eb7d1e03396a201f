//! `start` around the engine's drive: the Services in front of the Deployment pinned
//! before it changes (and, for sticky sessions, the dataplane given its time), and what an
//! interrupted or failed start leaves: either nothing changed (the record dropped, the
//! Services put back) or a recorded, paused canary.

use std::time::Duration;

use canary_core::traffic::{Release, TrafficOptions};

use crate::engine::Engine;
use crate::error::{CanaryError, Result};
use crate::traffic::{self, FrontService, Released};
use crate::trust::CanaryState;

/// A pinning of start's Services that failed, with the pins it had made put back.
#[derive(Debug)]
pub struct PinFailed {
    /// Why it failed.
    pub error: CanaryError,
    /// The Services put back, if any were.
    pub released: Option<Released>,
}

/// Pins `services` (found and checked by [`traffic::plan_for_start`]) for the Deployment
/// with UID `uid`, before the Deployment is changed: no canary pod is ever Ready behind an
/// unpinned Service. Each Service records what it had in its own annotation, in the same
/// write. Returns the Services pinned; on a failure the pins made are put back.
pub async fn pin_services(
    engine: &Engine,
    uid: &str,
    options: TrafficOptions,
    stable_hash: &str,
    services: &[FrontService],
) -> std::result::Result<Vec<String>, Box<PinFailed>> {
    let pinned = traffic::pin_all(
        engine.client(),
        engine.namespace(),
        engine.name(),
        uid,
        options,
        stable_hash,
        services,
    )
    .await;
    match pinned {
        Ok(pinned) => Ok(pinned),
        Err(error) => Err(Box::new(PinFailed {
            error,
            released: release_after_failed_start(engine, uid).await,
        })),
    }
}

/// Sticky sessions: lets kube-proxy program the Services' affinity before any canary pod
/// exists (so a client's first choice is already kept), then names the Ingresses that
/// route to `pinned` Services (an ingress controller balancing to pod IPs ignores
/// sessionAffinity), as (ingress, service).
pub async fn settle_sticky(engine: &Engine, pinned: &[String]) -> Result<Vec<(String, String)>> {
    // A fixed wait, not a condition: kube-proxy programs the affinity from the Service
    // within its sync period (`--iptables-min-sync-period`, 1 s by default), and nothing in
    // the API says a node's kube-proxy has done so (the Service and its EndpointSlices do
    // not change with affinity; kube-proxy reports its syncs only in its own metrics, on
    // each node). It runs before any canary pod exists, so it only delays the start.
    tokio::time::sleep(traffic::SWITCH_SETTLE).await;
    traffic::ingresses_bypassing(engine.client(), engine.namespace(), pinned).await
}

/// What a start interrupted by a signal left, once settled.
#[derive(Debug)]
pub enum InterruptedStart {
    /// Nothing of the Deployment was changed. `released`: the Services this start had
    /// pinned, put back (only when there was something to put back).
    NothingChanged {
        /// The Services put back.
        released: Option<Released>,
    },
    /// The record was written but no update of the Deployment confirms it: the record was
    /// deleted. `released`: the Services this start had pinned, put back.
    RecordDiscarded {
        /// The Services put back.
        released: Option<Released>,
    },
    /// The Deployment was changed: the canary is held, recorded and paused at `pods`.
    Held {
        /// The canary pods held.
        pods: i32,
    },
}

/// Settles a start interrupted by a signal into a safe state: nothing changed, or a
/// recorded, paused canary. `pinned`: the Deployment's UID when this start pins Services
/// (they are put back with the record).
pub async fn settle_interrupted(
    engine: &Engine,
    pinned: Option<&str>,
    timeout: Duration,
) -> Result<InterruptedStart> {
    // The step the signal cancelled may have written without reading the answer.
    engine.interrupted();
    let stored = match engine.canary_state().await?.0 {
        CanaryState::None { .. } => {
            let mut released = None;
            if let Some(uid) = pinned {
                let put_back = release_all(engine, uid).await?;
                if !put_back.restored.is_empty() || !put_back.changed_by_others.is_empty() {
                    released = Some(put_back);
                }
            }
            return Ok(InterruptedStart::NothingChanged { released });
        }
        // No update of the Deployment was made (none carries the seal): drop the record.
        CanaryState::Unconfirmed {
            stored,
            braked: false,
        } => {
            engine.discard_record(&stored).await?;
            let released = match pinned {
                Some(uid) => Some(release_all(engine, uid).await?),
                None => None,
            };
            return Ok(InterruptedStart::RecordDiscarded { released });
        }
        CanaryState::Verified { stored, .. } => stored,
        other => return Err(other.error(engine.name(), &engine.store().name())),
    };
    let pods = engine.hold_where_recorded(stored, timeout).await?;
    Ok(InterruptedStart::Held { pods })
}

/// A start that failed before any update of the Deployment (another canary took the lock,
/// the API server refused the record...) takes its Service pins back off; once the
/// Deployment carries the canary, the pins stay with it (promote or abort releases them).
/// Returns the Services put back, if it put any back.
pub async fn release_after_failed_start(engine: &Engine, uid: &str) -> Option<Released> {
    if matches!(
        engine.canary_state().await.map(|s| s.0),
        Ok(CanaryState::None { .. })
    ) {
        release_all(engine, uid).await.ok()
    } else {
        None
    }
}

async fn release_all(engine: &Engine, uid: &str) -> Result<Released> {
    traffic::release(engine.client(), engine.namespace(), uid, Release::All).await
}
