//! A fresh PostgreSQL database per test on the suite's server (`PICKET_TEST_POSTGRES_URL`,
//! an admin URL), so tests run side by side; dropped again by [`FreshPostgres::drop_db`].
//! The harness speaks SQL here only to create and drop databases.

use sqlx::{AssertSqlSafe, Connection};

/// A database created for one test.
pub struct FreshPostgres {
    admin: String,
    name: String,
    /// The database's own URL, for picket.
    pub url: String,
}

impl FreshPostgres {
    /// `CREATE DATABASE t_<random>` on the server `admin` names.
    pub async fn create(admin: &str) -> FreshPostgres {
        let name = format!("t_{:016x}", rand::random::<u64>());
        let mut conn = sqlx::PgConnection::connect(admin)
            .await
            .expect("PICKET_TEST_POSTGRES_URL reachable");
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        let mut url = url::Url::parse(admin).unwrap();
        url.set_path(&name);
        FreshPostgres {
            admin: admin.to_string(),
            name,
            url: url.into(),
        }
    }

    /// Drop the database, closing whatever still holds it open.
    pub async fn drop_db(self) {
        let mut conn = sqlx::PgConnection::connect(&self.admin).await.unwrap();
        sqlx::query(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut conn)
        .await
        .unwrap();
    }
}
