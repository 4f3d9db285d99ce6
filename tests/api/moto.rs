//! A private moto S3 server on a free port for the object-store tests (`moto[server]` from
//! PyPI, installed by `.ci/run`). Required under CI; elsewhere its absence skips loudly.

use crate::helpers::skipped;
use data_vault::config::ObjectStoreConfig;
use data_vault::objects::{S3Backend, S3Credentials};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The one bucket each server gets.
const BUCKET: &str = "vault-objects";
/// The credentials the vault's client signs with: moto takes any.
pub const ACCESS_KEY_ID: &str = "vault-test-access-key";
pub const SECRET_ACCESS_KEY: &str = "vault-test-secret-key";
/// How long moto may take to answer after it is started (a start-up bound, not a measurement).
const START_TRIES: usize = 300;

pub struct Moto {
    port: u16,
    child: Child,
}

impl Moto {
    /// Starts one with its bucket, or returns `None` (loudly) when `moto_server` is not
    /// installed outside CI.
    pub async fn start() -> Option<Self> {
        match Self::spawn().await {
            Ok(moto) => Some(moto),
            Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!(
                    "CI=true but moto_server cannot be started: {e} (pip install 'moto[server]')"
                )
            }
            Err(e) => {
                skipped(&format!("S3: moto_server cannot be started ({e})"));
                None
            }
        }
    }

    async fn spawn() -> Result<Self, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        // The server needs no credentials; these only keep any AWS SDK inside it from
        // looking for real ones. The vault's client gets its own, explicitly.
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("moto_server: {e}"))?;
        let mut moto = Self { port, child };
        let http = reqwest::Client::new();
        for _ in 0..START_TRIES {
            if let Ok(Some(status)) = moto.child.try_wait() {
                return Err(format!("moto_server exited at start ({status})"));
            }
            if http.get(moto.endpoint()).send().await.is_ok() {
                let created = http
                    .put(format!("{}/{BUCKET}", moto.endpoint()))
                    .send()
                    .await
                    .map_err(|e| format!("creating the bucket: {e}"))?;
                if !created.status().is_success() {
                    return Err(format!("creating the bucket: {}", created.status()));
                }
                return Ok(moto);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err("moto_server did not answer".into())
    }

    /// `s3://vault-objects`.
    pub fn url(&self) -> String {
        format!("s3://{BUCKET}")
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The `[object_store]` section for this server, keys under `prefix` when given.
    pub fn config(&self, prefix: Option<&str>) -> ObjectStoreConfig {
        let url = match prefix {
            Some(prefix) => format!("{}/{prefix}", self.url()),
            None => self.url(),
        };
        ObjectStoreConfig {
            url: Some(url),
            endpoint: Some(self.endpoint()),
            region: Some("us-east-1".into()),
        }
    }

    pub fn credentials() -> S3Credentials {
        S3Credentials {
            access_key_id: ACCESS_KEY_ID.into(),
            secret_access_key: SECRET_ACCESS_KEY.into(),
            session_token: None,
        }
    }

    /// A backend on this server, keys under `prefix` when given.
    pub fn backend(&self, prefix: Option<&str>) -> S3Backend {
        S3Backend::with_credentials(&self.config(prefix), Self::credentials()).unwrap()
    }

    /// The bucket's unfinished multipart uploads, as S3's ListMultipartUploads XML.
    pub async fn open_uploads(&self) -> String {
        let response = reqwest::get(format!("{}/{BUCKET}?uploads", self.endpoint()))
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        response.text().await.unwrap()
    }

    /// The ETag of the object at `path` in the bucket (multipart: `"...-PARTS"`).
    pub async fn etag(&self, path: &str) -> String {
        let response = reqwest::Client::new()
            .head(format!("{}/{BUCKET}/{path}", self.endpoint()))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        response.headers()["etag"].to_str().unwrap().to_owned()
    }

    /// The raw answer to an unsigned GET of `path` in the bucket (moto does not check
    /// signatures), to see where an object really landed.
    pub async fn raw_get(&self, path: &str) -> reqwest::Response {
        reqwest::get(format!("{}/{BUCKET}/{path}", self.endpoint()))
            .await
            .unwrap()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
