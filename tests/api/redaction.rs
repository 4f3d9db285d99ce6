//! What a denied caller may learn (DESIGN §4 rule 5): its own record of a refused request says
//! nothing of the blob's owner, org, scope or chain, while the full event lands in the
//! target's chain for its auditors; and a denial naming an org that does not exist opens no
//! chain for it.

use crate::helpers::*;
use crate::on_both_backends;
use data_vault::cli::{Body, VaultClient};
use reqwest::Method;
use serde_json::{json, Value};

async fn audit_events(client: &VaultClient, query: &[(&str, &str)]) -> Vec<Value> {
    let response = client
        .send(Method::GET, "/api/v1/vault/audit", query, None, None)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["events"].as_array().unwrap().clone()
}

async fn a_denied_caller_learns_nothing_of_the_blob_it_was_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.client(&app.create_client("owner").await);
    let admin = app.client(&app.create_client("boss").await);
    let stranger = app.client(&app.create_client("stranger").await);
    app.create_org("acme", &[("owner", ""), ("boss", "administrator")])
        .await;
    let id = upload(&owner, "support", Some("acme")).await;
    let path = format!("/api/v1/vault/blobs/{id}");
    let response = stranger
        .send(Method::GET, &path, &[("reason", "curious")], None, None)
        .await
        .unwrap();
    assert_eq!(error_of(response).await, (403, "forbidden".to_owned()));

    // The stranger's own view: its request, on its own chain, and nothing of the target.
    for query in [&[][..], &[("blob_id", id.as_str())][..]] {
        let seen = audit_events(&stranger, query).await;
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
    let own = stranger
        .send(Method::GET, "/api/v1/vault/audit/verify", &[], None, None)
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        (own["chain"].as_str(), own["valid"].as_bool()),
        (Some("owner:stranger"), Some(true))
    );

    // The org's auditors see the whole event on the org's chain.
    let full = audit_events(&admin, &[("org_id", "acme"), ("blob_id", &id)]).await;
    let denial = full
        .iter()
        .find(|e| e["outcome"] == "denied")
        .expect("the denial is in the org's chain");
    assert_eq!(denial["chain"], "org:acme");
    assert_eq!(denial["requester"], "stranger");
    assert_eq!(denial["owner"], "owner");
    assert_eq!(denial["scope"], "support");
    // And the owner sees the attempt on their blob.
    let mine = audit_events(&owner, &[("blob_id", &id)]).await;
    assert!(mine
        .iter()
        .any(|e| e["requester"] == "stranger" && e["chain"] == "org:acme"));
}

async fn json_put(client: &VaultClient, path: &str, body: Value) -> reqwest::Response {
    let bytes = serde_json::to_vec(&body).unwrap();
    client
        .send(
            Method::PUT,
            path,
            &[],
            Some(Body {
                bytes: &bytes,
                content_type: "application/json",
            }),
            None,
        )
        .await
        .unwrap()
}

async fn a_denied_request_naming_a_missing_org_opens_no_chain(backend: Backend) {
    // A low spike threshold, so an org spike would fire if the made-up org were counted.
    let app = TestApp::spawn_with(backend, |c| c.denial_spike.threshold = 2).await;
    let stranger = app.client(&app.create_client("stranger").await);
    let send =
        |method: Method, path: &'static str, query: &'static [(&'static str, &'static str)]| {
            stranger.send(method, path, query, None, None)
        };
    let refused = [
        json_put(
            &stranger,
            "/api/v1/vault/orgs/ghost/members/someone",
            json!({"roles": ["administrator"]}),
        )
        .await,
        send(Method::GET, "/api/v1/vault/orgs/ghost/members", &[])
            .await
            .unwrap(),
        send(
            Method::DELETE,
            "/api/v1/vault/orgs/ghost/members/someone",
            &[],
        )
        .await
        .unwrap(),
        send(Method::GET, "/api/v1/vault/audit", &[("org_id", "ghost")])
            .await
            .unwrap(),
        send(
            Method::GET,
            "/api/v1/vault/audit/verify",
            &[("org_id", "ghost")],
        )
        .await
        .unwrap(),
        put_raw(
            &stranger,
            &age_envelope_of_size(600),
            &[("scope", "support"), ("org_id", "ghost")],
        )
        .await,
    ];
    for response in refused {
        assert_eq!(error_of(response).await.0, 403);
    }
    let listed = send(Method::GET, "/api/v1/vault/blobs", &[("org_id", "ghost")])
        .await
        .unwrap();
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
    let own = audit_events(&stranger, &[("limit", "500")]).await;
    assert!(own.iter().filter(|e| e["outcome"] == "denied").count() >= 6);
}

on_both_backends!(
    a_denied_caller_learns_nothing_of_the_blob_it_was_refused,
    a_denied_request_naming_a_missing_org_opens_no_chain,
);
