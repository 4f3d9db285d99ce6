//! `data-vault loadgen`: the project's own load generator. It signs real requests (HMAC),
//! runs a fixed number of requests or a fixed duration at a given concurrency against a running
//! vault, and reports throughput, latency percentiles and errors by status; with `--rate`, an
//! open-loop run at a fixed request rate (`open_loop`). Method and
//! figures: docs/performance.md.

mod open_loop;

use super::client::{ClientAuth, VaultClient};
use anyhow::Context;
use clap::{Args, ValueEnum};
use reqwest::Method;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Scenario {
    /// GET of existing blobs, spread over many ids (every read durably audited).
    Get,
    /// PUT of new blobs.
    Put,
    /// Metadata reads.
    Meta,
    /// 90 % GET, 10 % PUT.
    Mixed,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Base URL of the vault.
    #[arg(long, env = "DATA_VAULT_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// HMAC client name.
    #[arg(
        long,
        env = "DATA_VAULT_PRINCIPAL",
        required_unless_present = "wallet_key_file"
    )]
    principal: Option<String>,
    /// Sign as a wallet instead (hex private key or mnemonic in the file): the wallet-signed
    /// scenarios.
    #[arg(long)]
    wallet_key_file: Option<std::path::PathBuf>,
    /// File holding the client secret (or set DATA_VAULT_SECRET).
    #[arg(long)]
    secret_file: Option<std::path::PathBuf>,
    #[arg(long, value_enum, default_value = "get")]
    scenario: Scenario,
    /// Requests in flight at once (closed loop); with `--rate`, the most in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Open loop: send this many requests per second on a fixed schedule, whether or not
    /// earlier ones have answered, and count each latency from when the request was due.
    /// Checked before anything is stored (1 to 1,000,000).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=open_loop::MAX_RATE))]
    rate: Option<u64>,
    /// Run for this many seconds...
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// ...or stop after this many requests.
    #[arg(long)]
    requests: Option<u64>,
    /// Envelope size in bytes.
    #[arg(long, default_value_t = 4096)]
    size: usize,
    /// Blobs stored before a read scenario starts (reads are spread over them).
    #[arg(long, default_value_t = 1000)]
    blobs: usize,
    #[arg(long, default_value = "market")]
    scope: String,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// PEM file of a private CA that issued the vault's TLS certificate.
    #[arg(long, env = "DATA_VAULT_CA_CERT")]
    ca_cert: Option<std::path::PathBuf>,
}

/// What a run saw: one worker's, all workers' together, or an open-loop run's.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    by_status: BTreeMap<u16, u64>,
    transport_errors: u64,
}

impl Tally {
    /// Counts one request: its latency and status, or its transport error (whose latency
    /// means nothing).
    fn record(&mut self, status: anyhow::Result<u16>, latency_us: u32) {
        match status {
            Ok(status) => {
                self.latencies_us.push(latency_us);
                *self.by_status.entry(status).or_default() += 1;
            }
            Err(_) => self.transport_errors += 1,
        }
    }

    /// Adds what another worker saw.
    fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        for (status, n) in other.by_status {
            *self.by_status.entry(status).or_default() += n;
        }
        self.transport_errors += other.transport_errors;
    }

    /// The answers with a 2xx status.
    fn successes(&self) -> u64 {
        self.by_status
            .iter()
            .filter(|(status, _)| (200..300).contains(*status))
            .map(|(_, n)| n)
            .sum()
    }
}

/// Nearest-rank percentile of sorted latencies, in milliseconds, with `per_mille` in 1..=1000
/// (500 = p50, 999 = p99.9): the ceil(per_mille / 1000 × n)-th smallest value; 0 when empty.
fn percentile_ms(sorted_us: &[u32], per_mille: usize) -> f64 {
    let n = sorted_us.len();
    let rank = per_mille
        .saturating_mul(n)
        .div_ceil(1000)
        .clamp(1, n.max(1));
    sorted_us
        .get(rank - 1)
        .map_or(0.0, |us| f64::from(*us) / 1000.0)
}

/// An age envelope of about `size` bytes, encrypted once and uploaded many times: the server
/// treats every upload as a new blob.
fn envelope(size: usize) -> anyhow::Result<Vec<u8>> {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public();
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))?;
    let mut out = Vec::with_capacity(size + 512);
    let mut writer = encryptor.wrap_output(&mut out)?;
    // Overhead is about 200 bytes of header and 16 per 64 KiB chunk.
    writer.write_all(&vec![0x42; size.saturating_sub(250).max(1)])?;
    writer.finish()?;
    Ok(out)
}

/// A small, fast generator for picking blob ids (no need for cryptographic randomness here).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

async fn put(
    client: &VaultClient,
    envelope: &[u8],
    scope: &str,
) -> anyhow::Result<(u16, Option<String>)> {
    let body = super::client::Body {
        bytes: envelope,
        content_type: "application/octet-stream",
    };
    let response = client
        .send(
            Method::POST,
            "/api/v1/vault/blobs",
            &[("scope", scope)],
            Some(body),
            None,
        )
        .await?;
    let status = response.status().as_u16();
    if status != 201 {
        return Ok((status, None));
    }
    let value: serde_json::Value = response.json().await?;
    Ok((
        status,
        value
            .get("metadata")
            .and_then(|m| m.get("id"))
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned),
    ))
}

fn credentials(args: &LoadArgs) -> anyhow::Result<ClientAuth> {
    if let Some(path) = &args.wallet_key_file {
        let key = zeroize::Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?,
        );
        return ClientAuth::wallet(&key, "virtengine");
    }
    let secret = match &args.secret_file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .trim()
            .to_owned(),
        None => std::env::var("DATA_VAULT_SECRET")
            .context("no secret: pass --secret-file or set DATA_VAULT_SECRET")?,
    };
    Ok(ClientAuth::Hmac {
        principal: args
            .principal
            .clone()
            .context("--principal is required for HMAC")?,
        secret: zeroize::Zeroizing::new(secret),
    })
}

/// One request of the scenario: a PUT, or a GET of the blob `roll` picks. Its status, or the
/// transport error.
async fn one_request(
    client: &VaultClient,
    scenario: Scenario,
    ids: &[String],
    envelope: &[u8],
    scope: &str,
    roll: u64,
) -> anyhow::Result<u16> {
    let is_put = match scenario {
        Scenario::Put => true,
        Scenario::Mixed => roll % 10 == 0,
        _ => false,
    };
    if is_put {
        return put(client, envelope, scope).await.map(|(s, _)| s);
    }
    let path = u64::try_from(ids.len())
        .ok()
        .and_then(|len| roll.checked_rem(len))
        .and_then(|i| usize::try_from(i).ok())
        .and_then(|i| ids.get(i))
        .context("no seeded blob to read")?;
    let path = if scenario == Scenario::Meta {
        format!("{path}/metadata")
    } else {
        path.clone()
    };
    let accept = (scenario != Scenario::Meta).then_some("application/octet-stream");
    let response = client.send(Method::GET, &path, &[], None, accept).await?;
    let status = response.status().as_u16();
    response.bytes().await?;
    Ok(status)
}

pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    let client = Arc::new(match &args.ca_cert {
        Some(ca) => VaultClient::trusting(&args.url, credentials(&args)?, ca, args.concurrency)?,
        None => VaultClient::with_pool(&args.url, credentials(&args)?, args.concurrency)?,
    });
    let envelope = Arc::new(envelope(args.size)?);

    let mut ids = Vec::new();
    if args.scenario != Scenario::Put {
        anyhow::ensure!(
            args.blobs > 0,
            "--blobs must be at least 1 for a read scenario"
        );
        eprintln!(
            "storing {} blobs of {} bytes to read from...",
            args.blobs,
            envelope.len()
        );
        for _ in 0..args.blobs {
            match put(&client, &envelope, &args.scope).await? {
                (201, Some(id)) => ids.push(format!("/api/v1/vault/blobs/{id}")),
                (status, _) => anyhow::bail!("seeding failed with status {status}"),
            }
        }
    }
    let ids = Arc::new(ids);
    if let Some(rate) = args.rate {
        return open_loop::run(&args, rate, client, envelope, ids).await;
    }
    let budget = Arc::new(AtomicU64::new(args.requests.unwrap_or(u64::MAX)));
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..args.concurrency {
        let (client, envelope, ids, budget) = (
            client.clone(),
            envelope.clone(),
            ids.clone(),
            budget.clone(),
        );
        let (scenario, scope) = (args.scenario, args.scope.clone());
        workers.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut rng =
                XorShift(0x9e37_79b9_7f4a_7c15 ^ ((worker as u64 + 1) * 0x2545_f491_4f6c_dd1d));
            while Instant::now() < deadline
                && budget
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_ok()
            {
                let roll = rng.next();
                let began = Instant::now();
                let status = one_request(&client, scenario, &ids, &envelope, &scope, roll).await;
                let elapsed = u32::try_from(began.elapsed().as_micros()).unwrap_or(u32::MAX);
                tally.record(status, elapsed);
            }
            tally
        }));
    }
    let mut total = Tally::default();
    for worker in workers {
        total.merge(worker.await?);
    }
    report(&args, &mut total, started.elapsed())?;
    Ok(())
}

fn report(args: &LoadArgs, tally: &mut Tally, elapsed: Duration) -> std::io::Result<()> {
    tally.latencies_us.sort_unstable();
    let n = tally.latencies_us.len();
    let pct = |p: usize| percentile_ms(&tally.latencies_us, p * 10);
    let ok = tally.successes();
    let secs = elapsed.as_secs_f64();
    let summary = serde_json::json!({
        "scenario": format!("{:?}", args.scenario).to_lowercase(),
        "concurrency": args.concurrency,
        "envelope_bytes": args.size,
        "requests": n,
        "seconds": (secs * 100.0).round() / 100.0,
        "requests_per_second": (n as f64 / secs).round(),
        "ok": ok,
        "latency_ms": {"p50": pct(50), "p90": pct(90), "p99": pct(99), "p99_9": percentile_ms(&tally.latencies_us, 999), "max": pct(100)},
        "by_status": tally.by_status,
        "transport_errors": tally.transport_errors,
    });
    if args.json {
        out!("{summary}")
    } else {
        out!(
            "{} x{}: {} requests in {:.2} s = {:.0} req/s ({} ok)\nlatency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}\nby status: {:?}  transport errors: {}",
            summary.get("scenario").and_then(serde_json::Value::as_str).unwrap_or("?"),
            args.concurrency,
            n,
            secs,
            n as f64 / secs,
            ok,
            pct(50),
            pct(90),
            pct(99),
            pct(100),
            tally.by_status,
            tally.transport_errors
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank_including_p99_9() {
        let sorted: Vec<u32> = (1..=1000).map(|i| i * 1000).collect(); // 1..=1000 ms
        assert_eq!(percentile_ms(&sorted, 500), 500.0);
        assert_eq!(percentile_ms(&sorted, 990), 990.0);
        assert_eq!(percentile_ms(&sorted, 999), 999.0);
        assert_eq!(percentile_ms(&sorted, 1000), 1000.0);
        // With 10 values p99.9 is the largest: ceil(0.999 × 10) = 10.
        let ten: Vec<u32> = (1..=10).map(|i| i * 100).collect();
        assert_eq!(percentile_ms(&ten, 999), 1.0);
        assert_eq!(percentile_ms(&ten, 500), 0.5);
        // One slow request in 2,000 shows at p99.9, not at p99.
        let mut mostly_fast = vec![1_000u32; 1999];
        mostly_fast.push(80_000);
        assert_eq!(percentile_ms(&mostly_fast, 990), 1.0);
        assert_eq!(percentile_ms(&mostly_fast, 999), 1.0);
        assert_eq!(percentile_ms(&mostly_fast, 1000), 80.0);
        let mut three_slow = vec![1_000u32; 1997];
        three_slow.extend([70_000, 80_000, 90_000]);
        assert_eq!(percentile_ms(&three_slow, 999), 70.0);
        assert_eq!(percentile_ms(&[], 990), 0.0);
    }

    #[test]
    fn workers_tallies_add_up() {
        let mut total = Tally::default();
        let mut one = Tally::default();
        one.record(Ok(201), 5);
        one.record(Err(anyhow::anyhow!("reset")), 9);
        let mut two = Tally::default();
        two.record(Ok(503), 7);
        total.merge(one);
        total.merge(two);
        assert_eq!(total.latencies_us, [5, 7]);
        assert_eq!((total.successes(), total.transport_errors), (1, 1));
    }
}
