//! The vault's use cases: who may do what, with which keys, and what gets counted. Nothing
//! here knows about HTTP; handlers and the admin CLI call these functions.

mod audit;
mod blobs;
mod clients;
mod keys;
mod orgs;

use crate::audit::NewEvent;
use crate::crypto::MasterKey;
use crate::domain::Principal;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::store::StoreError;
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
}

/// What a vault is built from.
pub struct VaultParts {
    pub store: Arc<dyn Store>,
    pub master: MasterKey,
    pub scopes: ScopeTable,
    pub max_payload_bytes: usize,
    pub platform_admins: Vec<Principal>,
    pub metrics: Arc<Metrics>,
}

impl Vault {
    pub fn new(parts: VaultParts) -> Self {
        Self {
            store: parts.store,
            master: parts.master,
            scopes: parts.scopes,
            max_payload_bytes: parts.max_payload_bytes,
            platform_admins: parts.platform_admins,
            metrics: parts.metrics,
        }
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

    /// Appends events durably; nothing is answered until this returns.
    async fn record(&self, events: &[NewEvent]) -> Result<(), ApiError> {
        self.store.append_events(events).await.map_err(|e| {
            self.store_error(match e {
                // Any failure to append is an audit failure, even a connection error.
                StoreError::Unavailable(e) | StoreError::Database(e) => StoreError::Audit(e),
                other => other,
            })
        })
    }
}
