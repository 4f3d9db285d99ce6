//! Tenant key rotation (DESIGN §15): a new version becomes active at once, and a background
//! job on every replica rewraps the tenant's data keys under it (data keys only: envelopes
//! are not re-encrypted), batch by batch, each batch its own short transaction. Reads open a
//! blob with whichever version wraps its data key at that moment, so no request fails while
//! it runs; a crash loses at most the batch in flight, and any replica picks the rotation up.

use super::access::Question;
use super::retention::SYSTEM_AUTH;
use super::{Caller, Vault};
use crate::audit::{ChainName, Details, NewEvent, SYSTEM_CHAIN};
use crate::crypto::{BlobBinding, TenantKey};
use crate::domain::Note;
use crate::error::VaultError;
use crate::store::{RewrapRow, RotationRecord, RotationStart};
use crate::time;
use serde::Serialize;
use std::collections::HashMap;

/// The requester of the events a background rewrap records.
pub const ROTATION_REQUESTER: &str = "system:key-rotation";
/// Running rotations one pass of a replica's worker looks at.
const ROTATIONS_PER_PASS: i64 = 16;

/// A rotation held up by blobs whose data keys do not open (tampered with, or damaged): it
/// stays running, every other blob rewrapped, until those blobs are dealt with.
#[derive(Debug, Clone)]
pub struct BlockedRotation {
    pub id: String,
    pub tenant: String,
    pub unopened: u64,
    /// The first few of those blobs, for the operator to look at.
    pub examples: Vec<String>,
}

/// Blob ids a blocked rotation names in its log line and error.
const BLOCKED_EXAMPLES: usize = 10;

/// `POST /vault/keys/rotate`.
#[derive(Debug)]
pub struct RotationRequest {
    pub tenant: ChainName,
    pub reason: Option<Note>,
    pub emergency: bool,
}

/// A rotation as the API shows it (`R` in DESIGN §15).
#[derive(Debug, Clone, Serialize)]
pub struct Rotation {
    pub id: String,
    pub tenant: String,
    pub from_version: i64,
    pub to_version: i64,
    pub emergency: bool,
    pub status: String,
    pub rewrapped: i64,
    pub total: i64,
    pub started_at: String,
    pub completed_at: Option<String>,
}

impl From<&RotationRecord> for Rotation {
    fn from(r: &RotationRecord) -> Self {
        Self {
            id: r.id.clone(),
            tenant: r.tenant.clone(),
            from_version: r.from_version,
            to_version: r.to_version,
            emergency: r.emergency,
            status: r.status.clone(),
            rewrapped: r.rewrapped,
            total: r.total,
            started_at: time::to_rfc3339(r.started_at),
            completed_at: r.completed_at.map(time::to_rfc3339),
        }
    }
}

fn rotation_details(r: &RotationRecord) -> Details {
    [
        ("rotation_id", r.id.clone()),
        ("tenant", r.tenant.clone()),
        ("from_version", r.from_version.to_string()),
        ("to_version", r.to_version.to_string()),
        ("emergency", r.emergency.to_string()),
        ("total", r.total.to_string()),
        ("rewrapped", r.rewrapped.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

impl Vault {
    /// Starts a rotation of `request.tenant`'s key: 404 for a tenant without a key, 409 while
    /// one runs for it, 403 (audited) unless a platform admin or, for an org's tenant, one of
    /// its administrators. Recorded as `key.rotation_started` on `system` and the tenant's
    /// chain, in the transaction that makes the new version active.
    pub async fn rotate_tenant_key(
        &self,
        caller: &Caller,
        request: RotationRequest,
    ) -> Result<Rotation, VaultError> {
        // Callers parse the tenant with `ChainName::parse_tenant`; `system` has no key to rotate.
        if request.tenant == ChainName::System {
            return Err(VaultError::BadRequest(
                "tenant must be org:<org id> or owner:<principal>".into(),
            ));
        }
        let tenant = request.tenant.to_chain();
        let org = match &request.tenant {
            ChainName::Org(org) => Some(org),
            _ => None,
        };
        let mut probe = self.event(caller, SYSTEM_CHAIN.to_owned(), "key.rotation_started");
        probe.org_id = org.map(|o| o.as_str().to_owned());
        probe.reason = request.reason.as_ref().map(|n| n.as_str().to_owned());
        self.authorize(caller, Question::Keys { org, event: &probe })
            .await?;
        self.spend_nonce(caller).await?;
        // A concurrent rotation or erasure may move the active version between the read
        // and the start; the new key is bound to its version, so it is made again.
        for _ in 0..3 {
            let Some(current) = self.store.current_tenant_key(&tenant).await? else {
                return Err(VaultError::NotFound("tenant key"));
            };
            let to_version = self.store.newest_tenant_key_version(&tenant).await? + 1;
            let (new_key, _) = self.new_tenant_key(&tenant, to_version)?;
            let record = RotationRecord {
                id: uuid::Uuid::new_v4().to_string(),
                tenant: tenant.clone(),
                from_version: current.version,
                to_version,
                emergency: request.emergency,
                reason: probe.reason.clone(),
                requester: caller.principal.as_str().to_owned(),
                status: crate::store::ROTATION_RUNNING.to_owned(),
                rewrapped: 0,
                total: 0,
                started_at: self.clock.now_secs(),
                completed_at: None,
            };
            let events = self.rotation_events(&probe, &record);
            match self
                .store
                .start_rotation(&record, &new_key, &events)
                .await
                .map_err(|e| self.store_error(e))?
            {
                RotationStart::Started(started, seqs) => {
                    for (event, seq) in events.iter().zip(seqs) {
                        self.noted(caller, event, Some(seq));
                    }
                    tracing::info!(
                        tenant = %started.tenant,
                        from_version = started.from_version,
                        to_version = started.to_version,
                        emergency = started.emergency,
                        total = started.total,
                        "tenant key rotation started"
                    );
                    self.rotation_wake.notify_one();
                    return Ok(Rotation::from(started.as_ref()));
                }
                RotationStart::AlreadyRunning => {
                    return Err(VaultError::Conflict(format!(
                        "a rotation of {tenant} is already running"
                    )))
                }
                RotationStart::VersionChanged => continue,
            }
        }
        Err(VaultError::Conflict(format!(
            "the key of {tenant} kept changing; try again"
        )))
    }

    /// The `key.rotation_started` events of `record`: on `system` and the tenant's chain.
    fn rotation_events(&self, template: &NewEvent, record: &RotationRecord) -> Vec<NewEvent> {
        let mut system = template.clone();
        system.chain = SYSTEM_CHAIN.to_owned();
        let mut details = rotation_details(record);
        // The total is counted inside the start's transaction; the events say what was asked.
        details.remove("total");
        details.remove("rewrapped");
        system.details = Some(details);
        let mut tenant = system.clone();
        tenant.chain = record.tenant.clone();
        vec![system, tenant]
    }

    /// `GET /vault/keys/rotations/{id}`: as `GET /vault/keys` for the rotation's tenant.
    pub async fn rotation(&self, caller: &Caller, id: &str) -> Result<Rotation, VaultError> {
        let record = match uuid::Uuid::parse_str(id) {
            Ok(uuid) => self.store.rotation(&uuid.hyphenated().to_string()).await?,
            Err(_) => None,
        };
        let tenant = record
            .as_ref()
            .and_then(|r| ChainName::parse(&r.tenant).ok());
        let org = match &tenant {
            Some(ChainName::Org(org)) => Some(org),
            _ => None,
        };
        let mut event = self.event(caller, SYSTEM_CHAIN.to_owned(), "key.rotation_read");
        event.org_id = org.map(|o| o.as_str().to_owned());
        // An unknown id is decided as a platform-wide question: only platform admins learn
        // that it does not exist.
        self.authorize(caller, Question::Keys { org, event: &event })
            .await?;
        // Granted reads are recorded too: the record is what consumes the request's nonce
        // durably, and who watched a rotation is part of its trail.
        self.record(caller, &[event]).await?;
        let Some(record) = record else {
            return Err(VaultError::NotFound("rotation"));
        };
        Ok(Rotation::from(&record))
    }

    /// Where a rotation stands, for the local admin CLI that started it and waits for it
    /// (the start was audited; its polling is not, or every wait would fill `system`).
    pub async fn rotation_progress(&self, id: &str) -> Result<Rotation, VaultError> {
        let record = self.store.rotation(id).await?;
        record
            .as_ref()
            .map(Rotation::from)
            .ok_or(VaultError::NotFound("rotation"))
    }

    /// Wakes up when a rotation starts on this replica (or after `timeout`).
    pub async fn rotation_started_or(&self, timeout: std::time::Duration) {
        let _ = tokio::time::timeout(timeout, self.rotation_wake.notified()).await;
    }

    /// One pass of a replica's rotation worker: carries every running rotation on to its
    /// end. Several replicas may run it at once: they claim disjoint batches. Returns the
    /// rotations that cannot complete.
    pub async fn advance_rotations(&self) -> Result<Vec<BlockedRotation>, VaultError> {
        let running = self.store.running_rotations(ROTATIONS_PER_PASS).await?;
        let mut blocked_rotations = Vec::new();
        // One rotation that cannot go on (a data key that does not open, a database error)
        // must not hold up the others, emergency rotations above all: log it and go on.
        for rotation in &running {
            match self.run_rotation(rotation).await {
                Ok(None) => {}
                Ok(Some(blocked)) => blocked_rotations.push(blocked),
                Err(e) => tracing::warn!(
                    rotation = %rotation.id,
                    tenant = %rotation.tenant,
                    error = %e.cause_chain(),
                    "key rotation step failed; retrying, the other rotations go on"
                ),
            }
        }
        self.report_blocked(&blocked_rotations);
        Ok(blocked_rotations)
    }

    /// Counts the blocked rotations, and logs each when it first blocks here or its count
    /// of unopened data keys changes (the metric and its alert carry the rest).
    fn report_blocked(&self, blocked: &[BlockedRotation]) {
        self.metrics
            .key_rotations_blocked
            .set(i64::try_from(blocked.len()).unwrap_or(i64::MAX));
        let mut reported = self
            .rotations_blocked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        reported.retain(|id, _| blocked.iter().any(|b| &b.id == id));
        for rotation in blocked {
            if reported.insert(rotation.id.clone(), rotation.unopened) == Some(rotation.unopened) {
                continue;
            }
            tracing::error!(
                rotation = %rotation.id,
                tenant = %rotation.tenant,
                unopened = rotation.unopened,
                blobs = %rotation.examples.join(","),
                "key rotation cannot complete: data keys do not open under their tenant key \
                 (see runbooks/key-rotation.md)"
            );
        }
    }

    /// Rewraps the rotation's blobs batch by batch, then completes it unless another replica
    /// holds some of them or completed it first. What blocks it, if data keys do not open.
    async fn run_rotation(
        &self,
        rotation: &RotationRecord,
    ) -> Result<Option<BlockedRotation>, VaultError> {
        let keys = self.store.live_tenant_keys(&rotation.tenant).await?;
        let Some(new_record) = keys.iter().find(|k| k.version == rotation.to_version) else {
            return Err(VaultError::Internal(anyhow::anyhow!(
                "rotation {} names version {} of {}, which is gone",
                rotation.id,
                rotation.to_version,
                rotation.tenant
            )));
        };
        let new_key = self.open_tenant_key(new_record)?;
        // Every older version still alive, unwrapped once for the whole rotation.
        let mut old: HashMap<String, TenantKey> = HashMap::new();
        for record in keys.iter().filter(|k| k.version < rotation.to_version) {
            let key = self.open_tenant_key(record)?;
            old.insert(record.id.clone(), key);
        }
        let plan = |row: &RewrapRow| -> Option<Vec<u8>> {
            let binding = BlobBinding {
                id: &row.id,
                owner: &row.owner,
                org: row.org_id.as_deref(),
                scope: &row.scope,
            };
            let data_key = old
                .get(&row.key_id)?
                .unwrap_data_key(&binding, &row.wrapped_key)
                .ok()?;
            new_key.wrap_data_key(&binding, &data_key).ok()
        };
        // One pass over the tenant's stale blobs in id order; rows another replica holds are
        // skipped (it rewraps them), and the check below sees whether any are left. A data key
        // that does not open is passed over, so that every other one is rewrapped.
        let mut after = String::new();
        let mut blocked = BlockedRotation {
            id: rotation.id.clone(),
            tenant: rotation.tenant.clone(),
            unopened: 0,
            examples: Vec::new(),
        };
        loop {
            let batch = self
                .store
                .rewrap_batch(
                    rotation,
                    &new_record.id,
                    &after,
                    self.keys.rewrap_batch_size,
                    &plan,
                )
                .await?;
            blocked.unopened = blocked
                .unopened
                .saturating_add(u64::try_from(batch.unopened.len()).unwrap_or(u64::MAX));
            let room = BLOCKED_EXAMPLES.saturating_sub(blocked.examples.len());
            blocked
                .examples
                .extend(batch.unopened.into_iter().take(room));
            if batch.rewrapped > 0 {
                tracing::debug!(
                    rotation = %rotation.id,
                    rewrapped = batch.rewrapped,
                    "rewrapped a batch of data keys"
                );
            }
            let Some(last) = batch.last_id else { break };
            after = last;
            if !self.keys.rewrap_pause.is_zero() {
                tokio::time::sleep(self.keys.rewrap_pause).await;
            }
        }
        // Never retire or destroy a version past a data key that does not open: the rotation
        // stays running, loudly, until that blob is dealt with.
        if blocked.unopened > 0 {
            return Ok(Some(blocked));
        }
        // Blobs another replica holds in its batch are not done yet: it will complete.
        if self
            .store
            .remaining_rewraps(&rotation.tenant, rotation.to_version)
            .await?
            > 0
        {
            return Ok(None);
        }
        let now = self.clock.now_secs();
        let request_id = uuid::Uuid::new_v4().simple().to_string();
        let done = self.store.rotation(&rotation.id).await?;
        let final_record = RotationRecord {
            status: crate::store::ROTATION_COMPLETE.to_owned(),
            completed_at: Some(now),
            ..done.unwrap_or_else(|| rotation.clone())
        };
        let mut system = NewEvent::new(
            SYSTEM_CHAIN.to_owned(),
            "key.rotation_completed",
            ROTATION_REQUESTER,
            SYSTEM_AUTH,
            &request_id,
            self.clock.now_millis(),
        );
        let mut details = rotation_details(&final_record);
        details.insert(
            "old_versions".into(),
            if rotation.emergency {
                "destroyed"
            } else {
                "retired"
            }
            .into(),
        );
        system.details = Some(details);
        system.org_id = match ChainName::parse(&rotation.tenant) {
            Ok(ChainName::Org(org)) => Some(org.as_str().to_owned()),
            _ => None,
        };
        let mut on_tenant = system.clone();
        on_tenant.chain = rotation.tenant.clone();
        let completed = self
            .store
            .complete_rotation(rotation, now, &[system, on_tenant])
            .await
            .map_err(|e| self.store_error(e))?;
        if completed {
            tracing::info!(
                tenant = %rotation.tenant,
                to_version = rotation.to_version,
                emergency = rotation.emergency,
                rewrapped = final_record.rewrapped,
                "tenant key rotation complete"
            );
        }
        Ok(None)
    }
}
