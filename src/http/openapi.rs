//! The OpenAPI document (DESIGN §17), generated from the handlers' `#[utoipa::path]`
//! annotations. Served at `GET /api/v1/openapi.json` without authentication and committed as
//! `docs/openapi.json`; a test keeps the two equal and rewrites the file when run with
//! `DATA_VAULT_UPDATE_OPENAPI=1` (see docs/api.md).
//!
//! What every authenticated operation shares — the signature schemes, the error answers and
//! the headers on them — is added once here by [`Contract`] rather than repeated on each
//! handler.

use super::middleware::cors::EXPOSED;
use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{header::HeaderBuilder, schema::Ref, ResponseBuilder};
use utoipa::openapi::{ObjectBuilder, RefOr, Type};
use utoipa::{Modify, OpenApi, ToSchema};

pub const PATH: &str = "/api/v1/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "data-vault",
        description = "Multi-tenant, scope-aware vault for client-encrypted envelopes. Every \
            /api/v1 route but this document needs an HMAC or wallet signature (docs/auth.md)."
    ),
    paths(
        super::blobs::create, super::blobs::list, super::blobs::read, super::blobs::metadata,
        super::blobs::remove,
        super::audit::query_events, super::audit::verify, super::audit::log_key,
        super::audit::checkpoint, super::audit::inclusion, super::audit::consistency,
        super::orgs::create_org, super::orgs::list_members, super::orgs::set_member,
        super::orgs::remove_member,
        super::recipients::set, super::recipients::mine, super::recipients::of,
        super::recipients::readers,
        super::retention::list_policies, super::retention::put_policy,
        super::retention::set_hold, super::retention::release_hold, super::retention::sweep,
        super::retention::export, super::retention::erase, super::retention::report,
        super::keys::list_keys, super::keys::rotate, super::keys::rotation,
        super::health::healthz, super::health::readyz, serve,
    ),
    components(schemas(ErrorResponse, ErrorCode)),
    modifiers(&Contract)
)]
struct ApiDoc;

/// The document as served and committed: pretty JSON with a final newline.
pub fn document_json() -> String {
    match ApiDoc::openapi().to_pretty_json() {
        Ok(json) => json + "\n",
        // Serialising plain maps and strings cannot fail; should it, say so rather than panic.
        Err(e) => format!("{{\"error\": \"cannot render the OpenAPI document: {e}\"}}\n"),
    }
}

/// `GET /api/v1/openapi.json`, rendered once.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let body = Bytes::from(document_json());
    Router::new().route(
        PATH,
        get(move || {
            let body = body.clone();
            async move { ([(CONTENT_TYPE, "application/json")], body) }
        }),
    )
}

/// This document (no authentication).
#[utoipa::path(get, operation_id = "openapi", path = "/api/v1/openapi.json", tag = "meta", security(),
    responses((status = 200, body = serde_json::Value)))]
#[allow(dead_code)] // documents the route `router` serves
async fn serve() {}

/// The error body of DESIGN §5; `X-Request-Id` carries the same id.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // describes the wire format only
struct ErrorResponse {
    /// A human message; never internal detail on a 5xx.
    error: String,
    code: ErrorCode,
    request_id: String,
}

/// The stable error codes clients switch on: the vault's own list, so the document cannot
/// fall behind the codes the server sends.
#[derive(Serialize)]
struct ErrorCode;

impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> RefOr<utoipa::openapi::Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("The stable error codes clients switch on."))
            .enum_values(Some(super::error::ERROR_CODES))
            .into()
    }
}

impl ToSchema for ErrorCode {
    fn name() -> std::borrow::Cow<'static, str> {
        "ErrorCode".into()
    }
}

/// An age envelope's raw bytes (`application/octet-stream`).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // describes the wire format only
pub struct Envelope(Vec<u8>);

/// A JSON read of a blob.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // describes the wire format only
pub struct BlobRead {
    data_base64: String,
    metadata: crate::service::BlobMetadata,
}

/// The answer to a create.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // describes the wire format only
pub struct Created {
    metadata: crate::service::BlobMetadata,
}

/// The error answers any signed operation may give, with their meaning.
const ERRORS: [(&str, &str); 10] = [
    ("400", "bad_request: a malformed parameter, body or header"),
    ("401", "unauthenticated, replayed or clock_skew"),
    ("403", "forbidden"),
    ("404", "not_found"),
    (
        "409",
        "legal_hold, or conflict (a rotation of that tenant's key is running)",
    ),
    ("410", "expired or purged"),
    ("413", "payload_too_large"),
    ("422", "invalid_envelope or retention_exceeded"),
    ("429", "rate_limited, with Retry-After and X-RateLimit-*"),
    ("503", "unavailable or audit_unavailable"),
];

/// Adds what every operation shares: the signature schemes and, on the signed operations,
/// the error answers; `X-Request-Id` on every answer.
struct Contract;

impl Modify for Contract {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, description) in [
            (
                "hmac",
                "Services: X-VE-Principal, X-VE-Timestamp (Unix seconds), X-VE-Nonce, \
                 X-VE-Content-SHA256 and X-VE-Signature (hex HMAC-SHA256), see docs/auth.md",
            ),
            (
                "wallet",
                "Portal users: X-VE-Address, X-VE-Timestamp (Unix milliseconds), X-VE-Nonce, \
                 X-VE-PubKey and X-VE-Signature (ADR-036), see docs/auth.md",
            ),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                    "X-VE-Signature",
                    description,
                ))),
            );
        }
        let string = || ObjectBuilder::new().schema_type(Type::String).build();
        let header = |description: &str| {
            HeaderBuilder::new()
                .schema(string())
                .description(Some(description))
                .build()
        };
        let request_id = || header("the request's id, also in error bodies and the log");
        // One shared response per error status, referred to by every signed operation.
        for (status, description) in ERRORS {
            let mut response = ResponseBuilder::new()
                .description(description)
                .header("x-request-id", request_id())
                .content(
                    "application/json",
                    utoipa::openapi::ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorResponse")))
                        .build(),
                );
            if status == "429" {
                for name in EXPOSED.iter().filter(|h| h.starts_with("x-ratelimit")) {
                    response = response.header(*name, header("the rate limit"));
                }
                response = response.header("retry-after", header("seconds to wait"));
            }
            components
                .responses
                .insert(error_response(status), RefOr::T(response.build()));
        }
        for (path, item) in openapi.paths.paths.iter_mut() {
            let signed = path.starts_with("/api/v1/") && path != PATH;
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                for response in operation.responses.responses.values_mut() {
                    if let RefOr::T(response) = response {
                        response
                            .headers
                            .insert("x-request-id".to_owned(), request_id());
                        if signed {
                            response.headers.insert(
                                "x-ve-audit-event".to_owned(),
                                header(
                                    "<chain>/<seq> of the audit event recording this request, \
                                     on audited answers (DESIGN §16)",
                                ),
                            );
                        }
                    }
                }
                if !signed {
                    continue;
                }
                operation.security = Some(vec![
                    SecurityRequirement::new("hmac", Vec::<String>::new()),
                    SecurityRequirement::new("wallet", Vec::<String>::new()),
                ]);
                for (status, _) in ERRORS {
                    let shared =
                        Ref::new(format!("#/components/responses/{}", error_response(status)));
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert(RefOr::Ref(shared));
                }
            }
        }
    }
}

fn error_response(status: &str) -> String {
    format!("Error{status}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_json_and_names_every_error_code() {
        let json: serde_json::Value = serde_json::from_str(&document_json()).unwrap_or_default();
        let codes = &json["components"]["schemas"]["ErrorCode"]["enum"];
        assert_eq!(codes, &serde_json::json!(super::super::error::ERROR_CODES));
        let read = &json["paths"]["/api/v1/vault/blobs/{id}"]["get"];
        assert!(read["responses"]["404"].is_object(), "{read}");
        assert_eq!(read["security"][0]["hmac"], serde_json::json!([]));
        let health = &json["paths"]["/healthz"]["get"];
        assert!(health["responses"]["401"].is_null(), "{health}");
    }
}
