//! Orgs and their memberships (roles as a comma list, checked by the `scopes` crate).

use super::StoreResult;
use crate::audit::NewEvent;
use crate::domain::{OrgId, Principal};
use async_trait::async_trait;

#[async_trait]
pub trait OrgStore: Send + Sync {
    /// Creates an org; `None` (and nothing recorded) if it exists, else its event's `seq`.
    /// (So do the other changes here: the `seq` of the event they recorded, if applied.)
    async fn create_org(&self, id: &OrgId, now: i64, event: &NewEvent) -> StoreResult<Option<i64>>;
    async fn org_exists(&self, id: &OrgId) -> StoreResult<bool>;
    /// Sets a member's roles (comma list); `None` (and nothing recorded) if the org does
    /// not exist.
    async fn set_member(
        &self,
        org: &OrgId,
        principal: &Principal,
        roles: &str,
        now: i64,
        event: &NewEvent,
    ) -> StoreResult<Option<i64>>;
    /// Removes a member; `None` (and nothing recorded) if they were not one.
    async fn remove_member(
        &self,
        org: &OrgId,
        principal: &Principal,
        event: &NewEvent,
    ) -> StoreResult<Option<i64>>;
    /// The member's roles (comma list), or `None` when not a member.
    async fn member_roles(&self, org: &OrgId, principal: &Principal)
        -> StoreResult<Option<String>>;
    /// `(principal, roles)` of every member, by principal.
    async fn list_members(&self, org: &OrgId) -> StoreResult<Vec<(String, String)>>;
    /// `(principal, roles)` of the first `limit` members, by principal: a caller that asks
    /// for one more than it accepts learns whether the org is larger.
    async fn members_up_to(&self, org: &OrgId, limit: i64) -> StoreResult<Vec<(String, String)>>;
    /// `(org, created_at, member count)` of the first `limit` orgs, by id (`admin org list`).
    async fn list_orgs(&self, limit: i64) -> StoreResult<Vec<(String, i64, i64)>>;
    /// `(org, roles)` of every org `principal` belongs to (up to `limit`), by org.
    async fn orgs_of(
        &self,
        principal: &Principal,
        limit: i64,
    ) -> StoreResult<Vec<(String, String)>>;
}

macro_rules! org_store {
    ($store:ty, $db:ty) => {
        #[async_trait]
        impl OrgStore for $store {
            async fn create_org(
                &self,
                id: &OrgId,
                now: i64,
                event: &NewEvent,
            ) -> StoreResult<Option<i64>> {
                let mut tx = self.pool.begin().await?;
                let created = sqlx::query(
                    "INSERT INTO orgs (id, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                .bind(id.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                Self::record_if(tx, created, event).await
            }

            async fn org_exists(&self, id: &OrgId) -> StoreResult<bool> {
                let found: Option<i64> =
                    sqlx::query_scalar("SELECT created_at FROM orgs WHERE id = $1")
                        .bind(id.as_str())
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(found.is_some())
            }

            async fn set_member(
                &self,
                org: &OrgId,
                principal: &Principal,
                roles: &str,
                now: i64,
                event: &NewEvent,
            ) -> StoreResult<Option<i64>> {
                let mut tx = self.pool.begin().await?;
                let stored = sqlx::query(
                    "INSERT INTO memberships (org_id, principal, roles, updated_at) \
                     SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM orgs WHERE id = $1) \
                     ON CONFLICT (org_id, principal) \
                     DO UPDATE SET roles = excluded.roles, updated_at = excluded.updated_at",
                )
                .bind(org.as_str())
                .bind(principal.as_str())
                .bind(roles)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                Self::record_if(tx, stored, event).await
            }

            async fn remove_member(
                &self,
                org: &OrgId,
                principal: &Principal,
                event: &NewEvent,
            ) -> StoreResult<Option<i64>> {
                let mut tx = self.pool.begin().await?;
                let removed =
                    sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND principal = $2")
                        .bind(org.as_str())
                        .bind(principal.as_str())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                        == 1;
                Self::record_if(tx, removed, event).await
            }

            async fn member_roles(
                &self,
                org: &OrgId,
                principal: &Principal,
            ) -> StoreResult<Option<String>> {
                Ok(sqlx::query_scalar(
                    "SELECT roles FROM memberships WHERE org_id = $1 AND principal = $2",
                )
                .bind(org.as_str())
                .bind(principal.as_str())
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn list_members(&self, org: &OrgId) -> StoreResult<Vec<(String, String)>> {
                Ok(sqlx::query_as(
                    "SELECT principal, roles FROM memberships WHERE org_id = $1 \
                     ORDER BY principal LIMIT 10000",
                )
                .bind(org.as_str())
                .fetch_all(&self.pool)
                .await?)
            }

            async fn members_up_to(
                &self,
                org: &OrgId,
                limit: i64,
            ) -> StoreResult<Vec<(String, String)>> {
                Ok(sqlx::query_as(
                    "SELECT principal, roles FROM memberships WHERE org_id = $1 \
                     ORDER BY principal LIMIT $2",
                )
                .bind(org.as_str())
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn list_orgs(&self, limit: i64) -> StoreResult<Vec<(String, i64, i64)>> {
                Ok(sqlx::query_as(
                    "SELECT o.id, o.created_at, \
                     (SELECT COUNT(*) FROM memberships m WHERE m.org_id = o.id) \
                     FROM orgs o ORDER BY o.id LIMIT $1",
                )
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn orgs_of(
                &self,
                principal: &Principal,
                limit: i64,
            ) -> StoreResult<Vec<(String, String)>> {
                Ok(sqlx::query_as(
                    "SELECT org_id, roles FROM memberships WHERE principal = $1 \
                     ORDER BY org_id LIMIT $2",
                )
                .bind(principal.as_str())
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }
        }
    };
}

for_each_backend!(org_store);
