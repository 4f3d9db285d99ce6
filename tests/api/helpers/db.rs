//! Direct access to a test app's database, on either backend, for tampering and inspection:
//! the one place that knows which kind of connection a backend needs.

use super::{Backend, TestApp};
use sqlx::Connection;

/// One connection to the test database, held for as long as a test needs it (a lock, a
/// transaction).
pub enum Db {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Db {
    pub async fn connect(backend: Backend, url: &str) -> Self {
        match backend {
            Backend::Sqlite => Self::Sqlite(sqlx::SqliteConnection::connect(url).await.unwrap()),
            Backend::Postgres => Self::Postgres(sqlx::PgConnection::connect(url).await.unwrap()),
        }
    }

    /// Runs one statement.
    pub async fn execute(&mut self, statement: &str) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlite(conn) => sqlx::query(statement).execute(conn).await.map(|_| ()),
            Self::Postgres(conn) => sqlx::query(statement).execute(conn).await.map(|_| ()),
        }
    }

    /// Runs a query whose answer is one integer.
    pub async fn fetch_i64(&mut self, query: &str) -> Result<i64, sqlx::Error> {
        match self {
            Self::Sqlite(conn) => sqlx::query_scalar(query).fetch_one(conn).await,
            Self::Postgres(conn) => sqlx::query_scalar(query).fetch_one(conn).await,
        }
    }
}

impl TestApp {
    /// A new connection to this app's database.
    pub async fn db(&self) -> Db {
        Db::connect(self.backend, &self.config.storage.database_url).await
    }

    /// Runs SQL that must succeed.
    pub async fn sql(&self, statement: &str) {
        if let Err(e) = self.db().await.execute(statement).await {
            panic!("{statement}: {e}");
        }
    }

    /// Runs SQL that may fail, returning the error text.
    pub async fn try_sql(&self, statement: &str) -> Result<(), String> {
        let mut db = self.db().await;
        db.execute(statement).await.map_err(|e| e.to_string())
    }

    /// The number of rows of `table` (which may carry a `WHERE` clause).
    pub async fn count_rows(&self, table: &str) -> i64 {
        let mut db = self.db().await;
        db.fetch_i64(&format!("SELECT COUNT(*) FROM {table}"))
            .await
            .unwrap()
    }

    /// Lets a test tamper with the audit table, as an attacker with database access could.
    pub async fn disable_audit_triggers(&self) {
        match self.backend {
            Backend::Sqlite => {
                self.sql("DROP TRIGGER audit_events_no_update").await;
                self.sql("DROP TRIGGER audit_events_no_delete").await;
            }
            Backend::Postgres => {
                self.sql("ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_delete")
                    .await;
            }
        }
    }

    /// Makes every audit insert fail, simulating a broken audit store.
    pub async fn break_audit_store(&self) {
        match self.backend {
            Backend::Sqlite => {
                self.sql(
                    "CREATE TRIGGER audit_broken BEFORE INSERT ON audit_events \
                     BEGIN SELECT RAISE(ABORT, 'simulated audit disk failure'); END",
                )
                .await;
            }
            Backend::Postgres => {
                self.sql(
                    "CREATE FUNCTION audit_broken() RETURNS trigger AS $$ BEGIN \
                     RAISE EXCEPTION 'simulated audit disk failure'; END; $$ LANGUAGE plpgsql",
                )
                .await;
                self.sql(
                    "CREATE TRIGGER audit_broken BEFORE INSERT ON audit_events \
                     FOR EACH ROW EXECUTE FUNCTION audit_broken()",
                )
                .await;
            }
        }
    }
}
