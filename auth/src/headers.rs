//! Header names of the wire contract (DESIGN §6).

pub const PRINCIPAL: &str = "x-ve-principal";
pub const TIMESTAMP: &str = "x-ve-timestamp";
pub const NONCE: &str = "x-ve-nonce";
pub const CONTENT_SHA256: &str = "x-ve-content-sha256";
pub const SIGNATURE: &str = "x-ve-signature";
pub const ADDRESS: &str = "x-ve-address";
pub const PUBKEY: &str = "x-ve-pubkey";
