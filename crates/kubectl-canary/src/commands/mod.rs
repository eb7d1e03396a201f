//! One module per command.

pub mod analyze;
pub mod lifecycle;
pub mod start;
pub mod status;
