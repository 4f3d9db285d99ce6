//! Redis as the shared nonce store of many replicas, and what happens when it goes away.

use crate::helpers::*;
use crate::on_both_backends;
use data_vault_auth::{headers as h, sha256_hex, HmacRequest};
use serde_json::Value;

/// Headers of one signed `GET /api/v1/vault/blobs`, to be sent more than once.
fn signed_list(creds: &Credentials) -> Vec<(&'static str, String)> {
    let timestamp = data_vault::time::now_secs().to_string();
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let content_sha256 = sha256_hex(b"");
    let signature = HmacRequest {
        method: "GET",
        path: "/api/v1/vault/blobs",
        raw_query: "",
        principal: &creds.principal,
        timestamp: &timestamp,
        nonce: &nonce,
        content_sha256: &content_sha256,
    }
    .sign(creds.secret.as_bytes());
    vec![
        (h::PRINCIPAL, creds.principal.clone()),
        (h::TIMESTAMP, timestamp),
        (h::NONCE, nonce),
        (h::CONTENT_SHA256, content_sha256),
        (h::SIGNATURE, signature),
    ]
}

async fn send(
    http: &reqwest::Client,
    addr: std::net::SocketAddr,
    headers: &[(&'static str, String)],
) -> reqwest::Response {
    let mut request = http.get(format!("http://{addr}/api/v1/vault/blobs"));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.send().await.unwrap()
}

async fn a_nonce_replayed_to_another_replica_is_rejected(backend: Backend) {
    let Some(redis) = redis_url() else { return };
    let app = TestApp::spawn(backend).await;
    let creds = app.create_client("svc").await;
    let prefix = format!("test-{}:", uuid::Uuid::new_v4().simple());
    let env = [
        ("DATA_VAULT_REDIS__URL", redis.as_str()),
        ("DATA_VAULT_REDIS__KEY_PREFIX", prefix.as_str()),
    ];
    let first = ServerProcess::start_with(&app, &env);
    let second = ServerProcess::start_with(&app, &env);
    let headers = signed_list(&creds);
    assert_eq!(send(&app.http, first.addr, &headers).await.status(), 200);
    let (status, code) = error_of(send(&app.http, second.addr, &headers).await).await;
    assert_eq!(
        (status, code.as_str()),
        (401, "replayed"),
        "the second replica knows the nonce through Redis"
    );
    let ready: Value = second.anonymous().readyz().await.json().await.unwrap();
    assert_eq!(
        (ready["status"].as_str(), ready["redis"].as_str()),
        (Some("ready"), Some("ok"))
    );
}

async fn a_redis_outage_degrades_and_recovers_by_itself(backend: Backend) {
    let Some(mut redis) = PrivateRedis::start() else {
        return;
    };
    let url = redis.url();
    let app = TestApp::spawn_with(backend, |c| c.redis.url = Some(url)).await;
    let creds = app.create_client("svc").await;
    let client = app.client(&creds);
    let anonymous = &app.anonymous();
    let ready = || async move { anonymous.readyz().await.json::<Value>().await.unwrap() };
    assert_eq!(ready().await["status"], "ready");

    redis.stop();
    for _ in 0..5 {
        let response = client.list_blobs(&ListQuery::default()).await;
        assert_eq!(
            response.status(),
            200,
            "requests keep succeeding without Redis"
        );
    }
    // Replays to this replica are still refused by the in-process record.
    let headers = signed_list(&creds);
    assert_eq!(send(&app.http, app.addr, &headers).await.status(), 200);
    assert_eq!(
        error_of(send(&app.http, app.addr, &headers).await).await.1,
        "replayed"
    );
    let degraded = ready().await;
    assert_eq!(
        (degraded["status"].as_str(), degraded["redis"].as_str()),
        (Some("degraded"), Some("unavailable"))
    );
    assert!(app
        .metrics_text()
        .await
        .contains("virtengine_data_vault_redis_fallback 1"));

    redis.restart();
    let mut recovered = false;
    for _ in 0..50 {
        if ready().await["status"] == "ready" {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(recovered, "readiness returns to ready once Redis is back");
    assert!(app
        .metrics_text()
        .await
        .contains("virtengine_data_vault_redis_fallback 0"));
}

/// The median of `samples`, in milliseconds.
fn median_ms(mut samples: Vec<std::time::Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1000.0
}

/// Times `count` signed listings one after another.
async fn timed_requests(client: &Api, count: usize) -> Vec<std::time::Duration> {
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let started = std::time::Instant::now();
        let response = client.list_blobs(&ListQuery::default()).await;
        samples.push(started.elapsed());
        assert_eq!(response.status(), 200, "requests keep succeeding");
    }
    samples
}

/// DESIGN §20: a Redis that goes away mid-flight costs each request no more than a few
/// milliseconds (the breaker skips it instead of waiting a timeout per command).
async fn a_redis_killed_mid_flight_keeps_latency_in_milliseconds(backend: Backend) {
    let Some(mut redis) = PrivateRedis::start() else {
        return;
    };
    let url = redis.url();
    let app = TestApp::spawn_with(backend, |c| c.redis.url = Some(url)).await;
    let creds = app.create_client("svc").await;
    let client = app.client(&creds);
    let up = median_ms(timed_requests(&client, 20).await);
    redis.stop();
    let down = timed_requests(&client, 40).await;
    let worst = down.iter().max().copied().unwrap_or_default();
    let down = median_ms(down);
    eprintln!(
        "median latency: {up:.1} ms with Redis, {down:.1} ms after it was killed (worst {worst:?})"
    );
    assert!(
        down < 50.0,
        "median {down:.1} ms with Redis gone (was {up:.1} ms): requests wait on Redis"
    );
    redis.restart();
    let mut recovered = false;
    for _ in 0..60 {
        let ready: Value = app.anonymous().readyz().await.json().await.unwrap();
        if ready["redis"] == "ok" {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(recovered, "the breaker closes by itself once Redis is back");
}

/// Runs one command on `url`'s Redis, as its operator would with redis-cli.
async fn redis_admin(url: &str, args: &[&str]) {
    let client = redis::Client::open(url).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let mut command = redis::cmd(args[0]);
    for arg in &args[1..] {
        command.arg(*arg);
    }
    command
        .query_async::<redis::Value>(&mut connection)
        .await
        .unwrap();
}

/// A Redis that answers but refuses writes (turned into a read-only replica, as after a
/// failover the vault's address did not follow; or out of memory) is as good as gone: the
/// vault serves from in-process state and stays `degraded` for as long as it lasts, rather
/// than flapping back to `ready` each time a PING succeeds; once writes work again it
/// recovers by itself.
async fn a_redis_that_refuses_writes_is_degraded_until_it_takes_them(backend: Backend) {
    let Some(redis) = PrivateRedis::start() else {
        return;
    };
    let url = redis.url();
    let app = TestApp::spawn_with(backend, |c| c.redis.url = Some(url.clone())).await;
    let client = app.client(&app.create_client("svc").await);
    let anonymous = &app.anonymous();
    let status = || async move {
        let ready: Value = anonymous.readyz().await.json().await.unwrap();
        ready["status"].as_str().unwrap_or_default().to_owned()
    };
    assert_eq!(status().await, "ready");

    let refusals: [(&[&str], &[&str]); 2] = [
        (
            &["REPLICAOF", "127.0.0.1", "1"],
            &["REPLICAOF", "NO", "ONE"],
        ),
        (
            &["CONFIG", "SET", "maxmemory", "1"],
            &["CONFIG", "SET", "maxmemory", "0"],
        ),
    ];
    for (refuse, restore) in refusals {
        redis_admin(&url, refuse).await;
        let response = client.list_blobs(&ListQuery::default()).await;
        assert_eq!(response.status(), 200, "{refuse:?}: served without Redis");
        until("readiness says degraded", async || {
            status().await == "degraded"
        })
        .await;
        // Longer than the breaker's longest back-off (2 s): a probe has run, and failed.
        for _ in 0..15 {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            assert_eq!(status().await, "degraded", "{refuse:?}");
        }
        redis_admin(&url, restore).await;
        until("readiness is ready again", async || {
            status().await == "ready"
        })
        .await;
    }
}

on_both_backends!(
    a_nonce_replayed_to_another_replica_is_rejected,
    a_redis_that_refuses_writes_is_degraded_until_it_takes_them,
    a_redis_outage_degrades_and_recovers_by_itself,
    a_redis_killed_mid_flight_keeps_latency_in_milliseconds,
);
