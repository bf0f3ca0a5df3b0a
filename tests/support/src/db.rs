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

    async fn admin(&self) -> sqlx::PgConnection {
        let opts = PgConnectOptions::from_str(&self.url).expect("test database url parses");
        opts.database("postgres")
            .connect()
            .await
            .expect("connect to the server's postgres database")
    }

    /// Postgres goes away for this database: new connections are refused
    /// and open ones are dropped. Only this test's database is affected,
    /// so tests running beside it keep their Postgres.
    pub async fn cut(&self) {
        let mut admin = self.admin().await;
        let quoted = format!("\"{}\"", self.name.replace('"', "\"\""));
        sqlx::query(&format!(
            "ALTER DATABASE {quoted} WITH ALLOW_CONNECTIONS false"
        ))
        .execute(&mut admin)
        .await
        .expect("refuse connections");
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
            .bind(&self.name)
            .execute(&mut admin)
            .await
            .expect("drop connections");
    }

    /// Postgres is back for this database.
    pub async fn restore(&self) {
        let mut admin = self.admin().await;
        let quoted = format!("\"{}\"", self.name.replace('"', "\"\""));
        sqlx::query(&format!(
            "ALTER DATABASE {quoted} WITH ALLOW_CONNECTIONS true"
        ))
        .execute(&mut admin)
        .await
        .expect("allow connections");
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}
