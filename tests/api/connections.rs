//! Slow, idle and too many connections (DESIGN §17 "Limits"), attacked with raw sockets
//! against the real server with short time limits. Times are printed; bounds are generous.

use crate::helpers::{age_envelope_of_size, Backend, TestApp};
use data_vault::config::Config;
use reqwest::Method;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The pace of a trickling client.
const TRICKLE: Duration = Duration::from_millis(200);
/// Anything the server should do in a few seconds must happen within this.
const BOUND: Duration = Duration::from_secs(15);

/// A server that gives requests 2 s and idle connections 1 s.
async fn impatient_app(customise: impl FnOnce(&mut Config)) -> TestApp {
    TestApp::spawn_with(Backend::Sqlite, |c| {
        c.server.request_timeout_secs = 2;
        c.server.idle_timeout_secs = 1;
        customise(c);
    })
    .await
}

/// Reads until the server closes the connection (or resets it); returns what it sent. Fails
/// the test if that takes longer than `BOUND`.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(BOUND, read_all)
        .await
        .expect("the server should have closed the connection");
    received
}

/// Reads one complete response (head and `Content-Length` body) from a kept-alive connection.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let read_one = async {
        loop {
            let text = String::from_utf8_lossy(&received).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if received.len() >= end + 4 + length {
                    return text;
                }
            }
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed mid-response: {text:?}");
            received.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(BOUND, read_one)
        .await
        .expect("a response should have arrived")
}

/// Writes `bytes` one at a time, `TRICKLE` apart, until done or the server hangs up.
async fn trickle(stream: &mut (impl AsyncWriteExt + Unpin), bytes: &[u8]) {
    for byte in bytes {
        if stream.write_all(&[*byte]).await.is_err() {
            return;
        }
        tokio::time::sleep(TRICKLE).await;
    }
}

fn healthz(connection: &str) -> String {
    format!("GET /healthz HTTP/1.1\r\nHost: vault\r\nConnection: {connection}\r\n\r\n")
}

/// The value of one sample in the metrics text, 0 when absent.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

async fn open_api_connections(app: &TestApp) -> f64 {
    metric(
        &app.metrics_text().await,
        r#"virtengine_data_vault_http_connections_open{listener="api"}"#,
    )
}

async fn cut(app: &TestApp, reason: &str) -> f64 {
    metric(
        &app.metrics_text().await,
        &format!(
            r#"virtengine_data_vault_http_connections_cut_total{{listener="api",reason="{reason}"}}"#
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trickling_its_request_head_is_cut_off_at_the_request_timeout() {
    let app = impatient_app(|_| {}).await;
    let stream = TcpStream::connect(app.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // A head that would take a minute at this pace.
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: vault\r\nX-Slow: {}\r\n\r\n",
        "a".repeat(300)
    );
    let started = Instant::now();
    let writer = tokio::spawn(async move { trickle(&mut writer, head.as_bytes()).await });
    let mut received = Vec::new();
    tokio::time::timeout(BOUND, reader.read_to_end(&mut received))
        .await
        .expect("the trickling client should have been cut off")
        .ok();
    let elapsed = started.elapsed();
    writer.abort();
    println!("trickling head: cut off after {elapsed:?} (request_timeout_secs = 2)");
    assert!(received.is_empty(), "no answer is owed: {received:?}");
    assert!(
        elapsed >= Duration::from_millis(1900),
        "not before the time limit: {elapsed:?}"
    );
    assert_eq!(cut(&app, "head").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let app = impatient_app(|_| {}).await;
    // One that asked once and kept the connection, one that never asked.
    let mut kept = TcpStream::connect(app.addr).await.unwrap();
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    // Taken before asking, so the server's idle clock cannot have started earlier.
    let asked = Instant::now();
    kept.write_all(healthz("keep-alive").as_bytes())
        .await
        .unwrap();
    let response = read_response(&mut kept).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(read_until_closed(&mut kept).await.is_empty());
    let kept_for = asked.elapsed();
    assert!(read_until_closed(&mut silent).await.is_empty());
    println!(
        "idle keep-alive connection closed {kept_for:?} after its request (idle_timeout_secs = 1)"
    );
    assert!(
        kept_for >= Duration::from_millis(950),
        "kept alive until the idle timeout: {kept_for:?}"
    );
    assert_eq!(cut(&app, "idle").await, 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_wait_and_are_served_once_idle_ones_time_out() {
    const LIMIT: usize = 4;
    const EXCESS: usize = 3;
    let app = impatient_app(|c| c.server.max_connections = LIMIT).await;
    // Hold every slot with connections that never send a byte.
    let mut holders = Vec::new();
    for _ in 0..LIMIT {
        holders.push(TcpStream::connect(app.addr).await.unwrap());
    }
    let deadline = Instant::now() + BOUND;
    while open_api_connections(&app).await < LIMIT as f64 {
        assert!(Instant::now() < deadline, "holders were never accepted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The excess connect (the kernel queues them) and ask at once.
    let mut excess = Vec::new();
    for _ in 0..EXCESS {
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        stream.write_all(healthz("close").as_bytes()).await.unwrap();
        excess.push(stream);
    }
    // A well-behaved client on a fresh connection, while the limit holds the excess.
    let started = Instant::now();
    let fresh = reqwest::Client::new();
    let fresh = tokio::spawn({
        let url = app.url("/healthz");
        async move { fresh.get(url).timeout(BOUND).send().await }
    });
    // The server never holds more than the limit, however long this takes.
    let mut most = 0.0_f64;
    while !fresh.is_finished() {
        most = most.max(open_api_connections(&app).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let response = fresh.await.unwrap().expect("the fresh client is served");
    let waited = started.elapsed();
    assert_eq!(response.status(), 200);
    println!(
        "fresh client served after {waited:?} with {LIMIT} idle holders and {EXCESS} queued \
         (max_connections = {LIMIT}, idle_timeout_secs = 1); at most {most} open"
    );
    assert!(most <= LIMIT as f64, "at most {LIMIT} open, saw {most}");
    for mut holder in holders {
        assert!(read_until_closed(&mut holder).await.is_empty());
    }
    for mut stream in excess {
        let answer = String::from_utf8(read_until_closed(&mut stream).await).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "queued, then served: {answer}"
        );
    }
    assert!(cut(&app, "idle").await >= LIMIT as f64);
}

/// Raw request head for a signed raw upload of `envelope`.
/// The signed head of an upload of `body`: JSON (read whole, so bound by the request time
/// limit) or, with `raw`, the envelope itself (streamed, bound by its stall limit instead).
async fn signed_upload_head(app: &TestApp, body: &[u8], raw: bool) -> String {
    let client = app.client(&app.create_client("svc").await);
    let client = client.signer();
    let (query, content_type): (&[(&str, &str)], _) = match raw {
        true => (&[("scope", "veid")], "application/octet-stream"),
        false => (&[], "application/json"),
    };
    let url = client.url("/api/v1/vault/blobs", query).unwrap();
    let target = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    let mut head = format!(
        "POST {target} HTTP/1.1\r\nHost: vault\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    for (name, value) in client.sign(&Method::POST, &url, body).unwrap() {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// A JSON upload body of a small envelope.
fn json_upload_body() -> Vec<u8> {
    use base64::Engine;
    let envelope = age_envelope_of_size(600);
    serde_json::to_vec(&serde_json::json!({
        "scope": "veid",
        "payload_base64": base64::engine::general_purpose::STANDARD.encode(envelope),
    }))
    .unwrap()
}

/// Sends `head` (trickled if asked), then trickles `body`; returns what came back and when
/// the connection closed, counted from the first byte.
async fn slow_upload(
    app: &TestApp,
    head: String,
    trickle_head: bool,
    body: Vec<u8>,
) -> (String, Duration) {
    let stream = TcpStream::connect(app.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let started = Instant::now();
    let writer = tokio::spawn(async move {
        if trickle_head {
            for chunk in head.as_bytes().chunks(head.len().div_ceil(16)) {
                writer.write_all(chunk).await.unwrap();
                tokio::time::sleep(TRICKLE).await;
            }
        } else {
            writer.write_all(head.as_bytes()).await.unwrap();
        }
        trickle(&mut writer, &body).await;
    });
    let mut received = Vec::new();
    tokio::time::timeout(BOUND, reader.read_to_end(&mut received))
        .await
        .expect("the slow upload should have been cut off")
        .ok();
    let elapsed = started.elapsed();
    writer.abort();
    (String::from_utf8_lossy(&received).into_owned(), elapsed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowly_sent_body_is_answered_503_and_cut_off() {
    let app = impatient_app(|_| {}).await;
    let body = json_upload_body();
    let head = signed_upload_head(&app, &body, false).await;
    let (answer, elapsed) = slow_upload(&app, head, false, body).await;
    println!("trickling body: answered and closed after {elapsed:?} (request_timeout_secs = 2)");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains(r#""code":"unavailable""#), "{answer}");
    assert!(elapsed >= Duration::from_millis(1900), "{elapsed:?}");
    assert_eq!(app.count_rows("blobs").await, 0, "nothing half-stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_upload_that_keeps_sending_outlives_the_time_limit() {
    // A raw upload streams (DESIGN §18): gigabytes may rightly take longer than the request
    // time limit, so only a stall ends it. 24 bytes, one every 200 ms: about 5 s, well past
    // the 2 s limit, never silent for 2 s.
    let app = impatient_app(|c| c.server.idle_timeout_secs = 5).await;
    let mut envelope = age_envelope_of_size(600);
    let head = signed_upload_head(&app, &envelope, true).await;
    let tail = envelope.split_off(600 - 24);
    let stream = TcpStream::connect(app.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let sender = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await.unwrap();
        writer.write_all(&envelope).await.unwrap();
        trickle(&mut writer, &tail).await;
        writer
    });
    let mut received = vec![0u8; 4096];
    let read = tokio::time::timeout(BOUND, reader.read(&mut received))
        .await
        .expect("an answer once the body is in")
        .unwrap();
    let answer = String::from_utf8_lossy(&received[..read]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    sender.await.unwrap();
    assert_eq!(app.count_rows("blobs").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_spent_on_a_slow_head_is_not_granted_again_for_the_body() {
    // 4 s in all; the head alone takes about 3.2 s of it. Counted from the parsed head, the
    // answer would come after about 7 s.
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.server.request_timeout_secs = 4).await;
    let body = json_upload_body();
    let head = signed_upload_head(&app, &body, false).await;
    let (answer, elapsed) = slow_upload(&app, head, true, body).await;
    println!(
        "trickled head then body: answered and closed after {elapsed:?} (request_timeout_secs = 4)"
    );
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(elapsed >= Duration::from_millis(3900), "{elapsed:?}");
    assert!(
        elapsed < Duration::from_secs(6),
        "the time limit counts from the first byte: {elapsed:?}"
    );
}

/// Sends `request` at once and returns the status line of the answer.
async fn status_of(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let answer = read_until_closed(&mut stream).await;
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_heads_get_431_at_once() {
    // The default time limit (30 s) is far beyond BOUND: an answer within it is not a time-out.
    let app = TestApp::spawn(Backend::Sqlite).await;
    let request = |extra: &str| {
        format!("GET /healthz HTTP/1.1\r\nHost: vault\r\nConnection: close\r\n{extra}\r\n")
            .into_bytes()
    };
    // A head of ordinary size, with many headers, passes.
    let many: String = (0..90)
        .map(|i| format!("X-H{i}: {}\r\n", "v".repeat(80)))
        .collect();
    assert_eq!(
        status_of(app.addr, &request(&many)).await,
        "HTTP/1.1 200 OK"
    );
    // One large header.
    let large = format!("X-Large: {}\r\n", "v".repeat(17 * 1024));
    assert_eq!(
        status_of(app.addr, &request(&large)).await,
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    // Too many headers.
    let too_many: String = (0..101).map(|i| format!("X-H{i}: v\r\n")).collect();
    assert_eq!(
        status_of(app.addr, &request(&too_many)).await,
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    // A long URI is part of the head.
    let uri = format!(
        "GET /healthz?q={} HTTP/1.1\r\nHost: vault\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    assert_eq!(
        status_of(app.addr, uri.as_bytes()).await,
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    // A head that never ends is refused once it is too large, not left to hang.
    let endless = format!(
        "GET /healthz HTTP/1.1\r\nHost: vault\r\nX-Endless: {}",
        "v".repeat(17 * 1024)
    );
    let started = Instant::now();
    assert_eq!(
        status_of(app.addr, endless.as_bytes()).await,
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    println!("endless head refused after {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_the_request_in_flight_and_closes_idle_connections() {
    let mut app = TestApp::spawn(Backend::Sqlite).await;
    let envelope = age_envelope_of_size(600);
    let head = signed_upload_head(&app, &envelope, true).await;
    let addr = app.addr;
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(healthz("keep-alive").as_bytes())
        .await
        .unwrap();
    assert!(read_response(&mut idle).await.starts_with("HTTP/1.1 200"));
    // An upload in flight: the server asked for its body (so the handler is reading it), and
    // half of it is in.
    let head = head.replace("\r\n\r\n", "\r\nExpect: 100-continue\r\n\r\n");
    let mut upload = TcpStream::connect(addr).await.unwrap();
    upload.write_all(head.as_bytes()).await.unwrap();
    let mut buf = [0u8; 25];
    tokio::time::timeout(BOUND, upload.read_exact(&mut buf))
        .await
        .expect("the server asks for the body")
        .unwrap();
    assert_eq!(&buf, b"HTTP/1.1 100 Continue\r\n\r\n");
    upload.write_all(&envelope[..300]).await.unwrap();
    let client = async {
        // New clients are refused once shutdown has begun.
        let deadline = Instant::now() + BOUND;
        while TcpStream::connect(addr).await.is_ok() {
            assert!(Instant::now() < deadline, "still accepting after shutdown");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            read_until_closed(&mut idle).await.is_empty(),
            "idle closed at shutdown"
        );
        upload.write_all(&envelope[300..]).await.unwrap();
        String::from_utf8(read_until_closed(&mut upload).await).unwrap()
    };
    let ((), answer) = tokio::join!(app.stop(), client);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert_eq!(app.count_rows("blobs").await, 1);
}

/// Sends an unauthenticated API request from `source` and returns the status code.
async fn status_from(source: &str, addr: SocketAddr) -> String {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    stream
        .write_all(b"GET /api/v1/vault/blobs HTTP/1.1\r\nHost: vault\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = String::from_utf8(read_until_closed(&mut stream).await).unwrap();
    answer.split(' ').nth(1).unwrap_or("").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ip_limit_still_sees_each_peer_address() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.rate_limit.ip_burst = 2;
        c.rate_limit.ip_per_second = 0.001;
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(status_from("127.0.0.1", app.addr).await);
    }
    assert_eq!(statuses, ["401", "401", "429"]);
    // Another address on the loopback has its own budget.
    assert_eq!(status_from("127.0.0.2", app.addr).await, "401");
}
