//! The recipient directory (DESIGN §19): each principal's published age recipients, as the
//! stored form of `AgeRecipients` (one per line), with the time they were set.

use super::StoreResult;
use crate::audit::NewEvent;
use crate::domain::Principal;
use async_trait::async_trait;

#[async_trait]
pub trait RecipientStore: Send + Sync {
    /// Replaces `principal`'s recipients and records `event`, in one transaction; the
    /// event's `seq`.
    async fn set_recipients(
        &self,
        principal: &Principal,
        recipients: &str,
        now: i64,
        event: &NewEvent,
    ) -> StoreResult<i64>;
    /// `(recipients, updated_at)` of one principal, `None` if it published none.
    async fn recipients_of(&self, principal: &Principal) -> StoreResult<Option<(String, i64)>>;
    /// `(principal, recipients)` of those of `principals` who published any, by principal.
    /// The caller bounds the list (one bound parameter each).
    async fn recipients_of_each(
        &self,
        principals: &[Principal],
    ) -> StoreResult<Vec<(String, String)>>;
}

macro_rules! recipient_store {
    ($store:ty, $db:ty) => {
        #[async_trait]
        impl RecipientStore for $store {
            async fn set_recipients(
                &self,
                principal: &Principal,
                recipients: &str,
                now: i64,
                event: &NewEvent,
            ) -> StoreResult<i64> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "INSERT INTO principal_recipients (principal, recipients, updated_at) \
                     VALUES ($1, $2, $3) ON CONFLICT (principal) \
                     DO UPDATE SET recipients = excluded.recipients, \
                     updated_at = excluded.updated_at",
                )
                .bind(principal.as_str())
                .bind(recipients)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let seq = Self::append_in_tx(&mut tx, event).await?;
                Self::commit(tx).await?;
                Ok(seq)
            }

            async fn recipients_of(
                &self,
                principal: &Principal,
            ) -> StoreResult<Option<(String, i64)>> {
                Ok(sqlx::query_as(
                    "SELECT recipients, updated_at FROM principal_recipients \
                     WHERE principal = $1",
                )
                .bind(principal.as_str())
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn recipients_of_each(
                &self,
                principals: &[Principal],
            ) -> StoreResult<Vec<(String, String)>> {
                if principals.is_empty() {
                    return Ok(Vec::new());
                }
                let mut sql = sqlx::QueryBuilder::<$db>::new(
                    "SELECT principal, recipients FROM principal_recipients WHERE principal IN (",
                );
                let mut each = sql.separated(", ");
                for principal in principals {
                    each.push_bind(principal.as_str());
                }
                sql.push(") ORDER BY principal");
                Ok(sql
                    .build_query_as::<(String, String)>()
                    .fetch_all(&self.pool)
                    .await?)
            }
        }
    };
}

for_each_backend!(recipient_store);
