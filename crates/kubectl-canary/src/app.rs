//! Parses the command line, sets up logging and the runtime, runs the command and maps
//! every outcome to a documented exit code.

use canary_kube::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches};

use crate::cli::{Cli, Command};
use crate::config::{CommandConfig, Config};
use crate::{aftermath, commands, exit_code, signals};

/// Runs the CLI; returns the process exit code.
pub fn run() -> i32 {
    // Read once: parsed here, and shown as typed in the canary's history.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // The matches are kept: a StatefulSet's or DaemonSet's command refuses by name the
    // flags it does not take, which only the matches tell from their defaults.
    let parsed = Cli::command()
        .try_get_matches_from(&args)
        .and_then(|matches| Cli::from_arg_matches(&matches).map(|cli| (cli, matches)));
    let (cli, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => {
            let _ = error.print();
            return exit_code::for_cli_error(&error);
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
    // argv[0] is wherever the binary is (or kubectl's path to the plugin): shown as typed.
    let command_line: Vec<String> = std::iter::once("kubectl canary".to_string())
        .chain(
            args.iter()
                .skip(1)
                .map(|a| a.to_string_lossy().into_owned()),
        )
        .collect();
    runtime.block_on(run_command(&cli, &matches, &command_line))
}

/// Resolves the configuration (the kubeconfig first, then the command's flags, as a
/// command would meet them) and runs the command.
async fn run_command(cli: &Cli, matches: &clap::ArgMatches, command_line: &[String]) -> i32 {
    // Shell integration needs no cluster, so no kubeconfig either.
    if let Some(code) = commands::shell::run(&cli.command) {
        return code;
    }
    // An offline plan needs no cluster, so no kubeconfig either.
    if let Command::Plan(args) = &cli.command
        && args.target.is_none()
    {
        return match commands::plan::run_offline(&args.into(), cli.global.output).await {
            Ok(code) => code,
            Err(error) => fail(&error, error.kind()),
        };
    }
    let config = match Config::resolve(&cli.global).await {
        Ok(config) => config,
        Err(error) => return fail(&error, error.kind()),
    };
    signals::install(signals::LeftBehind {
        ledger: config.ledger.clone(),
        workload: cli.command.workload().map(ToString::to_string),
        namespace: config.namespace.clone(),
    });
    let command = match CommandConfig::resolve(&cli.command, matches) {
        Ok(command) => command,
        Err(error) => return fail(&error, error.kind()),
    };
    let result = match &command {
        CommandConfig::Start(start) => commands::start::run(&config, start).await,
        CommandConfig::Status(status) => match commands::status::run(&config, status).await {
            Ok(commands::status::StatusOutcome::Exit(code)) => Ok(code),
            Ok(commands::status::StatusOutcome::Then(action)) => {
                run_from_live_view(&config, &status.deployment, action).await
            }
            Err(error) => Err(error),
        },
        CommandConfig::Promote(promote) => commands::lifecycle::promote(&config, promote).await,
        CommandConfig::Abort(abort) => commands::lifecycle::abort(&config, abort).await,
        CommandConfig::Analyze(analyze) => commands::analyze::run(&config, analyze).await,
        CommandConfig::Plan(plan) => commands::plan::run(&config, plan).await,
        CommandConfig::Apply(apply) => commands::start::apply::run(&config, apply).await,
        CommandConfig::Report(report) => commands::report::run(&config, report).await,
        CommandConfig::Kind(kind) => commands::kinds::run(&config, kind).await,
    };
    note_in_history(cli, &config, &command, command_line, &result).await;
    write_requested_report(&config, &command).await;
    match result {
        Ok(code) => code,
        Err(error) => {
            let code = fail(&error, error.kind());
            for line in aftermath::explain(cli, &config, error.kind()).await {
                eprintln!("{line}");
            }
            code
        }
    }
}

/// Runs what the user confirmed in `status --watch`'s live view, through the same code as
/// the typed command (`promote --full`, `abort`), and notes it in the canary's history.
async fn run_from_live_view(
    config: &Config,
    deployment: &str,
    action: crate::output::live::Action,
) -> Result<i32, canary_kube::error::CanaryError> {
    use crate::config::lifecycle::{AbortConfig, PromoteConfig};
    use crate::output::live::Action;
    let (result, words) = match action {
        Action::PromoteFull => {
            println!("promote --full deploy/{deployment} (confirmed in the live view)");
            let promote = PromoteConfig {
                deployment: deployment.to_string(),
                canary: None,
                ask: canary_kube::ops::promote::PromoteAsk::Full,
                dry_run: false,
                wait: true,
                notify: Default::default(),
            };
            (
                commands::lifecycle::promote(config, &promote).await,
                vec!["promote", "--full"],
            )
        }
        Action::Abort => {
            println!("abort deploy/{deployment} (confirmed in the live view)");
            let abort = AbortConfig {
                deployment: deployment.to_string(),
                dry_run: false,
                wait: true,
                recover: false,
                notify: Default::default(),
            };
            (
                commands::lifecycle::abort(config, &abort).await,
                vec!["abort"],
            )
        }
    };
    let code = match &result {
        Ok(code) => *code,
        Err(error) => exit_code::for_error(error.kind()),
    };
    let mut command_line = vec![
        "kubectl canary".to_string(),
        "-n".to_string(),
        config.namespace.clone(),
    ];
    command_line.extend(words.iter().map(|w| w.to_string()));
    command_line.push(format!("deploy/{deployment}"));
    command_line.push("# confirmed in status --watch".to_string());
    note_command(config, deployment, &command_line, code).await;
    result
}

/// Adds one command line and its exit code to the canary's history; a failure to note it
/// is a warning, never the command's failure.
async fn note_command(config: &Config, deployment: &str, command_line: &[String], code: i32) {
    let known = config.known.lock().ok().and_then(|mut k| k.take());
    if let Some(warning) = canary_kube::history::note_command(
        &config.client,
        &config.namespace,
        deployment,
        command_line,
        code,
        known,
    )
    .await
    {
        tracing::warn!("{warning}");
    }
}

/// Adds the command line and its exit code to the canary's history (for reports), for the
/// commands that act on a canary; dry runs, read-only commands and failures that wrote
/// nothing (every refusal) are not noted (they change nothing, the history included).
async fn note_in_history(
    cli: &Cli,
    config: &Config,
    command: &CommandConfig,
    command_line: &[String],
    result: &Result<i32, canary_kube::error::CanaryError>,
) {
    let acts = match command {
        CommandConfig::Start(start) => !start.run.dry_run,
        CommandConfig::Promote(promote) => !promote.dry_run,
        CommandConfig::Abort(abort) => !abort.dry_run,
        CommandConfig::Analyze(_) => true,
        // Several Deployments: their canaries' commands are `apply`'s, not noted per Deployment.
        CommandConfig::Apply(_) => false,
        CommandConfig::Status(_) | CommandConfig::Plan(_) | CommandConfig::Report(_) => false,
        // A StatefulSet's or DaemonSet's canary has no history yet.
        CommandConfig::Kind(_) => false,
    };
    let Some(deployment) = aftermath::target(cli).filter(|_| acts) else {
        return;
    };
    let code = match result {
        // An API server that stopped answering would only make the note wait too.
        Err(error) if error.kind() == canary_kube::error::ErrorKind::Unreachable => return,
        // A refusal (or any failure before this run's first write) changes nothing, the
        // history included: noting it would be the one write of a command that promises none.
        Err(_) if config.ledger.is_empty() => return,
        Ok(code) => *code,
        Err(error) => exit_code::for_error(error.kind()),
    };
    note_command(config, deployment, command_line, code).await;
}

/// `--report FILE` of `analyze` and `start --auto`: the report, written once the command
/// (and its line in the history) is done, whatever its outcome.
async fn write_requested_report(config: &Config, command: &CommandConfig) {
    let (deployment, path) = match command {
        CommandConfig::Analyze(analyze) => (&analyze.deployment, &analyze.report),
        CommandConfig::Start(start) => (&start.deployment, &start.report),
        _ => return,
    };
    if let Some(path) = path {
        let engine =
            canary_kube::engine::Engine::new(&config.client, &config.namespace, deployment);
        match crate::output::report::save(&engine, path).await {
            Ok(message) => eprintln!("{message}"),
            Err(message) => eprintln!("error: {message}"),
        }
    }
}

/// Reports a failure on stderr; returns its exit code.
fn fail(error: &dyn std::fmt::Display, kind: ErrorKind) -> i32 {
    eprintln!("error: {error}");
    exit_code::for_error(kind)
}
