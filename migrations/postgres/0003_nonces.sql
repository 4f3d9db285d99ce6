-- Nonces consumed by authenticated requests (DESIGN §6). A request's nonce is inserted in the
-- same transaction as its audit event (or before any other write it makes), so a nonce that
-- let data out is durably spent on every replica and across restarts of the server, Redis or
-- both. Rows past `expires_ms` (the end of the request's replay window) are pruned.
CREATE TABLE used_nonces (
    principal  TEXT NOT NULL,
    nonce      TEXT NOT NULL,
    expires_ms BIGINT NOT NULL,
    PRIMARY KEY (principal, nonce)
);
CREATE INDEX used_nonces_by_expiry ON used_nonces (expires_ms);
