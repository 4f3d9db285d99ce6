//! The vault's use cases: who may do what, with which keys, and what gets counted. Nothing
//! here knows about HTTP; handlers and the admin CLI call these functions.

mod blobs;
mod clients;
mod keys;
mod orgs;

use crate::crypto::MasterKey;
use crate::domain::Principal;
use crate::metrics::Metrics;
use crate::store::Store;
use data_vault_scopes::ScopeTable;
use std::sync::Arc;

pub use blobs::{
    BlobMetadata, BlobPage, ListParams, NewBlob, ReadParams, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT,
};
pub use clients::ClientError;
pub use keys::MasterKeyCheck;
pub use keys::{check_master_key, database_is_initialised};
pub use orgs::OrgError;

/// How a caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Hmac,
    Wallet,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Hmac => "hmac",
            AuthMethod::Wallet => "wallet",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub method: AuthMethod,
}

pub struct Vault {
    store: Arc<dyn Store>,
    master: MasterKey,
    scopes: ScopeTable,
    max_payload_bytes: usize,
    metrics: Arc<Metrics>,
}

impl Vault {
    pub fn new(
        store: Arc<dyn Store>,
        master: MasterKey,
        scopes: ScopeTable,
        max_payload_bytes: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            store,
            master,
            scopes,
            max_payload_bytes,
            metrics,
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
}
