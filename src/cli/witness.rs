//! `data-vault audit witness|prove`: an outsider's checks of the verifiable audit log
//! (DESIGN §16), over HTTP with the caller's credentials, trusting only the log's verifier key.

use super::blob::Connection;
use super::client::VaultClient;
use crate::audit::note::{Checkpoint, NoteVerifier, MAX_NOTE_BYTES};
use crate::audit::tree::{self, Hash};
use anyhow::Context;
use reqwest::{Method, StatusCode};
use std::path::Path;

const CHECKPOINT: &str = "/api/v1/vault/audit/checkpoint";

/// What a witness keeps between runs: the verifier key it trusts and the last checkpoint it
/// accepted (the whole signed note, re-verified on every load).
#[derive(serde::Serialize, serde::Deserialize)]
struct WitnessState {
    chain: String,
    log_key: String,
    checkpoint: String,
}

/// The verifier key: given on the command line, else pinned in the state, else (first run
/// only) fetched from the server and pinned from then on.
async fn verifier(
    client: &VaultClient,
    given: Option<&str>,
    pinned: Option<&str>,
) -> anyhow::Result<NoteVerifier> {
    let text = match (given, pinned) {
        (Some(given), Some(pinned)) if given.trim() != pinned => anyhow::bail!(
            "INCONSISTENT: the log key given ({given}) is not the one pinned in the state \
             ({pinned})"
        ),
        (Some(key), _) | (None, Some(key)) => key.trim().to_owned(),
        (None, None) => {
            let info: serde_json::Value = client
                .call(Method::GET, "/api/v1/vault/audit/log-key", &[], None, None)
                .await?
                .json()
                .await?;
            let key = info
                .get("key")
                .and_then(serde_json::Value::as_str)
                .context("the log-key answer has no key")?
                .to_owned();
            eprintln!("trusting the log key the server gave on first use: {key}");
            key
        }
    };
    NoteVerifier::parse(&text).map_err(Into::into)
}

/// Fetches the chain's checkpoint; `None` when the server says the chain does not exist.
async fn fetch_checkpoint(client: &VaultClient, chain: &str) -> anyhow::Result<Option<String>> {
    let response = client
        .send(Method::GET, CHECKPOINT, &[("chain", chain)], None, None)
        .await?;
    if response.status() == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let response = if response.status().is_success() {
        response
    } else {
        // Let `call` render the error the way every other command does.
        client
            .call(Method::GET, CHECKPOINT, &[("chain", chain)], None, None)
            .await?
    };
    let bytes = response.bytes().await?;
    anyhow::ensure!(bytes.len() <= MAX_NOTE_BYTES, "the checkpoint is too large");
    Ok(Some(
        String::from_utf8(bytes.to_vec()).context("the checkpoint is not UTF-8")?,
    ))
}

/// Opens a signed checkpoint of `chain` with `key`, checking its origin.
fn open_checkpoint(key: &NoteVerifier, chain: &str, note: &str) -> anyhow::Result<Checkpoint> {
    let body = key
        .open(note)
        .context("INCONSISTENT: checkpoint signature")?;
    let checkpoint = Checkpoint::parse(body)?;
    let origin = format!("{}/{chain}", key.name());
    anyhow::ensure!(
        checkpoint.origin == origin,
        "INCONSISTENT: the checkpoint is for {:?}, not {origin:?}",
        checkpoint.origin
    );
    Ok(checkpoint)
}

fn hashes(value: &serde_json::Value) -> anyhow::Result<Vec<Hash>> {
    let list = value
        .get("proof")
        .and_then(serde_json::Value::as_array)
        .context("the answer has no proof")?;
    anyhow::ensure!(list.len() <= 128, "the proof is too long");
    list.iter()
        .map(|h| {
            let mut out = [0u8; 32];
            hex::decode_to_slice(h.as_str().unwrap_or_default(), &mut out)
                .context("a proof hash is not 64 hex characters")?;
            Ok(out)
        })
        .collect()
}

fn write_state(path: &Path, state: &WitnessState) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(state)?)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
}

/// `audit witness`: the chain's new checkpoint must be signed by the log key and consistent
/// with the one stored in `state_file`; then it replaces it.
pub(super) async fn witness(
    connection: &Connection,
    chain: &str,
    state_file: &Path,
    log_key: Option<&str>,
) -> anyhow::Result<()> {
    let client = connection.client()?;
    let previous: Option<WitnessState> = match std::fs::read(state_file) {
        Ok(bytes) => Some(
            serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not a witness state", state_file.display()))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", state_file.display())),
    };
    if let Some(state) = &previous {
        anyhow::ensure!(
            state.chain == chain,
            "{} witnesses chain {}, not {chain}",
            state_file.display(),
            state.chain
        );
    }
    let key = verifier(
        &client,
        log_key,
        previous.as_ref().map(|s| s.log_key.as_str()),
    )
    .await?;
    let old = previous
        .as_ref()
        .map(|s| open_checkpoint(&key, chain, &s.checkpoint))
        .transpose()
        .context("the stored checkpoint")?;
    let Some(note) = fetch_checkpoint(&client, chain).await? else {
        match &old {
            Some(old) => anyhow::bail!(
                "INCONSISTENT: chain {chain} vanished: the server has no such chain, but it had \
                 {} events when last witnessed (see runbooks/audit-integrity.md)",
                old.size
            ),
            None => anyhow::bail!("chain {chain} does not exist (or is not visible to you)"),
        }
    };
    let new = open_checkpoint(&key, chain, &note)?;
    if let Some(old) = &old {
        if new.size < old.size {
            anyhow::bail!(
                "INCONSISTENT: chain {chain} was truncated: {} events now, {} when last \
                 witnessed (see runbooks/audit-integrity.md)",
                new.size,
                old.size
            );
        }
        let (from, to) = (old.size.to_string(), new.size.to_string());
        let proof: serde_json::Value = client
            .call(
                Method::GET,
                "/api/v1/vault/audit/proof/consistency",
                &[("chain", chain), ("from", &from), ("to", &to)],
                None,
                None,
            )
            .await?
            .json()
            .await?;
        tree::verify_consistency(old.size, new.size, &old.root, &new.root, &hashes(&proof)?)
            .map_err(|e| {
                anyhow::anyhow!(
                    "INCONSISTENT: chain {chain} was rewritten: the tree of {} events is not an \
                     extension of the one of {} events witnessed before ({e}; see \
                     runbooks/audit-integrity.md)",
                    new.size,
                    old.size
                )
            })?;
        out!(
            "{chain}: consistent, {} -> {} events, root {}",
            old.size,
            new.size,
            hex::encode(new.root)
        )?;
    } else {
        out!(
            "{chain}: first checkpoint stored, {} events, root {}",
            new.size,
            hex::encode(new.root)
        )?;
    }
    write_state(
        state_file,
        &WitnessState {
            chain: chain.to_owned(),
            log_key: key.to_string(),
            checkpoint: note,
        },
    )
}

/// `audit prove`: the inclusion proof of event `seq` in the chain's signed checkpoint.
pub(super) async fn prove(
    connection: &Connection,
    chain: &str,
    seq: u64,
    expected_hash: Option<&str>,
    log_key: Option<&str>,
) -> anyhow::Result<()> {
    let client = connection.client()?;
    let key = verifier(&client, log_key, None).await?;
    let note = fetch_checkpoint(&client, chain)
        .await?
        .with_context(|| format!("chain {chain} does not exist (or is not visible to you)"))?;
    let checkpoint = open_checkpoint(&key, chain, &note)?;
    let (seq_text, size) = (seq.to_string(), checkpoint.size.to_string());
    let answer: serde_json::Value = client
        .call(
            Method::GET,
            "/api/v1/vault/audit/proof/inclusion",
            &[("chain", chain), ("seq", &seq_text), ("tree_size", &size)],
            None,
            None,
        )
        .await?
        .json()
        .await?;
    let event_hash = answer
        .get("event_hash")
        .and_then(serde_json::Value::as_str)
        .context("the answer has no event_hash")?;
    if let Some(expected) = expected_hash {
        anyhow::ensure!(
            expected.eq_ignore_ascii_case(event_hash),
            "the event at seq {seq} has hash {event_hash}, not {expected}"
        );
    }
    let mut input = [0u8; 32];
    hex::decode_to_slice(event_hash, &mut input).context("event_hash is not 64 hex")?;
    let proof = hashes(&answer)?;
    let index = seq.checked_sub(1).context("seq starts at 1")?;
    tree::verify_inclusion(
        index,
        checkpoint.size,
        &tree::leaf_hash(&input),
        &proof,
        &checkpoint.root,
    )
    .map_err(|e| anyhow::anyhow!("INCONSISTENT: the inclusion proof does not verify: {e}"))?;
    out!("{note}")?;
    out!("{}", serde_json::to_string_pretty(&answer)?)?;
    out!(
        "{chain}/{seq} (event hash {event_hash}) is included in the signed tree of {} events",
        checkpoint.size
    )?;
    Ok(())
}
