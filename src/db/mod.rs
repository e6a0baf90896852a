//! Database access: the connection pool, the migrations embedded in the binary and the
//! transaction helper.
//!
//! Connections are opened on a runtime owned by the pool, not on the caller's: actix-web gives
//! each worker its own single-threaded runtime, and a connection whose driver task lives on a
//! worker's runtime would die with that worker. Any runtime can then use any connection.

pub mod api_keys;
pub mod audit;
pub mod cached;
pub mod callbacks;
pub mod chains;
pub mod idempotency_keys;
pub mod messages;
pub mod opt_outs;
pub mod providers;
pub mod rate_limits;
pub mod schema;
pub mod send_checks;
pub mod templates;
pub mod tx;
pub mod users;
pub mod webhook_deliveries;
pub mod webhooks;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use diesel::ConnectionError;
use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::deadpool::{BuildError, Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use futures_util::FutureExt;
use secrecy::ExposeSecret;

use crate::config::Settings;

/// The migrations, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// The shared pool of PostgreSQL connections.
pub type DbPool = Pool<AsyncPgConnection>;
/// One connection checked out of the pool.
pub type DbConn = Object<AsyncPgConnection>;
/// Failure to get a connection.
pub type PoolError = diesel_async::pooled_connection::deadpool::PoolError;

/// A failure of a database operation: no connection, or the query failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database pool: {0}")]
    Pool(#[from] PoolError),
    #[error("database query: {0}")]
    Query(#[from] diesel::result::Error),
}

/// The runtime that drives every pooled connection's socket (and other long-lived client
/// connections, such as the event bus's), independent of actix's per-worker runtimes.
pub fn connection_runtime() -> std::io::Result<&'static tokio::runtime::Handle> {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt.handle());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("cpaas-db")
        .enable_all()
        .build()?;
    // Two first callers may race to build it; the loser's runtime is shut down without
    // blocking, since dropping a runtime inside an async context panics.
    if let Err(lost) = RUNTIME.set(rt) {
        lost.shutdown_background();
    }
    RUNTIME
        .get()
        .map(|rt| rt.handle())
        .ok_or_else(|| std::io::Error::other("the connection runtime is not initialised"))
}

/// Opens one connection on the pool's runtime, giving up after `timeout`.
pub async fn connect(url: &str, timeout: Duration) -> diesel::ConnectionResult<AsyncPgConnection> {
    use diesel_async::AsyncConnection;
    let handle = connection_runtime()
        .map_err(|e| ConnectionError::BadConnection(format!("connection runtime: {e}")))?;
    let url = url.to_owned();
    let task = handle.spawn(async move {
        tokio::time::timeout(timeout, AsyncPgConnection::establish(&url))
            .await
            .unwrap_or_else(|_| {
                Err(ConnectionError::BadConnection(
                    "timed out connecting to the database".into(),
                ))
            })
    });
    task.await
        .unwrap_or_else(|e| Err(ConnectionError::BadConnection(format!("connect task: {e}"))))
}

/// Builds the pool. No connection is opened until one is needed.
pub fn build_pool(settings: &Settings) -> Result<DbPool, BuildError> {
    let connect_timeout = settings.database_connect_timeout;
    let mut config = ManagerConfig::default();
    // A broken connection is noticed on use and dropped on return, so no round trip is spent
    // checking every connection handed out.
    config.recycling_method = RecyclingMethod::Fast;
    config.custom_setup = Box::new(move |url| connect(url, connect_timeout).boxed());
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(
        settings.database_url.expose_secret(),
        config,
    );
    Pool::builder(manager)
        .max_size(settings.database_pool_size)
        .wait_timeout(Some(settings.database_pool_timeout))
        .create_timeout(Some(connect_timeout + Duration::from_millis(500)))
        .recycle_timeout(Some(settings.database_pool_timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
}

/// Applies pending migrations. Blocking: call it from a plain thread or `spawn_blocking`.
pub fn run_migrations(database_url: &str) -> anyhow::Result<Vec<String>> {
    use diesel::Connection;
    use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
    let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(database_url)?;
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map_err(|e| anyhow::anyhow!("migrations failed: {e}"))?;
    Ok(applied.iter().map(|v| v.to_string()).collect())
}

/// Applies pending migrations from async code, on a blocking thread.
pub async fn migrate(database_url: &str) -> anyhow::Result<Vec<String>> {
    let url = database_url.to_owned();
    tokio::task::spawn_blocking(move || run_migrations(&url)).await?
}

/// Checks the database answers, within the pool's wait timeout.
pub async fn ping(pool: &DbPool) -> Result<(), DbError> {
    use diesel_async::RunQueryDsl;
    let mut conn = pool.get().await?;
    diesel::sql_query("SELECT 1").execute(&mut conn).await?;
    Ok(())
}

/// A pool shared by the whole process.
pub type SharedPool = Arc<DbPool>;

/// Rows of `table` with status PENDING, and the age in seconds of the oldest of them (0 when
/// there are none). `table` is one of this crate's queue tables, never user input.
pub(crate) async fn pending_backlog(
    conn: &mut AsyncPgConnection,
    table: &'static str,
) -> diesel::QueryResult<(i64, f64)> {
    use diesel::sql_types::{BigInt, Double};
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Backlog {
        #[diesel(sql_type = BigInt)]
        pending: i64,
        #[diesel(sql_type = Double)]
        oldest_secs: f64,
    }
    let b: Backlog = diesel::sql_query(format!(
        "SELECT count(*) AS pending, \
           coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS oldest_secs \
         FROM {table} WHERE status = 'PENDING'"
    ))
    .get_result(conn)
    .await?;
    Ok((b.pending, b.oldest_secs))
}

impl From<diesel::result::Error> for crate::error::ApiError {
    fn from(err: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match err {
            Error::NotFound => Self::not_found("resource"),
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => Self::new(
                crate::error::ErrorCode::Conflict,
                format!(
                    "a resource with these values already exists ({})",
                    info.message()
                ),
            ),
            Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => Self::unavailable(err),
            Error::DatabaseError(DatabaseErrorKind::Unknown, ref info)
                if info.message().contains("connection") =>
            {
                Self::unavailable(err)
            }
            other => Self::internal(other),
        }
    }
}

impl From<PoolError> for crate::error::ApiError {
    fn from(err: PoolError) -> Self {
        Self::unavailable(err)
    }
}

impl From<DbError> for crate::error::ApiError {
    fn from(err: DbError) -> Self {
        match err {
            DbError::Pool(e) => e.into(),
            DbError::Query(e) => e.into(),
        }
    }
}
