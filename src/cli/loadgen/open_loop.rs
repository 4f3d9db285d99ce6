//! `data-vault loadgen --rate R`: open-loop load. Requests are due at fixed times
//! (`start + i / R`), whether or not earlier ones have answered, and each one's latency is
//! counted from the time it was due, not from when it was sent: a server that stalls is charged
//! for every request that queued behind the stall (no coordinated omission). Method and
//! figures: docs/performance.md.

use super::{one_request, percentile_ms, LoadArgs, Scenario, Tally, VaultClient, XorShift};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};

/// The highest rate accepted: one request due every microsecond.
pub(super) const MAX_RATE: u64 = 1_000_000;

/// When request `i` is due, counted from the start of the run, at `rate` requests per second.
/// Computed from `i` each time, not by adding a period, so rounding never accumulates: request
/// 1,000,000 at 3 req/s is due exactly 333,333.33 s in.
pub(super) fn due_offset(i: u64, rate: u64) -> Duration {
    let nanos = u128::from(i) * 1_000_000_000 / u128::from(rate.max(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// How many requests a run schedules: `--requests` if given, else `rate × duration`.
pub(super) fn planned_requests(rate: u64, duration_secs: u64, requests: Option<u64>) -> u64 {
    requests.unwrap_or_else(|| rate.saturating_mul(duration_secs))
}

/// Microseconds from `due` to `now`; zero if `now` is not later (a request is never credited
/// for being sent early), saturating at `u32::MAX` (71 minutes).
pub(super) fn micros_since(due: Instant, now: Instant) -> u32 {
    u32::try_from(now.saturating_duration_since(due).as_micros()).unwrap_or(u32::MAX)
}

/// Upper bounds (µs) of the histogram's buckets; a last bucket takes everything slower.
pub(super) const BUCKETS_US: [u32; 11] = [
    250, 500, 1_000, 2_000, 3_000, 5_000, 10_000, 20_000, 50_000, 100_000, 1_000_000,
];

/// Counts of latencies per bucket of [`BUCKETS_US`] (a latency equal to a bound falls in that
/// bucket), plus one last count for latencies over the last bound.
pub(super) fn histogram(latencies_us: &[u32]) -> Vec<u64> {
    let mut counts = vec![0u64; BUCKETS_US.len() + 1];
    for us in latencies_us {
        let bucket = BUCKETS_US.partition_point(|bound| bound < us);
        if let Some(count) = counts.get_mut(bucket) {
            *count += 1;
        }
    }
    counts
}

/// A bucket's label: `≤ 0.25 ms` … `> 1000 ms`.
fn bucket_label(bucket: usize) -> String {
    match BUCKETS_US.get(bucket) {
        Some(bound) => format!("<= {} ms", f64::from(*bound) / 1000.0),
        None => format!(
            "> {} ms",
            f64::from(BUCKETS_US.last().copied().unwrap_or(0)) / 1000.0
        ),
    }
}

#[derive(Default)]
struct Results {
    /// Latencies from when each request was due to its complete answer, and statuses.
    tally: Tally,
    /// From when each request was due to when it was sent: the generator's own lateness
    /// (timer wake-up, a full connection pool), already included in the latency.
    send_lag_us: Vec<u32>,
}

pub(super) async fn run(
    args: &LoadArgs,
    rate: u64,
    client: Arc<VaultClient>,
    envelope: Arc<Vec<u8>>,
    ids: Arc<Vec<String>>,
) -> anyhow::Result<()> {
    let planned = planned_requests(rate, args.duration, args.requests);
    // The clock: a thread of its own that sleeps until each request is due (a thread sleep
    // wakes within tens of microseconds; the runtime's timer only to the next millisecond) and
    // hands the due time to the runtime. It never waits for answers.
    let (due_tx, mut due_rx) = mpsc::unbounded_channel::<Instant>();
    let start = Instant::now() + Duration::from_millis(50);
    let clock = std::thread::spawn(move || {
        for i in 0..planned {
            let due = start + due_offset(i, rate);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if due_tx.send(due).is_err() {
                break;
            }
        }
    });

    // At most `--concurrency` requests in flight (the connection pool's size); a request that
    // finds them all busy waits, and its wait counts in its latency.
    let in_flight = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let results = Arc::new(Mutex::new(Results::default()));
    let mut tasks = tokio::task::JoinSet::new();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    while let Some(due) = due_rx.recv().await {
        let roll = rng.next();
        let (client, envelope, ids, in_flight, results) = (
            client.clone(),
            envelope.clone(),
            ids.clone(),
            in_flight.clone(),
            results.clone(),
        );
        let (scenario, scope): (Scenario, String) = (args.scenario, args.scope.clone());
        tasks.spawn(async move {
            let _permit = in_flight.acquire_owned().await;
            let lag = micros_since(due, Instant::now());
            let status = one_request(&client, scenario, &ids, &envelope, &scope, roll).await;
            let latency = micros_since(due, Instant::now());
            let mut results = results.lock().unwrap_or_else(PoisonError::into_inner);
            results.send_lag_us.push(lag);
            results.tally.record(status, latency);
        });
        // Reap finished tasks as we go so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = start.elapsed();
    clock
        .join()
        .map_err(|_| anyhow::anyhow!("the clock thread failed"))?;
    let mut results = std::mem::take(&mut *results.lock().unwrap_or_else(PoisonError::into_inner));
    report(args, rate, planned, &mut results, elapsed)?;
    Ok(())
}

fn report(
    args: &LoadArgs,
    rate: u64,
    planned: u64,
    results: &mut Results,
    elapsed: Duration,
) -> std::io::Result<()> {
    results.tally.latencies_us.sort_unstable();
    results.send_lag_us.sort_unstable();
    let tally = &results.tally;
    let lat = |pm| percentile_ms(&tally.latencies_us, pm);
    let lag = |pm| percentile_ms(&results.send_lag_us, pm);
    let n = tally.latencies_us.len();
    let ok = tally.successes();
    let secs = elapsed.as_secs_f64();
    let counts = histogram(&tally.latencies_us);
    let buckets: Vec<serde_json::Value> = counts
        .iter()
        .enumerate()
        .map(|(i, count)| {
            serde_json::json!({
                "le_ms": BUCKETS_US.get(i).map(|us| f64::from(*us) / 1000.0),
                "count": count,
            })
        })
        .collect();
    let summary = serde_json::json!({
        "mode": "open-loop",
        "scenario": format!("{:?}", args.scenario).to_lowercase(),
        "target_rate": rate,
        "max_in_flight": args.concurrency,
        "envelope_bytes": args.size,
        "planned": planned,
        "requests": n,
        "seconds": (secs * 100.0).round() / 100.0,
        "requests_per_second": (n as f64 / secs).round(),
        "ok": ok,
        "latency_ms": {"p50": lat(500), "p90": lat(900), "p99": lat(990), "p99_9": lat(999), "max": lat(1000)},
        "send_lag_ms": {"p50": lag(500), "p99": lag(990), "max": lag(1000)},
        "histogram": buckets,
        "by_status": tally.by_status,
        "transport_errors": tally.transport_errors,
    });
    if args.json {
        return out!("{summary}");
    }
    out!(
        "{} at {} req/s (open loop, at most {} in flight): {} of {} requests in {:.2} s = {:.0} req/s ({} ok)",
        summary.get("scenario").and_then(serde_json::Value::as_str).unwrap_or("?"),
        rate,
        args.concurrency,
        n,
        planned,
        secs,
        n as f64 / secs,
        ok,
    )?;
    out!(
        "latency ms from intended start: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        lat(500),
        lat(900),
        lat(990),
        lat(999),
        lat(1000)
    )?;
    out!(
        "send lag ms (included above): p50 {:.2}  p99 {:.2}  max {:.2}",
        lag(500),
        lag(990),
        lag(1000)
    )?;
    for (i, count) in counts.iter().enumerate() {
        let share = if n == 0 {
            0.0
        } else {
            *count as f64 * 100.0 / n as f64
        };
        out!("  {:>12} {:>9} {:>6.2} %", bucket_label(i), count, share)?;
    }
    out!(
        "by status: {:?}  transport errors: {}",
        tally.by_status,
        tally.transport_errors
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_due_at_even_intervals_from_the_start() {
        assert_eq!(due_offset(0, 2000), Duration::ZERO);
        assert_eq!(due_offset(1, 2000), Duration::from_micros(500));
        assert_eq!(due_offset(2000, 2000), Duration::from_secs(1));
        assert_eq!(due_offset(3, 1000), Duration::from_millis(3));
        for i in 0..10_000u64 {
            let gap = due_offset(i + 1, 2000) - due_offset(i, 2000);
            assert_eq!(gap, Duration::from_micros(500), "gap after request {i}");
        }
    }

    #[test]
    fn the_schedule_does_not_drift_when_the_period_is_not_whole() {
        // 3 req/s: a period of 333,333,333.33 ns. Adding a rounded period would be 1/3 ns
        // early per request, 333 µs after a million; the offset from the start is exact.
        assert_eq!(due_offset(3, 3), Duration::from_secs(1));
        assert_eq!(due_offset(3_000_000, 3), Duration::from_secs(1_000_000));
        assert_eq!(
            due_offset(1_000_000, 3),
            Duration::from_nanos(333_333_333_333_333)
        );
        // Offsets never go backwards and never skip more than one period's rounding.
        let mut last = Duration::ZERO;
        for i in 1..100_000u64 {
            let offset = due_offset(i, 7);
            let gap = offset - last;
            assert!(gap >= Duration::from_nanos(142_857_142));
            assert!(gap <= Duration::from_nanos(142_857_143));
            last = offset;
        }
    }

    #[test]
    fn a_run_plans_rate_times_duration_unless_a_count_is_given() {
        assert_eq!(planned_requests(2000, 30, None), 60_000);
        assert_eq!(planned_requests(2000, 30, Some(500)), 500);
        assert_eq!(planned_requests(u64::MAX, 2, None), u64::MAX);
        // Every planned request is due within the run's duration.
        assert!(due_offset(planned_requests(1000, 10, None) - 1, 1000) < Duration::from_secs(10));
    }

    #[test]
    fn latency_counts_from_when_the_request_was_due_not_when_it_was_sent() {
        // A request due at t0 that could only be sent 40 ms later (the server stalled and
        // every connection was busy) and answered 1 ms after that took 41 ms, not 1 ms.
        let t0 = Instant::now();
        let sent = t0 + Duration::from_millis(40);
        let answered = sent + Duration::from_millis(1);
        assert_eq!(micros_since(t0, answered), 41_000);
        assert_eq!(micros_since(t0, sent), 40_000);
        // Never negative, never wrapped.
        assert_eq!(micros_since(answered, t0), 0);
        assert_eq!(micros_since(t0, t0 + Duration::from_secs(10_000)), u32::MAX);
    }

    #[test]
    fn the_histogram_puts_each_latency_in_its_bucket_once() {
        let latencies = [
            0,
            250,
            251,
            999,
            1_000,
            2_500,
            10_000,
            999_999,
            1_000_001,
            u32::MAX,
        ];
        let counts = histogram(&latencies);
        assert_eq!(counts.len(), BUCKETS_US.len() + 1);
        assert_eq!(counts.iter().sum::<u64>(), latencies.len() as u64);
        assert_eq!(counts.first(), Some(&2)); // 0 and 250 µs: <= 0.25 ms
        assert_eq!(counts.get(1), Some(&1)); // 251 µs
        assert_eq!(counts.get(2), Some(&2)); // 999 and 1000 µs: <= 1 ms
        assert_eq!(counts.get(4), Some(&1)); // 2.5 ms: <= 3 ms
        assert_eq!(counts.get(6), Some(&1)); // 10 ms
        assert_eq!(counts.get(10), Some(&1)); // 999.999 ms: <= 1000 ms
        assert_eq!(counts.get(11), Some(&2)); // over a second
        assert_eq!(bucket_label(0), "<= 0.25 ms");
        assert_eq!(bucket_label(11), "> 1000 ms");
    }
}
