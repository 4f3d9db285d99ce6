//! `data-vault blob ...`: encrypt to age recipients and upload; download and decrypt; inspect,
//! list and delete. Credentials come from flags or the environment.

use super::client::{Body, ClientAuth, VaultClient};
use super::open::{Destination, Identities};
use anyhow::Context;
use clap::{Args, Subcommand};
use reqwest::Method;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

#[derive(Debug, Args)]
pub struct Connection {
    /// Base URL of the vault [default: http://<server.listen> of the configuration given
    /// with --config or DATA_VAULT_CONFIG, else http://127.0.0.1:8080].
    #[arg(long, env = "DATA_VAULT_URL")]
    url: Option<String>,
    /// HMAC client name.
    #[arg(long, env = "DATA_VAULT_PRINCIPAL")]
    principal: Option<String>,
    /// File holding the client secret (or set DATA_VAULT_SECRET).
    #[arg(long)]
    secret_file: Option<PathBuf>,
    /// Act as a wallet principal: a file holding a hex private key or a BIP-39 mnemonic (or
    /// set DATA_VAULT_WALLET_KEY). Requests are then signed ADR-036 style, not with HMAC.
    #[arg(long)]
    wallet_key_file: Option<PathBuf>,
    /// Bech32 prefix of the wallet address.
    #[arg(long, env = "DATA_VAULT_WALLET_PREFIX", default_value = "virtengine")]
    wallet_prefix: String,
    /// PEM file of the CA that issued the vault's TLS certificate, when it is not a publicly
    /// trusted one.
    #[arg(long, env = "DATA_VAULT_CA_CERT")]
    ca_cert: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum BlobCommand {
    /// Encrypt FILE to the recipients with age and upload it; prints the metadata.
    Put {
        #[command(flatten)]
        connection: Connection,
        /// File to store ("-" for standard input).
        file: PathBuf,
        #[arg(long)]
        scope: String,
        #[arg(long)]
        org: Option<String>,
        /// age recipient (age1...); repeat for several readers.
        #[arg(long = "recipient", required_unless_present = "to_readers")]
        recipients: Vec<String>,
        /// Encrypt also to your own published recipients and to every member of --org who
        /// may read others' blobs in --scope, as the recipient directory names them; warns
        /// about readers who published no recipient.
        #[arg(long, requires = "org")]
        to_readers: bool,
        /// Expiry as an RFC 3339 time.
        #[arg(long)]
        expires_at: Option<String>,
        #[arg(long)]
        retention_policy: Option<String>,
        /// A tag KEY=VALUE; repeat for several.
        #[arg(long = "tag", value_parser = tag_of)]
        tags: Vec<(String, String)>,
    },
    /// Download a blob and decrypt it with an age identity file.
    Get {
        #[command(flatten)]
        connection: Connection,
        id: String,
        /// age identity file (AGE-SECRET-KEY-1...).
        #[arg(long)]
        identity: PathBuf,
        /// Where to write the plaintext ("-" for standard output).
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        purpose: Option<String>,
        #[arg(long)]
        org: Option<String>,
    },
    /// Re-encrypt a blob for the readers of its scope and org as they are now: download it,
    /// decrypt it with your identity, encrypt it to you and the current readers, and store it
    /// as a new blob with the same scope, org, tags, retention policy and expiry. Prints the
    /// new id. The old blob stays unless --delete-old is given.
    Reshare {
        #[command(flatten)]
        connection: Connection,
        id: String,
        /// Encrypt to the current readers (the recipient directory); required.
        #[arg(long, required = true)]
        to_readers: bool,
        /// age identity file (AGE-SECRET-KEY-1...) that opens the blob.
        #[arg(long)]
        identity: PathBuf,
        /// Why you read the blob (required in most scopes unless you own it).
        #[arg(long)]
        reason: Option<String>,
        /// Delete the old blob once the new one is stored (its owner or an org administrator).
        #[arg(long)]
        delete_old: bool,
    },
    /// Print a blob's metadata.
    Meta {
        #[command(flatten)]
        connection: Connection,
        id: String,
    },
    /// Delete a blob.
    Rm {
        #[command(flatten)]
        connection: Connection,
        id: String,
    },
    /// Put a blob under legal hold (org administrators; platform admins for personal blobs).
    Hold {
        #[command(flatten)]
        connection: Connection,
        id: String,
        /// Why (case number, request): recorded in the audit trail.
        #[arg(long)]
        reason: String,
    },
    /// Release a blob's legal hold.
    Release {
        #[command(flatten)]
        connection: Connection,
        id: String,
        /// Why the hold ends, for the audit trail.
        #[arg(long)]
        reason: Option<String>,
    },
    /// List the blobs you may see.
    Ls {
        #[command(flatten)]
        connection: Connection,
        #[arg(long)]
        scope: Option<String>,
        #[arg(long)]
        org: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        cursor: Option<String>,
    },
}

/// The vault's URL when neither `--url` nor `DATA_VAULT_URL` names one: derived once, at
/// start-up, from the configuration's `server` section ([`set_default_url`]).
static DEFAULT_URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Where a client command connects by default: the API address of the configuration it was
/// given, so `--config` means the same server for `admin` and `blob` commands.
pub(super) fn set_default_url(server: &crate::config::ServerConfig) {
    let _ = DEFAULT_URL.set(api_url(&server.listen, server.tls_cert_file.is_some()));
}

/// The URL a client uses to reach a server listening on `listen`, over TLS when the server
/// has a certificate (it then speaks nothing else on that port).
fn api_url(listen: &str, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    match listen.parse::<std::net::SocketAddr>() {
        // A server listening on every interface is reached on loopback.
        Ok(addr) if addr.ip().is_unspecified() => {
            let loopback: std::net::IpAddr = match addr {
                std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            };
            format!(
                "{scheme}://{}",
                std::net::SocketAddr::new(loopback, addr.port())
            )
        }
        _ => format!("{scheme}://{listen}"),
    }
}

impl Connection {
    /// The vault's base URL: `--url` / `DATA_VAULT_URL`, else the configuration's.
    pub(super) fn base_url(&self) -> String {
        match &self.url {
            Some(url) => url.clone(),
            None => DEFAULT_URL
                .get()
                .cloned()
                .unwrap_or_else(|| "http://127.0.0.1:8080".to_owned()),
        }
    }

    pub(super) fn client(&self) -> anyhow::Result<VaultClient> {
        let wallet_key = match (
            &self.wallet_key_file,
            std::env::var("DATA_VAULT_WALLET_KEY"),
        ) {
            (Some(path), _) => Some(Zeroizing::new(
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?,
            )),
            (None, Ok(key)) => Some(Zeroizing::new(key)),
            (None, Err(_)) => None,
        };
        let url = self.base_url();
        let connect = |auth| match &self.ca_cert {
            Some(ca) => VaultClient::trusting(&url, auth, ca, 4),
            None => VaultClient::new(&url, auth),
        };
        if let Some(key) = wallet_key {
            return connect(ClientAuth::wallet(&key, &self.wallet_prefix)?);
        }
        let principal = self.principal.clone().context(
            "no credentials: pass --principal and a secret (HMAC), or --wallet-key-file",
        )?;
        let secret = match (&self.secret_file, std::env::var("DATA_VAULT_SECRET")) {
            (Some(path), _) => Zeroizing::new(
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?
                    .trim()
                    .to_owned(),
            ),
            (None, Ok(secret)) => Zeroizing::new(secret.trim().to_owned()),
            (None, Err(_)) => {
                anyhow::bail!("no secret: pass --secret-file or set DATA_VAULT_SECRET")
            }
        };
        connect(ClientAuth::Hmac { principal, secret })
    }
}

/// A `--tag KEY=VALUE`.
fn tag_of(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("a tag is KEY=VALUE, not {text:?}")),
    }
}

pub(super) fn blob_path(id: &str) -> anyhow::Result<String> {
    let id = crate::domain::BlobId::parse(id)?;
    Ok(format!("/api/v1/vault/blobs/{id}"))
}

async fn print_json(response: reqwest::Response) -> anyhow::Result<()> {
    let value: serde_json::Value = response.json().await?;
    out!("{}", serde_json::to_string_pretty(&value)?)?;
    Ok(())
}

pub async fn run(command: BlobCommand) -> anyhow::Result<()> {
    match command {
        BlobCommand::Put {
            connection,
            file,
            scope,
            org,
            recipients,
            to_readers,
            expires_at,
            retention_policy,
            tags,
        } => {
            let client = connection.client()?;
            let recipients = match (&org, to_readers) {
                (Some(org), true) => {
                    super::recipients::to_readers(&client, org, &scope, &recipients).await?
                }
                _ => recipients,
            };
            let sealed = super::seal::seal_input(file, recipients).await?;
            let mut query = vec![("scope", scope.as_str())];
            if let Some(org) = &org {
                query.push(("org_id", org));
            }
            if let Some(at) = &expires_at {
                query.push(("expires_at", at));
            }
            if let Some(policy) = &retention_policy {
                query.push(("retention_policy", policy));
            }
            let tags = serde_json::to_string(&tags.into_iter().collect::<BTreeMap<_, _>>())?;
            if tags != "{}" {
                query.push(("tags", &tags));
            }
            let response = sealed.upload(&client, &query).await?;
            let value: serde_json::Value = response.json().await?;
            out!(
                "{}",
                serde_json::to_string_pretty(
                    value.get("metadata").unwrap_or(&serde_json::Value::Null)
                )?
            )?;
        }
        BlobCommand::Get {
            connection,
            id,
            identity,
            output,
            reason,
            purpose,
            org,
        } => {
            let client = connection.client()?;
            // The identity and the destination are checked before the (audited) read.
            let identities = Identities::load(&identity)?;
            let destination = Destination::create(&output)?;
            let mut query = Vec::new();
            for (key, value) in [("reason", &reason), ("purpose", &purpose), ("org_id", &org)] {
                if let Some(value) = value {
                    query.push((key, value.as_str()));
                }
            }
            let response = client
                .call(
                    Method::GET,
                    &blob_path(&id)?,
                    &query,
                    None,
                    Some("application/octet-stream"),
                )
                .await?;
            let written = destination.receive(response, identities).await?;
            if output != Path::new("-") {
                eprintln!("wrote {written} bytes to {}", output.display());
            }
        }
        BlobCommand::Reshare {
            connection,
            id,
            to_readers: _,
            identity,
            reason,
            delete_old,
        } => {
            let request = super::reshare::Reshare {
                id: &id,
                identity: &identity,
                reason: reason.as_deref(),
                delete_old,
            };
            request.run(&connection.client()?).await?;
        }
        BlobCommand::Meta { connection, id } => {
            let client = connection.client()?;
            let path = format!("{}/metadata", blob_path(&id)?);
            print_json(client.call(Method::GET, &path, &[], None, None).await?).await?;
        }
        BlobCommand::Rm { connection, id } => {
            let client = connection.client()?;
            client
                .call(Method::DELETE, &blob_path(&id)?, &[], None, None)
                .await?;
            out!("deleted {id}")?;
        }
        BlobCommand::Hold {
            connection,
            id,
            reason,
        } => {
            let client = connection.client()?;
            let body = serde_json::to_vec(&serde_json::json!({ "reason": reason }))?;
            let body = Body {
                bytes: &body,
                content_type: "application/json",
            };
            let path = format!("{}/hold", blob_path(&id)?);
            print_json(
                client
                    .call(Method::PUT, &path, &[], Some(body), None)
                    .await?,
            )
            .await?;
        }
        BlobCommand::Release {
            connection,
            id,
            reason,
        } => {
            let client = connection.client()?;
            let body = reason
                .map(|reason| serde_json::to_vec(&serde_json::json!({ "reason": reason })))
                .transpose()?;
            let body = body.as_deref().map(|bytes| Body {
                bytes,
                content_type: "application/json",
            });
            let path = format!("{}/hold", blob_path(&id)?);
            print_json(client.call(Method::DELETE, &path, &[], body, None).await?).await?;
        }
        BlobCommand::Ls {
            connection,
            scope,
            org,
            limit,
            cursor,
        } => {
            let client = connection.client()?;
            let limit = limit.map(|l| l.to_string());
            let mut query = Vec::new();
            for (key, value) in [
                ("scope", &scope),
                ("org_id", &org),
                ("limit", &limit),
                ("cursor", &cursor),
            ] {
                if let Some(value) = value {
                    query.push((key, value.as_str()));
                }
            }
            print_json(
                client
                    .call(Method::GET, "/api/v1/vault/blobs", &query, None, None)
                    .await?,
            )
            .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::api_url;

    #[test]
    fn a_server_on_every_interface_is_reached_on_loopback() {
        assert_eq!(api_url("0.0.0.0:8080", false), "http://127.0.0.1:8080");
        assert_eq!(api_url("[::]:8443", false), "http://[::1]:8443");
        assert_eq!(api_url("10.1.2.3:9000", false), "http://10.1.2.3:9000");
    }

    #[test]
    fn a_server_with_a_certificate_is_reached_over_https() {
        assert_eq!(api_url("0.0.0.0:8443", true), "https://127.0.0.1:8443");
        assert_eq!(
            api_url("vault.internal:8443", true),
            "https://vault.internal:8443"
        );
    }
}
