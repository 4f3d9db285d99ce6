//! The recipient directory over HTTP (DESIGN §19): publishing age recipients, looking them
//! up, and listing an org's readers per scope exactly as the access decision names them.

use crate::helpers::*;
use crate::on_both_backends;
use data_vault_scopes::{Role, RoleSet, ScopeTable};
use serde_json::Value;
use std::collections::BTreeSet;

fn recipient() -> String {
    age_identity().1.to_string()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

async fn published_recipients_are_public_to_callers_and_audited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let agent = app.client(&app.create_client("agent").await);
    let customer = app.client(&app.create_client("customer").await);

    // Nothing published yet: an empty list, the same as for a name nobody holds.
    for principal in ["agent", "nobody-at-all"] {
        let none = customer.recipients_json(principal).await;
        assert_eq!(none["principal"], principal);
        assert_eq!(none["recipients"], serde_json::json!([]));
        assert_eq!(none["updated_at"], Value::Null);
    }

    let (first, second) = (recipient(), recipient());
    let published = agent
        .publish_recipients(&[&first, &second.to_uppercase()])
        .await;
    assert_eq!(
        strings(&published["recipients"]),
        vec![first.clone(), second.clone()]
    );
    assert!(published["updated_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    let seen = customer.recipients_json("agent").await;
    assert_eq!(seen, published, "any caller sees what was published");
    assert_eq!(agent.recipients_json("me").await, published);

    // Publishing replaces the list.
    let third = recipient();
    agent.publish_recipients(&[&third]).await;
    assert_eq!(
        strings(&customer.recipients_json("agent").await["recipients"]),
        vec![third.clone()]
    );

    // Each change is on the principal's own chain, with the keys it published.
    let events = agent.audit_events(&AuditQuery::default()).await;
    let sets: Vec<&Value> = events
        .iter()
        .filter(|e| e["event_type"] == "recipients.set")
        .collect();
    assert_eq!(sets.len(), 2, "{events:?}");
    assert!(sets
        .iter()
        .all(|e| e["chain"] == "owner:agent" && e["outcome"] == "granted"));
    assert_eq!(sets[0]["reason"], third.as_str());
    assert_eq!(agent.audit_verify_json(None).await["valid"], true);
}

async fn bad_recipients_are_refused_naming_which_and_change_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let agent = app.client(&app.create_client("agent").await);
    let kept = recipient();
    agent.publish_recipients(&[&kept]).await;

    let good = recipient();
    let mut broken = good.clone();
    broken.pop();
    broken.push(if good.ends_with('q') { 'p' } else { 'q' });
    let nine: Vec<String> = (0..9).map(|_| recipient()).collect();
    let nine: Vec<&str> = nine.iter().map(String::as_str).collect();
    let pq = format!("age1pq1{}", "q".repeat(100));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec![good.as_str(), broken.as_str()], "recipient 2"),
        (vec!["ssh-ed25519 AAAAC3Nza"], "recipient 1 (ssh-ed25519"),
        (vec![good.as_str(), good.as_str()], "recipient 2"),
        (vec![good.as_str(), pq.as_str()], "post-quantum"),
        (nine, "1 to 8"),
        (vec![], "1 to 8"),
    ];
    for (list, needle) in cases {
        let response = agent.put_recipients(&list).await;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("bad_request")),
            "{list:?}"
        );
        assert!(
            body["error"].as_str().unwrap().contains(needle),
            "{list:?}: {body}"
        );
    }
    assert_eq!(
        strings(&agent.recipients_json("me").await["recipients"]),
        vec![kept],
        "a refused list leaves the published one as it was"
    );
    let sets = agent
        .audit_events(&AuditQuery::default())
        .await
        .into_iter()
        .filter(|e| e["event_type"] == "recipients.set")
        .count();
    assert_eq!(sets, 1, "refusals record no change");
}

/// The 16 role mixes as members `m0`..`m15` (bits in `Role::ALL` order), of org `acme`.
fn role_mix_members() -> Vec<(String, RoleSet)> {
    (0u8..16)
        .map(|bits| {
            let roles: RoleSet = Role::ALL
                .into_iter()
                .enumerate()
                .filter(|(i, _)| bits & (1 << i) != 0)
                .map(|(_, r)| r)
                .collect();
            (format!("m{bits:02}"), roles)
        })
        .collect()
}

async fn readers_per_scope_equal_the_scope_table_for_every_role_mix(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let members = role_mix_members();
    let lists: Vec<String> = members.iter().map(|(_, r)| r.to_list()).collect();
    let mut org: Vec<(&str, &str)> = members
        .iter()
        .zip(&lists)
        .map(|((name, _), list)| (name.as_str(), list.as_str()))
        .collect();
    org.push(("customer", ""));
    app.create_org("acme", &org).await;
    let customer = app.client(&app.create_client("customer").await);
    // Half of the members publish a recipient; the others are `missing` when they read.
    let mut keys = std::collections::BTreeMap::new();
    for (name, _) in members
        .iter()
        .filter(|(n, _)| n.ends_with(['0', '2', '4', '6', '8']))
    {
        let member = app.client(&app.create_client(name).await);
        let key = recipient();
        member.publish_recipients(&[&key]).await;
        keys.insert(name.clone(), key);
    }

    let table = ScopeTable::default_table().unwrap();
    for scope in table.scopes() {
        let rule = table.rule(scope).unwrap();
        let expected: BTreeSet<&str> = members
            .iter()
            .filter(|(_, roles)| roles.intersects(rule.read_roles))
            .map(|(name, _)| name.as_str())
            .collect();
        let listing = customer.org_readers_json("acme", scope).await;
        assert_eq!(
            (listing["org"].as_str(), listing["scope"].as_str()),
            (Some("acme"), Some(scope))
        );
        let readers = listing["readers"].as_array().unwrap();
        let named: BTreeSet<&str> = readers
            .iter()
            .map(|r| r["principal"].as_str().unwrap())
            .collect();
        assert_eq!(named, expected, "readers of {scope}");
        for reader in readers {
            let name = reader["principal"].as_str().unwrap();
            let (_, roles) = members.iter().find(|(n, _)| n == name).unwrap();
            let shown: Vec<&str> = roles.iter().map(Role::as_str).collect();
            assert_eq!(reader["roles"], serde_json::json!(shown), "{name}");
            let published: Vec<String> = keys.get(name).cloned().into_iter().collect();
            assert_eq!(strings(&reader["recipients"]), published, "{name}");
        }
        let missing: BTreeSet<String> = strings(&listing["missing"]).into_iter().collect();
        let expected_missing: BTreeSet<String> = expected
            .iter()
            .filter(|n| !keys.contains_key(**n))
            .map(|n| (*n).to_owned())
            .collect();
        assert_eq!(missing, expected_missing, "missing in {scope}");
        assert!(
            !expected.is_empty() && !expected_missing.is_empty(),
            "the test covers both"
        );
    }

    // Each listing is recorded on the org's chain.
    let admin = app.client(&app.create_client("m01").await);
    let listed = admin
        .audit_events(&AuditQuery::default().org_id("acme"))
        .await
        .into_iter()
        .filter(|e| e["event_type"] == "org.recipients_list" && e["requester"] == "customer")
        .count();
    assert_eq!(listed, table.scopes().count());
}

async fn readers_are_for_members_and_known_scopes_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_org(
        "acme",
        &[("agent", "support_agent"), ("boss", "administrator")],
    )
    .await;
    app.create_org("globex", &[("outsider", "administrator")])
        .await;
    let agent = app.client(&app.create_client("agent").await);
    let boss = app.client(&app.create_client("boss").await);
    let outsider = app.client(&app.create_client("outsider").await);

    let (status, code) = error_of(outsider.org_readers("acme", Some("support")).await).await;
    assert_eq!((status, code.as_str()), (403, "forbidden"));
    // The denial went through the one access path: counted, and on the org's chain.
    let denied: Vec<Value> = boss
        .audit_events(&AuditQuery::default().org_id("acme"))
        .await
        .into_iter()
        .filter(|e| e["event_type"] == "org.recipients_list")
        .collect();
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["outcome"], "denied");
    assert_eq!(denied[0]["denial_reason"], "not_member");
    assert_eq!(denied[0]["requester"], "outsider");
    assert!(app.metrics_text().await.contains(
        r#"virtengine_data_vault_access_denied_total{action="org.recipients_list",scope="org"} 1"#
    ));
    // An org that does not exist: refused the same way, and no chain is opened for it.
    let (status, _) = error_of(outsider.org_readers("nowhere", Some("support")).await).await;
    assert_eq!(status, 403);
    let mine = outsider.audit_events(&AuditQuery::default()).await;
    assert!(mine
        .iter()
        .any(|e| e["org_id"] == "nowhere" && e["chain"] == "owner:outsider"));

    for (scope, needle) in [
        (Some("nope"), "unknown scope"),
        (None, "scope is required"),
        (Some("Support!"), "scope must be"),
    ] {
        let response = agent.org_readers("acme", scope).await;
        assert_eq!(response.status(), 400, "{scope:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "bad_request");
        assert!(body["error"].as_str().unwrap().contains(needle), "{body}");
    }
    // Plain membership is enough to list (any role or none).
    let listing = agent.org_readers_json("acme", "support").await;
    let named: Vec<&str> = listing["readers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["principal"].as_str().unwrap())
        .collect();
    assert_eq!(named, vec!["agent", "boss"]);
    assert_eq!(strings(&listing["missing"]), vec!["agent", "boss"]);
}

on_both_backends!(
    published_recipients_are_public_to_callers_and_audited,
    bad_recipients_are_refused_naming_which_and_change_nothing,
    readers_per_scope_equal_the_scope_table_for_every_role_mix,
    readers_are_for_members_and_known_scopes_only,
);
