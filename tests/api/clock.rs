//! Time is a parameter: a server built on a manual clock lets a test move time instead of
//! waiting for it (expiry here; retention and replay windows alike).

use crate::helpers::*;
use data_vault::cli::{ClientAuth, VaultClient};
use data_vault::config::Config;
use data_vault::domain::ClientName;
use data_vault::service::Caller;
use data_vault::startup::{open_vault, Application};
use data_vault::time::{Clock, ManualClock, SystemClock};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_expires_when_the_vault_clock_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".into();
    config.server.metrics_listen = "127.0.0.1:0".into();
    config.keys.master_key_file = dir.path().join("master.key");
    config.audit.log_key_file = dir.path().join("log.key");
    config.storage.database_url = format!("sqlite://{}", dir.path().join("vault.db").display());
    let clock = Arc::new(ManualClock::at_millis(SystemClock.now_millis()));
    let app = Application::build_with_clock(&config, clock.clone())
        .await
        .unwrap();
    let base = format!("http://{}", app.api_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));

    let secret = open_vault(&config)
        .await
        .unwrap()
        .create_client(
            &Caller::local_admin().unwrap(),
            &ClientName::parse("svc").unwrap(),
        )
        .await
        .unwrap();
    let client = Api::from(
        VaultClient::new(
            &base,
            ClientAuth::Hmac {
                principal: "svc".into(),
                secret,
            },
        )
        .unwrap(),
    );
    let in_a_minute = data_vault::time::to_rfc3339(clock.now_secs() + 60);
    let response = client
        .upload_raw(
            &age_envelope_of_size(600),
            &UploadQuery::in_scope("veid").expires_at(&in_a_minute),
        )
        .await;
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    let id = body["metadata"]["id"].as_str().unwrap();
    let query = ReadQuery::default();
    let read = || client.get_blob(id, &query);
    assert_eq!(read().await.status(), 200);

    clock.advance_secs(61);
    let (status, code) = error_of(read().await).await;
    assert_eq!((status, code.as_str()), (410, "expired"));

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
