//! Wallet verifications per second on one thread, the cost the server pays per request:
//! `cargo run --release -p data-vault-auth --example verify_bench [SECONDS]`.
//! Measures the common path (empty chain id) and the fallback for older clients, whose
//! signatures verify only on the second try with the configured chain id.

use data_vault_auth::{WalletRequest, WalletSigner, WalletVerifier, DEFAULT_PREFIX};
use std::error::Error;
use std::hint::black_box;
use std::time::{Duration, Instant};

const KEY_HEX: &str = "abb097dee43379f877dd1c4538375ef42ba954eef1d839f4fd5391f76a299fea";
const CHAIN_ID: &str = "virtengine-1";

fn measure(
    label: &str,
    budget: Duration,
    mut verify: impl FnMut() -> bool,
) -> Result<(), Box<dyn Error>> {
    // Warm caches and the CPU's clock before timing.
    for _ in 0..200 {
        if !verify() {
            return Err(format!("{label}: signature did not verify").into());
        }
    }
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed() < budget {
        for _ in 0..100 {
            if !black_box(verify()) {
                return Err(format!("{label}: signature did not verify").into());
            }
        }
        count += 100;
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{label}: {count} verifications in {seconds:.2} s = {:.0}/s ({:.1} µs each)",
        count as f64 / seconds,
        seconds * 1e6 / count as f64
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let seconds: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(3);
    let budget = Duration::from_secs(seconds);

    let signer = WalletSigner::from_private_key_hex(KEY_HEX, DEFAULT_PREFIX)?;
    let request = WalletRequest {
        method: "GET",
        path_and_query: "/api/v1/vault/blobs/0190b6a0-0000-7000-8000-000000000000?reason=audit",
        timestamp_ms: 1_700_000_000_000,
        nonce: "00112233445566778899aabbccddeeff",
        body_sha256_hex: "",
    };
    let data = request.signed_data();
    let public_key = signer.public_key_b64();
    let verifier = WalletVerifier::new(DEFAULT_PREFIX, Some(CHAIN_ID))?;

    let adr036 = signer.sign(&data, "")?;
    measure("ADR-036 (empty chain id)", budget, || {
        verifier
            .verify(
                black_box(signer.address()),
                black_box(&public_key),
                black_box(&adr036),
                black_box(&data),
            )
            .is_ok()
    })?;

    let legacy = signer.sign(&data, CHAIN_ID)?;
    measure("legacy (configured chain id, second try)", budget, || {
        verifier
            .verify(
                black_box(signer.address()),
                black_box(&public_key),
                black_box(&legacy),
                black_box(&data),
            )
            .is_ok()
    })?;
    Ok(())
}
