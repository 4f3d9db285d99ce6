//! The readers of every scope, for every mix of roles, checked against the scope table (the
//! data) and against `decide` (the rule): the directory and the access check cannot disagree.

use super::*;
use crate::role::Role;
use crate::table::RawRule;
use proptest::prelude::*;
use std::collections::BTreeMap;

/// Every one of the 16 sets of roles, plain membership (the empty set) included.
fn every_role_mix() -> impl Iterator<Item = RoleSet> {
    (0u8..16).map(RoleSet::from_bits)
}

fn default_table() -> ScopeTable {
    ScopeTable::default_table().unwrap_or_else(|e| unreachable!("{e}"))
}

fn read_by(roles: RoleSet, scope: &str, reason: Option<&'static str>) -> Decision {
    decide(
        &default_table(),
        &Request {
            caller: "agent",
            action: Action::Read,
            scope,
            owner: "customer",
            blob_org: Some("acme"),
            requested_org: None,
            caller_roles: Some(roles),
            reason,
        },
    )
}

#[test]
fn readers_of_every_scope_are_exactly_the_roles_of_the_scope_table() {
    let table = default_table();
    let mut seen = 0;
    for scope in table.scopes() {
        let rule = table.rule(scope).cloned();
        let Some(rule) = rule else {
            unreachable!("{scope} is listed")
        };
        for roles in every_role_mix() {
            seen += 1;
            assert_eq!(
                may_read_others(&table, scope, roles),
                Ok(roles.intersects(rule.read_roles)),
                "{scope} {roles:?}"
            );
            // And the same answer as the access check gives the read itself.
            assert_eq!(
                may_read_others(&table, scope, roles),
                Ok(read_by(roles, scope, Some("ticket 42")) == Decision::Allow),
                "{scope} {roles:?}"
            );
        }
    }
    assert_eq!(seen, 4 * 16, "every scope of the design, every role mix");
}

#[test]
fn the_design_readers_of_each_scope() {
    let table = default_table();
    let reader = |scope: &str, role: Role| {
        may_read_others(&table, scope, [role].into_iter().collect()).unwrap_or(false)
    };
    assert!(reader("support", Role::SupportAgent));
    assert!(reader("veid", Role::SupportAgent));
    assert!(!reader("support", Role::ServiceProvider));
    assert!(reader("market", Role::ServiceProvider));
    assert!(!reader("market", Role::SupportAgent));
    assert!(reader("audit", Role::Moderator));
    for scope in ["veid", "support", "market", "audit"] {
        assert!(reader(scope, Role::Administrator), "{scope}");
        assert_eq!(
            may_read_others(&table, scope, RoleSet::default()),
            Ok(false)
        );
    }
}

#[test]
fn an_unknown_scope_is_an_error_not_an_empty_list() {
    assert_eq!(
        may_read_others(
            &default_table(),
            "nope",
            [Role::Administrator].into_iter().collect()
        ),
        Err(DenialReason::UnknownScope)
    );
}

#[test]
fn only_members_list_readers() {
    assert_eq!(
        decide_readers_listing(Some(RoleSet::default())),
        Decision::Allow
    );
    assert_eq!(
        decide_readers_listing(None),
        Decision::Deny(DenialReason::NotMember)
    );
}

proptest! {
    /// An operator's own table (the `[scopes]` section of the config) is followed as data:
    /// any table, any scope in it, any role mix.
    #[test]
    fn readers_follow_any_configured_table(
        rules in prop::collection::btree_map("[a-z]{1,8}", (0u8..16, any::<bool>()), 1..6),
        bits in 0u8..16,
    ) {
        let raw: BTreeMap<String, RawRule> = rules
            .iter()
            .map(|(name, (read, reason))| {
                (name.clone(), RawRule {
                    read_roles: RoleSet::from_bits(*read).iter().collect(),
                    reason_required: *reason,
                })
            })
            .collect();
        let table = ScopeTable::from_raw(raw);
        prop_assert!(table.is_ok());
        let Ok(table) = table else { unreachable!() };
        let roles = RoleSet::from_bits(bits);
        for (name, (read, _)) in &rules {
            prop_assert_eq!(
                may_read_others(&table, name, roles),
                Ok(roles.intersects(RoleSet::from_bits(*read)))
            );
        }
        prop_assert_eq!(
            may_read_others(&table, "not-in-the-table-0", roles),
            Err(DenialReason::UnknownScope)
        );
    }
}
