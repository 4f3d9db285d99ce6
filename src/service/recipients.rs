//! The recipient directory (DESIGN §19): principals publish their age recipients, and an
//! org's members look up who may read others' blobs in a scope, with the recipients to
//! encrypt to. Who is a reader is the access decision's answer (`may_read_others` in the
//! `scopes` crate), over the same scope table and memberships every read is checked against.

use super::access::Question;
use super::{Caller, Vault};
use crate::audit;
use crate::domain::{AgeRecipients, OrgId, Principal, Scope};
use crate::error::VaultError;
use crate::time;
use data_vault_scopes::{may_read_others, RoleSet};
use serde::Serialize;

/// The event of a change to a principal's recipients, on its own chain.
pub(super) const SET_EVENT: &str = "recipients.set";
/// The event of a listing of an org's readers, on the org's chain.
pub(super) const READERS_EVENT: &str = "org.recipients_list";

/// The most readers one listing names: an age envelope carries at most 256 recipient stanzas
/// (docs/envelope-format.md), one of which the `age` crate spends on "grease", so more
/// readers than this could never all be encrypted to.
pub const MAX_READERS: usize = 255;
/// The most members of one org a listing looks through (the member list's own bound).
pub const MAX_MEMBERS_SCANNED: usize = 10_000;

/// A principal's published recipients (`GET /api/v1/vault/recipients/{principal}`).
#[derive(Debug, Clone, Serialize)]
pub struct PublishedRecipients {
    pub principal: String,
    /// Empty when the principal has published none.
    pub recipients: Vec<String>,
    /// RFC 3339; `null` when the principal has published none.
    pub updated_at: Option<String>,
}

/// One member who may read others' blobs in the scope.
#[derive(Debug, Clone, Serialize)]
pub struct Reader {
    pub principal: String,
    pub roles: Vec<String>,
    /// Empty when the reader has published none (it is then in `missing` too).
    pub recipients: Vec<String>,
}

/// `GET /api/v1/vault/orgs/{org}/recipients?scope=S`.
#[derive(Debug, Clone, Serialize)]
pub struct OrgReaders {
    pub org: String,
    pub scope: String,
    pub readers: Vec<Reader>,
    /// The readers with no published recipient: they could not open what is encrypted now.
    pub missing: Vec<String>,
}

fn stored(principal: &str, text: &str) -> Result<Vec<String>, VaultError> {
    AgeRecipients::from_stored(text)
        .map(AgeRecipients::into_vec)
        .map_err(|e| VaultError::Internal(anyhow::anyhow!("stored recipients of {principal}: {e}")))
}

impl Vault {
    /// Replaces the caller's published recipients, audited as `recipients.set` on the
    /// caller's own chain in the same transaction.
    pub async fn set_recipients(
        &self,
        caller: &Caller,
        recipients: &AgeRecipients,
    ) -> Result<PublishedRecipients, VaultError> {
        let mut event = self.event(
            caller,
            audit::owner_chain(caller.principal.as_str()),
            SET_EVENT,
        );
        event.owner = Some(caller.principal.as_str().to_owned());
        // Public keys, recorded so that an unexpected key can be traced to when it appeared.
        event.reason = Some(recipients.as_slice().join(" "));
        self.spend_nonce(caller).await?;
        let now = self.clock.now_secs();
        let seq = self
            .store
            .set_recipients(&caller.principal, &recipients.to_stored(), now, &event)
            .await
            .map_err(|e| self.store_error(e))?;
        self.noted(caller, &event, Some(seq));
        Ok(PublishedRecipients {
            principal: caller.principal.as_str().to_owned(),
            recipients: recipients.as_slice().to_vec(),
            updated_at: Some(time::to_rfc3339(now)),
        })
    }

    /// A principal's published recipients, to any authenticated caller: public keys. A
    /// principal that published none (or does not exist) has an empty list, so the answer
    /// tells no one which principals exist.
    pub async fn recipients_of(
        &self,
        principal: &Principal,
    ) -> Result<PublishedRecipients, VaultError> {
        let found = self.store.recipients_of(principal).await?;
        let (recipients, updated_at) = match found {
            Some((text, at)) => (
                stored(principal.as_str(), &text)?,
                Some(time::to_rfc3339(at)),
            ),
            None => (Vec::new(), None),
        };
        Ok(PublishedRecipients {
            principal: principal.as_str().to_owned(),
            recipients,
            updated_at,
        })
    }

    /// The members of `org` who may read others' blobs in `scope`, with their recipients,
    /// for a member of the org. An unknown scope is 400; a caller who is not a member is
    /// denied through the one access path (403, audited).
    pub async fn org_readers(
        &self,
        caller: &Caller,
        org: &OrgId,
        scope: &Scope,
    ) -> Result<OrgReaders, VaultError> {
        let is_reader = |roles: RoleSet| {
            may_read_others(&self.scopes, scope.as_str(), roles)
                .map_err(|reason| VaultError::BadRequest(reason.message().to_owned()))
        };
        // The scope first: a mistyped scope is the caller's error whoever asks.
        is_reader(RoleSet::default())?;
        let mut event = self.event(caller, audit::org_chain(org.as_str()), READERS_EVENT);
        event.org_id = Some(org.as_str().to_owned());
        event.scope = Some(scope.as_str().to_owned());
        self.authorize(caller, Question::OrgReaders { org, event: &event })
            .await?;
        let scan = i64::try_from(MAX_MEMBERS_SCANNED.saturating_add(1)).unwrap_or(i64::MAX);
        let members = self.store.members_up_to(org, scan).await?;
        if members.len() > MAX_MEMBERS_SCANNED {
            return Err(VaultError::BadRequest(format!(
                "org {org} has more than {MAX_MEMBERS_SCANNED} members; the directory \
                 lists readers of smaller orgs only"
            )));
        }
        let mut readers = Vec::new();
        for (principal, list) in members {
            let roles = RoleSet::parse_list(&list)
                .map_err(|e| VaultError::Internal(anyhow::anyhow!("stored roles of {org}: {e}")))?;
            if is_reader(roles)? {
                readers.push((Principal::parse(&principal)?, roles));
            }
        }
        if readers.len() > MAX_READERS {
            return Err(VaultError::BadRequest(format!(
                "scope {scope} of org {org} has more than {MAX_READERS} readers, more than \
                 one age envelope can be encrypted to",
                scope = scope.as_str()
            )));
        }
        let principals: Vec<Principal> = readers.iter().map(|(p, _)| p.clone()).collect();
        let published = self.store.recipients_of_each(&principals).await?;
        let mut listed = Vec::with_capacity(readers.len());
        let mut missing = Vec::new();
        for (principal, roles) in readers {
            let recipients = match published.iter().find(|(p, _)| p == principal.as_str()) {
                Some((p, text)) => stored(p, text)?,
                None => Vec::new(),
            };
            if recipients.is_empty() {
                missing.push(principal.as_str().to_owned());
            }
            listed.push(Reader {
                principal: principal.as_str().to_owned(),
                roles: roles.iter().map(|r| r.as_str().to_owned()).collect(),
                recipients,
            });
        }
        self.record(caller, &[event]).await?;
        Ok(OrgReaders {
            org: org.as_str().to_owned(),
            scope: scope.as_str().to_owned(),
            readers: listed,
            missing,
        })
    }
}
