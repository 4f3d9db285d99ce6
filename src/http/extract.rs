//! The authenticated caller as an extractor, so a handler's signature says it needs one.

use crate::error::VaultError;
use crate::service::Caller;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

/// The caller the authentication middleware proved. A handler reached without that layer (a
/// route mounted outside it by mistake) answers 401 `unauthenticated`, never a 500 and never
/// an anonymous call.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = VaultError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Caller>() {
            Some(caller) => Ok(Self(caller.clone())),
            None => {
                tracing::warn!(
                    path = parts.uri.path(),
                    "a handler that needs a caller was reached without authentication"
                );
                Err(VaultError::Unauthenticated("authentication required"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Principal;
    use crate::http::error::ErrorBody;
    use crate::service::{AuthMethod, PendingNonce};
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use axum::{Extension, Router};
    use tower::ServiceExt;

    async fn whoami(Authenticated(caller): Authenticated) -> String {
        caller.principal.as_str().to_owned()
    }

    fn request() -> Request<Body> {
        Request::get("/whoami").body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn a_route_outside_the_auth_layer_answers_401_not_500() {
        let app = Router::new().route("/whoami", get(whoami));
        let response = app.oneshot(request()).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let code = response.extensions().get::<ErrorBody>().map(|b| b.code);
        assert_eq!(code, Some("unauthenticated"));
    }

    #[tokio::test]
    async fn the_handler_gets_the_caller_the_layer_proved() {
        let caller = Caller {
            principal: Principal::parse("alice").unwrap(),
            method: AuthMethod::Hmac,
            request_id: "r1".into(),
            nonce: PendingNonce::default(),
            audit: Default::default(),
        };
        let app = Router::new()
            .route("/whoami", get(whoami))
            .layer(Extension(caller));
        let response = app.oneshot(request()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), 64)
            .await
            .unwrap();
        assert_eq!(&body[..], b"alice");
    }
}
