//! Group commit for audit events and the blob writes they record. Concurrent requests hand
//! their jobs (events, with an optional blob insert or delete) to one writer task, which
//! commits everything that queued up while the previous transaction was committing in a
//! single transaction, then tells each request whether its own job is durable. Nothing is
//! delayed on purpose: a lone request is committed at once, and under load batches form by
//! themselves. A failed batch fails every request in it (they then answer 503, fail-closed).

use super::NewEvent;
use crate::store::{BatchJob, BlobWrite, Store, StoreError};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Most events committed in one transaction.
pub const MAX_BATCH_EVENTS: usize = 256;
/// Requests waiting for the writer before senders wait for room (backpressure).
const QUEUE: usize = 4096;

struct Pending {
    job: BatchJob,
    done: oneshot::Sender<Result<bool, Arc<StoreError>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The batch's transaction failed; the source chain carries the driver's error, which
    /// the 503's log line must show.
    #[error("audit store")]
    Store(#[source] Arc<StoreError>),
    #[error("the audit writer has stopped")]
    Stopped,
}

pub struct AuditWriter {
    sender: Mutex<Option<mpsc::Sender<Pending>>>,
    task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

impl AuditWriter {
    /// Starts the writer task on the current runtime.
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let task = tokio::spawn(run(store, receiver));
        Self {
            sender: Mutex::new(Some(sender)),
            task: tokio::sync::Mutex::new(Some(task)),
        }
    }

    /// Appends `events` (to their chains, in order) and returns once they are durable.
    pub async fn append(&self, events: Vec<NewEvent>) -> Result<(), AppendError> {
        self.submit(None, events).await.map(|_| ())
    }

    /// Applies `write` and appends `events` in one group-committed transaction; returns once
    /// both are durable, with whether the write applied (a delete may find nothing, and then
    /// its events are not recorded).
    pub async fn submit(
        &self,
        write: Option<BlobWrite>,
        events: Vec<NewEvent>,
    ) -> Result<bool, AppendError> {
        let sender = self
            .sender
            .lock()
            .ok()
            .and_then(|s| s.clone())
            .ok_or(AppendError::Stopped)?;
        let (done, result) = oneshot::channel();
        sender
            .send(Pending {
                job: BatchJob { write, events },
                done,
            })
            .await
            .map_err(|_| AppendError::Stopped)?;
        match result.await {
            Ok(Ok(applied)) => Ok(applied),
            Ok(Err(e)) => Err(AppendError::Store(e)),
            Err(_) => Err(AppendError::Stopped),
        }
    }

    /// Stops taking events, commits everything already queued, and waits for the task.
    pub async fn close(&self) {
        if let Ok(mut sender) = self.sender.lock() {
            sender.take();
        }
        if let Some(task) = self.task.lock().await.take() {
            let _ = task.await;
        }
    }
}

async fn run(store: Arc<dyn Store>, mut receiver: mpsc::Receiver<Pending>) {
    while let Some(first) = receiver.recv().await {
        let mut count = first.job.events.len();
        let mut batch = vec![first];
        while count < MAX_BATCH_EVENTS {
            match receiver.try_recv() {
                Ok(next) => {
                    count += next.job.events.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let (jobs, waiting): (Vec<BatchJob>, Vec<_>) =
            batch.into_iter().map(|p| (p.job, p.done)).unzip();
        match store.commit_batch(&jobs).await {
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
