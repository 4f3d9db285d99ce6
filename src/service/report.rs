//! The compliance report (DESIGN §14): a point-in-time snapshot for an assessor, every number
//! a query over the data; a section that cannot be computed says why.

use super::access::Question;
use super::audit::verify_chain;
use super::{Caller, Vault};
use crate::audit;
use crate::domain::OrgId;
use crate::error::VaultError;
use crate::retention::DAY_SECS;
use crate::store::{LAST_SWEEP_AT, PURGED_LAST_SWEEP};
use crate::time;
use serde::Serialize;
use std::collections::BTreeMap;

/// Most chains the report verifies when asked; beyond that the audit section says why it
/// has no numbers (`data-vault audit verify` checks any number).
pub const MAX_REPORT_CHAINS: usize = 1000;
/// Most tenants listed as past their cryptoperiod.
pub const MAX_PAST_CRYPTOPERIOD: i64 = 1000;

#[derive(Debug, Clone, Serialize)]
pub struct ComplianceReport {
    pub generated_at: String,
    /// The org the report is limited to, when asked for one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    pub summary: Summary,
    pub by_scope: BTreeMap<String, ScopeSection>,
    pub keys: KeysSection,
    pub audit: AuditSection,
    pub purge: PurgeSection,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub total_blobs: i64,
    pub active: i64,
    pub expired_pending_purge: i64,
    pub held: i64,
    pub purged_last_30_days: i64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ScopeSection {
    pub active: i64,
    pub expiring_next_30_days: i64,
    pub retention_policies: BTreeMap<String, i64>,
    pub key_versions: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeysSection {
    pub tenant_keys: i64,
    pub oldest_active_age_days: Option<i64>,
    pub past_cryptoperiod: Vec<String>,
    pub max_age_days: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditSection {
    pub chains: Option<i64>,
    pub invalid_chains: Option<i64>,
    pub last_verified_at: Option<String>,
    /// Why the numbers are missing, when they are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PurgeSection {
    pub last_sweep_at: Option<String>,
    pub purged_last_sweep: Option<i64>,
}

impl Vault {
    /// `GET /vault/compliance/report` (platform admins; an org's administrators with
    /// `org`) and `data-vault admin compliance report`. Recorded as `compliance.report`.
    pub async fn compliance_report(
        &self,
        caller: &Caller,
        org: Option<&OrgId>,
    ) -> Result<ComplianceReport, VaultError> {
        let chain = org.map_or_else(
            || audit::SYSTEM_CHAIN.to_owned(),
            |o| audit::org_chain(o.as_str()),
        );
        let mut event = self.event(caller, chain, "compliance.report");
        event.org_id = org.map(|o| o.as_str().to_owned());
        self.authorize(caller, Question::Compliance { org, event: &event })
            .await?;
        self.record(caller, &[event]).await?;

        let now = self.clock.now_secs();
        let org_name = org.map(OrgId::as_str);
        let blobs = self.store.blob_summary(org_name, now).await?;
        let purged_last_30_days = self
            .store
            .purged_since(org_name, (now - 30 * DAY_SECS).saturating_mul(1000))
            .await?;
        let mut by_scope: BTreeMap<String, ScopeSection> = BTreeMap::new();
        for row in self
            .store
            .scope_counts(org_name, now, now + 30 * DAY_SECS)
            .await?
        {
            let section = by_scope.entry(row.scope).or_default();
            section.active += row.active;
            section.expiring_next_30_days += row.expiring;
            *section
                .retention_policies
                .entry(row.retention_policy)
                .or_default() += row.active;
            *section
                .key_versions
                .entry(row.key_version.to_string())
                .or_default() += row.active;
        }
        let tenant = org.map(|o| audit::org_chain(o.as_str()));
        let (tenant_keys, oldest) = self.store.tenant_key_stats(tenant.as_deref()).await?;
        let max_age = self.keys.max_age_days;
        let past_cryptoperiod = self
            .store
            .tenant_keys_older_than(
                tenant.as_deref(),
                now - max_age.saturating_mul(DAY_SECS),
                MAX_PAST_CRYPTOPERIOD,
            )
            .await?
            .into_iter()
            .map(|k| k.tenant)
            .collect();
        let last_sweep_at = self.store.meta_value(LAST_SWEEP_AT).await?;
        let purged_last_sweep = self.store.meta_value(PURGED_LAST_SWEEP).await?;
        Ok(ComplianceReport {
            generated_at: time::to_rfc3339(now),
            org_id: org_name.map(str::to_owned),
            summary: Summary {
                total_blobs: blobs.total_blobs,
                active: blobs.active,
                expired_pending_purge: blobs.expired_pending_purge,
                held: blobs.held,
                purged_last_30_days,
            },
            by_scope,
            keys: KeysSection {
                tenant_keys,
                oldest_active_age_days: oldest.map(|at| (now - at).max(0) / DAY_SECS),
                past_cryptoperiod,
                max_age_days: max_age,
            },
            audit: self.audit_section(org).await?,
            purge: PurgeSection {
                last_sweep_at: last_sweep_at
                    .and_then(|s| s.parse::<i64>().ok())
                    .map(time::to_rfc3339),
                purged_last_sweep: purged_last_sweep.and_then(|s| s.parse().ok()),
            },
        })
    }

    /// The report's audit section: the periodic verifier's last pass (DESIGN §16) when this
    /// vault has completed one; otherwise (the admin CLI, or a server before its first pass)
    /// the chains are verified when asked, at most [`MAX_REPORT_CHAINS`] of them, and
    /// `last_verified_at` is then now.
    async fn audit_section(&self, org: Option<&OrgId>) -> Result<AuditSection, VaultError> {
        let chains = match org {
            Some(org) => {
                let chain = audit::org_chain(org.as_str());
                match self.store.audit_head(&chain).await? {
                    Some(_) => vec![chain],
                    None => Vec::new(),
                }
            }
            None => self.store.audit_chains().await?,
        };
        let count = i64::try_from(chains.len()).unwrap_or(i64::MAX);
        let health = self.audit_health();
        if let Some(verified_at) = health.last_verified_at {
            // The verifier's names are of chains it found invalid: count those in scope.
            let invalid = health
                .invalid_chains
                .iter()
                .filter(|name| org.is_none() || chains.contains(name))
                .count();
            return Ok(AuditSection {
                chains: Some(count),
                invalid_chains: Some(i64::try_from(invalid).unwrap_or(i64::MAX)),
                last_verified_at: Some(time::to_rfc3339(verified_at)),
                unavailable: None,
            });
        }
        if chains.len() > MAX_REPORT_CHAINS {
            return Ok(AuditSection {
                chains: Some(count),
                invalid_chains: None,
                last_verified_at: None,
                unavailable: Some(format!(
                    "more than {MAX_REPORT_CHAINS} chains are too many to verify within a \
                     report; run `data-vault audit verify`"
                )),
            });
        }
        let mut invalid = 0;
        for chain in &chains {
            if !verify_chain(self.store.as_ref(), chain).await?.valid {
                invalid += 1;
            }
        }
        Ok(AuditSection {
            chains: Some(count),
            invalid_chains: Some(invalid),
            last_verified_at: Some(time::to_rfc3339(self.clock.now_secs())),
            unavailable: None,
        })
    }
}
