//! Large attachments (DESIGN §18): envelopes above `storage.inline_max_bytes` stream to the
//! object store as sealed chunks and back, in flat memory, and nothing partial ever shows.

use crate::helpers::*;
use crate::on_both_backends;
use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;

const MIB: usize = 1024 * 1024;

/// A structurally valid age envelope of any size without encrypting gigabytes: the header of
/// a real envelope, then a payload of the right shape (nonce and 64 KiB chunks with tags)
/// filled with pseudo-random bytes. The server only checks the shape; the test compares
/// SHA-256s. Every MiB differs (its index is written into it), so a moved piece shows.
#[derive(Clone)]
pub struct Synthetic {
    header: Vec<u8>,
    block: Vec<u8>,
    len: usize,
}

const AGE_CHUNK: usize = 64 * 1024 + 16;

impl Synthetic {
    /// An envelope of about `target` bytes (a few bytes more when `target` would give the
    /// payload an impossible last chunk).
    pub fn of_about(target: usize) -> Self {
        let small = age_envelope_of_size(600);
        let header_len = data_vault::envelope::check_header(&small).unwrap();
        let header = small[..header_len].to_vec();
        let mut len = target.max(header_len + 16 + 17);
        loop {
            let last = (len - header_len - 16) % AGE_CHUNK;
            if last == 0 || last > 16 {
                break;
            }
            len += 1;
        }
        let mut block = vec![0u8; MIB];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for word in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes()[..word.len()]);
        }
        Self { header, block, len }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The envelope as a stream of pieces of at most 1 MiB.
    pub fn stream(
        &self,
    ) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        let this = self.clone();
        let pieces = self.len.div_ceil(MIB);
        futures_util::stream::iter((0..pieces).map(move |i| Ok(this.piece(i))))
    }

    fn piece(&self, i: usize) -> Bytes {
        let start = i * MIB;
        let end = (start + MIB).min(self.len);
        let mut piece = self.block[..end - start].to_vec();
        let index = (i as u64).to_le_bytes();
        let n = index.len().min(piece.len());
        piece[..n].copy_from_slice(&index[..n]);
        if i == 0 {
            piece[..self.header.len()].copy_from_slice(&self.header);
        }
        Bytes::from(piece)
    }

    /// The whole envelope in memory (for the smaller tests).
    pub fn bytes(&self) -> Vec<u8> {
        (0..self.len.div_ceil(MIB))
            .flat_map(|i| self.piece(i).to_vec())
            .collect()
    }

    pub fn sha256_hex(&self) -> String {
        let mut hasher = Sha256::new();
        for i in 0..self.len.div_ceil(MIB) {
            hasher.update(self.piece(i));
        }
        hex::encode(hasher.finalize())
    }
}

/// Streams `envelope` as a raw upload, signed over its hash (`claimed`, else its own).
pub async fn upload_streamed(
    api: &Api,
    envelope: &Synthetic,
    scope: &str,
    claimed: Option<&str>,
) -> reqwest::Response {
    let hash = claimed.map_or_else(|| envelope.sha256_hex(), str::to_owned);
    api.signer()
        .send_streamed(
            "/api/v1/vault/blobs",
            &[("scope", scope)],
            reqwest::Body::wrap_stream(envelope.stream()),
            &hash,
        )
        .await
        .unwrap()
}

/// Downloads a blob raw, hashing it as it arrives; returns its length and SHA-256.
pub async fn download_hashed(api: &Api, id: &str) -> (usize, String) {
    let response = api.get_blob_raw(id, &ReadQuery::default()).await;
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let (mut len, mut hasher) = (0, Sha256::new());
    while let Some(piece) = stream.next().await {
        let piece = piece.unwrap();
        len += piece.len();
        hasher.update(&piece);
    }
    (len, hex::encode(hasher.finalize()))
}

/// Every file under `dir` (the object store's objects).
pub fn objects_in(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

/// Waits (up to 60 s) until the object store holds exactly `count` objects.
pub async fn until_objects(dir: &Path, count: usize) {
    for _ in 0..600 {
        if objects_in(dir).len() == count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the object store holds {:?}, not {count} objects",
        objects_in(dir)
    );
}

async fn a_large_envelope_round_trips_through_the_object_store(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.client(&app.create_client("alice").await);
    let envelope = Synthetic::of_about(3 * MIB + 5);
    let created =
        json_with_status(upload_streamed(&alice, &envelope, "veid", None).await, 201).await;
    let meta = &created["metadata"];
    assert_eq!(meta["size"], envelope.len());
    assert_eq!(meta["content_hash"], envelope.sha256_hex());
    let id = meta["id"].as_str().unwrap();
    // In the object store, sealed: one object, longer than the envelope by a tag per chunk,
    // and none of the envelope's bytes in it.
    let objects = objects_in(&app.objects_dir());
    assert_eq!(objects.len(), 1, "{objects:?}");
    let stored = std::fs::read(&objects[0]).unwrap();
    let chunks = envelope.len().div_ceil(64 * 1024);
    assert_eq!(stored.len(), envelope.len() + 16 * chunks);
    let bytes = envelope.bytes();
    assert!(!stored.windows(64).any(|w| w == &bytes[MIB..MIB + 64]));

    assert_eq!(
        download_hashed(&alice, id).await,
        (envelope.len(), envelope.sha256_hex())
    );
    // JSON carries it too while it is within the JSON limit.
    let read = json_with_status(alice.get_blob(id, &ReadQuery::default()).await, 200).await;
    use base64::Engine;
    let data = base64::engine::general_purpose::STANDARD
        .decode(read["data_base64"].as_str().unwrap())
        .unwrap();
    assert!(data == bytes);

    // A JSON upload above the inline limit goes to the object store as well.
    let body = serde_json::json!({
        "scope": "veid",
        "payload_base64": base64::engine::general_purpose::STANDARD.encode(&bytes),
    });
    let created = json_with_status(alice.upload_json(&body).await, 201).await;
    let second = created["metadata"]["id"].as_str().unwrap();
    assert_eq!(objects_in(&app.objects_dir()).len(), 2);
    assert_eq!(
        download_hashed(&alice, second).await.1,
        envelope.sha256_hex()
    );

    // JSON carries at most 10 MiB, whatever a raw upload may (5 GiB by default).
    let too_big = Synthetic::of_about(10 * MIB + 100).bytes();
    let body = serde_json::json!({
        "scope": "veid",
        "payload_base64": base64::engine::general_purpose::STANDARD.encode(&too_big),
    });
    let (status, code) = error_of(alice.upload_json(&body).await).await;
    assert_eq!((status, code.as_str()), (413, "payload_too_large"));

    // An envelope at the inline limit stays in its row.
    let small = Synthetic::of_about(200 * 1024);
    json_with_status(upload_streamed(&alice, &small, "veid", None).await, 201).await;
    assert_eq!(objects_in(&app.objects_dir()).len(), 2);
}

async fn bad_streams_are_refused_and_leave_nothing(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.server.max_payload_bytes = 8 * MIB;
    })
    .await;
    let alice = app.client(&app.create_client("alice").await);
    let envelope = Synthetic::of_about(3 * MIB);

    // A body that is not the one signed: refused once it has all arrived.
    let wrong = "ab".repeat(32);
    let (status, code) =
        error_of(upload_streamed(&alice, &envelope, "veid", Some(&wrong)).await).await;
    assert_eq!((status, code.as_str()), (401, "unauthenticated"));

    // A truncated age STREAM: a payload whose last chunk cannot hold its tag.
    let mut cut = envelope.bytes();
    let header_len = data_vault::envelope::check_header(&cut).unwrap();
    let last = match (cut.len() - header_len - 16) % AGE_CHUNK {
        0 => AGE_CHUNK,
        last => last,
    };
    cut.truncate(cut.len() - last + 5);
    let response = alice.upload_raw(&cut, &UploadQuery::in_scope("veid")).await;
    let (status, code) = error_of(response).await;
    assert_eq!((status, code.as_str()), (422, "invalid_envelope"));

    // Larger than the limit: declared (refused before a byte is read) or streamed.
    let big = Synthetic::of_about(9 * MIB);
    let response = alice
        .upload_raw(&big.bytes(), &UploadQuery::in_scope("veid"))
        .await;
    assert_eq!(error_of(response).await, (413, "payload_too_large".into()));
    let (status, code) = error_of(upload_streamed(&alice, &big, "veid", None).await).await;
    assert_eq!((status, code.as_str()), (413, "payload_too_large"));

    // A header that is not age: refused on the first bytes.
    let mut plain = envelope.bytes();
    plain[..4].copy_from_slice(b"PLAI");
    let response = alice
        .upload_raw(&plain, &UploadQuery::in_scope("veid"))
        .await;
    assert_eq!(error_of(response).await.0, 422);

    let listed = alice.list_blobs_json(&ListQuery::default()).await;
    assert_eq!(listed["blobs"].as_array().unwrap().len(), 0, "{listed}");
    // Whatever was written is collected.
    until_objects(&app.objects_dir(), 0).await;
}

on_both_backends!(
    a_large_envelope_round_trips_through_the_object_store,
    bad_streams_are_refused_and_leave_nothing,
);

/// The memory bound: RSS stays under 100 MiB while a 512 MiB envelope goes up and
/// comes back, byte for byte, through a server process of its own.
pub const RSS_LIMIT: u64 = 100 * MIB as u64;

/// Uploads and downloads `size` bytes through `server`; returns the peak RSS it reached.
pub async fn round_trip_in_flat_memory(
    server: &ServerProcess,
    creds: &Credentials,
    size: usize,
) -> u64 {
    let alice = server.client(creds);
    let envelope = Synthetic::of_about(size);
    let created =
        json_with_status(upload_streamed(&alice, &envelope, "veid", None).await, 201).await;
    let id = created["metadata"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["metadata"]["size"], envelope.len());
    assert_eq!(
        download_hashed(&alice, &id).await,
        (envelope.len(), envelope.sha256_hex())
    );
    server.peak_rss_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_512_mib_envelope_round_trips_in_flat_memory_on_the_file_store() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let creds = app.create_client("alice").await;
    let server = ServerProcess::start(&app);
    let peak = round_trip_in_flat_memory(&server, &creds, 512 * MIB).await;
    assert!(peak < RSS_LIMIT, "peak RSS {} MiB", peak / MIB as u64);
    eprintln!("peak RSS of the server: {} MiB", peak / MIB as u64);
}

/// A vault process whose objects go to a fresh moto server; `None` when moto is missing
/// outside CI (the fixture says so loudly).
pub async fn on_s3() -> Option<(crate::moto::Moto, TestApp, Credentials, ServerProcess)> {
    let moto = crate::moto::Moto::start().await?;
    let app = TestApp::spawn(Backend::Sqlite).await;
    let creds = app.create_client("alice").await;
    let env = moto.process_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // Later entries win: the process's object store is moto's, not the app's directory.
    let server = ServerProcess::start_with(&app, &env);
    Some((moto, app, creds, server))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_512_mib_envelope_round_trips_in_flat_memory_on_s3() {
    let Some((moto, _app, creds, server)) = on_s3().await else {
        return;
    };
    let envelope_len = Synthetic::of_about(512 * MIB).len() as u64;
    let peak = round_trip_in_flat_memory(&server, &creds, 512 * MIB).await;
    assert!(peak < RSS_LIMIT, "peak RSS {} MiB", peak / MIB as u64);
    eprintln!("peak RSS of the server on S3: {} MiB", peak / MIB as u64);
    // One object, written in 8 MiB parts.
    let keys = moto.object_keys().await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let sealed = data_vault::crypto::chunks::sealed_len(envelope_len);
    let parts = sealed.div_ceil(data_vault::objects::PART_SIZE as u64);
    let etag = moto.etag(&keys[0]).await;
    assert!(
        etag.ends_with(&format!("-{parts}\"")),
        "{etag}, {parts} parts expected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_s3_a_refused_upload_leaves_no_upload_and_a_delete_removes_the_object() {
    let Some((moto, _app, creds, server)) = on_s3().await else {
        return;
    };
    let alice = server.client(&creds);
    let envelope = Synthetic::of_about(20 * MIB);
    // Refused at its end: the multipart upload it began is aborted by the sweep.
    let wrong = "cd".repeat(32);
    let (status, _) =
        error_of(upload_streamed(&alice, &envelope, "veid", Some(&wrong)).await).await;
    assert_eq!(status, 401);
    let mut open = String::new();
    for _ in 0..100 {
        open = moto.open_uploads().await;
        if !open.contains("<UploadId>") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!open.contains("<UploadId>"), "{open}");
    assert!(moto.object_keys().await.is_empty());

    let created =
        json_with_status(upload_streamed(&alice, &envelope, "veid", None).await, 201).await;
    let id = created["metadata"]["id"].as_str().unwrap();
    assert_eq!(moto.object_keys().await.len(), 1);
    assert_eq!(
        download_hashed(&alice, id).await,
        (envelope.len(), envelope.sha256_hex())
    );
    assert_eq!(alice.delete_blob(id).await.status(), 204);
    for _ in 0..100 {
        if moto.object_keys().await.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the deleted blob's object is still in the bucket: {:?}",
        moto.object_keys().await
    );
}

/// The signed head of `client`'s streamed upload of a body hashing to `body_sha256`,
/// declaring `length`.
async fn raw_upload_head(client: &Api, body_sha256: &str, length: usize) -> String {
    let url = client
        .signer()
        .url("/api/v1/vault/blobs", &[("scope", "veid")])
        .unwrap();
    let mut head = format!(
        "POST {}?{} HTTP/1.1\r\nHost: vault\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {length}\r\n",
        url.path(),
        url.query().unwrap()
    );
    let signed = client
        .signer()
        .sign_streamed(&reqwest::Method::POST, &url, body_sha256)
        .unwrap();
    for (name, value) in signed {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// Sends `head` and `body` on a fresh connection, closes the sending side, and returns the
/// first answer's status line and body.
async fn send_and_close(app: &TestApp, head: &str, body: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    // The server may answer (and stop reading) before all is sent.
    let _ = stream.write_all(body).await;
    let _ = stream.shutdown().await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

async fn a_body_shorter_or_longer_than_declared_is_refused_and_leaves_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.client(&app.create_client("alice").await);
    let envelope = Synthetic::of_about(3 * MIB);
    let bytes = envelope.bytes();

    // Ends early: the connection closes with half the declared length sent.
    let head = raw_upload_head(&alice, &envelope.sha256_hex(), bytes.len()).await;
    let answer = send_and_close(&app, &head, &bytes[..bytes.len() / 2]).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("ended early"), "{answer}");

    // Longer than declared: the server reads what was declared, which is not what was
    // signed (the signature covers all the bytes the client meant to send).
    let head = raw_upload_head(&alice, &envelope.sha256_hex(), bytes.len() - MIB).await;
    let answer = send_and_close(&app, &head, &bytes).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(
        answer.contains("does not match X-VE-Content-SHA256"),
        "{answer}"
    );

    assert_eq!(app.count_rows("blobs").await, 0);
    until_objects(&app.objects_dir(), 0).await;
}

on_both_backends!(a_body_shorter_or_longer_than_declared_is_refused_and_leaves_nothing);

/// Sends `head` and all of `body` (asserting that the server let it all in) and returns the
/// answer's status line and body.
async fn send_whole(app: &TestApp, head: &str, body: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
        .write_all(body)
        .await
        .expect("the server stopped reading a refused body and reset the connection");
    let mut answer = vec![0u8; 64 * 1024];
    let read = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut answer))
        .await
        .expect("no answer")
        .expect("the connection was reset instead of answered");
    String::from_utf8_lossy(&answer[..read]).into_owned()
}

/// A client that sends its whole body before reading (as most HTTP clients without
/// `Expect: 100-continue` do) gets the answer to a refused upload, not a reset: the server
/// reads and drops the rest. 20 MiB is more than the socket buffers can hold.
#[tokio::test]
async fn a_refused_upload_is_read_to_its_end_so_its_client_sees_the_answer() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.server.max_payload_bytes = 24 * MIB;
    })
    .await;
    let alice = app.client(&app.create_client("alice").await);
    let big = Synthetic::of_about(32 * MIB);
    let bytes = big.bytes();

    // Refused by authentication, before the handler: no signature at all.
    let unsigned = format!(
        "POST /api/v1/vault/blobs?scope=veid HTTP/1.1\r\nHost: vault\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        bytes.len()
    );
    let answer = send_whole(&app, &unsigned, &bytes).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");

    // Refused by its declared length, before a byte is read.
    let head = raw_upload_head(&alice, &big.sha256_hex(), bytes.len()).await;
    let answer = send_whole(&app, &head, &bytes).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // Refused on its first bytes, which are not an age header.
    let mut plain = Synthetic::of_about(20 * MIB).bytes();
    plain[..4].copy_from_slice(b"PLAI");
    let head = raw_upload_head(&alice, &hex::encode(Sha256::digest(&plain)), plain.len()).await;
    let answer = send_whole(&app, &head, &plain).await;
    assert!(answer.starts_with("HTTP/1.1 422"), "{answer}");

    // Any body, not only a raw upload's: a JSON one refused before authentication reads it.
    let json = vec![b' '; 12 * MIB];
    let unsigned_json = format!(
        "POST /api/v1/vault/blobs HTTP/1.1\r\nHost: vault\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        json.len()
    );
    let answer = send_whole(&app, &unsigned_json, &json).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");

    assert_eq!(app.count_rows("blobs").await, 0);
}

/// Large uploads beyond `storage.max_large_uploads` wait for a place, and are refused with
/// 503 once the wait (the request time limit) is over; the one streaming is not disturbed,
/// and its place is free again when it ends.
#[tokio::test]
async fn large_uploads_beyond_the_cap_wait_and_are_then_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.storage.max_large_uploads = 1;
        c.server.request_timeout_secs = 2;
    })
    .await;
    let alice = app.client(&app.create_client("alice").await);

    // The first takes the only place and holds it, sending a little at a time: 8 MiB at
    // 64 KiB per 200 ms lasts far longer than the second's 2 s wait.
    let first = Synthetic::of_about(8 * MIB);
    let bytes = first.bytes();
    let head = raw_upload_head(&alice, &first.sha256_hex(), bytes.len()).await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&bytes[..2 * MIB]).await.unwrap();
    let mut sent = 2 * MIB;
    // It holds the place once its object is journalled (which it does after taking it).
    until("the first upload holds the place", async || {
        app.count_rows("object_gc").await == 1
    })
    .await;

    let second = {
        let alice = app.client(&app.create_client("bob").await);
        tokio::spawn(async move {
            let envelope = Synthetic::of_about(3 * MIB + 1);
            error_of(upload_streamed(&alice, &envelope, "veid", None).await).await
        })
    };
    while !second.is_finished() {
        let next = (sent + 64 * 1024).min(bytes.len() - 1);
        stream.write_all(&bytes[sent..next]).await.unwrap();
        sent = next;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(second.await.unwrap(), (503, "unavailable".into()));

    stream.write_all(&bytes[sent..]).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let read = stream.read(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");

    let third = Synthetic::of_about(3 * MIB + 2);
    json_with_status(upload_streamed(&alice, &third, "veid", None).await, 201).await;
    assert_eq!(app.count_rows("blobs").await, 2);
}

/// A large download whose client stopped reading must not hold the server up at SIGTERM
/// beyond its grace: the read's audit handle does not keep the audit queue open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_not_held_up_by_a_large_download_its_client_stopped_reading() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let creds = app.create_client("alice").await;
    let server =
        ServerProcess::start_with(&app, &[("DATA_VAULT_SERVER__SHUTDOWN_GRACE_SECS", "1")]);
    let alice = server.client(&creds);
    let envelope = Synthetic::of_about(64 * MIB);
    let created =
        json_with_status(upload_streamed(&alice, &envelope, "veid", None).await, 201).await;
    let id = created["metadata"]["id"].as_str().unwrap();
    // Its head read, its body never: the server's writes stall once the socket is full.
    let download = alice.get_blob_raw(id, &ReadQuery::default()).await;
    assert_eq!(download.status(), 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopped = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::task::spawn_blocking(move || server.terminate()),
    )
    .await;
    assert!(
        stopped.is_ok(),
        "still running 20 s after SIGTERM with a 1 s grace"
    );
    drop(download);
}
