//! Benchmark (not a test): a chain of `EVENTS` events (default 1,000,000) appended through the
//! store in batches of 256, then the cost of what the verifiable log serves from it: the
//! checked root of a checkpoint, inclusion proofs of random leaves and consistency proofs
//! from random sizes, each read from the stored tree and the events (one query each) and
//! folded; and a full verification of the chain (hash chain and tree) from the database.
//!
//! Run: `cargo run --release --example audit_proof_bench -- [EVENTS] [DATABASE_URL]`
//! (default: a fresh SQLite file in a temporary directory).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    clippy::cast_precision_loss
)]

use data_vault::audit::tree::{self, Plan};
use data_vault::audit::NewEvent;
use data_vault::service::{read_plan, stored_tree, verify_chain};
use rand::Rng;
use std::time::Instant;

mod common;

const CHAIN: &str = "org:bench";
const SAMPLES: u32 = 1000;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("dv-proof-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let default_url = format!("sqlite://{}?mode=rwc", dir.join("bench.db").display());
    let url = args.next().filter(|u| !u.is_empty()).unwrap_or(default_url);
    let store = data_vault::store::connect(&url, 4).await.unwrap();

    let started = Instant::now();
    common::append_chain(store.as_ref(), n, |i| {
        let mut e = NewEvent::new(
            CHAIN.into(),
            "blob.read",
            "bench",
            "hmac",
            &format!("r{i}"),
            1_795_000_000_000,
        );
        e.blob_id = Some("01a20cfa-00a5-7297-89b7-087d8af0c67b".into());
        e
    })
    .await;
    let build = started.elapsed().as_secs_f64();
    println!(
        "{n} events appended in batches of 256: {build:.1} s ({:.0} events/s)",
        n as f64 / build
    );

    let started = Instant::now();
    let mut root = None;
    for _ in 0..100 {
        root = stored_tree(store.as_ref(), CHAIN).await.unwrap();
    }
    let (size, root) = root.unwrap();
    assert_eq!(size, n);
    println!(
        "checkpoint root (checked against head and frontier): {:.0} µs",
        started.elapsed().as_secs_f64() * 1e6 / 100.0
    );

    let mut rng = rand::thread_rng();
    let started = Instant::now();
    let (mut longest, mut most_leaves) = (0, 0);
    for _ in 0..SAMPLES {
        let index = rng.gen_range(0..n);
        let plan = Plan::inclusion(index, n).unwrap();
        let inputs = read_plan(store.as_ref(), CHAIN, &plan, Some(index))
            .await
            .unwrap();
        let proof = plan.hashes(&inputs).unwrap();
        longest = longest.max(plan.nodes().len());
        most_leaves = most_leaves.max(inputs.leaves.len());
        let leaf = tree::leaf_hash(inputs.leaves.get(&index).unwrap());
        tree::verify_inclusion(index, n, &leaf, &proof, &root).unwrap();
    }
    println!(
        "inclusion proof at size {n}: {:.0} µs each (at most {longest} stored nodes and \
         {most_leaves} event hashes read, proof verified)",
        started.elapsed().as_secs_f64() * 1e6 / f64::from(SAMPLES)
    );

    let started = Instant::now();
    let (mut longest, mut most_leaves) = (0, 0);
    for _ in 0..SAMPLES {
        let from = rng.gen_range(1..n);
        let plan = Plan::consistency(from, n).unwrap();
        let inputs = read_plan(store.as_ref(), CHAIN, &plan, None).await.unwrap();
        longest = longest.max(inputs.nodes.len());
        most_leaves = most_leaves.max(inputs.leaves.len());
        let proof = plan.hashes(&inputs).unwrap();
        assert!(proof.len() <= 64);
    }
    println!(
        "consistency proof to size {n}: {:.0} µs each (at most {longest} stored nodes and \
         {most_leaves} event hashes read)",
        started.elapsed().as_secs_f64() * 1e6 / f64::from(SAMPLES)
    );

    let started = Instant::now();
    let result = verify_chain(store.as_ref(), CHAIN).await.unwrap();
    assert!(result.valid);
    let secs = started.elapsed().as_secs_f64();
    println!(
        "full verification from the database (hash chain and tree): {secs:.1} s ({:.0} events/s)",
        n as f64 / secs
    );
    let _ = std::fs::remove_dir_all(&dir);
}
