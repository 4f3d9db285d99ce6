-- The verifiable audit log (DESIGN §16): each chain is also an RFC 6962 Merkle tree.
-- Every perfect subtree is stored once complete (level 0 = leaf hashes); they never change,
-- so proofs for any past tree size are folds over stored rows. Append-only like the events.
CREATE TABLE audit_tree (
    chain TEXT NOT NULL,
    level INTEGER NOT NULL,
    idx   BIGINT NOT NULL,
    hash  BLOB NOT NULL,
    PRIMARY KEY (chain, level, idx)
) WITHOUT ROWID;

CREATE TRIGGER audit_tree_no_update BEFORE UPDATE ON audit_tree
BEGIN
    SELECT RAISE(ABORT, 'audit_tree is append-only');
END;

CREATE TRIGGER audit_tree_no_delete BEFORE DELETE ON audit_tree
BEGIN
    SELECT RAISE(ABORT, 'audit_tree is append-only');
END;

-- The roots of the right edge's perfect subtrees (32 bytes each, largest first) at the head's
-- seq: all an append needs. NULL for chains written before this migration: their tree is
-- built from their events on their next append (or at start-up).
ALTER TABLE audit_heads ADD COLUMN tree_frontier BLOB;
