//! One module per command.

pub mod analyze;
pub mod auto;
pub mod lifecycle;
pub mod plan;
pub mod start;
pub mod status;
