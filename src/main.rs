//! The `data-vault` binary: parse the command line, set up logging, run.

use clap::Parser;
use data_vault::cli::{run, stdout_closed, Cli};
use data_vault::config::LogFormat;
use std::io::IsTerminal;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_env("DATA_VAULT_LOG")
        .unwrap_or_else(|_| EnvFilter::new(cli.default_log_level()));
    // Loaded once, here, because the log's format is configuration; a configuration that
    // does not load is reported by the command that needs it (with the readable format).
    let config = data_vault::config::Config::load(cli.config.as_deref());
    let format = config.as_ref().map(|c| c.log.format).unwrap_or_default();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        // One object per line: the event's fields at the top level with the request span's
        // (request id, method, path) and the authentication span's (claimed principal).
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .init(),
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, config)) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away (`| head`): it has what it wanted, so this is
        // not a failure, and there is no one left to tell. Exit 0 quietly, as ripgrep does,
        // so that `set -o pipefail` scripts that take the first lines do not fail.
        Err(e) if stdout_closed(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
