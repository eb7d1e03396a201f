//! One module per command. Commands never import each other: what two share lives in
//! `canary-kube` (reads and writes), `output` (rendering) or `exit_code`.

pub mod analyze;
pub mod lifecycle;
pub mod plan;
pub mod start;
pub mod status;
