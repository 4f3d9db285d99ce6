//! Wallet-signed requests (ADR-036) over the wire: what Rust and the real JavaScript wallet
//! libraries sign is accepted, and every kind of forgery is refused with the right code.

use crate::helpers::*;
use crate::on_both_backends;
use base64::Engine;
use data_vault::cli::{ClientAuth, VaultClient};
use data_vault_auth::headers as h;
use reqwest::Method;
use serde_json::Value;
use std::process::Command;

const KEY: &str = "1f0c3b0d8ec5d2b6a4f1e8c7b9a2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0";
const OTHER_KEY: &str = "2a1b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f809";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn wallet_client(app: &TestApp, key: &str, prefix: &str) -> Api {
    Api::from(VaultClient::new(&app.url(""), ClientAuth::wallet(key, prefix).unwrap()).unwrap())
}

/// A wallet-signed request whose headers a test may spoil before sending.
struct Signed {
    url: url::Url,
    method: Method,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
}

impl Signed {
    fn new(client: &Api, method: Method, path: &str, query: &[(&str, &str)], body: &[u8]) -> Self {
        let client = client.signer();
        let url = client.url(path, query).unwrap();
        let headers = client.sign(&method, &url, body).unwrap();
        Self {
            url,
            method,
            body: body.to_vec(),
            headers,
        }
    }

    fn set(&mut self, name: &'static str, value: String) {
        for (n, v) in &mut self.headers {
            if *n == name {
                *v = value.clone();
            }
        }
    }

    fn get(&self, name: &str) -> String {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    }

    async fn send(&self, http: &reqwest::Client) -> reqwest::Response {
        let mut request = http
            .request(self.method.clone(), self.url.clone())
            .body(self.body.clone());
        if !self.body.is_empty() {
            request = request.header("content-type", "application/octet-stream");
        }
        for (name, value) in &self.headers {
            request = request.header(*name, value);
        }
        request.send().await.unwrap()
    }
}

/// s ↦ n − s on the secp256k1 group order: the high-S twin of a valid signature.
fn high_s_twin(signature_b64: &str) -> String {
    const N: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36,
        0x41, 0x41,
    ];
    let mut sig = B64.decode(signature_b64).unwrap();
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let diff = i16::from(N[i]) - i16::from(sig[32 + i]) - borrow;
        sig[32 + i] = u8::try_from(diff.rem_euclid(256)).unwrap();
        borrow = i16::from(diff < 0);
    }
    B64.encode(sig)
}

async fn wallet_requests_round_trip_and_the_address_is_the_owner(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = wallet_client(&app, KEY, "virtengine");
    // Larger than 64 KiB, so the body hash the signature covers is computed off the workers.
    let envelope = age_envelope_of_size(100_000);
    let veid = UploadQuery::in_scope("veid");
    let response = user.upload_raw(&envelope, &veid).await;
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
    let created: Value = user
        .upload_raw(&envelope, &veid)
        .await
        .json()
        .await
        .unwrap();
    let owner = created["metadata"]["owner"].as_str().unwrap().to_owned();
    assert!(owner.starts_with("virtengine1"), "{owner}");
    let id = created["metadata"]["id"].as_str().unwrap();
    let read = ReadQuery::default()
        .purpose("kyc review")
        .reason("ticket 9");
    let fetched = user.get_blob_raw(id, &read).await;
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), envelope.as_slice());
    assert_eq!(user.delete_blob(id).await.status(), 204);
    let trail: Value = user
        .audit(&AuditQuery::default())
        .await
        .json()
        .await
        .unwrap();
    let read = trail["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_type"] == "blob.read")
        .unwrap()
        .clone();
    assert_eq!(
        (read["auth_method"].as_str(), read["requester"].as_str()),
        (Some("wallet"), Some(owner.as_str()))
    );
}

async fn forged_wallet_requests_are_refused_with_the_right_code(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = wallet_client(&app, KEY, "virtengine");
    let other = wallet_client(&app, OTHER_KEY, "virtengine");
    let list = "/api/v1/vault/blobs";
    let expect = |what: &'static str, code: &'static str| (what, code);

    let ok = Signed::new(&user, Method::GET, list, &[("scope", "veid")], b"");
    assert_eq!(ok.send(&app.http).await.status(), 200);

    let mut cases: Vec<((&str, &str), Signed)> = Vec::new();
    cases.push((
        expect("wrong prefix", "unauthenticated"),
        Signed::new(
            &wallet_client(&app, KEY, "cosmos"),
            Method::GET,
            list,
            &[],
            b"",
        ),
    ));
    let mut mismatch = Signed::new(&user, Method::GET, list, &[], b"");
    let theirs = Signed::new(&other, Method::GET, list, &[], b"");
    mismatch.set(h::ADDRESS, theirs.get(h::ADDRESS));
    cases.push((
        expect("address of another key", "unauthenticated"),
        mismatch,
    ));
    let mut high_s = Signed::new(&user, Method::GET, list, &[], b"");
    let twin = high_s_twin(&high_s.get(h::SIGNATURE));
    high_s.set(h::SIGNATURE, twin);
    cases.push((expect("high-S signature", "unauthenticated"), high_s));
    let mut long = Signed::new(&user, Method::GET, list, &[], b"");
    let mut sig = B64.decode(long.get(h::SIGNATURE)).unwrap();
    sig.push(1);
    long.set(h::SIGNATURE, B64.encode(sig));
    cases.push((expect("65-byte signature", "unauthenticated"), long));
    let mut uncompressed = Signed::new(&user, Method::GET, list, &[], b"");
    let mut key = vec![4u8];
    key.extend_from_slice(&[7u8; 64]);
    uncompressed.set(h::PUBKEY, B64.encode(key));
    cases.push((expect("uncompressed key", "unauthenticated"), uncompressed));
    let envelope = age_envelope_of_size(500);
    let mut body_changed = Signed::new(&user, Method::POST, list, &[("scope", "veid")], &envelope);
    body_changed.body[300] ^= 1;
    cases.push((
        expect("body changed after signing", "unauthenticated"),
        body_changed,
    ));
    let mut query_changed = Signed::new(&user, Method::GET, list, &[("scope", "veid")], b"");
    query_changed.url.set_query(Some("scope=market"));
    cases.push((
        expect("query changed after signing", "unauthenticated"),
        query_changed,
    ));
    let mut other_chain = Signed::new(&user, Method::GET, list, &[], b"");
    let signer = data_vault_auth::WalletSigner::from_private_key_hex(KEY, "virtengine").unwrap();
    let data = data_vault_auth::WalletRequest {
        method: "GET",
        path_and_query: list,
        timestamp_ms: other_chain.get(h::TIMESTAMP).parse().unwrap(),
        nonce: &other_chain.get(h::NONCE),
        body_sha256_hex: "",
    }
    .signed_data();
    other_chain.set(
        h::SIGNATURE,
        signer.sign(&data, "some-other-chain").unwrap(),
    );
    cases.push((
        expect("sign doc with another chain id", "unauthenticated"),
        other_chain,
    ));
    let now = data_vault::time::now_millis();
    for (offset, what) in [(-301_000, "301 s old"), (61_000, "61 s ahead")] {
        // Sign with the shifted time itself, so only the window can refuse it.
        let data = data_vault_auth::WalletRequest {
            method: "GET",
            path_and_query: list,
            timestamp_ms: now + offset,
            nonce: "00112233445566778899aabbccddeeff",
            body_sha256_hex: "",
        }
        .signed_data();
        let mut stale = Signed::new(&user, Method::GET, list, &[], b"");
        stale.set(h::TIMESTAMP, (now + offset).to_string());
        stale.set(h::NONCE, "00112233445566778899aabbccddeeff".into());
        stale.set(h::SIGNATURE, signer.sign(&data, "").unwrap());
        cases.push((expect(what, "clock_skew"), stale));
    }
    for ((what, code), request) in cases {
        let (status, got) = error_of(request.send(&app.http).await).await;
        assert_eq!((status, got.as_str()), (401, code), "{what}");
    }

    let once = Signed::new(&user, Method::GET, list, &[], b"");
    assert_eq!(once.send(&app.http).await.status(), 200);
    let (status, code) = error_of(once.send(&app.http).await).await;
    assert_eq!(
        (status, code.as_str()),
        (401, "replayed"),
        "the same nonce twice"
    );

    let metrics = app.metrics_text().await;
    for reason in [
        "wrong_prefix",
        "address_mismatch",
        "high_s",
        "malformed_signature",
        "malformed_public_key",
        "bad_signature",
        "clock_skew",
        "replayed",
    ] {
        assert!(
            metrics.contains(&format!("reason=\"{reason}\",scheme=\"wallet\"")),
            "{reason}: {metrics}"
        );
    }
}

async fn the_configured_chain_id_is_accepted_for_older_clients(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.auth.chain_id = "virtengine-1".into()).await;
    let user = wallet_client(&app, KEY, "virtengine");
    let mut legacy = Signed::new(&user, Method::GET, "/api/v1/vault/blobs", &[], b"");
    let signer = data_vault_auth::WalletSigner::from_private_key_hex(KEY, "virtengine").unwrap();
    let data = data_vault_auth::WalletRequest {
        method: "GET",
        path_and_query: "/api/v1/vault/blobs",
        timestamp_ms: legacy.get(h::TIMESTAMP).parse().unwrap(),
        nonce: &legacy.get(h::NONCE),
        body_sha256_hex: "",
    }
    .signed_data();
    legacy.set(h::SIGNATURE, signer.sign(&data, "virtengine-1").unwrap());
    assert_eq!(legacy.send(&app.http).await.status(), 200);
}

async fn a_wallet_nonce_replayed_to_another_replica_is_rejected(backend: Backend) {
    let Some(redis) = redis_url() else { return };
    let app = TestApp::spawn(backend).await;
    let prefix = format!("test-{}:", uuid::Uuid::new_v4().simple());
    let env = [
        ("DATA_VAULT_REDIS__URL", redis.as_str()),
        ("DATA_VAULT_REDIS__KEY_PREFIX", prefix.as_str()),
    ];
    let replicas = [
        ServerProcess::start_with(&app, &env),
        ServerProcess::start_with(&app, &env),
    ];
    let user = Api::from(
        VaultClient::new(
            &format!("http://{}", replicas[0].addr),
            ClientAuth::wallet(KEY, "virtengine").unwrap(),
        )
        .unwrap(),
    );
    let mut request = Signed::new(&user, Method::GET, "/api/v1/vault/blobs", &[], b"");
    assert_eq!(request.send(&app.http).await.status(), 200);
    request.url.set_port(Some(replicas[1].addr.port())).unwrap();
    let (status, code) = error_of(request.send(&app.http).await).await;
    assert_eq!((status, code.as_str()), (401, "replayed"));
}

/// Runs `interop/wallet/sign-request.mjs` (real @cosmjs/amino and @keplr-wallet/cosmos).
fn node_sign_request(
    app: &TestApp,
    method: &str,
    path: &str,
    body: Option<&std::path::Path>,
) -> Option<(u16, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/interop/wallet");
    if !std::path::Path::new(dir).join("node_modules").exists() {
        tool_missing(
            "live wallet interop",
            "interop/wallet has no node_modules (npm ci --prefix interop/wallet)",
        );
        return None;
    }
    let mut command = Command::new("node");
    command.arg(format!("{dir}/sign-request.mjs")).args([
        "--url",
        &app.url(""),
        "--method",
        method,
        "--path",
        path,
        "--privkey-hex",
        KEY,
    ]);
    if let Some(body) = body {
        command
            .arg("--body-file")
            .arg(body)
            .args(["--content-type", "application/octet-stream"]);
    }
    let output = command.output().expect("node is installed");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let (status, body) = text.split_once('\n').unwrap_or((text.as_str(), ""));
    Some((status.trim().parse().unwrap(), body.to_owned()))
}

async fn requests_signed_by_the_javascript_wallet_libraries_are_accepted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let envelope_file = app.dir.path().join("envelope.age");
    std::fs::write(&envelope_file, age_envelope_of_size(3000)).unwrap();
    let Some((status, body)) = node_sign_request(
        &app,
        "POST",
        "/api/v1/vault/blobs?scope=support",
        Some(&envelope_file),
    ) else {
        return;
    };
    assert_eq!(status, 201, "{body}");
    let created: Value = serde_json::from_str(&body).unwrap();
    let id = created["metadata"]["id"].as_str().unwrap();
    let rust_signer =
        data_vault_auth::WalletSigner::from_private_key_hex(KEY, "virtengine").unwrap();
    assert_eq!(
        created["metadata"]["owner"],
        rust_signer.address(),
        "same address in Rust and JS"
    );
    let (status, body) = node_sign_request(
        &app,
        "GET",
        &format!("/api/v1/vault/blobs/{id}?reason=ticket%2042&purpose=review"),
        None,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let fetched: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        B64.decode(fetched["data_base64"].as_str().unwrap())
            .unwrap(),
        std::fs::read(&envelope_file).unwrap()
    );
    let (status, body) =
        node_sign_request(&app, "DELETE", &format!("/api/v1/vault/blobs/{id}"), None).unwrap();
    assert_eq!(status, 204, "{body}");
}

async fn the_cli_acts_as_a_wallet_principal(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key_file = app.dir.path().join("wallet.key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let document = app.dir.path().join("doc.txt");
    std::fs::write(&document, "portal upload").unwrap();
    let (identity, recipient) = age_identity();
    let output = Command::new(env!("CARGO_BIN_EXE_data-vault"))
        .args(["blob", "put"])
        .arg(&document)
        .args([
            "--scope",
            "support",
            "--recipient",
            &recipient.to_string(),
            "--url",
            &app.url(""),
            "--wallet-key-file",
        ])
        .arg(&key_file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let meta: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(meta["owner"].as_str().unwrap().starts_with("virtengine1"));

    use secrecy::ExposeSecret;
    let identity_file = app.dir.path().join("identity.txt");
    std::fs::write(&identity_file, identity.to_string().expose_secret()).unwrap();
    let out = app.dir.path().join("out.txt");
    let output = Command::new(env!("CARGO_BIN_EXE_data-vault"))
        .args([
            "blob",
            "get",
            meta["id"].as_str().unwrap(),
            "--reason",
            "self",
            "--url",
            &app.url(""),
        ])
        .arg("--identity")
        .arg(&identity_file)
        .arg("-o")
        .arg(&out)
        .env("DATA_VAULT_WALLET_KEY", KEY)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "portal upload");
}

on_both_backends!(
    wallet_requests_round_trip_and_the_address_is_the_owner,
    forged_wallet_requests_are_refused_with_the_right_code,
    the_configured_chain_id_is_accepted_for_older_clients,
    a_wallet_nonce_replayed_to_another_replica_is_rejected,
    requests_signed_by_the_javascript_wallet_libraries_are_accepted,
    the_cli_acts_as_a_wallet_principal,
);
