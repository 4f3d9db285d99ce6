//! Who may read others' blobs in a scope, for the recipient directory (DESIGN §19). The answer
//! is the access decision itself, asked about a hypothetical read: the directory holds no copy
//! of the rules, so it can never name someone `decide` would refuse, nor leave out someone it
//! would admit.

use crate::decision::{decide, Action, Decision, DenialReason, Request};
use crate::role::RoleSet;
use crate::table::ScopeTable;

/// Whether a member of an org holding `roles` may read a blob that another member stored in
/// that org in `scope`: `decide` asked about exactly that read, with a reason (a reader gives
/// one when it reads). `Err(UnknownScope)` when the table has no such scope.
pub fn may_read_others(
    table: &ScopeTable,
    scope: &str,
    roles: RoleSet,
) -> Result<bool, DenialReason> {
    let read = Request {
        caller: "reader",
        action: Action::Read,
        scope,
        owner: "uploader",
        blob_org: Some("org"),
        requested_org: None,
        caller_roles: Some(roles),
        reason: Some("reading a shared attachment"),
    };
    match decide(table, &read) {
        Decision::Allow => Ok(true),
        Decision::Deny(DenialReason::UnknownScope) => Err(DenialReason::UnknownScope),
        Decision::Deny(_) => Ok(false),
    }
}

/// Listing an org's readers and their recipients: for the org's members (any role, or none).
pub fn decide_readers_listing(caller_roles: Option<RoleSet>) -> Decision {
    match caller_roles {
        Some(_) => Decision::Allow,
        None => Decision::Deny(DenialReason::NotMember),
    }
}

#[cfg(test)]
mod tests;
