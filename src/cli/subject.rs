//! `data-vault subject ...`: data-subject requests (DESIGN §13) as a signed client: export
//! everything the signed-in principal owns and did, or erase a principal's data.

use super::blob::Connection;
use anyhow::Context;
use clap::Subcommand;
use reqwest::Method;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum SubjectCommand {
    /// Export your blobs and audit events as NDJSON to FILE (streamed, never held whole).
    Export {
        #[command(flatten)]
        connection: Connection,
        /// Where to write the export ("-" for standard output).
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
        /// Export another principal (platform admins only); default: yourself.
        #[arg(long = "subject", value_name = "PRINCIPAL")]
        subject: Option<String>,
    },
    /// Crypto-shred every blob PRINCIPAL owns that is not under legal hold, and destroy its
    /// personal key. Irreversible.
    Erase {
        #[command(flatten)]
        connection: Connection,
        /// The principal whose data is erased.
        #[arg(value_name = "PRINCIPAL")]
        subject: String,
        /// Confirm that the erasure is intended: without it nothing is sent.
        #[arg(long)]
        yes: bool,
    },
}

fn subject_path(principal: &str) -> anyhow::Result<String> {
    if principal.is_empty()
        || !principal
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:@".contains(&b))
    {
        anyhow::bail!("invalid principal {principal:?}");
    }
    Ok(format!("/api/v1/vault/subjects/{principal}"))
}

pub async fn run(command: SubjectCommand) -> anyhow::Result<()> {
    match command {
        SubjectCommand::Export {
            connection,
            output,
            subject,
        } => {
            let client = connection.client()?;
            let path = format!(
                "{}/export",
                subject_path(subject.as_deref().unwrap_or("me"))?
            );
            let mut response = client.call(Method::GET, &path, &[], None, None).await?;
            let mut out: Box<dyn Write> = if output.as_os_str() == "-" {
                Box::new(super::output::Stdout::lock())
            } else {
                Box::new(std::io::BufWriter::new(
                    std::fs::File::create(&output)
                        .with_context(|| format!("cannot create {}", output.display()))?,
                ))
            };
            let mut bytes = 0u64;
            let mut last = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                out.write_all(&chunk)?;
                bytes += u64::try_from(chunk.len()).unwrap_or(u64::MAX);
                // Keep the tail: the last line says whether the export is complete.
                last.extend_from_slice(&chunk);
                let keep = last.len().saturating_sub(4096);
                last.drain(..keep);
            }
            out.flush()?;
            let tail = String::from_utf8_lossy(&last);
            let end = tail.trim_end().rsplit('\n').next().unwrap_or("");
            let end: serde_json::Value = serde_json::from_str(end).unwrap_or_default();
            if end.get("type").and_then(serde_json::Value::as_str) != Some("end") {
                anyhow::bail!(
                    "the export ended early: {} lacks its end line, do not rely on it",
                    output.display()
                );
            }
            if output.as_os_str() != "-" {
                eprintln!(
                    "wrote {bytes} bytes to {}: {} blob(s), {} event(s)",
                    output.display(),
                    end.get("blobs").unwrap_or(&serde_json::Value::Null),
                    end.get("events").unwrap_or(&serde_json::Value::Null)
                );
            }
        }
        SubjectCommand::Erase {
            connection,
            subject,
            yes,
        } => {
            if !yes {
                anyhow::bail!(
                    "erasure crypto-shreds every unheld blob of {subject} and cannot be undone; \
                     pass --yes to confirm"
                );
            }
            let client = connection.client()?;
            let response = client
                .call(Method::DELETE, &subject_path(&subject)?, &[], None, None)
                .await?;
            let value: serde_json::Value = response.json().await?;
            out!("{}", serde_json::to_string(&value)?)?;
        }
    }
    Ok(())
}
