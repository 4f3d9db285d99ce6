//! Sharing with support, end to end with the real binary and Debian's `age` (DESIGN §19): a
//! customer uploads with `--to-readers`, a support agent downloads with a reason and opens it
//! with its own identity, a service provider's identity cannot; after a membership change,
//! `blob reshare` re-encrypts for the current readers.

use crate::cli::{age_cli_available, data_vault, ok};
use crate::helpers::*;
use crate::on_both_backends;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A principal at the command line: an HMAC client with its own age identity.
struct Person {
    name: &'static str,
    secret: String,
    key: PathBuf,
    recipient: String,
}

impl Person {
    async fn new(app: &TestApp, name: &'static str) -> Self {
        let creds = app.create_client(name).await;
        let key = app.dir.path().join(format!("{name}.key"));
        let keygen = Command::new("age-keygen")
            .arg("-o")
            .arg(&key)
            .output()
            .unwrap();
        assert!(keygen.status.success());
        let public = Command::new("age-keygen")
            .arg("-y")
            .arg(&key)
            .output()
            .unwrap();
        let recipient = String::from_utf8(public.stdout).unwrap().trim().to_owned();
        assert!(recipient.starts_with("age1"), "{recipient}");
        Self {
            name,
            secret: creds.secret.to_string(),
            key,
            recipient,
        }
    }

    /// `data-vault ARGS` signed as this principal.
    fn run(&self, app: &TestApp, args: &[&str]) -> Output {
        data_vault(app)
            .env("DATA_VAULT_PRINCIPAL", self.name)
            .env("DATA_VAULT_SECRET", &self.secret)
            .args(args)
            .output()
            .unwrap()
    }

    fn api(&self, app: &TestApp) -> Api {
        app.client(&Credentials {
            principal: self.name.to_owned(),
            secret: self.secret.clone().into(),
        })
    }

    fn publish(&self, app: &TestApp) {
        let shown: Value =
            serde_json::from_str(&ok(self.run(app, &["recipients", "set", &self.recipient])))
                .unwrap();
        assert_eq!(shown["recipients"][0], self.recipient.as_str());
    }

    /// `age -d -i KEY FILE`.
    fn open_with_age(&self, envelope: &Path) -> Output {
        Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(&self.key)
            .arg(envelope)
            .output()
            .unwrap()
    }
}

/// Downloads a blob's envelope as `who`, giving `reason`, into a file; `None` on refusal
/// (with the status).
async fn download(app: &TestApp, who: &Person, id: &str, reason: &str) -> Result<PathBuf, u16> {
    let response = who
        .api(app)
        .get_blob_raw(id, &ReadQuery::default().reason(reason))
        .await;
    if response.status() != 200 {
        return Err(response.status().as_u16());
    }
    let path = app.dir.path().join(format!("{}-{id}.age", who.name));
    std::fs::write(&path, response.bytes().await.unwrap()).unwrap();
    Ok(path)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

async fn support_agents_open_what_customers_share_with_readers(backend: Backend) {
    if !age_cli_available() {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let customer = Person::new(&app, "customer").await;
    let agent = Person::new(&app, "agent-ann").await;
    let next_agent = Person::new(&app, "agent-bob").await;
    let provider = Person::new(&app, "provider").await;
    let boss = Person::new(&app, "boss").await;
    app.create_org(
        "acme",
        &[
            ("customer", ""),
            ("agent-ann", "support_agent"),
            ("provider", "service_provider"),
            ("boss", "administrator"),
        ],
    )
    .await;
    for person in [&customer, &agent, &next_agent, &provider] {
        person.publish(&app);
    }

    // The customer shares an attachment with the org's support readers.
    let attachment = app.dir.path().join("screenshot.txt");
    let plaintext = "ticket 42: the error dialog\n".repeat(300);
    std::fs::write(&attachment, &plaintext).unwrap();
    let put = customer.run(
        &app,
        &[
            "blob",
            "put",
            attachment.to_str().unwrap(),
            "--scope",
            "support",
            "--org",
            "acme",
            "--to-readers",
        ],
    );
    let warned = stderr(&put);
    let meta: Value = serde_json::from_str(&ok(put)).unwrap();
    let id = meta["id"].as_str().unwrap().to_owned();
    assert_eq!(meta["owner"], "customer");
    assert!(
        warned.contains("published no age recipient") && warned.contains("boss"),
        "the administrator who published nothing is named: {warned}"
    );

    // The agent downloads with a reason and opens it with its own identity, using `age`.
    assert_eq!(
        download(&app, &agent, &id, "").await,
        Err(403),
        "a reason is required"
    );
    let envelope = download(&app, &agent, &id, "ticket 42").await.unwrap();
    let opened = agent.open_with_age(&envelope);
    assert!(opened.status.success(), "{}", stderr(&opened));
    assert_eq!(String::from_utf8(opened.stdout).unwrap(), plaintext);
    assert!(
        customer.open_with_age(&envelope).status.success(),
        "the owner can open it"
    );
    // A service provider may not download in `support`, and its identity cannot open it.
    assert_eq!(download(&app, &provider, &id, "curious").await, Err(403));
    let refused = provider.open_with_age(&envelope);
    assert!(!refused.status.success());
    assert!(refused.stdout.is_empty());

    // Membership changes: Ann leaves support, Bob joins. The old envelope was never
    // encrypted to Bob; Ann's downloaded copy still opens with her key (the server cannot
    // take back what left it), but the access check stops her new reads.
    ok(data_vault(&app)
        .args(["admin", "org", "member", "remove", "acme", "agent-ann"])
        .output()
        .unwrap());
    ok(data_vault(&app)
        .args([
            "admin",
            "org",
            "member",
            "set",
            "acme",
            "agent-bob",
            "--roles",
            "support_agent",
        ])
        .output()
        .unwrap());
    let bobs_copy = download(&app, &next_agent, &id, "ticket 42").await.unwrap();
    assert!(!next_agent.open_with_age(&bobs_copy).status.success());
    assert!(agent.open_with_age(&envelope).status.success());
    assert_eq!(download(&app, &agent, &id, "ticket 42").await, Err(403));

    // The customer reshares for the current readers.
    let reshare = customer.run(
        &app,
        &[
            "blob",
            "reshare",
            &id,
            "--to-readers",
            "--identity",
            customer.key.to_str().unwrap(),
        ],
    );
    let said = stderr(&reshare);
    let new_id = ok(reshare).trim().to_owned();
    assert_ne!(new_id, id);
    assert!(said.contains(&format!("left {id} in place")), "{said}");
    let bobs = download(&app, &next_agent, &new_id, "ticket 42")
        .await
        .unwrap();
    let opened = next_agent.open_with_age(&bobs);
    assert!(opened.status.success(), "{}", stderr(&opened));
    assert_eq!(String::from_utf8(opened.stdout).unwrap(), plaintext);
    assert_eq!(download(&app, &agent, &new_id, "ticket 42").await, Err(403));
    assert!(
        !agent.open_with_age(&bobs).status.success(),
        "Ann is not a recipient any more"
    );
    let new_meta: Value = boss
        .api(&app)
        .get_metadata(&new_id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (new_meta["scope"].as_str(), new_meta["org_id"].as_str()),
        (Some("support"), Some("acme"))
    );

    // Both halves are in the org's audit trail: the read (purpose "reshare") and the create.
    let trail = |blob: &str| {
        let boss = boss.api(&app);
        let blob = blob.to_owned();
        async move {
            boss.audit_events(&AuditQuery::default().org_id("acme").blob_id(&blob))
                .await
        }
    };
    let old_events = trail(&id).await;
    assert!(
        old_events.iter().any(|e| e["event_type"] == "blob.read"
            && e["requester"] == "customer"
            && e["purpose"] == "reshare"
            && e["outcome"] == "granted"),
        "{old_events:?}"
    );
    let new_events = trail(&new_id).await;
    assert!(new_events
        .iter()
        .any(|e| e["event_type"] == "blob.create" && e["requester"] == "customer"));
}

async fn reshare_carries_tags_and_can_delete_the_old_blob(backend: Backend) {
    if !age_cli_available() {
        return;
    }
    // A policy of its own (blobs must name an existing one), so that carrying it over shows.
    let app = TestApp::spawn_with(backend, |config| {
        config.retention.policies.insert(
            "short".into(),
            data_vault::retention::PolicySettings {
                max_retention_days: Some(30),
                default_ttl_days: None,
                purge_method: "crypto-shred".into(),
                description: None,
            },
        );
    })
    .await;
    let customer = Person::new(&app, "customer").await;
    let agent = Person::new(&app, "agent").await;
    app.create_org("acme", &[("customer", ""), ("agent", "support_agent")])
        .await;
    customer.publish(&app);
    agent.publish(&app);
    // Uploaded by another client (tags, a policy): encrypted to the customer alone.
    let plain = app.dir.path().join("invoice.txt");
    std::fs::write(&plain, "invoice 7\n").unwrap();
    let sealed = Command::new("age")
        .args(["-r", &customer.recipient])
        .arg(&plain)
        .output()
        .unwrap();
    assert!(sealed.status.success());
    let created = customer
        .api(&app)
        .upload_json(&serde_json::json!({
            "scope": "support",
            "org_id": "acme",
            "payload_base64": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &sealed.stdout),
            "tags": {"ticket": "7", "kind": "invoice"},
            "retention_policy": "short",
        }))
        .await;
    assert_eq!(created.status(), 201);
    let old: Value = created.json().await.unwrap();
    let old_id = old["metadata"]["id"].as_str().unwrap().to_owned();

    let reshare = customer.run(
        &app,
        &[
            "blob",
            "reshare",
            &old_id,
            "--to-readers",
            "--delete-old",
            "--identity",
            customer.key.to_str().unwrap(),
        ],
    );
    let said = stderr(&reshare);
    let new_id = ok(reshare).trim().to_owned();
    assert!(said.contains(&format!("deleted {old_id}")), "{said}");
    let api = customer.api(&app);
    assert_eq!(api.get_metadata(&old_id).await.status(), 404);
    let new_meta: Value = api.get_metadata(&new_id).await.json().await.unwrap();
    assert_eq!(new_meta["tags"], old["metadata"]["tags"]);
    assert_eq!(new_meta["retention_policy"], "short");
    let copy = download(&app, &agent, &new_id, "ticket 7").await.unwrap();
    assert!(agent.open_with_age(&copy).status.success());

    // Without an identity that opens it, nothing new is stored.
    let stranger_key = app.dir.path().join("stranger.key");
    assert!(Command::new("age-keygen")
        .arg("-o")
        .arg(&stranger_key)
        .output()
        .unwrap()
        .status
        .success());
    let failed = customer.run(
        &app,
        &[
            "blob",
            "reshare",
            &new_id,
            "--to-readers",
            "--identity",
            stranger_key.to_str().unwrap(),
        ],
    );
    assert!(!failed.status.success());
    assert!(
        stderr(&failed).contains("cannot decrypt"),
        "{}",
        stderr(&failed)
    );
    let listed = api.list_blobs_json(&ListQuery::default()).await;
    assert_eq!(listed["blobs"].as_array().unwrap().len(), 1);

    // Tags too long for a query string: the reshare carries them in a JSON upload.
    let long_tags: serde_json::Map<String, Value> = (0..20)
        .map(|i| (format!("note{i}"), Value::String("n".repeat(250))))
        .collect();
    let created = api
        .upload_json(&serde_json::json!({
            "scope": "support",
            "org_id": "acme",
            "payload_base64": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &sealed.stdout),
            "tags": long_tags,
        }))
        .await;
    assert_eq!(created.status(), 201);
    let long_id = created.json::<Value>().await.unwrap()["metadata"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reshared = customer.run(
        &app,
        &[
            "blob",
            "reshare",
            &long_id,
            "--to-readers",
            "--identity",
            customer.key.to_str().unwrap(),
        ],
    );
    let reshared_id = ok(reshared).trim().to_owned();
    let reshared_meta: Value = api.get_metadata(&reshared_id).await.json().await.unwrap();
    assert_eq!(reshared_meta["tags"], Value::Object(long_tags));
}

async fn to_readers_refuses_when_nobody_could_decrypt(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let creds = app.create_client("loner").await;
    app.create_org("quiet", &[("loner", ""), ("mod", "moderator")])
        .await;
    let file = app.dir.path().join("note.txt");
    std::fs::write(&file, "nobody will read this").unwrap();
    let run = |args: &[&str]| {
        data_vault(&app)
            .env("DATA_VAULT_PRINCIPAL", "loner")
            .env("DATA_VAULT_SECRET", creds.secret.as_str())
            .args(args)
            .output()
            .unwrap()
    };
    let put = run(&[
        "blob",
        "put",
        file.to_str().unwrap(),
        "--scope",
        "audit",
        "--org",
        "quiet",
        "--to-readers",
    ]);
    assert!(!put.status.success());
    let said = stderr(&put);
    assert!(said.contains("nobody could decrypt"), "{said}");
    assert!(
        said.contains("mod"),
        "the reader without a recipient is named: {said}"
    );
    assert_eq!(app.count_rows("blobs").await, 0);

    // --to-readers needs an org; without it or --recipient, nothing is encrypted at all.
    let no_org = run(&[
        "blob",
        "put",
        file.to_str().unwrap(),
        "--scope",
        "audit",
        "--to-readers",
    ]);
    assert!(!no_org.status.success());
    assert!(stderr(&no_org).contains("--org"), "{}", stderr(&no_org));
    let nobody = run(&["blob", "put", file.to_str().unwrap(), "--scope", "audit"]);
    assert!(!nobody.status.success());
    // A mistyped recipient is named before anything is sent.
    let typo = run(&["recipients", "set", "age1notakey"]);
    assert!(!typo.status.success());
    assert!(stderr(&typo).contains("recipient 1"), "{}", stderr(&typo));
}

on_both_backends!(
    support_agents_open_what_customers_share_with_readers,
    reshare_carries_tags_and_can_delete_the_old_blob,
    to_readers_refuses_when_nobody_could_decrypt,
);
