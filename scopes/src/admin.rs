//! Decisions about orgs and the audit log (DESIGN §4, rules 5 and the admin API): who may
//! manage an org's members, and who may query or verify an org's audit chain.

use crate::decision::{Decision, DenialReason};
use crate::role::{Role, RoleSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrgAction {
    CreateOrg,
    SetMember,
    RemoveMember,
    ListMembers,
}

/// Org management: creating orgs is for platform admins; members are managed by the org's
/// administrators and by platform admins.
pub fn decide_org(
    action: OrgAction,
    platform_admin: bool,
    caller_roles: Option<RoleSet>,
) -> Decision {
    if platform_admin {
        return Decision::Allow;
    }
    match action {
        OrgAction::CreateOrg => Decision::Deny(DenialReason::PlatformAdminRequired),
        _ if caller_roles.is_some_and(|r| r.contains(Role::Administrator)) => Decision::Allow,
        _ if caller_roles.is_none() => Decision::Deny(DenialReason::NotMember),
        _ => Decision::Deny(DenialReason::AdministratorRequired),
    }
}

/// Org-wide audit queries and chain verification: the org's administrators and moderators,
/// and platform admins. (Events about oneself need no decision: they are always visible.)
pub fn decide_org_audit(platform_admin: bool, caller_roles: Option<RoleSet>) -> Decision {
    let auditors: RoleSet = [Role::Administrator, Role::Moderator].into_iter().collect();
    match caller_roles {
        _ if platform_admin => Decision::Allow,
        Some(roles) if roles.intersects(auditors) => Decision::Allow,
        Some(_) => Decision::Deny(DenialReason::AuditorRequired),
        None => Decision::Deny(DenialReason::NotMember),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(list: &[Role]) -> Option<RoleSet> {
        Some(list.iter().copied().collect())
    }

    #[test]
    fn only_platform_admins_create_orgs() {
        assert_eq!(
            decide_org(OrgAction::CreateOrg, true, None),
            Decision::Allow
        );
        assert_eq!(
            decide_org(OrgAction::CreateOrg, false, roles(&[Role::Administrator])),
            Decision::Deny(DenialReason::PlatformAdminRequired)
        );
    }

    #[test]
    fn org_administrators_manage_members_and_others_do_not() {
        for action in [
            OrgAction::SetMember,
            OrgAction::RemoveMember,
            OrgAction::ListMembers,
        ] {
            assert_eq!(
                decide_org(action, false, roles(&[Role::Administrator])),
                Decision::Allow
            );
            assert_eq!(
                decide_org(action, false, roles(&[Role::SupportAgent, Role::Moderator])),
                Decision::Deny(DenialReason::AdministratorRequired)
            );
            assert_eq!(
                decide_org(action, false, None),
                Decision::Deny(DenialReason::NotMember)
            );
            assert_eq!(decide_org(action, true, None), Decision::Allow);
        }
    }

    #[test]
    fn org_audit_needs_administrator_or_moderator() {
        assert_eq!(
            decide_org_audit(false, roles(&[Role::Moderator])),
            Decision::Allow
        );
        assert_eq!(
            decide_org_audit(false, roles(&[Role::Administrator])),
            Decision::Allow
        );
        assert_eq!(
            decide_org_audit(false, roles(&[Role::SupportAgent])),
            Decision::Deny(DenialReason::AuditorRequired)
        );
        assert_eq!(
            decide_org_audit(false, None),
            Decision::Deny(DenialReason::NotMember)
        );
        assert_eq!(decide_org_audit(true, None), Decision::Allow);
    }
}
