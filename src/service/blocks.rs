//! Blocking wallet principals (DESIGN §15): an operator blocks a wallet address (audited on
//! the `system` chain, reversible), and every replica refuses its signatures within
//! [`BLOCK_TTL`]. Each replica keeps the whole (small) set of blocked addresses in memory and
//! reloads it from the database once it is older than that, so a request costs no query.

use super::{Caller, Vault};
use crate::audit::SYSTEM_CHAIN;
use crate::domain::{Note, Principal};
use crate::error::VaultError;
use crate::store::BlockRecord;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a replica trusts its copy of the block list: a block made through another process
/// is enforced here within this time (DESIGN §15 allows 5 s).
pub const BLOCK_TTL: Duration = Duration::from_secs(2);
const _: () = assert!(
    BLOCK_TTL.as_secs() < 5,
    "a block must reach every replica within 5 s"
);
/// Most blocked addresses held in memory. A list that reaches it is not trusted to be
/// complete: the principal is then looked up on its own, so a long list never fails open.
const MAX_BLOCKS_CACHED: i64 = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("{0} is already blocked (since {1})")]
    AlreadyBlocked(String, String),
    #[error("{0} is not blocked")]
    NotBlocked(String),
    #[error(transparent)]
    Vault(#[from] VaultError),
}

impl From<crate::store::StoreError> for BlockError {
    fn from(e: crate::store::StoreError) -> Self {
        BlockError::Vault(e.into())
    }
}

/// A snapshot of the blocked addresses and when it was read.
struct Snapshot {
    read_at: Instant,
    blocked: HashSet<String>,
    complete: bool,
}

/// This replica's copy of the block list. One reload at a time: concurrent requests wait
/// for it rather than each asking the database.
#[derive(Default)]
pub(super) struct BlockList(tokio::sync::Mutex<Option<Arc<Snapshot>>>);

impl BlockList {
    /// Forces a reload on the next check (after a change made through this process).
    async fn forget(&self) {
        *self.0.lock().await = None;
    }
}

impl Vault {
    /// Whether `principal` is blocked, as of at most [`BLOCK_TTL`] ago.
    pub async fn is_blocked(&self, principal: &Principal) -> Result<bool, VaultError> {
        let snapshot = {
            let mut slot = self.blocks.0.lock().await;
            match slot.as_ref() {
                Some(s) if s.read_at.elapsed() < BLOCK_TTL => s.clone(),
                _ => {
                    let list = self.store.blocked_principals(MAX_BLOCKS_CACHED).await?;
                    let complete = i64::try_from(list.len()).is_ok_and(|n| n < MAX_BLOCKS_CACHED);
                    let fresh = Arc::new(Snapshot {
                        read_at: Instant::now(),
                        blocked: list.into_iter().collect(),
                        complete,
                    });
                    *slot = Some(fresh.clone());
                    fresh
                }
            }
        };
        if snapshot.blocked.contains(principal.as_str()) {
            return Ok(true);
        }
        if snapshot.complete {
            return Ok(false);
        }
        Ok(self.store.principal_block(principal).await?.is_some())
    }

    /// Blocks a wallet principal (its address already checked against the configured
    /// prefix by the caller); audited as `principal.block` with the reason.
    pub async fn block_principal(
        &self,
        caller: &Caller,
        principal: &Principal,
        reason: Option<&Note>,
    ) -> Result<(), BlockError> {
        let mut event = self.event(caller, SYSTEM_CHAIN.to_owned(), "principal.block");
        // The principal the operation is about is the "owner" of the event.
        event.owner = Some(principal.as_str().to_owned());
        event.reason = reason.map(|r| r.as_str().to_owned());
        let blocked = self
            .store
            .block_principal(
                principal,
                reason.map(Note::as_str),
                self.clock.now_secs(),
                &event,
            )
            .await
            .map_err(|e| self.store_error(e))?;
        self.blocks.forget().await;
        if blocked {
            return Ok(());
        }
        let since = self
            .store
            .principal_block(principal)
            .await?
            .map(|b| crate::time::to_rfc3339(b.blocked_at))
            .unwrap_or_default();
        Err(BlockError::AlreadyBlocked(
            principal.as_str().to_owned(),
            since,
        ))
    }

    /// Lifts a block; audited as `principal.unblock`.
    pub async fn unblock_principal(
        &self,
        caller: &Caller,
        principal: &Principal,
    ) -> Result<(), BlockError> {
        let mut event = self.event(caller, SYSTEM_CHAIN.to_owned(), "principal.unblock");
        event.owner = Some(principal.as_str().to_owned());
        let lifted = self
            .store
            .unblock_principal(principal, &event)
            .await
            .map_err(|e| self.store_error(e))?;
        self.blocks.forget().await;
        if lifted {
            Ok(())
        } else {
            Err(BlockError::NotBlocked(principal.as_str().to_owned()))
        }
    }

    /// The block on one principal, if any.
    pub async fn principal_block(
        &self,
        principal: &Principal,
    ) -> Result<Option<BlockRecord>, VaultError> {
        Ok(self.store.principal_block(principal).await?)
    }
}
