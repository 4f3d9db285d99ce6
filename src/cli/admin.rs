//! `data-vault admin ...`: bootstrap operations run directly on the configured database, for
//! before any administrator can sign a request.

use crate::config::Config;
use crate::domain::{ClientName, OrgId, Principal};
use crate::service::Caller;
use crate::startup::open_vault;
use clap::Subcommand;
use data_vault_scopes::RoleSet;

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// HMAC clients (services).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Orgs and their members.
    #[command(subcommand)]
    Org(OrgCommand),
    /// PostgreSQL: apply the migrations as the owner role (storage.migrations_database_url,
    /// else storage.database_url) and grant the storage.database_url role what the server
    /// needs. Needs no master key.
    Migrate,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client and print its secret (shown once).
    Create {
        name: String,
        /// Print {"principal", "secret"} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add a second secret; the previous one keeps working until `prune`.
    Rotate {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Finish a rotation: revoke every secret but the newest.
    Prune { name: String },
    /// Remove a client and all its secrets.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an org (no-op if it exists).
    Create { org: String },
    /// Members of an org.
    #[command(subcommand)]
    Member(MemberCommand),
}

#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Add a member or replace their roles.
    Set {
        org: String,
        principal: String,
        /// Comma-separated: administrator, support_agent, service_provider, moderator
        /// (empty for plain membership).
        #[arg(long, default_value = "")]
        roles: String,
    },
    /// Remove a member.
    Remove { org: String, principal: String },
    /// List members and their roles.
    List { org: String },
}

fn print_secret(name: &ClientName, secret: &str, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::json!({ "principal": name.as_str(), "secret": secret })
        );
    } else {
        println!("principal: {}\nsecret:    {secret}", name.as_str());
        eprintln!("Store the secret now: it is not shown again.");
    }
}

/// `admin migrate`: the owner's half of a two-role PostgreSQL setup (runbooks/postgresql.md).
async fn migrate(config: &Config) -> anyhow::Result<()> {
    let storage = &config.storage;
    let owner_url = storage
        .migrations_database_url
        .as_deref()
        .unwrap_or(&storage.database_url);
    let report = crate::store::migrate(owner_url, &storage.database_url).await?;
    if report.applied.is_empty() {
        println!("schema already current");
    } else {
        let list = report.applied.iter().map(i64::to_string);
        println!(
            "applied migration(s) {} as role {}",
            list.collect::<Vec<_>>().join(", "),
            report.owner
        );
    }
    println!("schema version: {}", report.version.unwrap_or_default());
    match &report.granted_to {
        Some(role) => println!("granted the service privileges to role {role}"),
        None => eprintln!(
            "storage.database_url uses the owner role {} too: nothing to grant. For least \
             privilege serve as a separate role (runbooks/postgresql.md)",
            report.owner
        ),
    }
    Ok(())
}

pub async fn run(config: &Config, command: AdminCommand) -> anyhow::Result<()> {
    // Migrating needs neither the vault nor its master key.
    if let AdminCommand::Migrate = command {
        return migrate(config).await;
    }
    let vault = open_vault(config).await?;
    let admin = Caller::local_admin()?;
    match command {
        AdminCommand::Client(command) => match command {
            ClientCommand::Create { name, json } => {
                let name = ClientName::parse(&name)?;
                let secret = vault.create_client(&admin, &name).await?;
                print_secret(&name, &secret, json);
            }
            ClientCommand::Rotate { name, json } => {
                let name = ClientName::parse(&name)?;
                let secret = vault.rotate_client(&admin, &name).await?;
                print_secret(&name, &secret, json);
                eprintln!(
                    "The previous secret stays valid until `data-vault admin client prune {}`.",
                    name.as_str()
                );
            }
            ClientCommand::Prune { name } => {
                let name = ClientName::parse(&name)?;
                let revoked = vault.prune_client(&admin, &name).await?;
                println!("revoked {revoked} old secret(s) of {}", name.as_str());
            }
            ClientCommand::Delete { name } => {
                let name = ClientName::parse(&name)?;
                vault.delete_client(&admin, &name).await?;
                println!("deleted client {}", name.as_str());
            }
        },
        AdminCommand::Org(OrgCommand::Create { org }) => {
            let org = OrgId::parse(&org)?;
            if vault.create_org(&admin, &org).await? {
                println!("created org {org}");
            } else {
                println!("org {org} already exists");
            }
        }
        AdminCommand::Org(OrgCommand::Member(command)) => match command {
            MemberCommand::Set {
                org,
                principal,
                roles,
            } => {
                let org = OrgId::parse(&org)?;
                let principal = Principal::parse(&principal)?;
                let roles = RoleSet::parse_list(&roles)?;
                vault.set_member(&admin, &org, &principal, roles).await?;
                println!("{principal} in {org}: [{}]", roles.to_list());
            }
            MemberCommand::Remove { org, principal } => {
                let org = OrgId::parse(&org)?;
                let principal = Principal::parse(&principal)?;
                vault.remove_member(&admin, &org, &principal).await?;
                println!("removed {principal} from {org}");
            }
            MemberCommand::List { org } => {
                let org = OrgId::parse(&org)?;
                for member in vault.list_members(&admin, &org).await? {
                    println!("{}\t{}", member.principal, member.roles.join(","));
                }
            }
        },
        // Returned above, before a vault (and its master key) was needed.
        AdminCommand::Migrate => migrate(config).await?,
    }
    Ok(())
}
