//! The object-store backends (DESIGN §18) against real storage: a directory, and S3 as moto
//! serves it. Each check runs on both, through the same `ObjectBackend` interface.

use crate::moto::Moto;
use bytes::Bytes;
use data_vault::objects::{FileBackend, ObjectBackend, ObjectError, PART_SIZE};
use futures_util::StreamExt;

const MIB: usize = 1024 * 1024;

/// What a test needs kept alive besides the backend: the directory or the S3 server.
enum Keep {
    Dir(#[allow(dead_code)] tempfile::TempDir),
    S3(Moto),
}

/// Generates a `file` and an `s3` test from an `async fn name(store: &dyn ObjectBackend,
/// keep: &Keep)`.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn file() {
                    let (store, keep) = super::file_store();
                    super::$name(&store, &keep).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn s3() {
                    if let Some((store, keep)) = super::s3_store().await {
                        super::$name(&store, &keep).await
                    }
                }
            }
        )*
    };
}

fn file_store() -> (FileBackend, Keep) {
    let dir = tempfile::tempdir().unwrap();
    (FileBackend::new(dir.path().join("objects")), Keep::Dir(dir))
}

async fn s3_store() -> Option<(data_vault::objects::S3Backend, Keep)> {
    let moto = Moto::start().await?;
    Some((moto.backend(None), Keep::S3(moto)))
}

/// `len` bytes that differ from piece to piece, so a lost, doubled or reordered piece shows.
fn pattern(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_u32;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_le_bytes()[0]
        })
        .collect()
}

async fn put(store: &dyn ObjectBackend, key: &str, data: &[u8], piece: usize) {
    let mut writer = store.create(key).await.unwrap();
    for chunk in data.chunks(piece) {
        writer.write(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    writer.finish().await.unwrap();
}

async fn get(store: &dyn ObjectBackend, key: &str) -> Result<Vec<u8>, ObjectError> {
    let mut stream = store.read(key).await?;
    let mut out = Vec::new();
    while let Some(piece) = stream.next().await {
        out.extend_from_slice(&piece?);
    }
    Ok(out)
}

fn is_not_found<T>(result: Result<T, ObjectError>) -> bool {
    matches!(result, Err(ObjectError::NotFound))
}

on_both_stores!(
    twenty_mebibytes_written_a_mebibyte_at_a_time_read_back_byte_for_byte,
    empty_and_one_byte_objects_round_trip,
    an_aborted_object_is_not_readable,
    delete_with_the_upload_id_removes_an_unfinished_upload,
    a_missing_key_is_not_found_and_deleting_it_is_fine,
    keys_that_could_escape_are_refused,
    the_store_answers_ping,
);

async fn twenty_mebibytes_written_a_mebibyte_at_a_time_read_back_byte_for_byte(
    store: &dyn ObjectBackend,
    keep: &Keep,
) {
    let data = pattern(20 * MIB);
    put(store, "v1/big/r1", &data, MIB).await;
    // Streamed: compared piece by piece, none of them the whole object.
    let mut stream = store.read("v1/big/r1").await.unwrap();
    let (mut offset, mut pieces) = (0, 0);
    while let Some(piece) = stream.next().await {
        let piece = piece.unwrap();
        assert!(piece.len() <= PART_SIZE, "a piece of {} bytes", piece.len());
        assert!(
            data.get(offset..offset + piece.len()) == Some(piece.as_ref()),
            "the object differs from what was written at or after byte {offset}"
        );
        offset += piece.len();
        pieces += 1;
    }
    assert_eq!(offset, data.len());
    assert!(pieces > 2, "{pieces} pieces");
    if let Keep::S3(moto) = keep {
        // 20 MiB in 8 MiB parts is three parts, which S3 records in the ETag's suffix.
        let etag = moto.etag("v1/big/r1").await;
        assert!(etag.ends_with("-3\""), "{etag}");
    }
}

async fn empty_and_one_byte_objects_round_trip(store: &dyn ObjectBackend, _keep: &Keep) {
    put(store, "v1/empty/r1", &[], 1).await;
    assert_eq!(get(store, "v1/empty/r1").await.unwrap(), Vec::<u8>::new());
    put(store, "v1/one/r1", &[42], 1).await;
    assert_eq!(get(store, "v1/one/r1").await.unwrap(), vec![42]);
    // Pieces that straddle a part boundary, including an empty write.
    let data = pattern(PART_SIZE + 1);
    let mut writer = store.create("v1/edge/r1").await.unwrap();
    writer.write(Bytes::new()).await.unwrap();
    writer
        .write(Bytes::copy_from_slice(&data[..PART_SIZE - 1]))
        .await
        .unwrap();
    writer
        .write(Bytes::copy_from_slice(&data[PART_SIZE - 1..]))
        .await
        .unwrap();
    writer.finish().await.unwrap();
    assert!(get(store, "v1/edge/r1").await.unwrap() == data);
}

async fn an_aborted_object_is_not_readable(store: &dyn ObjectBackend, keep: &Keep) {
    let mut writer = store.create("v1/aborted/r1").await.unwrap();
    let id = writer.upload_id();
    // More than a part, so S3 holds an uploaded part when the abort comes.
    writer
        .write(Bytes::from(pattern(PART_SIZE + MIB)))
        .await
        .unwrap();
    if let (Keep::S3(moto), Some(id)) = (keep, &id) {
        assert!(moto.open_uploads().await.contains(id.as_str()));
    }
    writer.abort().await.unwrap();
    assert!(is_not_found(get(store, "v1/aborted/r1").await));
    if let Keep::S3(moto) = keep {
        let id = id.expect("S3 uploads have an id");
        assert!(!moto.open_uploads().await.contains(id.as_str()));
    }
}

async fn delete_with_the_upload_id_removes_an_unfinished_upload(
    store: &dyn ObjectBackend,
    keep: &Keep,
) {
    let mut writer = store.create("v1/crashed/r1").await.unwrap();
    let id = writer.upload_id();
    writer
        .write(Bytes::from(pattern(PART_SIZE + 1)))
        .await
        .unwrap();
    // The process "crashes": the writer is dropped, neither finished nor aborted. Only the
    // key and the upload id, which the database recorded, remain.
    drop(writer);
    match (keep, &id) {
        (Keep::S3(moto), Some(id)) => {
            let before = moto.open_uploads().await;
            assert!(
                before.contains(&format!("<UploadId>{id}</UploadId>")),
                "{before}"
            );
        }
        (Keep::Dir(_), None) => {}
        _ => panic!("file writers have no upload id, S3 writers one"),
    }
    store.delete("v1/crashed/r1", id.as_deref()).await.unwrap();
    assert!(is_not_found(get(store, "v1/crashed/r1").await));
    if let (Keep::S3(moto), Some(id)) = (keep, &id) {
        let after = moto.open_uploads().await;
        assert!(!after.contains(id.as_str()), "{after}");
    }
    // The sweep may come again: the same delete is still fine.
    store.delete("v1/crashed/r1", id.as_deref()).await.unwrap();
}

async fn a_missing_key_is_not_found_and_deleting_it_is_fine(
    store: &dyn ObjectBackend,
    _keep: &Keep,
) {
    assert!(is_not_found(store.read("v1/never/r1").await.map(drop)));
    store.delete("v1/never/r1", None).await.unwrap();
    store
        .delete("v1/never/r1", Some("no-such-upload"))
        .await
        .unwrap();
    // A deleted object is gone.
    put(store, "v1/gone/r1", b"bytes", 2).await;
    store.delete("v1/gone/r1", None).await.unwrap();
    assert!(is_not_found(store.read("v1/gone/r1").await.map(drop)));
}

async fn keys_that_could_escape_are_refused(store: &dyn ObjectBackend, _keep: &Keep) {
    for key in [
        "../x",
        "v1/../../x",
        "/etc/passwd",
        "v1//x",
        "V1/x",
        "v1/x?y",
        "",
    ] {
        assert!(
            matches!(
                store.create(key).await.err(),
                Some(ObjectError::InvalidKey(_))
            ),
            "{key:?}"
        );
        assert!(
            matches!(
                store.read(key).await.err(),
                Some(ObjectError::InvalidKey(_))
            ),
            "{key:?}"
        );
        assert!(
            matches!(
                store.delete(key, None).await,
                Err(ObjectError::InvalidKey(_))
            ),
            "{key:?}"
        );
    }
}

async fn the_store_answers_ping(store: &dyn ObjectBackend, _keep: &Keep) {
    store.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_keys_live_under_the_configured_prefix() {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let store = moto.backend(Some("tenant-a/objects"));
    assert_eq!(store.describe(), "s3://vault-objects/tenant-a/objects");
    store.ping().await.unwrap();
    put(&store, "v1/p/r1", b"prefixed", 3).await;
    let raw = moto.raw_get("tenant-a/objects/v1/p/r1").await;
    assert!(raw.status().is_success(), "{}", raw.status());
    assert_eq!(raw.bytes().await.unwrap().as_ref(), b"prefixed");
    assert_eq!(moto.raw_get("v1/p/r1").await.status(), 404);
    assert_eq!(get(&store, "v1/p/r1").await.unwrap(), b"prefixed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_ping_fails_for_a_missing_bucket() {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let mut config = moto.config(None);
    config.url = Some("s3://no-such-bucket".into());
    let store =
        data_vault::objects::S3Backend::with_credentials(&config, Moto::credentials()).unwrap();
    match store.ping().await {
        Err(ObjectError::Unavailable(message)) => {
            assert!(message.contains("listing the bucket"), "{message}");
            assert!(
                !message.contains(crate::moto::SECRET_ACCESS_KEY),
                "{message}"
            );
        }
        other => panic!("a missing bucket answered {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_store_is_built_from_the_default_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("objects");
    let store = data_vault::objects::from_config(&Default::default(), &root).unwrap();
    assert_eq!(store.describe(), format!("file://{}", root.display()));
    put(store.as_ref(), "v1/b/r1", b"on disk", 4).await;
    assert_eq!(std::fs::read(root.join("v1/b/r1")).unwrap(), b"on disk");
}
