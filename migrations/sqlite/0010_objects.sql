-- Large attachments (DESIGN §18, issue 17): envelopes above `storage.inline_max_bytes` live in
-- the object store as sealed chunks; the row names the object, and holds no ciphertext.
ALTER TABLE blobs ADD COLUMN object_key TEXT;

-- Every object that may have to be deleted. An upload registers its object here before its
-- first byte (due when its lease ends, renewed while it runs) and its commit removes the
-- entry in the same transaction as the blob's row, so a crash at any point leaves either a
-- visible blob or an entry the sweep collects. The triggers below add the object of every
-- row deleted or shredded, whichever code path did it. The sweep claims an entry (so a late
-- commit of that upload can no longer succeed), deletes the object, then forgets it.
CREATE TABLE object_gc (
    object_key TEXT PRIMARY KEY,
    -- The object store's handle of an unfinished upload (an S3 multipart upload id).
    upload_id  TEXT,
    due_at     BIGINT NOT NULL,
    claimed_at BIGINT
);
CREATE INDEX object_gc_by_due ON object_gc (due_at);

CREATE TRIGGER blobs_object_gone_on_delete AFTER DELETE ON blobs
WHEN OLD.object_key IS NOT NULL
BEGIN
    INSERT INTO object_gc (object_key, due_at) VALUES (OLD.object_key, 0)
        ON CONFLICT (object_key) DO UPDATE SET due_at = 0;
END;

CREATE TRIGGER blobs_object_gone_on_update AFTER UPDATE OF object_key ON blobs
WHEN OLD.object_key IS NOT NULL AND (NEW.object_key IS NULL OR NEW.object_key <> OLD.object_key)
BEGIN
    INSERT INTO object_gc (object_key, due_at) VALUES (OLD.object_key, 0)
        ON CONFLICT (object_key) DO UPDATE SET due_at = 0;
END;
