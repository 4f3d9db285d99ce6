//! `data-vault admin ...`: bootstrap operations run directly on the configured database, for
//! before any administrator can sign a request.

mod credentials;

use crate::config::Config;
use crate::domain::{OrgId, Principal};
use crate::service::Caller;
use crate::startup::open_vault;
use clap::Subcommand;
use credentials::{ClientCommand, PrincipalCommand};
use data_vault_scopes::RoleSet;

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// HMAC clients (services).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Orgs and their members.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Wallet principals: block and unblock.
    #[command(subcommand)]
    Principal(PrincipalCommand),
    /// PostgreSQL: apply the migrations as the owner role (storage.migrations_database_url,
    /// else storage.database_url) and grant the storage.database_url role what the server
    /// needs. Needs no master key.
    Migrate,
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
    // An address is checked against the configured prefix before the database is opened.
    if let AdminCommand::Principal(command) = command {
        let command = credentials::check_principal(config, command)?;
        let vault = open_vault(config).await?;
        return credentials::principal(&vault, &Caller::local_admin()?, command).await;
    }
    let vault = open_vault(config).await?;
    let admin = Caller::local_admin()?;
    match command {
        AdminCommand::Client(command) => credentials::client(&vault, &admin, command).await?,
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
        // Returned above: migrating needs no vault, and an address is checked first.
        AdminCommand::Migrate | AdminCommand::Principal(_) => {}
    }
    Ok(())
}
