//! The `vigil` binary: parse the command line, initialise logging, dispatch.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use vigil::cli::{Cli, Command};
use vigil::commands::{bench, serve, token, watch};

#[actix_web::main]
async fn main() -> ExitCode {
    if let Some(name) = setting_not_utf8() {
        eprintln!("vigil: {name}: not valid UTF-8");
        return ExitCode::from(2);
    }
    let cli = Cli::parse();
    if let Err(message) = check_log_filter(cli.log.as_deref()) {
        eprintln!("vigil: {message}");
        return ExitCode::FAILURE;
    }
    match &cli.log {
        Some(filter) => env_logger::Builder::new().parse_filters(filter).init(),
        None => {
            env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
                .init();
        }
    }
    let command = cli.command.unwrap_or(Command::Serve(cli.serve));
    if let Command::Bench(args) = &command
        && let Some(problem) = bench::usage_problem(args)
    {
        // The bench's own usage line, not the top-level command's.
        let mut cli = Cli::command();
        let bench = cli.find_subcommand_mut("bench").map(std::mem::take);
        bench
            .unwrap_or(cli)
            .bin_name("vigil bench")
            .error(clap::error::ErrorKind::ArgumentConflict, problem)
            .exit();
    }
    let result: Result<(), String> = match command {
        Command::Serve(args) => serve::run(args).await.map_err(|e| e.to_string()),
        Command::Migrate(args) => migrate(args).await,
        Command::Token(args) => token::mint(&args).map(|t| vigil::stdout::line_or_exit(&t)),
        Command::Watch(args) => watch::run(args).await.map_err(|e| e.to_string()),
        Command::Bench(args) => bench::run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("vigil: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The first environment variable Vigil reads whose value is not UTF-8: clap said only
/// "invalid UTF-8 was detected in one or more arguments" without naming it, and a
/// `RUST_LOG` that is not UTF-8 was ignored, the default level used instead.
fn setting_not_utf8() -> Option<String> {
    fn env_names(command: &clap::Command, into: &mut Vec<String>) {
        for arg in command.get_arguments() {
            if let Some(name) = arg.get_env().and_then(|n| n.to_str()) {
                into.push(name.to_owned());
            }
        }
        for sub in command.get_subcommands() {
            env_names(sub, into);
        }
    }
    let mut names = vec!["RUST_LOG".to_owned()];
    env_names(&Cli::command(), &mut names);
    names
        .into_iter()
        .find(|name| std::env::var_os(name).is_some_and(|value| value.to_str().is_none()))
}

/// Refuses a `RUST_LOG` / `--log` that env_logger would ignore or misread (see
/// `vigil::log_spec`), naming the setting, like every other bad setting.
fn check_log_filter(flag: Option<&str>) -> Result<(), String> {
    let (spec, name) = match flag {
        Some(spec) => (spec.to_owned(), "--log"),
        None => match std::env::var("RUST_LOG") {
            Ok(spec) => (spec, "RUST_LOG"),
            Err(_) => return Ok(()),
        },
    };
    match vigil::log_spec::problem(&spec) {
        Some(problem) => Err(format!("{name}: {problem}")),
        None => Ok(()),
    }
}

async fn migrate(args: vigil::cli::MigrateArgs) -> Result<(), String> {
    let config = vigil::config::database_config(&args.database).map_err(|e| e.to_string())?;
    // A damaged file (the restore step's concern above all) is refused by `open_database`,
    // before migrations write to it and while a backup can still be copied again.
    let (pool, applied) = vigil::startup::open_database(&config)
        .await
        .map_err(|e| e.to_string())?;
    if applied.is_empty() {
        vigil::stdout::line_or_exit("no pending migrations");
    }
    for version in applied {
        vigil::stdout::line_or_exit(&format!("applied {version}"));
    }
    if let Some(count) = args.skip_ids {
        let (before, after) = actix_web::web::block(move || {
            let mut conn = pool.get().map_err(|e| e.to_string())?;
            let before = vigil::db::events::head(&mut conn).map_err(|e| e.to_string())?;
            let after = vigil::db::events::skip_ids(&mut conn, i64::from(count))
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((before, after))
        })
        .await
        .map_err(|e| e.to_string())??;
        vigil::stdout::line_or_exit(&format!(
            "event log head moved from {before} to {after}: the next event is {}; \
             restart any instance that was running on this database (it keeps its old head)",
            after + 1
        ));
    }
    Ok(())
}
