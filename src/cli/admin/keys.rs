//! `data-vault admin keys ...`: tenant key versions and their rotation, and the master key
//! rewrap (DESIGN §15), directly on the configured database.

use crate::audit::ChainName;
use crate::domain::Note;
use crate::service::{BlockedRotation, Caller, KeyListing, Rotation, RotationRequest, Vault};
use clap::Subcommand;
use std::io::Write;
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Tenant key versions (status, age, blobs) and the active master key.
    List {
        /// Only this tenant: org:<org id> or owner:<principal>.
        #[arg(long)]
        tenant: Option<String>,
        /// Print {"keys": [...], "master": {...}} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rotate a tenant's key: a new version is active at once, and the running servers
    /// rewrap the tenant's data keys under it in the background; this waits for that with
    /// a progress bar (Ctrl-C stops waiting, not the rotation).
    Rotate {
        /// org:<org id> or owner:<principal>.
        tenant: String,
        /// Why (kept in the audit events).
        #[arg(long)]
        reason: Option<String>,
        /// After a compromise: destroy the old version once nothing needs it.
        #[arg(long)]
        emergency: bool,
        /// Return once started, without waiting for the rewrap.
        #[arg(long)]
        no_wait: bool,
        /// Print the rotation as JSON when it ends (or starts, with --no-wait).
        #[arg(long)]
        json: bool,
    },
    /// Reseal every tenant key and client secret under the active master key
    /// (keys.master_key_file); afterwards keys.previous_master_key_files can be emptied.
    RewrapMaster,
}

/// A progress bar on stderr, redrawn in place: `[#####.....] 500/1000`. Hand-written: it
/// is twenty lines, and no dependency is worth that.
fn progress_bar(label: &str, done: i64, total: i64) {
    const WIDTH: i64 = 30;
    let filled = if total > 0 {
        (done.clamp(0, total) * WIDTH) / total
    } else {
        WIDTH
    };
    let bar: String = (0..WIDTH)
        .map(|i| if i < filled { '#' } else { '.' })
        .collect();
    let mut err = std::io::stderr();
    let _ = write!(err, "\r{label} [{bar}] {done}/{total}");
    let _ = err.flush();
}

fn print_listing(listing: &KeyListing, json: bool) -> anyhow::Result<()> {
    if json {
        out!("{}", serde_json::to_string_pretty(listing)?)?;
        return Ok(());
    }
    let m = &listing.master;
    out!(
        "master key {} (in use since {}, {} day(s))",
        m.key_id,
        m.created_at.as_deref().unwrap_or("-"),
        m.age_days.map_or_else(|| "-".to_owned(), |d| d.to_string())
    )?;
    out!("TENANT\tVERSION\tSTATUS\tCREATED\tAGE_DAYS\tBLOBS")?;
    for k in &listing.keys {
        out!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            k.tenant,
            k.version,
            k.status,
            k.created_at,
            k.age_days,
            k.blobs
        )?;
    }
    Ok(())
}

fn print_rotation(rotation: &Rotation, json: bool) -> anyhow::Result<()> {
    if json {
        out!("{}", serde_json::to_string(rotation)?)?;
    } else {
        out!(
            "rotation {} of {}: version {} -> {}, {} ({} of {} data keys rewrapped){}",
            rotation.id,
            rotation.tenant,
            rotation.from_version,
            rotation.to_version,
            rotation.status,
            rotation.rewrapped,
            rotation.total,
            if rotation.emergency {
                "; emergency: the old version is destroyed when it completes"
            } else {
                ""
            }
        )?;
    }
    Ok(())
}

/// Why waiting for a rotation ended without it: waiting longer would be waiting forever.
fn blocked_message(blocked: &BlockedRotation) -> String {
    format!(
        "rotation {} of {} cannot complete: {} data key(s) do not open under their tenant key \
         (blobs {}{}). Every other blob is rewrapped; the rotation stays running and completes \
         once those blobs are restored or deleted (runbooks/key-rotation.md)",
        blocked.id,
        blocked.tenant,
        blocked.unopened,
        blocked.examples.join(", "),
        if blocked.unopened > blocked.examples.len() as u64 {
            ", ..."
        } else {
            ""
        }
    )
}

pub async fn run(vault: &Vault, admin: &Caller, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::List { tenant, json } => {
            let tenant = tenant.as_deref().map(ChainName::parse_tenant).transpose()?;
            let listing = vault.list_keys(admin, tenant.as_ref()).await?;
            print_listing(&listing, json)?;
        }
        KeysCommand::Rotate {
            tenant,
            reason,
            emergency,
            no_wait,
            json,
        } => {
            let request = RotationRequest {
                tenant: ChainName::parse_tenant(&tenant)?,
                reason: reason
                    .as_deref()
                    .map(|r| Note::parse("reason", r))
                    .transpose()?,
                emergency,
            };
            let mut rotation = vault.rotate_tenant_key(admin, request).await?;
            if !no_wait {
                // Running servers rewrap too; this process carries every running rotation on
                // as well, so the command finishes even when no server runs. The polling
                // reads are not audited: the start was, and the completion will be.
                loop {
                    progress_bar("rewrapping", rotation.rewrapped, rotation.total);
                    if rotation.status != "running" {
                        eprintln!();
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    match vault.advance_rotations().await {
                        Ok(blocked) => {
                            if let Some(blocked) = blocked.iter().find(|b| b.id == rotation.id) {
                                eprintln!();
                                anyhow::bail!(blocked_message(blocked));
                            }
                        }
                        Err(e) => {
                            eprintln!("\nrewrap step failed (retrying): {}", e.cause_chain());
                        }
                    }
                    rotation = vault.rotation_progress(&rotation.id).await?;
                }
            }
            print_rotation(&rotation, json)?;
        }
        KeysCommand::RewrapMaster => {
            let progress = |done: u64, total: i64| {
                progress_bar(
                    "rewrapping under the active master key",
                    i64::try_from(done).unwrap_or(i64::MAX),
                    total,
                );
            };
            let report = vault.rewrap_master(admin, &progress).await?;
            eprintln!();
            out!(
                "resealed {} tenant key(s) and {} client secret(s) under master key {}",
                report.tenant_keys,
                report.client_secrets,
                vault.active_master_key_id()
            )?;
            if report.remaining > 0 {
                anyhow::bail!(
                    "{} key(s) are still under another master key; run it again",
                    report.remaining
                );
            }
            out!(
                "the previous master key files are no longer needed: remove them from \
                 keys.previous_master_key_files"
            )?;
        }
    }
    Ok(())
}
