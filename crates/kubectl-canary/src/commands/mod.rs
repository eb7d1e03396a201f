//! One module per command.

pub mod lifecycle;
pub mod start;
pub mod status;
