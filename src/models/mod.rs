//! One module per table, mirroring GoTrue's `internal/models/`. Look-ups are plain functions
//! taking a connection; they never start transactions themselves, callers do.

pub mod audit_log;
pub mod flow_state;
pub mod identity;
pub mod mfa;
pub mod one_time_token;
pub mod refresh_token;
pub mod session;
pub mod sign_in;
pub mod timestamp;
pub mod user;
pub mod wechat;

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// GoTrue writes the nil UUID into every legacy `instance_id` column and filters on it.
pub const INSTANCE_ID: Uuid = Uuid::nil();

/// `now` for rows written in this request, rounded to what PostgreSQL stores (microseconds), so
/// in-memory copies match re-reads.
pub fn db_now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// `SELECT 1`: the database answers on this connection (the readiness check).
pub fn ping(conn: &mut diesel::PgConnection) -> diesel::QueryResult<()> {
    use diesel::RunQueryDsl;
    diesel::sql_query("SELECT 1").execute(conn).map(|_| ())
}
