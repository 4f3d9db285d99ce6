//! Replay protection that survives lost state (DESIGN §6): a captured request stays spent
//! after a server restart, a Redis restart or flush, and during a Redis outage, on every
//! replica. The fast stores (memory, Redis) may forget; the nonce journal in the database
//! does not.

use crate::helpers::*;
use crate::on_both_backends;
use data_vault::store::{BatchJob, JobOutcome, NonceClaim};
use reqwest::Method;
use std::net::SocketAddr;

/// A signed upload captured on the wire, to be sent again to any replica.
struct Captured {
    path_and_query: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Captured {
    fn upload(client: &Api) -> Self {
        let client = client.signer();
        let body = age_envelope_of_size(600);
        let url = client
            .url("/api/v1/vault/blobs", &[("scope", "veid")])
            .unwrap();
        let headers = client.sign(&Method::POST, &url, &body).unwrap();
        Self {
            path_and_query: format!("{}?{}", url.path(), url.query().unwrap_or("")),
            headers,
            body,
        }
    }

    async fn send(&self, http: &reqwest::Client, addr: SocketAddr) -> reqwest::Response {
        let mut request = http
            .post(format!("http://{addr}{}", self.path_and_query))
            .header("content-type", "application/octet-stream")
            .body(self.body.clone());
        for (name, value) in &self.headers {
            request = request.header(*name, value);
        }
        request.send().await.unwrap()
    }
}

async fn assert_replayed(response: reqwest::Response) {
    let (status, code) = error_of(response).await;
    assert_eq!((status, code.as_str()), (401, "replayed"));
}

async fn a_replay_after_a_server_restart_is_refused(backend: Backend) {
    let mut app = TestApp::spawn(backend).await;
    let creds = app.create_client("svc").await;
    let captured = Captured::upload(&app.client(&creds));
    assert_eq!(captured.send(&app.http, app.addr).await.status(), 201);

    // The restarted server's memory is empty; only the journal remembers the nonce.
    app.restart().await;
    assert_replayed(captured.send(&app.http, app.addr).await).await;
    assert_eq!(
        app.count_rows("blobs").await,
        1,
        "the replay stored nothing"
    );
}

/// Two server processes on one database, sharing a private Redis a test may stop. (Fields
/// drop in order: the servers go before their database and Redis.)
struct TwoReplicas {
    first: ServerProcess,
    second: ServerProcess,
    creds: Credentials,
    app: TestApp,
    redis: PrivateRedis,
}

impl TwoReplicas {
    async fn start(backend: Backend) -> Option<Self> {
        let redis = PrivateRedis::start()?;
        let app = TestApp::spawn(backend).await;
        let creds = app.create_client("svc").await;
        let url = redis.url();
        let env = [("DATA_VAULT_REDIS__URL", url.as_str())];
        let first = ServerProcess::start_with(&app, &env);
        let second = ServerProcess::start_with(&app, &env);
        Some(Self {
            redis,
            app,
            creds,
            first,
            second,
        })
    }
}

async fn a_replay_to_another_replica_after_a_redis_restart_is_refused(backend: Backend) {
    let Some(mut r) = TwoReplicas::start(backend).await else {
        return;
    };
    let captured = Captured::upload(&r.first.client(&r.creds));
    assert_eq!(captured.send(&r.app.http, r.first.addr).await.status(), 201);

    // A restart of a Redis without persistence is a flush: every nonce in it is gone.
    r.redis.restart();
    assert_replayed(captured.send(&r.app.http, r.second.addr).await).await;
    assert_replayed(captured.send(&r.app.http, r.first.addr).await).await;
    assert_eq!(r.app.count_rows("blobs").await, 1);
}

async fn a_replay_across_replicas_during_a_redis_outage_is_refused(backend: Backend) {
    let Some(mut r) = TwoReplicas::start(backend).await else {
        return;
    };

    // Each replica now falls back to its own memory, which has never seen the other's nonces.
    r.redis.stop();
    let captured = Captured::upload(&r.first.client(&r.creds));
    assert_eq!(captured.send(&r.app.http, r.first.addr).await.status(), 201);
    assert_replayed(captured.send(&r.app.http, r.second.addr).await).await;
    assert_eq!(r.app.count_rows("blobs").await, 1);
}

async fn a_replayed_listing_is_refused_after_a_restart(backend: Backend) {
    // A listing records no audit event; its nonce is spent before the page leaves.
    let mut app = TestApp::spawn(backend).await;
    let creds = app.create_client("svc").await;
    let api = app.client(&creds);
    let client = api.signer();
    let url = client.url("/api/v1/vault/blobs", &[]).unwrap();
    let headers = client.sign(&Method::GET, &url, b"").unwrap();
    let send = |app: &TestApp| {
        let mut request = app.http.get(app.url("/api/v1/vault/blobs"));
        for (name, value) in &headers {
            request = request.header(*name, value);
        }
        request.send()
    };
    assert_eq!(send(&app).await.unwrap().status(), 200);
    app.restart().await;
    assert_replayed(send(&app).await.unwrap()).await;
}

fn claim(principal: &str, nonce: &str, expires_ms: i64) -> NonceClaim {
    NonceClaim {
        principal: principal.to_owned(),
        nonce: nonce.to_owned(),
        expires_ms,
    }
}

fn nonce_job(claim: NonceClaim) -> BatchJob {
    BatchJob {
        nonce: Some(claim),
        ..BatchJob::default()
    }
}

/// The journal test's clock: far in the future, so that the server's own housekeeping (which
/// prunes what expired before the real now) can never race the test's explicit prune.
const AFTER: i64 = 32_503_680_000_000;

async fn the_journal_spends_a_nonce_once_until_its_window_closes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let store = data_vault::store::connect(&app.config.storage.database_url, 2)
        .await
        .unwrap();
    let outcomes = store
        .commit_batch(
            &[
                nonce_job(claim("a", "n1", AFTER + 1_000)),
                // The same nonce twice in one batch: the second is a replay.
                nonce_job(claim("a", "n1", AFTER + 1_000)),
                // Another principal's nonce of the same text is its own.
                nonce_job(claim("b", "n1", AFTER + 1_000)),
            ],
            AFTER + 500,
        )
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [
            JobOutcome::Applied,
            JobOutcome::Replayed,
            JobOutcome::Applied
        ]
    );
    let again = store
        .commit_batch(&[nonce_job(claim("a", "n1", AFTER + 2_000))], AFTER + 900)
        .await
        .unwrap();
    assert_eq!(again, [JobOutcome::Replayed], "still inside its window");
    let later = store
        .commit_batch(&[nonce_job(claim("a", "n1", AFTER + 3_000))], AFTER + 1_500)
        .await
        .unwrap();
    assert_eq!(
        later,
        [JobOutcome::Applied],
        "a closed window frees the nonce"
    );

    assert_eq!(
        store.prune_nonces(AFTER + 1_500).await.unwrap(),
        1,
        "b's n1 expired"
    );
    assert_eq!(app.count_rows("used_nonces").await, 1);
}

on_both_backends!(
    a_replay_after_a_server_restart_is_refused,
    a_replay_to_another_replica_after_a_redis_restart_is_refused,
    a_replay_across_replicas_during_a_redis_outage_is_refused,
    a_replayed_listing_is_refused_after_a_restart,
    the_journal_spends_a_nonce_once_until_its_window_closes,
);
