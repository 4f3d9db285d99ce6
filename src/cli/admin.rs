//! `data-vault admin ...`: bootstrap operations run directly on the configured database, for
//! before any administrator can sign a request.

mod backup;
mod credentials;
mod keys;

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
    /// Retention: purge expired blobs now.
    #[command(subcommand)]
    Purge(PurgeCommand),
    /// Compliance evidence for an assessor.
    #[command(subcommand)]
    Compliance(ComplianceCommand),
    /// Tenant keys, their rotation, and the master keyring.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// The object store of large blobs.
    #[command(subcommand)]
    Objects(ObjectsCommand),
    /// PostgreSQL: apply the migrations as the owner role (storage.migrations_database_url,
    /// else storage.database_url) and grant the storage.database_url role what the server
    /// needs. Needs no master key.
    Migrate,
    /// A consistent snapshot of the embedded (SQLite) database while the server runs, to a
    /// new file readable by its owner only. Keys are not in it: back them up separately.
    /// PostgreSQL: use pg_dump (runbooks/backup.md).
    Backup {
        /// Where to write the snapshot (must not exist).
        #[arg(long)]
        out: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ObjectsCommand {
    /// Delete the objects that no blob names (after restoring a database from a backup older
    /// than the store, say), journalling them for the sweep first; progress-free, one pass.
    Reconcile {
        /// Count what would be deleted, and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print {"dry_run", "listed", "orphans", "collected"} as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PurgeCommand {
    /// Purge every expired blob that is not under legal hold, in batches (progress on stderr).
    Sweep {
        /// Count what a sweep would purge, and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print {"dry_run", "candidates", "purged", "held"} as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ComplianceCommand {
    /// The point-in-time report of DESIGN §14, computed from the data.
    Report {
        /// Limit the report to one org.
        #[arg(long)]
        org: Option<String>,
        /// Print the report as JSON (else a readable summary).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an org (no-op if it exists).
    Create { org: String },
    /// List orgs with their creation time and member count.
    List {
        /// Print [{"org", "created_at", "members"}].
        #[arg(long)]
        json: bool,
    },
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
        out!("schema already current")?;
    } else {
        let list = report.applied.iter().map(i64::to_string);
        out!(
            "applied migration(s) {} as role {}",
            list.collect::<Vec<_>>().join(", "),
            report.owner
        )?;
    }
    out!("schema version: {}", report.version.unwrap_or_default())?;
    match &report.granted_to {
        Some(role) => out!("granted the service privileges to role {role}")?,
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
    // A snapshot needs the database only, never the master key.
    if let AdminCommand::Backup { out } = &command {
        let bytes = backup::backup(config, out).await?;
        out!("backup written to {} ({bytes} bytes)", out.display())?;
        eprintln!(
            "The master key ({}) and the log key ({}) are not in it: back them up separately \
             (runbooks/backup.md).",
            config.keys.master_key_file.display(),
            config.audit.log_key_file.display()
        );
        return Ok(());
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
        AdminCommand::Keys(command) => keys::run(&vault, &admin, command).await?,
        AdminCommand::Org(OrgCommand::Create { org }) => {
            let org = OrgId::parse(&org)?;
            if vault.create_org(&admin, &org).await? {
                out!("created org {org}")?;
            } else {
                out!("org {org} already exists")?;
            }
        }
        AdminCommand::Org(OrgCommand::List { json }) => {
            let orgs = vault.list_orgs(&admin).await?;
            if json {
                out!("{}", serde_json::to_string(&orgs)?)?;
            } else {
                out!("ORG\tCREATED\tMEMBERS")?;
                for org in &orgs {
                    out!("{}\t{}\t{}", org.org, org.created_at, org.members)?;
                }
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
                out!("{principal} in {org}: [{}]", roles.to_list())?;
            }
            MemberCommand::Remove { org, principal } => {
                let org = OrgId::parse(&org)?;
                let principal = Principal::parse(&principal)?;
                vault.remove_member(&admin, &org, &principal).await?;
                out!("removed {principal} from {org}")?;
            }
            MemberCommand::List { org } => {
                let org = OrgId::parse(&org)?;
                for member in vault.list_members(&admin, &org).await? {
                    out!("{}\t{}", member.principal, member.roles.join(","))?;
                }
            }
        },
        AdminCommand::Purge(PurgeCommand::Sweep { dry_run, json }) => {
            let progress = |r: &crate::service::SweepReport| {
                if !r.dry_run {
                    eprintln!("purged {} of {} candidates so far", r.purged, r.candidates);
                }
            };
            let report = vault.sweep_on_demand(&admin, dry_run, &progress).await?;
            if json {
                out!("{}", serde_json::to_string(&report)?)?;
            } else if report.dry_run {
                out!(
                    "DRY RUN, nothing changed: {} expired blob(s) would be purged, {} held",
                    report.candidates,
                    report.held
                )?;
            } else {
                out!(
                    "purged {} of {} expired blob(s); {} held",
                    report.purged,
                    report.candidates,
                    report.held
                )?;
            }
        }
        AdminCommand::Objects(ObjectsCommand::Reconcile { dry_run, json }) => {
            let report = vault.reconcile_objects(&admin, dry_run).await?;
            if json {
                out!("{}", serde_json::to_string(&report)?)?;
            } else if report.dry_run {
                out!(
                    "DRY RUN, nothing changed: {} of {} object(s) are named by no blob",
                    report.orphans,
                    report.listed
                )?;
            } else {
                out!(
                    "{} of {} object(s) were named by no blob; the sweep deleted {}",
                    report.orphans,
                    report.listed,
                    report.collected
                )?;
            }
        }
        AdminCommand::Compliance(ComplianceCommand::Report { org, json }) => {
            let org = org.as_deref().map(OrgId::parse).transpose()?;
            let report = vault.compliance_report(&admin, org.as_ref()).await?;
            if json {
                out!("{}", serde_json::to_string_pretty(&report)?)?;
            } else {
                print_report(&report)?;
            }
        }
        // Returned above: migrating needs no vault, and an address is checked first.
        AdminCommand::Migrate | AdminCommand::Principal(_) | AdminCommand::Backup { .. } => {}
    }
    Ok(())
}

/// The compliance report for a reader at a terminal.
fn print_report(report: &crate::service::ComplianceReport) -> std::io::Result<()> {
    let s = &report.summary;
    out!("compliance report generated at {}", report.generated_at)?;
    if let Some(org) = &report.org_id {
        out!("org: {org}")?;
    }
    out!(
        "blobs: {} total, {} active, {} expired pending purge, {} held, {} purged in the last 30 days",
        s.total_blobs, s.active, s.expired_pending_purge, s.held, s.purged_last_30_days
    )?;
    for (scope, section) in &report.by_scope {
        out!(
            "  scope {scope}: {} active, {} expiring within 30 days",
            section.active,
            section.expiring_next_30_days
        )?;
    }
    let keys = &report.keys;
    out!(
        "tenant keys: {}, oldest {} day(s), past the {}-day cryptoperiod: {}",
        keys.tenant_keys,
        keys.oldest_active_age_days
            .map_or_else(|| "-".to_owned(), |d| d.to_string()),
        keys.max_age_days,
        if keys.past_cryptoperiod.is_empty() {
            "none".to_owned()
        } else {
            keys.past_cryptoperiod.join(", ")
        }
    )?;
    let audit = &report.audit;
    match (&audit.chains, &audit.invalid_chains, &audit.unavailable) {
        (Some(chains), Some(invalid), _) => {
            out!("audit: {chains} chain(s), {invalid} invalid, verified now")?
        }
        (_, _, Some(why)) => out!("audit: not computed: {why}")?,
        _ => out!("audit: not computed")?,
    }
    out!(
        "last sweep: {} ({} purged)",
        report.purge.last_sweep_at.as_deref().unwrap_or("never"),
        report
            .purge
            .purged_last_sweep
            .map_or_else(|| "-".to_owned(), |n| n.to_string())
    )
}
