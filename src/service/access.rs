//! The one access path (DESIGN §4). Every authorisation decision of the vault is asked here,
//! and a denial is decided, counted, logged, audited (with any denial spike it completes) and
//! turned into its error in one call, [`Vault::authorize`]. A new feature adds a
//! [`Question`], never a second path.

use super::blobs::{event_type as blob_event_type, ReadParams};
use super::recipients::READERS_EVENT;
use super::{AuthMethod, Caller, Vault};
use crate::audit::{self, ChainName, NewEvent, Outcome};
use crate::domain::{BlobId, Note, OrgId, Principal, Scope};
use crate::error::VaultError;
use crate::spikes::SpikeKind;
use crate::store::BlobRecord;
use data_vault_scopes::{
    decide, decide_compliance, decide_hold, decide_org, decide_org_audit, decide_platform,
    decide_readers_listing, decide_subject, Action, Decision, DenialReason, OrgAction, Request,
    RoleSet,
};

/// What a caller asks to do, with what the decision and a denial's record need.
pub(super) enum Question<'a> {
    /// An operation on an existing blob, decided on its metadata alone.
    Blob {
        action: Action,
        meta: &'a BlobRecord,
        params: &'a ReadParams,
    },
    /// Storing a new blob; `event` is the create event a denial records (on the caller's
    /// chain: the org named may not exist).
    Create {
        scope: &'a Scope,
        org: Option<&'a OrgId>,
        event: &'a NewEvent,
    },
    /// Managing an org or its members; `event` is the operation's own event.
    Org {
        action: OrgAction,
        org: &'a OrgId,
        event: &'a NewEvent,
    },
    /// Listing an org's readers in a scope with their recipients (the recipient directory);
    /// `event` is the listing's own event, on the org's chain.
    OrgReaders { org: &'a OrgId, event: &'a NewEvent },
    /// Reading or verifying an org's whole audit trail.
    OrgAudit {
        org: &'a OrgId,
        event_type: &'static str,
    },
    /// Checkpoints and proofs of any chain (DESIGN §16), seen as `GET /vault/audit/verify`
    /// sees chains: an org's by its auditors (as [`Question::OrgAudit`]), a principal's own
    /// by itself, and `system` by platform admins.
    ChainAudit {
        chain: &'a ChainName,
        event_type: &'static str,
    },
    /// Setting or releasing a blob's legal hold; `event` is the hold event (blob's chain).
    Hold {
        meta: &'a BlobRecord,
        event: &'a NewEvent,
    },
    /// A platform-wide operation (retention policies, purge sweeps); `event` is its own.
    Platform { event: &'a NewEvent },
    /// Export or erasure of `subject`'s data. A denial is recorded on the caller's chain
    /// only: a made-up principal gets no chain.
    Subject {
        subject: &'a Principal,
        event: &'a NewEvent,
    },
    /// The compliance report, platform-wide or (`org`) for one org; a denial is recorded on
    /// the caller's chain.
    Compliance {
        org: Option<&'a OrgId>,
        event: &'a NewEvent,
    },
    /// Listing or rotating tenant keys (DESIGN §15): platform admins; for an org's tenant
    /// (`org`), also that org's administrators. A denial is recorded on the caller's chain.
    Keys {
        org: Option<&'a OrgId>,
        event: &'a NewEvent,
    },
}

pub(super) fn org_event_type(action: OrgAction) -> &'static str {
    match action {
        OrgAction::CreateOrg => "org.create",
        OrgAction::SetMember => "org.member_set",
        OrgAction::RemoveMember => "org.member_remove",
        OrgAction::ListMembers => "org.member_list",
    }
}

impl Vault {
    /// Decides `question` for `caller`. Allowed: `Ok`. Denied: the denial is counted in
    /// `access_denied_total`, logged, recorded on the chain it concerns (with a redacted copy
    /// on the caller's own), fed to the spike detector, and answered 403.
    pub(super) async fn authorize(
        &self,
        caller: &Caller,
        question: Question<'_>,
    ) -> Result<(), VaultError> {
        let decision = self.decide(caller, &question).await?;
        let Decision::Deny(reason) = decision else {
            return Ok(());
        };
        // Each arm also says which existing org the denial concerns, for the spike detector:
        // only an org that exists has a chain to record an org spike on, and a burst against
        // a made-up name harms no tenant and must not open a chain for it.
        let (label, action, mut event, org) = match question {
            Question::Blob {
                action,
                meta,
                params,
            } => (
                self.scope_label(&meta.scope),
                action.as_str(),
                self.blob_event(caller, action, meta, params),
                // A blob's org exists: storing into it needed a membership of it.
                meta.org_id.as_ref(),
            ),
            Question::Create { scope, org, event } => (
                self.scope_label(scope.as_str()),
                Action::Create.as_str(),
                event.clone(),
                self.existing(org).await?,
            ),
            Question::Org { action, org, event } => {
                let mut event = event.clone();
                let org = self.existing(Some(org)).await?;
                // A request naming an org that does not exist opens no chain for it.
                if event.chain != audit::SYSTEM_CHAIN && org.is_none() {
                    event.chain = audit::owner_chain(caller.principal.as_str());
                }
                ("org", org_event_type(action), event, org)
            }
            Question::OrgReaders { org, event } => {
                let mut event = event.clone();
                let org = self.existing(Some(org)).await?;
                // A request naming an org that does not exist opens no chain for it.
                if org.is_none() {
                    event.chain = audit::owner_chain(caller.principal.as_str());
                }
                ("org", READERS_EVENT, event, org)
            }
            Question::OrgAudit { org, event_type } => {
                let mut event = self.event(
                    caller,
                    audit::owner_chain(caller.principal.as_str()),
                    event_type,
                );
                event.org_id = Some(org.as_str().to_owned());
                (
                    "audit",
                    "audit_query",
                    event,
                    self.existing(Some(org)).await?,
                )
            }
            Question::ChainAudit { chain, event_type } => {
                let mut event = self.event(
                    caller,
                    audit::owner_chain(caller.principal.as_str()),
                    event_type,
                );
                // What it asked for is its own choice of words: recorded as asked.
                event.reason = Some(format!("chain={}", chain.to_chain()));
                let org = match chain {
                    ChainName::Org(org) => {
                        event.org_id = Some(org.as_str().to_owned());
                        self.existing(Some(org)).await?
                    }
                    _ => None,
                };
                ("audit", "audit_query", event, org)
            }
            Question::Hold { meta, event } => (
                self.scope_label(&meta.scope),
                event.event_type,
                event.clone(),
                meta.org_id.as_ref(),
            ),
            Question::Platform { event } => ("platform", event.event_type, event.clone(), None),
            Question::Subject { event, .. } => {
                let mut event = event.clone();
                event.chain = audit::owner_chain(caller.principal.as_str());
                ("subject", event.event_type, event, None)
            }
            Question::Keys { org, event } => {
                let mut event = event.clone();
                event.chain = audit::owner_chain(caller.principal.as_str());
                ("keys", event.event_type, event, self.existing(org).await?)
            }
            Question::Compliance { org, event } => {
                let mut event = event.clone();
                event.chain = audit::owner_chain(caller.principal.as_str());
                (
                    "compliance",
                    event.event_type,
                    event,
                    self.existing(org).await?,
                )
            }
        };
        self.metrics.denied(label, action);
        tracing::info!(
            principal = caller.principal.as_str(),
            action,
            scope = label,
            reason = reason.as_str(),
            "access denied"
        );
        event.outcome = Outcome::Denied;
        event.denial_reason = Some(reason.as_str());
        self.record_denial(caller, event, org).await?;
        Err(VaultError::Forbidden(reason))
    }

    /// The pure decision of the `scopes` crate, over the facts looked up for it.
    async fn decide(
        &self,
        caller: &Caller,
        question: &Question<'_>,
    ) -> Result<Decision, VaultError> {
        let principal = caller.principal.as_str();
        Ok(match question {
            Question::Blob {
                action,
                meta,
                params,
            } => {
                let caller_roles = match &meta.org_id {
                    Some(org) if principal != meta.owner => self.roles_in(caller, org).await?,
                    _ => None,
                };
                decide(
                    &self.scopes,
                    &Request {
                        caller: principal,
                        action: *action,
                        scope: &meta.scope,
                        owner: &meta.owner,
                        blob_org: meta.org_id.as_ref().map(OrgId::as_str),
                        requested_org: params.org_id.as_ref().map(OrgId::as_str),
                        caller_roles,
                        reason: params.reason.as_ref().map(Note::as_str),
                    },
                )
            }
            Question::Create { scope, org, .. } => {
                let caller_roles = match org {
                    Some(org) => self.roles_in(caller, org).await?,
                    None => None,
                };
                let org = org.map(OrgId::as_str);
                decide(
                    &self.scopes,
                    &Request {
                        caller: principal,
                        action: Action::Create,
                        scope: scope.as_str(),
                        owner: principal,
                        blob_org: org,
                        requested_org: org,
                        caller_roles,
                        reason: None,
                    },
                )
            }
            // The operator at the admin CLI works on the database directly, unasked.
            Question::Org { .. } if caller.method == AuthMethod::Local => Decision::Allow,
            Question::Org { action, org, .. } => decide_org(
                *action,
                self.is_platform_admin(&caller.principal),
                self.roles_in(caller, org).await?,
            ),
            Question::OrgReaders { org, .. } => {
                decide_readers_listing(self.roles_in(caller, org).await?)
            }
            Question::OrgAudit { org, .. } => decide_org_audit(
                self.is_platform_admin(&caller.principal),
                self.roles_in(caller, org).await?,
            ),
            Question::ChainAudit {
                chain: ChainName::Org(org),
                ..
            } => decide_org_audit(
                self.is_platform_admin(&caller.principal),
                self.roles_in(caller, org).await?,
            ),
            Question::ChainAudit {
                chain: ChainName::Owner(owner),
                ..
            } if *owner == caller.principal => Decision::Allow,
            Question::ChainAudit {
                chain: ChainName::Owner(_),
                ..
            } => Decision::Deny(DenialReason::NotOwner),
            Question::ChainAudit {
                chain: ChainName::System,
                ..
            } if self.is_platform_admin(&caller.principal) => Decision::Allow,
            Question::ChainAudit {
                chain: ChainName::System,
                ..
            } => Decision::Deny(DenialReason::PlatformAdminRequired),
            // The operator at the admin CLI governs the data directly.
            Question::Hold { .. }
            | Question::Platform { .. }
            | Question::Subject { .. }
            | Question::Compliance { .. }
            | Question::Keys { .. }
                if caller.method == AuthMethod::Local =>
            {
                Decision::Allow
            }
            Question::Hold { meta, .. } => {
                let roles = match &meta.org_id {
                    Some(org) => self.roles_in(caller, org).await?,
                    None => None,
                };
                decide_hold(
                    self.is_platform_admin(&caller.principal),
                    meta.org_id.is_some(),
                    roles,
                )
            }
            Question::Platform { .. } => decide_platform(self.is_platform_admin(&caller.principal)),
            Question::Subject { subject, .. } => decide_subject(
                caller.principal == **subject,
                self.is_platform_admin(&caller.principal),
            ),
            // The same rule as the compliance report: platform-wide for platform admins,
            // one org's for its administrators.
            Question::Keys { org, .. } | Question::Compliance { org, .. } => {
                let roles = match org {
                    Some(org) => self.roles_in(caller, org).await?,
                    None => None,
                };
                decide_compliance(
                    self.is_platform_admin(&caller.principal),
                    org.is_some(),
                    roles,
                )
            }
        })
    }

    /// A blob's metadata, once the caller may perform `action` on it: unknown ids are
    /// recorded on the caller's chain and answered 404; then the scope's and org's rate
    /// limits apply; then the decision. Failures here are counted in `access_total`; the
    /// caller counts what follows.
    pub(super) async fn load_authorized(
        &self,
        caller: &Caller,
        id: &BlobId,
        action: Action,
        params: &ReadParams,
    ) -> Result<BlobRecord, VaultError> {
        let Some(meta) = self.store.blob_meta(id).await? else {
            self.metrics.access("unknown", action.as_str(), false);
            self.record_not_found(caller, action, id, params).await?;
            return Err(VaultError::NotFound("blob"));
        };
        let allowed = async {
            self.limit_scope(caller, &meta.scope).await?;
            self.limit_org(meta.org_id.as_ref().map(OrgId::as_str))
                .await?;
            self.authorize(
                caller,
                Question::Blob {
                    action,
                    meta: &meta,
                    params,
                },
            )
            .await
        }
        .await;
        match allowed {
            Ok(()) => Ok(meta),
            Err(e) => {
                self.metrics
                    .access(self.scope_label(&meta.scope), action.as_str(), false);
                Err(e)
            }
        }
    }

    /// Records a request for a blob id that does not exist, on the caller's own chain.
    pub(super) async fn record_not_found(
        &self,
        caller: &Caller,
        action: Action,
        id: &BlobId,
        params: &ReadParams,
    ) -> Result<(), VaultError> {
        let mut event = self.event(
            caller,
            audit::owner_chain(caller.principal.as_str()),
            blob_event_type(action),
        );
        event.blob_id = Some(id.to_string());
        event.purpose = params.purpose.as_ref().map(|n| n.as_str().to_owned());
        event.reason = params.reason.as_ref().map(|n| n.as_str().to_owned());
        event.outcome = Outcome::Error;
        event.denial_reason = Some("not_found");
        self.record(caller, &[event]).await
    }

    /// The caller's roles in `org`, or `None` when not a member.
    pub(super) async fn roles_in(
        &self,
        caller: &Caller,
        org: &OrgId,
    ) -> Result<Option<RoleSet>, VaultError> {
        let Some(list) = self.store.member_roles(org, &caller.principal).await? else {
            return Ok(None);
        };
        RoleSet::parse_list(&list)
            .map(Some)
            .map_err(|e| VaultError::Internal(anyhow::anyhow!("stored roles of {org}: {e}")))
    }

    /// `org` if it exists.
    async fn existing<'o>(&self, org: Option<&'o OrgId>) -> Result<Option<&'o OrgId>, VaultError> {
        match org {
            Some(org) if self.store.org_exists(org).await? => Ok(Some(org)),
            _ => Ok(None),
        }
    }

    /// A scope as a metric label: only scopes of the table, so labels stay bounded.
    pub(super) fn scope_label<'a>(&self, scope: &'a str) -> &'a str {
        if self.scopes.rule(scope).is_some() {
            scope
        } else {
            "unknown"
        }
    }

    /// Appends a denial, and with it any denial spike it completes (DESIGN §10): the spike's
    /// `security.denial_spike` event and, if configured, the block of the principal.
    ///
    /// The full event goes to the chain it concerns (the blob's tenant, the org), for that
    /// tenant's auditors. When that is not the requester's own chain, the requester's chain
    /// gets a redacted copy instead of a view of the target's (DESIGN §4 rule 5): what it
    /// asked for and why it was refused, nothing of the blob's owner, org or scope. `org` is
    /// the existing org the denial concerns, if any: the one an org spike is counted against.
    async fn record_denial(
        &self,
        caller: &Caller,
        denied: NewEvent,
        org: Option<&OrgId>,
    ) -> Result<(), VaultError> {
        let own_chain = audit::owner_chain(&denied.requester);
        let mut events = vec![denied.clone()];
        if denied.chain != own_chain {
            events.push(redacted_copy(&denied, own_chain));
        }
        let Some(spikes) = &self.abuse.spikes else {
            return self.record(caller, &events).await;
        };
        let now = self.clock.now_millis();
        let org = org.map(OrgId::as_str);
        for spike in spikes.observe(&denied.requester, org, now).await {
            self.metrics.denial_spike(spike.kind.as_str());
            tracing::warn!(kind = spike.kind.as_str(), subject = %spike.subject, "denial spike");
            let (chain, org_id, reason) = match spike.kind {
                SpikeKind::Principal => (
                    audit::owner_chain(&spike.subject),
                    None,
                    "principal_denial_spike",
                ),
                SpikeKind::Org => (
                    audit::org_chain(&spike.subject),
                    Some(spike.subject.clone()),
                    "org_denial_spike",
                ),
            };
            let mut event = denial_event(&denied, chain, "security.denial_spike", reason);
            event.org_id = org_id;
            event.reason = Some(format!(
                "{} denials within {} s",
                spikes.settings().threshold,
                spikes.settings().window_secs
            ));
            events.push(event);
            if let (SpikeKind::Principal, Some(block_secs)) =
                (spike.kind, spikes.settings().block_secs)
            {
                spikes
                    .block(
                        &spike.subject,
                        now.saturating_add(
                            i64::try_from(block_secs)
                                .unwrap_or(i64::MAX)
                                .saturating_mul(1000),
                        ),
                        now,
                    )
                    .await;
                self.metrics
                    .principals_blocked
                    .set(spikes.blocked_count(now));
                let mut block = denial_event(
                    &denied,
                    audit::owner_chain(&spike.subject),
                    "security.principal_blocked",
                    reason,
                );
                block.reason = Some(format!("blocked for {block_secs} s"));
                events.push(block);
            }
        }
        self.record(caller, &events).await
    }
}

/// A security event raised by the request that made `denied`.
fn denial_event(
    denied: &NewEvent,
    chain: String,
    event_type: &'static str,
    reason: &'static str,
) -> NewEvent {
    let mut event = NewEvent::new(
        chain,
        event_type,
        &denied.requester,
        denied.auth_method,
        &denied.request_id,
        denied.timestamp_ms,
    );
    event.outcome = Outcome::Denied;
    event.denial_reason = Some(reason);
    event
}

/// The requester's own record of a denied request about something it may not see: the same
/// request (type, blob id, its purpose and reason, outcome, denial reason) on its own chain,
/// without the target's owner, org or scope. Requests that name no blob keep the org they
/// named, which the requester chose itself.
fn redacted_copy(denied: &NewEvent, own_chain: String) -> NewEvent {
    let mut copy = denied.clone();
    copy.id = uuid::Uuid::now_v7().to_string();
    copy.chain = own_chain;
    if copy.blob_id.is_some() {
        copy.scope = None;
        copy.owner = None;
        copy.org_id = None;
    }
    copy
}
