//! Org roles and small sets of them.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Administrator,
    SupportAgent,
    ServiceProvider,
    Moderator,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::Administrator,
        Role::SupportAgent,
        Role::ServiceProvider,
        Role::Moderator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Administrator => "administrator",
            Role::SupportAgent => "support_agent",
            Role::ServiceProvider => "service_provider",
            Role::Moderator => "moderator",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}; roles are administrator, support_agent, service_provider, moderator")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| UnknownRole(s.chars().take(64).collect()))
    }
}

/// A set of roles. The empty set is plain membership.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RoleSet(u8);

impl RoleSet {
    pub fn contains(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }

    pub fn insert(&mut self, role: Role) {
        self.0 |= role.bit();
    }

    pub fn intersects(self, other: RoleSet) -> bool {
        self.0 & other.0 != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Role> {
        Role::ALL.into_iter().filter(move |r| self.contains(*r))
    }

    /// The roles as a comma-separated list, in a stable order (the storage form).
    pub fn to_list(self) -> String {
        self.iter().map(Role::as_str).collect::<Vec<_>>().join(",")
    }

    /// Parses a comma-separated list; the empty string is the empty set.
    pub fn parse_list(list: &str) -> Result<Self, UnknownRole> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Role::from_str)
            .collect()
    }
}

#[cfg(test)]
impl RoleSet {
    /// The set of the roles whose bits (in `Role::ALL` order) are set: `0..16` is every mix.
    pub(crate) fn from_bits(bits: u8) -> Self {
        Role::ALL
            .into_iter()
            .filter(|r| bits & r.bit() != 0)
            .collect()
    }
}

impl FromIterator<Role> for RoleSet {
    fn from_iter<I: IntoIterator<Item = Role>>(iter: I) -> Self {
        let mut set = RoleSet::default();
        for role in iter {
            set.insert(role);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_list_round_trips_in_stable_order() {
        let set = RoleSet::parse_list("moderator, administrator").unwrap_or_default();
        assert_eq!(set.to_list(), "administrator,moderator");
        assert_eq!(
            RoleSet::parse_list("").map(RoleSet::to_list),
            Ok(String::new())
        );
    }

    #[test]
    fn unknown_role_is_an_error() {
        assert!(RoleSet::parse_list("administrator,root").is_err());
    }
}
