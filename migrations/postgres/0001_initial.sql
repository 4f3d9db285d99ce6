-- Initial schema (PostgreSQL). Times are Unix seconds; ids are text.

CREATE TABLE vault_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE clients (
    name       TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);

-- Secrets sealed under the master key; at most two live slots per client (rotation).
CREATE TABLE client_secrets (
    client     TEXT NOT NULL REFERENCES clients (name) ON DELETE CASCADE,
    slot       BIGINT NOT NULL,
    sealed     BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (client, slot)
);

CREATE TABLE orgs (
    id         TEXT COLLATE "C" PRIMARY KEY,
    created_at BIGINT NOT NULL
);

CREATE TABLE memberships (
    org_id     TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    principal  TEXT NOT NULL,
    roles      TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, principal)
);
CREATE INDEX memberships_by_principal ON memberships (principal);

-- Per-tenant keys wrapped by the master key; a tenant is `org:<id>` or `owner:<principal>`.
CREATE TABLE tenant_keys (
    id         TEXT COLLATE "C" PRIMARY KEY,
    tenant     TEXT NOT NULL,
    version    BIGINT NOT NULL,
    wrapped    BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (tenant, version)
);

CREATE TABLE blobs (
    id               TEXT COLLATE "C" PRIMARY KEY,
    scope            TEXT NOT NULL,
    owner            TEXT NOT NULL,
    org_id           TEXT,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT,
    retention_policy TEXT NOT NULL,
    tags             TEXT NOT NULL,
    size             BIGINT NOT NULL,
    content_hash     TEXT NOT NULL,
    key_id           TEXT NOT NULL REFERENCES tenant_keys (id),
    key_version      BIGINT NOT NULL,
    wrapped_key      BYTEA NOT NULL,
    ciphertext       BYTEA NOT NULL
);
CREATE INDEX blobs_by_owner ON blobs (owner, id);
CREATE INDEX blobs_by_org ON blobs (org_id, id);
