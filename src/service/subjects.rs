//! Data-subject requests (DESIGN §13): the export of everything a principal owns and did, as
//! an NDJSON stream in bounded memory, and erasure by crypto-shredding.

use super::access::Question;
use super::blobs::{binding, BlobMetadata};
use super::objects::Envelope;
use super::retention::Purger;
use super::{Caller, Vault};
use crate::audit::{self, AuditEvent, Details};
use crate::domain::Principal;
use crate::error::VaultError;
use crate::store::{AuditQuery, AuditScope, BlobRecord, PurgeMethod, PurgeSelection};
use crate::time;
use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};
use serde::Serialize;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;

/// The export's lines, produced one at a time as the client reads them.
pub type ExportStream = Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, VaultError>> + Send>>;

/// Blobs' metadata read per page while exporting (their content is read one blob at a time).
const BLOB_PAGE: i64 = 16;
/// Events read per page while exporting.
const EVENT_PAGE: i64 = 500;

/// `{"erased": N, "held": N}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ErasureReport {
    pub erased: u64,
    pub held: i64,
}

impl Vault {
    /// `GET /vault/subjects/{principal}/export`: the principal itself or a platform admin.
    /// The `subject.export` event is durable before the first byte leaves.
    pub async fn export_subject(
        self: &Arc<Self>,
        caller: &Caller,
        subject: &Principal,
    ) -> Result<ExportStream, VaultError> {
        let mut event = self.event(
            caller,
            audit::owner_chain(subject.as_str()),
            "subject.export",
        );
        // About the subject: it sees who exported its data.
        event.owner = Some(subject.as_str().to_owned());
        self.authorize(
            caller,
            Question::Subject {
                subject,
                event: &event,
            },
        )
        .await?;
        self.record(caller, &[event.clone()]).await?;
        let state = Export {
            on_failure: self.failure_record(event),
            sent: 0,
            vault: self.clone(),
            subject: subject.clone(),
            exported_at: time::to_rfc3339(self.clock.now_secs()),
            stage: Stage::Subject,
            blobs: VecDeque::new(),
            blobs_after: None,
            blobs_done: false,
            events: VecDeque::new(),
            events_before: None,
            events_done: false,
            blob_count: 0,
            open_line: None,
            event_count: 0,
        };
        Ok(Box::pin(futures_util::stream::unfold(
            state,
            |mut state| async move {
                match state.next_line().await {
                    Ok(Some(line)) => {
                        state.sent = state.sent.saturating_add(line.len() as u64);
                        Some((Ok(line), state))
                    }
                    Ok(None) => None,
                    Err(e) => {
                        // The stream ends without its `end` line: the client can tell, and
                        // the trail says so next to the export it began as.
                        tracing::error!(error = %e.cause_chain(), "subject export failed mid-stream");
                        if let Some(record) = state.on_failure.take() {
                            record.append("interrupted", state.sent).await;
                        }
                        state.stage = Stage::Done;
                        Some((Err(e), state))
                    }
                }
            },
        )))
    }

    /// `DELETE /vault/subjects/{principal}`: crypto-shreds every blob the principal owns that
    /// is not held, then destroys its personal tenant key once no live blob needs it.
    /// Idempotent; an unknown principal gets zero counts.
    pub async fn erase_subject(
        &self,
        caller: &Caller,
        subject: &Principal,
    ) -> Result<ErasureReport, VaultError> {
        let chain = audit::owner_chain(subject.as_str());
        let mut event = self.event(caller, chain.clone(), "subject.erased");
        event.owner = Some(subject.as_str().to_owned());
        self.authorize(
            caller,
            Question::Subject {
                subject,
                event: &event,
            },
        )
        .await?;
        self.spend_nonce(caller).await?;
        let purger = Purger {
            requester: caller.principal.as_str(),
            auth_method: caller.method.as_str(),
            request_id: &caller.request_id,
        };
        let selection = PurgeSelection::OwnedBy(subject.as_str().to_owned());
        let erased = self
            .purge_all(&selection, &purger, |_| PurgeMethod::CryptoShred, |_| {})
            .await?;
        let held = self.store.purge_backlog(&selection).await?.held;
        let mut key_event = self.event(caller, chain.clone(), "key.destroyed");
        key_event.details = Some(Details::from([("tenant".to_owned(), chain.clone())]));
        let destroyed = self
            .store
            .destroy_tenant_key(&chain, self.clock.now_secs(), &key_event)
            .await
            .map_err(|e| self.store_error(e))?;
        let report = ErasureReport {
            erased: erased.total(),
            held,
        };
        event.details = Some(Details::from([
            ("erased".to_owned(), report.erased.to_string()),
            ("held".to_owned(), report.held.to_string()),
            (
                "tenant_key_destroyed".to_owned(),
                (destroyed > 0).to_string(),
            ),
        ]));
        self.record(caller, &[event]).await?;
        self.refresh_retention_gauges().await;
        Ok(report)
    }

    /// A blob's envelope, opened from its at-rest seal (a large one as a stream); `None` if it
    /// went in the meantime.
    async fn open_for_export(&self, meta: &BlobRecord) -> Result<Option<Envelope>, VaultError> {
        let id = crate::domain::BlobId::parse(&meta.id)?;
        let Some(content) = self.store.blob_content(&id).await? else {
            return Ok(None);
        };
        if content.wrapped_key.is_empty() {
            return Ok(None); // purged since its metadata was read
        }
        let tenant_key = self.unwrap_tenant_key(
            &content.tenant,
            content.key_version,
            &content.tenant_key_wrapped,
            content.master_key_id.as_deref(),
        )?;
        let does_not_open =
            |e| VaultError::Internal(anyhow::anyhow!("blob {} does not open: {e}", meta.id));
        let key = tenant_key
            .unwrap_data_key(&binding(meta), &content.wrapped_key)
            .map_err(does_not_open)?;
        if content.object_key.is_some() {
            let (len, stream) = self.open_object(meta, &content, key, None).await?;
            return Ok(Some(Envelope::Stream { len, stream }));
        }
        key.open(&binding(meta), &content.ciphertext)
            .map(|bytes| Some(Envelope::Whole(bytes)))
            .map_err(does_not_open)
    }
}

/// A large blob's line, written piece by piece as its object is read.
struct OpenLine {
    stream: BoxStream<'static, Result<Bytes, VaultError>>,
    /// Up to two bytes that did not fill a base64 quantum yet.
    carry: Vec<u8>,
}

impl OpenLine {
    /// The next piece of the line's base64 text, or its end.
    async fn next(&mut self) -> Result<Option<Bytes>, VaultError> {
        use base64::Engine;
        let engine = base64::engine::general_purpose::STANDARD;
        match self.stream.next().await {
            Some(piece) => {
                let mut data = std::mem::take(&mut self.carry);
                data.extend_from_slice(&piece?);
                let whole = data.len() / 3 * 3;
                self.carry = data.split_off(whole);
                Ok(Some(Bytes::from(engine.encode(&data))))
            }
            None => Ok(None),
        }
    }

    fn end(self) -> Bytes {
        use base64::Engine;
        let mut tail = base64::engine::general_purpose::STANDARD
            .encode(&self.carry)
            .into_bytes();
        tail.extend_from_slice(b"\"}\n");
        Bytes::from(tail)
    }
}

enum Stage {
    Subject,
    Blobs,
    Events,
    End,
    Done,
}

/// Where an export stands: at most one page of metadata or events, and one blob, in memory.
struct Export {
    /// Records the export again, as failed, should it be cut short.
    on_failure: Option<super::objects::FailureRecord>,
    /// Bytes of the export handed to the answer so far.
    sent: u64,
    vault: Arc<Vault>,
    subject: Principal,
    exported_at: String,
    stage: Stage,
    blobs: VecDeque<BlobRecord>,
    blobs_after: Option<String>,
    blobs_done: bool,
    events: VecDeque<AuditEvent>,
    events_before: Option<i64>,
    events_done: bool,
    blob_count: u64,
    event_count: u64,
    /// The line of a large blob being written.
    open_line: Option<OpenLine>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line<'a> {
    Subject {
        principal: &'a str,
        exported_at: &'a str,
    },
    AuditEvent {
        event: &'a AuditEvent,
    },
    End {
        blobs: u64,
        events: u64,
    },
}

fn ndjson(line: &Line<'_>) -> Result<Bytes, VaultError> {
    let mut bytes = serde_json::to_vec(line).map_err(|e| VaultError::Internal(e.into()))?;
    bytes.push(b'\n');
    Ok(Bytes::from(bytes))
}

/// A blob's line. The base64 text is written as it is (it needs no JSON escaping) rather
/// than passed through the serializer, which would scan megabytes for characters to escape.
fn blob_line(meta: &BlobRecord, envelope: &[u8]) -> Result<Bytes, VaultError> {
    let engine = base64::engine::general_purpose::STANDARD;
    let mut line = blob_line_head(meta, envelope.len() / 3 * 4 + 8)?;
    let start = line.len();
    line.resize(
        start + base64::encoded_len(envelope.len(), true).unwrap_or(0),
        0,
    );
    let written =
        base64::Engine::encode_slice(&engine, envelope, line.get_mut(start..).unwrap_or_default())
            .map_err(|e| VaultError::Internal(e.into()))?;
    line.truncate(start + written);
    line.extend_from_slice(b"\"}\n");
    Ok(Bytes::from(line))
}

/// A blob's line up to the opening quote of its base64 text, with room for `more` bytes.
fn blob_line_head(meta: &BlobRecord, more: usize) -> Result<Vec<u8>, VaultError> {
    let metadata = serde_json::to_vec(&BlobMetadata::from(meta))
        .map_err(|e| VaultError::Internal(e.into()))?;
    let mut line = Vec::with_capacity(metadata.len() + more + 64);
    line.extend_from_slice(br#"{"type":"blob","metadata":"#);
    line.extend_from_slice(&metadata);
    line.extend_from_slice(br#","data_base64":""#);
    Ok(line)
}

impl Export {
    async fn next_line(&mut self) -> Result<Option<Bytes>, VaultError> {
        loop {
            match self.stage {
                Stage::Subject => {
                    self.stage = Stage::Blobs;
                    return ndjson(&Line::Subject {
                        principal: self.subject.as_str(),
                        exported_at: &self.exported_at,
                    })
                    .map(Some);
                }
                Stage::Blobs => {
                    if let Some(open) = self.open_line.as_mut() {
                        match open.next().await? {
                            Some(piece) => return Ok(Some(piece)),
                            None => {
                                let tail = self.open_line.take().map(OpenLine::end);
                                return Ok(tail);
                            }
                        }
                    }
                    if self.blobs.is_empty() && !self.blobs_done {
                        let page = self
                            .vault
                            .store
                            .owned_blobs_page(
                                self.subject.as_str(),
                                self.blobs_after.as_deref(),
                                BLOB_PAGE,
                            )
                            .await?;
                        self.blobs_done = i64::try_from(page.len()).unwrap_or(0) < BLOB_PAGE;
                        self.blobs_after = page.last().map(|b| b.id.clone());
                        self.blobs.extend(page);
                    }
                    let Some(meta) = self.blobs.pop_front() else {
                        self.stage = Stage::Events;
                        continue;
                    };
                    let Some(envelope) = self.vault.open_for_export(&meta).await? else {
                        continue;
                    };
                    self.blob_count += 1;
                    return match envelope {
                        Envelope::Whole(bytes) => blob_line(&meta, &bytes).map(Some),
                        Envelope::Stream { stream, .. } => {
                            self.open_line = Some(OpenLine {
                                stream,
                                carry: Vec::new(),
                            });
                            blob_line_head(&meta, 0).map(|head| Some(Bytes::from(head)))
                        }
                    };
                }
                Stage::Events => {
                    if self.events.is_empty() && !self.events_done {
                        let query = AuditQuery {
                            scope: AuditScope::Principal(self.subject.clone()),
                            blob_id: None,
                            blob_scope: None,
                            requester: None,
                            start_ms: None,
                            end_ms: None,
                            before_gid: self.events_before,
                            limit: EVENT_PAGE,
                        };
                        let page = self.vault.store.audit_query(&query).await?;
                        self.events_done = i64::try_from(page.len()).unwrap_or(0) < EVENT_PAGE;
                        self.events_before = page.last().map(|(gid, _)| *gid);
                        self.events.extend(page.into_iter().map(|(_, e)| e));
                    }
                    let Some(event) = self.events.pop_front() else {
                        self.stage = Stage::End;
                        continue;
                    };
                    self.event_count += 1;
                    return ndjson(&Line::AuditEvent { event: &event }).map(Some);
                }
                Stage::End => {
                    self.stage = Stage::Done;
                    return ndjson(&Line::End {
                        blobs: self.blob_count,
                        events: self.event_count,
                    })
                    .map(Some);
                }
                Stage::Done => return Ok(None),
            }
        }
    }
}
