//! Start-up check that the connection limits fit under the process's file-descriptor limit.
//! Out of descriptors, `accept` fails and so does every new database connection: all
//! service stops, which is what `server.max_connections` exists to prevent.

use super::METRICS_MAX_CONNECTIONS;

/// Descriptors one database connection may hold: a socket, or for SQLite the database file,
/// its write-ahead log and its shared memory.
const PER_DATABASE_CONNECTION: u64 = 3;
/// Everything else: listeners, Redis, standard streams, the runtime's own, files.
const RESERVED: u64 = 64;

/// Descriptors the process may need with these limits.
pub fn descriptors_needed(max_connections: usize, database_connections: u32) -> u64 {
    let connections =
        u64::try_from(max_connections.saturating_add(METRICS_MAX_CONNECTIONS)).unwrap_or(u64::MAX);
    connections
        .saturating_add(u64::from(database_connections).saturating_mul(PER_DATABASE_CONNECTION))
        .saturating_add(RESERVED)
}

/// Logs a warning when the soft `RLIMIT_NOFILE` is below what the limits may need.
pub fn check_descriptor_limit(max_connections: usize, database_connections: u32) {
    let needed = descriptors_needed(max_connections, database_connections);
    match soft_limit() {
        Some(limit) if limit < needed => tracing::warn!(
            limit,
            needed,
            max_connections,
            "the file-descriptor limit is below what server.max_connections and the database \
             pool may need; raise it (systemd LimitNOFILE=, ulimit -n) or lower \
             server.max_connections (see runbooks/connection-limits.md)"
        ),
        Some(limit) => tracing::debug!(limit, needed, "file-descriptor limit suffices"),
        None => {}
    }
}

/// The soft limit on open files; `None` when unlimited or unknown.
#[cfg(unix)]
fn soft_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

#[cfg(not(unix))]
fn soft_limit() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_fit_the_common_limit_of_1024() {
        let needed = descriptors_needed(crate::config::DEFAULT_MAX_CONNECTIONS, 16);
        assert!(needed <= 1024, "{needed}");
    }

    #[test]
    fn huge_limits_saturate_instead_of_overflowing() {
        assert_eq!(descriptors_needed(usize::MAX, u32::MAX), u64::MAX);
    }
}
