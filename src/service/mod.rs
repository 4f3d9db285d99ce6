//! The vault's use cases: who may do what, with which keys, and what gets counted. Nothing
//! here knows about HTTP; handlers and the admin CLI call these functions.

mod access;
mod audit;
mod blobs;
mod blocks;
mod client_auth;
mod clients;
mod keys;
mod listing;
mod lookup;
mod objects;
mod orgs;
mod recipients;
mod report;
mod retention;
mod rotation;
mod subjects;
mod tlog;

use crate::audit::NewEvent;
use crate::crypto::MasterKeyring;
use crate::domain::Principal;
use crate::error::VaultError;
use crate::limits::{Limit, Limiter};
use crate::metrics::Metrics;
use crate::spikes::SpikeDetector;
use crate::store::{
    BatchJob, BlobWrite, CommitError, CommitQueue, EventPosition, JobOutcome, NonceClaim, Store,
    StoreError,
};
use crate::time::Clock;
use data_vault_scopes::ScopeTable;
use std::sync::{Arc, Mutex};

pub use audit::{verify_chain, AuditPage, AuditParams, MAX_AUDIT_LIMIT};
pub use blobs::{BlobMetadata, NewBlob, ReadParams};
pub use blocks::{BlockError, BLOCK_TTL};
pub use client_auth::SECRET_TTL;
pub use clients::{ClientError, ClientListing, SecretAge, MAX_CLIENTS_LISTED};
pub use keys::{
    check_master_keyring, database_is_initialised, KeyAge, KeyAges, KeyListing, KeySettings,
    KeyState, MasterKeyCheck, MasterKeyInfo, MasterRewrap, TenantKeyInfo, MAX_KEYS_LISTED,
};
pub use listing::{BlobPage, ListParams, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT};
pub use lookup::{OrgRoles, OrgSummary, PrincipalOverview, MAX_ORGS_LISTED};

pub use objects::{Envelope, ReadForm, Reconciled, Streamed};
pub use orgs::Member;
pub use recipients::{OrgReaders, PublishedRecipients, Reader, MAX_MEMBERS_SCANNED, MAX_READERS};
pub use report::ComplianceReport;
pub use retention::{SweepReport, RETENTION_REQUESTER};
pub use rotation::{BlockedRotation, Rotation, RotationRequest, ROTATION_REQUESTER};
pub use subjects::{ErasureReport, ExportStream};
pub use tlog::{
    read_plan, stored_tree, AuditHealth, ConsistencyProof, InclusionProof, LogKeyInfo,
    VerifierState,
};

/// How a caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Hmac,
    Wallet,
    /// The admin CLI, working directly on the database.
    Local,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Hmac => "hmac",
            AuthMethod::Wallet => "wallet",
            AuthMethod::Local => "local",
        }
    }
}

/// An authenticated caller, and the request it made (for the audit trail).
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub method: AuthMethod,
    pub request_id: String,
    /// The request's nonce, until something spends it durably (see [`PendingNonce`]).
    pub nonce: PendingNonce,
    /// Where the request's event went, for `X-VE-Audit-Event` (see [`AuditTrace`]).
    pub audit: AuditTrace,
}

/// The position of the event that records a request (DESIGN §16 `X-VE-Audit-Event`),
/// filled in by the commit path whatever the use case, and read once by the HTTP layer.
///
/// When a request records several events, the one on the requester's own chain wins (a
/// denial's full record sits on a chain the requester may not see, and naming that chain
/// would tell it the target's tenant); otherwise the first recorded. Clones share one slot.
#[derive(Debug, Clone, Default)]
pub struct AuditTrace(Arc<Mutex<Option<EventPosition>>>);

impl AuditTrace {
    /// Notes the positions of events just committed for the request of `principal`.
    fn note(&self, principal: &Principal, positions: &[EventPosition]) {
        let own = crate::audit::owner_chain(principal.as_str());
        let Some(best) = positions
            .iter()
            .find(|p| p.chain == own)
            .or_else(|| positions.first())
        else {
            return;
        };
        let mut slot = match self.0.lock() {
            Ok(slot) => slot,
            Err(poisoned) => poisoned.into_inner(),
        };
        let replace = match slot.as_ref() {
            None => true,
            Some(current) => current.chain != own && best.chain == own,
        };
        if replace {
            *slot = Some(best.clone());
        }
    }

    /// The recorded position, if the request recorded any event.
    pub fn get(&self) -> Option<EventPosition> {
        match self.0.lock() {
            Ok(slot) => slot.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// The nonce an authenticated request must spend durably before it may answer (DESIGN §6).
///
/// The request's first commit through the group-commit queue spends it in the same
/// transaction as its audit event; a change that commits outside the queue spends it first
/// ([`Vault::spend_nonce`]); the authentication layer spends whatever is still pending before
/// the response leaves. Clones of a caller share one slot, so it is spent exactly once.
#[derive(Debug, Clone, Default)]
pub struct PendingNonce(Arc<Mutex<Option<NonceClaim>>>);

impl PendingNonce {
    pub fn new(claim: NonceClaim) -> Self {
        Self(Arc::new(Mutex::new(Some(claim))))
    }

    fn take(&self) -> Option<NonceClaim> {
        // A poisoned lock only means a panic elsewhere; the claim itself is still sound.
        match self.0.lock() {
            Ok(mut slot) => slot.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        }
    }
}

/// The principal the admin CLI records as requester.
pub const LOCAL_ADMIN: &str = "admin-cli";

/// The largest envelope carried in a JSON body or answer, whatever `server.max_payload_bytes`
/// allows raw uploads (DESIGN §18): base64 in a JSON document is held whole in memory.
pub const JSON_MAX_BYTES: usize = 10 * 1024 * 1024;

impl Caller {
    /// The operator at the admin CLI.
    pub fn local_admin() -> Result<Self, crate::domain::Invalid> {
        Ok(Self {
            principal: Principal::parse(LOCAL_ADMIN)?,
            method: AuthMethod::Local,
            request_id: uuid::Uuid::new_v4().simple().to_string(),
            nonce: PendingNonce::default(),
            audit: AuditTrace::default(),
        })
    }
}

pub struct Vault {
    store: Arc<dyn Store>,
    master: MasterKeyring,
    scopes: ScopeTable,
    max_payload_bytes: usize,
    platform_admins: Vec<Principal>,
    metrics: Arc<Metrics>,
    abuse: AbuseControl,
    commits: CommitQueue,
    clock: Arc<dyn Clock>,
    secret_cache: client_auth::SecretCache,
    /// Signs checkpoints; only a serving vault loads it.
    log_key: Option<Arc<crate::audit::note::LogKey>>,
    audit_health: Mutex<tlog::AuditHealth>,
    blocks: blocks::BlockList,
    retention: crate::retention::Settings,
    keys: KeySettings,
    /// Wakes this replica's rotation worker when a rotation starts here.
    rotation_wake: tokio::sync::Notify,
    /// Blocked rotations already reported, and by how many data keys, so the worker (every
    /// 2 s) reports each once and again only when it changes.
    rotations_blocked: Mutex<std::collections::HashMap<String, u64>>,
    /// Where large blobs live (DESIGN §18).
    objects: objects::ObjectStorage,
}

/// Rate limits and denial-spike detection; both absent for the admin CLI.
#[derive(Default, Clone)]
pub struct AbuseControl {
    pub limiter: Option<Arc<Limiter>>,
    pub spikes: Option<Arc<SpikeDetector>>,
}

/// What a vault is built from.
pub struct VaultParts {
    pub store: Arc<dyn Store>,
    pub master: MasterKeyring,
    pub scopes: ScopeTable,
    pub max_payload_bytes: usize,
    pub platform_admins: Vec<Principal>,
    pub metrics: Arc<Metrics>,
    pub abuse: AbuseControl,
    pub clock: Arc<dyn Clock>,
    pub log_key: Option<crate::audit::note::LogKey>,
    pub retention: crate::retention::Settings,
    pub keys: KeySettings,
    pub objects: Arc<dyn crate::objects::ObjectBackend>,
    pub inline_max_bytes: usize,
    pub object_lease_secs: i64,
    /// Large uploads streamed at once, and how long another waits for a place.
    pub max_large_uploads: usize,
    pub large_upload_wait: std::time::Duration,
}

impl Vault {
    pub fn new(parts: VaultParts) -> Result<Self, crate::crypto::CryptoError> {
        let secret_cache = client_auth::SecretCache::new(parts.master.active())?;
        Ok(Self {
            store: parts.store.clone(),
            master: parts.master,
            scopes: parts.scopes,
            max_payload_bytes: parts.max_payload_bytes,
            platform_admins: parts.platform_admins,
            metrics: parts.metrics,
            abuse: parts.abuse,
            commits: CommitQueue::start(parts.store.clone(), parts.clock.clone()),
            clock: parts.clock,
            secret_cache,
            log_key: parts.log_key.map(Arc::new),
            audit_health: Mutex::new(tlog::AuditHealth::default()),
            blocks: blocks::BlockList::default(),
            retention: parts.retention,
            keys: parts.keys,
            rotation_wake: tokio::sync::Notify::new(),
            rotations_blocked: Mutex::default(),
            objects: objects::ObjectStorage {
                backend: parts.objects,
                lease_secs: parts.object_lease_secs,
                inline_max_bytes: parts.inline_max_bytes,
                uploads: objects::UploadSlots::new(
                    parts.max_large_uploads,
                    parts.large_upload_wait,
                ),
                wake: tokio::sync::Notify::new(),
            },
        })
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The vault's time; everything it stamps or compares uses this clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// An audit event of `caller`'s request on `chain`, stamped now.
    fn event(&self, caller: &Caller, chain: String, event_type: &'static str) -> NewEvent {
        NewEvent::new(
            chain,
            event_type,
            caller.principal.as_str(),
            caller.method.as_str(),
            &caller.request_id,
            self.clock.now_millis(),
        )
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn max_payload_bytes(&self) -> usize {
        self.max_payload_bytes
    }

    /// The largest envelope a JSON body carries (base64 in memory), in either direction.
    pub fn json_max_bytes(&self) -> usize {
        self.max_payload_bytes.min(JSON_MAX_BYTES)
    }

    /// Envelopes up to this size are read whole; larger ones stream to the object store.
    pub fn inline_max_bytes(&self) -> usize {
        self.objects.inline_max_bytes
    }

    /// The object store, for readiness.
    pub fn object_backend(&self) -> &Arc<dyn crate::objects::ObjectBackend> {
        &self.objects.backend
    }

    pub fn is_platform_admin(&self, principal: &Principal) -> bool {
        self.platform_admins.iter().any(|p| p == principal)
    }

    /// Maps a store error, counting audit-write failures: those fail the request closed.
    fn store_error(&self, err: StoreError) -> VaultError {
        if matches!(err, StoreError::Audit(_)) {
            self.metrics.audit_failures.inc();
            return VaultError::AuditUnavailable(err.into());
        }
        err.into()
    }

    pub fn abuse(&self) -> &AbuseControl {
        &self.abuse
    }

    /// Applies the per-org rate limit to a request that touches `org`.
    async fn limit_org(&self, org: Option<&str>) -> Result<(), VaultError> {
        if let (Some(limiter), Some(org)) = (&self.abuse.limiter, org) {
            limiter.enforce(Limit::Org, org).await?;
        }
        Ok(())
    }

    /// Applies a scope's own per-principal limit, when the configuration gives it one.
    async fn limit_scope(&self, caller: &Caller, scope: &str) -> Result<(), VaultError> {
        if let Some(limiter) = &self.abuse.limiter {
            limiter
                .enforce(Limit::Scope(scope), caller.principal.as_str())
                .await?;
        }
        Ok(())
    }

    /// Appends events durably, group-committed with other requests' events (and with the
    /// caller's nonce, if still unspent); nothing is answered until this returns.
    async fn record(&self, caller: &Caller, events: &[NewEvent]) -> Result<(), VaultError> {
        self.commit(caller, None, events.to_vec()).await.map(|_| ())
    }

    /// Spends the caller's nonce now, if nothing has yet. Changes that commit outside the
    /// commit queue call this first, so a replayed request changes nothing; the
    /// authentication layer calls it before any response leaves.
    pub async fn spend_nonce(&self, caller: &Caller) -> Result<(), VaultError> {
        if let Some(claim) = caller.nonce.take() {
            let job = BatchJob {
                nonce: Some(claim),
                ..BatchJob::default()
            };
            self.submit(caller, job).await?;
        }
        Ok(())
    }

    /// Commits a blob write with its events and the caller's unspent nonce
    /// (group-committed); whether the write applied.
    async fn commit(
        &self,
        caller: &Caller,
        write: Option<BlobWrite>,
        events: Vec<NewEvent>,
    ) -> Result<bool, VaultError> {
        let job = BatchJob {
            nonce: caller.nonce.take(),
            write,
            events,
        };
        self.submit(caller, job).await
    }

    async fn submit(&self, caller: &Caller, job: BatchJob) -> Result<bool, VaultError> {
        let committed = self.commits.submit(job).await;
        if let Ok(committed) = &committed {
            caller.audit.note(&caller.principal, &committed.positions);
        }
        match committed.map(|c| c.outcome) {
            Ok(JobOutcome::Applied) => Ok(true),
            Ok(JobOutcome::NotApplied) => Ok(false),
            Ok(JobOutcome::Replayed) => {
                // Only the durable journal saw it: the fast filters (memory, Redis) had lost
                // the nonce, e.g. to a restart, a flush or another replica.
                let scheme = caller.method.as_str();
                self.metrics.replayed(scheme);
                self.metrics.auth_failure(scheme, "replayed");
                tracing::info!(
                    scheme,
                    principal = caller.principal.as_str(),
                    "replayed request refused by the nonce journal"
                );
                Err(VaultError::Replayed)
            }
            // The batch failed while writing data, not events: report that as it is.
            Err(CommitError::Store(e)) if matches!(*e, StoreError::Database(_)) => {
                Err(VaultError::Internal(anyhow::Error::new(e)))
            }
            // The database is down or refuses connections: 503 `unavailable` (DESIGN §20).
            Err(CommitError::Store(e)) if matches!(*e, StoreError::Unavailable(_)) => {
                Err(VaultError::Unavailable(anyhow::Error::new(e)))
            }
            Err(e) => {
                self.metrics.audit_failures.inc();
                Err(VaultError::AuditUnavailable(e.into()))
            }
        }
    }

    /// Notes where an event committed outside the queue went (a change in its own
    /// transaction), for `X-VE-Audit-Event`.
    fn noted(&self, caller: &Caller, event: &NewEvent, seq: Option<i64>) {
        if let Some(seq) = seq {
            let position = EventPosition {
                chain: event.chain.clone(),
                seq,
            };
            caller.audit.note(&caller.principal, &[position]);
        }
    }

    /// Commits the events still queued for the audit log; called at shutdown.
    pub async fn flush_audit(&self) {
        self.commits.close().await;
    }
}
