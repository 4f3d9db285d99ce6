-- The verifiable audit log (DESIGN §16): each chain is also an RFC 6962 Merkle tree.
-- Every perfect subtree is stored once complete (level 0 = leaf hashes); they never change,
-- so proofs for any past tree size are folds over stored rows. Append-only like the events.
CREATE TABLE audit_tree (
    chain TEXT COLLATE "C" NOT NULL,
    level INTEGER NOT NULL,
    idx   BIGINT NOT NULL,
    hash  BYTEA NOT NULL,
    PRIMARY KEY (chain, level, idx)
);

CREATE FUNCTION audit_tree_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_tree is append-only';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_tree_no_update_delete BEFORE UPDATE OR DELETE ON audit_tree
    FOR EACH ROW EXECUTE FUNCTION audit_tree_append_only();
CREATE TRIGGER audit_tree_no_truncate BEFORE TRUNCATE ON audit_tree
    FOR EACH STATEMENT EXECUTE FUNCTION audit_tree_append_only();

-- The roots of the right edge's perfect subtrees (32 bytes each, largest first) at the head's
-- seq: all an append needs. NULL for chains written before this migration: their tree is
-- built from their events on their next append (or at start-up).
ALTER TABLE audit_heads ADD COLUMN tree_frontier BYTEA;
