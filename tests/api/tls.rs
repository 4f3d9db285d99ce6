//! TLS on the API listener (DESIGN §17): an HTTPS round trip with a test CA, SIGHUP reload
//! seen by new connections while open ones carry on, a bad file at reload logged with the old
//! certificate kept, and start-up errors that name the file at fault.

use crate::helpers::*;
use crate::on_both_backends;
use data_vault::cli::{ClientAuth, VaultClient};
use data_vault::config::Config;
use data_vault::startup::Application;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A test certificate authority and a server certificate it issued for 127.0.0.1.
struct TestPki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn issue(ca_name: &str) -> TestPki {
    issue_for(ca_name, |_| {})
}

/// A certificate valid only from `from` until `until` (year, month, day).
fn issue_valid(ca_name: &str, from: (i32, u8, u8), until: (i32, u8, u8)) -> TestPki {
    issue_for(ca_name, |params| {
        params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
        params.not_after = rcgen::date_time_ymd(until.0, until.1, until.2);
    })
}

fn issue_for(ca_name: &str, customise: impl FnOnce(&mut rcgen::CertificateParams)) -> TestPki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    customise(&mut params);
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    TestPki {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// Writes `pki`'s certificate and key as `cert.pem` and `key.pem` in `dir`.
fn install(dir: &Path, pki: &TestPki) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, &pki.cert_pem).unwrap();
    std::fs::write(&key, &pki.key_pem).unwrap();
    (cert, key)
}

/// An HTTPS client that trusts only `ca_pem`.
fn trusting(ca_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap()
}

/// `GET /healthz` from a new client trusting only `ca_pem`: a new connection without a TLS
/// session to resume, so it sees the certificate the server offers at this moment.
async fn healthz_with_new_client(ca_pem: &str, addr: SocketAddr) -> bool {
    healthz_over_new_connection(&trusting(ca_pem), addr).await
}

/// `false` only when the client refused the server's certificate: any other failure (a
/// refused connection, a server gone) fails the test, so a negative check cannot pass for
/// the wrong reason.
async fn healthz_over_new_connection(client: &reqwest::Client, addr: SocketAddr) -> bool {
    match client.get(format!("https://{addr}/healthz")).send().await {
        Ok(response) => {
            assert_eq!(response.status(), 200);
            true
        }
        Err(e) => {
            let cause = format!("{e:?}");
            assert!(
                cause.contains("InvalidCertificate(UnknownIssuer)"),
                "the request failed, but not for the certificate: {cause}"
            );
            false
        }
    }
}

/// One TLS connection, kept open by the test, trusting only `ca_pem`.
async fn open_tls(addr: SocketAddr, ca_pem: &str) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await
        .unwrap()
}

/// `GET /healthz` on an open connection (HTTP/1.1 keep-alive); returns the status.
async fn healthz_on(stream: &mut tokio_rustls::client::TlsStream<TcpStream>) -> u16 {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the connection closed");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the connection closed mid-body");
        buf.extend_from_slice(&chunk[..n]);
    }
    head.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A `data-vault serve` process speaking TLS with `pki`, on `app`'s database.
fn serve_tls(app: &TestApp, dir: &Path, pki: &TestPki) -> (ServerProcess, PathBuf, PathBuf) {
    let (cert, key) = install(dir, pki);
    let server = ServerProcess::start_with(
        app,
        &[
            ("DATA_VAULT_SERVER__TLS_CERT_FILE", cert.to_str().unwrap()),
            ("DATA_VAULT_SERVER__TLS_KEY_FILE", key.to_str().unwrap()),
        ],
    );
    (server, cert, key)
}

on_both_backends!(https_round_trip_with_a_test_ca);

async fn https_round_trip_with_a_test_ca(backend: Backend) {
    let pki = issue_valid("data-vault test CA", (2020, 1, 1), (2999, 1, 1));
    let files = tempfile::tempdir().unwrap();
    let (cert, key) = install(files.path(), &pki);
    let app = TestApp::spawn_with(backend, |c| {
        c.server.tls_cert_file = Some(cert);
        c.server.tls_key_file = Some(key);
    })
    .await;
    let creds = app.create_client("https-client").await;
    let auth = ClientAuth::Hmac {
        principal: creds.principal.clone(),
        secret: creds.secret.clone(),
    };
    let base = format!("https://{}", app.addr);
    let api = Api::from(VaultClient::with_http(&base, auth, trusting(&pki.ca_pem)).unwrap());

    // The certificate's expiry is a metric, for the alert that warns before it comes.
    assert_eq!(
        app.metric("virtengine_data_vault_tls_cert_expiry_timestamp_seconds")
            .await,
        rcgen::date_time_ymd(2999, 1, 1).unix_timestamp() as f64
    );

    let id = api.create_blob("market", None).await;
    let response = api.get_blob(&id, &ReadQuery::default()).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-ve-audit-event"));
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=63072000",
        "over TLS, browsers are told to stay on TLS"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["metadata"]["id"], id.as_str());
    assert_eq!(api.delete_blob(&id).await.status(), 204);

    // TLS 1.2 is served as well as 1.3.
    let tls12 = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap())
        .max_tls_version(reqwest::tls::Version::TLS_1_2)
        .build()
        .unwrap();
    assert!(healthz_over_new_connection(&tls12, app.addr).await);

    // The listener speaks only TLS, and only with a certificate the client's CA issued.
    let plain = reqwest::get(format!("http://{}/healthz", app.addr)).await;
    assert!(plain.is_err(), "plain HTTP must not be served: {plain:?}");
    assert!(!healthz_with_new_client(&issue("another CA").ca_pem, app.addr).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reload_is_seen_by_new_connections_and_open_ones_carry_on() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let files = tempfile::tempdir().unwrap();
    let (one, two) = (issue("CA one"), issue("CA two"));
    let (server, _, _) = serve_tls(&app, files.path(), &one);

    let mut kept = open_tls(server.addr, &one.ca_pem).await;
    assert_eq!(healthz_on(&mut kept).await, 200);
    assert!(healthz_with_new_client(&one.ca_pem, server.addr).await);
    assert!(!healthz_with_new_client(&two.ca_pem, server.addr).await);

    install(files.path(), &two);
    server.hangup();
    server.wait_for_log("reloaded the TLS certificate", 1).await;

    assert!(
        healthz_with_new_client(&two.ca_pem, server.addr).await,
        "a new connection gets the reloaded certificate"
    );
    assert!(!healthz_with_new_client(&one.ca_pem, server.addr).await);
    assert_eq!(
        healthz_on(&mut kept).await,
        200,
        "a connection opened before the reload is not dropped"
    );
    let metrics = reqwest::get(format!("http://{}/metrics", server.metrics_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"virtengine_data_vault_tls_reloads_total{outcome="ok"} 1"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_file_at_reload_is_logged_and_the_old_certificate_kept() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let files = tempfile::tempdir().unwrap();
    let one = issue("CA one");
    let (server, cert, key) = serve_tls(&app, files.path(), &one);
    assert!(healthz_with_new_client(&one.ca_pem, server.addr).await);

    std::fs::write(&cert, "not a certificate\n").unwrap();
    server.hangup();
    let errors = server
        .wait_for_log("cannot reload the TLS certificate", 1)
        .await;
    assert!(
        errors[0].contains(cert.to_str().unwrap()),
        "the error names the file: {}",
        errors[0]
    );
    assert!(healthz_with_new_client(&one.ca_pem, server.addr).await);

    // A valid certificate whose key is not the one in the key file.
    std::fs::write(&cert, issue("CA two").cert_pem).unwrap();
    server.hangup();
    let errors = server
        .wait_for_log("cannot reload the TLS certificate", 2)
        .await;
    assert!(
        errors[1].contains(key.to_str().unwrap()),
        "the error names the key file: {}",
        errors[1]
    );
    assert!(
        healthz_with_new_client(&one.ca_pem, server.addr).await,
        "the previous certificate is still served"
    );
    // A certificate that has expired, with its own key: clients would refuse it.
    let expired = issue_valid("CA one", (2020, 1, 1), (2021, 1, 1));
    std::fs::write(&cert, &expired.cert_pem).unwrap();
    std::fs::write(&key, &expired.key_pem).unwrap();
    server.hangup();
    let errors = server
        .wait_for_log("cannot reload the TLS certificate", 3)
        .await;
    assert!(
        errors[2].contains("expired at 2021-01-01T00:00:00Z"),
        "{}",
        errors[2]
    );
    assert!(healthz_with_new_client(&one.ca_pem, server.addr).await);
    assert!(server
        .log_lines_with("reloaded the TLS certificate")
        .is_empty());
    let key_pem = one.key_pem.lines().nth(1).unwrap();
    assert!(
        server.log_lines_with(key_pem).is_empty(),
        "key material never reaches the log"
    );
}

/// A server's configuration in `dir` with TLS from `cert` and `key`.
fn tls_config(dir: &Path, cert: &Path, key: &Path) -> Config {
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".into();
    config.server.metrics_listen = "127.0.0.1:0".into();
    config.storage.database_url = format!("sqlite://{}", dir.join("vault.db").display());
    config.keys.master_key_file = dir.join("master.key");
    config.audit.log_key_file = dir.join("log.key");
    config.server.tls_cert_file = Some(cert.to_owned());
    config.server.tls_key_file = Some(key.to_owned());
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_files_at_start_up_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (issue("CA one"), issue("CA two"));
    let (cert, key) = install(dir.path(), &one);
    let missing = dir.path().join("missing.pem");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    let other_key = dir.path().join("other-key.pem");
    std::fs::write(&other_key, &two.key_pem).unwrap();

    for (cert_file, key_file, named) in [
        (&missing, &key, &missing),
        (&cert, &missing, &missing),
        (&garbage, &key, &garbage),
        (&cert, &garbage, &garbage),
        (&key, &key, &key),
        (&cert, &other_key, &other_key),
    ] {
        let config = tls_config(dir.path(), cert_file, key_file);
        let error = match Application::build(&config).await {
            Ok(_) => panic!("{cert_file:?} with {key_file:?} must not start"),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            error.contains(named.to_str().unwrap()),
            "the error names {named:?}: {error}"
        );
        assert!(!error.contains("PRIVATE KEY-----\n"), "{error}");
    }

    // Certificates that every client would refuse: expired, or not valid yet.
    for (pki, said) in [
        (
            issue_valid("CA one", (2020, 1, 1), (2021, 1, 1)),
            "expired at 2021-01-01T00:00:00Z",
        ),
        (
            issue_valid("CA one", (2999, 1, 1), (3000, 1, 1)),
            "is not valid before 2999-01-01T00:00:00Z",
        ),
    ] {
        let (cert, key) = install(dir.path(), &pki);
        let config = tls_config(dir.path(), &cert, &key);
        let error = match Application::build(&config).await {
            Ok(_) => panic!("a certificate that {said} must not be served"),
            Err(e) => format!("{e:#}"),
        };
        assert!(error.contains(said), "{error}");
        assert!(error.contains(cert.to_str().unwrap()), "{error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_cli_trusts_a_private_ca_and_defaults_to_https_for_a_tls_configuration() {
    let pki = issue("private CA");
    let files = tempfile::tempdir().unwrap();
    let (cert, key) = install(files.path(), &pki);
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.server.tls_cert_file = Some(cert.clone());
        c.server.tls_key_file = Some(key.clone());
    })
    .await;
    let creds = app.create_client("cli-over-tls").await;
    let ca = files.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let ls = |with_ca: bool| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_data-vault"));
        command
            .args(["blob", "ls"])
            .env("DATA_VAULT_URL", format!("https://{}", app.addr))
            .env("DATA_VAULT_PRINCIPAL", &creds.principal)
            .env("DATA_VAULT_SECRET", creds.secret.as_str());
        if with_ca {
            command.arg("--ca-cert").arg(&ca);
        }
        command
    };
    let trusted = ls(true).output().await.unwrap();
    let untrusted = ls(false).output().await.unwrap();
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    assert!(
        !untrusted.status.success(),
        "the private CA is not trusted by default"
    );
    // Without a URL the command reaches the server of its configuration, and a server
    // configured with a certificate speaks only TLS: the default URL is https://.
    let configured = ls(true)
        .env_remove("DATA_VAULT_URL")
        .env("DATA_VAULT_SERVER__LISTEN", app.addr.to_string())
        .env("DATA_VAULT_SERVER__TLS_CERT_FILE", &cert)
        .env("DATA_VAULT_SERVER__TLS_KEY_FILE", &key)
        .output()
        .await
        .unwrap();
    assert!(
        configured.status.success(),
        "{}",
        String::from_utf8_lossy(&configured.stderr)
    );
    let listing: serde_json::Value = serde_json::from_slice(&configured.stdout).unwrap();
    assert!(listing["blobs"].is_array(), "{listing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_handshake_is_cut_off_at_the_request_timeout() {
    let pki = issue("CA one");
    let files = tempfile::tempdir().unwrap();
    let (cert, key) = install(files.path(), &pki);
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.server.tls_cert_file = Some(cert);
        c.server.tls_key_file = Some(key);
        c.server.request_timeout_secs = 1;
        c.server.idle_timeout_secs = 60;
    })
    .await;
    // Half a ClientHello record header, then silence.
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(&[0x16, 0x03]).await.unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .expect("the server closes the connection well before the idle timeout");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains(
            r#"virtengine_data_vault_http_connections_cut_total{listener="api",reason="head"} 1"#
        ),
        "{metrics}"
    );
    // The listener still serves complete handshakes.
    assert!(healthz_with_new_client(&pki.ca_pem, app.addr).await);
}
