//! Storing, fetching, listing and deleting blobs, each through the access decision.

use super::access::Question;
use super::keys::tenant_of;
use super::objects::{Envelope, LargeUpload, ReadForm, Streamed};
use super::{Caller, Vault};
use crate::audit::{self, NewEvent, Outcome};
use crate::crypto::{BlobBinding, DataKey, TenantKey};
use crate::domain::{BlobId, Note, OrgId, RetentionPolicy, Scope, Tags};
use crate::envelope;
use crate::error::VaultError;
use crate::offload;
use crate::store::{BlobRecord, BlobWrite};
use crate::time;
use data_vault_scopes::Action;
use serde::Serialize;
use sha2::Digest;
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

/// Metadata as clients see it (`M` in DESIGN §5).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
    pub legal_hold: bool,
    /// When the blob was crypto-shredded (DESIGN §12); its content is then gone.
    pub purged_at: Option<String>,
}

impl From<&BlobRecord> for BlobMetadata {
    fn from(r: &BlobRecord) -> Self {
        Self {
            id: r.id.clone(),
            scope: r.scope.clone(),
            owner: r.owner.clone(),
            org_id: r.org_id.as_ref().map(|o| o.as_str().to_owned()),
            created_at: time::to_rfc3339(r.created_at),
            expires_at: r.expires_at.map(time::to_rfc3339),
            retention_policy: r.retention_policy.clone(),
            // Tags were validated when stored; a row that no longer parses shows none.
            tags: serde_json::from_str(&r.tags_json).unwrap_or_default(),
            size: r.size,
            content_hash: r.content_hash.clone(),
            key_id: r.key_id.clone(),
            key_version: r.key_version,
            legal_hold: r.legal_hold,
            purged_at: r.purged_at.map(time::to_rfc3339),
        }
    }
}

pub(super) fn binding(meta: &BlobRecord) -> BlobBinding<'_> {
    BlobBinding {
        id: &meta.id,
        owner: &meta.owner,
        org: meta.org_id.as_ref().map(OrgId::as_str),
        scope: &meta.scope,
    }
}

pub(super) fn event_type(action: Action) -> &'static str {
    match action {
        Action::Create => "blob.create",
        Action::Read => "blob.read",
        Action::ReadMetadata => "blob.read_metadata",
        Action::Delete => "blob.delete",
    }
}

fn with_outcome(mut event: NewEvent, outcome: Outcome, reason: Option<&'static str>) -> NewEvent {
    event.outcome = outcome;
    event.denial_reason = reason;
    event
}

impl Vault {
    /// An event about an existing blob, on its tenant's chain.
    pub(super) fn blob_event(
        &self,
        caller: &Caller,
        action: Action,
        meta: &BlobRecord,
        params: &ReadParams,
    ) -> NewEvent {
        let mut event = self.event(
            caller,
            tenant_of(&meta.owner, meta.org_id.as_ref().map(OrgId::as_str)),
            event_type(action),
        );
        event.blob_id = Some(meta.id.clone());
        event.scope = Some(meta.scope.clone());
        event.owner = Some(meta.owner.clone());
        event.org_id = meta.org_id.as_ref().map(|o| o.as_str().to_owned());
        event.purpose = params.purpose.as_ref().map(|n| n.as_str().to_owned());
        event.reason = params.reason.as_ref().map(|n| n.as_str().to_owned());
        event
    }

    fn count<T>(&self, scope: &str, action: Action, result: &Result<T, VaultError>) {
        self.metrics
            .access(self.scope_label(scope), action.as_str(), result.is_ok());
    }

    /// Stores a blob whose whole envelope is in `new`.
    pub async fn create_blob(
        &self,
        caller: &Caller,
        new: NewBlob,
    ) -> Result<BlobMetadata, VaultError> {
        let scope = new.scope.as_str().to_owned();
        let result = self
            .create_blob_inner(caller, new, Streamed::default())
            .await;
        self.count(&scope, Action::Create, &result);
        result
    }

    /// Stores a blob whose envelope begins with `new.envelope` and may go on in `rest`, whose
    /// body authentication left to the upload to check (DESIGN §18).
    pub async fn create_blob_streamed(
        &self,
        caller: &Caller,
        new: NewBlob,
        rest: Streamed,
    ) -> Result<BlobMetadata, VaultError> {
        let scope = new.scope.as_str().to_owned();
        let result = self.create_blob_inner(caller, new, rest).await;
        self.count(&scope, Action::Create, &result);
        result
    }

    async fn create_blob_inner(
        &self,
        caller: &Caller,
        new: NewBlob,
        streamed: Streamed,
    ) -> Result<BlobMetadata, VaultError> {
        if self.scopes.rule(new.scope.as_str()).is_none() {
            let known: Vec<&str> = self.scopes.scopes().collect();
            return Err(VaultError::BadRequest(format!(
                "unknown scope {:?}; known scopes: {}",
                new.scope.as_str(),
                known.join(", ")
            )));
        }
        if new.envelope.len() > self.max_payload_bytes {
            return Err(VaultError::PayloadTooLarge(self.max_payload_bytes));
        }
        let large = streamed.rest.is_some() || new.envelope.len() > self.inline_max_bytes();
        // The check reads at most the 64 KiB header, but like all work sized by the upload it
        // stays off the async workers when the upload is large. A streamed envelope has its
        // header checked now and its length once it has all arrived.
        let bytes = new.envelope;
        let (bytes, checked) = offload::sized(bytes.len(), move || {
            let checked = match large {
                true => envelope::check_header(&bytes),
                false => envelope::check(&bytes).map(|()| 0),
            };
            (bytes, checked)
        })
        .await?;
        let header_len = checked.map_err(|e| VaultError::InvalidEnvelope(e.0.to_owned()))?;
        let now = self.clock.now_secs();
        if new.expires_at.is_some_and(|at| at <= now) {
            return Err(VaultError::BadRequest(
                "expires_at must be in the future".into(),
            ));
        }
        // The policy must exist, sets a missing expiry and bounds a given one; nothing is
        // stored when it refuses.
        let expires_at = self
            .expiry_under_policy(new.retention_policy.as_str(), now, new.expires_at)
            .await?;
        let org = new.org_id.as_ref().map(OrgId::as_str);
        self.limit_scope(caller, new.scope.as_str()).await?;
        self.limit_org(org).await?;
        let owner = caller.principal.as_str();
        let record = BlobRecord {
            id: BlobId::new().to_string(),
            scope: new.scope.as_str().to_owned(),
            owner: owner.to_owned(),
            org_id: new.org_id.clone(),
            created_at: now,
            expires_at,
            retention_policy: new.retention_policy.as_str().to_owned(),
            tags_json: new.tags.to_json(),
            size: i64::try_from(bytes.len()).unwrap_or(i64::MAX),
            // Hashed below, once the upload is allowed.
            content_hash: String::new(),
            key_id: String::new(),
            key_version: 0,
            legal_hold: false,
            purged_at: None,
            object_key: None,
        };
        let event = self.blob_event(caller, Action::Create, &record, &ReadParams::default());
        // A denial is recorded on the caller's own chain: the org named may not exist.
        let mut if_denied = event.clone();
        if_denied.chain = audit::owner_chain(owner);
        self.authorize(
            caller,
            Question::Create {
                scope: &new.scope,
                org: new.org_id.as_ref(),
                event: &if_denied,
            },
        )
        .await?;

        let tenant = tenant_of(owner, org);
        if large {
            let upload = LargeUpload {
                record,
                event,
                tenant,
                prefix: bytes,
                streamed,
                header_len,
            };
            return self
                .store_large_blob(caller, upload)
                .await
                .map(|record| BlobMetadata::from(&record));
        }
        let bytes = std::sync::Arc::new(bytes);
        let content_hash = {
            let envelope = bytes.clone();
            offload::sized(bytes.len(), move || {
                let digest: [u8; 32] = sha2::Sha256::digest(envelope.as_slice()).into();
                digest
            })
            .await?
        };
        self.check_claimed_hash(
            streamed.claimed_sha256,
            &content_hash,
            caller.method.as_str(),
        )?;
        let record = BlobRecord {
            content_hash: hex::encode(content_hash),
            ..record
        };
        let sealed = self
            .insert_under_active_key(caller, &tenant, record, event, None, |key, record| {
                let envelope = bytes.clone();
                async move {
                    let sealed = offload::sized(envelope.len(), move || {
                        DataKey::seal_new(&key, &binding(&record), &envelope)
                    })
                    .await?
                    .map_err(|e| VaultError::Internal(e.into()))?;
                    Ok((sealed.wrapped_key, sealed.ciphertext))
                }
            })
            .await?;
        Ok(BlobMetadata::from(&sealed))
    }

    /// Inserts a new blob's row and event under the tenant's active key version; `seal`
    /// makes the row's wrapped data key and ciphertext with that version's key. The store
    /// inserts only under the active version: a rotation that retired it since it was read
    /// makes the insert apply nothing, and `seal` runs again under the new one (a rotation is
    /// rare; three tries are plenty). A blob in the object store (`object_key`) is also
    /// refused once the sweep has claimed its object: then it cannot be stored at all.
    pub(super) async fn insert_under_active_key<Sealed>(
        &self,
        caller: &Caller,
        tenant: &str,
        record: BlobRecord,
        event: NewEvent,
        object_key: Option<&str>,
        seal: impl Fn(TenantKey, BlobRecord) -> Sealed,
    ) -> Result<BlobRecord, VaultError>
    where
        Sealed: std::future::Future<Output = Result<(Vec<u8>, Vec<u8>), VaultError>> + Send,
    {
        for _ in 0..3 {
            let (tenant_record, tenant_key) = self.tenant_key(tenant).await?;
            let record = BlobRecord {
                key_id: tenant_record.id.clone(),
                key_version: tenant_record.version,
                ..record.clone()
            };
            let (wrapped_key, ciphertext) = seal(tenant_key, record.clone()).await?;
            let write = BlobWrite::Insert {
                meta: Box::new(record.clone()),
                wrapped_key,
                ciphertext,
            };
            if self
                .commit(caller, Some(write), vec![event.clone()])
                .await?
            {
                return Ok(record);
            }
            if let Some(key) = object_key {
                self.keep_object(key).await?;
            }
        }
        Err(VaultError::Internal(anyhow::anyhow!(
            "the key of tenant {tenant} kept changing while a blob was stored"
        )))
    }

    /// Fetches and opens a blob: the client's envelope, byte for byte. The data is returned
    /// only after the read's audit event is durably written. A large blob comes as a stream,
    /// which a JSON answer (`form`) cannot carry beyond [`Vault::json_max_bytes`].
    pub async fn read_blob(
        &self,
        caller: &Caller,
        id: &BlobId,
        params: &ReadParams,
        form: ReadForm,
    ) -> Result<(BlobMetadata, Envelope), VaultError> {
        let meta = self
            .load_authorized(caller, id, Action::Read, params)
            .await?;
        let result = self.open_blob(caller, id, &meta, params, form).await;
        self.count(&meta.scope, Action::Read, &result);
        result
    }

    /// Reads the ciphertext of a blob the caller may read (only now: the decision needed
    /// metadata alone) and opens it.
    async fn open_blob(
        &self,
        caller: &Caller,
        id: &BlobId,
        meta: &BlobRecord,
        params: &ReadParams,
        form: ReadForm,
    ) -> Result<(BlobMetadata, Envelope), VaultError> {
        let event = self.blob_event(caller, Action::Read, meta, params);
        if meta.purged_at.is_some() {
            let purged = with_outcome(event, Outcome::Error, Some("purged"));
            self.record(caller, &[purged]).await?;
            return Err(VaultError::Purged);
        }
        self.refuse_expired(caller, meta, &event).await?;
        let json_max = self.json_max_bytes();
        if form == ReadForm::Json && usize::try_from(meta.size).map_or(true, |s| s > json_max) {
            let refused = with_outcome(event, Outcome::Error, Some("too_large_for_json"));
            self.record(caller, &[refused]).await?;
            return Err(VaultError::BadRequest(format!(
                "the blob is {} bytes, more than a JSON answer carries ({json_max}); \
                 ask for it with Accept: application/octet-stream",
                meta.size
            )));
        }
        let Some(content) = self.store.blob_content(id).await? else {
            // Deleted between the two reads.
            self.record_not_found(caller, Action::Read, id, params)
                .await?;
            return Err(VaultError::NotFound("blob"));
        };
        let tenant_key = self.unwrap_tenant_key(
            &content.tenant,
            content.key_version,
            &content.tenant_key_wrapped,
            content.master_key_id.as_deref(),
        )?;
        let data_key = tenant_key.unwrap_data_key(&binding(meta), &content.wrapped_key);
        let opened = match (data_key, content.object_key.is_some()) {
            (Ok(key), false) => key
                .open(&binding(meta), &content.ciphertext)
                .map(Envelope::Whole)
                .map_err(|e| VaultError::Internal(anyhow::anyhow!("blob {id} does not open: {e}"))),
            // A JSON answer is collected before it is sent, so a failure there is a clean 500,
            // never a body cut short: only a raw one needs recording again.
            (Ok(key), true) => self
                .open_object(
                    meta,
                    &content,
                    key,
                    (form == ReadForm::Raw).then(|| event.clone()),
                )
                .await
                .map(|(len, stream)| Envelope::Stream { len, stream }),
            (Err(e), _) => Err(VaultError::Internal(anyhow::anyhow!(
                "the data key of blob {id} does not open: {e}"
            ))),
        };
        let envelope = match opened {
            Ok(envelope) => envelope,
            // The object store is down: nothing was read, so nothing is recorded as read.
            Err(e @ VaultError::Unavailable(_)) => return Err(e),
            Err(e) => {
                self.record(
                    caller,
                    &[with_outcome(event, Outcome::Error, Some("integrity"))],
                )
                .await?;
                return Err(e);
            }
        };
        self.record(caller, &[event]).await?;
        Ok((BlobMetadata::from(meta), envelope))
    }

    /// An expired blob answers 410 until it is purged; the attempt is recorded.
    async fn refuse_expired(
        &self,
        caller: &Caller,
        meta: &BlobRecord,
        event: &NewEvent,
    ) -> Result<(), VaultError> {
        if meta
            .expires_at
            .is_some_and(|at| at <= self.clock.now_secs())
        {
            let expired = with_outcome(event.clone(), Outcome::Error, Some("expired"));
            self.record(caller, &[expired]).await?;
            return Err(VaultError::Expired);
        }
        Ok(())
    }

    pub async fn blob_metadata(
        &self,
        caller: &Caller,
        id: &BlobId,
        params: &ReadParams,
    ) -> Result<BlobMetadata, VaultError> {
        let meta = self
            .load_authorized(caller, id, Action::ReadMetadata, params)
            .await?;
        let result = async {
            let event = self.blob_event(caller, Action::ReadMetadata, &meta, params);
            // A tombstone's metadata stays readable: it shows when the content went.
            if meta.purged_at.is_none() {
                self.refuse_expired(caller, &meta, &event).await?;
            }
            self.record(caller, &[event]).await?;
            Ok(BlobMetadata::from(&meta))
        }
        .await;
        self.count(&meta.scope, Action::ReadMetadata, &result);
        result
    }

    pub async fn delete_blob(
        &self,
        caller: &Caller,
        id: &BlobId,
        params: &ReadParams,
    ) -> Result<(), VaultError> {
        let meta = self
            .load_authorized(caller, id, Action::Delete, params)
            .await?;
        let result = async {
            let event = self.blob_event(caller, Action::Delete, &meta, params);
            if meta.legal_hold {
                return self.refuse_held(caller, event).await;
            }
            let write = BlobWrite::Delete { id: *id };
            if self
                .commit(caller, Some(write), vec![event.clone()])
                .await?
            {
                if meta.object_key.is_some() {
                    self.wake_object_sweep();
                }
                Ok(())
            } else if self
                .store
                .blob_meta(id)
                .await?
                .is_some_and(|m| m.legal_hold)
            {
                // Held since it was read: the store refused the delete.
                self.refuse_held(caller, event).await
            } else {
                // Deleted by someone else in the meantime.
                self.record_not_found(caller, Action::Delete, id, params)
                    .await?;
                Err(VaultError::NotFound("blob"))
            }
        }
        .await;
        self.count(&meta.scope, Action::Delete, &result);
        result
    }

    /// A delete of a held blob: recorded, and answered 409 `legal_hold`.
    async fn refuse_held(&self, caller: &Caller, event: NewEvent) -> Result<(), VaultError> {
        let refused = with_outcome(event, Outcome::Error, Some("legal_hold"));
        self.record(caller, &[refused]).await?;
        Err(VaultError::LegalHold)
    }
}
