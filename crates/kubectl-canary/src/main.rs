//! `kubectl canary`: exact, safe canary releases of plain Deployments.

mod aftermath;
mod app;
mod cli;
mod commands;
mod config;
mod exit_code;
mod notices;
mod output;
mod signals;

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(app::run() as u8)
}
