//! JSON request bodies into typed structs, with our error shape. A body must be a JSON object:
//! serde would also fill a struct from a positional array (`[["administrator"]]`), a second
//! spelling of every body that no documented client sends and no reviewer expects.

use crate::error::VaultError;
use serde::de::DeserializeOwned;

pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, VaultError> {
    // JSON whitespace is a subset of ASCII whitespace; anything else before the `{` makes
    // serde_json fail anyway, so this check admits objects only.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(VaultError::BadRequest(
            "invalid JSON body: expected a JSON object".into(),
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| VaultError::BadRequest(format!("invalid JSON body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        roles: Vec<String>,
    }

    #[test]
    fn objects_parse() {
        let body = parse::<Body>(b" \n{\"roles\": [\"moderator\"]}").map(|b| b.roles);
        assert_eq!(body.ok(), Some(vec!["moderator".to_owned()]));
    }

    // Found by the `json_bodies` fuzz target: `[[]]` was accepted as `{"roles": []}`.
    #[test]
    fn positional_arrays_and_other_json_are_refused() {
        for body in [
            &b"[[]]"[..],
            b"[[\"administrator\"]]",
            b" [[]]",
            b"null",
            b"\"x\"",
            b"",
        ] {
            assert!(
                matches!(parse::<Body>(body), Err(VaultError::BadRequest(_))),
                "{:?} was accepted",
                String::from_utf8_lossy(body)
            );
        }
    }
}
