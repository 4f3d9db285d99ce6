//! Query-string parsing into typed structs, with our error shape. Unknown and repeated
//! parameters are refused, so no parameter can be smuggled past a check.

use crate::error::VaultError;
use serde::de::DeserializeOwned;

pub const MAX_QUERY_LEN: usize = 4096;

pub fn parse<T: DeserializeOwned>(raw: Option<&str>) -> Result<T, VaultError> {
    let raw = raw.unwrap_or("");
    if raw.len() > MAX_QUERY_LEN {
        return Err(VaultError::BadRequest(format!(
            "query string longer than {MAX_QUERY_LEN} bytes"
        )));
    }
    serde_urlencoded::from_str(raw)
        .map_err(|e| VaultError::BadRequest(format!("invalid query string: {e}")))
}
