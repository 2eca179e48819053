//! Flow ② of MemFire's guide (手机号授权登录): a person who already has a web account with their
//! phone number logs into the mini-program (`signInWithWechat`, which creates a new, empty
//! WeChat account M) and then shares the number (`wechatBindPhone`). When the number belongs
//! to another account W, M is merged into W instead of answering `phone_exists`:
//! M's WeChat identity (with its unionid), sessions, refresh tokens and session_keys move to
//! W, M is deleted, and the SDK, which keeps its tokens and only takes the returned user,
//! refreshes into W's tokens.
//!
//! Only when it is safe (see [`merge`]): M is *provisional* (a WeChat-only account created less
//! than `WEAUTH_WECHAT_PHONE_MERGE_WINDOW` ago, with nothing of its own), W's phone is
//! confirmed, and W has no WeChat identity of this mini-program. With
//! `WEAUTH_WECHAT_PHONE_MERGE=auto` (the default) merging is on exactly when phone sign-in by
//! SMS code works on this server: whoever WeChat vouches holds the number could sign into W
//! with a code anyway, so the merge gives nobody access the number alone would not.
//!
//! While an account is provisional its access tokens live `WEAUTH_WECHAT_PROVISIONAL_JWT_EXP`
//! (60 s) instead of `GOTRUE_JWT_EXP`, which bounds how long a token naming M stays in use
//! after a merge; weauth itself serves such a token as W (`weauth.merged_users`).

use chrono::{DateTime, Utc};
use diesel::PgConnection;
use serde_json::json;

use super::account::{AccountChanges, PHONE_TAKEN};
use crate::config::PhoneMerge;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::models::audit_log::{self, AuditEntry};
use crate::models::identity::{self, Identity};
use crate::models::user::{self, User};
use crate::models::{session, wechat};
use crate::providers::wechat::MINI_PROGRAM_PROVIDER;
use crate::state::AppState;

/// Merging is on: always, or (`auto`) when SMS codes can be sent for phone sign-in.
pub fn enabled(state: &AppState) -> bool {
    match state.config.wechat.phone_merge {
        PhoneMerge::Always => true,
        PhoneMerge::Never => false,
        PhoneMerge::Auto => state.config.accounts.phone_enabled && state.sms.is_some(),
    }
}

/// A WeChat account that may still be merged: created by a mini-program login less than the
/// merge window ago, with no e-mail, phone, password or anonymity of its own.
pub fn is_provisional(state: &AppState, user: &User, now: DateTime<Utc>) -> bool {
    let window = chrono::Duration::from_std(state.config.wechat.phone_merge_window)
        .unwrap_or_default();
    let empty = |v: &Option<String>| v.as_deref().is_none_or(str::is_empty);
    enabled(state)
        && user.created_at.is_some_and(|c| now < c + window)
        && empty(&user.email)
        && empty(&user.phone)
        && !user.has_password()
        && !user.is_anonymous
        && user.app_metadata().get("provider").and_then(|p| p.as_str())
            == Some(MINI_PROGRAM_PROVIDER)
}

/// The short access-token lifetime of a provisional account.
pub fn provisional_lifetime(state: &AppState, user: &User, now: DateTime<Utc>) -> Option<i64> {
    is_provisional(state, user, now).then_some(state.config.wechat.provisional_jwt_exp)
}

/// Merges `current` (M) into `owner` (W, who has the phone) on the caller's transaction and
/// returns W's id; 422 `phone_exists` when the merge is not allowed, 422
/// `identity_already_exists` when W already has a WeChat identity of this mini-program.
pub fn merge(
    conn: &mut PgConnection,
    state: &AppState,
    app_id: &str,
    current: &User,
    owner: &User,
    now: DateTime<Utc>,
) -> ApiResult<User> {
    let refuse = || ApiError::unprocessable(ErrorCode::PhoneExists, PHONE_TAKEN);
    if !enabled(state) {
        return Err(refuse());
    }
    let locked = user::lock_pair(conn, current.id, owner.id)?;
    if !locked.contains(&current.id) {
        // A concurrent request (the same tap sent twice) merged it meanwhile: same answer.
        if wechat::merged_into(conn, current.id)? == Some(owner.id) {
            return user::find_by_id(conn, owner.id)?.ok_or_else(super::account::user_not_found);
        }
        return Err(super::account::user_not_found());
    }
    if !locked.contains(&owner.id) {
        return Err(refuse());
    }
    // Re-read under the locks: what the checks see is what the merge moves.
    let (Some(m), Some(w)) = (
        user::find_by_id(conn, current.id)?,
        user::find_by_id(conn, owner.id)?,
    ) else {
        return Err(super::account::user_not_found());
    };
    let m_identities = identity::for_user(conn, m.id)?;
    let only_this_wechat = matches!(m_identities.as_slice(), [i] if is_mini_identity(i, app_id));
    if !is_provisional(state, &m, now)
        || !only_this_wechat
        || w.phone_confirmed_at.is_none()
        || w.is_banned(now)
        || w.deleted_at.is_some()
    {
        return Err(refuse());
    }
    if identity::for_user(conn, w.id)?
        .iter()
        .any(|i| is_mini_identity(i, app_id))
    {
        return Err(ApiError::unprocessable(
            ErrorCode::IdentityAlreadyExists,
            "This account already has a WeChat login for this mini-program",
        ));
    }
    identity::reassign(conn, m.id, w.id)?;
    session::reassign(conn, m.id, w.id)?;
    wechat::reassign_session_keys(conn, m.id, w.id)?;
    wechat::record_merge(conn, m.id, w.id, app_id)?;
    if !user::delete(conn, m.id)? {
        return Err(super::account::user_not_found());
    }
    let mut changes = AccountChanges::new(&w);
    changes.add_provider(MINI_PROGRAM_PROVIDER);
    let merged = changes.write(conn, now)?;
    if !state.config.security.audit_log_disable_postgres {
        let username = merged.email.as_deref().or(merged.phone.as_deref()).unwrap_or("");
        for (actor, action) in [(m.id, "user_deleted"), (w.id, "user_modified")] {
            audit_log::insert(
                conn,
                &AuditEntry {
                    actor_id: actor,
                    actor_username: username,
                    action,
                    traits: Some(json!({
                        "merged_user_id": m.id.to_string(),
                        "into_user_id": w.id.to_string(),
                        "provider": MINI_PROGRAM_PROVIDER,
                    })),
                },
                None,
            )?;
        }
    }
    tracing::info!(from = %m.id, into = %w.id, "merged a WeChat account into the phone's account");
    Ok(merged)
}

fn is_mini_identity(identity: &Identity, app_id: &str) -> bool {
    identity.provider == MINI_PROGRAM_PROVIDER
        && identity.identity_data.get("appid").and_then(|a| a.as_str()) == Some(app_id)
}
