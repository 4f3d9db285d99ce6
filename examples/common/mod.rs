//! What the audit benchmarks share.

use data_vault::audit::NewEvent;
use data_vault::store::{BatchJob, Store};

/// Appends `n` events to one chain through the store, in batches of 256 as the group commit
/// writes them; `event(i)` makes the `i`-th (from 0).
pub async fn append_chain(store: &dyn Store, n: u64, event: impl Fn(u64) -> NewEvent) {
    let mut appended = 0u64;
    while appended < n {
        let size = (n - appended).min(256);
        let job = BatchJob {
            events: (appended..appended + size).map(&event).collect(),
            ..BatchJob::default()
        };
        #[allow(clippy::unwrap_used)]
        store.commit_batch(&[job], 0).await.unwrap();
        appended += size;
    }
}
