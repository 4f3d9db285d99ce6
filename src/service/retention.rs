//! Governing blobs over time (DESIGN §12): named retention policies, the expiry they give new
//! blobs, legal holds, and the purge sweep with its proof events.

use super::access::Question;
use super::blobs::BlobMetadata;
use super::keys::tenant_of;
use super::{Caller, ReadParams, Vault};
use crate::audit::{self, Details, NewEvent, Outcome};
use crate::domain::{BlobId, Note, OrgId};
use crate::error::VaultError;
use crate::retention::{Policy, PolicySettings};
use crate::store::{BlobRecord, PolicyRecord, PurgeCounts, PurgeMethod, PurgeSelection};
use crate::time;
use serde::Serialize;
use std::collections::BTreeMap;

/// The requester of background sweeps' events.
pub const RETENTION_REQUESTER: &str = "system:retention";
/// The auth method of events the vault records on its own behalf.
pub(super) const SYSTEM_AUTH: &str = "system";

/// What a sweep found and did (`{"dry_run", "candidates", "purged", "held"}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    pub dry_run: bool,
    /// Expired blobs, not held, when the sweep started.
    pub candidates: i64,
    /// Blobs this sweep destroyed (always 0 in a dry run).
    pub purged: u64,
    /// Expired blobs kept by a legal hold.
    pub held: i64,
}

/// Who a purge is recorded as done by.
pub(super) struct Purger<'a> {
    pub requester: &'a str,
    pub auth_method: &'static str,
    pub request_id: &'a str,
}

impl Vault {
    /// Every policy in force: `standard`, then the configuration's, then those set through
    /// the API, which win.
    pub async fn policies(&self) -> Result<BTreeMap<String, Policy>, VaultError> {
        let mut policies = self.retention.configured.clone();
        for stored in self.store.stored_policies().await? {
            let policy = policy_of(stored)?;
            policies.insert(policy.name.clone(), policy);
        }
        Ok(policies)
    }

    /// `GET /vault/retention/policies`: any authenticated caller.
    pub async fn list_policies(&self) -> Result<Vec<Policy>, VaultError> {
        Ok(self.policies().await?.into_values().collect())
    }

    /// `PUT /vault/retention/policies/{name}` (platform admins): whether it was new.
    pub async fn put_policy(
        &self,
        caller: &Caller,
        name: &str,
        settings: PolicySettings,
    ) -> Result<(Policy, bool), VaultError> {
        let policy = Policy::new(name, settings).map_err(VaultError::BadRequest)?;
        let mut event = self.event(
            caller,
            audit::SYSTEM_CHAIN.to_owned(),
            "retention.policy_set",
        );
        event.details = Some(policy_details(&policy));
        self.authorize(caller, Question::Platform { event: &event })
            .await?;
        self.spend_nonce(caller).await?;
        let record = PolicyRecord {
            name: policy.name.clone(),
            max_retention_days: policy.max_retention_days,
            default_ttl_days: policy.default_ttl_days,
            purge_method: policy.purge_method.as_str().to_owned(),
            description: policy.description.clone(),
        };
        let (created, seq) = self
            .store
            .put_policy(&record, self.clock.now_secs(), &event)
            .await
            .map_err(|e| self.store_error(e))?;
        self.noted(caller, &event, Some(seq));
        Ok((policy, created))
    }

    /// The expiry of a new blob under `policy_name` (DESIGN §12): an unknown policy is 400,
    /// past the maximum is 422 `retention_exceeded`.
    pub(super) async fn expiry_under_policy(
        &self,
        policy_name: &str,
        now: i64,
        requested: Option<i64>,
    ) -> Result<Option<i64>, VaultError> {
        let policy = match self.store.stored_policy(policy_name).await? {
            Some(stored) => Some(policy_of(stored)?),
            None => self.retention.configured.get(policy_name).cloned(),
        };
        let Some(policy) = policy else {
            return Err(VaultError::BadRequest(format!(
                "unknown retention_policy {policy_name:?}; GET /api/v1/vault/retention/policies \
                 lists them"
            )));
        };
        policy.expiry(now, requested).map_err(|e| {
            VaultError::RetentionExceeded(format!(
                "expires_at is later than retention policy {policy_name:?} allows ({} days)",
                e.max_retention_days
            ))
        })
    }

    /// `PUT /vault/blobs/{id}/hold`: a reason is required.
    pub async fn set_hold(
        &self,
        caller: &Caller,
        id: &BlobId,
        reason: Note,
    ) -> Result<BlobMetadata, VaultError> {
        self.change_hold(caller, id, true, Some(reason)).await
    }

    /// `DELETE /vault/blobs/{id}/hold`, audited with its reason when one is given.
    pub async fn release_hold(
        &self,
        caller: &Caller,
        id: &BlobId,
        reason: Option<Note>,
    ) -> Result<BlobMetadata, VaultError> {
        self.change_hold(caller, id, false, reason).await
    }

    async fn change_hold(
        &self,
        caller: &Caller,
        id: &BlobId,
        hold: bool,
        reason: Option<Note>,
    ) -> Result<BlobMetadata, VaultError> {
        let Some(meta) = self.store.blob_meta(id).await? else {
            return Err(self.hold_not_found(caller, id).await);
        };
        let event_type = if hold {
            "blob.hold_set"
        } else {
            "blob.hold_released"
        };
        let mut event = self.blob_event(
            caller,
            data_vault_scopes::Action::ReadMetadata,
            &meta,
            &ReadParams::default(),
        );
        event.event_type = event_type;
        event.reason = reason.as_ref().map(|n| n.as_str().to_owned());
        self.authorize(
            caller,
            Question::Hold {
                meta: &meta,
                event: &event,
            },
        )
        .await?;
        if meta.purged_at.is_some() {
            let mut refused = event;
            refused.outcome = Outcome::Error;
            refused.denial_reason = Some("purged");
            self.record(caller, &[refused]).await?;
            return Err(VaultError::Purged);
        }
        self.spend_nonce(caller).await?;
        let held = self
            .store
            .set_hold(
                id,
                reason.as_ref().filter(|_| hold).map(Note::as_str),
                &event,
            )
            .await
            .map_err(|e| self.store_error(e))?;
        match held {
            Some((record, seq)) => {
                self.noted(caller, &event, Some(seq));
                self.refresh_retention_gauges().await;
                Ok(BlobMetadata::from(&record))
            }
            // Purged or deleted since it was read.
            None => Err(self.hold_not_found(caller, id).await),
        }
    }

    async fn hold_not_found(&self, caller: &Caller, id: &BlobId) -> VaultError {
        match self
            .record_not_found(
                caller,
                data_vault_scopes::Action::ReadMetadata,
                id,
                &ReadParams::default(),
            )
            .await
        {
            Ok(()) => VaultError::NotFound("blob"),
            Err(e) => e,
        }
    }

    /// `POST /vault/purge/sweep` and `data-vault admin purge sweep` (platform admins): one
    /// sweep now, recorded as a `retention.sweep` event on `system` (dry runs too).
    pub async fn sweep_on_demand(
        &self,
        caller: &Caller,
        dry_run: bool,
        progress: &(dyn Fn(&SweepReport) + Send + Sync),
    ) -> Result<SweepReport, VaultError> {
        let mut event = self.event(caller, audit::SYSTEM_CHAIN.to_owned(), "retention.sweep");
        self.authorize(caller, Question::Platform { event: &event })
            .await?;
        self.spend_nonce(caller).await?;
        let purger = Purger {
            requester: RETENTION_REQUESTER,
            auth_method: SYSTEM_AUTH,
            request_id: &caller.request_id,
        };
        let report = self.sweep(&purger, dry_run, progress).await?;
        event.details = Some(sweep_details(&report));
        self.record(caller, &[event]).await?;
        Ok(report)
    }

    /// The background sweep of every replica (`[retention] sweep_interval_secs`).
    pub async fn sweep_in_background(&self) -> Result<SweepReport, VaultError> {
        let request_id = uuid::Uuid::new_v4().simple().to_string();
        let purger = Purger {
            requester: RETENTION_REQUESTER,
            auth_method: SYSTEM_AUTH,
            request_id: &request_id,
        };
        self.sweep(&purger, false, &|_| {}).await
    }

    /// Purges every expired blob that is not held, in batches of `[retention] batch_size`,
    /// each its own short transaction; a dry run only counts.
    async fn sweep(
        &self,
        purger: &Purger<'_>,
        dry_run: bool,
        progress: &(dyn Fn(&SweepReport) + Send + Sync),
    ) -> Result<SweepReport, VaultError> {
        let now = self.clock.now_secs();
        let selection = PurgeSelection::Expired { now };
        let backlog = self.store.purge_backlog(&selection).await?;
        let mut report = SweepReport {
            dry_run,
            candidates: backlog.candidates,
            purged: 0,
            held: backlog.held,
        };
        if dry_run {
            progress(&report);
            return Ok(report);
        }
        let policies = self.policies().await?;
        let purged = self
            .purge_all(
                &selection,
                purger,
                |blob| method_for(&policies, blob),
                |total| {
                    report.purged = total.total();
                    progress(&report);
                },
            )
            .await?;
        report.purged = purged.total();
        self.store
            .record_sweep(now, report.purged)
            .await
            .map_err(|e| self.store_error(e))?;
        self.metrics.last_sweep.set(now);
        self.refresh_retention_gauges().await;
        if report.purged > 0 {
            tracing::info!(
                purged = report.purged,
                held = report.held,
                "retention sweep purged expired blobs"
            );
        }
        Ok(report)
    }

    /// Purges `selection` batch by batch until a batch comes back short; counts what it
    /// destroyed in the metrics and reports the running total after each batch.
    pub(super) async fn purge_all(
        &self,
        selection: &PurgeSelection,
        purger: &Purger<'_>,
        method: impl Fn(&BlobRecord) -> PurgeMethod + Send + Sync,
        mut progress: impl FnMut(&PurgeCounts) + Send,
    ) -> Result<PurgeCounts, VaultError> {
        let batch = self.retention.batch_size;
        let mut total = PurgeCounts::default();
        loop {
            let now = self.clock.now_secs();
            let plan = |blob: &BlobRecord| {
                let method = method(blob);
                (method, self.purge_event(blob, method, purger, now))
            };
            let counts = self
                .store
                .purge_batch(selection, batch, now, &plan)
                .await
                .map_err(|e| self.store_error(e))?;
            for method in PurgeMethod::ALL {
                let n = match method {
                    PurgeMethod::PhysicalDelete => counts.physical_delete,
                    PurgeMethod::CryptoShred => counts.crypto_shred,
                };
                if n > 0 {
                    self.metrics.purged(method.as_str(), n);
                }
            }
            // Purged rows hand their objects to the journal (its triggers): have them
            // deleted now, as a delete does, rather than at the sweep's next round.
            if counts.total() > 0 {
                self.wake_object_sweep();
            }
            total.add(counts);
            progress(&total);
            if i64::try_from(counts.total()).unwrap_or(i64::MAX) < batch {
                return Ok(total);
            }
        }
    }

    /// The proof of one purge (DESIGN §12), on the blob's tenant chain.
    fn purge_event(
        &self,
        blob: &BlobRecord,
        method: PurgeMethod,
        purger: &Purger<'_>,
        now: i64,
    ) -> NewEvent {
        let mut event = NewEvent::new(
            tenant_of(&blob.owner, blob.org_id.as_ref().map(OrgId::as_str)),
            "blob.purged",
            purger.requester,
            purger.auth_method,
            purger.request_id,
            now.saturating_mul(1000),
        );
        event.blob_id = Some(blob.id.clone());
        event.scope = Some(blob.scope.clone());
        event.owner = Some(blob.owner.clone());
        event.org_id = blob.org_id.as_ref().map(|o| o.as_str().to_owned());
        let mut details = Details::new();
        details.insert("content_hash".into(), blob.content_hash.clone());
        details.insert("purge_method".into(), method.as_str().into());
        details.insert("retention_policy".into(), blob.retention_policy.clone());
        if let Some(at) = blob.expires_at {
            details.insert("expires_at".into(), time::to_rfc3339(at));
        }
        event.details = Some(details);
        event
    }

    /// Sets the retention gauges from the data; a failure only leaves them as they were.
    pub async fn refresh_retention_gauges(&self) {
        let now = self.clock.now_secs();
        match self.store.blob_summary(None, now).await {
            Ok(summary) => {
                self.metrics.blobs_held.set(summary.held);
                let pending = self
                    .store
                    .purge_backlog(&PurgeSelection::Expired { now })
                    .await;
                if let Ok(backlog) = pending {
                    self.metrics.expired_pending_purge.set(backlog.candidates);
                }
                self.metrics.oldest_pending_purge_seconds.set(
                    summary
                        .oldest_pending_expiry
                        .map_or(0, |at| (now - at).max(0)),
                );
            }
            Err(e) => tracing::warn!(error = %e, "cannot refresh the retention gauges"),
        }
    }

    /// The configured background sweep period; 0 when disabled.
    pub fn sweep_interval_secs(&self) -> u64 {
        self.retention.sweep_interval_secs
    }
}

/// The purge method of a blob's policy. A blob naming a policy that no longer exists is
/// crypto-shredded: its content goes, and its tombstone keeps the evidence.
fn method_for(policies: &BTreeMap<String, Policy>, blob: &BlobRecord) -> PurgeMethod {
    policies
        .get(&blob.retention_policy)
        .map_or(PurgeMethod::CryptoShred, |p| p.purge_method)
}

fn policy_of(stored: PolicyRecord) -> Result<Policy, VaultError> {
    let name = stored.name.clone();
    Policy::new(
        &stored.name,
        PolicySettings {
            max_retention_days: stored.max_retention_days,
            default_ttl_days: stored.default_ttl_days,
            purge_method: stored.purge_method,
            description: stored.description,
        },
    )
    .map_err(|e| VaultError::Internal(anyhow::anyhow!("stored retention policy {name}: {e}")))
}

fn policy_details(policy: &Policy) -> Details {
    let mut details = Details::new();
    details.insert("name".into(), policy.name.clone());
    details.insert("purge_method".into(), policy.purge_method.as_str().into());
    let days = |d: Option<i64>| d.map_or_else(|| "none".to_owned(), |d| d.to_string());
    details.insert("max_retention_days".into(), days(policy.max_retention_days));
    details.insert("default_ttl_days".into(), days(policy.default_ttl_days));
    details
}

fn sweep_details(report: &SweepReport) -> Details {
    [
        ("dry_run", report.dry_run.to_string()),
        ("candidates", report.candidates.to_string()),
        ("purged", report.purged.to_string()),
        ("held", report.held.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}
