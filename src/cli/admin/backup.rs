//! `data-vault admin backup --out FILE`: a consistent snapshot of the embedded (SQLite)
//! database while the server runs (DESIGN §20). PostgreSQL is backed up with `pg_dump`
//! (runbooks/backup.md). Keys are not in the snapshot: they are backed up separately.

use crate::config::Config;
use anyhow::Context;
use std::path::{Path, PathBuf};

/// Writes the snapshot to `out` (which must not exist) and returns its size in bytes.
///
/// `VACUUM INTO` reads the database in one read transaction, so the copy is the database at
/// one instant, while writers carry on (WAL): the documented way to back up a live SQLite
/// database from SQL. It writes to a new file beside `out`, which is renamed into place only
/// once complete, so a failed backup never leaves a truncated file under the final name.
pub async fn backup(config: &Config, out: &Path) -> anyhow::Result<u64> {
    let url = &config.storage.database_url;
    anyhow::ensure!(
        url.starts_with("sqlite:"),
        "admin backup is for the embedded SQLite database; back up PostgreSQL with pg_dump \
         (runbooks/backup.md)"
    );
    anyhow::ensure!(
        !out.exists(),
        "{} already exists: a backup never overwrites a file",
        out.display()
    );
    let store = crate::store::connect_existing(url, None, 1)
        .await
        .context("cannot open the database")?;
    drop(store);
    let partial = partial_path(out);
    create_private(&partial)?;
    let result = vacuum_into(url, &partial).await;
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::File::open(&partial)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot sync {}", partial.display()))?;
    std::fs::rename(&partial, out)
        .with_context(|| format!("cannot move the backup to {}", out.display()))?;
    Ok(std::fs::metadata(out)?.len())
}

fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    out.with_file_name(name)
}

/// An empty file readable by its owner only (the snapshot holds sealed data and the audit
/// trail); `VACUUM INTO` accepts an empty file as its target.
fn create_private(path: &Path) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    Ok(())
}

async fn vacuum_into(url: &str, target: &Path) -> anyhow::Result<()> {
    use sqlx::Connection;
    use std::str::FromStr;
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
        .create_if_missing(false)
        .busy_timeout(std::time::Duration::from_secs(30));
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .context("cannot open the database")?;
    let target = target
        .to_str()
        .context("the backup path must be valid UTF-8")?;
    sqlx::query("VACUUM INTO ?1")
        .bind(target)
        .execute(&mut conn)
        .await
        .context("VACUUM INTO failed")?;
    conn.close().await?;
    Ok(())
}
