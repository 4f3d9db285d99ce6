//! Storing, fetching, listing and deleting blobs, each through the access decision.

use super::keys::tenant_of;
use super::{Caller, Vault};
use crate::crypto::{BlobBinding, DataKey};
use crate::domain::{BlobId, Note, OrgId, RetentionPolicy, Scope, Tags};
use crate::envelope;
use crate::error::ApiError;
use crate::store::{BlobRecord, ListQuery};
use crate::time;
use data_vault_scopes::{decide, Action, Decision, RoleSet};
use serde::Serialize;
use std::collections::BTreeMap;

/// A blob to store, already parsed.
#[derive(Debug)]
pub struct NewBlob {
    pub scope: Scope,
    pub org_id: Option<OrgId>,
    pub retention_policy: RetentionPolicy,
    pub expires_at: Option<i64>,
    pub tags: Tags,
    pub envelope: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct ReadParams {
    pub purpose: Option<Note>,
    pub reason: Option<Note>,
    pub org_id: Option<OrgId>,
}

#[derive(Debug)]
pub struct ListParams {
    pub scope: Option<Scope>,
    pub org_id: Option<OrgId>,
    pub limit: i64,
    pub cursor: Option<BlobId>,
}

/// Metadata as clients see it (`M` in DESIGN §5).
#[derive(Debug, Clone, Serialize)]
pub struct BlobMetadata {
    pub id: String,
    pub scope: String,
    pub owner: String,
    pub org_id: Option<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub retention_policy: String,
    pub tags: BTreeMap<String, String>,
    pub size: i64,
    pub content_hash: String,
    pub key_id: String,
    pub key_version: i64,
}

impl From<&BlobRecord> for BlobMetadata {
    fn from(r: &BlobRecord) -> Self {
        Self {
            id: r.id.clone(),
            scope: r.scope.clone(),
            owner: r.owner.clone(),
            org_id: r.org_id.clone(),
            created_at: time::to_rfc3339(r.created_at),
            expires_at: r.expires_at.map(time::to_rfc3339),
            retention_policy: r.retention_policy.clone(),
            // Tags were validated when stored; a row that no longer parses shows none.
            tags: serde_json::from_str(&r.tags_json).unwrap_or_default(),
            size: r.size,
            content_hash: r.content_hash.clone(),
            key_id: r.key_id.clone(),
            key_version: r.key_version,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct BlobPage {
    pub blobs: Vec<BlobMetadata>,
    pub next_cursor: Option<String>,
}

pub const MAX_LIST_LIMIT: i64 = 200;
pub const DEFAULT_LIST_LIMIT: i64 = 50;

fn binding(meta: &BlobRecord) -> BlobBinding<'_> {
    BlobBinding {
        id: &meta.id,
        owner: &meta.owner,
        org: meta.org_id.as_deref(),
        scope: &meta.scope,
    }
}

impl Vault {
    /// The caller's roles in `org`, or `None` when not a member.
    async fn roles_in(&self, caller: &Caller, org: &str) -> Result<Option<RoleSet>, ApiError> {
        let Some(list) = self
            .store
            .member_roles(org, caller.principal.as_str())
            .await?
        else {
            return Ok(None);
        };
        RoleSet::parse_list(&list)
            .map(Some)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored roles of {org}: {e}")))
    }

    /// Runs the access decision for an existing blob, counting a denial.
    async fn authorize(
        &self,
        caller: &Caller,
        action: Action,
        meta: &BlobRecord,
        requested_org: Option<&OrgId>,
        reason: Option<&Note>,
    ) -> Result<(), ApiError> {
        let is_owner = caller.principal.as_str() == meta.owner;
        let caller_roles = match (&meta.org_id, is_owner) {
            (Some(org), false) => self.roles_in(caller, org).await?,
            _ => None,
        };
        let request = data_vault_scopes::Request {
            caller: caller.principal.as_str(),
            action,
            scope: &meta.scope,
            owner: &meta.owner,
            blob_org: meta.org_id.as_deref(),
            requested_org: requested_org.map(OrgId::as_str),
            caller_roles,
            reason: reason.map(Note::as_str),
        };
        self.enforce(&request)
    }

    fn enforce(&self, request: &data_vault_scopes::Request<'_>) -> Result<(), ApiError> {
        match decide(&self.scopes, request) {
            Decision::Allow => Ok(()),
            Decision::Deny(reason) => {
                let action = request.action.as_str();
                self.metrics.denied(self.scope_label(request.scope), action);
                tracing::info!(
                    principal = request.caller,
                    action,
                    scope = request.scope,
                    reason = reason.as_str(),
                    "access denied"
                );
                Err(ApiError::Forbidden(reason))
            }
        }
    }

    /// A scope as a metric label: only scopes of the table, so labels stay bounded.
    fn scope_label<'a>(&self, scope: &'a str) -> &'a str {
        if self.scopes.rule(scope).is_some() {
            scope
        } else {
            "unknown"
        }
    }

    fn count<T>(&self, scope: &str, action: Action, result: &Result<T, ApiError>) {
        self.metrics
            .access(self.scope_label(scope), action.as_str(), result.is_ok());
    }

    pub async fn create_blob(
        &self,
        caller: &Caller,
        new: NewBlob,
    ) -> Result<BlobMetadata, ApiError> {
        let scope = new.scope.as_str().to_owned();
        let result = self.create_blob_inner(caller, new).await;
        self.count(&scope, Action::Create, &result);
        result
    }

    async fn create_blob_inner(
        &self,
        caller: &Caller,
        new: NewBlob,
    ) -> Result<BlobMetadata, ApiError> {
        if self.scopes.rule(new.scope.as_str()).is_none() {
            let known: Vec<&str> = self.scopes.scopes().collect();
            return Err(ApiError::BadRequest(format!(
                "unknown scope {:?}; known scopes: {}",
                new.scope.as_str(),
                known.join(", ")
            )));
        }
        if new.envelope.len() > self.max_payload_bytes {
            return Err(ApiError::PayloadTooLarge(self.max_payload_bytes));
        }
        envelope::check(&new.envelope).map_err(|e| ApiError::InvalidEnvelope(e.0.to_owned()))?;
        let now = time::now_secs();
        if new.expires_at.is_some_and(|at| at <= now) {
            return Err(ApiError::BadRequest(
                "expires_at must be in the future".into(),
            ));
        }
        let org = new.org_id.as_ref().map(OrgId::as_str);
        let caller_roles = match org {
            Some(org) => self.roles_in(caller, org).await?,
            None => None,
        };
        self.enforce(&data_vault_scopes::Request {
            caller: caller.principal.as_str(),
            action: Action::Create,
            scope: new.scope.as_str(),
            owner: caller.principal.as_str(),
            blob_org: org,
            requested_org: org,
            caller_roles,
            reason: None,
        })?;

        let (tenant_record, tenant_key) = self
            .tenant_key(&tenant_of(caller.principal.as_str(), org))
            .await?;
        let record = BlobRecord {
            id: BlobId::new().to_string(),
            scope: new.scope.as_str().to_owned(),
            owner: caller.principal.as_str().to_owned(),
            org_id: org.map(str::to_owned),
            created_at: now,
            expires_at: new.expires_at,
            retention_policy: new.retention_policy.as_str().to_owned(),
            tags_json: new.tags.to_json(),
            size: new.envelope.len() as i64,
            content_hash: data_vault_auth::sha256_hex(&new.envelope),
            key_id: tenant_record.id.clone(),
            key_version: tenant_record.version,
        };
        let sealed = DataKey::seal_new(&tenant_key, &binding(&record), &new.envelope)
            .map_err(|e| ApiError::Internal(e.into()))?;
        self.store
            .insert_blob(&record, &sealed.wrapped_key, &sealed.ciphertext)
            .await?;
        Ok(BlobMetadata::from(&record))
    }

    /// Fetches and opens a blob: the client's envelope, byte for byte.
    pub async fn read_blob(
        &self,
        caller: &Caller,
        id: &BlobId,
        params: &ReadParams,
    ) -> Result<(BlobMetadata, Vec<u8>), ApiError> {
        let mut scope = String::from("unknown");
        let result = self.read_blob_inner(caller, id, params, &mut scope).await;
        self.count(&scope, Action::Read, &result);
        result
    }

    async fn read_blob_inner(
        &self,
        caller: &Caller,
        id: &BlobId,
        params: &ReadParams,
        scope: &mut String,
    ) -> Result<(BlobMetadata, Vec<u8>), ApiError> {
        let blob = self
            .store
            .fetch_blob(&id.to_string())
            .await?
            .ok_or(ApiError::NotFound("blob"))?;
        scope.clone_from(&blob.meta.scope);
        self.authorize(
            caller,
            Action::Read,
            &blob.meta,
            params.org_id.as_ref(),
            params.reason.as_ref(),
        )
        .await?;
        if blob
            .meta
            .expires_at
            .is_some_and(|at| at <= time::now_secs())
        {
            return Err(ApiError::Expired);
        }
        let tenant_key = self.unwrap_tenant_key(
            &blob.tenant,
            blob.meta.key_version,
            &blob.tenant_key_wrapped,
        )?;
        let data_key = tenant_key
            .unwrap_data_key(&binding(&blob.meta), &blob.wrapped_key)
            .map_err(|e| ApiError::Internal(e.into()))?;
        let envelope = data_key
            .open(&binding(&blob.meta), &blob.ciphertext)
            .map_err(|e| ApiError::Internal(e.into()))?;
        Ok((BlobMetadata::from(&blob.meta), envelope))
    }

    pub async fn blob_metadata(
        &self,
        caller: &Caller,
        id: &BlobId,
        params: &ReadParams,
    ) -> Result<BlobMetadata, ApiError> {
        let mut scope = String::from("unknown");
        let result = async {
            let meta = self
                .store
                .blob_meta(&id.to_string())
                .await?
                .ok_or(ApiError::NotFound("blob"))?;
            scope.clone_from(&meta.scope);
            self.authorize(
                caller,
                Action::ReadMetadata,
                &meta,
                params.org_id.as_ref(),
                params.reason.as_ref(),
            )
            .await?;
            if meta.expires_at.is_some_and(|at| at <= time::now_secs()) {
                return Err(ApiError::Expired);
            }
            Ok(BlobMetadata::from(&meta))
        }
        .await;
        self.count(&scope, Action::ReadMetadata, &result);
        result
    }

    pub async fn delete_blob(
        &self,
        caller: &Caller,
        id: &BlobId,
        params: &ReadParams,
    ) -> Result<(), ApiError> {
        let mut scope = String::from("unknown");
        let result = async {
            let meta = self
                .store
                .blob_meta(&id.to_string())
                .await?
                .ok_or(ApiError::NotFound("blob"))?;
            scope.clone_from(&meta.scope);
            self.authorize(caller, Action::Delete, &meta, params.org_id.as_ref(), None)
                .await?;
            if self.store.delete_blob(&meta.id).await? {
                Ok(())
            } else {
                Err(ApiError::NotFound("blob"))
            }
        }
        .await;
        self.count(&scope, Action::Delete, &result);
        result
    }

    /// Lists what the caller may see: their own blobs, and with `org_id` the org's blobs in
    /// the scopes the caller's roles may read (a non-member sees only their own there).
    pub async fn list_blobs(
        &self,
        caller: &Caller,
        params: ListParams,
    ) -> Result<BlobPage, ApiError> {
        let label = params
            .scope
            .as_ref()
            .map_or("all", |s| self.scope_label(s.as_str()))
            .to_owned();
        let result = self.list_blobs_inner(caller, params).await;
        self.metrics.access(&label, "list", result.is_ok());
        result
    }

    async fn list_blobs_inner(
        &self,
        caller: &Caller,
        params: ListParams,
    ) -> Result<BlobPage, ApiError> {
        let org_scopes = match &params.org_id {
            Some(org) => match self.roles_in(caller, org.as_str()).await? {
                Some(roles) => self
                    .scopes
                    .scopes()
                    .filter(|s| {
                        self.scopes
                            .rule(s)
                            .is_some_and(|rule| roles.intersects(rule.read_roles))
                    })
                    .map(str::to_owned)
                    .collect(),
                None => Vec::new(),
            },
            None => Vec::new(),
        };
        let limit = params.limit.clamp(1, MAX_LIST_LIMIT);
        let query = ListQuery {
            owner: caller.principal.as_str().to_owned(),
            org_id: params.org_id.map(|o| o.as_str().to_owned()),
            org_scopes,
            scope: params.scope.map(|s| s.as_str().to_owned()),
            before_id: params.cursor.map(|c| c.to_string()),
            // One more than asked tells whether another page follows.
            limit: limit + 1,
        };
        let mut records = self.store.list_blobs(&query).await?;
        let more = records.len() as i64 > limit;
        records.truncate(limit as usize);
        let next_cursor = if more {
            records.last().map(|r| r.id.clone())
        } else {
            None
        };
        Ok(BlobPage {
            blobs: records.iter().map(BlobMetadata::from).collect(),
            next_cursor,
        })
    }
}
