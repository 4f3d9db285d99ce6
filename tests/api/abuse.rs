//! Abuse control over the wire: rate limits with their headers, one limit shared by replicas
//! through Redis, denial spikes, blocks, and a metrics endpoint that promtool accepts.

use crate::helpers::*;
use crate::on_both_backends;
use serde_json::Value;

async fn list(client: &Api) -> reqwest::Response {
    client.list_blobs(&ListQuery::default()).await
}

async fn a_principal_over_its_limit_is_refused_while_others_are_not(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.rate_limit.principal_per_second = 0.2;
        c.rate_limit.principal_burst = 3;
    })
    .await;
    let noisy = app.client(&app.create_client("noisy").await);
    let quiet = app.client(&app.create_client("quiet").await);
    for expected_remaining in ["2", "1", "0"] {
        let response = list(&noisy).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-ratelimit-limit"], "3");
        assert_eq!(
            response.headers()["x-ratelimit-remaining"],
            expected_remaining
        );
    }
    let refused = list(&noisy).await;
    assert_eq!(refused.status(), 429);
    let headers = refused.headers().clone();
    let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=5).contains(&retry_after), "{retry_after}");
    assert_eq!(headers["x-ratelimit-limit"], "3");
    assert_eq!(headers["x-ratelimit-remaining"], "0");
    assert!(headers.contains_key("x-ratelimit-reset"));
    assert_eq!(error_of(refused).await.1, "rate_limited");
    assert_eq!(
        list(&quiet).await.status(),
        200,
        "another principal is unaffected"
    );
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains(r#"virtengine_data_vault_rate_limited_total{limit="principal"} 1"#),
        "{metrics}"
    );
}

async fn the_ip_limit_applies_before_authentication(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.rate_limit.ip_per_second = 0.2;
        c.rate_limit.ip_burst = 2;
    })
    .await;
    let anonymous = app.anonymous();
    for _ in 0..2 {
        assert_eq!(anonymous.get("/api/v1/vault/blobs").await.status(), 401);
    }
    let (status, code) = error_of(anonymous.get("/api/v1/vault/blobs").await).await;
    assert_eq!(
        (status, code.as_str()),
        (429, "rate_limited"),
        "forged requests stop costing signature checks"
    );
    assert_eq!(
        anonymous.healthz().await.status(),
        200,
        "health is never limited"
    );
}

async fn replicas_sharing_redis_enforce_one_limit(backend: Backend) {
    let Some(redis) = redis_url() else { return };
    let app = TestApp::spawn(backend).await;
    let creds = app.create_client("svc").await;
    let prefix = format!("test-{}:", uuid::Uuid::new_v4().simple());
    let env = [
        ("DATA_VAULT_REDIS__URL", redis.as_str()),
        ("DATA_VAULT_REDIS__KEY_PREFIX", prefix.as_str()),
        ("DATA_VAULT_RATE_LIMIT__PRINCIPAL_PER_SECOND", "0.05"),
        ("DATA_VAULT_RATE_LIMIT__PRINCIPAL_BURST", "4"),
    ];
    let replicas = [
        ServerProcess::start_with(&app, &env),
        ServerProcess::start_with(&app, &env),
    ];
    let mut statuses = Vec::new();
    for i in 0..6 {
        statuses.push(
            list(&replicas[i % 2].client(&creds))
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(
        statuses,
        vec![200, 200, 200, 200, 429, 429],
        "one budget of 4 across both replicas"
    );
}

async fn a_burst_of_denials_raises_exactly_one_spike_per_window(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.denial_spike.threshold = 5;
        c.denial_spike.window_secs = 3600;
    })
    .await;
    let owner = app.client(&app.create_client("owner").await);
    let prober = app.client(&app.create_client("prober").await);
    let id = owner.create_blob("veid", None).await;
    for _ in 0..12 {
        let response = prober.get_blob(&id, &ReadQuery::default()).await;
        assert_eq!(response.status(), 403);
    }
    let mine = prober
        .audit_events(&AuditQuery::default().limit("500"))
        .await;
    let spikes: Vec<&Value> = mine
        .iter()
        .filter(|e| e["event_type"] == "security.denial_spike")
        .collect();
    assert_eq!(spikes.len(), 1, "{spikes:?}");
    assert_eq!(spikes[0]["chain"], "owner:prober");
    assert_eq!(spikes[0]["denial_reason"], "principal_denial_spike");
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains(r#"virtengine_data_vault_denial_spikes_total{kind="principal"} 1"#),
        "{metrics}"
    );
    assert_eq!(
        list(&prober).await.status(),
        200,
        "blocking is off by default"
    );
}

async fn a_spiking_principal_can_be_blocked_and_the_block_is_audited(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.denial_spike.threshold = 3;
        c.denial_spike.window_secs = 3600;
        c.denial_spike.block_principal = true;
        c.denial_spike.block_secs = 600;
    })
    .await;
    let prober = app.client(&app.create_client("prober").await);
    for _ in 0..3 {
        let response = prober.audit(&AuditQuery::default().org_id("acme")).await;
        assert_eq!(response.status(), 403);
    }
    let blocked = list(&prober).await;
    assert_eq!(blocked.status(), 429);
    let retry: u64 = blocked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 500 && retry <= 600, "{retry}");
    let other = app.client(&app.create_client("bystander").await);
    assert_eq!(list(&other).await.status(), 200);
    let vault = data_vault::startup::open_vault(&app.config).await.unwrap();
    let chain = data_vault::service::verify_chain(vault.store().as_ref(), "owner:prober")
        .await
        .unwrap();
    assert!(chain.valid);
    let events = vault
        .store()
        .audit_chain_page("owner:prober", 0, 100)
        .await
        .unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        kinds,
        vec![
            "audit.query",
            "audit.query",
            "audit.query",
            "security.denial_spike",
            "security.principal_blocked"
        ]
    );
    assert!(app
        .metrics_text()
        .await
        .contains("virtengine_data_vault_principals_blocked 1"));
}

async fn the_metrics_endpoint_passes_promtool(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.client(&app.create_client("svc").await);
    assert_eq!(list(&client).await.status(), 200);
    let text = app.metrics_text().await;
    for name in [
        "virtengine_data_vault_access_total",
        "virtengine_data_vault_audit_failures_total",
        "virtengine_data_vault_http_request_duration_seconds_bucket",
        "virtengine_data_vault_redis_fallback",
    ] {
        assert!(text.contains(name), "{name} missing");
    }
    let promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match promtool {
        Ok(child) => child,
        Err(_) => {
            tool_missing("promtool metrics format check", "promtool is not installed");
            return;
        }
    };
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn a_scope_can_have_a_tighter_limit_of_its_own(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.rate_limit.scopes.insert(
            "veid".into(),
            data_vault::config::ScopeRate {
                per_second: 0.1,
                burst: 3,
            },
        );
    })
    .await;
    let client = app.client(&app.create_client("svc").await);
    let veid = client.create_blob("veid", None).await;
    let market = client.create_blob("market", None).await;
    let none = ReadQuery::default();
    // The upload took one of the three; two reads fit, the third does not.
    assert_eq!(client.get_blob(&veid, &none).await.status(), 200);
    assert_eq!(client.get_blob(&veid, &none).await.status(), 200);
    let refused = client.get_blob(&veid, &none).await;
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(error_of(refused).await, (429, "rate_limited".to_owned()));
    assert_eq!(
        client.get_blob(&market, &none).await.status(),
        200,
        "other scopes keep the general limit"
    );
    assert!(app
        .metrics_text()
        .await
        .contains(r#"virtengine_data_vault_rate_limited_total{limit="scope"} 1"#));
}

on_both_backends!(
    a_scope_can_have_a_tighter_limit_of_its_own,
    a_principal_over_its_limit_is_refused_while_others_are_not,
    the_ip_limit_applies_before_authentication,
    replicas_sharing_redis_enforce_one_limit,
    a_burst_of_denials_raises_exactly_one_spike_per_window,
    a_spiking_principal_can_be_blocked_and_the_block_is_audited,
    the_metrics_endpoint_passes_promtool,
);

/// promtool, required under CI and skipped loudly elsewhere.
fn promtool() -> Option<std::process::Command> {
    tool_runs("alert rule tests", "promtool", &["--version"])
        .then(|| std::process::Command::new("promtool"))
}

#[test]
fn alert_rules_are_valid_and_pass_their_unit_tests() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus");
    let Some(mut check) = promtool() else { return };
    // Errors go to stderr: `ok` shows both streams.
    crate::cli::ok(
        check
            .args(["check", "rules", "alerts.yml"])
            .current_dir(dir)
            .output()
            .unwrap(),
    );
    crate::cli::ok(
        std::process::Command::new("promtool")
            .args(["test", "rules", "alerts_test.yml"])
            .current_dir(dir)
            .output()
            .unwrap(),
    );
}

#[test]
fn alert_rules_and_dashboard_use_only_metrics_the_vault_exports() {
    let metrics =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/metrics.rs")).unwrap();
    for file in [
        "deploy/prometheus/alerts.yml",
        "deploy/grafana/data-vault.json",
    ] {
        let text =
            std::fs::read_to_string(format!("{}/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("virtengine_data_vault_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let base = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(&name);
            assert!(
                metrics.contains(&format!("\"{base}\"")),
                "{file} uses {name}, which the vault does not export"
            );
            rest = &rest[at + name.len()..];
        }
    }
}
