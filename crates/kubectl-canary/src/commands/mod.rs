//! One module per command. Commands never import each other: what two share lives in
//! `canary-kube` (reads and writes), `output` (rendering) or `exit_code`.

pub mod analyze;
pub mod completion;
pub mod kinds;
pub mod lifecycle;
pub mod man;
pub mod plan;
pub mod report;
pub mod shell;
pub mod start;
pub mod status;
