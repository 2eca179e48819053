//! Readiness: whether this instance can serve requests that need the database.

use crate::db;
use crate::error::ApiResult;
use crate::models;
use crate::state::AppState;

/// Takes a pooled connection and runs one trivial query. Fails like every database call does
/// when the database is away: 503 after `WEAUTH_DB_CONNECT_TIMEOUT_MS`.
pub async fn ready(state: &AppState) -> ApiResult<()> {
    db::run(&state.pool, |conn| Ok(models::ping(conn)?)).await
}
