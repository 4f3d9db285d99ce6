//! Listing what a caller may see, one page at a time, and the paging both listings (blobs and
//! audit events) share.

use super::blobs::BlobMetadata;
use super::{Caller, Vault};
use crate::domain::{BlobId, OrgId, Scope};
use crate::error::VaultError;
use crate::store::ListQuery;
use data_vault_scopes::may_read_others;
use serde::Serialize;

#[derive(Debug)]
pub struct ListParams {
    pub scope: Option<Scope>,
    pub org_id: Option<OrgId>,
    pub limit: i64,
    pub cursor: Option<BlobId>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BlobPage {
    pub blobs: Vec<BlobMetadata>,
    pub next_cursor: Option<String>,
}

pub const MAX_LIST_LIMIT: i64 = 200;
pub const DEFAULT_LIST_LIMIT: i64 = 50;

/// Keeps the first `limit` of `rows`, fetched as `limit + 1` so that one more row tells that
/// another page follows; the cursor is then the last kept row's.
pub(super) fn one_page<T>(
    mut rows: Vec<T>,
    limit: i64,
    cursor_of: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let keep = usize::try_from(limit.max(0)).unwrap_or(usize::MAX);
    let more = rows.len() > keep;
    rows.truncate(keep);
    let next_cursor = if more {
        rows.last().map(cursor_of)
    } else {
        None
    };
    (rows, next_cursor)
}

impl Vault {
    /// Lists what the caller may see: their own blobs, and with `org_id` the org's blobs in
    /// the scopes the caller's roles may read (a non-member sees only their own there).
    pub async fn list_blobs(
        &self,
        caller: &Caller,
        params: ListParams,
    ) -> Result<BlobPage, VaultError> {
        let label = params
            .scope
            .as_ref()
            .map_or("all", |s| self.scope_label(s.as_str()))
            .to_owned();
        let result = self.list_blobs_inner(caller, params).await;
        self.metrics.access(&label, "list", result.is_ok());
        result
    }

    async fn list_blobs_inner(
        &self,
        caller: &Caller,
        params: ListParams,
    ) -> Result<BlobPage, VaultError> {
        self.limit_org(params.org_id.as_ref().map(OrgId::as_str))
            .await?;
        let org_scopes = match &params.org_id {
            Some(org) => match self.roles_in(caller, org).await? {
                Some(roles) => self
                    .scopes
                    .scopes()
                    // The access decision's own answer, as for the recipient directory.
                    .filter(|s| may_read_others(&self.scopes, s, roles).unwrap_or(false))
                    .map(str::to_owned)
                    .collect(),
                None => Vec::new(),
            },
            None => Vec::new(),
        };
        let limit = params.limit.clamp(1, MAX_LIST_LIMIT);
        let query = ListQuery {
            owner: caller.principal.clone(),
            org_id: params.org_id,
            org_scopes,
            scope: params.scope,
            before_id: params.cursor,
            // One more than asked tells whether another page follows.
            limit: limit + 1,
        };
        let records = self.store.list_blobs(&query).await?;
        let (records, next_cursor) = one_page(records, limit, |r| r.id.to_string());
        Ok(BlobPage {
            blobs: records.iter().map(BlobMetadata::from).collect(),
            next_cursor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::one_page;

    #[test]
    fn a_page_keeps_the_limit_and_tells_whether_more_follow() {
        assert_eq!(
            one_page(vec![1, 2, 3], 2, |n| n.to_string()),
            (vec![1, 2], Some("2".into()))
        );
        assert_eq!(
            one_page(vec![1, 2], 2, |n| n.to_string()),
            (vec![1, 2], None)
        );
        assert_eq!(
            one_page(Vec::<i32>::new(), 2, |n| n.to_string()),
            (vec![], None)
        );
    }
}
