-- The audit log: per-tenant hash chains, append-only.

CREATE TABLE audit_events (
    gid           INTEGER PRIMARY KEY AUTOINCREMENT, -- global order, for paging only; not hashed
    chain         TEXT NOT NULL,
    seq           BIGINT NOT NULL,
    id            TEXT NOT NULL,
    ts_ms         BIGINT NOT NULL,
    event_type    TEXT NOT NULL,
    blob_id       TEXT,
    scope         TEXT,
    owner         TEXT,
    org_id        TEXT,
    requester     TEXT NOT NULL,
    auth_method   TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    denial_reason TEXT,
    purpose       TEXT,
    reason        TEXT,
    request_id    TEXT NOT NULL,
    previous_hash TEXT NOT NULL,
    hash          TEXT NOT NULL,
    UNIQUE (chain, seq)
);
CREATE INDEX audit_by_requester ON audit_events (requester, gid);
CREATE INDEX audit_by_owner ON audit_events (owner, gid);
CREATE INDEX audit_by_blob ON audit_events (blob_id, gid);

-- The head of each chain: appends lock and advance it, so concurrent writers serialise per
-- chain, and verification can tell a truncated tail.
CREATE TABLE audit_heads (
    chain TEXT PRIMARY KEY,
    seq   BIGINT NOT NULL,
    hash  TEXT NOT NULL
);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;

CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
