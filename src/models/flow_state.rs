//! `auth.flow_state` (GoTrue `internal/models/flow_state.go`): one row per OAuth sign-in in
//! progress, created by `/authorize`, found again by `/callback` through the `state` parameter
//! (the row's id), and, in the PKCE flow, exchanged once by `POST /token?grant_type=pkce`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

/// A flow in progress (the columns weauth uses).
#[derive(QueryableByName, Debug, Clone)]
pub struct FlowState {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub user_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<Text>)]
    pub auth_code: Option<String>,
    /// `s256` or `plain`.
    #[diesel(sql_type = Nullable<Text>)]
    pub code_challenge_method: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub code_challenge: Option<String>,
    #[diesel(sql_type = Text)]
    pub provider_type: String,
    #[diesel(sql_type = Text)]
    pub authentication_method: String,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub created_at: Option<DateTime<Utc>>,
    /// Where the browser goes afterwards (already checked against the allow list).
    #[diesel(sql_type = Nullable<Text>)]
    pub referrer: Option<String>,
    /// `linkIdentity`: the user the new identity is for.
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub linking_target_id: Option<Uuid>,
}

impl FlowState {
    /// GoTrue's `IsPKCE`.
    pub fn is_pkce(&self) -> bool {
        self.code_challenge
            .as_deref()
            .is_some_and(|c| !c.is_empty())
    }

    /// GoTrue's `IsExpired` for OAuth flows: older than `expiry` since creation.
    pub fn is_expired(&self, expiry: std::time::Duration, now: DateTime<Utc>) -> bool {
        let expiry = chrono::Duration::from_std(expiry).unwrap_or(chrono::Duration::MAX);
        self.created_at.is_none_or(|created| now > created + expiry)
    }
}

/// A new flow, as `/authorize` creates it.
pub struct NewFlowState<'a> {
    pub provider_type: &'a str,
    pub code_challenge: Option<(&'a str, &'a str)>,
    pub referrer: &'a str,
    pub linking_target_id: Option<Uuid>,
    pub now: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, user_id, auth_code, code_challenge_method::text AS code_challenge_method,
    code_challenge, provider_type, authentication_method, created_at, referrer, linking_target_id";

/// Inserts the flow; returns its id (the OAuth `state`) and, for PKCE, its auth code.
pub fn insert(conn: &mut PgConnection, new: &NewFlowState<'_>) -> QueryResult<Uuid> {
    let id = Uuid::new_v4();
    let (challenge, method) = new.code_challenge.map_or((None, None), |(c, m)| {
        (Some(c.to_string()), Some(m.to_string()))
    });
    let auth_code = challenge.as_ref().map(|_| Uuid::new_v4().to_string());
    diesel::sql_query(
        "INSERT INTO auth.flow_state (id, auth_code, code_challenge_method, code_challenge,
           provider_type, created_at, updated_at, authentication_method, referrer,
           linking_target_id, email_optional)
         VALUES ($1, $2, $3::auth.code_challenge_method, $4, $5, $6, $6, 'oauth', $7, $8, true)",
    )
    .bind::<SqlUuid, _>(id)
    .bind::<Nullable<Text>, _>(auth_code)
    .bind::<Nullable<Text>, _>(method)
    .bind::<Nullable<Text>, _>(challenge)
    .bind::<Text, _>(new.provider_type)
    .bind::<Timestamptz, _>(new.now)
    .bind::<Text, _>(new.referrer)
    .bind::<Nullable<SqlUuid>, _>(new.linking_target_id)
    .execute(conn)?;
    Ok(id)
}

pub fn find(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<FlowState>> {
    diesel::sql_query(format!(
        "SELECT {COLUMNS} FROM auth.flow_state WHERE id = $1"
    ))
    .bind::<SqlUuid, _>(id)
    .get_result(conn)
    .optional()
}

pub fn find_by_auth_code(conn: &mut PgConnection, code: &str) -> QueryResult<Option<FlowState>> {
    diesel::sql_query(format!(
        "SELECT {COLUMNS} FROM auth.flow_state WHERE auth_code = $1 LIMIT 1"
    ))
    .bind::<Text, _>(code)
    .get_result(conn)
    .optional()
}

/// Deletes the flow; false when it was gone already (another request used it).
pub fn delete(conn: &mut PgConnection, id: Uuid) -> QueryResult<bool> {
    Ok(
        diesel::sql_query("DELETE FROM auth.flow_state WHERE id = $1")
            .bind::<SqlUuid, _>(id)
            .execute(conn)?
            == 1,
    )
}

/// Records who signed in on a PKCE flow and when its auth code was issued; false when the
/// flow is gone or already has a user (a replayed callback).
pub fn complete(
    conn: &mut PgConnection,
    id: Uuid,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    Ok(diesel::sql_query(
        "UPDATE auth.flow_state SET user_id = $2, auth_code_issued_at = $3, updated_at = $3
         WHERE id = $1 AND user_id IS NULL",
    )
    .bind::<SqlUuid, _>(id)
    .bind::<SqlUuid, _>(user_id)
    .bind::<Timestamptz, _>(now)
    .execute(conn)?
        == 1)
}

/// Removes up to 100 flows created before `cutoff` (abandoned sign-ins), as GoTrue's cleanup
/// does, so the table does not grow with sign-ins nobody finished.
pub fn delete_older_than(conn: &mut PgConnection, cutoff: DateTime<Utc>) -> QueryResult<usize> {
    diesel::sql_query(
        "DELETE FROM auth.flow_state WHERE id IN (
           SELECT id FROM auth.flow_state WHERE created_at < $1 LIMIT 100)",
    )
    .bind::<Timestamptz, _>(cutoff)
    .execute(conn)
}
