use super::*;
use crate::audit::Outcome;
use proptest::prelude::*;

fn new_event(chain: &str, n: i64) -> NewEvent {
    NewEvent {
        chain: chain.to_owned(),
        id: format!("0190b6a0-0000-7000-8000-{n:012}"),
        timestamp_ms: 1_700_000_000_000 + n,
        event_type: "blob.read",
        blob_id: Some("b".into()),
        scope: Some("veid".into()),
        owner: Some("alice".into()),
        org_id: None,
        requester: "agent".into(),
        auth_method: "hmac",
        outcome: Outcome::Granted,
        denial_reason: None,
        purpose: None,
        reason: Some("ticket \"42\"\n".into()),
        request_id: "r".into(),
        details: None,
    }
}

fn build_chain(len: i64) -> Vec<AuditEvent> {
    let mut previous = GENESIS_HASH.to_owned();
    (1..=len)
        .map(|seq| {
            let event = link(&new_event("org:acme", seq), seq, &previous).unwrap();
            previous.clone_from(&event.hash);
            event
        })
        .collect()
}

fn verify(events: &[AuditEvent], head: Option<(i64, String)>) -> Verification {
    let mut verifier = ChainVerifier::new("org:acme");
    for event in events {
        verifier.push(event);
    }
    verifier.finish(head)
}

fn head_of(events: &[AuditEvent]) -> Option<(i64, String)> {
    events.last().map(|e| (e.seq, e.hash.clone()))
}

#[test]
fn canonical_json_sorts_keys_keeps_nulls_and_escapes_per_rfc_8785() {
    let event = link(&new_event("org:acme", 1), 1, GENESIS_HASH).unwrap();
    let expected = concat!(
        r#"{"auth_method":"hmac","blob_id":"b","chain":"org:acme","denial_reason":null,"#,
        r#""event_type":"blob.read","id":"0190b6a0-0000-7000-8000-000000000001","#,
        r#""org_id":null,"outcome":"granted","owner":"alice","#,
        r#""previous_hash":"0000000000000000000000000000000000000000000000000000000000000000","#,
        r#""purpose":null,"reason":"ticket \"42\"\n","request_id":"r","requester":"agent","#,
        r#""scope":"veid","seq":1,"timestamp":"2023-11-14T22:13:20.001Z"}"#
    );
    assert_eq!(canonical_json(&event).unwrap(), expected);
    // The same digest as `printf '%s' "$expected" | sha256sum` (also in docs/audit-format.md).
    assert_eq!(
        event.hash,
        "3e356b480a344d94cc03fb810a7a54c5e8d7ba88b9a89ba6425edf34a08ef637"
    );
}

#[test]
fn an_intact_chain_verifies() {
    let events = build_chain(5);
    let result = verify(&events, head_of(&events));
    assert!(result.valid);
    assert_eq!(result.length, 5);
    assert_eq!(result.head_hash, events[4].hash);
    assert_eq!(result.first_invalid_seq, None);
    assert!(verify(&[], None).valid, "an empty chain is valid");
}

#[test]
fn an_edited_event_is_found() {
    let mut events = build_chain(5);
    let head = head_of(&events);
    events[2].reason = Some("nothing to see".into());
    assert_eq!(verify(&events, head).first_invalid_seq, Some(3));
}

#[test]
fn a_deleted_event_is_found() {
    let mut events = build_chain(5);
    let head = head_of(&events);
    events.remove(1);
    assert_eq!(verify(&events, head).first_invalid_seq, Some(2));
}

#[test]
fn reordered_events_are_found() {
    let mut events = build_chain(5);
    let head = head_of(&events);
    // Swap the contents of seq 2 and 3, keeping the seq numbers in place.
    let (a, b) = (events[1].clone(), events[2].clone());
    events[1] = AuditEvent { seq: 2, ..b };
    events[2] = AuditEvent { seq: 3, ..a };
    assert_eq!(verify(&events, head).first_invalid_seq, Some(2));
}

#[test]
fn a_truncated_tail_is_found_against_the_head() {
    let mut events = build_chain(5);
    let head = head_of(&events);
    events.truncate(3);
    let result = verify(&events, head);
    assert!(!result.valid);
    assert_eq!(result.first_invalid_seq, Some(4));
}

proptest! {
    #[test]
    fn any_single_field_change_breaks_the_chain(len in 1i64..12, target in 0usize..12, field in 0usize..8) {
        let mut events = build_chain(len);
        let head = head_of(&events);
        let i = target % events.len();
        let e = &mut events[i];
        match field {
            0 => e.requester.push('x'),
            1 => e.outcome = "denied".into(),
            2 => e.timestamp.push('0'),
            3 => e.blob_id = None,
            4 => e.org_id = Some("other".into()),
            5 => e.previous_hash = GENESIS_HASH.replace('0', "1"),
            6 => e.id.push('0'),
            _ => e.hash = GENESIS_HASH.to_owned(),
        }
        prop_assert_eq!(verify(&events, head).first_invalid_seq, Some(i64::try_from(i).unwrap() + 1));
    }
}

proptest! {
    #[test]
    fn the_fast_canonical_form_equals_a_general_jcs_canonicaliser(
        reason in proptest::option::of("\\PC{0,40}|[\u{0}-\u{1f}\"\\\\/\u{7f}\u{2028}\u{e9}\u{1f600}]{0,12}"),
        requester in "[a-z0-9._-]{1,20}",
        // Sequence numbers stay within I-JSON's exact integers (2^53), as JCS requires.
        seq in 1i64..(1i64 << 53),
        // Events with and without details; detail names are ASCII, values anything.
        details in proptest::option::of(proptest::collection::btree_map(
            "[a-z_]{1,16}",
            "\\PC{0,30}|[\u{0}-\u{1f}\"\\\\\u{2028}\u{1f600}]{0,8}",
            1..5,
        )),
    ) {
        let mut new = new_event("org:acme", 1);
        new.details = details;
        let mut event = link(&new, 1, GENESIS_HASH).unwrap();
        event.reason = reason;
        event.requester = requester;
        event.seq = seq;
        prop_assert_eq!(canonical_bytes(&event).unwrap(), canonical_bytes_reference(&event).unwrap());
    }
}

#[test]
fn details_are_hashed_between_denial_reason_and_event_type_and_absent_when_empty() {
    let mut new = new_event("org:acme", 1);
    let without = link(&new, 1, GENESIS_HASH).unwrap();
    new.details = Some(Default::default());
    let empty = link(&new, 1, GENESIS_HASH).unwrap();
    assert_eq!(
        empty.hash, without.hash,
        "empty details are absent, not {{}}"
    );
    assert!(!canonical_json(&without).unwrap().contains("details"));
    new.details = Some(
        [("purge_method", "crypto-shred"), ("content_hash", "ab")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    );
    let with = link(&new, 1, GENESIS_HASH).unwrap();
    let json = canonical_json(&with).unwrap();
    assert!(json.contains(
        r#""denial_reason":null,"details":{"content_hash":"ab","purge_method":"crypto-shred"},"event_type""#
    ), "{json}");
    assert_ne!(with.hash, without.hash);
    assert_eq!(
        verify(
            std::slice::from_ref(&with),
            head_of(std::slice::from_ref(&with))
        )
        .first_invalid_seq,
        None
    );
    let mut edited = with.clone();
    edited
        .details
        .as_mut()
        .unwrap()
        .insert("purge_method".into(), "physical-delete".into());
    assert_eq!(
        verify(&[edited], head_of(&[with])).first_invalid_seq,
        Some(1)
    );
}

proptest! {
    /// The digit-by-digit timestamp is chrono's, byte for byte, over every millisecond chrono
    /// can represent (years beyond 0..=9999 take chrono's own path).
    #[test]
    fn format_timestamp_writes_what_chrono_writes(ms in -8_334_601_228_800_000i64..8_210_266_876_799_999) {
        let expected = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
            .unwrap_or_default();
        prop_assert_eq!(format_timestamp(ms), expected);
    }

    #[test]
    fn format_timestamp_matches_chrono_near_today(ms in 0i64..4_102_444_800_000) {
        let expected = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
            .unwrap_or_default();
        prop_assert_eq!(format_timestamp(ms), expected);
    }
}

#[test]
fn format_timestamp_pads_and_keeps_the_year_range_edges() {
    assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(
        format_timestamp(1_795_000_000_007),
        "2026-11-18T11:06:40.007Z"
    );
    // Year 1 and year 9999 on the fast path; year 10000 and year -1 through chrono.
    assert_eq!(
        format_timestamp(-62_135_596_800_000),
        "0001-01-01T00:00:00.000Z"
    );
    assert_eq!(
        format_timestamp(253_402_300_799_999),
        "9999-12-31T23:59:59.999Z"
    );
    assert_eq!(
        format_timestamp(253_402_300_800_000),
        "+10000-01-01T00:00:00.000Z"
    );
    assert_eq!(
        format_timestamp(-62_198_755_200_000),
        "-0001-01-01T00:00:00.000Z"
    );
    assert_eq!(format_timestamp(i64::MAX), "");
}
