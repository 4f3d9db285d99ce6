//! `data-vault audit ...`: offline checks of the audit log, directly on the database (`verify`,
//! which needs no master key: verifying a chain reveals nothing sealed), the log's verifier key
//! (`log-key`), and an outsider's checks over HTTP (`witness`, `prove`, in `witness.rs`).

use crate::config::Config;
use crate::service::verify_chain;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute hash chains; exits non-zero if any chain does not verify.
    Verify {
        /// Verify only this org's chain (default: every chain).
        #[arg(long)]
        org: Option<String>,
        /// Print one JSON object per chain.
        #[arg(long)]
        json: bool,
        /// Heads recorded earlier with `--json` (one object per line): each chain must still
        /// hold the recorded hash at the recorded length.
        #[arg(long)]
        expect_heads: Option<std::path::PathBuf>,
    },
    /// Print the log's verifier key (<name>+<key id>+<key>) from audit.log_key_file.
    LogKey,
    /// Fetch a chain's signed checkpoint, check its signature and its consistency with the
    /// checkpoint stored in FILE, then store it; exits non-zero, saying why, on any
    /// inconsistency (a truncated, rewritten or vanished chain).
    Witness {
        #[command(flatten)]
        connection: super::blob::Connection,
        /// The chain: system, org:<org id> or owner:<principal>.
        #[arg(long)]
        chain: String,
        /// Where the witness keeps the last checkpoint it accepted (created on first run).
        #[arg(long)]
        state: std::path::PathBuf,
        /// The verifier key to trust (default: the one pinned in the state; on first run,
        /// the server's, trusted on first use).
        #[arg(long)]
        log_key: Option<String>,
    },
    /// Query the audit events you may see on a running vault (one JSON event per line, newest
    /// first, as the API pages them), e.g. a purged blob's `blob.purged` proof: `audit events --blob-id ID`.
    Events {
        #[command(flatten)]
        connection: super::blob::Connection,
        #[command(flatten)]
        filter: EventsFilter,
    },
    /// Fetch and check the inclusion proof of event SEQ of a chain in its signed checkpoint.
    Prove {
        #[command(flatten)]
        connection: super::blob::Connection,
        #[arg(long)]
        chain: String,
        #[arg(long)]
        seq: u64,
        /// The event hash you hold (from your audit query): must be the one proved.
        #[arg(long)]
        hash: Option<String>,
        /// The verifier key to trust (default: the server's).
        #[arg(long)]
        log_key: Option<String>,
    },
}

/// The filters of `GET /api/v1/vault/audit` (docs/api.md); the server checks them.
#[derive(Debug, clap::Args)]
pub struct EventsFilter {
    #[arg(long)]
    blob_id: Option<String>,
    #[arg(long)]
    scope: Option<String>,
    #[arg(long)]
    requester: Option<String>,
    #[arg(long)]
    org: Option<String>,
    /// Stop after this many events (default: every page).
    #[arg(long)]
    limit: Option<u64>,
}

/// A head recorded by an earlier `audit verify --json`.
#[derive(serde::Deserialize)]
struct RecordedHead {
    chain: String,
    length: i64,
    head_hash: String,
}

/// Whether each recorded head is still in its chain; returns the chains where it is not.
async fn check_recorded_heads(
    store: &dyn crate::store::Store,
    path: &std::path::Path,
) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let mut moved = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let head: RecordedHead = serde_json::from_str(line)
            .map_err(|e| anyhow::anyhow!("{} line {}: {e}", path.display(), n + 1))?;
        if head.length == 0 {
            continue;
        }
        let event = store
            .audit_chain_page(&head.chain, head.length - 1, 1)
            .await?;
        let intact = event
            .first()
            .is_some_and(|e| e.seq == head.length && e.hash == head.head_hash);
        if intact {
            out!(
                "{}: recorded head at seq {} still present",
                head.chain,
                head.length
            )?;
        } else {
            out!(
                "{}: RECORDED HEAD AT SEQ {} NO LONGER MATCHES",
                head.chain,
                head.length
            )?;
            moved.push(head.chain);
        }
    }
    Ok(moved)
}

pub async fn run(config: &Config, command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify {
            org,
            json,
            expect_heads,
        } => verify(config, org, json, expect_heads).await,
        AuditCommand::LogKey => log_key(config),
        AuditCommand::Witness {
            connection,
            chain,
            state,
            log_key,
        } => super::witness::witness(&connection, &chain, &state, log_key.as_deref()).await,
        AuditCommand::Events { connection, filter } => events(&connection, &filter).await,
        AuditCommand::Prove {
            connection,
            chain,
            seq,
            hash,
            log_key,
        } => {
            super::witness::prove(
                &connection,
                &chain,
                seq,
                hash.as_deref(),
                log_key.as_deref(),
            )
            .await
        }
    }
}

/// Prints the events matching `filter`, page by page, one JSON object per line.
async fn events(connection: &super::blob::Connection, filter: &EventsFilter) -> anyhow::Result<()> {
    use anyhow::Context;
    let client = connection.client()?;
    let mut printed = 0u64;
    let mut cursor: Option<String> = None;
    loop {
        let mut query: Vec<(&str, &str)> = [
            ("blob_id", &filter.blob_id),
            ("scope", &filter.scope),
            ("requester", &filter.requester),
            ("org_id", &filter.org),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.as_deref().map(|v| (name, v)))
        .collect();
        if let Some(cursor) = &cursor {
            query.push(("cursor", cursor));
        }
        let page: serde_json::Value = client
            .call(
                reqwest::Method::GET,
                "/api/v1/vault/audit",
                &query,
                None,
                None,
            )
            .await?
            .json()
            .await?;
        let events = page
            .get("events")
            .and_then(serde_json::Value::as_array)
            .context("the answer has no events")?;
        for event in events {
            if filter.limit.is_some_and(|limit| printed >= limit) {
                return Ok(());
            }
            out!("{}", serde_json::to_string(event)?)?;
            printed += 1;
        }
        cursor = match page.get("next_cursor") {
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            _ => return Ok(()),
        };
    }
}

/// Prints the verifier key of the configured log key; never creates one (only `serve` does).
fn log_key(config: &Config) -> anyhow::Result<()> {
    let path = &config.audit.log_key_file;
    anyhow::ensure!(
        path.exists(),
        "no log key file at {}: set audit.log_key_file (only `serve` generates one, on the \
         embedded default)",
        path.display()
    );
    let key = crate::startup::load_log_key(config)?;
    out!("{}", key.verifier())?;
    Ok(())
}

async fn verify(
    config: &Config,
    org: Option<String>,
    json: bool,
    expect_heads: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    // Never a new, empty database that verifies trivially (DESIGN §20).
    // A check only: it reads as the service role and never migrates (no owner URL).
    let store = crate::store::connect_existing(&config.storage.database_url, None, 2).await?;
    let chains = match org {
        Some(org) => {
            let org = crate::domain::OrgId::parse(&org)?;
            let chain = crate::audit::org_chain(org.as_str());
            // A misspelt org must not pass as "nothing wrong".
            anyhow::ensure!(
                store.audit_head(&chain).await?.is_some(),
                "org {org} has no audit chain in this database (no such org, or nothing \
                 recorded for it yet)"
            );
            vec![chain]
        }
        None => store.audit_chains().await?,
    };
    let mut broken = Vec::new();
    for chain in &chains {
        let result = verify_chain(store.as_ref(), chain).await?;
        if json {
            out!("{}", serde_json::to_string(&result)?)?;
        } else if result.valid {
            out!(
                "{chain}: valid, {} events, head {}",
                result.length,
                result.head_hash
            )?;
        } else {
            out!(
                "{chain}: INVALID from seq {} ({} events stored)",
                result.first_invalid_seq.unwrap_or_default(),
                result.length
            )?;
        }
        if !result.valid {
            broken.push(chain.clone());
        }
    }
    if let Some(path) = expect_heads {
        broken.extend(check_recorded_heads(store.as_ref(), &path).await?);
    }
    if broken.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "audit chain(s) do not verify: {} (see runbooks/audit-integrity.md)",
            broken.join(", ")
        )
    }
}
