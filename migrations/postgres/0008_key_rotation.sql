-- Key rotation without downtime (DESIGN §15, issue 12).

-- Tenant key versions carry a status: `active` wraps new data keys (one per tenant),
-- `retired` only opens data keys it wrapped before a rotation, `destroyed` keeps its row
-- (tombstones still name it) but no material.
ALTER TABLE tenant_keys ADD COLUMN status TEXT NOT NULL DEFAULT 'active';
UPDATE tenant_keys SET status = 'destroyed' WHERE destroyed_at IS NOT NULL;
UPDATE tenant_keys SET status = 'retired'
    WHERE status = 'active' AND version < (SELECT MAX(t.version) FROM tenant_keys t
        WHERE t.tenant = tenant_keys.tenant AND t.destroyed_at IS NULL);

-- One active version per tenant: two replicas creating a tenant's first key at once cannot
-- both win (the loser's insert does nothing, and it reads the winner's).
CREATE UNIQUE INDEX tenant_keys_one_active ON tenant_keys (tenant) WHERE status = 'active';

-- The master key (its public id, the first 16 hex characters of its check value) that wraps
-- each tenant key and client secret, so a keyring of several master keys opens each with the
-- right one and start-up can name a missing one. Rows from before were all wrapped by the
-- key whose check value the database recorded.
ALTER TABLE tenant_keys ADD COLUMN master_key_id TEXT;
ALTER TABLE client_secrets ADD COLUMN master_key_id TEXT;
UPDATE tenant_keys SET master_key_id =
    (SELECT substr(value, 1, 16) FROM vault_meta WHERE key = 'master_key_check');
UPDATE client_secrets SET master_key_id =
    (SELECT substr(value, 1, 16) FROM vault_meta WHERE key = 'master_key_check');

-- Tenant key rotations: the background rewrap of every data key of a tenant under its new
-- version. Progress lives here, so any replica (or a restarted one) resumes a rotation.
CREATE TABLE key_rotations (
    id           TEXT COLLATE "C" PRIMARY KEY,
    tenant       TEXT COLLATE "C" NOT NULL,
    from_version BIGINT NOT NULL,
    to_version   BIGINT NOT NULL,
    emergency    BOOLEAN NOT NULL,
    reason       TEXT,
    requester    TEXT NOT NULL,
    status       TEXT NOT NULL,
    rewrapped    BIGINT NOT NULL,
    total        BIGINT NOT NULL,
    started_at   BIGINT NOT NULL,
    completed_at BIGINT
);
-- At most one running rotation per tenant: a second start is a constraint violation (409).
CREATE UNIQUE INDEX key_rotations_one_running ON key_rotations (tenant) WHERE status = 'running';
CREATE INDEX key_rotations_by_status ON key_rotations (status);

-- The rewrap finds a tenant's blobs by the key version that wraps them.
CREATE INDEX blobs_by_key ON blobs (key_id, id);
