//! Large blobs in the object store (DESIGN §18): the streamed upload that seals an envelope
//! chunk by chunk into its object, the streamed read that opens it again, and the sweep that
//! deletes the objects nothing refers to.
//!
//! Nothing is ever held whole: an upload keeps one batch of [`BATCH`] bytes (plus what the
//! object store buffers for one part), a read one batch of sealed chunks. The sealing,
//! opening and hashing of each batch run on the blocking pool, off the async workers.
//!
//! Crash safety comes from the `object_gc` journal (`store/objects.rs`): an object is
//! registered before its first byte and unregistered by the same transaction that commits its
//! row and event, so a blob is visible only once its object is complete, and every object
//! without a row is eventually deleted by [`Vault::collect_objects`].

use super::blobs::binding;
use super::{Caller, Vault};
use crate::audit::NewEvent;
use crate::crypto::chunks::{self, ChunkOpener, ChunkSealer, CHUNK_PLAINTEXT, CHUNK_SEALED};
use crate::crypto::DataKey;
use crate::envelope;
use crate::error::VaultError;
use crate::objects::{ObjectBackend, ObjectError, ObjectWriter};
use crate::store::{BlobRecord, SealedContent};
use bytes::{Bytes, BytesMut};
use futures_util::stream::{BoxStream, StreamExt};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Envelope bytes sealed (or opened) per step: sixteen chunks.
const BATCH: usize = 16 * CHUNK_PLAINTEXT;
/// How many due objects one pass of the sweep claims at a time.
const COLLECT_BATCH: i64 = 100;
/// A claim older than this was left by a sweep that died: another may take the entry over.
const STALE_CLAIM_SECS: i64 = 600;

/// The object store as the vault uses it.
pub struct ObjectStorage {
    pub backend: Arc<dyn ObjectBackend>,
    /// How long an upload may go without renewing its object's entry before the sweep may
    /// take the object (renewed every third of it while bytes arrive).
    pub lease_secs: i64,
    /// Envelopes larger than this go to the object store; smaller ones stay in their row.
    pub inline_max_bytes: usize,
    /// Places for the large uploads streamed at once.
    pub uploads: UploadSlots,
    /// Wakes the sweep when an upload fails or a row with an object goes, so the object goes
    /// at once.
    pub wake: tokio::sync::Notify,
}

/// The large uploads one replica streams at once: each holds a sealing batch or an S3 part
/// in memory, so their number bounds what streaming takes. One waiting for a place holds only
/// the first `inline_max_bytes` it has read (the connection limit bounds how many wait).
pub struct UploadSlots {
    slots: tokio::sync::Semaphore,
    max: usize,
    wait: Duration,
}

impl UploadSlots {
    pub fn new(max: usize, wait: Duration) -> Self {
        Self {
            slots: tokio::sync::Semaphore::new(max),
            max,
            wait,
        }
    }

    /// A place, waited for up to `wait`; 503 `unavailable` when none frees up in time.
    async fn take(&self) -> Result<tokio::sync::SemaphorePermit<'_>, VaultError> {
        match tokio::time::timeout(self.wait, self.slots.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(VaultError::Unavailable(anyhow::anyhow!(
                "{} large uploads are already streaming on this replica \
                 (storage.max_large_uploads)",
                self.max
            ))),
        }
    }
}

/// What a reconciliation found and did (`{"dry_run", "listed", "orphans", "collected"}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Reconciled {
    pub dry_run: bool,
    /// Objects in the store.
    pub listed: u64,
    /// Of those, the ones nothing named (journalled for the sweep, unless a dry run).
    pub orphans: u64,
    /// Objects the sweep then deleted: the orphans, and any other entry that was due.
    pub collected: u64,
}

/// What an upload's body brings beyond the envelope's first bytes.
#[derive(Default)]
pub struct Streamed {
    /// The rest of the envelope, still arriving; `None` when the first bytes were all of it.
    pub rest: Option<BoxStream<'static, Result<Bytes, VaultError>>>,
    /// The SHA-256 the request's signature vouches for, when authentication could not check
    /// it (it did not read the body): checked once the last byte is in, before anything is
    /// stored.
    pub claimed_sha256: Option<[u8; 32]>,
}

/// A blob's envelope as a read returns it.
pub enum Envelope {
    /// Small blobs, held in the row.
    Whole(Vec<u8>),
    /// Large blobs, opened batch by batch as the client reads; `len` bytes in all.
    Stream {
        len: u64,
        stream: BoxStream<'static, Result<Bytes, VaultError>>,
    },
}

/// How a read will be answered: whole in a JSON document, or streamed raw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadForm {
    Json,
    Raw,
}

fn object_unavailable(e: ObjectError) -> VaultError {
    VaultError::Unavailable(anyhow::Error::new(e).context("object store"))
}

/// A fresh object key for a blob: its id and a random suffix, so that no two uploads ever
/// share an object.
fn object_key(blob_id: &str) -> String {
    let mut suffix = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut suffix);
    format!(
        "{}/{blob_id}/{}",
        crate::objects::LAYOUT,
        hex::encode(suffix)
    )
}

/// Where a streamed upload stands: the hash of every byte so far, and the next chunk index.
struct Sealing {
    hasher: Sha256,
    next_index: u64,
    total: u64,
}

/// What a new large blob is made of before its object exists.
pub(super) struct LargeUpload {
    pub record: BlobRecord,
    pub event: NewEvent,
    pub tenant: String,
    /// The envelope's first bytes (or all of it, for a JSON upload).
    pub prefix: Vec<u8>,
    pub streamed: Streamed,
    /// The length of the age header, checked on `prefix` already.
    pub header_len: usize,
}

impl Vault {
    /// Stores a large blob: seals its envelope into a new object as it arrives, then commits
    /// its row and event. On any failure the object is handed to the sweep, nothing is
    /// visible, and the error says why.
    pub(super) async fn store_large_blob(
        &self,
        caller: &Caller,
        upload: LargeUpload,
    ) -> Result<BlobRecord, VaultError> {
        let _slot = self.objects.uploads.take().await?;
        let key = object_key(&upload.record.id);
        let lease = self.objects.lease_secs;
        self.store
            .register_object(&key, self.clock.now_secs().saturating_add(lease))
            .await?;
        let result = self.upload_and_commit(caller, &key, upload).await;
        if result.is_err() {
            self.abandon_object(&key).await;
        }
        result
    }

    async fn upload_and_commit(
        &self,
        caller: &Caller,
        key: &str,
        upload: LargeUpload,
    ) -> Result<BlobRecord, VaultError> {
        let mut writer = self
            .objects
            .backend
            .create(key)
            .await
            .map_err(object_unavailable)?;
        if let Some(upload_id) = writer.upload_id() {
            if let Err(e) = self.store.note_upload_id(key, &upload_id).await {
                let _ = writer.abort().await;
                return Err(e.into());
            }
        }
        let data_key = Arc::new(DataKey::generate());
        let record = Arc::new(upload.record);
        let filled = self
            .fill_object(
                key,
                &mut writer,
                data_key.clone(),
                record.clone(),
                upload.prefix,
                upload.streamed,
                upload.header_len,
                caller.method.as_str(),
            )
            .await;
        let (size, sha256) = match filled {
            Ok(done) => done,
            Err(e) => {
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(error = %abort, "aborting an object upload failed; the sweep removes it");
                }
                return Err(e);
            }
        };
        writer.finish().await.map_err(object_unavailable)?;
        let record = BlobRecord {
            size: i64::try_from(size).unwrap_or(i64::MAX),
            content_hash: hex::encode(sha256),
            object_key: Some(key.to_owned()),
            ..Arc::unwrap_or_clone(record)
        };
        // A rotation in between only means wrapping the data key again: the object is never
        // resealed.
        self.insert_under_active_key(
            caller,
            &upload.tenant,
            record,
            upload.event,
            Some(key),
            |tenant_key, record| {
                let wrapped = tenant_key
                    .wrap_data_key(&binding(&record), &data_key)
                    .map(|wrapped| (wrapped, Vec::new()))
                    .map_err(|e| VaultError::Internal(e.into()));
                std::future::ready(wrapped)
            },
        )
        .await
    }

    /// Reads the envelope into the object batch by batch, sealing each; returns the
    /// envelope's length and SHA-256 once it is whole and checked.
    #[allow(clippy::too_many_arguments)]
    async fn fill_object(
        &self,
        key: &str,
        writer: &mut Box<dyn ObjectWriter>,
        data_key: Arc<DataKey>,
        record: Arc<BlobRecord>,
        prefix: Vec<u8>,
        streamed: Streamed,
        header_len: usize,
        scheme: &'static str,
    ) -> Result<(u64, [u8; 32]), VaultError> {
        let max = u64::try_from(self.max_payload_bytes).unwrap_or(u64::MAX);
        let mut sealing = Sealing {
            hasher: Sha256::new(),
            next_index: 0,
            total: prefix.len() as u64,
        };
        let mut pending = BytesMut::from(prefix.as_slice());
        drop(prefix);
        let Streamed {
            mut rest,
            claimed_sha256: claimed,
        } = streamed;
        let mut renewed = Instant::now();
        loop {
            while pending.len() > BATCH {
                let batch = pending.split_to(BATCH).freeze();
                sealing = self
                    .seal_batch(writer, sealing, &data_key, &record, batch, false)
                    .await?;
            }
            // Renewed by time, not by batch: a slow client still sending keeps its object.
            self.keep_lease(key, &mut renewed).await?;
            let next = match rest.as_mut() {
                Some(stream) => stream.next().await,
                None => None,
            };
            match next {
                Some(Ok(bytes)) => {
                    sealing.total = sealing.total.saturating_add(bytes.len() as u64);
                    if sealing.total > max {
                        return Err(VaultError::PayloadTooLarge(self.max_payload_bytes));
                    }
                    pending.extend_from_slice(&bytes);
                }
                Some(Err(e)) => return Err(e),
                None => break,
            }
        }
        let batch = pending.freeze();
        let sealing = self
            .seal_batch(writer, sealing, &data_key, &record, batch, true)
            .await?;
        envelope::check_length(sealing.total, header_len)
            .map_err(|e| VaultError::InvalidEnvelope(e.0.to_owned()))?;
        let digest: [u8; 32] = sealing.hasher.finalize().into();
        self.check_claimed_hash(claimed, &digest, scheme)?;
        Ok((sealing.total, digest))
    }

    /// Refuses a body whose hash is not the one its signature vouches for, as authentication
    /// would have.
    pub(super) fn check_claimed_hash(
        &self,
        claimed: Option<[u8; 32]>,
        digest: &[u8; 32],
        scheme: &'static str,
    ) -> Result<(), VaultError> {
        // Not a secret: both are hashes of what this client sent.
        if claimed.is_some_and(|c| &c != digest) {
            self.metrics.auth_failure(scheme, "content_hash");
            return Err(VaultError::Unauthenticated(
                "body does not match X-VE-Content-SHA256",
            ));
        }
        Ok(())
    }

    /// Hashes and seals one batch on the blocking pool, then writes it to the object.
    async fn seal_batch(
        &self,
        writer: &mut Box<dyn ObjectWriter>,
        sealing: Sealing,
        data_key: &Arc<DataKey>,
        record: &Arc<BlobRecord>,
        batch: Bytes,
        ends: bool,
    ) -> Result<Sealing, VaultError> {
        let (data_key, record) = (data_key.clone(), record.clone());
        self.metrics.object_bytes("in", batch.len() as u64);
        let (sealing, sealed) = crate::offload::sized(batch.len(), move || {
            let mut sealing = sealing;
            sealing.hasher.update(&batch);
            let mut out = Vec::with_capacity(batch.len() + BATCH / CHUNK_PLAINTEXT * 16 + 16);
            let sealed = ChunkSealer::new(&data_key, binding(&record))
                .seal(sealing.next_index, &batch, ends, &mut out)
                .map(|count| {
                    sealing.next_index += count;
                    out
                });
            (sealing, sealed)
        })
        .await?;
        let sealed = sealed.map_err(|e| VaultError::Internal(e.into()))?;
        writer
            .write(Bytes::from(sealed))
            .await
            .map_err(object_unavailable)?;
        Ok(sealing)
    }

    /// Renews the upload's lease when a third of it has passed.
    async fn keep_lease(&self, key: &str, renewed: &mut Instant) -> Result<(), VaultError> {
        let every = Duration::from_secs(
            u64::try_from(self.objects.lease_secs / 3)
                .unwrap_or(1)
                .max(1),
        );
        if renewed.elapsed() < every {
            return Ok(());
        }
        *renewed = Instant::now();
        self.keep_object(key).await
    }

    /// Renews an upload's lease for a whole lease from now; an upload whose object the sweep
    /// has claimed stops here (its object is being deleted, so it cannot be stored).
    pub(super) async fn keep_object(&self, key: &str) -> Result<(), VaultError> {
        let lease_end = self
            .clock
            .now_secs()
            .saturating_add(self.objects.lease_secs);
        if self.store.renew_object(key, lease_end).await? {
            Ok(())
        } else {
            Err(VaultError::Unavailable(anyhow::anyhow!(
                "the upload of {key} outlived its lease and its object was collected"
            )))
        }
    }

    /// Hands a failed upload's object to the sweep at once (it may not exist, or be partial).
    async fn abandon_object(&self, key: &str) {
        match self.store.renew_object(key, 0).await {
            Ok(_) => self.wake_object_sweep(),
            Err(e) => tracing::warn!(
                error = %e,
                key,
                "could not hand a failed upload's object to the sweep; it is collected when its lease ends"
            ),
        }
    }

    /// Opens a large blob's object for reading. The first batch is opened before this returns,
    /// so a damaged or misplaced object fails here, before any byte is sent. A failure after
    /// that cuts the answer short; `on_failure`, the read's event, is then recorded again with
    /// the failure as its outcome, since the read was already recorded as granted.
    pub(super) async fn open_object(
        &self,
        meta: &BlobRecord,
        content: &SealedContent,
        data_key: DataKey,
        on_failure: Option<NewEvent>,
    ) -> Result<(u64, BoxStream<'static, Result<Bytes, VaultError>>), VaultError> {
        let key = content.object_key.as_deref().ok_or_else(|| {
            VaultError::Internal(anyhow::anyhow!("blob {} has no object", meta.id))
        })?;
        let size = u64::try_from(meta.size).unwrap_or(0);
        let source = self.objects.backend.read(key).await.map_err(|e| match e {
            ObjectError::NotFound => VaultError::Internal(anyhow::anyhow!(
                "the object {key} of blob {} is missing",
                meta.id
            )),
            other => object_unavailable(other),
        })?;
        let mut reader = ObjectReader {
            source,
            buffer: BytesMut::new(),
            next_index: 0,
            remaining: chunks::sealed_len(size),
            chunks: chunks::chunk_count(size),
            size,
            data_key: Arc::new(data_key),
            record: Arc::new(meta.clone()),
            metrics: self.metrics.clone(),
            sent: 0,
            on_failure: on_failure.and_then(|event| self.failure_record(event)),
        };
        let first = reader.next_batch().await?;
        reader.sent = first.as_ref().map_or(0, |batch| batch.len() as u64);
        let stream = futures_util::stream::iter(first.map(Ok))
            .chain(futures_util::stream::try_unfold(reader, |mut reader| async move {
                let next = reader.next_batch().await;
                if let Err(e) = &next {
                    reader.metrics.object_read_failed();
                    tracing::error!(error = %e.cause_chain(), blob = %reader.record.id, "a large blob's read failed mid-stream; the response is cut short");
                    if let Some(record) = reader.on_failure.take() {
                        // An object that does not open, or a store that stopped answering.
                        let reason = match e {
                            VaultError::Internal(_) => "integrity",
                            _ => "interrupted",
                        };
                        record.append(reason, reader.sent).await;
                    }
                }
                Ok(next?.map(|batch| {
                    reader.sent = reader.sent.saturating_add(batch.len() as u64);
                    (batch, reader)
                }))
            }))
            .boxed();
        Ok((size, stream))
    }

    /// `data-vault admin objects reconcile` (platform admins): journals every object of the
    /// store that neither a blob row nor a journal entry names (an orphan: written after the
    /// backup a database was restored from, say), then sweeps, which deletes them; a dry run
    /// only counts. Recorded as `objects.reconciled` on `system` (dry runs too).
    pub async fn reconcile_objects(
        &self,
        caller: &Caller,
        dry_run: bool,
    ) -> Result<Reconciled, VaultError> {
        let mut event = self.event(
            caller,
            crate::audit::SYSTEM_CHAIN.to_owned(),
            "objects.reconciled",
        );
        self.authorize(caller, super::access::Question::Platform { event: &event })
            .await?;
        self.spend_nonce(caller).await?;
        let mut report = Reconciled {
            dry_run,
            ..Reconciled::default()
        };
        let now = self.clock.now_secs();
        let mut keys = self.objects.backend.list();
        while let Some(key) = keys.next().await {
            let key = key.map_err(object_unavailable)?;
            report.listed += 1;
            if self.store.adopt_orphan_object(&key, now, dry_run).await? {
                report.orphans += 1;
            }
        }
        if !dry_run {
            report.collected = self.collect_objects().await?;
        }
        let details = [
            ("dry_run", report.dry_run.to_string()),
            ("listed", report.listed.to_string()),
            ("orphans", report.orphans.to_string()),
            ("collected", report.collected.to_string()),
        ];
        event.details = Some(
            details
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        );
        self.record(caller, &[event]).await?;
        Ok(report)
    }

    /// What records `event` again, as failed, should an answer already under way be cut
    /// short; `None` once the vault is shutting down.
    pub(super) fn failure_record(&self, event: NewEvent) -> Option<FailureRecord> {
        Some(FailureRecord {
            sink: self.commits.sink()?,
            event,
            clock: self.clock.clone(),
        })
    }

    /// Deletes the objects the journal holds due: those of failed or crashed uploads and of
    /// deleted or shredded blobs. Returns how many were removed. Every replica runs it; the
    /// store hands each entry to one of them.
    pub async fn collect_objects(&self) -> Result<u64, VaultError> {
        let mut removed = 0;
        loop {
            let now = self.clock.now_secs();
            let due = self
                .store
                .claim_due_objects(now, now - STALE_CLAIM_SECS, COLLECT_BATCH)
                .await?;
            let claimed = due.len();
            for object in due {
                match self
                    .objects
                    .backend
                    .delete(&object.object_key, object.upload_id.as_deref())
                    .await
                {
                    Ok(()) => {
                        self.store.forget_object(&object.object_key).await?;
                        self.metrics.object_collected();
                        removed += 1;
                    }
                    // Left claimed: retried once the claim is stale.
                    Err(e) => {
                        tracing::warn!(error = %e, key = object.object_key, "could not delete an object; retrying later");
                    }
                }
            }
            if i64::try_from(claimed).unwrap_or(0) < COLLECT_BATCH {
                self.metrics
                    .object_gc_pending
                    .set(self.store.object_gc_backlog().await?);
                return Ok(removed);
            }
        }
    }

    /// Has the sweep run now: an object became unreferenced here.
    pub(super) fn wake_object_sweep(&self) {
        self.objects.wake.notify_one();
    }

    /// Waits until an object is left behind here or `every` passes, whichever is first (the
    /// sweep's pace).
    pub async fn object_sweep_due(&self, every: Duration) {
        let _ = tokio::time::timeout(every, self.objects.wake.notified()).await;
    }
}

/// Reads sealed chunks from an object and opens them, a batch at a time.
struct ObjectReader {
    source: BoxStream<'static, Result<Bytes, ObjectError>>,
    buffer: BytesMut,
    next_index: u64,
    /// Sealed bytes still expected; the object must hold exactly this many.
    remaining: u64,
    chunks: u64,
    size: u64,
    data_key: Arc<DataKey>,
    record: Arc<BlobRecord>,
    metrics: Arc<crate::metrics::Metrics>,
    /// Envelope bytes handed to the answer so far.
    sent: u64,
    on_failure: Option<FailureRecord>,
}

/// What records an answer cut short (a read, an export): its own event, outcome and time
/// changed.
pub(super) struct FailureRecord {
    sink: crate::store::EventSink,
    event: NewEvent,
    clock: Arc<dyn crate::time::Clock>,
}

impl FailureRecord {
    /// Appends the event with outcome `error` and `reason` (durably, before the client's
    /// connection is cut); `sent`, the bytes the answer held by then.
    pub(super) async fn append(self, reason: &'static str, sent: u64) {
        let mut event = self.event;
        event.id = uuid::Uuid::now_v7().to_string();
        event.timestamp_ms = self.clock.now_millis();
        event.outcome = crate::audit::Outcome::Error;
        event.denial_reason = Some(reason);
        let details = event.details.get_or_insert_with(Default::default);
        details.insert("cut_after_bytes".into(), sent.to_string());
        if let Err(e) = self.sink.append(vec![event]).await {
            tracing::error!(error = %e, "could not record that a read was cut short");
        }
    }
}

impl ObjectReader {
    /// The next batch of envelope bytes, or `None` at the end.
    async fn next_batch(&mut self) -> Result<Option<Bytes>, VaultError> {
        if self.next_index >= self.chunks {
            return match self.source.next().await {
                None => Ok(None),
                Some(Err(e)) => Err(object_unavailable(e)),
                Some(Ok(extra)) if extra.is_empty() => Ok(None),
                Some(Ok(_)) => Err(self.damaged("is longer than its blob")),
            };
        }
        let want = usize::try_from(
            self.remaining
                .min((BATCH / CHUNK_PLAINTEXT * CHUNK_SEALED) as u64),
        )
        .unwrap_or(CHUNK_SEALED);
        while self.buffer.len() < want {
            match self.source.next().await {
                Some(Ok(bytes)) => self.buffer.extend_from_slice(&bytes),
                Some(Err(e)) => return Err(object_unavailable(e)),
                None => return Err(self.damaged("ends early")),
            }
        }
        let sealed = self.buffer.split_to(want).freeze();
        self.remaining -= want as u64;
        let first = self.next_index;
        let count = (want as u64).div_ceil(CHUNK_SEALED as u64);
        self.next_index += count;
        let (data_key, record, size) = (self.data_key.clone(), self.record.clone(), self.size);
        let opened = crate::offload::sized(sealed.len(), move || {
            let mut out = Vec::with_capacity(sealed.len());
            ChunkOpener::new(&data_key, binding(&record), size)
                .open(first, &sealed, &mut out)
                .map(|()| out)
        })
        .await?;
        if let Ok(out) = &opened {
            self.metrics.object_bytes("out", out.len() as u64);
        }
        opened
            .map(|out| Some(Bytes::from(out)))
            .map_err(|_| self.damaged("does not open (moved, swapped or altered chunks)"))
    }

    fn damaged(&self, what: &str) -> VaultError {
        VaultError::Internal(anyhow::anyhow!(
            "the object of blob {} {what}",
            self.record.id
        ))
    }
}
