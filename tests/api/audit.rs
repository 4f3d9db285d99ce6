//! The audit chain: append-only, tamper-evident, fail-closed, and free of forks when many
//! processes append at once.

use crate::helpers::*;
use crate::on_both_backends;
use serde_json::Value;
use std::process::Command;

/// `data-vault audit verify --org acme`, offline on the database.
fn cli_verify(app: &TestApp) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_data-vault"))
        .args(["audit", "verify", "--org", "acme"])
        .env(
            "DATA_VAULT_STORAGE__DATABASE_URL",
            &app.config.storage.database_url,
        )
        .env(
            "DATA_VAULT_KEYS__MASTER_KEY_FILE",
            &app.config.keys.master_key_file,
        )
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// An org whose chain holds seven events (a membership, an upload and five reads), seen by
/// its administrator.
async fn org_with_history(backend: Backend) -> (TestApp, Api) {
    let app = TestApp::spawn(backend).await;
    let admin = app.client(&app.create_client("admin").await);
    app.create_org("acme", &[("admin", "administrator")]).await;
    let id = admin.create_blob("market", Some("acme")).await;
    for _ in 0..5 {
        let read = admin.get_blob(&id, &ReadQuery::default()).await;
        assert_eq!(read.status(), 200);
    }
    let result = admin.audit_verify_json(Some("acme")).await;
    // The administrator's membership, the upload, and five reads.
    assert_eq!(
        (result["valid"].as_bool(), result["length"].as_i64()),
        (Some(true), Some(7))
    );
    let (ok, text) = cli_verify(&app);
    assert!(ok, "{text}");
    (app, admin)
}

async fn expect_broken_at(app: &TestApp, admin: &Api, seq: i64) {
    let result = admin.audit_verify_json(Some("acme")).await;
    assert_eq!(result["valid"], false, "{result}");
    assert_eq!(result["first_invalid_seq"], seq, "{result}");
    let (ok, text) = cli_verify(app);
    assert!(!ok, "the CLI must exit non-zero on a broken chain: {text}");
    assert!(text.contains(&format!("INVALID from seq {seq}")), "{text}");
}

async fn audit_rows_refuse_update_and_delete(backend: Backend) {
    let (app, _) = org_with_history(backend).await;
    let update = app
        .try_sql("UPDATE audit_events SET reason = 'x' WHERE seq = 2")
        .await;
    assert!(update.unwrap_err().contains("append-only"));
    let delete = app.try_sql("DELETE FROM audit_events WHERE seq = 2").await;
    assert!(delete.unwrap_err().contains("append-only"));
    if backend == Backend::Postgres {
        assert!(app
            .try_sql("TRUNCATE audit_events")
            .await
            .unwrap_err()
            .contains("append-only"));
    }
}

/// Tampers with the history of `org_with_history` (as someone with database access who
/// disabled the triggers) and expects verification to name `seq` as the first bad event.
async fn tampering_is_detected_at(backend: Backend, statements: &[&str], seq: i64) {
    let (app, admin) = org_with_history(backend).await;
    app.disable_audit_triggers().await;
    for statement in statements {
        app.sql(statement).await;
    }
    expect_broken_at(&app, &admin, seq).await;
}

async fn an_edited_audit_row_is_detected(backend: Backend) {
    let edit = "UPDATE audit_events SET requester = 'someone-else' \
                WHERE chain = 'org:acme' AND seq = 3";
    tampering_is_detected_at(backend, &[edit], 3).await;
}

async fn a_deleted_audit_row_is_detected(backend: Backend) {
    let delete = "DELETE FROM audit_events WHERE chain = 'org:acme' AND seq = 4";
    tampering_is_detected_at(backend, &[delete], 4).await;
}

async fn reordered_audit_rows_are_detected(backend: Backend) {
    let swap = [
        "UPDATE audit_events SET seq = -2 WHERE chain = 'org:acme' AND seq = 2",
        "UPDATE audit_events SET seq = 2 WHERE chain = 'org:acme' AND seq = 3",
        "UPDATE audit_events SET seq = 3 WHERE chain = 'org:acme' AND seq = -2",
    ];
    tampering_is_detected_at(backend, &swap, 2).await;
}

async fn a_truncated_chain_tail_is_detected(backend: Backend) {
    let truncate = "DELETE FROM audit_events WHERE chain = 'org:acme' AND seq = 7";
    tampering_is_detected_at(backend, &[truncate], 7).await;
}

async fn a_broken_audit_store_fails_reads_closed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.client(&app.create_client("svc").await);
    let id = client.create_blob("veid", None).await;
    app.break_audit_store().await;

    let response = client.get_blob_raw(&id, &ReadQuery::default()).await;
    let text = response.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).expect("an error body, not the envelope");
    assert_eq!(body["code"], "audit_unavailable");
    assert!(
        !text.contains("simulated"),
        "no internal detail in the body: {text}"
    );
    assert!(!text.contains("data_base64"));

    let response = client
        .upload_raw(&age_envelope_of_size(600), &UploadQuery::in_scope("veid"))
        .await;
    let (status, code) = error_of(response).await;
    assert_eq!((status, code.as_str()), (503, "audit_unavailable"));
    assert_eq!(
        app.count_rows("blobs").await,
        1,
        "a write whose event fails is rolled back"
    );

    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("virtengine_data_vault_audit_failures_total 2"),
        "{metrics}"
    );
}

async fn concurrent_reads_across_two_processes_chain_without_forks(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let creds = app.create_client("reader").await;
    app.create_org("acme", &[("reader", "administrator")]).await;
    let id = app.client(&creds).create_blob("market", Some("acme")).await;
    let before = app.client(&creds).audit_verify_json(Some("acme")).await["length"]
        .as_i64()
        .unwrap();

    let servers = [ServerProcess::start(&app), ServerProcess::start(&app)];
    read_concurrently(&servers, &creds, &id, 200).await;
    let after = app.client(&creds).audit_verify_json(Some("acme")).await;
    assert_eq!(after["valid"], true, "{after}");
    assert_eq!(
        after["length"].as_i64().unwrap(),
        before + 200,
        "exactly one event per read"
    );
    for server in servers {
        assert!(server.terminate(), "SIGTERM exits cleanly");
    }
}

async fn audit_queries_follow_the_visibility_rules(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.client(&app.create_client("owner").await);
    let agent = app.client(&app.create_client("agent").await);
    let moderator = app.client(&app.create_client("moderator").await);
    let stranger = app.client(&app.create_client("stranger").await);
    app.create_org(
        "acme",
        &[
            ("owner", ""),
            ("agent", "support_agent"),
            ("moderator", "moderator"),
        ],
    )
    .await;
    let id = owner.create_blob("support", Some("acme")).await;
    agent
        .get_blob(&id, &ReadQuery::default().reason("ticket 7"))
        .await;
    stranger
        .get_blob(&id, &ReadQuery::default().reason("curious"))
        .await;

    let events = |v: Value| v["events"].as_array().unwrap().clone();
    // The owner sees everything about their blob: create, the agent's read, the denial.
    let mine = events(
        owner
            .audit(&AuditQuery::default().blob_id(&id))
            .await
            .json()
            .await
            .unwrap(),
    );
    assert_eq!(mine.len(), 3);
    assert_eq!(mine[0]["requester"], "stranger");
    assert_eq!(mine[0]["outcome"], "denied");
    assert_eq!(mine[1]["reason"], "ticket 7");

    // The agent sees its own read (as requester), not the stranger's.
    let theirs = events(
        agent
            .audit(&AuditQuery::default())
            .await
            .json()
            .await
            .unwrap(),
    );
    assert!(
        theirs
            .iter()
            .all(|e| e["requester"] == "agent" || e["owner"] == "agent"),
        "{theirs:?}"
    );
    assert!(!theirs.iter().any(|e| e["requester"] == "stranger"));

    // Org-wide: a moderator may, a support agent may not (and that denial is audited).
    let acme = AuditQuery::default().org_id("acme");
    let response = moderator.audit(&acme).await;
    assert_eq!(response.status(), 200);
    let (status, code) = error_of(agent.audit(&acme).await).await;
    assert_eq!((status, code.as_str()), (403, "forbidden"));
    let agents = events(
        agent
            .audit(&AuditQuery::default().limit("1"))
            .await
            .json()
            .await
            .unwrap(),
    );
    assert_eq!(agents[0]["event_type"], "audit.query");
    assert_eq!(agents[0]["denial_reason"], "auditor_required");
    let (status, _) = error_of(stranger.audit(&acme).await).await;
    assert_eq!(status, 403);

    // Filters and paging.
    let by_requester = events(
        moderator
            .audit(&acme.clone().requester("agent"))
            .await
            .json()
            .await
            .unwrap(),
    );
    assert!(!by_requester.is_empty() && by_requester.iter().all(|e| e["requester"] == "agent"));
    let future = (data_vault::time::now_secs() + 3600).to_string();
    let none = events(
        owner
            .audit(&AuditQuery::default().start(&future))
            .await
            .json()
            .await
            .unwrap(),
    );
    assert!(none.is_empty());
    let all = events(
        owner
            .audit(&AuditQuery::default())
            .await
            .json()
            .await
            .unwrap(),
    );
    assert!(all.len() >= 4);
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = AuditQuery::default().limit("2");
        if let Some(c) = &cursor {
            q = q.cursor(c);
        }
        let page: Value = owner.audit(&q).await.json().await.unwrap();
        assert!(page["events"].as_array().unwrap().len() <= 2);
        paged.extend(events(page.clone()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        paged, all,
        "paging returns every event once, in the same order"
    );
    for bad in [
        AuditQuery::default().limit("0"),
        AuditQuery::default().start("soon"),
        AuditQuery::default().blob_id("nope"),
        AuditQuery::default().param("chain", "system"),
    ] {
        let (status, code) = error_of(owner.audit(&bad).await).await;
        assert_eq!((status, code.as_str()), (400, "bad_request"), "{bad:?}");
    }

    // Everyone may verify their own chain.
    let own = owner.audit_verify_json(None).await;
    assert_eq!(own["chain"], "owner:owner");
    assert_eq!(own["valid"], true);
}

async fn org_admin_api_manages_members_and_audits_it(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.auth.platform_admins = vec!["root-ops".into()]
    })
    .await;
    let platform = app.client(&app.create_client("root-ops").await);
    let admin = app.client(&app.create_client("admin").await);
    let agent = app.client(&app.create_client("agent").await);
    let (status, code) = error_of(admin.put_org("acme").await).await;
    assert_eq!(
        (status, code.as_str()),
        (403, "forbidden"),
        "only platform admins create orgs"
    );
    assert_eq!(platform.put_org("acme").await.status(), 201);
    assert_eq!(platform.put_org("acme").await.status(), 200);
    assert_eq!(
        platform
            .put_member("acme", "admin", &["administrator"])
            .await
            .status(),
        200
    );
    assert_eq!(
        admin
            .put_member("acme", "agent", &["support_agent"])
            .await
            .status(),
        200
    );
    let (status, _) = error_of(agent.put_member("acme", "agent", &["administrator"]).await).await;
    assert_eq!(status, 403, "members cannot promote themselves");
    let (status, code) = error_of(admin.put_member("acme", "agent", &["root"]).await).await;
    assert_eq!((status, code.as_str()), (400, "bad_request"));
    let (status, code) = error_of(platform.put_member("nowhere", "agent", &[]).await).await;
    assert_eq!((status, code.as_str()), (404, "not_found"));

    let members: Value = admin.list_members("acme").await.json().await.unwrap();
    let names: Vec<&str> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["principal"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["admin", "agent"]);
    let response = admin.delete_member("acme", "agent").await;
    assert_eq!(response.status(), 204);
    let response = admin.delete_member("acme", "agent").await;
    assert_eq!(error_of(response).await.0, 404);

    let trail: Value = admin
        .audit(&AuditQuery::default().org_id("acme"))
        .await
        .json()
        .await
        .unwrap();
    let kinds: Vec<String> = trail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["event_type"].as_str().unwrap(),
                e["outcome"].as_str().unwrap()
            )
        })
        .collect();
    for expected in [
        "org.member_set:granted",
        "org.member_set:denied",
        "org.member_remove:granted",
        "org.member_list:granted",
    ] {
        assert!(
            kinds.iter().any(|k| k == expected),
            "{expected} in {kinds:?}"
        );
    }
    let result = admin.audit_verify_json(Some("acme")).await;
    assert_eq!(result["valid"], true);
}

/// Runs the independent verifier (`tools/verify-audit-export.py`) on an export.
fn python_verify(export: &str) -> Option<(bool, String)> {
    use std::io::Write;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/verify-audit-export.py");
    let child = Command::new("python3")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(_) => {
            tool_missing("independent audit verification", "python3 is not installed");
            return None;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(export.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    Some((
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    ))
}

async fn an_exported_chain_verifies_with_an_independent_implementation(backend: Backend) {
    let (_app, admin) = org_with_history(backend).await;
    let mut export = String::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = AuditQuery::default().org_id("acme").limit("3");
        if let Some(c) = &cursor {
            q = q.cursor(c);
        }
        let page: Value = admin.audit(&q).await.json().await.unwrap();
        export.push_str(&page.to_string());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let Some((ok, out)) = python_verify(&export) else {
        return;
    };
    assert!(ok, "{out}");
    assert!(out.contains("org:acme: valid"), "{out}");
    let tampered = export.replacen("\"outcome\":\"granted\"", "\"outcome\":\"denied\"", 1);
    let (ok, out) = python_verify(&tampered).unwrap();
    assert!(!ok, "{out}");
    assert!(out.contains("INVALID"), "{out}");
}

async fn recorded_heads_catch_a_truncation_that_fixed_up_the_head(backend: Backend) {
    let (app, admin) = org_with_history(backend).await;
    let heads = app.dir.path().join("heads.jsonl");
    let output = Command::new(env!("CARGO_BIN_EXE_data-vault"))
        .args(["audit", "verify", "--json"])
        .env(
            "DATA_VAULT_STORAGE__DATABASE_URL",
            &app.config.storage.database_url,
        )
        .output()
        .unwrap();
    assert!(output.status.success());
    std::fs::write(&heads, &output.stdout).unwrap();

    // A forger drops the last two events and rewinds the recorded head to match.
    app.disable_audit_triggers().await;
    app.sql("DELETE FROM audit_events WHERE chain = 'org:acme' AND seq > 5")
        .await;
    app.sql(
        "UPDATE audit_heads SET seq = 5, hash = (SELECT hash FROM audit_events \
         WHERE chain = 'org:acme' AND seq = 5) WHERE chain = 'org:acme'",
    )
    .await;
    // The hash chain alone cannot tell; the chain's Merkle tree, whose frontier beside the
    // head still covers the removed tail, does: from event 5 on (which shares its smallest
    // subtree with the removed 6) the events are not those the tree was built of.
    let result = admin.audit_verify_json(Some("acme")).await;
    assert_eq!(result["valid"], false, "{result}");
    assert_eq!(result["first_invalid_seq"], 5, "{result}");

    let output = Command::new(env!("CARGO_BIN_EXE_data-vault"))
        .args(["audit", "verify", "--org", "acme", "--expect-heads"])
        .arg(&heads)
        .env(
            "DATA_VAULT_STORAGE__DATABASE_URL",
            &app.config.storage.database_url,
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    assert!(
        stdout.contains("org:acme: RECORDED HEAD AT SEQ 7 NO LONGER MATCHES"),
        "{stdout}"
    );
}

on_both_backends!(
    recorded_heads_catch_a_truncation_that_fixed_up_the_head,
    an_exported_chain_verifies_with_an_independent_implementation,
    audit_rows_refuse_update_and_delete,
    an_edited_audit_row_is_detected,
    a_deleted_audit_row_is_detected,
    reordered_audit_rows_are_detected,
    a_truncated_chain_tail_is_detected,
    a_broken_audit_store_fails_reads_closed,
    concurrent_reads_across_two_processes_chain_without_forks,
    audit_queries_follow_the_visibility_rules,
    org_admin_api_manages_members_and_audits_it,
);
