//! DESIGN §6: an unknown HMAC principal costs the same time and gets the same answer as a
//! wrong signature for a known one. Measured over HTTP with interleaved probes; the bound is
//! generous because the machines that run this are shared and noisy.

use crate::helpers::*;
use crate::on_both_backends;
use data_vault_auth::{headers as h, sha256_hex, HmacRequest};
use rand::Rng;
use std::time::{Duration, Instant};

const PATH: &str = "/api/v1/vault/blobs";
const KNOWN: &str = "timing-client";
const WARM_UP_PAIRS: usize = 100;
const PAIRS: usize = 1500;

/// A client name of the same length as `KNOWN` that nobody registered: letters only, so it
/// can never look like a wallet address and is refused by no shape check.
fn unknown_name() -> String {
    let mut rng = rand::thread_rng();
    (0..KNOWN.len())
        .map(|_| char::from(b'a' + rng.gen_range(0..26u8)))
        .collect()
}

/// Sends one request signed with a key nobody holds; returns the round-trip time and the
/// error body without its request id.
async fn probe(app: &TestApp, principal: &str) -> (Duration, serde_json::Value) {
    let timestamp = data_vault::time::now_secs().to_string();
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let content_sha256 = sha256_hex(b"");
    let signature = HmacRequest {
        method: "GET",
        path: PATH,
        raw_query: "",
        principal,
        timestamp: &timestamp,
        nonce: &nonce,
        content_sha256: &content_sha256,
    }
    .sign(b"a key that no client holds");
    let request = app
        .http
        .get(app.url(PATH))
        .header(h::PRINCIPAL, principal)
        .header(h::TIMESTAMP, timestamp)
        .header(h::NONCE, nonce)
        .header(h::CONTENT_SHA256, content_sha256)
        .header(h::SIGNATURE, signature)
        .build()
        .unwrap();
    let started = Instant::now();
    let response = app.http.execute(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(status, 401, "{principal}");
    let mut body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    body.as_object_mut().unwrap().remove("request_id");
    (elapsed, body)
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// The mean of the middle 80 %.
fn trimmed_mean(sorted: &[f64]) -> f64 {
    let cut = sorted.len() / 10;
    let middle = &sorted[cut..sorted.len() - cut];
    middle.iter().sum::<f64>() / middle.len() as f64
}

async fn unknown_principal_costs_the_same_as_a_wrong_signature(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        // Thousands of failures from one address must reach the signature check.
        config.rate_limit.ip_per_second = 1e6;
        config.rate_limit.ip_burst = u32::MAX;
        config.rate_limit.principal_per_second = 1e6;
        config.rate_limit.principal_burst = u32::MAX;
    })
    .await;
    app.create_client(KNOWN).await;

    let mut known = Vec::with_capacity(PAIRS);
    let mut unknown = Vec::with_capacity(PAIRS);
    // Unknown minus known within each pair: load that drifts over the run cancels out.
    let mut paired = Vec::with_capacity(PAIRS);
    let mut expected_body = None;
    for i in 0..WARM_UP_PAIRS + PAIRS {
        // Alternate which goes first, so neither always follows the other.
        let stranger = unknown_name();
        let order = if i % 2 == 0 {
            [KNOWN, stranger.as_str()]
        } else {
            [stranger.as_str(), KNOWN]
        };
        let mut pair = [0.0; 2];
        for principal in order {
            let (elapsed, body) = probe(&app, principal).await;
            let expected = expected_body.get_or_insert_with(|| body.clone());
            assert_eq!(&body, expected, "the same answer for {principal}");
            pair[usize::from(principal != KNOWN)] = micros(elapsed);
        }
        if i >= WARM_UP_PAIRS {
            known.push(pair[0]);
            unknown.push(pair[1]);
            paired.push(pair[1] - pair[0]);
        }
    }
    known.sort_by(f64::total_cmp);
    unknown.sort_by(f64::total_cmp);
    paired.sort_by(f64::total_cmp);

    let (known_median, unknown_median) = (median(&known), median(&unknown));
    let (known_trimmed, unknown_trimmed) = (trimmed_mean(&known), trimmed_mean(&unknown));
    let median_diff = unknown_median - known_median;
    let trimmed_diff = unknown_trimmed - known_trimmed;
    let paired_median = median(&paired);
    let bound = f64::max(BOUND_MICROS, BOUND_SHARE * known_median);
    println!(
        "{backend:?}: {PAIRS} pairs; median known {known_median:.1} us, unknown \
         {unknown_median:.1} us, diff {median_diff:+.1} us; median of paired differences \
         {paired_median:+.1} us; 10%-trimmed mean known {known_trimmed:.1} us, unknown \
         {unknown_trimmed:.1} us, diff {trimmed_diff:+.1} us; bound {bound:.1} us"
    );
    assert!(
        median_diff.abs() < bound,
        "medians differ by {median_diff:+.1} us (bound {bound:.1} us)"
    );
    assert!(
        paired_median.abs() < bound,
        "paired differences have median {paired_median:+.1} us (bound {bound:.1} us)"
    );
}

/// The difference allowed between the two kinds of probe: the larger of these. An extra
/// database read (what an unknown name used to cost) measured 40-60 us on a quiet machine in
/// a release build and over 100 us here under load; the fixed code stays within about 20 us
/// under the same load. The trimmed mean is printed, not asserted: on a shared machine it
/// swings by 100 us either way.
const BOUND_MICROS: f64 = 30.0;
const BOUND_SHARE: f64 = 0.04;

on_both_backends!(unknown_principal_costs_the_same_as_a_wrong_signature);
