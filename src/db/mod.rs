//! PostgreSQL access: the r2d2 pool, the embedded migrations, and [`run`], the one bridge from
//! async handlers into blocking diesel code.

mod prepared;
pub mod schema;

pub use prepared::{prepared, PreparedSql, StaticSql};

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

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
    /// How long a unit of work may take once it has its permit (see [`run`]).
    deadline: Duration,
    /// The database's clock minus ours, in microseconds, as the last new connection measured
    /// it ([`ClockProbe`]); [`NO_OFFSET`] until one did. Lets [`fast_path`] express the
    /// request's deadline on the database's clock.
    clock_offset: Arc<AtomicI64>,
}

/// [`PgPool::clock_offset`] before any connection measured it.
const NO_OFFSET: i64 = i64::MIN;

/// Default for [`PgPool::with_deadline`] (`WEAUTH_DB_QUERY_TIMEOUT_MS`).
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);

/// `migrations/`, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Serialises concurrent migration runs (several instances starting at once on one database).
const MIGRATION_LOCK_KEY: i64 = 0x7765_6175_7468; // "weauth"

/// Builds the pool without connecting, so the server starts (and answers 503) while the
/// database is still coming up; r2d2 reconnects on its own once it is reachable. No `SELECT 1`
/// on checkout: it would cost a round trip per request, and a connection the database dropped
/// is reported broken by diesel after its first failed query and then discarded
/// (`tests/api/faults.rs` cuts the database mid-traffic to prove the pool recovers).
///
/// The URL gets libpq's TCP settings unless it sets them itself (see [`with_tcp_bounds`]), so
/// a socket into a black hole (packets dropped, nothing refused) fails in seconds instead of
/// after the kernel's retransmission limit (about 15 minutes).
pub fn build_pool(database_url: &str, max_size: u32, connect_timeout: Duration) -> PgPool {
    let url = with_tcp_bounds(database_url, connect_timeout);
    let clock_offset = Arc::new(AtomicI64::new(NO_OFFSET));
    let connections = Pool::builder()
        .max_size(max_size)
        .min_idle(Some(0))
        .connection_timeout(connect_timeout)
        .test_on_check_out(false)
        .connection_customizer(Box::new(ClockProbe(clock_offset.clone())))
        .build_unchecked(ConnectionManager::new(url));
    PgPool {
        connections,
        permits: Arc::new(tokio::sync::Semaphore::new(max_size as usize)),
        waiting: Default::default(),
        max_size,
        wait: connect_timeout,
        deadline: DEFAULT_DEADLINE,
        clock_offset,
    }
}

/// Measures the database's clock against ours once per new connection (one round trip when
/// the connection is made, none per request). The estimate `db - (our time after the answer)`
/// is never later than the truth, so a deadline converted with it fires early by at most one
/// round trip, never late.
#[derive(Debug)]
struct ClockProbe(Arc<AtomicI64>);

impl diesel::r2d2::CustomizeConnection<PgConnection, diesel::r2d2::Error> for ClockProbe {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        #[derive(diesel::QueryableByName)]
        struct Clock {
            #[diesel(sql_type = diesel::sql_types::Timestamptz)]
            now: DateTime<Utc>,
        }
        // A failed probe keeps the previous estimate; the connection's own errors show on use.
        if let Ok(clock) =
            diesel::sql_query("SELECT clock_timestamp() AS now").get_result::<Clock>(conn)
        {
            if let Some(offset) = (clock.now - Utc::now()).num_microseconds() {
                self.0.store(offset, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

impl PgPool {
    /// Sets how long one unit of work ([`run`], [`transaction`]) may take once it holds its
    /// permit before the request gets a 503.
    pub fn with_deadline(mut self, deadline: Duration) -> PgPool {
        self.deadline = deadline;
        self
    }
}

/// How long sent data may stay unacknowledged before the kernel drops the socket (libpq's
/// `tcp_user_timeout`); a thread stuck on a black-holed connection is freed after this.
pub const TCP_USER_TIMEOUT: Duration = Duration::from_secs(10);

/// Adds libpq's connection parameters that bound a silent network, where the URL does not
/// set them already: `connect_timeout` (establishing), TCP keepalives (an idle socket whose
/// peer vanished) and `tcp_user_timeout` (sent data never acknowledged). Works for both URL
/// (`postgres://…`) and key=value connection strings.
pub fn with_tcp_bounds(url: &str, connect_timeout: Duration) -> String {
    let connect_secs = connect_timeout.as_secs().max(2).to_string();
    let user_timeout_ms = TCP_USER_TIMEOUT.as_millis().to_string();
    let params = [
        ("connect_timeout", connect_secs.as_str()),
        ("keepalives", "1"),
        ("keepalives_idle", "5"),
        ("keepalives_interval", "2"),
        ("keepalives_count", "3"),
        ("tcp_user_timeout", user_timeout_ms.as_str()),
    ];
    let is_uri = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let mut out = url.to_string();
    for (key, value) in params {
        if url.contains(&format!("{key}=")) {
            continue;
        }
        if is_uri {
            out.push(if out.contains('?') { '&' } else { '?' });
        } else {
            out.push(' ');
        }
        out.push_str(key);
        out.push('=');
        out.push_str(value);
    }
    out
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
///
/// Bounded in time: waiting for a permit takes at most the pool's `wait`, then getting a
/// connection and doing the work together at most `wait + deadline`; past either the request
/// gets a 503. A statement stuck on
/// a silent network cannot be interrupted from here, so its thread keeps the permit and the
/// connection until libpq gives up (`tcp_user_timeout`, then diesel reports the connection
/// broken and r2d2 discards it) or the network comes back. Either way nothing the client was
/// told failed is committed afterwards: [`transaction`] rolls back once the deadline passed.
pub async fn run<T, F>(pool: &PgPool, f: F) -> ApiResult<T>
where
    F: FnOnce(&mut PgConnection) -> ApiResult<T> + Send + 'static,
    T: Send + 'static,
{
    run_until(pool, move |conn, _| f(conn)).await
}

/// Set once the request gave up on its unit of work (see [`run`]).
pub struct Expired {
    flag: Arc<AtomicBool>,
    /// When the request answers 503 (our clock).
    gives_up_at: Instant,
    clock_offset: Arc<AtomicI64>,
}

impl Expired {
    /// The instant the request gives up, on the database's clock; `None` before the pool
    /// measured that clock.
    fn on_database_clock(&self) -> Option<DateTime<Utc>> {
        let offset = self.clock_offset.load(Ordering::Relaxed);
        if offset == NO_OFFSET {
            return None;
        }
        let left = self.gives_up_at.saturating_duration_since(Instant::now());
        let left = chrono::Duration::from_std(left).ok()?;
        Some(Utc::now() + left + chrono::Duration::microseconds(offset))
    }

    /// Fails with 503 when the request already answered 503.
    fn check(&self) -> ApiResult<()> {
        if self.flag.load(Ordering::SeqCst) {
            Err(ApiError::database_unavailable(
                "gave up: the database did not answer in time",
            ))
        } else {
            Ok(())
        }
    }
}

async fn run_until<T, F>(pool: &PgPool, f: F) -> ApiResult<T>
where
    F: FnOnce(&mut PgConnection, &Expired) -> ApiResult<T> + Send + 'static,
    T: Send + 'static,
{
    let waiting = Waiting::new(&pool.waiting);
    let permit = tokio::time::timeout(pool.wait, pool.permits.clone().acquire_owned()).await;
    drop(waiting);
    let permit = permit
        .map_err(|_| ApiError::database_unavailable("timed out waiting for a connection"))?
        .map_err(ApiError::internal)?;
    let connections = pool.connections.clone();
    let expired = Arc::new(AtomicBool::new(false));
    let bound = pool.deadline + pool.wait;
    let flag = Expired {
        flag: expired.clone(),
        gives_up_at: Instant::now() + bound,
        clock_offset: pool.clock_offset.clone(),
    };
    let work = actix_web::web::block(move || {
        let _permit = permit;
        let mut conn = connections.get().map_err(ApiError::database_unavailable)?;
        // The request may have given up while the connection was being made.
        flag.check()?;
        f(&mut conn, &flag)
    });
    match tokio::time::timeout(bound, work).await {
        Ok(done) => done.map_err(ApiError::internal)?,
        Err(_) => {
            expired.store(true, Ordering::SeqCst);
            tracing::warn!(
                deadline_ms = bound.as_millis() as u64,
                "the database did not answer in time"
            );
            Err(ApiError::database_unavailable(
                "the database did not answer in time",
            ))
        }
    }
}

/// Runs `f` inside one transaction (see [`run`]). If the request gave up meanwhile, the
/// transaction is rolled back instead of committed.
pub async fn transaction<T, F>(pool: &PgPool, f: F) -> ApiResult<T>
where
    F: FnOnce(&mut PgConnection) -> ApiResult<T> + Send + 'static,
    T: Send + 'static,
{
    run_until(pool, move |conn, expired| {
        committed_unless_expired(conn, expired, f)
    })
    .await
}

/// One transaction around `f`, rolled back instead of committed if the request gave up.
fn committed_unless_expired<T>(
    conn: &mut PgConnection,
    expired: &Expired,
    f: impl FnOnce(&mut PgConnection) -> ApiResult<T>,
) -> ApiResult<T> {
    conn.transaction(|conn| {
        let value = f(conn)?;
        expired.check()?;
        Ok(value)
    })
}

/// How [`fast_path`] commits its one statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FastCommit {
    /// On its own, without BEGIN/COMMIT: two round trips fewer. The statement calls
    /// `weauth.in_time(deadline)` where it writes, so if it only starts executing after the
    /// request answered 503 (a stalled network delivering it late) it aborts and writes
    /// nothing, which is what [`transaction`]'s rollback promises.
    Alone,
    /// Inside a transaction with what follows it: when the rest of the unit of work can still
    /// fail and must undo the statement (an access-token hook run after a sign-in).
    InTransaction,
}

/// The deadline a [`fast_path`] statement binds for `weauth.in_time`: the instant the request
/// answers 503 on the database's clock, or `None` (no guard needed) inside a transaction.
#[derive(Clone, Copy, Debug)]
pub struct Deadline(pub Option<DateTime<Utc>>);

/// A unit of work with a one-statement fast path: `fast` runs first (committed as `commit`
/// says) and, when it returns `None` (it found a case it does not handle, and wrote nothing),
/// `slow` runs in a transaction (the same one, with [`FastCommit::InTransaction`]).
pub async fn fast_path<T, A, B>(pool: &PgPool, commit: FastCommit, fast: A, slow: B) -> ApiResult<T>
where
    A: FnOnce(&mut PgConnection, Deadline) -> ApiResult<Option<T>> + Send + 'static,
    B: FnOnce(&mut PgConnection) -> ApiResult<T> + Send + 'static,
    T: Send + 'static,
{
    run_until(pool, move |conn, expired| {
        let alone = match commit {
            FastCommit::Alone => expired.on_database_clock(),
            FastCommit::InTransaction => None,
        };
        if let Some(deadline) = alone {
            if let Some(value) = fast(conn, Deadline(Some(deadline)))? {
                return Ok(value);
            }
            return committed_unless_expired(conn, expired, slow);
        }
        committed_unless_expired(conn, expired, |conn| match fast(conn, Deadline(None))? {
            Some(value) => Ok(value),
            None => slow(conn),
        })
    })
    .await
}

/// [`transaction`] for a unit of work that also calls an outside service from inside the
/// transaction (an SMS or e-mail send, which must not happen unless the code it carries is
/// stored, and must not leave a stored code behind when it fails). The deadline grows by
/// `outside`, the call's own bound, so a slow but successful send is not rolled back.
pub async fn transaction_calling_out<T, F>(pool: &PgPool, outside: Duration, f: F) -> ApiResult<T>
where
    F: FnOnce(&mut PgConnection) -> ApiResult<T> + Send + 'static,
    T: Send + 'static,
{
    let pool = pool.clone().with_deadline(pool.deadline + outside);
    transaction(&pool, f).await
}

/// How often [`transaction_retrying`] runs its transaction before giving up.
const LOCK_CONFLICT_ATTEMPTS: usize = 5;

/// [`transaction`] for a unit of work that must not lose to a concurrent one: when PostgreSQL
/// aborts it to break a deadlock (or a serialization failure), the whole transaction runs again,
/// up to a few times, instead of answering 409. Used by logout, which must always win.
pub async fn transaction_retrying<T, F>(pool: &PgPool, f: F) -> ApiResult<T>
where
    F: Fn(&mut PgConnection) -> ApiResult<T> + Send + Sync + 'static,
    T: Send + 'static,
{
    let f = Arc::new(f);
    let mut attempt = 1;
    loop {
        let f = f.clone();
        match transaction(pool, move |conn| f(conn)).await {
            Err(e) if e.is_lock_conflict() && attempt < LOCK_CONFLICT_ATTEMPTS => attempt += 1,
            other => return other,
        }
    }
}

/// A jsonb column parsed straight into `T` (no intermediate `serde_json::Value`).
#[derive(Debug)]
pub struct JsonbAs<T>(pub T);

impl<T: serde::de::DeserializeOwned>
    diesel::deserialize::FromSql<diesel::sql_types::Jsonb, diesel::pg::Pg> for JsonbAs<T>
{
    fn from_sql(value: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
        // jsonb's binary form: a version byte (1), then the JSON text.
        match value.as_bytes().split_first() {
            Some((1, text)) => Ok(JsonbAs(serde_json::from_slice(text)?)),
            _ => Err("unsupported jsonb encoding version".into()),
        }
    }
}

/// True when `e` is a unique-constraint violation on the named constraint or index.
pub fn is_unique_violation(e: &diesel::result::Error, constraint: &str) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    matches!(e, Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info)
        if info.constraint_name() == Some(constraint))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_bounds_are_added_unless_the_url_sets_them() {
        let url = with_tcp_bounds(
            "postgres://u@h/db?sslmode=disable&keepalives_idle=30",
            Duration::from_secs(3),
        );
        assert_eq!(
            url,
            "postgres://u@h/db?sslmode=disable&keepalives_idle=30&connect_timeout=3\
             &keepalives=1&keepalives_interval=2&keepalives_count=3&tcp_user_timeout=10000"
        );
        assert!(
            with_tcp_bounds("postgres://u@h/db", Duration::from_millis(500))
                .starts_with("postgres://u@h/db?connect_timeout=2&")
        );
        assert!(with_tcp_bounds("host=h dbname=db", Duration::from_secs(3))
            .starts_with("host=h dbname=db connect_timeout=3 keepalives=1 "));
    }
}
