//! The bounded body reader: a request body is read only up to what its kind may carry, and an
//! oversized one is answered 413 without ever being held whole.

use crate::error::VaultError;
use axum::body::{Body, Bytes};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use bytes::BytesMut;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use std::time::Duration;

/// The route whose raw bodies are streamed rather than read whole (DESIGN §18).
const STREAMED_PATH: &str = "/api/v1/vault/blobs";

/// The SHA-256 a streamed upload's signature vouches for: authentication could not hash a
/// body it did not read, so the upload checks it once the last byte is in.
#[derive(Debug, Clone, Copy)]
pub struct ClaimedSha256(pub [u8; 32]);

/// Whether the request is a raw blob upload, whose body is streamed to the vault unread
/// (and which the request time limit does not bound: it is bounded by its stall limit).
pub fn is_streamed_upload(method: &Method, path: &str, headers: &HeaderMap) -> bool {
    method == Method::POST && path == STREAMED_PATH && is_raw(headers)
}

pub fn is_streamed(parts: &Parts) -> bool {
    is_streamed_upload(&parts.method, parts.uri.path(), &parts.headers)
}

fn is_raw(headers: &HeaderMap) -> bool {
    content_type_is(headers, "application/octet-stream")
}

/// Whether the request's media type (parameters aside) is `expected`: the one test both the
/// body limits and the upload handler use, so they cannot disagree on what a raw body is.
pub fn content_type_is(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(expected))
}

/// A streamed upload's body: at most `max` bytes (413 beyond, and at once when declared
/// larger), and refused with 400 when no byte arrives for `stall` (a client that stopped
/// sending would otherwise hold its upload open until the connection is cut).
pub fn streamed(
    headers: &HeaderMap,
    body: Body,
    max: usize,
    stall: Duration,
) -> Result<BoxStream<'static, Result<Bytes, VaultError>>, VaultError> {
    if declared_length(headers).is_some_and(|len| len > max as u64) {
        return Err(VaultError::PayloadTooLarge(max));
    }
    let state = (body.into_data_stream(), 0usize);
    Ok(
        futures_util::stream::try_unfold(state, move |(mut stream, seen)| async move {
            let next = tokio::time::timeout(stall, stream.next())
                .await
                .map_err(|_| {
                    VaultError::BadRequest(format!(
                        "the upload stalled: no data for {} s",
                        stall.as_secs()
                    ))
                })?;
            match next {
                None => Ok(None),
                Some(Err(_)) => Err(VaultError::BadRequest(
                    "the request body ended early or could not be read".into(),
                )),
                Some(Ok(bytes)) => {
                    let seen = seen.saturating_add(bytes.len());
                    if seen > max {
                        return Err(VaultError::PayloadTooLarge(max));
                    }
                    Ok(Some((bytes, (stream, seen))))
                }
            }
        })
        .boxed(),
    )
}

/// Reads from `stream` until more than `limit` bytes are in or it ends; returns what was read
/// and whether that was all of it.
pub async fn read_prefix(
    stream: &mut BoxStream<'static, Result<Bytes, VaultError>>,
    limit: usize,
) -> Result<(Vec<u8>, bool), VaultError> {
    let mut prefix = Vec::new();
    while prefix.len() <= limit {
        match stream.next().await {
            Some(bytes) => prefix.extend_from_slice(&bytes?),
            None => return Ok((prefix, true)),
        }
    }
    Ok((prefix, false))
}

pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Reads the body within the payload limit (413 beyond it). A body declared larger than the
/// drain cap is refused without reading a byte.
pub async fn read_bounded(
    headers: &HeaderMap,
    body: Body,
    max_payload: usize,
) -> Result<Bytes, VaultError> {
    let limit = body_limit(headers, max_payload);
    if declared_length(headers).is_some_and(|len| len > drain_cap(limit) as u64) {
        return Err(VaultError::PayloadTooLarge(max_payload));
    }
    read_body(body, limit).await.map_err(|e| match e {
        BodyError::TooLarge => VaultError::PayloadTooLarge(max_payload),
        BodyError::Read => VaultError::BadRequest("could not read the request body".into()),
    })
}

/// The most body bytes a request may carry: the envelope limit, grown for JSON's base64 and
/// its other fields.
fn body_limit(headers: &HeaderMap, max_payload: usize) -> usize {
    if is_raw(headers) {
        max_payload
    } else {
        max_payload.div_ceil(3) * 4 + 64 * 1024
    }
}

/// How much of an oversized body is still read (and discarded) so that the client, which is
/// still sending, receives the 413 instead of a connection reset. Bodies declared larger are
/// refused without reading.
fn drain_cap(limit: usize) -> usize {
    limit.saturating_mul(2)
}

#[derive(Debug, PartialEq, Eq)]
enum BodyError {
    TooLarge,
    Read,
}

/// Reads at most `limit` bytes of body; an oversized body is drained up to the drain cap and
/// reported as too large.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let mut stream = body.into_data_stream();
    let mut buffer = BytesMut::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| BodyError::Read)?;
        seen = seen.saturating_add(chunk.len());
        if seen <= limit {
            buffer.extend_from_slice(&chunk);
        } else if seen > drain_cap(limit) {
            return Err(BodyError::TooLarge);
        }
    }
    if seen > limit {
        Err(BodyError::TooLarge)
    } else {
        Ok(buffer.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    type Chunk = Result<Vec<u8>, std::io::Error>;

    /// A body sent in `chunks`, counting how many of them the reader pulled.
    fn sent(chunks: Vec<Chunk>) -> (Body, Arc<AtomicUsize>) {
        let pulled = Arc::new(AtomicUsize::new(0));
        let counter = pulled.clone();
        let stream = futures_util::stream::iter(chunks).inspect(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        (Body::from_stream(stream), pulled)
    }

    fn bytes(n: usize) -> Chunk {
        Ok(vec![b'x'; n])
    }

    fn broken() -> Chunk {
        Err(std::io::Error::other("connection reset"))
    }

    fn headers(content_type: Option<&'static str>, length: Option<usize>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(ct) = content_type {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        if let Some(len) = length {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        }
        headers
    }

    #[test]
    fn raw_bodies_get_the_envelope_limit_and_json_room_for_base64() {
        let raw = headers(Some("application/octet-stream"), None);
        assert_eq!(body_limit(&raw, 300), 300);
        let raw_with_params = headers(Some("application/octet-stream; x=y"), None);
        assert_eq!(body_limit(&raw_with_params, 300), 300);
        let json = headers(Some("application/json"), None);
        assert_eq!(body_limit(&json, 300), 400 + 64 * 1024);
        assert_eq!(body_limit(&HeaderMap::new(), 301), 404 + 64 * 1024);
    }

    #[tokio::test]
    async fn a_body_up_to_the_limit_is_read_whole_across_chunks() {
        let (body, _) = sent(vec![bytes(4), bytes(3), bytes(3)]);
        let read = read_body(body, 10).await.unwrap();
        assert_eq!(read.len(), 10);
    }

    #[tokio::test]
    async fn one_byte_over_the_limit_is_too_large_after_draining_the_rest() {
        let (body, pulled) = sent(vec![bytes(10), bytes(1), bytes(5)]);
        assert_eq!(read_body(body, 10).await, Err(BodyError::TooLarge));
        // Drained to the end (still under the drain cap), so the client reads the 413.
        assert_eq!(pulled.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn reading_stops_at_the_drain_cap() {
        // If the reader went on past the cap it would meet the broken chunk and say `Read`.
        let (body, pulled) = sent(vec![bytes(10), bytes(11), broken()]);
        assert_eq!(read_body(body, 10).await, Err(BodyError::TooLarge));
        assert_eq!(pulled.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_body_declared_beyond_the_drain_cap_is_refused_unread() {
        let limit = body_limit(&headers(Some("application/octet-stream"), None), 100);
        let declared = headers(Some("application/octet-stream"), Some(drain_cap(limit) + 1));
        let (body, pulled) = sent(vec![broken()]);
        let err = read_bounded(&declared, body, 100).await.unwrap_err();
        assert!(matches!(err, VaultError::PayloadTooLarge(100)), "{err:?}");
        assert_eq!(pulled.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_body_declared_within_the_drain_cap_is_still_measured_as_read() {
        let declared = headers(Some("application/octet-stream"), Some(150));
        let (body, _) = sent(vec![bytes(150)]);
        let err = read_bounded(&declared, body, 100).await.unwrap_err();
        assert!(matches!(err, VaultError::PayloadTooLarge(100)), "{err:?}");
        // A lying Content-Length does not let more through either.
        let small = headers(Some("application/octet-stream"), Some(10));
        let (body, _) = sent(vec![bytes(101)]);
        let err = read_bounded(&small, body, 100).await.unwrap_err();
        assert!(matches!(err, VaultError::PayloadTooLarge(100)), "{err:?}");
    }

    #[tokio::test]
    async fn a_broken_body_is_a_bad_request() {
        let (body, _) = sent(vec![bytes(3), broken()]);
        let err = read_bounded(&HeaderMap::new(), body, 100)
            .await
            .unwrap_err();
        assert!(matches!(err, VaultError::BadRequest(_)), "{err:?}");
    }
}
