//! Hooks the fault tests aim with, compiled in only with the `test-hooks` feature (a release
//! build has none: every function here answers as if no test were running).

/// The environment variable naming a file: while it exists, the GitOps controller does not
/// take a recorded step (`promoting` from k to more pods): the step waits, recorded, so a
/// fault test can strike while a step is under way and then let it go
/// (`crates/canary-controller/tests/gitops_faults.rs`, the stepping cells). Without it the
/// step's phase lasts the few milliseconds between two of the controller's writes.
pub const HOLD_STEPS_WHILE: &str = "KUBECTL_CANARY_HOLD_STEPS_WHILE";

/// Whether a recorded step must wait (see [`HOLD_STEPS_WHILE`]); always `false` without the
/// `test-hooks` feature.
pub fn steps_held() -> bool {
    #[cfg(feature = "test-hooks")]
    if let Some(path) = std::env::var_os(HOLD_STEPS_WHILE) {
        return std::path::Path::new(&path).exists();
    }
    false
}
