//! `auth.users` (GoTrue `internal/models/user.go`).

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{Array, Jsonb, Nullable, Text};
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::identity::{Identity, IdentityJson};
use super::INSTANCE_ID;
use crate::db::schema::{identities, users};

diesel::define_sql_function!(fn lower(x: diesel::sql_types::Nullable<diesel::sql_types::Varchar>) -> diesel::sql_types::Nullable<diesel::sql_types::Text>);

/// A user row. Deliberately not `Debug`: it holds the password hash.
#[derive(Queryable, Selectable, QueryableByName, Clone)]
#[diesel(table_name = users)]
pub struct User {
    pub id: Uuid,
    pub aud: Option<String>,
    pub role: Option<String>,
    pub email: Option<String>,
    pub encrypted_password: Option<String>,
    pub email_confirmed_at: Option<DateTime<Utc>>,
    pub invited_at: Option<DateTime<Utc>>,
    pub confirmation_sent_at: Option<DateTime<Utc>>,
    pub recovery_sent_at: Option<DateTime<Utc>>,
    pub email_change: Option<String>,
    pub email_change_sent_at: Option<DateTime<Utc>>,
    pub last_sign_in_at: Option<DateTime<Utc>>,
    pub raw_app_meta_data: Option<Value>,
    pub raw_user_meta_data: Option<Value>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub phone: Option<String>,
    pub phone_confirmed_at: Option<DateTime<Utc>>,
    pub phone_change: Option<String>,
    pub phone_change_sent_at: Option<DateTime<Utc>>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub reauthentication_sent_at: Option<DateTime<Utc>>,
    pub banned_until: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub is_anonymous: bool,
}

/// A new row. The token columns are written as `''`, not NULL, because GoTrue scans them into
/// plain strings and would fail to load a user weauth created.
/// `Serialize` feeds [`new_user_sql`] (`jsonb_populate_record`), which writes exactly these
/// columns.
#[derive(Insertable, Serialize)]
#[diesel(table_name = users)]
pub struct NewUser {
    pub instance_id: Uuid,
    pub id: Uuid,
    pub aud: String,
    pub role: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub encrypted_password: String,
    pub email_confirmed_at: Option<DateTime<Utc>>,
    pub phone_confirmed_at: Option<DateTime<Utc>>,
    pub confirmation_sent_at: Option<DateTime<Utc>>,
    pub confirmation_token: String,
    pub recovery_token: String,
    pub email_change_token_new: String,
    pub email_change: String,
    pub raw_app_meta_data: Value,
    pub raw_user_meta_data: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub banned_until: Option<DateTime<Utc>>,
    pub is_anonymous: bool,
    /// Set by a statement that signs the new user in as it creates them.
    pub last_sign_in_at: Option<DateTime<Utc>>,
}

impl NewUser {
    /// A user with no credentials yet; callers fill in e-mail, phone, password and metadata.
    pub fn new(id: Uuid, aud: &str, role: &str, now: DateTime<Utc>) -> NewUser {
        NewUser {
            instance_id: INSTANCE_ID,
            id,
            aud: aud.to_string(),
            role: role.to_string(),
            email: None,
            phone: None,
            encrypted_password: String::new(),
            email_confirmed_at: None,
            phone_confirmed_at: None,
            confirmation_sent_at: None,
            confirmation_token: String::new(),
            recovery_token: String::new(),
            email_change_token_new: String::new(),
            email_change: String::new(),
            raw_app_meta_data: Value::Object(Map::new()),
            raw_user_meta_data: Value::Object(Map::new()),
            created_at: now,
            updated_at: now,
            banned_until: None,
            is_anonymous: false,
            last_sign_in_at: None,
        }
    }
}

impl User {
    pub fn is_banned(&self, now: DateTime<Utc>) -> bool {
        self.banned_until.is_some_and(|until| until > now)
    }

    pub fn has_password(&self) -> bool {
        self.encrypted_password
            .as_deref()
            .is_some_and(|p| !p.is_empty())
    }

    pub fn app_metadata(&self) -> Map<String, Value> {
        as_object(self.raw_app_meta_data.clone())
    }

    pub fn user_metadata(&self) -> Map<String, Value> {
        as_object(self.raw_user_meta_data.clone())
    }

    /// GoTrue's JSON shape of a user (`models.User`), with `identities` when they were loaded.
    pub fn to_json<'a>(&'a self, identities: Option<&'a [Identity]>) -> UserJson<'a> {
        UserJson {
            id: self.id,
            aud: self.aud.as_deref().unwrap_or(""),
            role: self.role.as_deref().unwrap_or(""),
            email: self.email.as_deref().unwrap_or(""),
            email_confirmed_at: self.email_confirmed_at,
            invited_at: self.invited_at,
            phone: self.phone.as_deref().unwrap_or(""),
            phone_confirmed_at: self.phone_confirmed_at,
            confirmation_sent_at: self.confirmation_sent_at,
            confirmed_at: self
                .confirmed_at
                .or_else(|| min_time(self.email_confirmed_at, self.phone_confirmed_at)),
            recovery_sent_at: self.recovery_sent_at,
            new_email: self.email_change.as_deref().unwrap_or(""),
            email_change_sent_at: self.email_change_sent_at,
            new_phone: self.phone_change.as_deref().unwrap_or(""),
            phone_change_sent_at: self.phone_change_sent_at,
            reauthentication_sent_at: self.reauthentication_sent_at,
            last_sign_in_at: self.last_sign_in_at,
            app_metadata: self.app_metadata(),
            user_metadata: self.user_metadata(),
            factors: &[],
            identities: identities.map(|ids| ids.iter().map(Identity::to_json).collect()),
            created_at: self.created_at,
            updated_at: self.updated_at,
            banned_until: self.banned_until,
            deleted_at: self.deleted_at,
            is_anonymous: self.is_anonymous,
        }
    }
}

/// `LEAST(email_confirmed_at, phone_confirmed_at)`, which Postgres computes for the generated
/// column; used for rows changed in this request, before a re-read.
fn min_time(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn as_object(value: Option<Value>) -> Map<String, Value> {
    match value {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// The user object of GoTrue's API, field for field and in GoTrue's order
/// (`internal/models/user.go`; omission rules from its `json` tags).
#[derive(Serialize)]
pub struct UserJson<'a> {
    pub id: Uuid,
    pub aud: &'a str,
    pub role: &'a str,
    pub email: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(serialize_with = "super::timestamp::optional")]
    pub email_confirmed_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(serialize_with = "super::timestamp::optional")]
    pub invited_at: Option<DateTime<Utc>>,
    pub phone: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(serialize_with = "super::timestamp::optional")]
    pub phone_confirmed_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(serialize_with = "super::timestamp::optional")]
    pub confirmation_sent_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(serialize_with = "super::timestamp::optional")]
    pub confirmed_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(serialize_with = "super::timestamp::optional")]
    pub recovery_sent_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub new_email: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(serialize_with = "super::timestamp::optional")]
    pub email_change_sent_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub new_phone: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(serialize_with = "super::timestamp::optional")]
    pub phone_change_sent_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(serialize_with = "super::timestamp::optional")]
    pub reauthentication_sent_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(serialize_with = "super::timestamp::optional")]
    pub last_sign_in_at: Option<DateTime<Utc>>,
    pub app_metadata: Map<String, Value>,
    pub user_metadata: Map<String, Value>,
    /// GoTrue's `factors` (omitted when empty); set with [`UserJson::with_factors`].
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub factors: &'a [super::mfa::Factor],
    pub identities: Option<Vec<IdentityJson<'a>>>,
    #[serde(serialize_with = "super::timestamp::optional")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "super::timestamp::optional")]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(serialize_with = "super::timestamp::optional")]
    pub banned_until: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(serialize_with = "super::timestamp::optional")]
    pub deleted_at: Option<DateTime<Utc>>,
    pub is_anonymous: bool,
}

impl<'a> UserJson<'a> {
    /// The user's MFA factors, as GoTrue lists them where it loaded them.
    pub fn with_factors(mut self, factors: &'a [super::mfa::Factor]) -> Self {
        self.factors = factors;
        self
    }
}

/// A user with everything GoTrue's user JSON shows: identities (oldest first) and MFA factors.
/// Statements that sign someone in or change a user return one, read in the same round trip.
pub struct UserRecord {
    pub user: User,
    pub identities: Vec<Identity>,
    pub factors: Vec<super::mfa::Factor>,
}

/// Where [`record_columns`] reads identities from when nothing in the statement changed them.
pub const IDENTITIES: &str = "auth.identities";

/// The select list of a [`UserRecord`] for the `auth.users` row aliased `u` (a table or a CTE
/// `RETURNING *`): its columns, its identities and its factors as two jsonb arrays. A statement
/// that changes an identity in a CTE passes a relation with the changed row in `identities`,
/// since its own subqueries see the rows as they were before it ran.
pub fn record_columns(identities: &str) -> String {
    format!(
        "{USER_COLUMNS}, (SELECT coalesce(jsonb_agg(to_jsonb(i) ORDER BY i.created_at), '[]')
               FROM {identities} i WHERE i.user_id = u.id) AS identities_json,
         {} AS factors_json",
        super::mfa::FACTORS_JSON
    )
}

/// [`User`]'s columns of `u`, in its field order: [`RecordRow`] reads them by position (a
/// look-up by name compares the name with every column before it, which was the largest cost
/// of decoding a row). Checked against `User::as_select()` by a unit test.
const USER_COLUMNS: &str = "u.id, u.aud, u.role, u.email, u.encrypted_password, \
     u.email_confirmed_at, u.invited_at, u.confirmation_sent_at, u.recovery_sent_at, \
     u.email_change, u.email_change_sent_at, u.last_sign_in_at, u.raw_app_meta_data, \
     u.raw_user_meta_data, u.created_at, u.updated_at, u.phone, u.phone_confirmed_at, \
     u.phone_change, u.phone_change_sent_at, u.confirmed_at, u.reauthentication_sent_at, \
     u.banned_until, u.deleted_at, u.is_anonymous";
const USER_COLUMN_COUNT: usize = 25;

/// The row of [`record_columns`], which every statement returning a record selects first. The
/// relations' jsonb is parsed straight into their types.
pub struct RecordRow {
    pub user: User,
    pub identities_json: crate::db::JsonbAs<Vec<Identity>>,
    pub factors_json: crate::db::JsonbAs<Vec<super::mfa::Factor>>,
}

impl diesel::deserialize::QueryableByName<diesel::pg::Pg> for RecordRow {
    fn build<'a>(
        row: &impl diesel::row::NamedRow<'a, diesel::pg::Pg>,
    ) -> diesel::deserialize::Result<Self> {
        use diesel::deserialize::FromSqlRow;
        use diesel::row::Row;
        type UserSql = <<User as diesel::Selectable<diesel::pg::Pg>>::SelectExpression as diesel::Expression>::SqlType;
        // A statement that does not start with record_columns() fails here, not silently.
        if !column_named(row, 0, "id") || !column_named(row, USER_COLUMN_COUNT, "identities_json") {
            return Err("a user record's columns must come first (user::record_columns)".into());
        }
        Ok(RecordRow {
            user: <User as FromSqlRow<UserSql, diesel::pg::Pg>>::build_from_row(row)?,
            identities_json: Row::get_value::<Jsonb, _, _>(row, USER_COLUMN_COUNT)?,
            factors_json: Row::get_value::<Jsonb, _, _>(row, USER_COLUMN_COUNT + 1)?,
        })
    }
}

fn column_named<'a>(row: &impl diesel::row::Row<'a, diesel::pg::Pg>, i: usize, name: &str) -> bool {
    use diesel::row::Field;
    row.get(i).is_some_and(|f| f.field_name() == Some(name))
}

impl RecordRow {
    pub fn into_record(self) -> QueryResult<UserRecord> {
        Ok(UserRecord {
            user: self.user,
            identities: self.identities_json.0,
            factors: self.factors_json.0,
        })
    }
}

/// The user and their relations: one round trip.
pub fn find_record(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<UserRecord>> {
    let row: Option<RecordRow> = crate::db::prepared(format!(
        "SELECT {} FROM auth.users u WHERE u.id = $1",
        record_columns(IDENTITIES)
    ))
    .bind::<diesel::sql_types::Uuid, _>(id)
    .get_result(conn)
    .optional()?;
    row.map(RecordRow::into_record).transpose()
}

/// Inserts the [`NewUser`] bound (as jsonb) at `param` and returns the row: for a CTE of a
/// statement that creates a user together with what belongs to them.
pub fn new_user_sql(param: &str) -> String {
    format!(
        "INSERT INTO auth.users (instance_id, id, aud, role, email, phone, encrypted_password,
           email_confirmed_at, phone_confirmed_at, confirmation_sent_at, confirmation_token,
           recovery_token, email_change_token_new, email_change, raw_app_meta_data,
           raw_user_meta_data, created_at, updated_at, banned_until, is_anonymous, last_sign_in_at)
         SELECT instance_id, id, aud, role, email, phone, encrypted_password, email_confirmed_at,
           phone_confirmed_at, confirmation_sent_at, confirmation_token, recovery_token,
           email_change_token_new, email_change, raw_app_meta_data, raw_user_meta_data,
           created_at, updated_at, banned_until, is_anonymous, last_sign_in_at
         FROM jsonb_populate_record(NULL::auth.users, {param}::jsonb)"
    )
}

/// A user with their identities (oldest first): what GoTrue's user JSON shows. One round trip.
pub fn find_with_identities(
    conn: &mut PgConnection,
    id: Uuid,
) -> QueryResult<Option<(User, Vec<Identity>)>> {
    let rows = users::table
        .find(id)
        .left_join(identities::table.on(identities::user_id.eq(users::id)))
        .order(identities::created_at.asc())
        .select((User::as_select(), Option::<Identity>::as_select()))
        .load::<(User, Option<Identity>)>(conn)?;
    Ok(fold_identities(
        rows.into_iter()
            .map(|(user, identity)| (user, (), identity)),
    )
    .map(|(user, (), identities)| (user, identities)))
}

/// Folds `user LEFT JOIN identities` rows (the user repeated on each) into the user and a list.
/// `extra` is whatever else the query selected per user (taken from the first row).
pub fn fold_identities<T>(
    rows: impl IntoIterator<Item = (User, T, Option<Identity>)>,
) -> Option<(User, T, Vec<Identity>)> {
    let mut rows = rows.into_iter();
    let (user, extra, first) = rows.next()?;
    let identities = first
        .into_iter()
        .chain(rows.filter_map(|(_, _, i)| i))
        .collect();
    Some((user, extra, identities))
}

pub fn find_by_id(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<User>> {
    users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// Same audience, e-mail compared lower-cased, SSO users excluded (GoTrue `FindUserByEmailAndAudience`).
pub fn find_by_email(conn: &mut PgConnection, aud: &str, email: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(users::instance_id.eq(INSTANCE_ID))
        .filter(lower(users::email).eq(email.to_lowercase()))
        .filter(users::aud.eq(aud))
        .filter(users::is_sso_user.eq(false))
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// Phones are unique across the whole table (`users_phone_key`), whatever the audience.
pub fn find_by_phone(conn: &mut PgConnection, phone: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(users::phone.eq(phone))
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// The user with a pending change to `phone` (GoTrue `FindUserByPhoneChangeAndAudience`).
pub fn find_by_phone_change(conn: &mut PgConnection, phone: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(users::phone_change.eq(phone))
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// The user with a pending change to `email` (either side of the change).
pub fn find_by_email_change(
    conn: &mut PgConnection,
    aud: &str,
    email: &str,
) -> QueryResult<Option<User>> {
    let lowered = email.to_lowercase();
    users::table
        .filter(users::instance_id.eq(INSTANCE_ID))
        .filter(users::aud.eq(aud))
        .filter(users::is_sso_user.eq(false))
        .filter(
            lower(users::email)
                .eq(lowered.clone())
                .or(lower(users::email_change).eq(lowered)),
        )
        .filter(users::email_change.ne(""))
        .select(User::as_select())
        .first(conn)
        .optional()
}

pub fn email_taken(
    conn: &mut PgConnection,
    aud: &str,
    email: &str,
    except: Option<Uuid>,
) -> QueryResult<bool> {
    Ok(find_by_email(conn, aud, email)?.is_some_and(|u| Some(u.id) != except))
}

pub fn phone_taken(
    conn: &mut PgConnection,
    phone: &str,
    except: Option<Uuid>,
) -> QueryResult<bool> {
    Ok(find_by_phone(conn, phone)?.is_some_and(|u| Some(u.id) != except))
}

pub fn insert(conn: &mut PgConnection, new: &NewUser) -> QueryResult<User> {
    diesel::insert_into(users::table)
        .values(new)
        .returning(User::as_returning())
        .get_result(conn)
}

/// The columns one update may change, written in one `UPDATE` (a `None` field is left as it is).
/// `updated_at` is always part of an update.
#[derive(AsChangeset, Default)]
#[diesel(table_name = users)]
pub struct UserChanges {
    pub role: Option<String>,
    pub email: Option<Option<String>>,
    pub email_confirmed_at: Option<Option<DateTime<Utc>>>,
    pub email_change: Option<String>,
    pub email_change_sent_at: Option<Option<DateTime<Utc>>>,
    pub phone: Option<Option<String>>,
    pub phone_confirmed_at: Option<Option<DateTime<Utc>>>,
    pub phone_change: Option<String>,
    pub phone_change_sent_at: Option<Option<DateTime<Utc>>>,
    pub encrypted_password: Option<String>,
    pub confirmation_sent_at: Option<Option<DateTime<Utc>>>,
    pub raw_app_meta_data: Option<Value>,
    pub raw_user_meta_data: Option<Value>,
    pub banned_until: Option<Option<DateTime<Utc>>>,
    pub deleted_at: Option<Option<DateTime<Utc>>>,
    pub is_anonymous: Option<bool>,
    pub updated_at: Option<DateTime<Utc>>,
    /// The pending codes' hashes (`models::one_time_token` writes them; verifications empty
    /// them here, `''` as GoTrue does).
    pub confirmation_token: Option<String>,
    pub recovery_token: Option<String>,
    pub email_change_token_new: Option<String>,
    pub email_change_token_current: Option<String>,
    pub phone_change_token: Option<String>,
    pub reauthentication_token: Option<String>,
    /// When an invitation was sent (`POST /invite`, `generate_link` type `invite`).
    pub invited_at: Option<Option<DateTime<Utc>>>,
}

/// Applies `changes` (and `updated_at = now`) in one statement; `None` when the user is gone.
pub fn update(
    conn: &mut PgConnection,
    id: Uuid,
    changes: UserChanges,
    now: DateTime<Utc>,
) -> QueryResult<Option<User>> {
    update_with_metadata(conn, id, changes, None, None, now)
}

/// A change to a metadata object (`raw_user_meta_data`, `raw_app_meta_data`) that PostgreSQL
/// applies to the value the row holds when the `UPDATE` runs, not to a copy read earlier: two
/// requests changing different keys at once both keep their keys.
#[derive(Default, Clone)]
pub struct MetadataPatch {
    set: Map<String, Value>,
    remove: Vec<String>,
    /// Keys already in the row win over `set` (filling in defaults).
    keep_existing: bool,
}

impl MetadataPatch {
    /// The keys this patch sets, when it only sets keys (no removals, no defaults).
    pub fn only_sets(&self) -> Option<&Map<String, Value>> {
        (self.remove.is_empty() && !self.keep_existing).then_some(&self.set)
    }

    /// GoTrue's merge (`UpdateUserMetaData`): top-level keys are replaced, a JSON `null`
    /// removes the key.
    pub fn merge(changes: Map<String, Value>) -> MetadataPatch {
        let mut patch = MetadataPatch::default();
        for (key, value) in changes {
            patch.set_key(key, value);
        }
        patch
    }

    /// Adds the keys the row does not have yet; existing keys are kept.
    pub fn fill(defaults: Map<String, Value>) -> MetadataPatch {
        MetadataPatch {
            set: defaults,
            remove: Vec::new(),
            keep_existing: true,
        }
    }

    /// Sets (or, with `null`, removes) one key.
    pub fn set_key(&mut self, key: String, value: Value) {
        if value.is_null() {
            self.set.remove(&key);
            self.remove.push(key);
        } else {
            self.remove.retain(|k| *k != key);
            self.set.insert(key, value);
        }
    }

    /// The SQL that computes the new value of `column` (a metadata column of `auth.users`).
    fn expression(
        &self,
        column: &'static str,
    ) -> Box<dyn BoxableExpression<users::table, Pg, SqlType = Nullable<Jsonb>>> {
        use diesel::dsl::sql;
        // A row may hold SQL NULL or a non-object (GoTrue's own writes never do): as `{}`.
        let current = format!(
            "(CASE WHEN jsonb_typeof({column}) = 'object' THEN {column} ELSE '{{}}'::jsonb END)"
        );
        let set = Value::Object(self.set.clone());
        if self.keep_existing {
            Box::new(
                sql::<Nullable<Jsonb>>("(")
                    .bind::<Jsonb, _>(set)
                    .sql(&format!(" || {current})")),
            )
        } else {
            Box::new(
                sql::<Nullable<Jsonb>>(&format!("(({current} - "))
                    .bind::<Array<Text>, _>(self.remove.clone())
                    .sql(") || ")
                    .bind::<Jsonb, _>(set)
                    .sql(")"),
            )
        }
    }
}

/// [`update`], also applying metadata patches atomically in the same statement.
pub fn update_with_metadata(
    conn: &mut PgConnection,
    id: Uuid,
    mut changes: UserChanges,
    user_metadata: Option<&MetadataPatch>,
    app_metadata: Option<&MetadataPatch>,
    now: DateTime<Utc>,
) -> QueryResult<Option<User>> {
    changes.updated_at = Some(now);
    if user_metadata.is_some() {
        changes.raw_user_meta_data = None;
    }
    if app_metadata.is_some() {
        changes.raw_app_meta_data = None;
    }
    let user_meta =
        user_metadata.map(|p| users::raw_user_meta_data.eq(p.expression("raw_user_meta_data")));
    let app_meta =
        app_metadata.map(|p| users::raw_app_meta_data.eq(p.expression("raw_app_meta_data")));
    diesel::update(users::table.find(id))
        .set((changes, user_meta, app_meta))
        .returning(User::as_returning())
        .get_result(conn)
        .optional()
}

/// A token's user and everything its JSON shows, and its session's id when that session exists.
pub type TokenUser = (UserRecord, Option<Uuid>);

/// The row an access token names with its identities and factors, and whether the token's
/// session still exists: one round trip, one row.
pub fn find_for_token(
    conn: &mut PgConnection,
    user_id: Uuid,
    session_id: Option<Uuid>,
) -> QueryResult<Option<TokenUser>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(embed)]
        record: RecordRow,
        #[diesel(sql_type = Nullable<diesel::sql_types::Uuid>)]
        session_found: Option<Uuid>,
    }
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT {}, (SELECT s.id FROM auth.sessions s WHERE s.id = $2 AND s.user_id = u.id) AS session_found
             FROM auth.users u WHERE u.id = $1",
            record_columns(IDENTITIES)
        )
    });
    struct FindForToken;
    let row: Option<Row> = crate::db::prepared(SQL.as_str())
        .bind::<diesel::sql_types::Uuid, _>(user_id)
        .bind::<diesel::sql_types::Uuid, _>(session_id.unwrap_or_default())
        .same_text_as::<FindForToken>()
        .get_result(conn)
        .optional()?;
    row.map(|r| Ok((r.record.into_record()?, r.session_found)))
        .transpose()
}

/// Soft delete (GoTrue `adminUserDelete` with `should_soft_delete`): the row stays for audit,
/// its e-mail, phone and password are cleared so they can be used again. `false` when the
/// user does not exist. Sessions and identities are the caller's to remove.
pub fn soft_delete(conn: &mut PgConnection, id: Uuid, now: DateTime<Utc>) -> QueryResult<bool> {
    let changes = UserChanges {
        deleted_at: Some(Some(now)),
        email: Some(None),
        phone: Some(None),
        encrypted_password: Some(String::new()),
        ..Default::default()
    };
    Ok(update(conn, id, changes, now)?.is_some())
}

/// Locks both users' rows, in id order (two merges of the same pair cannot deadlock); the
/// ids that exist.
pub fn lock_pair(conn: &mut PgConnection, a: Uuid, b: Uuid) -> QueryResult<Vec<Uuid>> {
    users::table
        .filter(users::id.eq_any([a, b]))
        .order(users::id)
        .select(users::id)
        .for_update()
        .load(conn)
}

/// Deletes the user (cascading to identities, sessions, refresh tokens, factors, ...).
pub fn delete(conn: &mut PgConnection, id: Uuid) -> QueryResult<bool> {
    Ok(diesel::delete(users::table.find(id)).execute(conn)? > 0)
}

/// Page of users in one audience, newest first, with the total count.
pub fn list(
    conn: &mut PgConnection,
    aud: &str,
    filter: Option<&str>,
    page: i64,
    per_page: i64,
) -> QueryResult<(Vec<User>, i64)> {
    let query = || {
        let mut q = users::table
            .filter(users::aud.eq(aud.to_string()))
            .into_boxed();
        if let Some(f) = filter.filter(|f| !f.is_empty()) {
            let pattern = format!(
                "%{}%",
                f.replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            );
            q = q.filter(
                users::email.ilike(pattern.clone()).or(
                    diesel::dsl::sql::<diesel::sql_types::Bool>(
                        "raw_user_meta_data->>'full_name' ILIKE ",
                    )
                    .bind::<diesel::sql_types::Text, _>(pattern),
                ),
            );
        }
        q
    };
    let total = query().count().get_result(conn)?;
    let rows = query()
        .order((users::created_at.desc(), users::id.desc()))
        .offset((page - 1) * per_page)
        .limit(per_page)
        .select(User::as_select())
        .load(conn)?;
    Ok((rows, total))
}

/// A phone WeChat (or another provider) vouches for, in one statement: sets it confirmed on
/// `user_id` (clearing a pending change, making an anonymous user permanent), merges
/// `app_metadata_set` into `app_metadata`, creates or updates the user's `phone` identity with
/// `identity_data`, and returns the user's record. `None`, with nothing written, when another
/// user has the number or the user is gone: the caller's transactional path decides (a merge,
/// or 422).
pub fn confirm_phone(
    conn: &mut PgConnection,
    user_id: Uuid,
    phone: &str,
    app_metadata_set: &Map<String, Value>,
    identity_data: &Map<String, Value>,
    now: DateTime<Utc>,
    deadline: Option<DateTime<Utc>>,
) -> QueryResult<Option<UserRecord>> {
    use diesel::sql_types::{Jsonb as J, Text as T, Timestamptz, Uuid as U};
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
        "WITH u AS (
           UPDATE auth.users SET phone = $2, phone_confirmed_at = $3, phone_change = '',
             updated_at = $3, is_anonymous = false,
             raw_app_meta_data = (CASE WHEN jsonb_typeof(raw_app_meta_data) = 'object'
                                  THEN raw_app_meta_data ELSE '{{}}'::jsonb END) || $4::jsonb
           WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM auth.users o WHERE o.phone = $2 AND o.id <> $1)
             AND weauth.in_time($6::timestamptz)
           RETURNING *
         ), e AS (
           UPDATE auth.identities SET updated_at = $3,
             identity_data = (CASE WHEN jsonb_typeof(identity_data) = 'object'
                              THEN identity_data ELSE '{{}}'::jsonb END) || $5::jsonb
           WHERE user_id = (SELECT id FROM u) AND provider = 'phone'
           RETURNING *
         ), n AS (
           INSERT INTO auth.identities (id, provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at)
           SELECT gen_random_uuid(), u.id::text, u.id, $5::jsonb, 'phone', $3, $3, $3 FROM u
           WHERE NOT EXISTS (SELECT 1 FROM auth.identities x WHERE x.user_id = u.id AND x.provider = 'phone')
           -- A concurrent change of the same user's phone may have inserted the identity after
           -- this statement's snapshot (e saw nothing): merge into it instead of failing.
           ON CONFLICT (provider_id, provider) DO UPDATE SET updated_at = EXCLUDED.updated_at,
             identity_data = (CASE WHEN jsonb_typeof(auth.identities.identity_data) = 'object'
                              THEN auth.identities.identity_data ELSE '{{}}'::jsonb END) || EXCLUDED.identity_data
           RETURNING *
         )
         SELECT {} FROM u",
        record_columns(
            "(SELECT * FROM e UNION ALL SELECT * FROM n UNION ALL
              SELECT o.* FROM auth.identities o WHERE o.user_id = $1 AND o.provider <> 'phone')"
        )
        )
    });
    struct ConfirmPhone;
    let row: Option<RecordRow> = crate::db::prepared(SQL.as_str())
        .bind::<U, _>(user_id)
        .bind::<T, _>(phone.to_string())
        .bind::<Timestamptz, _>(now)
        .bind::<J, _>(Value::Object(app_metadata_set.clone()))
        .bind::<J, _>(Value::Object(identity_data.clone()))
        .bind::<diesel::sql_types::Nullable<Timestamptz>, _>(deadline)
        .same_text_as::<ConfirmPhone>()
        .get_result(conn)
        .optional()?;
    row.map(RecordRow::into_record).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_columns_list_users_fields_in_their_order() {
        let select =
            diesel::debug_query::<diesel::pg::Pg, _>(&users::table.select(User::as_select()))
                .to_string();
        let expected: Vec<&str> = select
            .split("\"auth\".\"users\".\"")
            .skip(1)
            .map(|rest| rest.split('"').next().unwrap())
            .collect();
        let ours: Vec<&str> = USER_COLUMNS
            .split(',')
            .map(|c| c.trim().trim_start_matches("u."))
            .collect();
        assert_eq!(ours, expected);
        assert_eq!(ours.len(), USER_COLUMN_COUNT);
    }
}
