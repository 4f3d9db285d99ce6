//! Benchmark (not a test): audit chain verification from the database, and what it is made
//! of. Appends a chain of `EVENTS` events (default 1,000,000) unless the database already holds
//! it, then times, `REPEATS` times each (default 3):
//!
//! - `read`: reading the chain page by page as `verify_chain` does, and nothing else;
//! - `check`: the same events, already in memory, through the hash-chain verifier and the
//!   Merkle frontier (the CPU work of verification without the database);
//! - `nodes`: only the stored-subtree look-ups `verify_chain` makes (the subtrees each page of
//!   events completes, looked up page by page), from events already in memory;
//! - `verify_chain`: the real thing (read, hash chain, tree and stored subtrees).
//!
//! Run: `cargo run --release --example audit_verify_bench -- [EVENTS] [DATABASE_URL] [REPEATS]
//! [PHASES]` (default: a SQLite file `dv-verify-bench.db` in the temporary directory, kept
//! between runs so that the chain is appended once; PHASES, a comma-separated subset of
//! `read,check,nodes,verify`, all by default: under `valgrind --tool=callgrind` one phase at a time
//! gives its instruction count, less a run with PHASES `none`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    clippy::cast_precision_loss
)]

use data_vault::audit::chain::ChainVerifier;
use data_vault::audit::tree::{self, Frontier};
use data_vault::audit::{AuditEvent, NewEvent};
use data_vault::service::verify_chain;
use data_vault::store::Store;
use std::time::Instant;

mod common;

const CHAIN: &str = "org:bench";
const PAGE: i64 = 5000;

/// One event of the benchmark's chain: a read of one blob, as GET traffic appends them.
fn event(i: u64) -> NewEvent {
    let mut e = NewEvent::new(
        CHAIN.into(),
        "blob.read",
        "provider-daemon-7",
        "hmac",
        &format!("{i:032x}"),
        1_795_000_000_000,
    );
    e.blob_id = Some("01a20cfa-00a5-7297-89b7-087d8af0c67b".into());
    e.scope = Some("support".into());
    e.owner = Some("provider-daemon-7".into());
    e
}

async fn read_all(store: &dyn Store) -> Vec<AuditEvent> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = store.audit_chain_page(CHAIN, after, PAGE).await.unwrap();
        let full = i64::try_from(page.len()) == Ok(PAGE);
        after = page.last().map_or(after, |e| e.seq);
        all.extend(page);
        if !full {
            return all;
        }
    }
}

fn check(events: &[AuditEvent]) -> bool {
    let mut verifier = ChainVerifier::new(CHAIN);
    let mut frontier = Frontier::default();
    let mut completed = Vec::new();
    for event in events {
        verifier.push(event);
        let mut leaf = [0u8; 32];
        if hex::decode_to_slice(&event.hash, &mut leaf).is_ok() {
            frontier.push(&leaf, &mut completed);
            completed.clear();
        }
    }
    verifier.finish(None).valid
}

/// Looks up the stored subtrees each page of events completes, as `verify_chain` does (the
/// comparison itself is left out); returns how many were looked up.
async fn stored_nodes(store: &dyn Store, events: &[AuditEvent]) -> usize {
    let mut frontier = Frontier::default();
    let mut completed = Vec::new();
    let mut total = 0;
    for page in events.chunks(usize::try_from(PAGE).unwrap()) {
        let mut ids = Vec::new();
        for event in page {
            let mut leaf = [0u8; 32];
            hex::decode_to_slice(&event.hash, &mut leaf).unwrap();
            frontier.push(&leaf, &mut completed);
            ids.extend(
                completed
                    .drain(..)
                    .map(|(id, _)| id)
                    .filter(|id| tree::is_stored(*id)),
            );
        }
        let found = store.audit_tree_nodes(CHAIN, &ids).await.unwrap();
        assert_eq!(found.len(), ids.len());
        total += ids.len();
    }
    total
}

fn rate(label: &str, n: usize, secs: f64) {
    println!(
        "{label:>13}: {secs:6.2} s = {:>9.0} events/s",
        n as f64 / secs
    );
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let default_url = format!(
        "sqlite://{}?mode=rwc",
        std::env::temp_dir().join("dv-verify-bench.db").display()
    );
    let url = args.next().filter(|u| !u.is_empty()).unwrap_or(default_url);
    let repeats: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let phases = args
        .next()
        .unwrap_or_else(|| "read,check,nodes,verify".to_owned());
    for phase in phases.split(',') {
        assert!(
            ["read", "check", "nodes", "verify", "none"].contains(&phase),
            "unknown phase {phase:?}: PHASES is a comma-separated subset of read,check,nodes,verify (or none)"
        );
    }
    let run = |phase: &str| phases.split(',').any(|p| p == phase);
    let store = data_vault::store::connect(&url, 4).await.unwrap();

    let have = store
        .audit_head(CHAIN)
        .await
        .unwrap()
        .map_or(0, |(seq, _)| seq);
    if have == 0 {
        let started = Instant::now();
        common::append_chain(store.as_ref(), n, event).await;
        println!(
            "appended {n} events in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    } else {
        println!("reusing the chain of {have} events already in {url}");
    }

    for round in 1..=repeats {
        println!("round {round}");
        if run("read") || run("check") || run("nodes") {
            let started = Instant::now();
            let events = read_all(store.as_ref()).await;
            rate("read", events.len(), started.elapsed().as_secs_f64());
            if run("check") {
                let started = Instant::now();
                assert!(check(&events));
                rate("check", events.len(), started.elapsed().as_secs_f64());
            }
            if run("nodes") {
                let started = Instant::now();
                let looked_up = stored_nodes(store.as_ref(), &events).await;
                rate("nodes", events.len(), started.elapsed().as_secs_f64());
                println!("{:>13}  ({looked_up} stored subtrees looked up)", "");
            }
        }
        if run("verify") {
            let started = Instant::now();
            let result = verify_chain(store.as_ref(), CHAIN).await.unwrap();
            assert!(result.valid);
            let len = usize::try_from(result.length).unwrap_or(0);
            rate("verify_chain", len, started.elapsed().as_secs_f64());
        }
    }
}
