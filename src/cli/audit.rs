//! `data-vault audit ...`: offline checks of the audit log, directly on the database. Needs no
//! master key: verifying a chain reveals nothing sealed.

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
            println!(
                "{}: recorded head at seq {} still present",
                head.chain, head.length
            );
        } else {
            println!(
                "{}: RECORDED HEAD AT SEQ {} NO LONGER MATCHES",
                head.chain, head.length
            );
            moved.push(head.chain);
        }
    }
    Ok(moved)
}

pub async fn run(config: &Config, command: AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::Verify {
        org,
        json,
        expect_heads,
    } = command;
    let store = crate::store::connect(&config.storage.database_url, 2).await?;
    let chains = match org {
        Some(org) => {
            let org = crate::domain::OrgId::parse(&org)?;
            vec![crate::audit::org_chain(org.as_str())]
        }
        None => store.audit_chains().await?,
    };
    let mut broken = Vec::new();
    for chain in &chains {
        let result = verify_chain(store.as_ref(), chain).await?;
        if json {
            println!("{}", serde_json::to_string(&result)?);
        } else if result.valid {
            println!(
                "{chain}: valid, {} events, head {}",
                result.length, result.head_hash
            );
        } else {
            println!(
                "{chain}: INVALID from seq {} ({} events stored)",
                result.first_invalid_seq.unwrap_or_default(),
                result.length
            );
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
