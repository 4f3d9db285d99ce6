//! At-rest sealing: what the database holds is not the envelope, and a row moved to another
//! owner does not open.

use crate::helpers::*;
use crate::on_both_backends;

async fn sealed_row_copied_to_another_owner_does_not_open(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.client(&app.create_client("alice").await);
    let mallory = app.client(&app.create_client("mallory").await);
    let id = alice.create_blob("veid", None).await;

    // Someone with database access re-assigns the row to mallory.
    app.sql(&format!(
        "UPDATE blobs SET owner = 'mallory' WHERE id = '{id}'"
    ))
    .await;
    let response = mallory.get_blob_raw(&id, &ReadQuery::default()).await;
    let (status, code) = error_of(response).await;
    assert_eq!(
        (status, code.as_str()),
        (500, "internal"),
        "the moved row must not decrypt"
    );
}

async fn the_database_never_holds_the_envelope_in_the_clear(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.client(&app.create_client("alice").await);
    let envelope = age_envelope_of_size(4096);
    let response = alice
        .upload_raw(&envelope, &UploadQuery::in_scope("veid"))
        .await;
    assert_eq!(response.status(), 201);
    if backend == Backend::Sqlite {
        // Checkpoint so the file on disk holds everything, then look for the envelope in it.
        app.sql("PRAGMA wal_checkpoint(TRUNCATE)").await;
        let db = std::fs::read(app.dir.path().join("vault.db")).unwrap();
        let needle = &envelope[envelope.len() - 64..];
        assert!(
            !db.windows(needle.len()).any(|w| w == needle),
            "envelope bytes found in the database file"
        );
        let header = b"age-encryption.org/v1";
        assert!(
            !db.windows(header.len()).any(|w| w == header),
            "age header found in the database file"
        );
    }
}

on_both_backends!(
    sealed_row_copied_to_another_owner_does_not_open,
    the_database_never_holds_the_envelope_in_the_clear,
);
