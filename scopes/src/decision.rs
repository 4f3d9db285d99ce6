//! The access decision of DESIGN §4 as one pure function over facts the caller looked up.

use crate::role::{Role, RoleSet};
use crate::table::ScopeTable;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Create,
    Read,
    ReadMetadata,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Read => "read",
            Action::ReadMetadata => "read_metadata",
            Action::Delete => "delete",
        }
    }
}

/// The facts one decision needs. For `Create`, `owner` is the caller and `blob_org` the org
/// the new blob would belong to.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub caller: &'a str,
    pub action: Action,
    pub scope: &'a str,
    pub owner: &'a str,
    pub blob_org: Option<&'a str>,
    /// An `org_id` the caller supplied with the request, if any.
    pub requested_org: Option<&'a str>,
    /// The caller's roles in `blob_org`; `None` when the caller is not a member of it.
    pub caller_roles: Option<RoleSet>,
    pub reason: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(DenialReason),
}

/// Why access was denied: stable names for the audit log and error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenialReason {
    UnknownScope,
    /// The caller named an org other than the blob's.
    OrgMismatch,
    /// Someone else's blob that belongs to no org: only its owner may touch it.
    NotOwner,
    NotMember,
    RoleNotAllowed,
    ReasonRequired,
    DeleteRequiresAdministrator,
    PlatformAdminRequired,
    AdministratorRequired,
    /// Org-wide audit access needs administrator or moderator.
    AuditorRequired,
}

impl DenialReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DenialReason::UnknownScope => "unknown_scope",
            DenialReason::OrgMismatch => "org_mismatch",
            DenialReason::NotOwner => "not_owner",
            DenialReason::NotMember => "not_member",
            DenialReason::RoleNotAllowed => "role_not_allowed",
            DenialReason::ReasonRequired => "reason_required",
            DenialReason::DeleteRequiresAdministrator => "delete_requires_administrator",
            DenialReason::PlatformAdminRequired => "platform_admin_required",
            DenialReason::AdministratorRequired => "administrator_required",
            DenialReason::AuditorRequired => "auditor_required",
        }
    }

    /// A message safe to show the caller.
    pub fn message(self) -> &'static str {
        match self {
            DenialReason::UnknownScope => "unknown scope",
            DenialReason::OrgMismatch => "org_id does not match the blob's org",
            DenialReason::NotOwner => "only the owner may access this blob",
            DenialReason::NotMember => "caller is not a member of the org",
            DenialReason::RoleNotAllowed => "caller's roles do not allow this in this scope",
            DenialReason::ReasonRequired => "a non-empty reason is required in this scope",
            DenialReason::DeleteRequiresAdministrator => {
                "only the owner or an org administrator may delete"
            }
            DenialReason::PlatformAdminRequired => "only a platform admin may do this",
            DenialReason::AdministratorRequired => "only an org administrator may do this",
            DenialReason::AuditorRequired => {
                "org-wide audit access needs the administrator or moderator role"
            }
        }
    }
}

fn deny(reason: DenialReason) -> Decision {
    Decision::Deny(reason)
}

/// Decides one request. Anything not explicitly allowed is denied.
pub fn decide(table: &ScopeTable, req: &Request<'_>) -> Decision {
    let Some(rule) = table.rule(req.scope) else {
        return deny(DenialReason::UnknownScope);
    };
    // A caller-supplied org never overrides the blob's own: it may only repeat it.
    if let Some(requested) = req.requested_org {
        if req.blob_org != Some(requested) {
            return deny(DenialReason::OrgMismatch);
        }
    }
    if req.action == Action::Create {
        return match (req.blob_org, req.caller_roles) {
            (None, _) | (Some(_), Some(_)) => Decision::Allow,
            (Some(_), None) => deny(DenialReason::NotMember),
        };
    }
    if req.caller == req.owner {
        return Decision::Allow;
    }
    if req.blob_org.is_none() {
        return deny(DenialReason::NotOwner);
    }
    let Some(roles) = req.caller_roles else {
        return deny(DenialReason::NotMember);
    };
    match req.action {
        Action::Delete if roles.contains(Role::Administrator) => Decision::Allow,
        Action::Delete => deny(DenialReason::DeleteRequiresAdministrator),
        _ if !roles.intersects(rule.read_roles) => deny(DenialReason::RoleNotAllowed),
        Action::Read if rule.reason_required && req.reason.is_none_or(|r| r.trim().is_empty()) => {
            deny(DenialReason::ReasonRequired)
        }
        _ => Decision::Allow,
    }
}

#[cfg(test)]
mod tests;
