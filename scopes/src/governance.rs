//! Decisions about governing data over time (DESIGN §12–§14): legal holds, platform-wide
//! retention operations, data-subject requests and compliance reports.

use crate::decision::{Decision, DenialReason};
use crate::role::{Role, RoleSet};

/// Setting or releasing a legal hold: an `administrator` of the blob's org, or a platform
/// admin; on a personal blob (no org), platform admins only. `caller_roles` are the
/// caller's roles in the blob's org.
pub fn decide_hold(
    platform_admin: bool,
    blob_has_org: bool,
    caller_roles: Option<RoleSet>,
) -> Decision {
    match caller_roles {
        _ if platform_admin => Decision::Allow,
        _ if !blob_has_org => Decision::Deny(DenialReason::PlatformAdminRequired),
        Some(roles) if roles.contains(Role::Administrator) => Decision::Allow,
        Some(_) => Decision::Deny(DenialReason::AdministratorRequired),
        None => Decision::Deny(DenialReason::NotMember),
    }
}

/// Operations on the whole platform (retention policies, on-demand purge sweeps).
pub fn decide_platform(platform_admin: bool) -> Decision {
    if platform_admin {
        Decision::Allow
    } else {
        Decision::Deny(DenialReason::PlatformAdminRequired)
    }
}

/// Export or erasure of a principal's data: the principal itself, or a platform admin.
pub fn decide_subject(is_subject: bool, platform_admin: bool) -> Decision {
    decide_platform(is_subject || platform_admin)
}

/// The compliance report: platform admins; for one org, also that org's administrators.
pub fn decide_compliance(
    platform_admin: bool,
    for_org: bool,
    caller_roles: Option<RoleSet>,
) -> Decision {
    match caller_roles {
        _ if platform_admin => Decision::Allow,
        _ if !for_org => Decision::Deny(DenialReason::PlatformAdminRequired),
        Some(roles) if roles.contains(Role::Administrator) => Decision::Allow,
        Some(_) => Decision::Deny(DenialReason::AdministratorRequired),
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
    fn holds_on_org_blobs_need_an_org_administrator_or_a_platform_admin() {
        let admin = roles(&[Role::Administrator]);
        assert_eq!(decide_hold(false, true, admin), Decision::Allow);
        assert_eq!(decide_hold(true, true, None), Decision::Allow);
        assert_eq!(
            decide_hold(false, true, roles(&[Role::SupportAgent, Role::Moderator])),
            Decision::Deny(DenialReason::AdministratorRequired)
        );
        assert_eq!(
            decide_hold(false, true, None),
            Decision::Deny(DenialReason::NotMember)
        );
    }

    #[test]
    fn holds_on_personal_blobs_are_for_platform_admins_only() {
        assert_eq!(decide_hold(true, false, None), Decision::Allow);
        assert_eq!(
            decide_hold(false, false, roles(&[Role::Administrator])),
            Decision::Deny(DenialReason::PlatformAdminRequired)
        );
    }

    #[test]
    fn subjects_and_platform_admins_only() {
        assert_eq!(decide_subject(true, false), Decision::Allow);
        assert_eq!(decide_subject(false, true), Decision::Allow);
        assert_eq!(
            decide_subject(false, false),
            Decision::Deny(DenialReason::PlatformAdminRequired)
        );
        assert_eq!(
            decide_platform(false),
            Decision::Deny(DenialReason::PlatformAdminRequired)
        );
    }

    #[test]
    fn compliance_reports_for_an_org_admit_its_administrators() {
        let admin = roles(&[Role::Administrator]);
        assert_eq!(decide_compliance(false, true, admin), Decision::Allow);
        assert_eq!(
            decide_compliance(false, false, admin),
            Decision::Deny(DenialReason::PlatformAdminRequired)
        );
        assert_eq!(
            decide_compliance(false, true, roles(&[Role::Moderator])),
            Decision::Deny(DenialReason::AdministratorRequired)
        );
        assert_eq!(decide_compliance(true, false, None), Decision::Allow);
    }
}
