//! Schemathesis against the running vault, driven by docs/openapi.json's live twin: requests
//! generated from the document (valid and invalid), every one HMAC-signed by
//! `tests/schemathesis/vault_hooks.py`, with a bounded number of examples per operation. No
//! answer may be a 5xx, and none may contradict the document (status, content type, headers,
//! body schema).
//!
//! Needs schemathesis for `python3` (`pip install schemathesis`); CI installs it, elsewhere its absence
//! skips the test loudly.

use crate::helpers::*;
use crate::on_both_backends;

/// The checks that mean "no server error, nothing the document does not describe".
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance";

/// Schemathesis's command line, run by the same `python3` that `pip` installed it for (its
/// `st` script need not be on PATH).
fn st() -> tokio::process::Command {
    let mut command = tokio::process::Command::new("python3");
    command.args(["-m", "schemathesis.cli"]);
    command
}

/// (`pip install schemathesis==4.32.5` where it is missing.)
fn schemathesis_installed() -> bool {
    crate::helpers::tool_runs(
        "schemathesis test",
        "python3",
        &["-m", "schemathesis.cli", "--version"],
    )
}

on_both_backends!(schemathesis_finds_no_server_error_and_nothing_contradicting_the_document);

async fn schemathesis_finds_no_server_error_and_nothing_contradicting_the_document(
    backend: Backend,
) {
    if !schemathesis_installed() {
        return;
    }
    let app = TestApp::spawn_with(backend, |c| {
        // Thousands of requests from one principal in seconds: limits would answer 429
        // (documented, but it would hide every other answer).
        c.rate_limit.enabled = false;
        c.denial_spike.enabled = false;
        c.auth.platform_admins = vec!["schemathesis".into()];
    })
    .await;
    let creds = app.create_client("schemathesis").await;
    app.create_org("acme", &[("schemathesis", "administrator")])
        .await;
    let api = app.client(&creds);
    api.create_blob("market", Some("acme")).await;

    let hooks = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis");
    let reports = tempfile::tempdir().unwrap();
    let output = st()
        .arg("run")
        .arg(app.url("/api/v1/openapi.json"))
        .args(["--url", &app.url("")])
        .args(["--checks", CHECKS])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", "30"])
        .args(["--seed", "15"])
        .args(["--workers", "2"])
        .args(["--generation-with-security-parameters", "false"])
        .args(["--request-timeout", "20"])
        .arg("--report-dir")
        .arg(reports.path())
        .arg("--no-color")
        .current_dir(reports.path())
        .env("SCHEMATHESIS_HOOKS", "vault_hooks")
        .env("PYTHONPATH", hooks)
        .env("DATA_VAULT_ST_PRINCIPAL", &creds.principal)
        .env("DATA_VAULT_ST_SECRET", creds.secret.as_str())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{stdout}\n{stderr}"
    );
    println!("{stdout}");
    // A run whose signatures all failed would pass too, on 401s alone: the hook must have
    // signed, and the vault granted many blob operations besides the one upload above.
    let metrics = app.metrics_text().await;
    let granted: f64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("virtengine_data_vault_access_total{") && l.contains("success=\"true\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        granted > 20.0,
        "only {granted} granted blob operations:\n{stdout}"
    );
}
