//! The seed access matrix of DESIGN §4 end to end over HTTP, with the audit event each
//! decision leaves behind.

use crate::helpers::*;
use crate::on_both_backends;
use serde_json::Value;

struct World {
    app: TestApp,
    owner: Api,
    admin: Api,
    agent: Api,
    provider: Api,
    member: Api,
    moderator: Api,
    outsider_admin: Api,
}

async fn world(backend: Backend) -> World {
    let app = TestApp::spawn(backend).await;
    let mut clients = Vec::new();
    for name in [
        "owner",
        "admin",
        "agent",
        "provider",
        "member",
        "moderator",
        "outsider",
    ] {
        clients.push(app.client(&app.create_client(name).await));
    }
    app.create_org(
        "acme",
        &[
            ("owner", ""),
            ("admin", "administrator"),
            ("agent", "support_agent"),
            ("provider", "service_provider"),
            ("member", ""),
            ("moderator", "moderator"),
        ],
    )
    .await;
    app.create_org("globex", &[("outsider", "administrator")])
        .await;
    let mut it = clients.into_iter();
    let mut next = || it.next().unwrap();
    World {
        owner: next(),
        admin: next(),
        agent: next(),
        provider: next(),
        member: next(),
        moderator: next(),
        outsider_admin: next(),
        app,
    }
}

/// The events of a blob, as an org auditor sees them, oldest first.
async fn blob_events(w: &World, id: &str) -> Vec<Value> {
    let query = AuditQuery::default()
        .org_id("acme")
        .blob_id(id)
        .limit("500");
    let mut events = w.admin.audit_events(&query).await;
    events.reverse();
    events
}

/// Caller, blob, query, expected status, expected outcome, expected denial reason.
type Case<'a> = (
    &'a Api,
    &'a str,
    ReadQuery<'a>,
    u16,
    &'a str,
    Option<&'a str>,
);

async fn seed_matrix_holds_end_to_end(backend: Backend) {
    let w = world(backend).await;
    let support = w.owner.create_blob("support", Some("acme")).await;
    let market = w.owner.create_blob("market", Some("acme")).await;
    let audit = w.owner.create_blob("audit", Some("acme")).await;
    let personal = w.owner.create_blob("veid", None).await;
    let none = ReadQuery::default;
    let reason = || ReadQuery::default().reason("ticket 42");

    let cases: Vec<Case> = vec![
        (&w.owner, &support, none(), 200, "granted", None),
        (&w.owner, &personal, none(), 200, "granted", None),
        (&w.agent, &support, reason(), 200, "granted", None),
        (
            &w.agent,
            &support,
            none(),
            403,
            "denied",
            Some("reason_required"),
        ),
        (
            &w.agent,
            &support,
            ReadQuery::default().reason(" "),
            403,
            "denied",
            Some("reason_required"),
        ),
        (&w.admin, &support, reason(), 200, "granted", None),
        (
            &w.provider,
            &support,
            reason(),
            403,
            "denied",
            Some("role_not_allowed"),
        ),
        (
            &w.member,
            &support,
            reason(),
            403,
            "denied",
            Some("role_not_allowed"),
        ),
        (&w.provider, &market, none(), 200, "granted", None),
        (
            &w.agent,
            &market,
            reason(),
            403,
            "denied",
            Some("role_not_allowed"),
        ),
        (&w.moderator, &audit, reason(), 200, "granted", None),
        (
            &w.moderator,
            &audit,
            none(),
            403,
            "denied",
            Some("reason_required"),
        ),
        (
            &w.outsider_admin,
            &support,
            reason(),
            403,
            "denied",
            Some("not_member"),
        ),
        (
            &w.outsider_admin,
            &support,
            ReadQuery::default().reason("x").org_id("globex"),
            403,
            "denied",
            Some("org_mismatch"),
        ),
        (
            &w.agent,
            &support,
            ReadQuery::default().reason("x").org_id("globex"),
            403,
            "denied",
            Some("org_mismatch"),
        ),
        (
            &w.admin,
            &personal,
            reason(),
            403,
            "denied",
            Some("not_owner"),
        ),
    ];
    for (i, (client, blob, query, status, outcome, denial)) in cases.iter().enumerate() {
        assert_eq!(
            client.get_blob(blob, query).await.status(),
            *status,
            "case {i}"
        );
        if *blob == personal.as_str() {
            continue; // personal blobs are on the owner's chain, checked below
        }
        let events = blob_events(&w, blob).await;
        let last = events.last().unwrap();
        assert_eq!(last["event_type"], "blob.read", "case {i}");
        assert_eq!(last["outcome"], *outcome, "case {i}");
        assert_eq!(last["denial_reason"].as_str(), *denial, "case {i}");
        assert_eq!(last["chain"], "org:acme", "case {i}");
    }

    // Deletes: a support agent may not, the org administrator may.
    assert_eq!(w.agent.delete_blob(&support).await.status(), 403);
    let events = blob_events(&w, &support).await;
    assert_eq!(
        events.last().unwrap()["denial_reason"],
        "delete_requires_administrator"
    );
    assert_eq!(w.admin.delete_blob(&support).await.status(), 204);
    let events = blob_events(&w, &support).await;
    let last = events.last().unwrap();
    assert_eq!(
        (last["event_type"].as_str(), last["outcome"].as_str()),
        (Some("blob.delete"), Some("granted"))
    );
    assert_eq!(events.first().unwrap()["event_type"], "blob.create");

    // The owner sees their personal blob's events, including the administrator's denied read.
    let mine = w
        .owner
        .audit_events(&AuditQuery::default().blob_id(&personal))
        .await;
    let outcomes: Vec<&str> = mine
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        vec!["denied", "granted", "granted"],
        "newest first: admin denied, owner read, create"
    );

    // Denials are counted; not-founds are not.
    let metrics = w.app.metrics_text().await;
    assert!(
        metrics.contains(
            r#"virtengine_data_vault_access_denied_total{action="read",scope="support"} 7"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains(
        r#"virtengine_data_vault_access_denied_total{action="delete",scope="support"} 1"#
    ));
}

async fn creating_in_an_org_needs_membership(backend: Backend) {
    let w = world(backend).await;
    let envelope = age_envelope_of_size(300);
    let query = UploadQuery::in_scope("market").org_id("acme");
    let response = w.outsider_admin.upload_raw(&envelope, &query).await;
    let (status, code) = error_of(response).await;
    assert_eq!((status, code.as_str()), (403, "forbidden"));
    assert_eq!(w.app.count_rows("blobs").await, 0);
    let mine = w.outsider_admin.audit_json(&AuditQuery::default()).await;
    let event = &mine["events"][0];
    assert_eq!(
        (event["event_type"].as_str(), event["outcome"].as_str()),
        (Some("blob.create"), Some("denied"))
    );
    assert_eq!(event["org_id"], "acme");
}

async fn org_listing_shows_what_roles_allow(backend: Backend) {
    let w = world(backend).await;
    w.owner.create_blob("support", Some("acme")).await;
    w.owner.create_blob("market", Some("acme")).await;
    w.owner.create_blob("veid", None).await;
    let listed = |v: Value| v["blobs"].as_array().unwrap().len();
    let acme = ListQuery::default().org_id("acme");
    assert_eq!(
        listed(w.agent.list_blobs_json(&acme).await),
        1,
        "support only"
    );
    assert_eq!(
        listed(w.provider.list_blobs_json(&acme).await),
        1,
        "market only"
    );
    assert_eq!(listed(w.admin.list_blobs_json(&acme).await), 2);
    assert_eq!(listed(w.member.list_blobs_json(&acme).await), 0);
    assert_eq!(listed(w.outsider_admin.list_blobs_json(&acme).await), 0);
    assert_eq!(
        listed(w.owner.list_blobs_json(&ListQuery::default()).await),
        3
    );
}

async fn a_denied_read_never_reads_the_ciphertext(backend: Backend) {
    let w = world(backend).await;
    let id = w.owner.create_blob("support", Some("acme")).await;
    // With the ciphertext out of reach, any read of it fails: a caller who is refused must
    // still get its 403, decided on metadata alone.
    w.app
        .sql("ALTER TABLE blobs RENAME COLUMN ciphertext TO ciphertext_away")
        .await;
    let reason = ReadQuery::default().reason("x");
    assert_eq!(w.member.get_blob(&id, &reason).await.status(), 403);
    assert_eq!(w.outsider_admin.get_blob(&id, &reason).await.status(), 403);
    assert_eq!(
        w.owner.get_blob(&id, &ReadQuery::default()).await.status(),
        500,
        "a permitted read does need the ciphertext"
    );
    w.app
        .sql("ALTER TABLE blobs RENAME COLUMN ciphertext_away TO ciphertext")
        .await;
    assert_eq!(
        w.owner.get_blob(&id, &ReadQuery::default()).await.status(),
        200
    );
}

on_both_backends!(
    a_denied_read_never_reads_the_ciphertext,
    seed_matrix_holds_end_to_end,
    creating_in_an_org_needs_membership,
    org_listing_shows_what_roles_allow,
);
