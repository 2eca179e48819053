//! Account linking for external identities (GoTrue `external.go`
//! `createAccountFromExternalIdentity`, `linking.go`): the identity a provider vouches for is
//! found, linked to the user that already is this person, or becomes a new user. Every provider
//! goes through here, so one person is one user whichever way they sign in.

use chrono::{DateTime, Utc};
use diesel::sql_types::Text;
use diesel::{PgConnection, RunQueryDsl};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::models::identity::{self, Identity, NewIdentity};
use crate::models::sign_in::{self as statements, NewSession, Opened, SessionKey, Unless};
use crate::models::user::{self, NewUser, User};
use crate::state::AppState;

/// An identity an outside provider vouches for.
pub struct ExternalIdentity {
    /// The identity provider (`wechat`, ...).
    pub provider: &'static str,
    /// The provider's id of the user (the openid for WeChat).
    pub provider_id: String,
    /// The provider family's id of the same person across apps, if it has one (WeChat's
    /// unionid).
    pub person: Option<Person>,
    /// `identity_data`, built by the provider's flow.
    pub data: Map<String, Value>,
}

/// One person's id shared by several providers (WeChat's unionid across mini-programs,
/// websites, official accounts and apps of one Open Platform account).
pub struct Person {
    /// Names the id space in the person lock (`wechat`).
    pub family: &'static str,
    /// The providers whose identities carry this id in `identity_data.unionid`.
    pub providers: &'static [&'static str],
    pub unionid: String,
}

/// Who the identity turned out to be.
pub struct Linked {
    pub user: User,
    /// A new user was created (the audit action is then `user_signedup`).
    pub created: bool,
}

/// Finds the user by this identity, then by the person (linking this identity to them), else
/// creates one. Simultaneous first sign-ins of one person create one user: they serialise on the
/// person's lock until commit.
pub fn sign_in(
    conn: &mut PgConnection,
    state: &AppState,
    ext: &ExternalIdentity,
    now: DateTime<Utc>,
) -> ApiResult<Linked> {
    // Returning users, the common case, need no lock: their identity already exists.
    if let Some(user) = returning_user(conn, ext, now)? {
        return Ok(Linked {
            user,
            created: false,
        });
    }
    lock_person(conn, ext)?;
    // Another request may have created the user while this one waited for the lock.
    if let Some(user) = returning_user(conn, ext, now)? {
        return Ok(Linked {
            user,
            created: false,
        });
    }
    if let Some(sibling) = same_person(conn, ext)? {
        insert_identity(conn, sibling.user_id, ext, now)?;
        let user =
            user::find_by_id(conn, sibling.user_id)?.ok_or_else(super::account::user_not_found)?;
        // A new channel of the same person: `app_metadata.providers` lists it from now on.
        let mut changes = super::account::AccountChanges::new(&user);
        changes.add_provider(ext.provider);
        let user = changes.write(conn, now)?;
        return Ok(Linked {
            user,
            created: false,
        });
    }
    if state.config.accounts.disable_signup {
        return Err(ApiError::unprocessable(
            ErrorCode::SignupDisabled,
            "Signups not allowed for this instance",
        ));
    }
    let jwt = &state.config.jwt;
    let id = Uuid::new_v4();
    let mut new = NewUser::new(id, &jwt.aud, &jwt.default_group_name, now);
    new.raw_app_meta_data = json!({"provider": ext.provider, "providers": [ext.provider]});
    let user = user::insert(conn, &new)
        .map_err(|e| super::account::user_write_error(e, super::account::PHONE_TAKEN))?;
    insert_identity(conn, id, ext, now)?;
    Ok(Linked {
        user,
        created: true,
    })
}

/// [`sign_in`]'s common case in one statement: a returning identity whose
/// user is neither deleted nor banned is refreshed and gets the session `new` (and the WeChat
/// `session_key`). `None`, with nothing written, for everything else: the caller then runs
/// [`sign_in_creating`].
pub fn sign_in_returning(
    conn: &mut PgConnection,
    ext: &ExternalIdentity,
    session_key: Option<&SessionKey<'_>>,
    new: &NewSession<'_>,
) -> ApiResult<Option<Opened>> {
    Ok(statements::by_identity(
        conn,
        ext.provider,
        &ext.provider_id,
        &ext.data,
        session_key,
        new,
    )?)
}

/// The first sign-in of a person, inside the caller's transaction: takes the person lock, then
/// creates the user with this identity, the WeChat `session_key` and the session `new` in one
/// statement, unless the identity or another identity of the person already has a user (a
/// concurrent first sign-in that won the lock, or a sibling app), or sign-ups are off. `None`
/// then, with nothing written: [`sign_in`] (the lock held already) decides.
pub fn sign_in_creating(
    conn: &mut PgConnection,
    state: &AppState,
    ext: &ExternalIdentity,
    session_key: Option<&SessionKey<'_>>,
    new: &NewSession<'_>,
) -> ApiResult<Option<Opened>> {
    lock_person(conn, ext)?;
    if state.config.accounts.disable_signup {
        return Ok(None);
    }
    let jwt = &state.config.jwt;
    let id = Uuid::new_v4();
    let mut user = NewUser::new(id, &jwt.aud, &jwt.default_group_name, new.now);
    user.raw_app_meta_data = json!({"provider": ext.provider, "providers": [ext.provider]});
    user.last_sign_in_at = Some(new.now);
    let identity = NewIdentity::new(
        id,
        ext.provider,
        &ext.provider_id,
        ext.data.clone(),
        new.now,
    );
    let unless = Unless::Identity {
        provider: ext.provider,
        provider_id: &ext.provider_id,
        person: ext
            .person
            .as_ref()
            .map(|p| (p.providers, p.unionid.as_str())),
    };
    Ok(statements::new_user(
        conn,
        &user,
        Some(&identity),
        unless,
        session_key,
        new,
    )?)
}

/// Links the identity to `user_id` (an already signed-in user adding a provider). 422
/// `identity_already_exists` when it, or the same person, belongs to another user. Returns
/// whether a new identity was added.
pub fn link(
    conn: &mut PgConnection,
    user_id: Uuid,
    ext: &ExternalIdentity,
    now: DateTime<Utc>,
    taken_msg: &'static str,
) -> ApiResult<bool> {
    lock_person(conn, ext)?;
    let existing = identity::find(conn, ext.provider, &ext.provider_id)?;
    let sibling = same_person(conn, ext)?;
    if existing
        .iter()
        .chain(sibling.iter())
        .any(|i| i.user_id != user_id)
    {
        return Err(ApiError::unprocessable(
            ErrorCode::IdentityAlreadyExists,
            taken_msg,
        ));
    }
    if existing.is_some() {
        return Ok(false);
    }
    insert_identity(conn, user_id, ext, now)?;
    Ok(true)
}

/// The user behind this identity, with the identity refreshed (last sign-in, and data such as
/// a unionid that appears once an app is bound to WeChat Open Platform).
fn returning_user(
    conn: &mut PgConnection,
    ext: &ExternalIdentity,
    now: DateTime<Utc>,
) -> ApiResult<Option<User>> {
    let Some((existing, user)) = identity::find_with_user(conn, ext.provider, &ext.provider_id)?
    else {
        return Ok(None);
    };
    let mut data = existing
        .identity_data
        .as_object()
        .cloned()
        .unwrap_or_default();
    data.extend(ext.data.clone());
    identity::touch(conn, existing.id, data, now)?;
    Ok(Some(user))
}

/// An identity of another provider (or app) of the same person.
fn same_person(conn: &mut PgConnection, ext: &ExternalIdentity) -> ApiResult<Option<Identity>> {
    Ok(match &ext.person {
        Some(person) => identity::find_by_unionid(conn, person.providers, &person.unionid)?,
        None => None,
    })
}

fn insert_identity(
    conn: &mut PgConnection,
    user_id: Uuid,
    ext: &ExternalIdentity,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    identity::insert(
        conn,
        &NewIdentity::new(
            user_id,
            ext.provider,
            &ext.provider_id,
            ext.data.clone(),
            now,
        ),
    )?;
    Ok(())
}

/// Serialises every request about one person (by the family's person id, else by this
/// identity) until commit.
fn lock_person(conn: &mut PgConnection, ext: &ExternalIdentity) -> ApiResult<()> {
    let key = match &ext.person {
        Some(person) => format!("{}:{}", person.family, person.unionid),
        None => format!("{}:{}", ext.provider, ext.provider_id),
    };
    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind::<Text, _>(key)
        .execute(conn)?;
    Ok(())
}
