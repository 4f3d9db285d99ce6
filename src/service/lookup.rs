//! Look-ups for the operator at the admin CLI (DESIGN §20): the orgs, and everything that
//! decides how one principal's requests are answered, so a 401 or a 403 is triaged without
//! SQL. Each look-up is an admin operation, audited on the `system` chain like `client.list`.

use super::{Caller, SecretAge, Vault};
use crate::audit::SYSTEM_CHAIN;
use crate::domain::{ClientName, Principal};
use crate::error::VaultError;

/// Most orgs `admin org list` shows, and most orgs one principal's look-up lists.
pub const MAX_ORGS_LISTED: i64 = 10_000;

/// One org as `admin org list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OrgSummary {
    pub org: String,
    /// RFC 3339.
    pub created_at: String,
    pub members: i64,
}

/// A principal's membership of one org.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OrgRoles {
    pub org: String,
    pub roles: Vec<String>,
}

/// The HMAC credentials of a principal that is a registered client.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClientState {
    /// Live secrets, newest first.
    pub secrets: Vec<SecretAge>,
    pub revoked: bool,
}

/// `admin principal show NAME --json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PrincipalOverview {
    pub principal: String,
    pub orgs: Vec<OrgRoles>,
    /// `None` when the principal is not an HMAC client (a wallet, or an unknown name).
    pub client: Option<ClientState>,
    /// Published age recipients (empty when none).
    pub recipients: Vec<String>,
    /// Whether `admin principal block` refuses its wallet requests.
    pub blocked: bool,
}

fn role_list(roles: &str) -> Vec<String> {
    roles
        .split(',')
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Vault {
    /// Every org (up to [`MAX_ORGS_LISTED`]) with its member count, by id.
    pub async fn list_orgs(&self, caller: &Caller) -> Result<Vec<OrgSummary>, VaultError> {
        let orgs = self.store.list_orgs(MAX_ORGS_LISTED).await?;
        let event = self.event(caller, SYSTEM_CHAIN.to_owned(), "org.list");
        self.record(caller, &[event]).await?;
        Ok(orgs
            .into_iter()
            .map(|(org, created_at, members)| OrgSummary {
                org,
                created_at: crate::time::to_rfc3339(created_at),
                members,
            })
            .collect())
    }

    /// What the vault knows of `principal`: memberships and roles, client credentials,
    /// recipients and block. An unknown principal has empty answers, not an error: that is
    /// itself the finding (a 401 for a name no client has).
    pub async fn principal_overview(
        &self,
        caller: &Caller,
        principal: &Principal,
    ) -> Result<PrincipalOverview, VaultError> {
        let now = self.clock.now_secs();
        let orgs = self.store.orgs_of(principal, MAX_ORGS_LISTED).await?;
        // A wallet address is no client name; such a principal has no HMAC credentials.
        let client = match ClientName::parse(principal.as_str()) {
            Ok(name) => self.store.client_summary(&name).await?,
            Err(_) => None,
        };
        let recipients = self.recipients_of(principal).await?.recipients;
        let blocked = self.store.principal_block(principal).await?.is_some();
        let mut event = self.event(caller, SYSTEM_CHAIN.to_owned(), "principal.show");
        event.owner = Some(principal.as_str().to_owned());
        self.record(caller, &[event]).await?;
        Ok(PrincipalOverview {
            principal: principal.as_str().to_owned(),
            orgs: orgs
                .into_iter()
                .map(|(org, roles)| OrgRoles {
                    org,
                    roles: role_list(&roles),
                })
                .collect(),
            client: client.map(|c| ClientState {
                secrets: SecretAge::of_all(c.secrets, now),
                revoked: c.revoked_at.is_some(),
            }),
            recipients,
            blocked,
        })
    }
}
