//! `data-vault blob reshare ID --to-readers`: after a membership change the server cannot
//! re-encrypt anything (it never holds a key that opens an envelope), so a reader who can
//! open the blob downloads it, re-encrypts it to the current readers and stores a new blob.
//! Both halves are ordinary audited requests: the read of the old blob (purpose `reshare`)
//! and the create of the new one, and with `--delete-old` the delete of the old one.

use super::blob::blob_path;
use super::client::{Body, VaultClient};
use super::open::{open, Identities};
use super::seal::{seal, Sealed};
use anyhow::Context;
use base64::Engine;
use reqwest::Method;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The metadata a reshare carries over to the new blob.
#[derive(Deserialize)]
struct Carried {
    scope: String,
    org_id: Option<String>,
    retention_policy: String,
    expires_at: Option<String>,
    tags: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Created {
    metadata: CreatedMetadata,
}

#[derive(Deserialize)]
struct CreatedMetadata {
    id: String,
}

pub(super) struct Reshare<'a> {
    pub id: &'a str,
    pub identity: &'a Path,
    pub reason: Option<&'a str>,
    pub delete_old: bool,
}

impl Reshare<'_> {
    pub async fn run(&self, client: &VaultClient) -> anyhow::Result<()> {
        let path = blob_path(self.id)?;
        let meta: Carried = client
            .call(Method::GET, &format!("{path}/metadata"), &[], None, None)
            .await?
            .json()
            .await
            .context("unexpected metadata answer")?;
        let Some(org) = meta.org_id.as_deref() else {
            anyhow::bail!(
                "blob {} belongs to no org, so it has no readers to reshare with",
                self.id
            );
        };
        // The readers first: a failed lookup then costs no read of the blob.
        let recipients = super::recipients::to_readers(client, org, &meta.scope, &[]).await?;
        let readers = recipients.len();
        let identities = Identities::load(self.identity)?;
        let mut query = vec![("purpose", "reshare")];
        if let Some(reason) = self.reason {
            query.push(("reason", reason));
        }
        let response = client
            .call(
                Method::GET,
                &path,
                &query,
                None,
                Some("application/octet-stream"),
            )
            .await?;
        // Decrypted as it arrives and encrypted again into a temporary file: no copy of the
        // plaintext, however large, is held or written anywhere.
        let sealed = open(response, identities, move |plaintext| {
            seal(plaintext, &recipients)
        })
        .await?;
        let created: Created = self
            .store(client, &meta, org, sealed)
            .await?
            .json()
            .await
            .context("unexpected answer to the upload")?;
        let new_id = created.metadata.id;
        eprintln!(
            "stored {new_id} in place of {}, encrypted to {} recipient(s)",
            self.id, readers
        );
        out!("{new_id}")?;
        if self.delete_old {
            client.call(Method::DELETE, &path, &[], None, None).await?;
            eprintln!("deleted {}", self.id);
        } else {
            eprintln!(
                "left {} in place: delete it with `data-vault blob rm {}` once nobody needs it",
                self.id, self.id
            );
        }
        Ok(())
    }

    /// Stores the new envelope with the old blob's metadata, streamed as a raw upload with
    /// its tags in the query string; tags too many or too long for a query string go as JSON
    /// instead, which bounds that blob to the JSON limit.
    async fn store(
        &self,
        client: &VaultClient,
        meta: &Carried,
        org: &str,
        sealed: Sealed,
    ) -> anyhow::Result<reqwest::Response> {
        let tags = serde_json::to_string(&meta.tags)?;
        let mut query = vec![
            ("scope", meta.scope.as_str()),
            ("org_id", org),
            ("retention_policy", meta.retention_policy.as_str()),
        ];
        if let Some(at) = &meta.expires_at {
            query.push(("expires_at", at));
        }
        if !meta.tags.is_empty() {
            query.push(("tags", &tags));
        }
        if serde_urlencoded::to_string(&query)?.len() <= crate::http::parse::MAX_QUERY_LEN {
            return sealed.upload(client, &query).await;
        }
        let envelope = sealed
            .into_bytes(crate::service::JSON_MAX_BYTES)
            .with_context(|| {
                format!(
                    "blob {} has more tags than a query string carries, and only a JSON \
                     upload carries them; nothing was stored",
                    self.id
                )
            })?;
        let body = serde_json::to_vec(&serde_json::json!({
            "scope": meta.scope,
            "org_id": org,
            "payload_base64": base64::engine::general_purpose::STANDARD.encode(&envelope),
            "retention_policy": meta.retention_policy,
            "expires_at": meta.expires_at,
            "tags": meta.tags,
        }))?;
        client
            .call(
                Method::POST,
                "/api/v1/vault/blobs",
                &[],
                Some(Body {
                    bytes: &body,
                    content_type: "application/json",
                }),
                None,
            )
            .await
    }
}
