//! Group commit for audit events. Concurrent requests hand their events to one writer task,
//! which appends everything that queued up while the previous transaction was committing in a
//! single transaction, then tells each request whether its own events are durable. Nothing is
//! delayed on purpose: a lone request is committed at once, and under load batches form by
//! themselves. A failed batch fails every request in it (they then answer 503, fail-closed).

use super::NewEvent;
use crate::store::{Store, StoreError};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Most events committed in one transaction.
pub const MAX_BATCH_EVENTS: usize = 256;
/// Requests waiting for the writer before senders wait for room (backpressure).
const QUEUE: usize = 4096;

struct Pending {
    events: Vec<NewEvent>,
    done: oneshot::Sender<Result<(), Arc<StoreError>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("audit store: {0}")]
    Store(Arc<StoreError>),
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
        let sender = self
            .sender
            .lock()
            .ok()
            .and_then(|s| s.clone())
            .ok_or(AppendError::Stopped)?;
        let (done, result) = oneshot::channel();
        sender
            .send(Pending { events, done })
            .await
            .map_err(|_| AppendError::Stopped)?;
        match result.await {
            Ok(Ok(())) => Ok(()),
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
        let mut count = first.events.len();
        let mut batch = vec![first];
        while count < MAX_BATCH_EVENTS {
            match receiver.try_recv() {
                Ok(next) => {
                    count += next.events.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let events: Vec<NewEvent> = batch
            .iter()
            .flat_map(|p| p.events.iter().cloned())
            .collect();
        let result = store.append_events(&events).await.map_err(Arc::new);
        for pending in batch {
            // A request that gave up waiting (client gone) is no reason to stop.
            let _ = pending.done.send(result.clone());
        }
    }
}
