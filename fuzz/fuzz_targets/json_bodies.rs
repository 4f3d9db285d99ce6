//! Fuzzes the JSON request bodies, through the very functions the handlers call:
//! `POST /api/v1/vault/blobs` (`http::parse::json_upload`) and the org member PUT
//! (`http::parse::member_roles`). Every input goes to both parsers, so corpus entries are plain
//! JSON files.
//!
//! An accepted body must hold only documented fields, each within its documented bounds, and
//! the parsed values must round-trip: base64 payload, RFC 3339 expiry, tags as stored, roles.

#![no_main]

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use data_vault::domain::{OrgId, RetentionPolicy, Scope, Tags};
use data_vault::error::VaultError;
use data_vault::http::parse::{json_upload, member_roles};
use data_vault::time;
use data_vault_scopes::{Role, RoleSet};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::collections::BTreeMap;
use std::str::FromStr;

/// A small envelope limit, so that the size check is reachable by small inputs.
const SMALL_MAX: usize = 256;
/// The default limit (`limits.max_payload_bytes`, 10 MiB).
const LARGE_MAX: usize = 10 * 1024 * 1024;

const UPLOAD_FIELDS: [&str; 7] = [
    "scope",
    "payload_base64",
    "content_base64",
    "org_id",
    "retention_policy",
    "expires_at",
    "tags",
];
const MAX_ROLES: usize = 16;

fn is_name(text: &str, max: usize, extra: &[u8]) -> bool {
    (1..=max).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || extra.contains(&b))
}

fn upload_case(data: &[u8]) {
    let small = json_upload(data, SMALL_MAX);
    let large = json_upload(data, LARGE_MAX);
    let new = match (small, large) {
        (Ok(small), Ok(large)) => {
            assert_eq!(
                format!("{small:?}"),
                format!("{large:?}"),
                "limit changed the parse"
            );
            assert!(small.envelope.len() <= SMALL_MAX + 2);
            large
        }
        (Err(VaultError::PayloadTooLarge(max)), Ok(large)) => {
            assert_eq!(max, SMALL_MAX);
            assert!(large.envelope.len() > SMALL_MAX);
            large
        }
        (Ok(_), Err(e)) => panic!("accepted under the small limit, refused under the large: {e}"),
        (Err(_), Err(_)) => return,
        (Err(e), Ok(_)) => panic!("refused under the small limit only, but not for size: {e}"),
    };
    assert!(new.envelope.len() <= LARGE_MAX + 2);

    // Only documented fields, in a JSON object, exactly one payload field.
    let json: Value = serde_json::from_slice(data).expect("accepted body is JSON");
    let object = json.as_object().expect("accepted body is an object");
    assert!(
        object.keys().all(|k| UPLOAD_FIELDS.contains(&k.as_str())),
        "{object:?}"
    );
    // `null` is an absent optional field.
    let field = |name: &str| object.get(name).filter(|v| !v.is_null());
    let encoded = match (field("payload_base64"), field("content_base64")) {
        (Some(Value::String(p)), None) | (None, Some(Value::String(p))) => p,
        other => panic!("accepted with payload fields {other:?}"),
    };
    // The payload is canonical base64 of exactly the stored envelope.
    assert_eq!(&STANDARD.encode(&new.envelope), encoded);

    assert!(is_name(new.scope.as_str(), 32, b"_-"), "{:?}", new.scope);
    assert_eq!(Scope::parse(new.scope.as_str()).as_ref(), Ok(&new.scope));
    if let Some(org) = &new.org_id {
        assert!(is_name(org.as_str(), 64, b"._-"));
        assert_eq!(OrgId::parse(org.as_str()).as_ref(), Ok(org));
    }
    assert!(is_name(new.retention_policy.as_str(), 64, b"_-"));
    assert_eq!(
        RetentionPolicy::parse(new.retention_policy.as_str()).as_ref(),
        Ok(&new.retention_policy)
    );
    if let Some(at) = new.expires_at {
        // What we show is what we parsed.
        assert_eq!(time::parse_rfc3339(&time::to_rfc3339(at)), Some(at), "{at}");
    }

    // Tags as stored read back the same, and within the bounds.
    let stored = new.tags.to_json();
    assert_eq!(Tags::from_json(&stored).as_ref(), Ok(&new.tags));
    let map: BTreeMap<String, String> = serde_json::from_str(&stored).expect("tags are a map");
    assert!(map.len() <= Tags::MAX_TAGS);
    for (key, value) in &map {
        assert!((1..=Tags::MAX_KEY).contains(&key.len()), "{key:?}");
        assert!(value.len() <= Tags::MAX_VALUE, "{value:?}");
        assert!(!key.chars().chain(value.chars()).any(char::is_control));
    }
}

fn members_case(data: &[u8]) {
    let Ok(roles) = member_roles(data) else {
        return;
    };
    // The set prints and parses back to itself.
    assert_eq!(RoleSet::parse_list(&roles.to_list()), Ok(roles));
    let json: Value = serde_json::from_slice(data).expect("accepted body is JSON");
    let object = json.as_object().expect("accepted body is an object");
    assert!(object.keys().all(|k| k == "roles"), "{object:?}");
    let list = object
        .get("roles")
        .and_then(Value::as_array)
        .expect("accepted body has a roles array");
    assert!(list.len() <= MAX_ROLES, "{} roles accepted", list.len());
    // Each element is one role by its exact name, and the set is those roles.
    let mut expected = RoleSet::default();
    for element in list {
        let name = element.as_str().expect("roles are strings");
        let role = Role::from_str(name)
            .unwrap_or_else(|_| panic!("element {name:?} accepted but is not a role name"));
        expected.insert(role);
    }
    assert_eq!(roles, expected);
}

fuzz_target!(|data: &[u8]| {
    upload_case(data);
    members_case(data);
});
