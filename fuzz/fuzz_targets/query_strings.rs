//! Fuzzes the query-string parsers of the API through the functions the handlers call
//! (`http::parse::*`): blob read/metadata/delete, blob list, raw upload, audit query and audit
//! verify. Every input goes to all of them, so corpus entries are plain query strings.
//!
//! An accepted query must be within `MAX_QUERY_LEN`, name only the endpoint's parameters and
//! each at most once (so nothing can be smuggled past a check), hold values within their
//! documented bounds, and re-encode to a query that parses to the same values.

#![no_main]

use data_vault::domain::{BlobId, Note, OrgId, Principal, Scope};
use data_vault::http::parse::{
    audit_params, list_params, raw_upload, read_params, verify_org, MAX_QUERY_LEN,
};
use data_vault::time;
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeSet;
use url::form_urlencoded;

/// Checks the parameters of an accepted query: only `allowed` names, none repeated.
fn only_allowed_once(raw: &str, allowed: &[&str]) {
    assert!(
        raw.len() <= MAX_QUERY_LEN,
        "accepted a {}-byte query",
        raw.len()
    );
    let mut seen = BTreeSet::new();
    for (key, _) in form_urlencoded::parse(raw.as_bytes()) {
        assert!(
            allowed.contains(&key.as_ref()),
            "unknown parameter {key:?} in {raw:?}"
        );
        assert!(
            seen.insert(key.clone()),
            "repeated parameter {key:?} in {raw:?}"
        );
    }
}

fn encode<'a>(pairs: impl IntoIterator<Item = (&'a str, String)>) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        out.append_pair(key, &value);
    }
    out.finish()
}

fn check_note(note: &Note) {
    assert!(note.as_str().len() <= Note::MAX_LEN);
    assert!(!note.as_str().chars().any(char::is_control));
}

fn check_scope(scope: &Scope) {
    assert_eq!(Scope::parse(scope.as_str()).as_ref(), Ok(scope));
    assert!(scope.as_str().len() <= 32);
}

fn check_org(org: &OrgId) {
    assert_eq!(OrgId::parse(org.as_str()).as_ref(), Ok(org));
    assert!(org.as_str().len() <= 64);
}

fn read_case(raw: &str) {
    let Ok(params) = read_params(Some(raw)) else {
        return;
    };
    only_allowed_once(raw, &["purpose", "reason", "org_id"]);
    params
        .purpose
        .iter()
        .chain(&params.reason)
        .for_each(check_note);
    params.org_id.iter().for_each(check_org);
    let mut pairs = Vec::new();
    if let Some(p) = &params.purpose {
        pairs.push(("purpose", p.as_str().to_owned()));
    }
    if let Some(r) = &params.reason {
        pairs.push(("reason", r.as_str().to_owned()));
    }
    if let Some(o) = &params.org_id {
        pairs.push(("org_id", o.as_str().to_owned()));
    }
    let again = read_params(Some(&encode(pairs))).expect("re-encoded read query parses");
    assert_eq!(again.purpose, params.purpose);
    assert_eq!(again.reason, params.reason);
    assert_eq!(again.org_id, params.org_id);
}

fn list_case(raw: &str) {
    let Ok(params) = list_params(Some(raw)) else {
        return;
    };
    only_allowed_once(raw, &["scope", "org_id", "limit", "cursor"]);
    assert!(params.limit >= 1);
    params.scope.iter().for_each(check_scope);
    params.org_id.iter().for_each(check_org);
    let mut pairs = vec![("limit", params.limit.to_string())];
    if let Some(s) = &params.scope {
        pairs.push(("scope", s.as_str().to_owned()));
    }
    if let Some(o) = &params.org_id {
        pairs.push(("org_id", o.as_str().to_owned()));
    }
    if let Some(c) = &params.cursor {
        // The cursor is shown in storage form; that form parses back to the same id.
        assert_eq!(BlobId::parse(&c.to_string()), Ok(*c));
        pairs.push(("cursor", c.to_string()));
    }
    let again = list_params(Some(&encode(pairs))).expect("re-encoded list query parses");
    assert_eq!(again.limit, params.limit);
    assert_eq!(again.scope, params.scope);
    assert_eq!(again.org_id, params.org_id);
    assert_eq!(again.cursor, params.cursor);
}

fn upload_case(raw: &str) {
    let Ok(new) = raw_upload(Some(raw), Vec::new()) else {
        return;
    };
    only_allowed_once(raw, &["scope", "org_id", "retention_policy", "expires_at"]);
    check_scope(&new.scope);
    new.org_id.iter().for_each(check_org);
    assert!(new.retention_policy.as_str().len() <= 64);
    if let Some(at) = new.expires_at {
        assert_eq!(time::parse_rfc3339(&time::to_rfc3339(at)), Some(at));
    }
    assert_eq!(new.tags.to_json(), "{}");
}

fn audit_case(raw: &str) {
    let Ok(params) = audit_params(Some(raw)) else {
        return;
    };
    only_allowed_once(
        raw,
        &[
            "blob_id",
            "scope",
            "requester",
            "org_id",
            "start",
            "end",
            "limit",
            "cursor",
        ],
    );
    params.scope.iter().for_each(check_scope);
    params.org_id.iter().for_each(check_org);
    if let Some(p) = &params.requester {
        assert_eq!(Principal::parse(p.as_str()).as_ref(), Ok(p));
        assert!(p.as_str().len() <= Principal::MAX_LEN);
    }
    assert!(params.start.is_none_or(|s| s >= 0));
    assert!(params.end.is_none_or(|e| e >= 0));
    assert!(params.limit.is_none_or(|l| l >= 1));
    assert!(params.cursor.is_none_or(|c| c >= 1));
    if let (Some(start), Some(end)) = (params.start, params.end) {
        assert!(end > start);
    }
    let mut pairs = Vec::new();
    let numbers = [
        ("start", params.start),
        ("end", params.end),
        ("limit", params.limit),
        ("cursor", params.cursor),
    ];
    for (name, value) in numbers {
        if let Some(n) = value {
            pairs.push((name, n.to_string()));
        }
    }
    if let Some(b) = &params.blob_id {
        pairs.push(("blob_id", b.to_string()));
    }
    if let Some(s) = &params.scope {
        pairs.push(("scope", s.as_str().to_owned()));
    }
    if let Some(r) = &params.requester {
        pairs.push(("requester", r.as_str().to_owned()));
    }
    if let Some(o) = &params.org_id {
        pairs.push(("org_id", o.as_str().to_owned()));
    }
    let again = audit_params(Some(&encode(pairs))).expect("re-encoded audit query parses");
    assert_eq!(format!("{again:?}"), format!("{params:?}"));
}

fn verify_case(raw: &str) {
    let Ok(org) = verify_org(Some(raw)) else {
        return;
    };
    only_allowed_once(raw, &["org_id"]);
    org.iter().for_each(check_org);
}

fuzz_target!(|data: &[u8]| {
    // The query reaches the handlers as text (`RawQuery` of the request URI).
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    read_case(raw);
    list_case(raw);
    upload_case(raw);
    audit_case(raw);
    verify_case(raw);
});
