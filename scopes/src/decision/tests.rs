//! The decision checked against an independent statement of DESIGN §4 over the whole matrix.

use super::*;
use proptest::prelude::*;

fn table() -> ScopeTable {
    ScopeTable::default_table().unwrap_or_else(|e| unreachable!("{e}"))
}

/// DESIGN §4 restated from the prose, written separately from `decide`: true when allowed.
fn oracle(r: &Request<'_>) -> bool {
    let readers: &[Role] = match r.scope {
        "veid" | "support" => &[Role::Administrator, Role::SupportAgent],
        "market" => &[Role::Administrator, Role::ServiceProvider],
        "audit" => &[Role::Administrator, Role::Moderator],
        _ => return false,
    };
    let needs_reason = r.scope != "market";
    let org_ok = r.requested_org.is_none() || r.requested_org == r.blob_org;
    if !org_ok {
        return false;
    }
    let member = r.caller_roles.is_some();
    let has = |role: Role| r.caller_roles.is_some_and(|s| s.contains(role));
    match r.action {
        Action::Create => r.blob_org.is_none() || member,
        _ if r.caller == r.owner => true,
        Action::Delete => r.blob_org.is_some() && has(Role::Administrator),
        Action::ReadMetadata => r.blob_org.is_some() && readers.iter().any(|x| has(*x)),
        Action::Read => {
            let reason_given = r.reason.is_some_and(|s| !s.trim().is_empty());
            r.blob_org.is_some()
                && readers.iter().any(|x| has(*x))
                && (!needs_reason || reason_given)
        }
    }
}

fn role_set() -> impl Strategy<Value = Option<RoleSet>> {
    prop::option::of((0u8..16).prop_map(RoleSet::from_bits))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]
    #[test]
    fn decision_agrees_with_the_design_over_the_matrix(
        caller_is_owner in any::<bool>(),
        action in prop::sample::select(vec![Action::Create, Action::Read, Action::ReadMetadata, Action::Delete]),
        scope in prop::sample::select(vec!["veid", "support", "market", "audit", "nope"]),
        blob_org in prop::option::of(prop::sample::select(vec!["acme", "globex"])),
        requested_org in prop::option::of(prop::sample::select(vec!["acme", "globex"])),
        caller_roles in role_set(),
        reason in prop::option::of(prop::sample::select(vec!["", "  ", "ticket 42"])),
    ) {
        let req = Request {
            caller: "alice",
            action,
            scope,
            owner: if caller_is_owner { "alice" } else { "bob" },
            blob_org,
            requested_org,
            caller_roles,
            reason,
        };
        prop_assert_eq!(decide(&table(), &req) == Decision::Allow, oracle(&req), "{:?}", req);
    }
}

fn read(caller_roles: Option<RoleSet>, scope: &'static str) -> Request<'static> {
    Request {
        caller: "agent",
        action: Action::Read,
        scope,
        owner: "alice",
        blob_org: Some("acme"),
        requested_org: None,
        caller_roles,
        reason: Some("ticket 42"),
    }
}

fn roles(list: &[Role]) -> Option<RoleSet> {
    Some(list.iter().copied().collect())
}

#[test]
fn support_agent_of_the_blobs_org_may_read_with_a_reason() {
    assert_eq!(
        decide(&table(), &read(roles(&[Role::SupportAgent]), "support")),
        Decision::Allow
    );
}

#[test]
fn support_agent_without_a_reason_is_denied() {
    let req = Request {
        reason: Some(" "),
        ..read(roles(&[Role::SupportAgent]), "support")
    };
    assert_eq!(
        decide(&table(), &req),
        Decision::Deny(DenialReason::ReasonRequired)
    );
}

#[test]
fn naming_another_org_is_a_denial_not_an_override() {
    let req = Request {
        requested_org: Some("globex"),
        ..read(roles(&[Role::Administrator]), "veid")
    };
    assert_eq!(
        decide(&table(), &req),
        Decision::Deny(DenialReason::OrgMismatch)
    );
}

#[test]
fn plain_member_may_not_read_others_blobs() {
    assert_eq!(
        decide(&table(), &read(roles(&[]), "market")),
        Decision::Deny(DenialReason::RoleNotAllowed)
    );
}

#[test]
fn non_member_is_denied() {
    assert_eq!(
        decide(&table(), &read(None, "market")),
        Decision::Deny(DenialReason::NotMember)
    );
}

#[test]
fn support_agent_may_not_delete() {
    let req = Request {
        action: Action::Delete,
        ..read(roles(&[Role::SupportAgent]), "support")
    };
    assert_eq!(
        decide(&table(), &req),
        Decision::Deny(DenialReason::DeleteRequiresAdministrator)
    );
}

#[test]
fn personal_blob_is_owner_only() {
    let req = Request {
        blob_org: None,
        ..read(roles(&[Role::Administrator]), "veid")
    };
    assert_eq!(
        decide(&table(), &req),
        Decision::Deny(DenialReason::NotOwner)
    );
}
