-- The recipient directory (DESIGN §19): each principal's published age recipients, 1 to 8
-- X25519 public keys checked by the age crate before they are stored, one per line in their
-- canonical (lower-case bech32) form. `updated_at` is Unix seconds.
CREATE TABLE principal_recipients (
    principal  TEXT COLLATE "C" PRIMARY KEY,
    recipients TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
