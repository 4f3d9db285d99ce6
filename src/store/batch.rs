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

/// Where an event was recorded: the position `X-VE-Audit-Event` reports (DESIGN §16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPosition {
    pub chain: String,
    pub seq: i64,
}

/// A job's outcome, and where each of its events went (in the job's order; none unless
/// applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub outcome: JobOutcome,
    pub positions: Vec<EventPosition>,
}

#[async_trait]
pub trait BatchStore: Send + Sync {
    /// Applies a batch of jobs in one transaction: each job's nonce is spent, then its blob
    /// write applied, then its events appended to their chains (and their trees). A job whose
    /// nonce was already spent (also earlier in the same batch) is skipped whole; a delete
    /// that finds nothing records nothing. Returns what became of each job, in order.
    async fn commit_jobs(&self, jobs: &[BatchJob], now_ms: i64) -> StoreResult<Vec<Committed>>;

    /// [`Self::commit_jobs`], keeping only each job's outcome.
    async fn commit_batch(&self, jobs: &[BatchJob], now_ms: i64) -> StoreResult<Vec<JobOutcome>> {
        Ok(self
            .commit_jobs(jobs, now_ms)
            .await?
            .into_iter()
            .map(|c| c.outcome)
            .collect())
    }
}

macro_rules! batch_store {
    ($store:ty, $db:ty) => {
        #[async_trait]
        impl BatchStore for $store {
            async fn commit_jobs(
                &self,
                jobs: &[BatchJob],
                now_ms: i64,
            ) -> StoreResult<Vec<Committed>> {
                let mut tx = self.pool.begin().await?;
                let claims: Vec<Option<&NonceClaim>> =
                    jobs.iter().map(|job| job.nonce.as_ref()).collect();
                let fresh = Self::spend_nonces_in_tx(&mut tx, &claims, now_ms).await?;
                let mut outcomes = Vec::with_capacity(jobs.len());
                // (job, its nth event, event): the events of applied jobs.
                let mut events: Vec<(usize, usize, &NewEvent)> = Vec::new();
                for (n, (job, fresh)) in jobs.iter().zip(fresh).enumerate() {
                    if !fresh {
                        outcomes.push(JobOutcome::Replayed);
                        continue;
                    }
                    let done = match &job.write {
                        None => true,
                        Some(write) => Self::write_blob_in_tx(&mut tx, write).await?,
                    };
                    if done {
                        events.extend(job.events.iter().enumerate().map(|(i, e)| (n, i, e)));
                        outcomes.push(JobOutcome::Applied);
                    } else {
                        outcomes.push(JobOutcome::NotApplied);
                    }
                }
                // Lock chain heads in one order, so concurrent batches cannot deadlock; the
                // sort is stable, so each chain keeps its events' order (and each job's).
                events.sort_by(|a, b| a.2.chain.cmp(&b.2.chain));
                let mut positions: Vec<Vec<(usize, EventPosition)>> =
                    jobs.iter().map(|_| Vec::new()).collect();
                let mut nodes = Vec::new();
                for group in events.chunk_by(|a, b| a.2.chain == b.2.chain) {
                    let chain: Vec<&NewEvent> = group.iter().map(|(_, _, e)| *e).collect();
                    let first = Self::append_chain_in_tx(&mut tx, &chain, &mut nodes).await?;
                    for ((job, nth, event), seq) in group.iter().zip(first..) {
                        if let Some(list) = positions.get_mut(*job) {
                            let chain = event.chain.clone();
                            list.push((*nth, EventPosition { chain, seq }));
                        }
                    }
                }
                // The trees of every chain of the batch in one statement (per 1000 nodes).
                Self::insert_tree_nodes_in_tx(&mut tx, &nodes).await?;
                Self::commit(tx).await?;
                Ok(outcomes
                    .into_iter()
                    .zip(positions)
                    .map(|(outcome, mut positions)| {
                        positions.sort_by_key(|(nth, _)| *nth);
                        Committed {
                            outcome,
                            positions: positions.into_iter().map(|(_, p)| p).collect(),
                        }
                    })
                    .collect())
            }
        }
    };
}

for_each_backend!(batch_store);
