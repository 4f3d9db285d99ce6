//! The group-commit queue: blob writes, the audit events that record them and the requests'
//! nonces, committed together. Concurrent requests hand their jobs to one task, which commits
//! everything that queued up while the previous transaction was committing in a single
//! transaction ([`super::BatchStore::commit_jobs`]), then tells each request what became of
//! its own job. Nothing is delayed on purpose: a lone request is committed at once, and under
//! load batches form by themselves. A failed batch fails every request in it (they then
//! answer 503, fail-closed).

use super::{BatchJob, Committed, Store, StoreError};
use crate::audit::NewEvent;
use crate::time::Clock;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Most events (or jobs, for jobs without events) committed in one transaction.
pub const MAX_BATCH_EVENTS: usize = 256;
/// Jobs waiting for the committing task before senders wait for room (backpressure).
pub const QUEUE_CAPACITY: usize = 4096;

struct Pending {
    job: BatchJob,
    done: oneshot::Sender<Result<Committed, Arc<StoreError>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The batch's transaction failed; the source chain carries the driver's error, which
    /// the 503's log line must show.
    #[error("group commit")]
    Store(#[source] Arc<StoreError>),
    #[error("the commit queue has stopped")]
    Stopped,
}

pub struct CommitQueue {
    sender: Mutex<Option<mpsc::Sender<Pending>>>,
    task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

impl CommitQueue {
    /// Starts the committing task on the current runtime.
    pub fn start(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let task = tokio::spawn(run(store, clock, receiver));
        Self {
            sender: Mutex::new(Some(sender)),
            task: tokio::sync::Mutex::new(Some(task)),
        }
    }

    /// Appends `events` (to their chains, in order) and returns once they are durable.
    pub async fn append(&self, events: Vec<NewEvent>) -> Result<(), CommitError> {
        self.sink()
            .ok_or(CommitError::Stopped)?
            .append(events)
            .await
    }

    /// Spends the job's nonce, applies its write and appends its events in one
    /// group-committed transaction; returns once that is durable, with what became of the job
    /// (a delete may find nothing, a nonce may be spent already: then nothing is recorded)
    /// and where its events went.
    pub async fn submit(&self, job: BatchJob) -> Result<Committed, CommitError> {
        self.sink().ok_or(CommitError::Stopped)?.submit(job).await
    }

    /// A handle that appends events from outside a request's own await, such as a response
    /// body still streaming; `None` once the queue is closing.
    pub fn sink(&self) -> Option<EventSink> {
        self.sender
            .lock()
            .ok()
            .and_then(|s| s.as_ref().map(mpsc::Sender::downgrade))
            .map(EventSink)
    }

    /// Stops taking jobs, commits everything already queued, and waits for the task.
    pub async fn close(&self) {
        if let Ok(mut sender) = self.sender.lock() {
            sender.take();
        }
        if let Some(task) = self.task.lock().await.take() {
            let _ = task.await;
        }
    }
}

/// A sender into a [`CommitQueue`]: what it commits is as durable as any request's events.
/// It does not keep the queue open: a response still streaming at shutdown (which may hold
/// one for as long as its client reads) must not stop the queue from closing.
#[derive(Clone)]
pub struct EventSink(mpsc::WeakSender<Pending>);

impl EventSink {
    /// Appends `events` (to their chains, in order) and returns once they are durable.
    pub async fn append(&self, events: Vec<NewEvent>) -> Result<(), CommitError> {
        self.submit(BatchJob {
            events,
            ..BatchJob::default()
        })
        .await
        .map(|_| ())
    }

    async fn submit(&self, job: BatchJob) -> Result<Committed, CommitError> {
        let sender = self.0.upgrade().ok_or(CommitError::Stopped)?;
        let (done, result) = oneshot::channel();
        sender
            .send(Pending { job, done })
            .await
            .map_err(|_| CommitError::Stopped)?;
        // Sent: waiting for the answer needs no hold on the queue.
        drop(sender);
        match result.await {
            Ok(Ok(applied)) => Ok(applied),
            Ok(Err(e)) => Err(CommitError::Store(e)),
            Err(_) => Err(CommitError::Stopped),
        }
    }
}

async fn run(store: Arc<dyn Store>, clock: Arc<dyn Clock>, mut receiver: mpsc::Receiver<Pending>) {
    // A job without events (a nonce alone) still costs a row: count it as one.
    let weight = |p: &Pending| p.job.events.len().max(1);
    while let Some(first) = receiver.recv().await {
        let mut count = weight(&first);
        let mut batch = vec![first];
        while count < MAX_BATCH_EVENTS {
            match receiver.try_recv() {
                Ok(next) => {
                    count += weight(&next);
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let (jobs, waiting): (Vec<BatchJob>, Vec<_>) =
            batch.into_iter().map(|p| (p.job, p.done)).unzip();
        match store.commit_jobs(&jobs, clock.now_millis()).await {
            Ok(applied) => {
                for (done, applied) in waiting.into_iter().zip(applied) {
                    // A request that gave up waiting (client gone) is no reason to stop.
                    let _ = done.send(Ok(applied));
                }
            }
            Err(e) => {
                let e = Arc::new(e);
                for done in waiting {
                    let _ = done.send(Err(e.clone()));
                }
            }
        }
    }
}
