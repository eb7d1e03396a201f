//! Parses the command line, sets up logging and the runtime, runs the command and maps
//! every outcome to a documented exit code.

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::config::Config;
use crate::{commands, exit_code};

/// Runs the CLI; returns the process exit code.
pub fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() {
                exit_code::USAGE
            } else {
                exit_code::OK
            };
            let _ = error.print();
            return code;
        }
    };
    let filter = match cli.global.verbose {
        // kube-client logs every 5xx answer as an error, including the pods' own 500s that
        // the HTTP analysis counts on purpose; commands report real failures themselves.
        0 => "warn,kube_client::client::builder=off",
        1 => "info,kubectl_canary=debug,canary_kube=debug",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KUBECTL_CANARY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return exit_code::ERROR;
        }
    };
    runtime.block_on(async {
        // An offline plan needs no cluster, so no kubeconfig either.
        if let Command::Plan(args) = &cli.command
            && args.target.is_none()
        {
            return match commands::plan::run_offline(args, cli.global.output).await {
                Ok(code) => code,
                Err(error) => {
                    eprintln!("error: {error}");
                    exit_code::for_error(error.kind())
                }
            };
        }
        let config = match Config::resolve(&cli.global).await {
            Ok(config) => config,
            Err(error) => {
                eprintln!("error: {error}");
                return exit_code::UNREACHABLE;
            }
        };
        let result = match &cli.command {
            Command::Start(args) => commands::start::run(&config, args).await,
            Command::Status(args) => commands::status::run(&config, args).await,
            Command::Promote(args) => commands::lifecycle::promote(&config, args).await,
            Command::Abort(args) => commands::lifecycle::abort(&config, args).await,
            Command::Analyze(args) => commands::analyze::run(&config, args).await,
            Command::Plan(args) => commands::plan::run(&config, args).await,
        };
        match result {
            Ok(code) => code,
            Err(error) => {
                eprintln!("error: {error}");
                exit_code::for_error(error.kind())
            }
        }
    })
}
