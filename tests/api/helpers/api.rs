//! The API as a test calls it: one method per endpoint, taking typed arguments, so a test
//! says what it asks for and the spelling of the request lives in one place.

use data_vault::cli::{Body, VaultClient};
use reqwest::{Method, Response};
use serde_json::Value;

const BLOBS: &str = "/api/v1/vault/blobs";
const AUDIT: &str = "/api/v1/vault/audit";
const ORGS: &str = "/api/v1/vault/orgs";
const RECIPIENTS: &str = "/api/v1/vault/recipients";
const POLICIES: &str = "/api/v1/vault/retention/policies";
const SUBJECTS: &str = "/api/v1/vault/subjects";

/// Declares the query parameters of one endpoint: a field and a same-named builder method per
/// parameter (values are text, so a test can send a malformed one), plus `param` for names
/// the endpoint does not define or repeats, so the refusals of those can be tested too.
macro_rules! query_params {
    ($(#[$doc:meta])* $name:ident { $($field:ident),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Default, Clone)]
        pub struct $name<'a> {
            $(pub $field: Option<&'a str>,)*
            /// Sent after the named parameters, as given.
            pub extra: Vec<(&'a str, &'a str)>,
        }

        // Every parameter the endpoint takes, whether or not a test sets it yet.
        #[allow(dead_code)]
        impl<'a> $name<'a> {
            $(
                pub fn $field(mut self, value: &'a str) -> Self {
                    self.$field = Some(value);
                    self
                }
            )*

            /// Adds a parameter as given: unknown to the endpoint, or one already set.
            pub fn param(mut self, name: &'a str, value: &'a str) -> Self {
                self.extra.push((name, value));
                self
            }

            fn pairs(&self) -> Vec<(&'a str, &'a str)> {
                let mut pairs = Vec::new();
                $(
                    if let Some(value) = self.$field {
                        pairs.push((stringify!($field), value));
                    }
                )*
                pairs.extend(self.extra.iter().copied());
                pairs
            }
        }
    };
}

query_params!(
    /// `POST /api/v1/vault/blobs` with a raw envelope.
    UploadQuery { scope, org_id, retention_policy, expires_at, tags }
);
query_params!(
    /// `GET /api/v1/vault/blobs/{id}`.
    ReadQuery { purpose, reason, org_id }
);
query_params!(
    /// `GET /api/v1/vault/blobs`.
    ListQuery { scope, org_id, limit, cursor }
);
query_params!(
    /// `GET /api/v1/vault/audit`.
    AuditQuery { blob_id, scope, requester, org_id, start, end, limit, cursor }
);

impl<'a> UploadQuery<'a> {
    /// An upload to `scope`, the one parameter every upload needs.
    pub fn in_scope(scope: &'a str) -> Self {
        Self::default().scope(scope)
    }
}

/// One signed caller (HMAC client or wallet).
pub struct Api {
    client: VaultClient,
}

impl From<VaultClient> for Api {
    fn from(client: VaultClient) -> Self {
        Self { client }
    }
}

/// The JSON body of a response that must have `status`; the body is in the failure message.
pub async fn json_with_status(response: Response, status: u16) -> Value {
    let got = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

impl Api {
    /// The signing client underneath, for tests that capture or craft signed requests.
    pub fn signer(&self) -> &VaultClient {
        &self.client
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Body<'_>>,
        accept: Option<&str>,
    ) -> Response {
        self.client
            .send(method, path, query, body, accept)
            .await
            .unwrap()
    }

    async fn request_json(&self, method: Method, path: &str, body: &Value) -> Response {
        let bytes = serde_json::to_vec(body).unwrap();
        let body = Body {
            bytes: &bytes,
            content_type: "application/json",
        };
        self.request(method, path, &[], Some(body), None).await
    }

    /// `POST /api/v1/vault/blobs` with the envelope as the body (`application/octet-stream`).
    pub async fn upload_raw(&self, envelope: &[u8], query: &UploadQuery<'_>) -> Response {
        self.upload_bytes(envelope, "application/octet-stream", query)
            .await
    }

    /// `POST /api/v1/vault/blobs` with any body and content type.
    pub async fn upload_bytes(
        &self,
        bytes: &[u8],
        content_type: &str,
        query: &UploadQuery<'_>,
    ) -> Response {
        let body = Body {
            bytes,
            content_type,
        };
        self.request(Method::POST, BLOBS, &query.pairs(), Some(body), None)
            .await
    }

    /// `POST /api/v1/vault/blobs` with a JSON body, sent as given (however wrong).
    pub async fn upload_json(&self, body: &Value) -> Response {
        self.request_json(Method::POST, BLOBS, body).await
    }

    /// Stores a fresh small envelope in `scope` (and `org`) and returns its id.
    pub async fn create_blob(&self, scope: &str, org: Option<&str>) -> String {
        let mut query = UploadQuery::in_scope(scope);
        query.org_id = org;
        let response = self
            .upload_raw(&super::age_envelope_of_size(600), &query)
            .await;
        let body = json_with_status(response, 201).await;
        body["metadata"]["id"].as_str().unwrap().to_owned()
    }

    /// `GET /api/v1/vault/blobs/{id}` as JSON (metadata and `data_base64`).
    pub async fn get_blob(&self, id: &str, query: &ReadQuery<'_>) -> Response {
        let path = format!("{BLOBS}/{id}");
        self.request(Method::GET, &path, &query.pairs(), None, None)
            .await
    }

    /// `GET /api/v1/vault/blobs/{id}` asking for the envelope itself.
    pub async fn get_blob_raw(&self, id: &str, query: &ReadQuery<'_>) -> Response {
        let path = format!("{BLOBS}/{id}");
        let accept = Some("application/octet-stream");
        self.request(Method::GET, &path, &query.pairs(), None, accept)
            .await
    }

    /// `GET /api/v1/vault/blobs/{id}/metadata`.
    pub async fn get_metadata(&self, id: &str) -> Response {
        let path = format!("{BLOBS}/{id}/metadata");
        self.request(Method::GET, &path, &[], None, None).await
    }

    /// `DELETE /api/v1/vault/blobs/{id}`.
    pub async fn delete_blob(&self, id: &str) -> Response {
        let path = format!("{BLOBS}/{id}");
        self.request(Method::DELETE, &path, &[], None, None).await
    }

    /// `GET /api/v1/vault/blobs`.
    pub async fn list_blobs(&self, query: &ListQuery<'_>) -> Response {
        self.request(Method::GET, BLOBS, &query.pairs(), None, None)
            .await
    }

    /// `GET /api/v1/vault/blobs`, which must answer 200: the page.
    pub async fn list_blobs_json(&self, query: &ListQuery<'_>) -> Value {
        json_with_status(self.list_blobs(query).await, 200).await
    }

    /// `GET /api/v1/vault/audit`.
    pub async fn audit(&self, query: &AuditQuery<'_>) -> Response {
        self.request(Method::GET, AUDIT, &query.pairs(), None, None)
            .await
    }

    /// `GET /api/v1/vault/audit`, which must answer 200: the page.
    pub async fn audit_json(&self, query: &AuditQuery<'_>) -> Value {
        json_with_status(self.audit(query).await, 200).await
    }

    /// `GET /api/v1/vault/audit`, which must answer 200: the page's events, newest first.
    pub async fn audit_events(&self, query: &AuditQuery<'_>) -> Vec<Value> {
        let page = self.audit_json(query).await;
        page["events"].as_array().unwrap().clone()
    }

    /// `GET /api/v1/vault/audit/verify`, of `org`'s chain or (without) the caller's own.
    pub async fn audit_verify(&self, org: Option<&str>) -> Response {
        let query: Vec<(&str, &str)> = org.map(|org| ("org_id", org)).into_iter().collect();
        self.request(Method::GET, &format!("{AUDIT}/verify"), &query, None, None)
            .await
    }

    /// `GET /api/v1/vault/audit/verify`, which must answer 200: the result.
    pub async fn audit_verify_json(&self, org: Option<&str>) -> Value {
        json_with_status(self.audit_verify(org).await, 200).await
    }

    /// `GET /api/v1/vault/audit/log-key`.
    pub async fn log_key(&self) -> Response {
        self.request(Method::GET, &format!("{AUDIT}/log-key"), &[], None, None)
            .await
    }

    /// `GET /api/v1/vault/audit/checkpoint?chain=C`.
    pub async fn checkpoint(&self, chain: &str) -> Response {
        let query = [("chain", chain)];
        self.request(
            Method::GET,
            &format!("{AUDIT}/checkpoint"),
            &query,
            None,
            None,
        )
        .await
    }

    /// `GET /api/v1/vault/audit/checkpoint?chain=C`, which must answer 200: the note.
    pub async fn checkpoint_text(&self, chain: &str) -> String {
        let response = self.checkpoint(chain).await;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(status, 200, "{text}");
        text
    }

    /// `GET /api/v1/vault/audit/proof/inclusion` with the given query pairs.
    pub async fn inclusion_proof(&self, query: &[(&str, &str)]) -> Response {
        let path = format!("{AUDIT}/proof/inclusion");
        self.request(Method::GET, &path, query, None, None).await
    }

    /// `GET /api/v1/vault/audit/proof/consistency` with the given query pairs.
    pub async fn consistency_proof(&self, query: &[(&str, &str)]) -> Response {
        let path = format!("{AUDIT}/proof/consistency");
        self.request(Method::GET, &path, query, None, None).await
    }

    /// `GET /api/v1/vault/retention/policies`.
    pub async fn list_policies(&self) -> Response {
        self.request(Method::GET, POLICIES, &[], None, None).await
    }

    /// `PUT /api/v1/vault/retention/policies/{name}` with `body`, sent as given.
    pub async fn put_policy(&self, name: &str, body: &Value) -> Response {
        self.request_json(Method::PUT, &format!("{POLICIES}/{name}"), body)
            .await
    }

    /// `PUT /api/v1/vault/blobs/{id}/hold` with `body`, sent as given.
    pub async fn put_hold(&self, id: &str, body: &Value) -> Response {
        self.request_json(Method::PUT, &format!("{BLOBS}/{id}/hold"), body)
            .await
    }

    /// `DELETE /api/v1/vault/blobs/{id}/hold`.
    pub async fn delete_hold(&self, id: &str) -> Response {
        let path = format!("{BLOBS}/{id}/hold");
        self.request(Method::DELETE, &path, &[], None, None).await
    }

    /// `POST /api/v1/vault/purge/sweep` with `{"dry_run": dry_run}`.
    pub async fn sweep(&self, dry_run: bool) -> Response {
        let body = serde_json::json!({ "dry_run": dry_run });
        self.request_json(Method::POST, "/api/v1/vault/purge/sweep", &body)
            .await
    }

    /// `POST /api/v1/vault/purge/sweep`, which must answer 200: the report.
    pub async fn sweep_json(&self, dry_run: bool) -> Value {
        json_with_status(self.sweep(dry_run).await, 200).await
    }

    /// `GET /api/v1/vault/subjects/{principal}/export`.
    pub async fn export_subject(&self, principal: &str) -> Response {
        let path = format!("{SUBJECTS}/{principal}/export");
        self.request(Method::GET, &path, &[], None, None).await
    }

    /// `DELETE /api/v1/vault/subjects/{principal}`.
    pub async fn erase_subject(&self, principal: &str) -> Response {
        let path = format!("{SUBJECTS}/{principal}");
        self.request(Method::DELETE, &path, &[], None, None).await
    }

    /// `GET /api/v1/vault/compliance/report`, for one org when given.
    pub async fn compliance_report(&self, org: Option<&str>) -> Response {
        let query: Vec<(&str, &str)> = org.map(|org| ("org_id", org)).into_iter().collect();
        self.request(
            Method::GET,
            "/api/v1/vault/compliance/report",
            &query,
            None,
            None,
        )
        .await
    }

    /// `GET /api/v1/vault/keys`, for one tenant when given.
    pub async fn list_keys(&self, tenant: Option<&str>) -> Response {
        let query: Vec<(&str, &str)> = tenant.map(|t| ("tenant", t)).into_iter().collect();
        self.request(Method::GET, "/api/v1/vault/keys", &query, None, None)
            .await
    }

    /// `POST /api/v1/vault/keys/rotate` with `body`, sent as given.
    pub async fn rotate_keys(&self, body: &Value) -> Response {
        self.request_json(Method::POST, "/api/v1/vault/keys/rotate", body)
            .await
    }

    /// `GET /api/v1/vault/keys/rotations/{id}`.
    pub async fn get_rotation(&self, id: &str) -> Response {
        let path = format!("/api/v1/vault/keys/rotations/{id}");
        self.request(Method::GET, &path, &[], None, None).await
    }

    /// `PUT /api/v1/vault/orgs/{org}`.
    pub async fn put_org(&self, org: &str) -> Response {
        let path = format!("{ORGS}/{org}");
        self.request(Method::PUT, &path, &[], None, None).await
    }

    /// `PUT /api/v1/vault/orgs/{org}/members/{principal}` with `{"roles": roles}`.
    pub async fn put_member(&self, org: &str, principal: &str, roles: &[&str]) -> Response {
        let path = format!("{ORGS}/{org}/members/{principal}");
        let body = serde_json::json!({ "roles": roles });
        self.request_json(Method::PUT, &path, &body).await
    }

    /// `DELETE /api/v1/vault/orgs/{org}/members/{principal}`.
    pub async fn delete_member(&self, org: &str, principal: &str) -> Response {
        let path = format!("{ORGS}/{org}/members/{principal}");
        self.request(Method::DELETE, &path, &[], None, None).await
    }

    /// `GET /api/v1/vault/orgs/{org}/members`.
    pub async fn list_members(&self, org: &str) -> Response {
        let path = format!("{ORGS}/{org}/members");
        self.request(Method::GET, &path, &[], None, None).await
    }

    /// `PUT /api/v1/vault/recipients/me` with `{"recipients": recipients}`.
    pub async fn put_recipients(&self, recipients: &[&str]) -> Response {
        let body = serde_json::json!({ "recipients": recipients });
        self.request_json(Method::PUT, &format!("{RECIPIENTS}/me"), &body)
            .await
    }

    /// `PUT /api/v1/vault/recipients/me`, which must answer 200: what was published.
    pub async fn publish_recipients(&self, recipients: &[&str]) -> Value {
        json_with_status(self.put_recipients(recipients).await, 200).await
    }

    /// `GET /api/v1/vault/recipients/{principal}` (`me` for the caller).
    pub async fn get_recipients(&self, principal: &str) -> Response {
        let path = format!("{RECIPIENTS}/{principal}");
        self.request(Method::GET, &path, &[], None, None).await
    }

    /// `GET /api/v1/vault/recipients/{principal}`, which must answer 200.
    pub async fn recipients_json(&self, principal: &str) -> Value {
        json_with_status(self.get_recipients(principal).await, 200).await
    }

    /// `GET /api/v1/vault/orgs/{org}/recipients?scope=S` (no query when `scope` is `None`).
    pub async fn org_readers(&self, org: &str, scope: Option<&str>) -> Response {
        let path = format!("{ORGS}/{org}/recipients");
        let query: Vec<(&str, &str)> = scope.map(|s| ("scope", s)).into_iter().collect();
        self.request(Method::GET, &path, &query, None, None).await
    }

    /// `GET /api/v1/vault/orgs/{org}/recipients?scope=S`, which must answer 200.
    pub async fn org_readers_json(&self, org: &str, scope: &str) -> Value {
        json_with_status(self.org_readers(org, Some(scope)).await, 200).await
    }
}

/// A caller without credentials: the probes, and requests that must be refused.
pub struct Anonymous {
    http: reqwest::Client,
    base: String,
}

impl Anonymous {
    /// A caller of the server at `base` (`http://host:port`) with a client of its own.
    pub fn at(base: &str) -> Self {
        Self::with_client(reqwest::Client::new(), base)
    }

    pub fn with_client(http: reqwest::Client, base: &str) -> Self {
        Self {
            http,
            base: base.to_owned(),
        }
    }

    /// An unsigned `GET` of `path`.
    pub async fn get(&self, path: &str) -> Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    /// `GET /healthz`.
    pub async fn healthz(&self) -> Response {
        self.get("/healthz").await
    }

    /// `GET /readyz`.
    pub async fn readyz(&self) -> Response {
        self.get("/readyz").await
    }
}
