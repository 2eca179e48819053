//! PostgreSQL access: the r2d2 pool, the embedded migrations, and [`run`], the one bridge from
//! async handlers into blocking diesel code.

mod prepared;
pub mod schema;

pub use prepared::{prepared, PreparedSql};

use std::sync::Arc;
use std::time::Duration;

use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, Pool};
use diesel::{Connection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::error::{ApiError, ApiResult};

/// The r2d2 pool plus an async gate with one permit per connection. A request waits for a
/// permit on the executor, so only requests that will get a connection occupy a blocking
/// thread: without it, every queued request parked its own blocking thread inside r2d2
/// (about 150 threads at 64 concurrent requests, and the context switches that go with them).
#[derive(Clone)]
pub struct PgPool {
    connections: Pool<ConnectionManager<PgConnection>>,
    permits: Arc<tokio::sync::Semaphore>,
    /// Requests waiting for a permit right now (for the metrics).
    waiting: Arc<std::sync::atomic::AtomicUsize>,
    max_size: u32,
    /// How long a request waits for a permit and then for a connection before it gets a 503.
    wait: Duration,
}

/// `migrations/`, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Serialises concurrent migration runs (several instances starting at once on one database).
const MIGRATION_LOCK_KEY: i64 = 0x7765_6175_7468; // "weauth"

/// Builds the pool without connecting, so the server starts (and answers 503) while the
/// database is still coming up; r2d2 reconnects on its own once it is reachable. No `SELECT 1`
/// on checkout: it would cost a round trip per request, and a connection the database dropped
/// is reported broken by diesel after its first failed query and then discarded
/// (`tests/api/faults.rs` cuts the database mid-traffic to prove the pool recovers).
pub fn build_pool(database_url: &str, max_size: u32, connect_timeout: Duration) -> PgPool {
    let connections = Pool::builder()
        .max_size(max_size)
        .min_idle(Some(0))
        .connection_timeout(connect_timeout)
        .test_on_check_out(false)
        .build_unchecked(ConnectionManager::new(database_url));
    PgPool {
        connections,
        permits: Arc::new(tokio::sync::Semaphore::new(max_size as usize)),
        waiting: Default::default(),
        max_size,
        wait: connect_timeout,
    }
}

/// What the pool is doing now (`/metrics`).
#[derive(Clone, Copy, Debug)]
pub struct PoolStats {
    pub in_use: usize,
    pub waiting: usize,
    pub open: u32,
    pub max: u32,
}

impl PgPool {
    pub fn stats(&self) -> PoolStats {
        use std::sync::atomic::Ordering;
        PoolStats {
            in_use: (self.max_size as usize).saturating_sub(self.permits.available_permits()),
            waiting: self.waiting.load(Ordering::Relaxed),
            open: self.connections.state().connections,
            max: self.max_size,
        }
    }
}

/// Counts a waiter for as long as it lives.
struct Waiting(Arc<std::sync::atomic::AtomicUsize>);

impl Waiting {
    fn new(counter: &Arc<std::sync::atomic::AtomicUsize>) -> Waiting {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Waiting(counter.clone())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Applies pending migrations under an advisory lock; returns the versions applied.
pub fn run_migrations(
    database_url: &str,
) -> Result<Vec<String>, Box<dyn std::error::Error + Send + Sync>> {
    let mut conn = PgConnection::establish(database_url)?;
    diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
        .execute(&mut conn)?;
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map(|versions| versions.iter().map(|v| v.to_string()).collect());
    diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
        .execute(&mut conn)?;
    applied
}

/// Runs `f` with a pooled connection on actix's blocking thread pool. A handler's whole unit of
/// work (usually one transaction) goes into one call.
pub async fn run<T, F>(pool: &PgPool, f: F) -> ApiResult<T>
where
    F: FnOnce(&mut PgConnection) -> ApiResult<T> + Send + 'static,
    T: Send + 'static,
{
    let waiting = Waiting::new(&pool.waiting);
    let permit = tokio::time::timeout(pool.wait, pool.permits.clone().acquire_owned()).await;
    drop(waiting);
    let permit = permit
        .map_err(|_| ApiError::database_unavailable("timed out waiting for a connection"))?
        .map_err(ApiError::internal)?;
    let connections = pool.connections.clone();
    actix_web::web::block(move || {
        let _permit = permit;
        let mut conn = connections.get().map_err(ApiError::database_unavailable)?;
        f(&mut conn)
    })
    .await
    .map_err(ApiError::internal)?
}

/// Runs `f` inside one transaction (see [`run`]).
pub async fn transaction<T, F>(pool: &PgPool, f: F) -> ApiResult<T>
where
    F: FnOnce(&mut PgConnection) -> ApiResult<T> + Send + 'static,
    T: Send + 'static,
{
    run(pool, move |conn| conn.transaction(f)).await
}

/// True when `e` is a unique-constraint violation on the named constraint or index.
pub fn is_unique_violation(e: &diesel::result::Error, constraint: &str) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    matches!(e, Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info)
        if info.constraint_name() == Some(constraint))
}
