//! The `s3://` object store, on object_store's low-level multipart API: the upload id exists
//! before the first byte, so the database can record it and a sweep can abort an upload that
//! a crash left open. Each writer holds at most one part and uploads parts one at a time.

use super::{
    validate_key, Location, ObjectBackend, ObjectError, ObjectWriter, S3Location, PART_SIZE,
};
use crate::config::ObjectStoreConfig;
use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjectPath;
use object_store::{ClientConfigKey, ObjectStoreExt, PutPayload};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use zeroize::Zeroizing;

/// S3 refuses a multipart upload of more parts.
const MAX_PARTS: usize = 10_000;
/// Elements of S3 error bodies that echo the request's credentials or signature
/// (`SignatureDoesNotMatch` returns the access key id and the string it signed).
const CREDENTIAL_ELEMENTS: [&str; 6] = [
    "AWSAccessKeyId",
    "SignatureProvided",
    "StringToSign",
    "StringToSignBytes",
    "CanonicalRequest",
    "CanonicalRequestBytes",
];

/// Explicit credentials, for tests and embedders; the server reads the AWS variables instead.
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub session_token: Option<SecretString>,
}

pub struct S3Backend {
    store: Arc<AmazonS3>,
    location: S3Location,
    redactor: Arc<Redactor>,
}

impl S3Backend {
    /// A store with credentials, and any other `AWS_*` setting, from the environment; the
    /// location's endpoint and region win over `AWS_ENDPOINT` and `AWS_REGION`.
    pub fn from_env(location: S3Location) -> Result<Self, ObjectError> {
        Self::build(AmazonS3Builder::from_env(), location)
    }

    /// A store at the `[object_store]` section's S3 location with the given credentials and
    /// nothing from the environment.
    pub fn with_credentials(
        config: &ObjectStoreConfig,
        credentials: S3Credentials,
    ) -> anyhow::Result<Self> {
        let Location::S3(location) = Location::parse(config).map_err(anyhow::Error::msg)? else {
            anyhow::bail!("object_store.url must be s3://bucket for S3 credentials");
        };
        let mut builder = AmazonS3Builder::new()
            .with_access_key_id(credentials.access_key_id)
            .with_secret_access_key(credentials.secret_access_key.expose_secret());
        if let Some(token) = &credentials.session_token {
            builder = builder.with_token(token.expose_secret());
        }
        Ok(Self::build(builder, location)?)
    }

    fn build(builder: AmazonS3Builder, location: S3Location) -> Result<Self, ObjectError> {
        // object_store's reqwest is built without a TLS provider of its own: it uses the
        // process default, ring, as the rest of the vault does. A provider installed earlier
        // stays (the error says so and is of no consequence).
        let _ = rustls::crypto::ring::default_provider().install_default();
        // object_store bounds a whole request by 30 s, which would cut the download of any
        // large object to a slow reader. Bound stalls instead (no byte for a minute, retried),
        // with a day for a whole request as the backstop.
        let mut builder = builder
            .with_bucket_name(&location.bucket)
            .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), "24h")
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::ReadTimeout),
                "60s",
            );
        if let Some(endpoint) = &location.endpoint {
            // Url keeps a trailing '/', which would double in `endpoint/bucket/key`. Set as
            // the S3 endpoint too, which object_store prefers: else `AWS_ENDPOINT_URL_S3`
            // from the environment would win over the configuration.
            let endpoint_text = endpoint.as_str().trim_end_matches('/');
            builder = builder
                .with_endpoint(endpoint_text)
                .with_config(AmazonS3ConfigKey::S3Endpoint, endpoint_text)
                .with_allow_http(endpoint.scheme() == "http");
        }
        if let Some(region) = &location.region {
            builder = builder.with_region(region);
        }
        let redactor = Arc::new(Redactor::new(&builder));
        let store = builder
            .build()
            .map_err(|e| redactor.error("configuring the S3 client", e))?;
        Ok(Self {
            store: Arc::new(store),
            location,
            redactor,
        })
    }

    fn path(&self, key: &str) -> Result<ObjectPath, ObjectError> {
        validate_key(key)?;
        let full = match &self.location.prefix {
            Some(prefix) => format!("{prefix}/{key}"),
            None => key.to_owned(),
        };
        ObjectPath::parse(full).map_err(|_| ObjectError::InvalidKey(key.to_owned()))
    }
}

#[async_trait::async_trait]
impl ObjectBackend for S3Backend {
    async fn create(&self, key: &str) -> Result<Box<dyn ObjectWriter>, ObjectError> {
        let path = self.path(key)?;
        let id = self
            .store
            .create_multipart(&path)
            .await
            .map_err(|e| self.redactor.error("starting a multipart upload", e))?;
        Ok(Box::new(S3Writer {
            store: Arc::clone(&self.store),
            redactor: Arc::clone(&self.redactor),
            path,
            id,
            parts: Vec::new(),
            pending: Vec::new(),
            pending_len: 0,
            failed: false,
        }))
    }

    async fn read(
        &self,
        key: &str,
    ) -> Result<BoxStream<'static, Result<Bytes, ObjectError>>, ObjectError> {
        let path = self.path(key)?;
        let result = self
            .store
            .get(&path)
            .await
            .map_err(|e| self.redactor.error("reading an object", e))?;
        let redactor = Arc::clone(&self.redactor);
        Ok(result
            .into_stream()
            .map(move |piece| piece.map_err(|e| redactor.error("reading an object", e)))
            .boxed())
    }

    async fn delete(&self, key: &str, upload_id: Option<&str>) -> Result<(), ObjectError> {
        let path = self.path(key)?;
        if let Some(id) = upload_id {
            abort(&self.store, &self.redactor, &path, &id.to_owned()).await?;
        }
        let deleted = self.store.delete(&path).await;
        already_gone_is_fine(deleted.map_err(|e| self.redactor.error("deleting an object", e)))
    }

    async fn ping(&self) -> Result<(), ObjectError> {
        let prefix = self.location.prefix.as_ref().map(|p| format!("{p}/"));
        let options = PaginatedListOptions {
            max_keys: Some(1),
            ..Default::default()
        };
        self.store
            .list_paginated(prefix.as_deref(), options)
            .await
            .map(drop)
            // A missing bucket must not pass for an empty one.
            .map_err(|e| match self.redactor.error("listing the bucket", e) {
                ObjectError::NotFound => {
                    ObjectError::Unavailable("listing the bucket: it does not exist".into())
                }
                other => other,
            })
    }

    fn describe(&self) -> String {
        match &self.location.prefix {
            Some(prefix) => format!("s3://{}/{prefix}", self.location.bucket),
            None => format!("s3://{}", self.location.bucket),
        }
    }

    fn list(&self) -> BoxStream<'static, Result<String, ObjectError>> {
        let (listed, strip) = match &self.location.prefix {
            Some(prefix) => (format!("{prefix}/{}", super::LAYOUT), format!("{prefix}/")),
            None => (super::LAYOUT.to_owned(), String::new()),
        };
        let redactor = Arc::clone(&self.redactor);
        object_store::ObjectStore::list(&*self.store, Some(&ObjectPath::from(listed)))
            .map(move |meta| {
                let meta = meta.map_err(|e| redactor.error("listing the bucket", e))?;
                let key = meta.location.as_ref();
                Ok(key.strip_prefix(strip.as_str()).unwrap_or(key).to_owned())
            })
            .boxed()
    }
}

/// Aborts a multipart upload; one that is gone (aborted or completed) is no error.
async fn abort(
    store: &AmazonS3,
    redactor: &Redactor,
    path: &ObjectPath,
    id: &String,
) -> Result<(), ObjectError> {
    let aborted = store.abort_multipart(path, id).await;
    already_gone_is_fine(aborted.map_err(|e| redactor.error("aborting a multipart upload", e)))
}

/// Deletes are retried by a sweep, so one that finds nothing to delete has succeeded.
fn already_gone_is_fine(result: Result<(), ObjectError>) -> Result<(), ObjectError> {
    match result {
        Err(ObjectError::NotFound) => Ok(()),
        other => other,
    }
}

struct S3Writer {
    store: Arc<AmazonS3>,
    redactor: Arc<Redactor>,
    path: ObjectPath,
    id: String,
    parts: Vec<PartId>,
    /// The next part, kept as the caller's pieces (slices, not copies); at most PART_SIZE.
    pending: Vec<Bytes>,
    pending_len: usize,
    /// A part failed: its bytes are gone, so completing would store an object with a gap.
    failed: bool,
}

impl S3Writer {
    async fn upload_part(&mut self) -> Result<(), ObjectError> {
        let index = self.parts.len();
        if index >= MAX_PARTS {
            return Err(ObjectError::Unavailable(format!(
                "an object may have at most {MAX_PARTS} parts of {PART_SIZE} bytes"
            )));
        }
        let payload: PutPayload = std::mem::take(&mut self.pending).into_iter().collect();
        self.pending_len = 0;
        self.failed = true;
        let part = self
            .store
            .put_part(&self.path, &self.id, index, payload)
            .await
            .map_err(|e| self.redactor.error("uploading a part", e))?;
        self.failed = false;
        self.parts.push(part);
        Ok(())
    }
}

#[async_trait::async_trait]
impl ObjectWriter for S3Writer {
    fn upload_id(&self) -> Option<String> {
        Some(self.id.clone())
    }

    async fn write(&mut self, mut bytes: Bytes) -> Result<(), ObjectError> {
        super::usable(self.failed)?;
        while !bytes.is_empty() {
            let take = bytes.len().min(PART_SIZE - self.pending_len);
            self.pending.push(bytes.split_to(take));
            self.pending_len += take;
            if self.pending_len == PART_SIZE {
                self.upload_part().await?;
            }
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<(), ObjectError> {
        super::usable(self.failed)?;
        // The last part may be short. An object of no bytes has no part at all, and
        // object_store then uploads one empty part itself, as S3 wants at least one.
        if self.pending_len > 0 {
            self.upload_part().await?;
        }
        let parts = std::mem::take(&mut self.parts);
        self.store
            .complete_multipart(&self.path, &self.id, parts)
            .await
            .map_err(|e| self.redactor.error("completing a multipart upload", e))?;
        Ok(())
    }

    async fn abort(self: Box<Self>) -> Result<(), ObjectError> {
        abort(&self.store, &self.redactor, &self.path, &self.id).await
    }
}

/// Turns object_store's errors into ours without the credentials that S3 error bodies, or
/// the store's messages, might carry.
struct Redactor {
    secrets: Vec<Zeroizing<String>>,
}

impl Redactor {
    fn new(builder: &AmazonS3Builder) -> Self {
        let secrets = [
            AmazonS3ConfigKey::AccessKeyId,
            AmazonS3ConfigKey::SecretAccessKey,
            AmazonS3ConfigKey::Token,
        ]
        .iter()
        .filter_map(|key| builder.get_config_value(key))
        .filter(|value| !value.is_empty())
        .map(Zeroizing::new)
        .collect();
        Self { secrets }
    }

    fn error(&self, what: &str, e: object_store::Error) -> ObjectError {
        match e {
            object_store::Error::NotFound { .. } => ObjectError::NotFound,
            e => ObjectError::Unavailable(self.clean(format!("{what}: {e}"))),
        }
    }

    fn clean(&self, mut text: String) -> String {
        for secret in &self.secrets {
            text = text.replace(secret.as_str(), "[redacted]");
        }
        for element in CREDENTIAL_ELEMENTS {
            text = redact_element(&text, element);
        }
        text
    }
}

/// `text` with the content of every `<element>...</element>` replaced by `[redacted]`.
fn redact_element(text: &str, element: &str) -> String {
    let open = format!("<{element}>");
    let close = format!("</{element}>");
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(&open) {
        let (before, after) = rest.split_at(start + open.len());
        out.push_str(before);
        out.push_str("[redacted]");
        // An element cut off before its end (a truncated body) is redacted to the end.
        rest = after.find(&close).map_or("", |end| after.split_at(end).1);
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str, endpoint: Option<&str>) -> ObjectStoreConfig {
        ObjectStoreConfig {
            url: Some(url.into()),
            endpoint: endpoint.map(Into::into),
            region: Some("eu-west-1".into()),
        }
    }

    fn backend(url: &str, endpoint: Option<&str>) -> S3Backend {
        S3Backend::with_credentials(&config(url, endpoint), credentials()).unwrap()
    }

    fn credentials() -> S3Credentials {
        S3Credentials {
            access_key_id: "AKIAEXAMPLEKEYID".into(),
            secret_access_key: SecretString::from("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            session_token: Some(SecretString::from("session-token-example")),
        }
    }

    #[test]
    fn an_https_client_builds_with_the_ring_provider() {
        // Building the client needs a rustls provider; without one reqwest would panic here.
        let tls = backend("s3://vault-objects/prod", Some("https://s3.example.com"));
        assert_eq!(tls.describe(), "s3://vault-objects/prod");
        // Built at all means the timeouts parsed; a large download is bounded by stalls only.
        // The timeouts reached the HTTP client (as its Debug shows them): a large download is
        // bounded by stalls, not by a total time.
        let client = format!("{:?}", tls.store);
        assert!(client.contains("TotalTimeout: 86400s"), "{client}");
        assert!(client.contains("read_timeout: 60s"), "{client}");
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
        let plain = backend("s3://vault-objects", None);
        assert_eq!(plain.describe(), "s3://vault-objects");
    }

    #[test]
    fn keys_get_the_prefix_and_bad_keys_are_refused() {
        let backend = backend("s3://vault-objects/prod/eu", Some("http://127.0.0.1:9"));
        assert_eq!(backend.path("v1/b/r").unwrap().as_ref(), "prod/eu/v1/b/r");
        assert!(matches!(
            backend.path("../x"),
            Err(ObjectError::InvalidKey(_))
        ));
    }

    #[tokio::test]
    async fn a_writer_whose_part_failed_cannot_finish() {
        // Nothing listens on port 1, and no retry: the first part fails at once.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let store = AmazonS3Builder::new()
            .with_bucket_name("vault-objects")
            .with_endpoint("http://127.0.0.1:1")
            .with_allow_http(true)
            .with_access_key_id("AKIAEXAMPLEKEYID")
            .with_secret_access_key("example")
            .with_retry(object_store::RetryConfig {
                max_retries: 0,
                ..Default::default()
            })
            .build()
            .unwrap();
        let mut writer = Box::new(S3Writer {
            store: Arc::new(store),
            redactor: Arc::new(Redactor {
                secrets: Vec::new(),
            }),
            path: ObjectPath::from("v1/b/r"),
            id: "upload".into(),
            parts: Vec::new(),
            pending: Vec::new(),
            pending_len: 0,
            failed: false,
        });
        writer
            .write(Bytes::from(vec![0; PART_SIZE - 1]))
            .await
            .unwrap();
        assert!(writer.write(Bytes::from(vec![0; 2])).await.is_err());
        assert!(writer.pending.is_empty(), "the part's bytes are not kept");
        assert!(matches!(
            writer.finish().await,
            Err(ObjectError::Unavailable(message)) if message.contains("earlier write")
        ));
    }

    #[test]
    fn a_file_location_gets_no_s3_credentials() {
        assert!(
            S3Backend::with_credentials(&config("file:///srv/objects", None), credentials())
                .is_err()
        );
    }

    #[test]
    fn errors_lose_credentials_and_signatures() {
        let builder = AmazonS3Builder::new()
            .with_access_key_id("AKIAEXAMPLEKEYID")
            .with_secret_access_key("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
            .with_token("session-token-example");
        let redactor = Redactor::new(&builder);
        let body = "Server returned non-2xx status code: 403 Forbidden: <Error>\
            <Code>SignatureDoesNotMatch</Code><AWSAccessKeyId>AKIAOTHER</AWSAccessKeyId>\
            <StringToSign>AWS4-HMAC-SHA256\n20261207T000000Z</StringToSign>\
            <SignatureProvided>abc123</SignatureProvided><CanonicalRequest>PUT /x";
        let text = format!(
            "{body} key AKIAEXAMPLEKEYID secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY \
             token session-token-example"
        );
        let clean = redactor.clean(text);
        for leaked in [
            "AKIAEXAMPLEKEYID",
            "AKIAOTHER",
            "wJalrXUtnFEMI",
            "session-token-example",
            "20261207T000000Z",
            "abc123",
            "PUT /x",
        ] {
            assert!(!clean.contains(leaked), "{leaked} in {clean}");
        }
        assert!(clean.contains("SignatureDoesNotMatch"), "{clean}");
        assert!(clean.contains("403 Forbidden"), "{clean}");
    }

    #[test]
    fn element_redaction_keeps_everything_else() {
        assert_eq!(
            redact_element("a<X>1</X>b<X>2</X>c", "X"),
            "a<X>[redacted]</X>b<X>[redacted]</X>c"
        );
        assert_eq!(redact_element("no element", "X"), "no element");
        assert_eq!(redact_element("cut <X>secret", "X"), "cut <X>[redacted]");
    }
}
