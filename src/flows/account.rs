//! Changes to an existing user (GoTrue `user.go` `UserUpdate` and the `models/user.go` setters):
//! e-mail, phone, password, metadata and `app_metadata.providers`, collected in an
//! [`AccountChanges`] and written in one `UPDATE`, with the identities kept in step.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use diesel::PgConnection;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::authenticate::AuthenticatedUser;
use super::otp::TokenType;
use super::validate;
use crate::auth::password;
use crate::db;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::models::identity::{self, Identity, IdentityData};
use crate::models::user::{self, MetadataPatch, User, UserChanges};
use crate::models::{db_now, session};
use crate::state::AppState;

/// GoTrue's messages for an address another user has.
pub const EMAIL_TAKEN: &str = "A user with this email address has already been registered";
pub const PHONE_TAKEN: &str = "A user with this phone number has already been registered";

/// 422 `email_exists` when another user of the audience has the address.
pub fn ensure_email_free(
    conn: &mut PgConnection,
    aud: &str,
    email: &str,
    except: Option<Uuid>,
) -> ApiResult<()> {
    if user::email_taken(conn, aud, email, except)? {
        return Err(ApiError::unprocessable(ErrorCode::EmailExists, EMAIL_TAKEN));
    }
    Ok(())
}

/// 422 `phone_exists` (with `msg`) when another user has the phone.
pub fn ensure_phone_free(
    conn: &mut PgConnection,
    phone: &str,
    except: Option<Uuid>,
    msg: &'static str,
) -> ApiResult<()> {
    if user::phone_taken(conn, phone, except)? {
        return Err(ApiError::unprocessable(ErrorCode::PhoneExists, msg));
    }
    Ok(())
}

/// The unique index of `auth.users` that refused a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Taken {
    Email,
    Phone,
    Id,
}

impl Taken {
    /// Which unique index refused `e`, if a unique index did.
    pub fn of(e: &diesel::result::Error) -> Option<Taken> {
        if db::is_unique_violation(e, "users_email_partial_key") {
            Some(Taken::Email)
        } else if db::is_unique_violation(e, "users_phone_key") {
            Some(Taken::Phone)
        } else if db::is_unique_violation(e, "users_pkey")
            || db::is_unique_violation(e, "users_id_key")
        {
            Some(Taken::Id)
        } else {
            None
        }
    }
}

/// The one mapping of a refused insert or update of `auth.users` to what the client sees. The
/// flows check for a taken e-mail or phone before writing, but two requests claiming the same
/// address at once both pass that check; the unique index then refuses the second, which gets
/// the same 422 as if the check had caught it. `phone_taken_msg` differs between GoTrue's user
/// and admin routes.
pub fn user_write_error(e: diesel::result::Error, phone_taken_msg: &'static str) -> ApiError {
    match Taken::of(&e) {
        Some(Taken::Email) => ApiError::unprocessable(ErrorCode::EmailExists, EMAIL_TAKEN),
        Some(Taken::Phone) => ApiError::unprocessable(ErrorCode::PhoneExists, phone_taken_msg),
        Some(Taken::Id) => ApiError::unprocessable(
            ErrorCode::UserAlreadyExists,
            "A user with this ID already exists",
        ),
        None => e.into(),
    }
}

/// Everything one request changes about a user, written by [`AccountChanges::write`].
pub struct AccountChanges {
    user_id: Uuid,
    row: UserChanges,
    /// Changes to `user_metadata` and `app_metadata`, merged into the row's current values by
    /// the `UPDATE` itself, so concurrent changes of other keys are not lost.
    user_metadata: Option<MetadataPatch>,
    app_metadata: Option<MetadataPatch>,
    /// `app_metadata` as this request last saw it, with its own changes applied.
    current_app_metadata: Map<String, Value>,
    /// Identities whose data is replaced (or which are created), by provider.
    identities: Vec<(&'static str, Map<String, Value>)>,
    /// Phone messages differ between GoTrue's user and admin routes.
    phone_taken_msg: &'static str,
    /// The user as it is, for the anonymous-to-permanent rule in [`AccountChanges::write`].
    anonymous: bool,
    current_email: (bool, bool),
    current_phone: (bool, bool),
}

impl AccountChanges {
    pub fn new(user: &User) -> AccountChanges {
        AccountChanges {
            user_id: user.id,
            row: UserChanges::default(),
            user_metadata: None,
            app_metadata: None,
            current_app_metadata: user.app_metadata(),
            identities: Vec::new(),
            phone_taken_msg: PHONE_TAKEN,
            anonymous: user.is_anonymous,
            current_email: (user.email.is_some(), user.email_confirmed_at.is_some()),
            current_phone: (user.phone.is_some(), user.phone_confirmed_at.is_some()),
        }
    }

    /// Uses `msg` when the new phone turns out to be taken.
    pub fn phone_taken_message(mut self, msg: &'static str) -> Self {
        self.phone_taken_msg = msg;
        self
    }

    pub fn role(&mut self, role: String) {
        self.row.role = Some(role);
    }

    /// Merges `changes` into `user_metadata` (GoTrue's rule: a JSON `null` removes the key).
    pub fn user_metadata(&mut self, changes: Map<String, Value>) {
        let patch = self
            .user_metadata
            .get_or_insert_with(MetadataPatch::default);
        for (key, value) in changes {
            patch.set_key(key, value);
        }
    }

    /// Merges `changes` into `app_metadata` (a JSON `null` removes the key).
    pub fn app_metadata(&mut self, changes: Map<String, Value>) {
        for (key, value) in changes {
            self.set_app_key(key, value);
        }
    }

    fn set_app_key(&mut self, key: String, value: Value) {
        if value.is_null() {
            self.current_app_metadata.remove(&key);
        } else {
            self.current_app_metadata.insert(key.clone(), value.clone());
        }
        self.app_metadata
            .get_or_insert_with(MetadataPatch::default)
            .set_key(key, value);
    }

    pub fn password_hash(&mut self, hash: String) {
        self.row.encrypted_password = Some(hash);
    }

    pub fn banned_until(&mut self, until: Option<DateTime<Utc>>) {
        self.row.banned_until = Some(until);
    }

    pub fn confirm_email_now(&mut self, now: DateTime<Utc>) {
        self.row.email_confirmed_at = Some(Some(now));
    }

    pub fn confirm_phone_now(&mut self, now: DateTime<Utc>) {
        self.row.phone_confirmed_at = Some(Some(now));
    }

    /// Sets the e-mail, updating (or creating) the e-mail identity with `data` and adding the
    /// `email` provider.
    pub fn email(&mut self, email: &str, data: IdentityData) {
        self.row.email = Some(Some(email.to_string()));
        self.identities
            .push(("email", data.email(email).into_map()));
        self.add_provider("email");
    }

    /// Sets the phone, updating (or creating) the phone identity with `data` and adding the
    /// `phone` provider.
    pub fn phone(&mut self, phone: &str, data: IdentityData) {
        self.row.phone = Some(Some(phone.to_string()));
        self.identities
            .push(("phone", data.phone(phone).into_map()));
        self.add_provider("phone");
    }

    /// A confirmed e-mail change (autoconfirm): the address, confirmed now.
    pub fn confirmed_email(&mut self, email: &str, now: DateTime<Utc>) {
        self.email(email, IdentityData::new(self.user_id).email_verified(true));
        self.confirm_email_now(now);
        self.row.email_change = Some(String::new());
    }

    /// A confirmed phone (autoconfirm, or a number WeChat vouches for).
    pub fn confirmed_phone(&mut self, phone: &str, now: DateTime<Utc>) {
        self.phone(phone, IdentityData::new(self.user_id).phone_verified(true));
        self.confirm_phone_now(now);
        self.row.phone_change = Some(String::new());
    }

    /// An e-mail change waiting for confirmation, as GoTrue shows it (`new_email`).
    pub fn pending_email(&mut self, email: &str, now: DateTime<Utc>) {
        self.row.email_change = Some(email.to_string());
        self.row.email_change_sent_at = Some(Some(now));
    }

    /// A phone change waiting for confirmation (`new_phone`).
    pub fn pending_phone(&mut self, phone: &str, now: DateTime<Utc>) {
        self.row.phone_change = Some(phone.to_string());
        self.row.phone_change_sent_at = Some(Some(now));
    }

    /// Empties the user's pending code of `kind` (after it was used).
    pub fn clear_token(&mut self, kind: crate::models::one_time_token::TokenType) {
        use crate::models::one_time_token::TokenType;
        let column = match kind {
            TokenType::Confirmation => &mut self.row.confirmation_token,
            TokenType::Recovery => &mut self.row.recovery_token,
            TokenType::EmailChangeNew => &mut self.row.email_change_token_new,
            TokenType::EmailChangeCurrent => &mut self.row.email_change_token_current,
            TokenType::PhoneChange => &mut self.row.phone_change_token,
            TokenType::Reauthentication => &mut self.row.reauthentication_token,
        };
        *column = Some(String::new());
    }

    /// Linking an identity makes an anonymous user permanent (GoTrue `linkIdentity`); the id
    /// stays.
    pub fn identity_linked(&mut self) {
        if self.anonymous {
            self.row.is_anonymous = Some(false);
        }
    }

    /// A phone change whose code is about to be sent (the send records its time).
    pub fn pending_phone_change(&mut self, phone: &str) {
        self.row.phone_change = Some(phone.to_string());
    }

    /// Appends `provider` to `app_metadata.providers` (and sets `provider` if it has none).
    pub fn add_provider(&mut self, provider: &str) {
        let mut providers: Vec<Value> = self
            .current_app_metadata
            .get("providers")
            .and_then(|p| p.as_array().cloned())
            .unwrap_or_default();
        if !providers.iter().any(|p| p == provider) {
            providers.push(json!(provider));
        }
        if !self.current_app_metadata.contains_key("provider") {
            self.set_app_key("provider".into(), json!(provider));
        }
        self.set_app_key("providers".into(), Value::Array(providers));
    }

    /// [`AccountChanges::confirmed_phone`] written in one statement
    /// ([`user::confirm_phone`]), returning the user's record; `None` (nothing written) when
    /// another user has the number, or when these changes hold more than the phone (then
    /// [`AccountChanges::write`] is the way).
    pub fn write_confirmed_phone(
        self,
        conn: &mut PgConnection,
        phone: &str,
        now: DateTime<Utc>,
        deadline: db::Deadline,
    ) -> ApiResult<Option<user::UserRecord>> {
        let app_set = match &self.app_metadata {
            Some(patch) => match patch.only_sets() {
                Some(set) => set.clone(),
                None => return Ok(None),
            },
            None => Map::new(),
        };
        let [("phone", data)] = self.identities.as_slice() else {
            return Ok(None);
        };
        if self.user_metadata.is_some() {
            return Ok(None);
        }
        Ok(user::confirm_phone(
            conn,
            self.user_id,
            phone,
            &app_set,
            data,
            now,
            deadline.0,
        )?)
    }

    /// Writes the row (one `UPDATE`, `updated_at` included) and the identities. A unique index
    /// that refuses the new e-mail or phone (a concurrent request took it) is the same 422 as
    /// the check before it ([`user_write_error`]). `user_not_found` if the user is gone.
    pub fn write(mut self, conn: &mut PgConnection, now: DateTime<Utc>) -> ApiResult<User> {
        if self.anonymous && self.gets_confirmed_contact() {
            self.row.is_anonymous = Some(false);
        }
        let phone_taken_msg = self.phone_taken_msg;
        let user = user::update_with_metadata(
            conn,
            self.user_id,
            self.row,
            self.user_metadata.as_ref(),
            self.app_metadata.as_ref(),
            now,
        )
        .map_err(|e| user_write_error(e, phone_taken_msg))?
        .ok_or_else(user_not_found)?;
        // The cap applies to what is stored: the merged objects. Over it, the caller's
        // transaction rolls the update back.
        if self.user_metadata.is_some() {
            validate::metadata(&user.user_metadata())?;
        }
        if self.app_metadata.is_some() {
            validate::metadata(&user.app_metadata())?;
        }
        for (provider, data) in self.identities {
            identity::upsert_data(conn, user.id, provider, data, now)?;
        }
        Ok(user)
    }
}

impl AccountChanges {
    /// GoTrue makes an anonymous user permanent when an e-mail or phone is confirmed on it
    /// (`emailChangeVerify`/`smsVerify`, the admin API's `email_confirm`/`phone_confirm`); an
    /// address still waiting for confirmation leaves it anonymous. The id never changes.
    fn gets_confirmed_contact(&self) -> bool {
        let after = |set: &Option<Option<String>>,
                     confirmed: &Option<Option<DateTime<Utc>>>,
                     (had, was_confirmed): (bool, bool)| {
            let has = set.as_ref().map_or(had, Option::is_some);
            let is_confirmed = confirmed.as_ref().map_or(was_confirmed, Option::is_some);
            has && is_confirmed
        };
        after(
            &self.row.email,
            &self.row.email_confirmed_at,
            self.current_email,
        ) || after(
            &self.row.phone,
            &self.row.phone_confirmed_at,
            self.current_phone,
        )
    }
}

pub fn user_not_found() -> ApiError {
    ApiError::not_found(ErrorCode::UserNotFound, "User not found")
}

/// The body of `PUT /user`.
#[derive(serde::Deserialize)]
pub struct UserUpdate {
    pub email: Option<String>,
    pub password: Option<String>,
    pub phone: Option<String>,
    pub data: Option<Map<String, Value>>,
    pub app_metadata: Option<Map<String, Value>>,
    /// The reauthentication code (`GET /reauthenticate`) for a password change.
    pub nonce: Option<String>,
    /// Where the e-mail change mails' links lead (the validated `redirect_to`; set by the API).
    #[serde(skip)]
    pub redirect_to: String,
}

/// `PUT /user`: the signed-in user changes their own account.
pub async fn update_user(
    state: &Arc<AppState>,
    auth: AuthenticatedUser,
    params: UserUpdate,
) -> ApiResult<(User, Vec<Identity>)> {
    let config = &state.config;
    let current = auth.user;
    if params.app_metadata.is_some()
        && current.role.as_deref() != Some(config.jwt.admin_group_name.as_str())
    {
        return Err(ApiError::forbidden(
            ErrorCode::NotAdmin,
            "Updating app_metadata requires admin privileges",
        ));
    }
    let email = validate::optional_email(params.email.as_deref())?;
    let phone = validate::optional_phone(
        params.phone.as_deref(),
        config.accounts.phone_default_country_code.as_deref(),
    )?;
    if current.is_anonymous
        && params.password.as_deref().is_some_and(|p| !p.is_empty())
        && email.is_none()
        && phone.is_none()
    {
        return Err(ApiError::unprocessable(
            ErrorCode::ValidationFailed,
            "Updating password of an anonymous user without an email or phone is not allowed",
        ));
    }
    if email.is_some() && !config.accounts.email_enabled {
        return Err(ApiError::bad_request(
            ErrorCode::EmailProviderDisabled,
            "Email logins are disabled",
        ));
    }
    if phone.is_some() && !config.accounts.phone_enabled {
        return Err(ApiError::bad_request(
            ErrorCode::PhoneProviderDisabled,
            "Phone logins are disabled",
        ));
    }
    // The changes themselves are checked here; the merged objects when they are written.
    let user_metadata = params.data;
    let app_metadata = params.app_metadata;
    for m in user_metadata.iter().chain(app_metadata.iter()) {
        validate::metadata(m)?;
    }
    let new_hash = match params.password {
        Some(pw) => Some(new_password_hash(state, pw, &current).await?),
        None => None,
    };

    let keep_session = auth.session_id;
    let redirect_to = params.redirect_to;
    let nonce = params.nonce.filter(|n| !n.is_empty());
    // A new number gets its code by SMS unless autoconfirm is on.
    let sms_to = phone
        .clone()
        .filter(|p| Some(p) != current.phone.as_ref() && !config.accounts.sms_autoconfirm);
    if let Some(to) = &sms_to {
        super::phone::spend_send_limits(state, to).await?;
    }
    let rt = tokio::runtime::Handle::current();
    let send_bound = sms_to
        .as_ref()
        .map_or(std::time::Duration::ZERO, |_| config.sms.timeout)
        + super::email::mail_time(state);
    let tx_state = state.clone();
    db::transaction_calling_out(&state.pool, send_bound, move |conn| {
        let accounts = &tx_state.config.accounts;
        let now = db_now();
        let id = current.id;
        let mut changes = AccountChanges::new(&current);
        let mut pending_email = None;
        if new_hash.is_some()
            && tx_state
                .config
                .security
                .update_password_require_reauthentication
        {
            check_reauthentication(
                conn,
                &tx_state,
                &current,
                keep_session,
                nonce.as_deref(),
                now,
            )?;
            changes.clear_token(TokenType::Reauthentication);
        }
        if let Some(meta) = user_metadata {
            changes.user_metadata(meta);
        }
        if let Some(meta) = app_metadata {
            changes.app_metadata(meta);
        }
        if let Some(hash) = new_hash {
            changes.password_hash(hash);
            // A new password signs out every other session, as in GoTrue.
            session::delete_for_user(conn, id, keep_session)?;
        }
        if let Some(email) = email.filter(|e| Some(e) != current.email.as_ref()) {
            let aud = current.aud.as_deref().unwrap_or(&tx_state.config.jwt.aud);
            ensure_email_free(conn, aud, &email, Some(id))?;
            if accounts.mailer_autoconfirm {
                changes.confirmed_email(&email, now);
            } else {
                pending_email = Some(email);
            }
        }
        if let Some(phone) = phone.filter(|p| Some(p) != current.phone.as_ref()) {
            ensure_phone_free(conn, &phone, Some(id), PHONE_TAKEN)?;
            if accounts.sms_autoconfirm {
                changes.confirmed_phone(&phone, now);
            } else {
                // The code's send records the time (`phone_change_sent_at`).
                changes.pending_phone_change(&phone);
            }
        }
        changes.write(conn, now)?;
        if let Some(to) = &sms_to {
            super::phone::send_code(conn, &tx_state, &rt, &current, TokenType::PhoneChange, to)?;
        }
        if let Some(email) = pending_email {
            // The change waits for the mails' confirmations (both addresses with secure change).
            super::email::send_email_change(conn, &tx_state, &rt, &current, &email, &redirect_to)?;
        }
        user::find_with_identities(conn, id)?.ok_or_else(user_not_found)
    })
    .await
}

/// GoTrue's `verifyReauthentication` for a password change: sessions younger than 24 hours
/// pass; older ones (and tokens without a session) need the code of `GET /reauthenticate` as
/// `nonce`.
fn check_reauthentication(
    conn: &mut PgConnection,
    state: &AppState,
    user: &User,
    session_id: Option<Uuid>,
    nonce: Option<&str>,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    let created = match session_id {
        Some(id) => crate::models::session::created_at(conn, id)?,
        None => None,
    };
    if created.is_some_and(|c| now < c + chrono::Duration::hours(24)) {
        return Ok(());
    }
    let Some(nonce) = nonce else {
        return Err(ApiError::bad_request(
            ErrorCode::ReauthenticationNeeded,
            "Password update requires reauthentication",
        ));
    };
    let invalid = || {
        ApiError::unprocessable(
            ErrorCode::ReauthenticationNotValid,
            "Nonce has expired or is invalid",
        )
    };
    let email = user.email.as_deref().filter(|e| !e.is_empty());
    let phone = user.phone.as_deref().filter(|p| !p.is_empty());
    let (relates_to, rules) = match (email, phone) {
        (Some(email), _) => (email, super::verify::email_rules(state)),
        (None, Some(phone)) => (phone, super::phone::rules(state)),
        (None, None) => {
            return Err(ApiError::unprocessable(
                ErrorCode::ReauthenticationNotValid,
                "Reauthentication requires an email or a phone number",
            ))
        }
    };
    let hash = super::otp::token_hash(relates_to, nonce);
    match super::otp::check(
        conn,
        user.id,
        TokenType::Reauthentication,
        &hash,
        rules,
        now,
    )? {
        super::otp::Checked::Valid => Ok(()),
        super::otp::Checked::Wrong => Err(invalid()),
    }
}

/// Hashes a new password after checking GoTrue's rules; 422 `same_password` when it is the
/// current one.
async fn new_password_hash(state: &AppState, pw: String, current: &User) -> ApiResult<String> {
    password::check_strength(&pw, state.config.password.min_length)?;
    let old = current.encrypted_password.clone().unwrap_or_default();
    let hash_cfg = state.config.password.hash.clone();
    let hashed = state
        .hashing
        .run(move || -> ApiResult<Option<String>> {
            if !old.is_empty() && password::verify(&pw, &old) {
                return Ok(None);
            }
            password::hash(&pw, &hash_cfg).map(Some)
        })
        .await??;
    hashed.ok_or_else(|| {
        ApiError::unprocessable(
            ErrorCode::SamePassword,
            "New password should be different from the old password.",
        )
    })
}

/// Soft delete (GoTrue's `should_soft_delete`): the row stays, its e-mail, phone and password
/// are freed, and every session and identity goes.
pub fn soft_delete(conn: &mut PgConnection, user_id: Uuid) -> ApiResult<()> {
    if !user::soft_delete(conn, user_id, db_now())? {
        return Err(user_not_found());
    }
    session::delete_for_user(conn, user_id, None)?;
    identity::delete_for_user(conn, user_id)?;
    // GoTrue's soft delete removes the factors too (`DeleteFactorsByUserId`).
    crate::models::mfa::delete_for_user(conn, user_id)?;
    Ok(())
}
