//! The `warden` binary: reads configuration and serves, prints the OpenAPI document, or makes
//! an admin account.

use std::process::ExitCode;

use clap::Parser;
use warden_app::config::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    // A missing .env is normal; a broken one is worth knowing about. Only the working
    // directory's: dotenvy's default would also search every parent directory.
    if let Err(err) = dotenvy::from_path(".env")
        && !err.not_found()
    {
        eprintln!("error: cannot read .env: {err}");
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve { no_migrate: false }) {
        Command::Openapi => {
            println!("{}", warden_app::api::openapi_json());
            ExitCode::SUCCESS
        }
        Command::CreateAdmin { email } => {
            warden_app::telemetry::init(cli.config.server.log_format);
            match warden_app::cli::create_admin(&cli.config, &email, warden_app::cli::read_password)
                .await
            {
                Ok(outcome) => {
                    println!("{outcome}");
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("error: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve { no_migrate } => {
            warden_app::telemetry::init(cli.config.server.log_format);
            match warden_app::serve(cli.config, !no_migrate).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!(error = format!("{err:#}"), "warden cannot run");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Migrate => report(warden_app::cli::migrate(&cli.config).await),
        Command::CheckConfig => report(warden_app::cli::check_config(&cli.config).await),
    }
}

/// Prints what a command did, or why it failed, and the exit code for it.
fn report(result: anyhow::Result<String>) -> ExitCode {
    match result {
        Ok(done) => {
            println!("{done}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
