-- Retention, purge and legal hold (DESIGN §12), data-subject erasure (§13).

-- Audit `details`: a JSON object of string values, NULL when an event has none (then the
-- field is absent from the hashed form, so older events keep their hashes).
ALTER TABLE audit_events ADD COLUMN details TEXT;

-- A held blob is skipped by sweeps and erasure and cannot be deleted.
ALTER TABLE blobs ADD COLUMN legal_hold BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE blobs ADD COLUMN hold_reason TEXT;
-- Set on a crypto-shredded tombstone: its data key and ciphertext are gone.
ALTER TABLE blobs ADD COLUMN purged_at BIGINT;
CREATE INDEX blobs_by_expiry ON blobs (expires_at) WHERE purged_at IS NULL;

-- A destroyed tenant key keeps its row (tombstones still name it) but not its material.
ALTER TABLE tenant_keys ADD COLUMN destroyed_at BIGINT;

-- Policies set through the API; they win over those of the configuration file.
CREATE TABLE retention_policies (
    name               TEXT PRIMARY KEY,
    max_retention_days BIGINT,
    default_ttl_days   BIGINT,
    purge_method       TEXT NOT NULL,
    description        TEXT,
    updated_at         BIGINT NOT NULL
);
