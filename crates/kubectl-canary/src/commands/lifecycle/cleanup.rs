//! What promote and abort do when no canary runs: a finished canary's seal taken off,
//! Services a canary left pinned put back.

use canary_core::seal::SEAL_ANNOTATION;
use canary_core::traffic::Release;
use canary_kube::engine::Engine;
use canary_kube::error::CanaryError;
use canary_kube::traffic;

use crate::config::{Config, OutputFormat};
use crate::exit_code;
use crate::output::{CommandOutcome, released_text};

use super::{print_result, require_change_rights};

/// No record, but the seal of a finished canary is still on the Deployment (the last step
/// of a promotion or rollback did not run): takes it off, so the Deployment's annotations
/// are as they were before the canary.
pub(super) async fn finish_cleanup(
    config: &Config,
    engine: &Engine,
    name: &str,
) -> Result<i32, CanaryError> {
    require_change_rights(engine, "kubectl canary", false).await?;
    release_pins(config, engine, Release::All, false).await?;
    engine.remove_seal().await?;
    let message = format!(
        "no canary is running; removed the {SEAL_ANNOTATION} annotation a finished canary left on the Deployment"
    );
    print_result(
        config,
        "abort",
        name,
        CommandOutcome::SealRemoved,
        message,
        None,
    );
    Ok(exit_code::OK)
}

/// Releases this Deployment's pins on the Services in front of it (found on the Services
/// themselves, see `canary_kube::traffic`) and says what was done; that Services could not
/// be listed only when pins are `expected`.
pub(super) async fn release_pins(
    config: &Config,
    engine: &Engine,
    release: Release,
    expected: bool,
) -> Result<(), CanaryError> {
    let uid = engine.deployment_uid().await?;
    let mut released = traffic::release(engine.client(), engine.namespace(), &uid, release).await?;
    released.services_hidden &= expected;
    if matches!(config.output, OutputFormat::Table | OutputFormat::Wide) {
        let what = match release {
            Release::Selector => "selects every pod of the Deployment again (canary pods included)",
            Release::All => "put back exactly as it was before the canary",
        };
        print!("{}", released_text(&released, what));
    }
    Ok(())
}

/// No canary, but Services still pinned by one (a start interrupted before it changed the
/// Deployment, or a promotion or rollback interrupted after deleting its record): puts
/// them back; without any, "no canary".
pub(super) async fn release_leftover_pins(
    config: &Config,
    engine: &Engine,
    name: &str,
    command: &'static str,
) -> Result<i32, CanaryError> {
    let uid = engine.deployment_uid().await?;
    if traffic::pins(engine.client(), engine.namespace(), &uid)
        .await?
        .is_empty()
    {
        return Err(engine.no_canary());
    }
    require_change_rights(engine, "kubectl canary", false).await?;
    release_pins(config, engine, Release::All, true).await?;
    print_result(
        config,
        command,
        name,
        CommandOutcome::ServicesRestored,
        "no canary is running; put back the Services a finished or interrupted canary had left pinned"
            .to_string(),
        None,
    );
    Ok(exit_code::OK)
}
