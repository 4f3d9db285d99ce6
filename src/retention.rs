//! Retention policies (DESIGN §12) as data: their validation, and the expiry they give a new
//! blob. Pure: the service looks the policy up, the store purges.

use crate::domain::RetentionPolicy;
use crate::store::PurgeMethod;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const DAY_SECS: i64 = 86_400;
/// The longest retention or TTL a policy may name: a century. More is a typo, not a policy.
pub const MAX_DAYS: i64 = 36_500;
/// Longest policy description, in bytes.
pub const MAX_DESCRIPTION_LEN: usize = 512;
/// The policy every deployment has unless it reconfigures it.
pub const STANDARD: &str = "standard";

/// A named policy, exactly as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    pub name: String,
    pub max_retention_days: Option<i64>,
    pub default_ttl_days: Option<i64>,
    pub purge_method: PurgeMethod,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A policy's settings as the configuration file and the API body spell them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    #[serde(default)]
    pub max_retention_days: Option<i64>,
    #[serde(default)]
    pub default_ttl_days: Option<i64>,
    pub purge_method: String,
    #[serde(default)]
    pub description: Option<String>,
}

/// A new blob's `expires_at` is later than its policy allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    pub max_retention_days: i64,
}

impl Policy {
    /// `standard`: no maximum, no default TTL, physical delete.
    pub fn standard() -> Self {
        Self {
            name: STANDARD.to_owned(),
            max_retention_days: None,
            default_ttl_days: None,
            purge_method: PurgeMethod::PhysicalDelete,
            description: None,
        }
    }

    /// Checks a policy's name and settings; the message names the offending field.
    pub fn new(name: &str, settings: PolicySettings) -> Result<Self, String> {
        let name = RetentionPolicy::parse(name).map_err(|e| e.0)?;
        for (field, days) in [
            ("max_retention_days", settings.max_retention_days),
            ("default_ttl_days", settings.default_ttl_days),
        ] {
            if let Some(days) = days {
                if !(1..=MAX_DAYS).contains(&days) {
                    return Err(format!(
                        "{field} must be a whole number of days from 1 to {MAX_DAYS}, not {days}"
                    ));
                }
            }
        }
        if let (Some(ttl), Some(max)) = (settings.default_ttl_days, settings.max_retention_days) {
            if ttl > max {
                return Err(format!(
                    "default_ttl_days ({ttl}) must not exceed max_retention_days ({max})"
                ));
            }
        }
        let purge_method = PurgeMethod::parse(&settings.purge_method).ok_or_else(|| {
            format!(
                "purge_method must be physical-delete or crypto-shred, not {:?}",
                settings.purge_method
            )
        })?;
        if let Some(description) = &settings.description {
            if description.len() > MAX_DESCRIPTION_LEN || description.chars().any(char::is_control)
            {
                return Err(format!(
                    "description must be at most {MAX_DESCRIPTION_LEN} bytes without control \
                     characters"
                ));
            }
        }
        Ok(Self {
            name: name.as_str().to_owned(),
            max_retention_days: settings.max_retention_days,
            default_ttl_days: settings.default_ttl_days,
            purge_method,
            description: settings.description,
        })
    }

    /// The expiry of a blob created at `now` asking for `requested`: the default TTL fills a
    /// missing one; past the maximum is refused; and with a maximum but neither an expiry
    /// nor a default TTL, the blob expires at the maximum (nothing outlives its policy).
    pub fn expiry(&self, now: i64, requested: Option<i64>) -> Result<Option<i64>, Exceeded> {
        let days = |d: i64| now.saturating_add(d.saturating_mul(DAY_SECS));
        let expires = requested.or(self.default_ttl_days.map(days));
        let Some(max) = self.max_retention_days else {
            return Ok(expires);
        };
        let limit = days(max);
        match expires {
            Some(at) if at > limit => Err(Exceeded {
                max_retention_days: max,
            }),
            Some(at) => Ok(Some(at)),
            None => Ok(Some(limit)),
        }
    }
}

/// The policies of the configuration file, with `standard` unless it redefines it.
pub fn configured(
    raw: &BTreeMap<String, PolicySettings>,
) -> Result<BTreeMap<String, Policy>, String> {
    let mut policies = BTreeMap::from([(STANDARD.to_owned(), Policy::standard())]);
    for (name, settings) in raw {
        let policy = Policy::new(name, settings.clone())
            .map_err(|e| format!("retention.policies.{name}: {e}"))?;
        policies.insert(policy.name.clone(), policy);
    }
    Ok(policies)
}

/// What the vault needs of `[retention]` and `[keys]` to govern data over time.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The configured policies, `standard` included; stored ones win over them.
    pub configured: BTreeMap<String, Policy>,
    /// Blobs purged per transaction.
    pub batch_size: i64,
    /// Background sweep period; 0 disables it.
    pub sweep_interval_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            configured: BTreeMap::from([(STANDARD.to_owned(), Policy::standard())]),
            batch_size: 500,
            sweep_interval_secs: 3600,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(max: Option<i64>, ttl: Option<i64>, method: &str) -> PolicySettings {
        PolicySettings {
            max_retention_days: max,
            default_ttl_days: ttl,
            purge_method: method.into(),
            description: None,
        }
    }

    #[test]
    fn bad_day_counts_methods_and_names_are_refused() {
        for (max, ttl) in [
            (Some(-1), None),
            (None, Some(0)),
            (Some(MAX_DAYS + 1), None),
        ] {
            let err = Policy::new("p", settings(max, ttl, "crypto-shred")).unwrap_err();
            assert!(err.contains("days"), "{err}");
        }
        let err = Policy::new("p", settings(Some(10), Some(11), "crypto-shred")).unwrap_err();
        assert!(err.contains("must not exceed"), "{err}");
        assert!(Policy::new("p", settings(None, None, "shred")).is_err());
        assert!(Policy::new("Bad Name", settings(None, None, "crypto-shred")).is_err());
        assert!(Policy::new("p", settings(Some(MAX_DAYS), Some(1), "crypto-shred")).is_ok());
    }

    #[test]
    fn expiry_takes_the_default_and_refuses_past_the_maximum() {
        let now = 1_000_000;
        let policy = Policy::new("p", settings(Some(30), Some(7), "crypto-shred")).unwrap();
        assert_eq!(policy.expiry(now, None), Ok(Some(now + 7 * DAY_SECS)));
        assert_eq!(
            policy.expiry(now, Some(now + 30 * DAY_SECS)),
            Ok(Some(now + 30 * DAY_SECS))
        );
        assert_eq!(
            policy.expiry(now, Some(now + 30 * DAY_SECS + 1)),
            Err(Exceeded {
                max_retention_days: 30
            })
        );
        let capped = Policy::new("c", settings(Some(30), None, "crypto-shred")).unwrap();
        assert_eq!(capped.expiry(now, None), Ok(Some(now + 30 * DAY_SECS)));
        assert_eq!(Policy::standard().expiry(now, None), Ok(None));
    }

    #[test]
    fn standard_exists_unless_reconfigured() {
        let policies = configured(&BTreeMap::new()).unwrap();
        assert_eq!(policies.get(STANDARD), Some(&Policy::standard()));
        let raw = BTreeMap::from([(STANDARD.to_owned(), settings(Some(5), None, "crypto-shred"))]);
        let policies = configured(&raw).unwrap();
        assert_eq!(policies[STANDARD].max_retention_days, Some(5));
    }
}
