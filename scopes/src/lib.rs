//! Roles, scopes and the access decision of data-vault (DESIGN §4), as data and pure
//! functions. Nothing here does I/O: the service looks up facts, this crate decides.

mod admin;
mod decision;
mod governance;
mod readers;
mod role;
mod table;

pub use admin::{decide_org, decide_org_audit, OrgAction};
pub use decision::{decide, Action, Decision, DenialReason, Request};
pub use governance::{decide_compliance, decide_hold, decide_platform, decide_subject};
pub use readers::{decide_readers_listing, may_read_others};
pub use role::{Role, RoleSet, UnknownRole};
pub use table::{is_valid_scope_name, RawRule, ScopeRule, ScopeTable, ScopeTableError};
