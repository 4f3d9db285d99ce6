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
    },
}

pub async fn run(config: &Config, command: AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::Verify { org, json } = command;
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
    if broken.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "{} of {} audit chain(s) do not verify: {} (see runbooks/audit-integrity.md)",
            broken.len(),
            chains.len(),
            broken.join(", ")
        )
    }
}
