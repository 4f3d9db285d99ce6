//! Orgs and memberships: the admin API for org administrators and platform admins, and the
//! admin CLI at bootstrap (which works directly on the database and is not asked). Every
//! operation, allowed or not, is audited.

use super::access::{org_event_type, Question};
use super::{Caller, Vault};
use crate::audit::{self, NewEvent, Outcome};
use crate::domain::{OrgId, Principal};
use crate::error::VaultError;
use data_vault_scopes::{OrgAction, RoleSet};

/// A member as the API lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Member {
    pub principal: String,
    pub roles: Vec<String>,
}

impl Vault {
    fn org_event(&self, caller: &Caller, action: OrgAction, org: &OrgId) -> NewEvent {
        // Creating an org is a platform operation; the rest belong to the org's own chain.
        let chain = match action {
            OrgAction::CreateOrg => audit::SYSTEM_CHAIN.to_owned(),
            _ => audit::org_chain(org.as_str()),
        };
        let mut event = self.event(caller, chain, org_event_type(action));
        event.org_id = Some(org.as_str().to_owned());
        event
    }

    /// Records a request about an org that does not exist, on the caller's chain.
    async fn org_missing(&self, caller: &Caller, mut event: NewEvent) -> VaultError {
        event.chain = audit::owner_chain(caller.principal.as_str());
        event.outcome = Outcome::Error;
        event.denial_reason = Some("not_found");
        match self.record(caller, &[event]).await {
            Ok(()) => VaultError::NotFound("org"),
            Err(e) => e,
        }
    }

    /// Creates an org; `false` if it already existed.
    pub async fn create_org(&self, caller: &Caller, org: &OrgId) -> Result<bool, VaultError> {
        let event = self.org_event(caller, OrgAction::CreateOrg, org);
        self.authorize(
            caller,
            Question::Org {
                action: OrgAction::CreateOrg,
                org,
                event: &event,
            },
        )
        .await?;
        self.spend_nonce(caller).await?;
        let created = self
            .store
            .create_org(org, self.clock.now_secs(), &event)
            .await
            .map_err(|e| self.store_error(e))?;
        self.noted(caller, &event, created);
        let created = created.is_some();
        if !created {
            let mut again = event;
            again.outcome = Outcome::Error;
            again.denial_reason = Some("exists");
            self.record(caller, &[again]).await?;
        }
        Ok(created)
    }

    pub async fn set_member(
        &self,
        caller: &Caller,
        org: &OrgId,
        principal: &Principal,
        roles: RoleSet,
    ) -> Result<(), VaultError> {
        let mut event = self.org_event(caller, OrgAction::SetMember, org);
        event.owner = Some(principal.as_str().to_owned());
        event.reason = Some(format!("roles={}", roles.to_list()));
        self.authorize(
            caller,
            Question::Org {
                action: OrgAction::SetMember,
                org,
                event: &event,
            },
        )
        .await?;
        self.spend_nonce(caller).await?;
        let now = self.clock.now_secs();
        let stored = self
            .store
            .set_member(org, principal, &roles.to_list(), now, &event)
            .await
            .map_err(|e| self.store_error(e))?;
        self.noted(caller, &event, stored);
        if stored.is_some() {
            Ok(())
        } else {
            Err(self.org_missing(caller, event).await)
        }
    }

    pub async fn remove_member(
        &self,
        caller: &Caller,
        org: &OrgId,
        principal: &Principal,
    ) -> Result<(), VaultError> {
        let mut event = self.org_event(caller, OrgAction::RemoveMember, org);
        event.owner = Some(principal.as_str().to_owned());
        self.authorize(
            caller,
            Question::Org {
                action: OrgAction::RemoveMember,
                org,
                event: &event,
            },
        )
        .await?;
        if !self.store.org_exists(org).await? {
            return Err(self.org_missing(caller, event).await);
        }
        self.spend_nonce(caller).await?;
        let removed = self
            .store
            .remove_member(org, principal, &event)
            .await
            .map_err(|e| self.store_error(e))?;
        self.noted(caller, &event, removed);
        if removed.is_some() {
            Ok(())
        } else {
            event.outcome = Outcome::Error;
            event.denial_reason = Some("not_member");
            self.record(caller, &[event]).await?;
            Err(VaultError::NotFound("member"))
        }
    }

    pub async fn list_members(
        &self,
        caller: &Caller,
        org: &OrgId,
    ) -> Result<Vec<Member>, VaultError> {
        let event = self.org_event(caller, OrgAction::ListMembers, org);
        self.authorize(
            caller,
            Question::Org {
                action: OrgAction::ListMembers,
                org,
                event: &event,
            },
        )
        .await?;
        if !self.store.org_exists(org).await? {
            return Err(self.org_missing(caller, event).await);
        }
        let members = self.store.list_members(org).await?;
        self.record(caller, &[event]).await?;
        Ok(members
            .into_iter()
            .map(|(principal, roles)| Member {
                principal,
                roles: roles
                    .split(',')
                    .filter(|r| !r.is_empty())
                    .map(str::to_owned)
                    .collect(),
            })
            .collect())
    }
}
