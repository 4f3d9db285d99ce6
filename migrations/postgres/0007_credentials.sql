-- Credential revocation (DESIGN §15, issue 12). A revoked HMAC client keeps its row (so
-- `admin client list` and the audit trail still name it) but loses every secret in the same
-- transaction; `revoked_at` (Unix seconds) is set once and never cleared.
ALTER TABLE clients ADD COLUMN revoked_at BIGINT;

-- Wallet principals an operator has blocked (`admin principal block`): their signatures are
-- refused with 401 until they are unblocked, which deletes the row.
CREATE TABLE blocked_principals (
    principal  TEXT COLLATE "C" PRIMARY KEY,
    reason     TEXT,
    blocked_at BIGINT NOT NULL
);
