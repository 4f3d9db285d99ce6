//! What a denied caller may learn (DESIGN §4 rule 5): its own record of a refused request says
//! nothing of the blob's owner, org, scope or chain, while the full event lands in the
//! target's chain for its auditors; and a denial naming an org that does not exist opens no
//! chain for it.

use crate::helpers::*;
use crate::on_both_backends;
use serde_json::Value;

async fn a_denied_caller_learns_nothing_of_the_blob_it_was_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.client(&app.create_client("owner").await);
    let admin = app.client(&app.create_client("boss").await);
    let stranger = app.client(&app.create_client("stranger").await);
    app.create_org("acme", &[("owner", ""), ("boss", "administrator")])
        .await;
    let id = owner.create_blob("support", Some("acme")).await;
    let response = stranger
        .get_blob(&id, &ReadQuery::default().reason("curious"))
        .await;
    assert_eq!(error_of(response).await, (403, "forbidden".to_owned()));

    // The stranger's own view: its request, on its own chain, and nothing of the target.
    for query in [AuditQuery::default(), AuditQuery::default().blob_id(&id)] {
        let seen = stranger.audit_events(&query).await;
        let about: Vec<&Value> = seen.iter().filter(|e| e["blob_id"] == id).collect();
        assert_eq!(about.len(), 1, "{seen:?}");
        let event = about[0];
        assert_eq!(event["chain"], "owner:stranger");
        assert_eq!(event["event_type"], "blob.read");
        assert_eq!(event["outcome"], "denied");
        assert_eq!(event["requester"], "stranger");
        assert_eq!(event["reason"], "curious");
        assert!(event["denial_reason"].is_string());
        for hidden in ["owner", "org_id", "scope"] {
            assert!(event[hidden].is_null(), "{hidden} leaked: {event}");
        }
        assert!(
            seen.iter().all(|e| e["chain"] != "org:acme"
                && e["owner"] != "owner"
                && e["org_id"] != "acme"
                && e["scope"] != "support"),
            "{seen:?}"
        );
    }
    let own = stranger.audit_verify_json(None).await;
    assert_eq!(
        (own["chain"].as_str(), own["valid"].as_bool()),
        (Some("owner:stranger"), Some(true))
    );

    // The org's auditors see the whole event on the org's chain.
    let full = admin
        .audit_events(&AuditQuery::default().org_id("acme").blob_id(&id))
        .await;
    let denial = full
        .iter()
        .find(|e| e["outcome"] == "denied")
        .expect("the denial is in the org's chain");
    assert_eq!(denial["chain"], "org:acme");
    assert_eq!(denial["requester"], "stranger");
    assert_eq!(denial["owner"], "owner");
    assert_eq!(denial["scope"], "support");
    // And the owner sees the attempt on their blob.
    let mine = owner
        .audit_events(&AuditQuery::default().blob_id(&id))
        .await;
    assert!(mine
        .iter()
        .any(|e| e["requester"] == "stranger" && e["chain"] == "org:acme"));
}

async fn a_denied_request_naming_a_missing_org_opens_no_chain(backend: Backend) {
    // A low spike threshold, so an org spike would fire if the made-up org were counted.
    let app = TestApp::spawn_with(backend, |c| c.denial_spike.threshold = 2).await;
    let stranger = app.client(&app.create_client("stranger").await);
    let refused = [
        stranger
            .put_member("ghost", "someone", &["administrator"])
            .await,
        stranger.list_members("ghost").await,
        stranger.delete_member("ghost", "someone").await,
        stranger.audit(&AuditQuery::default().org_id("ghost")).await,
        stranger.audit_verify(Some("ghost")).await,
        stranger
            .upload_raw(
                &age_envelope_of_size(600),
                &UploadQuery::in_scope("support").org_id("ghost"),
            )
            .await,
    ];
    for response in refused {
        assert_eq!(error_of(response).await.0, 403);
    }
    let listed = stranger
        .list_blobs(&ListQuery::default().org_id("ghost"))
        .await;
    assert_eq!(listed.status(), 200);

    for table in ["audit_heads", "audit_events"] {
        let rows = app
            .count_rows(&format!("{table} WHERE chain = 'org:ghost'"))
            .await;
        assert_eq!(
            rows, 0,
            "{table} has a chain for an org that does not exist"
        );
    }
    // The attempts are on record, on the stranger's own chain.
    let own = stranger
        .audit_events(&AuditQuery::default().limit("500"))
        .await;
    assert!(own.iter().filter(|e| e["outcome"] == "denied").count() >= 6);
}

on_both_backends!(
    a_denied_caller_learns_nothing_of_the_blob_it_was_refused,
    a_denied_request_naming_a_missing_org_opens_no_chain,
);
