//! Hostile envelope headers (DESIGN §7): a header of thousands of stanzas is refused at once
//! without stalling anyone else's requests, and the stanza bound sits exactly at 256.

use crate::helpers::*;
use crate::on_both_backends;
use base64::Engine;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD_NO_PAD;

/// A structurally valid age envelope except for its size: X25519-shaped stanzas until the
/// header reaches `len` bytes. The `age` crate's parser took tens of seconds over one of these.
fn header_bomb(len: usize) -> Vec<u8> {
    let mut out = b"age-encryption.org/v1\n".to_vec();
    let mut i = 0u64;
    while out.len() < len {
        let share = B64.encode(i.to_be_bytes().repeat(4));
        let body = B64.encode((!i).to_be_bytes().repeat(4));
        out.extend_from_slice(format!("-> X25519 {share}\n{body}\n").as_bytes());
        i += 1;
    }
    out.extend_from_slice(format!("--- {}\n", "A".repeat(43)).as_bytes());
    out.extend_from_slice(&[0u8; 32]);
    out
}

/// Runs `task` on a thread and runtime of its own. The clients of this test must not share the
/// server's two async workers: signing hashes the whole body, and a stalled worker would also
/// stall the client's own I/O and timers, hiding or faking the stall being measured.
fn on_own_runtime<F, T>(task: impl FnOnce() -> F + Send + 'static) -> std::thread::JoinHandle<T>
where
    F: std::future::Future<Output = T>,
    T: Send + 'static,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(task())
    })
}

async fn header_bombs_are_refused_quickly_while_healthz_keeps_answering(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let creds = app.create_client("svc").await;
    let bomb = Arc::new(header_bomb(1_500_000));
    let stanzas = bomb.windows(3).filter(|w| w == b"-> ").count();
    assert!(stanzas > 10_000, "a bomb of {stanzas} stanzas");

    // Probe /healthz every 10 ms until the uploads are answered, and once more after.
    let uploads_done = Arc::new(AtomicBool::new(false));
    let probes = {
        let (base, done) = (app.url(""), uploads_done.clone());
        on_own_runtime(move || async move {
            let anonymous = Anonymous::at(&base);
            let mut probes = Vec::new();
            loop {
                let last = done.load(Ordering::SeqCst);
                let started = Instant::now();
                let health = anonymous.healthz().await;
                assert_eq!(health.status(), 200);
                probes.push(started.elapsed());
                if last {
                    return probes;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let uploads: Vec<_> = (0..2)
        .map(|_| {
            let (client, bomb) = (app.client(&creds), bomb.clone());
            on_own_runtime(move || async move {
                let started = Instant::now();
                let response = client
                    .upload_raw(&bomb, &UploadQuery::in_scope("veid"))
                    .await;
                let refusal = error_of(response).await;
                (started.elapsed(), refusal)
            })
        })
        .collect();

    let mut refusals = Vec::new();
    for upload in uploads {
        let (elapsed, refusal) = upload.join().unwrap();
        assert_eq!((refusal.0, refusal.1.as_str()), (422, "invalid_envelope"));
        refusals.push(elapsed);
    }
    uploads_done.store(true, Ordering::SeqCst);
    let probes = probes.join().unwrap();
    let slowest_probe = probes.iter().max().copied().unwrap_or_default();
    println!(
        "{backend:?}: two {} byte headers of {stanzas} stanzas refused in {refusals:?}; \
         {} /healthz probes meanwhile, slowest {slowest_probe:?}",
        bomb.len(),
        probes.len(),
    );
    for elapsed in &refusals {
        assert!(
            *elapsed < Duration::from_secs(3),
            "refusal took {elapsed:?}"
        );
    }
    assert!(
        slowest_probe < Duration::from_secs(2),
        "/healthz took {slowest_probe:?}"
    );
    assert_eq!(app.count_rows("blobs").await, 0);
}

/// An envelope from the `age` crate to `recipients` keys: it adds one "grease" stanza, so the
/// header holds `recipients + 1` stanzas.
fn envelope_to(recipients: usize) -> Vec<u8> {
    use std::io::Write;
    let keys: Vec<_> = (0..recipients).map(|_| age_identity().1).collect();
    let encryptor =
        age::Encryptor::with_recipients(keys.iter().map(|k| k as &dyn age::Recipient)).unwrap();
    let mut out = Vec::new();
    let mut writer = encryptor.wrap_output(&mut out).unwrap();
    writer.write_all(b"for the whole support team").unwrap();
    writer.finish().unwrap();
    out
}

async fn envelope_of_256_stanzas_is_stored_and_257_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.client(&app.create_client("svc").await);

    let most = envelope_to(255);
    assert_eq!(most.windows(3).filter(|w| w == b"-> ").count(), 256);
    let response = client
        .upload_raw(&most, &UploadQuery::in_scope("veid"))
        .await;
    assert_eq!(response.status(), 201, "{:?}", response.text().await);

    let too_many = envelope_to(256);
    assert_eq!(too_many.windows(3).filter(|w| w == b"-> ").count(), 257);
    let (status, code) = error_of(
        client
            .upload_raw(&too_many, &UploadQuery::in_scope("veid"))
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (422, "invalid_envelope"));
    assert_eq!(app.count_rows("blobs").await, 1);
}

on_both_backends!(
    header_bombs_are_refused_quickly_while_healthz_keeps_answering,
    envelope_of_256_stanzas_is_stored_and_257_is_refused,
);
