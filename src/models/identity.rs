//! `auth.identities` (GoTrue `internal/models/identity.go`).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::user::User;
use crate::db::schema::{identities, users};

/// An identity row; `Deserialize` reads the `to_jsonb` rows of [`super::user::record_columns`].
#[derive(Queryable, Selectable, Deserialize, Clone, Debug)]
#[diesel(table_name = identities)]
pub struct Identity {
    pub id: Uuid,
    pub provider_id: String,
    pub user_id: Uuid,
    pub identity_data: Value,
    pub provider: String,
    pub last_sign_in_at: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub email: Option<String>,
}

/// `Serialize` feeds `sign_in::new_user` (`jsonb_populate_record`).
#[derive(Insertable, Serialize)]
#[diesel(table_name = identities)]
pub struct NewIdentity {
    pub id: Uuid,
    pub provider_id: String,
    pub user_id: Uuid,
    pub identity_data: Value,
    pub provider: String,
    pub last_sign_in_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl NewIdentity {
    pub fn new(
        user_id: Uuid,
        provider: &str,
        provider_id: &str,
        data: Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Self {
        NewIdentity {
            id: Uuid::new_v4(),
            provider_id: provider_id.to_string(),
            user_id,
            identity_data: Value::Object(data),
            provider: provider.to_string(),
            last_sign_in_at: Some(now),
            created_at: now,
            updated_at: now,
        }
    }
}

/// `identity_data` as GoTrue writes it for the e-mail and phone providers: `sub` (the user id),
/// the address, and its verification flags. Every such identity is built here.
pub struct IdentityData(Map<String, Value>);

impl IdentityData {
    pub fn new(user_id: Uuid) -> IdentityData {
        let mut data = Map::new();
        data.insert("sub".into(), Value::String(user_id.to_string()));
        IdentityData(data)
    }
    pub fn email(mut self, email: &str) -> Self {
        self.0
            .insert("email".into(), Value::String(email.to_string()));
        self
    }
    pub fn phone(mut self, phone: &str) -> Self {
        self.0
            .insert("phone".into(), Value::String(phone.to_string()));
        self
    }
    pub fn email_verified(mut self, verified: bool) -> Self {
        self.0
            .insert("email_verified".into(), Value::Bool(verified));
        self
    }
    pub fn phone_verified(mut self, verified: bool) -> Self {
        self.0
            .insert("phone_verified".into(), Value::Bool(verified));
        self
    }
    /// Adds the keys of `extra` this data does not have (sign-up metadata, as GoTrue does).
    pub fn with_missing(mut self, extra: &Map<String, Value>) -> Self {
        for (k, v) in extra {
            self.0.entry(k.clone()).or_insert_with(|| v.clone());
        }
        self
    }
    pub fn into_map(self) -> Map<String, Value> {
        self.0
    }
}

/// GoTrue's identity JSON. Note the historical swap: `id` is the provider's subject and
/// `identity_id` the row's primary key.
#[derive(Serialize)]
pub struct IdentityJson<'a> {
    pub identity_id: Uuid,
    pub id: &'a str,
    pub user_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_data: Option<&'a Value>,
    pub provider: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(serialize_with = "super::timestamp::optional")]
    pub last_sign_in_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "super::timestamp::optional")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "super::timestamp::optional")]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub email: &'a str,
}

impl Identity {
    pub fn to_json(&self) -> IdentityJson<'_> {
        let has_data = self
            .identity_data
            .as_object()
            .is_some_and(|m| !m.is_empty());
        IdentityJson {
            identity_id: self.id,
            id: &self.provider_id,
            user_id: self.user_id,
            identity_data: has_data.then_some(&self.identity_data),
            provider: &self.provider,
            last_sign_in_at: self.last_sign_in_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
            email: self.email.as_deref().unwrap_or(""),
        }
    }
}

pub fn for_user(conn: &mut PgConnection, user_id: Uuid) -> QueryResult<Vec<Identity>> {
    identities::table
        .filter(identities::user_id.eq(user_id))
        .order(identities::created_at.asc())
        .select(Identity::as_select())
        .load(conn)
}

pub fn find(
    conn: &mut PgConnection,
    provider: &str,
    provider_id: &str,
) -> QueryResult<Option<Identity>> {
    identities::table
        .filter(identities::provider.eq(provider))
        .filter(identities::provider_id.eq(provider_id))
        .select(Identity::as_select())
        .first(conn)
        .optional()
}

/// The identity of `provider`/`provider_id` with its user (one join), both rows locked for
/// the sign-in that is about to write them. The user row is locked first (`users` leads the
/// `FROM` list), the order of a user deletion (the user, then its identities by cascade):
/// taken the other way round, a sign-in racing `DELETE /admin/users/{id}` deadlocked. If the
/// deletion wins, the identity is gone when the lock is granted and `None` comes back.
pub fn find_with_user(
    conn: &mut PgConnection,
    provider: &str,
    provider_id: &str,
) -> QueryResult<Option<(Identity, User)>> {
    users::table
        .inner_join(identities::table)
        .filter(identities::provider.eq(provider))
        .filter(identities::provider_id.eq(provider_id))
        .select((Identity::as_select(), User::as_select()))
        .for_no_key_update()
        .first(conn)
        .optional()
}

/// The oldest identity of one of `providers` whose `identity_data` carries this `unionid`
/// (WeChat's id of one person across all apps of an Open Platform account).
pub fn find_by_unionid(
    conn: &mut PgConnection,
    providers: &[&str],
    unionid: &str,
) -> QueryResult<Option<Identity>> {
    identities::table
        .filter(identities::provider.eq_any(providers))
        // The `?` predicate matches the partial index `identities_unionid_idx`.
        .filter(
            diesel::dsl::sql::<diesel::sql_types::Bool>(
                "identity_data ? 'unionid' AND identity_data->>'unionid' = ",
            )
            .bind::<diesel::sql_types::Text, _>(unionid),
        )
        .order(identities::created_at.asc())
        .select(Identity::as_select())
        .first(conn)
        .optional()
}

/// Records a sign-in through this identity, replacing its data.
pub fn touch(
    conn: &mut PgConnection,
    id: Uuid,
    data: Map<String, Value>,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(identities::table.find(id))
        .set((
            identities::identity_data.eq(Value::Object(data)),
            identities::last_sign_in_at.eq(now),
            identities::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Deletes one identity; false when it was gone already.
pub fn delete(conn: &mut PgConnection, id: Uuid) -> QueryResult<bool> {
    Ok(diesel::delete(identities::table.find(id)).execute(conn)? == 1)
}

/// Moves every identity of `from` to `into` (a merge).
pub fn reassign(conn: &mut PgConnection, from: Uuid, into: Uuid) -> QueryResult<usize> {
    diesel::update(identities::table.filter(identities::user_id.eq(from)))
        .set((
            identities::user_id.eq(into),
            identities::updated_at.eq(chrono::Utc::now()),
        ))
        .execute(conn)
}

pub fn delete_for_user(conn: &mut PgConnection, user_id: Uuid) -> QueryResult<usize> {
    diesel::delete(identities::table.filter(identities::user_id.eq(user_id))).execute(conn)
}

pub fn insert(conn: &mut PgConnection, new: &NewIdentity) -> QueryResult<Identity> {
    diesel::insert_into(identities::table)
        .values(new)
        .returning(Identity::as_returning())
        .get_result(conn)
}

/// Replaces an identity's data (e-mail or phone changed), creating the identity if it is missing.
pub fn upsert_data(
    conn: &mut PgConnection,
    user_id: Uuid,
    provider: &str,
    data: Map<String, Value>,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    let existing = identities::table
        .filter(identities::user_id.eq(user_id))
        .filter(identities::provider.eq(provider))
        .select(Identity::as_select())
        .first(conn)
        .optional()?;
    match existing {
        Some(identity) => {
            let mut merged = identity
                .identity_data
                .as_object()
                .cloned()
                .unwrap_or_default();
            merged.extend(data);
            diesel::update(identities::table.find(identity.id))
                .set((
                    identities::identity_data.eq(Value::Object(merged)),
                    identities::updated_at.eq(now),
                ))
                .execute(conn)?;
        }
        None => {
            insert(
                conn,
                &NewIdentity::new(user_id, provider, &user_id.to_string(), data, now),
            )?;
        }
    }
    Ok(())
}

/// The distinct providers of a user's identities, in first-linked order (`app_metadata.providers`).
pub fn providers(identities: &[Identity]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for identity in identities {
        if !out.contains(&identity.provider) {
            out.push(identity.provider.clone());
        }
    }
    out
}
