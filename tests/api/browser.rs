//! A real browser (DESIGN §17): headless Chromium loads a portal page from one origin
//! (`http://localhost:PORT`), which signs with the same JavaScript wallet libraries as
//! `interop/wallet` (cosmjs and Keplr, bundled for the browser) and uploads, reads and deletes a
//! blob on the vault at another origin (`http://127.0.0.1:PORT`). The page shows each answer's
//! `X-Request-Id` and `X-VE-Audit-Event`, which it can read only because the vault's CORS
//! exposes them; from an origin the vault does not list, the browser refuses the first call.
//!
//! Needs Debian's `chromium` and `npm ci --prefix interop/browser` (CI installs both);
//! elsewhere their absence skips the test loudly.

use crate::helpers::*;
use crate::on_both_backends;
use base64::Engine;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/interop/browser");
/// A fixed test key (never a real wallet's).
const KEY: &str = "3f1c5e2a9b8d7c6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e";

fn browser_available() -> bool {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let missing = if !std::path::Path::new(&chromium).exists() {
        Some("chromium is not installed (apt-get install chromium)")
    } else if !std::path::Path::new(DIR)
        .join("node_modules/playwright-core")
        .exists()
    {
        Some("interop/browser has no node_modules (npm ci --prefix interop/browser)")
    } else {
        None
    };
    match missing {
        None => true,
        Some(why) => {
            crate::helpers::tool_missing("browser test", why);
            false
        }
    }
}

/// A port free right now, for the page's origin (which the vault must list before it starts).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs the page against `app`; returns what the page showed, or the driver's failure.
async fn run_page(app: &TestApp, port: u16, envelope: &[u8]) -> Result<serde_json::Value, String> {
    let output = tokio::process::Command::new("node")
        .arg(format!("{DIR}/run.mjs"))
        .args(["--port", &port.to_string()])
        .args(["--vault", &app.url("")])
        .args(["--key", KEY])
        .args([
            "--envelope",
            &base64::engine::general_purpose::STANDARD.encode(envelope),
        ])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(120), output)
        .await
        .expect("the browser run finished within two minutes")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if !output.status.success() {
        return Err(stderr);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    Ok(serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("driver output is not JSON ({e}): {stdout}\n{stderr}")))
}

on_both_backends!(
    a_page_on_another_origin_uploads_reads_and_deletes_with_a_wallet,
    a_page_on_an_unlisted_origin_is_refused_by_the_browser,
);

async fn a_page_on_another_origin_uploads_reads_and_deletes_with_a_wallet(backend: Backend) {
    if !browser_available() {
        return;
    }
    let port = free_port();
    let app = TestApp::spawn_with(backend, |c| {
        c.server.cors_allowed_origins = vec![format!("http://localhost:{port}")];
    })
    .await;
    let envelope = age_envelope_of_size(700);
    let shown = run_page(&app, port, &envelope).await.unwrap();
    let result = &shown["result"];
    assert!(result["error"].is_null(), "the page failed: {shown}");
    let address = result["address"].as_str().unwrap();
    assert!(address.starts_with("virtengine1"), "{address}");
    let steps = result["steps"].as_array().unwrap();
    let statuses: Vec<u64> = steps
        .iter()
        .map(|s| s["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [201, 200, 204], "{shown}");
    let read = &steps[1]["body"];
    assert_eq!(
        read["data_base64"],
        base64::engine::general_purpose::STANDARD.encode(&envelope),
        "the page read back what it uploaded"
    );
    assert_eq!(read["metadata"]["owner"], address);
    let mut seqs = Vec::new();
    // One log line per step, or the per-line checks below would stop short silently.
    assert_eq!(
        shown["log"].as_array().unwrap().len(),
        steps.len(),
        "{shown}"
    );
    for (step, line) in steps.iter().zip(shown["log"].as_array().unwrap()) {
        let request_id = step["request_id"]
            .as_str()
            .expect("the page sees X-Request-Id");
        assert_eq!(request_id.len(), 32, "{step}");
        let audit = step["audit_event"]
            .as_str()
            .expect("the page sees X-VE-Audit-Event");
        let (chain, seq) = audit.rsplit_once('/').unwrap();
        assert_eq!(chain, format!("owner:{address}"), "{audit}");
        seqs.push(seq.parse::<u64>().unwrap());
        // What the page showed the user, not just what its script saw.
        let line = line.as_str().unwrap();
        assert!(line.contains(request_id) && line.contains(audit), "{line}");
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}

async fn a_page_on_an_unlisted_origin_is_refused_by_the_browser(backend: Backend) {
    if !browser_available() {
        return;
    }
    let port = free_port();
    let app = TestApp::spawn_with(backend, |c| {
        c.server.cors_allowed_origins = vec!["https://portal.example.com".into()];
    })
    .await;
    let shown = run_page(&app, port, &age_envelope_of_size(700))
        .await
        .unwrap();
    let error = shown["result"]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("Failed to fetch"),
        "the browser must block the call: {shown}"
    );
    assert_eq!(shown["log"], serde_json::json!([]));
}
