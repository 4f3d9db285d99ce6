//! Benchmark (not a test): audit appends per second through the real group-commit path
//! (`CommitQueue` over the store), the way GET traffic appends: `--writers` concurrent
//! requests, each appending one event to a chain of its own, for `--secs` seconds.
//!
//! Uses only APIs that predate the Merkle tree, so the very same file measures a build
//! without the tree (see docs/performance.md, "Audit tree").
//!
//! Run: `cargo run --release --example audit_append_bench -- [DATABASE_URL] [WRITERS] [SECS]`
//! (default: a fresh SQLite file in a temporary directory, 64 writers, 10 s).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    clippy::cast_precision_loss
)]

use data_vault::audit::NewEvent;
use data_vault::store::CommitQueue;
use data_vault::time::SystemClock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::env::temp_dir().join(format!("dv-append-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let default_url = format!("sqlite://{}?mode=rwc", dir.join("bench.db").display());
    let url = args.next().filter(|u| !u.is_empty()).unwrap_or(default_url);
    let writers: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let secs: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let store = data_vault::store::connect(&url, 16).await.unwrap();
    let queue = Arc::new(CommitQueue::start(store, Arc::new(SystemClock)));
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (queue, done) = (queue.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let chain = format!("owner:bench-{w}");
            let mut n = 0u64;
            while Instant::now() < deadline {
                let mut event = NewEvent::new(
                    chain.clone(),
                    "blob.read",
                    "bench",
                    "hmac",
                    &format!("r{w}-{n}"),
                    1_795_000_000_000,
                );
                event.blob_id = Some("01a20cfa-00a5-7297-89b7-087d8af0c67b".into());
                queue.append(vec![event]).await.unwrap();
                n += 1;
            }
            done.fetch_add(n, Ordering::Relaxed);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let events = done.load(Ordering::Relaxed);
    queue.close().await;
    println!(
        "{events} events by {writers} writers in {elapsed:.1} s: {:.0} appends/s",
        events as f64 / elapsed
    );
    let _ = std::fs::remove_dir_all(&dir);
}
