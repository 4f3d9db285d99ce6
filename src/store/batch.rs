//! One group commit: the jobs of many requests — each a nonce to spend, a blob write to apply
//! and the events that record them — in a single transaction. [`super::CommitQueue`] gathers
//! the jobs; this is the SQL side.

use super::{BlobWrite, NonceClaim, StoreResult};
use crate::audit::NewEvent;
use async_trait::async_trait;

/// One request's share of a group commit.
#[derive(Debug, Clone, Default)]
pub struct BatchJob {
    /// Spent first: when it was already spent, nothing else of the job is applied.
    pub nonce: Option<NonceClaim>,
    pub write: Option<BlobWrite>,
    pub events: Vec<NewEvent>,
}

/// What a group commit did with one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    /// Its write (if any) and its events are durable.
    Applied,
    /// Its write found nothing to change (a delete of a row already gone); no events recorded.
    NotApplied,
    /// Its nonce had already been spent: a replay. Nothing of the job was applied.
    Replayed,
}

#[async_trait]
pub trait BatchStore: Send + Sync {
    /// Applies a batch of jobs in one transaction: each job's nonce is spent, then its blob
    /// write applied, then its events appended to their chains. A job whose nonce was already
    /// spent (also earlier in the same batch) is skipped whole; a delete that finds nothing
    /// records nothing. Returns each job's outcome, in order.
    async fn commit_batch(&self, jobs: &[BatchJob], now_ms: i64) -> StoreResult<Vec<JobOutcome>>;
}

macro_rules! batch_store {
    ($store:ty, $db:ty) => {
        #[async_trait]
        impl BatchStore for $store {
            async fn commit_batch(
                &self,
                jobs: &[BatchJob],
                now_ms: i64,
            ) -> StoreResult<Vec<JobOutcome>> {
                let mut tx = self.pool.begin().await?;
                let claims: Vec<Option<&NonceClaim>> =
                    jobs.iter().map(|job| job.nonce.as_ref()).collect();
                let fresh = Self::spend_nonces_in_tx(&mut tx, &claims, now_ms).await?;
                let mut outcomes = Vec::with_capacity(jobs.len());
                let mut events: Vec<NewEvent> = Vec::new();
                for (job, fresh) in jobs.iter().zip(fresh) {
                    if !fresh {
                        outcomes.push(JobOutcome::Replayed);
                        continue;
                    }
                    let done = match &job.write {
                        None => true,
                        Some(write) => Self::write_blob_in_tx(&mut tx, write).await?,
                    };
                    if done {
                        events.extend(job.events.iter().cloned());
                        outcomes.push(JobOutcome::Applied);
                    } else {
                        outcomes.push(JobOutcome::NotApplied);
                    }
                }
                // Lock chain heads in one order, so concurrent batches cannot deadlock; the
                // sort is stable, so each chain keeps its events' order.
                events.sort_by(|a, b| a.chain.cmp(&b.chain));
                for chain in events.chunk_by(|a, b| a.chain == b.chain) {
                    Self::append_chain_in_tx(&mut tx, chain).await?;
                }
                Self::commit(tx).await?;
                Ok(outcomes)
            }
        }
    };
}

for_each_backend!(batch_store);
