//! `data-vault admin client ...` and `admin principal ...`: HMAC client credentials (create,
//! rotate, retire, revoke, list, delete) and blocking wallet principals, directly on the
//! configured database. Every change is audited on the `system` chain by the service.

use crate::config::Config;
use crate::domain::{ClientName, Note, Principal};
use crate::service::{Caller, ClientListing, Vault};
use anyhow::Context;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client and print its secret (shown once).
    Create {
        name: String,
        /// Print {"principal", "secret"} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add a second secret; the previous one keeps working until `retire`.
    Rotate {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Finish a rotation: every secret but the newest stops verifying (refused when the
    /// client has only one).
    #[command(alias = "prune")]
    Retire { name: String },
    /// After a compromise: delete every secret of the client, so no request of it verifies
    /// again (on every replica within 5 s). Final: a revoked client cannot be rotated; to
    /// issue new credentials, `delete` it and `create` it again.
    Revoke { name: String },
    /// List clients with the creation date and age of each live secret, and whether revoked.
    List {
        /// Print [{"principal", "secrets": [{"created_at", "age_days"}], "revoked"}].
        #[arg(long)]
        json: bool,
    },
    /// Remove a client and all its secrets.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum PrincipalCommand {
    /// Refuse every request signed by a wallet address (401, like a bad signature) on every
    /// replica within 5 s, until `unblock`.
    Block {
        /// The wallet's bech32 address, with the configured prefix (auth.wallet_prefix).
        address: String,
        /// Why (kept with the block and in the audit event).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Lift a block.
    Unblock { address: String },
    /// What decides how a principal's requests are answered: its orgs and roles, its HMAC
    /// client's secrets (or null), its recipients, whether it is blocked. For triaging a
    /// 401 or 403 (runbooks/unauthorized-errors.md).
    Show {
        /// A client name or a wallet address.
        name: String,
        /// Print {"principal", "orgs": [{"org", "roles"}], "client": {"secrets", "revoked"}
        /// | null, "recipients", "blocked"}.
        #[arg(long)]
        json: bool,
    },
}

fn print_secret(name: &ClientName, secret: &str, json: bool) -> std::io::Result<()> {
    if json {
        out!(
            "{}",
            serde_json::json!({ "principal": name.as_str(), "secret": secret })
        )?;
    } else {
        out!("principal: {}\nsecret:    {secret}", name.as_str())?;
        eprintln!("Store the secret now: it is not shown again.");
    }
    Ok(())
}

fn print_list(clients: &[ClientListing], json: bool) -> anyhow::Result<()> {
    if json {
        out!("{}", serde_json::to_string(clients)?)?;
        return Ok(());
    }
    out!("PRINCIPAL\tSTATUS\tSECRETS (created, age in days; newest first)")?;
    for client in clients {
        let secrets: Vec<String> = client
            .secrets
            .iter()
            .map(|s| format!("{} ({} d)", s.created_at, s.age_days))
            .collect();
        let status = if client.revoked { "revoked" } else { "active" };
        out!("{}\t{status}\t{}", client.principal, secrets.join(", "))?;
    }
    if i64::try_from(clients.len()).is_ok_and(|n| n >= crate::service::MAX_CLIENTS_LISTED) {
        eprintln!(
            "Only the first {} clients by name are listed.",
            crate::service::MAX_CLIENTS_LISTED
        );
    }
    Ok(())
}

pub(super) async fn client(
    vault: &Vault,
    admin: &Caller,
    command: ClientCommand,
) -> anyhow::Result<()> {
    match command {
        ClientCommand::Create { name, json } => {
            let name = ClientName::parse(&name)?;
            let secret = vault.create_client(admin, &name).await?;
            print_secret(&name, &secret, json)?;
        }
        ClientCommand::Rotate { name, json } => {
            let name = ClientName::parse(&name)?;
            let secret = vault.rotate_client(admin, &name).await?;
            print_secret(&name, &secret, json)?;
            eprintln!(
                "The previous secret stays valid until `data-vault admin client retire {}`.",
                name.as_str()
            );
        }
        ClientCommand::Retire { name } => {
            let name = ClientName::parse(&name)?;
            let retired = vault.retire_client(admin, &name).await?;
            out!(
                "retired {retired} old secret(s) of {}; only the newest verifies",
                name.as_str()
            )?;
        }
        ClientCommand::Revoke { name } => {
            let name = ClientName::parse(&name)?;
            vault.revoke_client(admin, &name).await?;
            out!(
                "revoked client {}: no secret of it verifies (every replica within 5 s)",
                name.as_str()
            )?;
        }
        ClientCommand::List { json } => print_list(&vault.list_clients(admin).await?, json)?,
        ClientCommand::Delete { name } => {
            let name = ClientName::parse(&name)?;
            vault.delete_client(admin, &name).await?;
            out!("deleted client {}", name.as_str())?;
        }
    }
    Ok(())
}

/// A wallet address as a principal, checked against the configured prefix.
pub(super) fn wallet_principal(config: &Config, address: &str) -> anyhow::Result<Principal> {
    let verifier = crate::startup::wallet_verifier(config)?;
    verifier.check_address(address).with_context(|| {
        format!(
            "{address:?} is not a wallet address with the configured prefix {:?} \
             (auth.wallet_prefix)",
            verifier.prefix()
        )
    })?;
    Ok(Principal::parse(address)?)
}

/// Checks the command's input before anything opens the database.
pub(super) enum CheckedPrincipalCommand {
    Block(Principal, Option<Note>),
    Unblock(Principal),
    Show(Principal, bool),
}

pub(super) fn check_principal(
    config: &Config,
    command: PrincipalCommand,
) -> anyhow::Result<CheckedPrincipalCommand> {
    Ok(match command {
        PrincipalCommand::Block { address, reason } => CheckedPrincipalCommand::Block(
            wallet_principal(config, &address)?,
            reason.map(|r| Note::parse("--reason", &r)).transpose()?,
        ),
        PrincipalCommand::Unblock { address } => {
            CheckedPrincipalCommand::Unblock(wallet_principal(config, &address)?)
        }
        PrincipalCommand::Show { name, json } => {
            CheckedPrincipalCommand::Show(Principal::parse(&name)?, json)
        }
    })
}

pub(super) async fn principal(
    vault: &Vault,
    admin: &Caller,
    command: CheckedPrincipalCommand,
) -> anyhow::Result<()> {
    match command {
        CheckedPrincipalCommand::Block(principal, reason) => {
            vault
                .block_principal(admin, &principal, reason.as_ref())
                .await?;
            out!("blocked {principal}: its requests get 401 (every replica within 5 s)")?;
        }
        CheckedPrincipalCommand::Unblock(principal) => {
            vault.unblock_principal(admin, &principal).await?;
            out!("unblocked {principal}")?;
        }
        CheckedPrincipalCommand::Show(principal, json) => {
            let overview = vault.principal_overview(admin, &principal).await?;
            if json {
                out!("{}", serde_json::to_string(&overview)?)?;
            } else {
                print_overview(&overview)?;
            }
        }
    }
    Ok(())
}

fn print_overview(p: &crate::service::PrincipalOverview) -> std::io::Result<()> {
    out!("principal:  {}", p.principal)?;
    match &p.client {
        Some(client) => {
            let secrets: Vec<String> = client
                .secrets
                .iter()
                .map(|s| format!("{} ({} d)", s.created_at, s.age_days))
                .collect();
            let status = if client.revoked { "REVOKED" } else { "active" };
            out!("client:     {status}; secrets: {}", secrets.join(", "))?;
        }
        None => out!("client:     none (not an HMAC client)")?,
    }
    out!("blocked:    {}", if p.blocked { "YES" } else { "no" })?;
    if p.orgs.is_empty() {
        out!("orgs:       none")?;
    }
    for org in &p.orgs {
        out!("org:        {}\t[{}]", org.org, org.roles.join(","))?;
    }
    out!(
        "recipients: {}",
        if p.recipients.is_empty() {
            "none".to_owned()
        } else {
            p.recipients.join(" ")
        }
    )
}
