//! GoTrue's OAuth machinery (`internal/api/external.go`, `pkce.go`, `identity.go`) with the
//! WeChat providers on it: `/authorize` creates a flow (`auth.flow_state`) and sends the browser
//! to WeChat; `/callback` finds the flow again by `state`, exchanges WeChat's code, signs the
//! person in (or links the identity to the `linkIdentity` caller) through [`super::linking`], and
//! sends the browser back with the session in the fragment (implicit flow) or `?code=` (PKCE);
//! `POST /token?grant_type=pkce` exchanges that code once. The native-app login
//! (`/wechat_app/login`) and `unlinkIdentity` live here too.
//!
//! The `state` is the flow's id (122 random bits, 32 hex digits), as in current GoTrue: WeChat
//! only passes back a `state` of at most 128 bytes of `[a-zA-Z0-9]`, which a signed JWT is not.
//! What the flow needs (provider, redirect target, PKCE challenge, linking target) stays in the
//! database, where the state cannot be tampered with; the row expires and is used once.

use std::sync::Arc;

use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::linking::{self, ExternalIdentity, Person};
use super::session::{self, AuthMethod, Session, SignIn};
use super::ClientInfo;
use crate::auth::secure_eq;
use crate::config::{OauthApp, WechatApp};
use crate::db;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::models::db_now;
use crate::models::flow_state::{self, FlowState, NewFlowState};
use crate::models::user::{self, MetadataPatch, User, UserChanges};
use crate::providers::wechat::oauth::{
    authorize_url, SnsToken, SnsUserInfo, SCOPE_BASE, SCOPE_LOGIN, SCOPE_USERINFO,
};
use crate::providers::wechat::{APP_PROVIDER, MP_PROVIDER, PROVIDERS, QR_PROVIDER};
use crate::state::AppState;

/// What `/authorize` (and `/user/identities/authorize`) was asked.
pub struct AuthorizeRequest {
    pub provider: Option<String>,
    pub scopes: Option<String>,
    pub redirect_to: Option<String>,
    pub referer: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    /// `linkIdentity`: the signed-in user the new identity will belong to.
    pub linking_target: Option<Uuid>,
}

/// A browser provider and its app.
struct BrowserProvider<'a> {
    name: &'static str,
    app: &'a OauthApp,
}

/// GoTrue's `Provider()`: unknown and disabled providers are both 400 `validation_failed`.
fn browser_provider<'a>(state: &'a AppState, name: &str) -> ApiResult<BrowserProvider<'a>> {
    let ext = &state.config.external;
    let name = name.to_ascii_lowercase();
    let (name, app) = match name.as_str() {
        "wechat_qr" => (QR_PROVIDER, ext.wechat_qr.as_ref()),
        "wechat_mp" => (MP_PROVIDER, ext.wechat_mp.as_ref()),
        _ => {
            let shown: String = name.chars().take(64).collect();
            return Err(ApiError::validation(format!(
                "Unsupported provider: Provider {shown} could not be found"
            )));
        }
    };
    let app =
        app.ok_or_else(|| ApiError::validation("Unsupported provider: provider is not enabled"))?;
    Ok(BrowserProvider { name, app })
}

/// The WeChat scope for a provider: `snsapi_login` for websites; for official-account pages
/// `snsapi_base` when asked for (silent, openid only), else `snsapi_userinfo`.
fn scope_for(provider: &str, scopes: Option<&str>) -> &'static str {
    if provider == QR_PROVIDER {
        return SCOPE_LOGIN;
    }
    let asked_base = scopes
        .unwrap_or("")
        .split([' ', ','])
        .any(|s| s == SCOPE_BASE);
    if asked_base {
        SCOPE_BASE
    } else {
        SCOPE_USERINFO
    }
}

/// GoTrue's `validatePKCEParams`: both or neither; the challenge 43–128 characters of
/// `[a-zA-Z0-9._~-]`; the method `s256` or `plain` (any case). Returns (challenge, method).
fn pkce_params(
    challenge: Option<&str>,
    method: Option<&str>,
) -> ApiResult<Option<(String, &'static str)>> {
    let challenge = challenge.filter(|c| !c.is_empty());
    let method = method.filter(|m| !m.is_empty());
    match (challenge, method) {
        (None, None) => Ok(None),
        (Some(challenge), Some(method)) => {
            if !(43..=128).contains(&challenge.len()) {
                return Err(ApiError::validation(
                    "code challenge has to be between 43 and 128 characters",
                ));
            }
            if !challenge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b))
            {
                return Err(ApiError::validation(
                    "code challenge can only contain alphanumeric characters, hyphens, periods, underscores and tildes",
                ));
            }
            let method = match method.to_ascii_lowercase().as_str() {
                "s256" => "s256",
                "plain" => "plain",
                _ => return Err(ApiError::validation("Invalid code_challenge_method")),
            };
            Ok(Some((challenge.to_string(), method)))
        }
        _ => Err(ApiError::validation(
            "PKCE flow requires code_challenge_method and code_challenge",
        )),
    }
}

/// `/authorize`: records the flow and returns the WeChat URL to send the browser to.
pub async fn authorize(state: &Arc<AppState>, req: AuthorizeRequest) -> ApiResult<String> {
    let provider = browser_provider(state, req.provider.as_deref().unwrap_or(""))?;
    let pkce = pkce_params(
        req.code_challenge.as_deref(),
        req.code_challenge_method.as_deref(),
    )?;
    let referrer = super::redirect::target(
        &state.config.server,
        req.redirect_to.as_deref(),
        req.referer.as_deref(),
    );
    let scope = scope_for(provider.name, req.scopes.as_deref());
    let name = provider.name;
    let linking_target = req.linking_target;
    let expiry = state.config.external.flow_state_expiry;
    let id = db::run(&state.pool, move |conn| {
        let now = db_now();
        // Abandoned flows are cleared as new ones start (GoTrue's cleanup does the same).
        let cutoff = now - chrono::Duration::from_std(expiry).unwrap_or_default() * 2;
        flow_state::delete_older_than(conn, cutoff)?;
        Ok(flow_state::insert(
            conn,
            &NewFlowState {
                provider_type: name,
                code_challenge: pkce.as_ref().map(|(c, m)| (c.as_str(), *m)),
                referrer: &referrer,
                linking_target_id: linking_target,
                now,
            },
        )?)
    })
    .await?;
    Ok(authorize_url(
        &state.config.external.wechat_open_url,
        &provider.app.app.app_id,
        &provider.app.redirect_uri,
        scope,
        &id.simple().to_string(),
    ))
}

/// What WeChat (or a browser) sent to `/callback`.
#[derive(Default, serde::Deserialize)]
pub struct CallbackParams {
    pub state: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// A failed callback: a GoTrue error, or an OAuth error the provider reported.
enum CallbackError {
    Api(ApiError),
    OAuth { error: String, description: String },
}

impl From<ApiError> for CallbackError {
    fn from(e: ApiError) -> Self {
        CallbackError::Api(e)
    }
}

impl From<crate::providers::wechat::WechatFailure> for CallbackError {
    fn from(f: crate::providers::wechat::WechatFailure) -> Self {
        CallbackError::Api(f.into())
    }
}

/// `/callback`: where the browser goes next, on success and on failure alike (GoTrue never
/// answers a callback with an error page: the app shows the error it finds in the URL).
pub async fn callback(state: &Arc<AppState>, params: CallbackParams, client: ClientInfo) -> String {
    let mut target = state.config.server.site_url.clone();
    match finish_callback(state, params, client, &mut target).await {
        Ok(url) => url,
        Err(e) => error_redirect(&target, e),
    }
}

async fn finish_callback(
    state: &Arc<AppState>,
    params: CallbackParams,
    client: ClientInfo,
    target: &mut String,
) -> Result<String, CallbackError> {
    let flow = load_flow(state, params.state.as_deref()).await?;
    if let Some(referrer) = flow.referrer.as_ref().filter(|r| !r.is_empty()) {
        *target = referrer.clone();
    }
    if let Some(error) = params.error.filter(|e| !e.is_empty()) {
        return Err(CallbackError::OAuth {
            error: error.chars().take(64).collect(),
            description: params
                .error_description
                .unwrap_or_default()
                .chars()
                .take(256)
                .collect(),
        });
    }
    let code = params.code.filter(|c| !c.is_empty()).ok_or_else(|| {
        ApiError::bad_request(
            ErrorCode::BadOauthCallback,
            "OAuth callback with missing authorization code missing",
        )
    })?;
    let code = super::wechat_mini::check_code(Some(&code))?.to_string();
    let provider = browser_provider(state, &flow.provider_type)?;
    let (provider_name, app) = (provider.name, provider.app.app.clone());
    let ext = wechat_identity(state, provider_name, &app, &code).await?;
    let tx_state = state.clone();
    let flow_id = flow.id;
    let pkce = flow.is_pkce();
    let linking_target = flow.linking_target_id;
    let session = db::transaction(&state.pool, move |conn| {
        let now = db_now();
        let (user, action) = match linking_target {
            Some(target_id) => (link_to(conn, target_id, &ext, now)?, "login"),
            None => sign_in(conn, &tx_state, &ext, now)?,
        };
        if pkce {
            if !flow_state::complete(conn, flow_id, user.id, now)? {
                return Err(already_used());
            }
            return Ok(None);
        }
        if !flow_state::delete(conn, flow_id)? {
            return Err(state_not_found());
        }
        let sign_in = SignIn::first_factor(AuthMethod::OAuth, action);
        session::issue(conn, &tx_state, user, sign_in, &client).map(Some)
    })
    .await?;
    Ok(match session {
        Some(session) => implicit_redirect(target, &session),
        None => pkce_redirect(target, flow.auth_code.as_deref().unwrap_or_default()),
    })
}

fn state_not_found() -> ApiError {
    ApiError::bad_request(ErrorCode::BadOauthState, "OAuth state not found or expired")
}

fn already_used() -> ApiError {
    ApiError::bad_request(
        ErrorCode::FlowStateAlreadyUsed,
        "State has already been used",
    )
}

/// GoTrue's `loadExternalState`.
async fn load_flow(state: &Arc<AppState>, raw: Option<&str>) -> ApiResult<FlowState> {
    let raw = raw.filter(|s| !s.is_empty()).ok_or_else(|| {
        ApiError::bad_request(ErrorCode::BadOauthCallback, "OAuth state parameter missing")
    })?;
    let id = Uuid::try_parse(raw).map_err(|_| {
        ApiError::bad_request(ErrorCode::BadOauthState, "OAuth state parameter is invalid")
    })?;
    let flow = db::run(&state.pool, move |conn| Ok(flow_state::find(conn, id)?))
        .await?
        .filter(|f| f.authentication_method == "oauth")
        .ok_or_else(state_not_found)?;
    if flow.is_expired(state.config.external.flow_state_expiry, chrono::Utc::now()) {
        return Err(ApiError::bad_request(
            ErrorCode::BadOauthState,
            "OAuth state has expired",
        ));
    }
    if flow.is_pkce() && flow.user_id.is_some() {
        return Err(already_used());
    }
    Ok(flow)
}

/// Exchanges a WeChat authorization code and reads the profile where the scope allows it.
async fn wechat_identity(
    state: &AppState,
    provider: &'static str,
    app: &WechatApp,
    code: &str,
) -> ApiResult<ExternalIdentity> {
    let token = state.wechat.sns_access_token(app, code).await?;
    if token.is_snapshotuser == Some(1) {
        return Err(ApiError::forbidden(
            ErrorCode::WechatSnapshotUser,
            "This page was opened in WeChat's snapshot mode: open it in WeChat and authorise to sign in",
        ));
    }
    let profile = if token.scope.split(',').any(|s| s == SCOPE_BASE) && provider == MP_PROVIDER {
        SnsUserInfo::default()
    } else {
        state.wechat.sns_userinfo(&token).await?
    };
    Ok(external_identity(provider, app, &token, profile))
}

/// The identity of a website, official-account or app login: `provider_id` is the openid of
/// that app; `identity_data` carries `sub`/`openid`, `appid`, `unionid` (when WeChat gives
/// one) and the profile under GoTrue's claim names (`name`, `nick_name`, `avatar_url`,
/// `picture`).
fn external_identity(
    provider: &'static str,
    app: &WechatApp,
    token: &SnsToken,
    profile: SnsUserInfo,
) -> ExternalIdentity {
    let unionid = token
        .unionid
        .clone()
        .filter(|u| !u.is_empty())
        .or(profile.unionid.filter(|u| !u.is_empty()));
    let mut data = Map::new();
    data.insert("sub".into(), json!(token.openid));
    data.insert("provider_id".into(), json!(token.openid));
    data.insert("openid".into(), json!(token.openid));
    data.insert("appid".into(), json!(app.app_id));
    if let Some(unionid) = &unionid {
        data.insert("unionid".into(), json!(unionid));
    }
    if let Some(name) = profile.nickname.filter(|n| !n.is_empty()) {
        let name: String = name.chars().take(256).collect();
        data.insert("name".into(), json!(name));
        data.insert("nick_name".into(), json!(name));
    }
    if let Some(avatar) = profile.headimgurl.filter(|a| !a.is_empty()) {
        let avatar: String = avatar.chars().take(2048).collect();
        data.insert("avatar_url".into(), json!(avatar));
        data.insert("picture".into(), json!(avatar));
    }
    ExternalIdentity {
        provider,
        provider_id: token.openid.clone(),
        person: unionid.map(|unionid| Person {
            family: "wechat",
            providers: PROVIDERS,
            unionid,
        }),
        data,
    }
}

/// Signs the person in (one user per unionid), refuses banned users and fills in the profile
/// keys the user has not set. Returns the user and the audit action.
fn sign_in(
    conn: &mut diesel::PgConnection,
    state: &AppState,
    ext: &ExternalIdentity,
    now: chrono::DateTime<chrono::Utc>,
) -> ApiResult<(User, &'static str)> {
    let linking::Linked { user, created } = linking::sign_in(conn, state, ext, now)?;
    if user.is_banned(chrono::Utc::now()) {
        return Err(ApiError::bad_request(
            ErrorCode::UserBanned,
            "User is banned",
        ));
    }
    let profile: Map<String, Value> = ["name", "avatar_url", "picture"]
        .iter()
        .filter_map(|k| ext.data.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect();
    let current = user.user_metadata();
    let user = if profile.keys().all(|k| current.contains_key(k)) {
        user
    } else {
        user::update_with_metadata(
            conn,
            user.id,
            UserChanges::default(),
            Some(&MetadataPatch::fill(profile)),
            None,
            now,
        )?
        .ok_or_else(super::account::user_not_found)?
    };
    Ok((user, if created { "user_signedup" } else { "login" }))
}

/// `linkIdentity`'s callback: the identity joins `target_id` (GoTrue `linkIdentityToUser`).
fn link_to(
    conn: &mut diesel::PgConnection,
    target_id: Uuid,
    ext: &ExternalIdentity,
    now: chrono::DateTime<chrono::Utc>,
) -> ApiResult<User> {
    let target = user::find_by_id(conn, target_id)?.ok_or_else(|| {
        ApiError::unprocessable(ErrorCode::UserNotFound, "Linking target user not found")
    })?;
    let added = linking::link(
        conn,
        target.id,
        ext,
        now,
        "Identity is already linked to another user",
    )?;
    if !added {
        return Err(ApiError::unprocessable(
            ErrorCode::IdentityAlreadyExists,
            "Identity is already linked",
        ));
    }
    let mut changes = super::account::AccountChanges::new(&target);
    changes.add_provider(ext.provider);
    // A guest who links WeChat becomes a permanent user with the same id (GoTrue's rule).
    changes.identity_linked();
    changes.write(conn, now)
}

/// GoTrue's `AsRedirectURL`: the session in the fragment, keys sorted as Go's
/// `url.Values.Encode` sorts them. WeChat's own tokens (`provider_token`) are never sent.
fn implicit_redirect(target: &str, session: &Session) -> String {
    let fragment = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("access_token", &session.access.token)
        .append_pair("expires_at", &session.access.expires_at.to_string())
        .append_pair("expires_in", &session.access.expires_in.to_string())
        .append_pair("refresh_token", &session.refresh_token)
        .append_pair("sb", "")
        .append_pair("token_type", "bearer")
        .finish();
    format!("{}#{fragment}", without_fragment(target))
}

/// GoTrue's `prepPKCERedirectURL`: `code` added to the query.
fn pkce_redirect(target: &str, auth_code: &str) -> String {
    with_query(target, &[("code", auth_code)], None)
}

/// GoTrue's `redirectErrors`: `error`, `error_code`, `error_description` in the query and, with
/// `sb`, in the fragment.
fn error_redirect(target: &str, e: CallbackError) -> String {
    let (error, code, description) = match e {
        CallbackError::Api(e) => {
            if e.status.is_server_error() {
                tracing::error!(error = ?e, "OAuth callback failed");
            }
            let error = match (e.code, e.status.as_u16()) {
                (ErrorCode::SignupDisabled | ErrorCode::UserBanned, _) => "access_denied",
                (_, 400) => "invalid_request",
                (_, 401) => "unauthorized_client",
                (_, 403) => "access_denied",
                (_, 503) => "temporarily_unavailable",
                _ => "server_error",
            };
            (error.to_string(), Some(e.code.as_str()), e.msg.to_string())
        }
        CallbackError::OAuth { error, description } => (error, None, description),
    };
    let mut pairs = vec![("error", error.as_str())];
    if let Some(code) = code {
        pairs.push(("error_code", code));
    }
    if !description.is_empty() {
        pairs.push(("error_description", description.as_str()));
    }
    let mut fragment = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &pairs {
        fragment.append_pair(k, v);
    }
    fragment.append_pair("sb", "");
    with_query(target, &pairs, Some(&fragment.finish()))
}

fn without_fragment(url: &str) -> &str {
    url.split_once('#').map_or(url, |(u, _)| u)
}

/// `url` with `pairs` set in its query (replacing keys of the same name) and, if given, its
/// fragment replaced.
fn with_query(url: &str, pairs: &[(&str, &str)], fragment: Option<&str>) -> String {
    let base = without_fragment(url);
    let (path, query) = base.split_once('?').unwrap_or((base, ""));
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if !pairs.iter().any(|(name, _)| *name == k) {
            serializer.append_pair(&k, &v);
        }
    }
    for (k, v) in pairs {
        serializer.append_pair(k, v);
    }
    let mut out = format!("{path}?{}", serializer.finish());
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// `POST /token?grant_type=pkce` (GoTrue `PKCE`): the auth code of a finished flow and the
/// verifier of its challenge give a session, once.
pub async fn pkce_grant(
    state: &Arc<AppState>,
    auth_code: Option<String>,
    code_verifier: Option<String>,
    client: ClientInfo,
) -> ApiResult<Session> {
    let (Some(auth_code), Some(verifier)) = (
        auth_code.filter(|c| !c.is_empty()),
        code_verifier.filter(|v| !v.is_empty()),
    ) else {
        return Err(ApiError::validation(
            "invalid request: both auth code and code verifier should be non-empty",
        ));
    };
    let not_found = || {
        ApiError::not_found(
            ErrorCode::FlowStateNotFound,
            "invalid flow state, no valid flow state found",
        )
    };
    let code = auth_code.chars().take(128).collect::<String>();
    let flow = db::run(&state.pool, move |conn| {
        Ok(flow_state::find_by_auth_code(conn, &code)?)
    })
    .await?
    .filter(|f| f.user_id.is_some())
    .ok_or_else(not_found)?;
    if flow.is_expired(state.config.external.flow_state_expiry, chrono::Utc::now()) {
        return Err(ApiError::unprocessable(
            ErrorCode::FlowStateExpired,
            "invalid flow state, flow state has expired",
        ));
    }
    verify_pkce(&flow, &verifier)?;
    let tx_state = state.clone();
    db::transaction(&state.pool, move |conn| {
        if !flow_state::delete(conn, flow.id)? {
            return Err(not_found());
        }
        let user_id = flow.user_id.ok_or_else(not_found)?;
        let user = user::find_by_id(conn, user_id)?.ok_or_else(super::account::user_not_found)?;
        if user.is_banned(chrono::Utc::now()) {
            return Err(ApiError::bad_request(
                ErrorCode::UserBanned,
                "User is banned",
            ));
        }
        let sign_in = SignIn::first_factor(AuthMethod::OAuth, "login");
        session::issue(conn, &tx_state, user, sign_in, &client)
    })
    .await
}

/// GoTrue's `VerifyPKCEChallenge`.
fn verify_pkce(flow: &FlowState, verifier: &str) -> ApiResult<()> {
    use base64::Engine;
    use sha2::Digest;
    let challenge = flow.code_challenge.as_deref().unwrap_or_default();
    let matches = match flow.code_challenge_method.as_deref() {
        Some("s256") => {
            let hash = sha2::Sha256::digest(verifier.as_bytes());
            let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hash);
            secure_eq(encoded.as_bytes(), challenge.as_bytes())
        }
        Some("plain") => secure_eq(verifier.as_bytes(), challenge.as_bytes()),
        _ => {
            return Err(ApiError::bad_request(
                ErrorCode::BadCodeVerifier,
                "code challenge method not supported",
            ))
        }
    };
    if matches {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            ErrorCode::BadCodeVerifier,
            "code challenge does not match previously saved code verifier",
        ))
    }
}

/// `GET /wechat_app/login?code=…`: the code the OpenSDK gave a native app (移动应用), exchanged
/// with the app's AppID and AppSecret, signs the person in and answers a token response.
pub async fn app_login(
    state: &Arc<AppState>,
    code: &str,
    client: ClientInfo,
) -> ApiResult<Session> {
    let app = state.config.external.wechat_app.clone().ok_or_else(|| {
        ApiError::bad_request(
            ErrorCode::ProviderDisabled,
            "WeChat app login is not enabled",
        )
    })?;
    let ext = wechat_identity(state, APP_PROVIDER, &app, code).await?;
    let tx_state = state.clone();
    db::transaction(&state.pool, move |conn| {
        let now = db_now();
        let (user, action) = sign_in(conn, &tx_state, &ext, now)?;
        let sign_in = SignIn::first_factor(AuthMethod::OAuth, action);
        session::issue(conn, &tx_state, user, sign_in, &client)
    })
    .await
}

/// `DELETE /user/identities/{identity_id}` (GoTrue `DeleteIdentity`): the user's identity goes,
/// unless it is their last one; `app_metadata.providers` follows, and a removed phone identity
/// takes the phone with it.
pub async fn unlink(
    state: &Arc<AppState>,
    user_id: Uuid,
    identity_id: &str,
    client: ClientInfo,
) -> ApiResult<()> {
    let identity_id = Uuid::try_parse(identity_id).map_err(|_| {
        ApiError::not_found(ErrorCode::ValidationFailed, "identity_id must be an UUID")
    })?;
    let audit_off = state.config.security.audit_log_disable_postgres;
    db::transaction(&state.pool, move |conn| {
        // The user row is locked first (the lock order of every writer), so two unlinks of a
        // two-identity user cannot both pass the "last identity" check.
        lock_user(conn, user_id)?;
        let (user, identities) = user::find_with_identities(conn, user_id)?
            .ok_or_else(super::account::user_not_found)?;
        if identities.len() <= 1 {
            return Err(ApiError::unprocessable(
                ErrorCode::SingleIdentityNotDeletable,
                "User must have at least 1 identity after unlinking",
            ));
        }
        let Some(removed) = identities.iter().find(|i| i.id == identity_id).cloned() else {
            return Err(ApiError::unprocessable(
                ErrorCode::IdentityNotFound,
                "Identity doesn't exist",
            ));
        };
        crate::models::identity::delete(conn, removed.id)?;
        let remaining: Vec<_> = identities
            .into_iter()
            .filter(|i| i.id != removed.id)
            .collect();
        let now = db_now();
        let mut changes = UserChanges::default();
        if removed.provider == "phone" {
            changes.phone = Some(None);
            changes.phone_confirmed_at = Some(None);
        }
        let mut app = MetadataPatch::default();
        app.set_key(
            "providers".into(),
            json!(crate::models::identity::providers(&remaining)),
        );
        user::update_with_metadata(conn, user_id, changes, None, Some(&app), now)?
            .ok_or_else(super::account::user_not_found)?;
        if !audit_off {
            let username = user
                .email
                .as_deref()
                .or(user.phone.as_deref())
                .unwrap_or("");
            let entry = crate::models::audit_log::AuditEntry {
                actor_id: user.id,
                actor_username: username,
                action: "identity_unlinked",
                traits: Some(json!({
                    "identity_id": removed.id.to_string(),
                    "provider": removed.provider,
                    "provider_id": removed.provider_id,
                })),
            };
            crate::models::audit_log::insert(conn, &entry, client.ip.as_deref())?;
        }
        Ok(())
    })
    .await
}

fn lock_user(conn: &mut diesel::PgConnection, user_id: Uuid) -> ApiResult<()> {
    use diesel::RunQueryDsl;
    diesel::sql_query("SELECT id FROM auth.users WHERE id = $1 FOR NO KEY UPDATE")
        .bind::<diesel::sql_types::Uuid, _>(user_id)
        .execute(conn)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_params_follow_gotrue() {
        let c = "a".repeat(43);
        assert!(pkce_params(None, None).unwrap().is_none());
        assert_eq!(
            pkce_params(Some(&c), Some("S256")).unwrap().unwrap().1,
            "s256"
        );
        assert!(pkce_params(Some(&c), None).is_err());
        assert!(pkce_params(Some("short"), Some("s256")).is_err());
        assert!(pkce_params(Some(&"a!".repeat(30)), Some("s256")).is_err());
        assert!(pkce_params(Some(&c), Some("md5")).is_err());
    }

    #[test]
    fn redirects_keep_the_query_and_replace_the_fragment() {
        assert_eq!(
            pkce_redirect("https://app.example.com/cb?x=1#old", "abc"),
            "https://app.example.com/cb?x=1&code=abc"
        );
        let e = error_redirect(
            "https://app.example.com/",
            CallbackError::Api(state_not_found()),
        );
        assert_eq!(
            e,
            "https://app.example.com/?error=invalid_request&error_code=bad_oauth_state&error_description=OAuth+state+not+found+or+expired#error=invalid_request&error_code=bad_oauth_state&error_description=OAuth+state+not+found+or+expired&sb="
        );
    }

    #[test]
    fn official_account_scopes() {
        assert_eq!(scope_for(QR_PROVIDER, Some("snsapi_base")), SCOPE_LOGIN);
        assert_eq!(scope_for(MP_PROVIDER, None), SCOPE_USERINFO);
        assert_eq!(scope_for(MP_PROVIDER, Some("snsapi_base")), SCOPE_BASE);
    }
}
