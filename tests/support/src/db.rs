//! A fresh, migrated database per test.

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgPool};

/// A database created for one test, named `achilles_test_<unix seconds>_<random>`.
/// `scripts/test.sh` drops leftovers older than three hours before testing,
/// so test runs in several checkouts can share one Postgres.
pub struct TestDb {
    pub url: String,
    pub name: String,
    pub pool: PgPool,
}

impl TestDb {
    pub async fn fresh() -> Self {
        let base = std::env::var("ACHILLES_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let name = format!("achilles_test_{epoch}_{}", uuid::Uuid::new_v4().simple());
        let opts = PgConnectOptions::from_str(&base).expect("ACHILLES_TEST_DATABASE_URL parses");
        let url = opts.clone().database(&name).to_url_lossy().to_string();
        achilles_core::db::ensure_database(&url).await.unwrap_or_else(|e| {
            panic!("cannot create test database on {base}: {e}. Is Postgres running? (make test starts it)")
        });
        let pool = PgPool::connect(&url)
            .await
            .expect("connect to the test database");
        achilles_core::db::migrate(&pool)
            .await
            .expect("migrations apply");
        Self { url, name, pool }
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}
