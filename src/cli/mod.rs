//! The command line: `serve`, the admin commands that work directly on the database, and the
//! client commands that sign requests to a running vault.

/// `println!` that returns the write's error, a closed pipe marked as such, instead of
/// panicking: every line a command prints goes through it ([`output`]).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::output::line(format_args!($($arg)*))
    };
}

mod admin;
mod audit;
mod blob;
mod client;
mod loadgen;
mod open;
mod output;
mod recipients;
mod reshare;
mod seal;
mod subject;
mod witness;

use crate::config::{Config, ConfigError};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

pub use client::{Body, ClientAuth, VaultClient};
pub use output::closed as stdout_closed;

#[derive(Debug, Parser)]
#[command(
    name = "data-vault",
    version,
    about = "Multi-tenant vault for client-encrypted artifacts"
)]
pub struct Cli {
    /// Configuration file (TOML); every key may be overridden by DATA_VAULT_<SECTION>__<KEY>.
    #[arg(long, global = true, env = "DATA_VAULT_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the vault server (embedded SQLite by default).
    Serve,
    /// Bootstrap administration, directly on the configured database.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Store, fetch, inspect, list and delete blobs on a running vault.
    #[command(subcommand)]
    Blob(blob::BlobCommand),
    /// Data-subject requests on a running vault: export your data, erase a principal's.
    #[command(subcommand)]
    Subject(subject::SubjectCommand),
    /// Publish your age recipients and look up the recipient directory on a running vault.
    #[command(subcommand)]
    Recipients(recipients::RecipientsCommand),
    /// Check the audit log: `verify` directly on the configured database; `witness` and
    /// `prove` against a running vault.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Load-test a running vault with signed requests (see docs/performance.md).
    Loadgen(loadgen::LoadArgs),
}

impl Cli {
    /// Commands that run a server log at info; client and admin commands only warn.
    pub fn default_log_level(&self) -> &'static str {
        match self.command {
            // sqlx reports every statement's notices at info; its warnings are enough.
            Command::Serve => "info,sqlx=warn",
            _ => "warn",
        }
    }
}

/// Runs `cli` with its configuration, loaded once by the caller. Only the commands that need
/// a configuration fail on one that does not load.
pub async fn run(cli: Cli, config: Result<Config, ConfigError>) -> anyhow::Result<()> {
    let file = cli.config.as_deref();
    match cli.command {
        Command::Serve => {
            let config = config?;
            let app = crate::startup::Application::build(&config).await?;
            tracing::info!(
                api = %app.api_addr()?,
                tls = app.serves_tls(),
                metrics = %app.metrics_addr()?,
                database = %redact_url(&config.storage.database_url),
                "data-vault listening"
            );
            app.run_until(crate::startup::shutdown_signal()).await
        }
        Command::Admin(command) => admin::run(&config?, command).await,
        Command::Blob(command) => {
            reach_configured_server(config, file)?;
            blob::run(command).await
        }
        Command::Recipients(command) => {
            reach_configured_server(config, file)?;
            recipients::run(command).await
        }
        Command::Subject(command) => {
            reach_configured_server(config, file)?;
            subject::run(command).await
        }
        Command::Audit(command) => {
            let config = config?;
            blob::set_default_url(&config.server);
            audit::run(&config, command).await
        }
        Command::Loadgen(args) => loadgen::run(args).await,
    }
}

/// Client commands reach the API address of the configuration they are given, so `--config`
/// means the same server for `admin` and `blob` commands. Without `--config` they need none:
/// `--url` (or the default address) is enough, so a configuration that does not load is
/// only an error when it was asked for.
fn reach_configured_server(
    config: Result<Config, ConfigError>,
    file: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    match config {
        Ok(config) => blob::set_default_url(&config.server),
        Err(e) if file.is_some() => return Err(e.into()),
        Err(_) => {}
    }
    Ok(())
}

/// A database URL fit for the log: any password replaced.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("REDACTED"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}
