//! Orgs and memberships, as the admin CLI manages them at bootstrap.

use super::Vault;
use crate::domain::{OrgId, Principal};
use data_vault_scopes::RoleSet;

#[derive(Debug, thiserror::Error)]
pub enum OrgError {
    #[error("org {0:?} does not exist")]
    Missing(String),
    #[error("{0:?} is not a member of org {1:?}")]
    NotMember(String, String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<crate::store::StoreError> for OrgError {
    fn from(e: crate::store::StoreError) -> Self {
        OrgError::Other(e.into())
    }
}

impl Vault {
    /// Creates an org; `false` if it already existed.
    pub async fn create_org(&self, org: &OrgId) -> Result<bool, OrgError> {
        Ok(self
            .store
            .create_org(org.as_str(), crate::time::now_secs())
            .await?)
    }

    pub async fn set_member(
        &self,
        org: &OrgId,
        principal: &Principal,
        roles: RoleSet,
    ) -> Result<(), OrgError> {
        let stored = self
            .store
            .set_member(
                org.as_str(),
                principal.as_str(),
                &roles.to_list(),
                crate::time::now_secs(),
            )
            .await?;
        if stored {
            Ok(())
        } else {
            Err(OrgError::Missing(org.as_str().to_owned()))
        }
    }

    pub async fn remove_member(&self, org: &OrgId, principal: &Principal) -> Result<(), OrgError> {
        if !self.store.org_exists(org.as_str()).await? {
            return Err(OrgError::Missing(org.as_str().to_owned()));
        }
        if self
            .store
            .remove_member(org.as_str(), principal.as_str())
            .await?
        {
            Ok(())
        } else {
            Err(OrgError::NotMember(
                principal.as_str().to_owned(),
                org.as_str().to_owned(),
            ))
        }
    }

    pub async fn list_members(&self, org: &OrgId) -> Result<Vec<(String, String)>, OrgError> {
        if !self.store.org_exists(org.as_str()).await? {
            return Err(OrgError::Missing(org.as_str().to_owned()));
        }
        Ok(self.store.list_members(org.as_str()).await?)
    }
}
