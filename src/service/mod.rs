//! The vault's use cases: who may do what, with which keys, and what gets counted. Nothing
//! here knows about HTTP; handlers and the admin CLI call these functions.

mod audit;
mod blobs;
mod client_auth;
mod clients;
mod keys;
mod orgs;

use crate::audit::writer::{AppendError, AuditWriter};
use crate::audit::{NewEvent, Outcome};
use crate::crypto::MasterKey;
use crate::domain::Principal;
use crate::error::ApiError;
use crate::limits::{scope_limit, LimitKind, Limiter};
use crate::metrics::Metrics;
use crate::spikes::{SpikeDetector, SpikeKind};
use crate::store::Store;
use crate::store::{BlobWrite, StoreError};
use data_vault_scopes::ScopeTable;
use std::sync::Arc;

pub use audit::{verify_chain, AuditPage, AuditParams, MAX_AUDIT_LIMIT};
pub use blobs::{
    BlobMetadata, BlobPage, ListParams, NewBlob, ReadParams, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT,
};
pub use clients::ClientError;
pub use keys::{check_master_key, database_is_initialised, MasterKeyCheck};

pub use orgs::Member;

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
}

/// The principal the admin CLI records as requester.
pub const LOCAL_ADMIN: &str = "admin-cli";

impl Caller {
    /// The operator at the admin CLI.
    pub fn local_admin() -> Result<Self, crate::domain::Invalid> {
        Ok(Self {
            principal: Principal::parse(LOCAL_ADMIN)?,
            method: AuthMethod::Local,
            request_id: uuid::Uuid::new_v4().simple().to_string(),
        })
    }

    /// An audit event of this caller's, on `chain`.
    pub fn event(&self, chain: String, event_type: &'static str) -> NewEvent {
        NewEvent::new(
            chain,
            event_type,
            self.principal.as_str(),
            self.method.as_str(),
            &self.request_id,
        )
    }
}

pub struct Vault {
    store: Arc<dyn Store>,
    master: MasterKey,
    scopes: ScopeTable,
    max_payload_bytes: usize,
    platform_admins: Vec<Principal>,
    metrics: Arc<Metrics>,
    abuse: AbuseControl,
    audit: AuditWriter,
    secret_cache: client_auth::SecretCache,
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
    pub master: MasterKey,
    pub scopes: ScopeTable,
    pub max_payload_bytes: usize,
    pub platform_admins: Vec<Principal>,
    pub metrics: Arc<Metrics>,
    pub abuse: AbuseControl,
}

impl Vault {
    pub fn new(parts: VaultParts) -> Result<Self, crate::crypto::CryptoError> {
        let secret_cache = client_auth::SecretCache::new(&parts.master)?;
        Ok(Self {
            store: parts.store.clone(),
            master: parts.master,
            scopes: parts.scopes,
            max_payload_bytes: parts.max_payload_bytes,
            platform_admins: parts.platform_admins,
            metrics: parts.metrics,
            abuse: parts.abuse,
            audit: AuditWriter::start(parts.store.clone()),
            secret_cache,
        })
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn max_payload_bytes(&self) -> usize {
        self.max_payload_bytes
    }

    pub fn is_platform_admin(&self, principal: &Principal) -> bool {
        self.platform_admins.iter().any(|p| p == principal)
    }

    /// Maps a store error, counting audit-write failures: those fail the request closed.
    fn store_error(&self, err: StoreError) -> ApiError {
        if matches!(err, StoreError::Audit(_)) {
            self.metrics.audit_failures.inc();
            return ApiError::AuditUnavailable(err.into());
        }
        err.into()
    }

    pub fn abuse(&self) -> &AbuseControl {
        &self.abuse
    }

    /// Applies the per-org rate limit to a request that touches `org`.
    async fn limit_org(&self, org: Option<&str>) -> Result<(), ApiError> {
        let (Some(limiter), Some(org)) = (&self.abuse.limiter, org) else {
            return Ok(());
        };
        let verdict = limiter.check(LimitKind::Org.as_str(), org).await;
        if verdict.allowed {
            Ok(())
        } else {
            self.metrics.rate_limited(LimitKind::Org.as_str());
            Err(ApiError::RateLimited(verdict))
        }
    }

    /// Applies a scope's own per-principal limit, when the configuration gives it one.
    async fn limit_scope(&self, caller: &Caller, scope: &str) -> Result<(), ApiError> {
        let Some(limiter) = &self.abuse.limiter else {
            return Ok(());
        };
        let name = scope_limit(scope);
        if !limiter.has(&name) {
            return Ok(());
        }
        let verdict = limiter.check(&name, caller.principal.as_str()).await;
        if verdict.allowed {
            Ok(())
        } else {
            self.metrics.rate_limited("scope");
            Err(ApiError::RateLimited(verdict))
        }
    }

    /// Appends a denial, and with it any denial spike it completes (DESIGN §10): the spike's
    /// `security.denial_spike` event and, if configured, the block of the principal.
    async fn record_denial(&self, denied: NewEvent) -> Result<(), ApiError> {
        let Some(spikes) = &self.abuse.spikes else {
            return self.record(&[denied]).await;
        };
        let now = crate::time::now_millis();
        let detected = spikes
            .observe(&denied.requester, denied.org_id.as_deref(), now)
            .await;
        let mut events = vec![denied.clone()];
        for spike in detected {
            self.metrics.denial_spike(spike.kind.as_str());
            tracing::warn!(kind = spike.kind.as_str(), subject = %spike.subject, "denial spike");
            let chain = match spike.kind {
                SpikeKind::Principal => crate::audit::owner_chain(&spike.subject),
                SpikeKind::Org => crate::audit::org_chain(&spike.subject),
            };
            let mut event = NewEvent::new(
                chain,
                "security.denial_spike",
                &denied.requester,
                denied.auth_method,
                &denied.request_id,
            );
            event.org_id = denied.org_id.clone();
            event.outcome = Outcome::Denied;
            event.denial_reason = Some(match spike.kind {
                SpikeKind::Principal => "principal_denial_spike",
                SpikeKind::Org => "org_denial_spike",
            });
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
                    .block(&spike.subject, now + block_secs as i64 * 1000, now)
                    .await;
                self.metrics
                    .principals_blocked
                    .set(spikes.blocked_count(now));
                let mut block = NewEvent::new(
                    crate::audit::owner_chain(&spike.subject),
                    "security.principal_blocked",
                    &denied.requester,
                    denied.auth_method,
                    &denied.request_id,
                );
                block.outcome = Outcome::Denied;
                block.denial_reason = Some("principal_denial_spike");
                block.reason = Some(format!("blocked for {block_secs} s"));
                events.push(block);
            }
        }
        self.record(&events).await
    }

    /// Appends events durably, group-committed with other requests' events; nothing is
    /// answered until this returns.
    async fn record(&self, events: &[NewEvent]) -> Result<(), ApiError> {
        self.commit(None, events.to_vec()).await.map(|_| ())
    }

    /// Commits a blob write with its events (group-committed); whether the write applied.
    async fn commit(
        &self,
        write: Option<BlobWrite>,
        events: Vec<NewEvent>,
    ) -> Result<bool, ApiError> {
        match self.audit.submit(write, events).await {
            Ok(applied) => Ok(applied),
            // The batch failed while writing data, not events: report that as it is.
            Err(AppendError::Store(e)) if matches!(*e, StoreError::Database(_)) => {
                Err(ApiError::Internal(anyhow::Error::new(e)))
            }
            Err(e) => {
                self.metrics.audit_failures.inc();
                Err(ApiError::AuditUnavailable(e.into()))
            }
        }
    }

    /// Commits the events still queued for the audit log; called at shutdown.
    pub async fn flush_audit(&self) {
        self.audit.close().await;
    }
}
