//! Work proportional to a request's body (hashing, sealing, checking), moved off the async
//! workers when the body is large, so one big upload never delays the requests of others.

use crate::error::VaultError;

/// Bodies up to this size are worked on in place: handing them to another thread would cost
/// more than the work itself.
pub const INLINE_MAX_BYTES: usize = 64 * 1024;

/// Runs `work`, which costs in proportion to `len` bytes, inline when `len` is small and on
/// tokio's blocking pool otherwise. The caller awaits it, so the request timeout still answers
/// the client on time; the work itself then finishes in the background (it is bounded by the
/// body limit) and its result is dropped.
pub async fn sized<T, F>(len: usize, work: F) -> Result<T, VaultError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if len <= INLINE_MAX_BYTES {
        return Ok(work());
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| VaultError::Internal(anyhow::Error::new(e).context("blocking task failed")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn large_work_runs_off_the_async_worker_and_small_work_inline() {
        let here = std::thread::current().id();
        let small = sized(INLINE_MAX_BYTES, || std::thread::current().id()).await;
        assert_eq!(small.unwrap(), here);
        let large = sized(INLINE_MAX_BYTES + 1, || std::thread::current().id()).await;
        assert_ne!(large.unwrap(), here);
    }
}
