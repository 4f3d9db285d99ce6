//! The scope table: which roles may read others' org blobs in each scope, and whether such a
//! read must give a reason. Data, loaded from TOML (`scopes/default.toml` unless configured).

use crate::role::{Role, RoleSet};
use serde::Deserialize;
use std::collections::BTreeMap;

const DEFAULT_TABLE: &str = include_str!("../default.toml");
const MAX_SCOPES: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeRule {
    pub read_roles: RoleSet,
    pub reason_required: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeTable {
    rules: BTreeMap<String, ScopeRule>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScopeTableError {
    #[error("scope table is not valid TOML: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("scope name {0:?} must be 1-32 characters of a-z, 0-9, '_' or '-'")]
    BadName(String),
    #[error("the scope table is empty or has more than {MAX_SCOPES} scopes")]
    BadSize,
}

/// A scope rule as written in TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub read_roles: Vec<Role>,
    #[serde(default)]
    pub reason_required: bool,
}

/// Whether `name` is a well-formed scope name.
pub fn is_valid_scope_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl ScopeTable {
    /// The table shipped in `scopes/default.toml`.
    pub fn default_table() -> Result<Self, ScopeTableError> {
        Self::from_toml(DEFAULT_TABLE)
    }

    pub fn from_toml(text: &str) -> Result<Self, ScopeTableError> {
        let raw: BTreeMap<String, RawRule> = toml::from_str(text)?;
        Self::from_raw(raw)
    }

    pub fn from_raw(raw: BTreeMap<String, RawRule>) -> Result<Self, ScopeTableError> {
        if raw.is_empty() || raw.len() > MAX_SCOPES {
            return Err(ScopeTableError::BadSize);
        }
        let mut rules = BTreeMap::new();
        for (name, rule) in raw {
            if !is_valid_scope_name(&name) {
                return Err(ScopeTableError::BadName(name));
            }
            let read_roles = rule.read_roles.into_iter().collect();
            rules.insert(
                name,
                ScopeRule {
                    read_roles,
                    reason_required: rule.reason_required,
                },
            );
        }
        Ok(Self { rules })
    }

    pub fn rule(&self, scope: &str) -> Option<&ScopeRule> {
        self.rules.get(scope)
    }

    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.rules.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_table_matches_the_design() {
        let table = ScopeTable::default_table().unwrap_or_else(|e| unreachable!("{e}"));
        let expect = [
            ("veid", [Role::Administrator, Role::SupportAgent], true),
            ("support", [Role::Administrator, Role::SupportAgent], true),
            (
                "market",
                [Role::Administrator, Role::ServiceProvider],
                false,
            ),
            ("audit", [Role::Administrator, Role::Moderator], true),
        ];
        assert_eq!(table.scopes().count(), 4);
        for (scope, roles, reason) in expect {
            let rule = table.rule(scope).cloned();
            assert_eq!(
                rule,
                Some(ScopeRule {
                    read_roles: roles.into_iter().collect(),
                    reason_required: reason
                }),
                "{scope}"
            );
        }
    }

    #[test]
    fn bad_tables_are_rejected() {
        assert!(ScopeTable::from_toml("").is_err());
        assert!(ScopeTable::from_toml("[Bad]\nread_roles=[]").is_err());
        assert!(ScopeTable::from_toml("[x]\nread_roles=[\"root\"]").is_err());
        assert!(ScopeTable::from_toml("[x]\nread_roles=[]\nextra=1").is_err());
    }
}
