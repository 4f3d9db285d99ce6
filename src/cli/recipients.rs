//! `data-vault recipients ...`: publish your age recipients and look up others' (DESIGN §19),
//! and the directory look-up behind `blob put --to-readers` and `blob reshare`.

use super::blob::Connection;
use super::client::{Body, VaultClient};
use anyhow::Context;
use clap::Subcommand;
use reqwest::Method;
use serde::Deserialize;

/// The most recipients one envelope is encrypted to: 256 stanzas, one of which the `age` crate
/// spends on "grease" (docs/envelope-format.md).
const MAX_ENVELOPE_RECIPIENTS: usize = 255;

#[derive(Debug, Subcommand)]
pub enum RecipientsCommand {
    /// Publish your age recipients (1 to 8 X25519 `age1...` keys), replacing any published.
    Set {
        #[command(flatten)]
        connection: Connection,
        /// age recipients (age1...), as `age-keygen -y` prints them.
        #[arg(required = true, num_args = 1..)]
        recipients: Vec<String>,
    },
    /// Show a principal's published recipients (yours by default).
    Show {
        #[command(flatten)]
        connection: Connection,
        principal: Option<String>,
    },
    /// List the members of an org who may read others' blobs in a scope, with their
    /// recipients, and those who published none (`missing`).
    Readers {
        #[command(flatten)]
        connection: Connection,
        #[arg(long)]
        org: String,
        #[arg(long)]
        scope: String,
    },
}

#[derive(Deserialize)]
struct Published {
    recipients: Vec<String>,
}

#[derive(Deserialize)]
struct Reader {
    recipients: Vec<String>,
}

#[derive(Deserialize)]
struct Readers {
    readers: Vec<Reader>,
    missing: Vec<String>,
}

fn readers_path(org: &str) -> anyhow::Result<String> {
    let org = crate::domain::OrgId::parse(org)?;
    Ok(format!("/api/v1/vault/orgs/{org}/recipients"))
}

fn principal_path(principal: Option<&str>) -> anyhow::Result<String> {
    let principal = match principal {
        Some(p) => crate::domain::Principal::parse(p)?.to_string(),
        None => "me".to_owned(),
    };
    Ok(format!("/api/v1/vault/recipients/{principal}"))
}

async fn get_value(
    client: &VaultClient,
    path: &str,
    query: &[(&str, &str)],
) -> anyhow::Result<serde_json::Value> {
    let response = client.call(Method::GET, path, query, None, None).await?;
    Ok(response.json().await?)
}

/// Whom `--to-readers` encrypts to: `extra`, the caller's own published recipients, and
/// those of every reader the directory names for `scope` in `org`, each once. Warns on
/// stderr about readers who published none (and about the caller, if it has none); refuses
/// when nobody at all could decrypt, or when more recipients than an envelope carries.
pub(super) async fn to_readers(
    client: &VaultClient,
    org: &str,
    scope: &str,
    extra: &[String],
) -> anyhow::Result<Vec<String>> {
    let mine: Published =
        serde_json::from_value(get_value(client, &principal_path(None)?, &[]).await?)
            .context("unexpected answer from the recipient directory")?;
    let listing: Readers =
        serde_json::from_value(get_value(client, &readers_path(org)?, &[("scope", scope)]).await?)
            .context("unexpected answer from the recipient directory")?;
    if mine.recipients.is_empty() {
        eprintln!(
            "warning: you have published no age recipient, so you will not be able to decrypt \
             this blob yourself (publish one with `data-vault recipients set age1...`)"
        );
    }
    if listing.readers.is_empty() {
        eprintln!("warning: no member of org {org} may read others' blobs in scope {scope}");
    }
    if !listing.missing.is_empty() {
        eprintln!(
            "warning: {} reader(s) of scope {scope} in org {org} published no age recipient \
             and will not be able to decrypt this blob: {}",
            listing.missing.len(),
            listing.missing.join(", ")
        );
    }
    let mut all: Vec<String> = Vec::new();
    let everyone = extra
        .iter()
        .cloned()
        .chain(mine.recipients)
        .chain(listing.readers.into_iter().flat_map(|r| r.recipients));
    for recipient in everyone {
        if !all.contains(&recipient) {
            all.push(recipient);
        }
    }
    if all.is_empty() {
        anyhow::bail!(
            "refusing to upload: nobody could decrypt it. Neither you nor any reader of scope \
             {scope} in org {org} has published an age recipient (`data-vault recipients set`), \
             and no --recipient was given"
        );
    }
    if all.len() > MAX_ENVELOPE_RECIPIENTS {
        anyhow::bail!(
            "refusing to upload: {} recipients, more than the {MAX_ENVELOPE_RECIPIENTS} an age \
             envelope carries",
            all.len()
        );
    }
    Ok(all)
}

pub async fn run(command: RecipientsCommand) -> anyhow::Result<()> {
    let value = match command {
        RecipientsCommand::Set {
            connection,
            recipients,
        } => {
            // The server checks them too; checking here names a typo before anything is sent.
            let recipients = crate::domain::AgeRecipients::parse(&recipients)?;
            let body = serde_json::to_vec(&serde_json::json!({
                "recipients": recipients.as_slice(),
            }))?;
            let response = connection
                .client()?
                .call(
                    Method::PUT,
                    &principal_path(None)?,
                    &[],
                    Some(Body {
                        bytes: &body,
                        content_type: "application/json",
                    }),
                    None,
                )
                .await?;
            response.json().await?
        }
        RecipientsCommand::Show {
            connection,
            principal,
        } => {
            let path = principal_path(principal.as_deref())?;
            get_value(&connection.client()?, &path, &[]).await?
        }
        RecipientsCommand::Readers {
            connection,
            org,
            scope,
        } => {
            let query = [("scope", scope.as_str())];
            get_value(&connection.client()?, &readers_path(&org)?, &query).await?
        }
    };
    out!("{}", serde_json::to_string_pretty(&value)?)?;
    Ok(())
}
