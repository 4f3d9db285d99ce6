//! Benchmark (not a test): how fast audit events are linked (hashed) and a chain verified, in
//! memory, on one core. Run: `cargo run --release --example audit_chain_bench [EVENTS]`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use data_vault::audit::chain::{link, ChainVerifier, GENESIS_HASH};
use data_vault::audit::{NewEvent, Outcome};
use std::time::Instant;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let last_seq = i64::try_from(n).expect("event count fits in i64");
    let template = NewEvent {
        chain: "org:acme".into(),
        id: "01a20cfa-00ac-7614-9ec8-e79d381cb786".into(),
        timestamp_ms: 1_795_000_000_000,
        event_type: "blob.read",
        blob_id: Some("01a20cfa-00a5-7297-89b7-087d8af0c67b".into()),
        scope: Some("support".into()),
        owner: Some("provider-daemon-7".into()),
        org_id: Some("acme".into()),
        requester: "support-agent-3".into(),
        auth_method: "hmac",
        outcome: Outcome::Granted,
        denial_reason: None,
        purpose: Some("ticket".into()),
        reason: Some("ticket 4242: customer asked for a copy".into()),
        request_id: "ef59c3eaf805418ea968d2e84b21c392".into(),
        details: None,
    };
    let started = Instant::now();
    let mut previous = GENESIS_HASH.to_owned();
    let mut events = Vec::with_capacity(n);
    for seq in 1..=last_seq {
        let event = link(&template, seq, &previous).unwrap();
        previous.clone_from(&event.hash);
        events.push(event);
    }
    let linking = started.elapsed();
    let started = Instant::now();
    let mut verifier = ChainVerifier::new("org:acme");
    for event in &events {
        verifier.push(event);
    }
    let result = verifier.finish(Some((last_seq, previous)));
    let verifying = started.elapsed();
    assert!(result.valid);
    println!(
        "{n} events: linked at {:.0} events/s, verified at {:.0} events/s",
        n as f64 / linking.as_secs_f64(),
        n as f64 / verifying.as_secs_f64()
    );
}
