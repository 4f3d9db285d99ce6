-- The audit log: per-tenant hash chains, append-only.

CREATE TABLE audit_events (
    gid           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- global order, for paging only; not hashed
    chain         TEXT COLLATE "C" NOT NULL,
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
    chain TEXT COLLATE "C" PRIMARY KEY,
    seq   BIGINT NOT NULL,
    hash  TEXT NOT NULL
);

CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_events_no_update_delete BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
