//! The e-mail routes: `POST /recover`, `POST /magiclink`, `POST /invite`,
//! `POST /admin/generate_link` and the link in every mail, `GET /verify` (GoTrue `recover.go`,
//! `magic_link.go`, `invite.go`, `mail.go` `adminGenerateLink`, `verify.go` `verifyGet`).

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::header::{LOCATION, REFERER};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::extract::{AdminAuth, Client};
use super::render::user_response;
use crate::error::{no_store, ApiError, ApiResult};
use crate::flows::email::{self, GenerateLinkParams};
use crate::flows::mail::query_escape;
use crate::flows::redirect;
use crate::flows::verify::{self, Verified, VerifyParams};
use crate::rate_limit::Limit;
use crate::state::AppState;

/// Where links in a mail lead (GoTrue's `GetReferrer`): the `redirect_to` query parameter when
/// `GOTRUE_SITE_URL`/`GOTRUE_URI_ALLOW_LIST` allow it, else the allowed `Referer`, else the
/// site URL.
pub struct Referrer(pub String);

impl Referrer {
    fn of(req: &HttpRequest, extra: Option<&str>) -> String {
        let server = &req
            .app_data::<web::Data<AppState>>()
            .expect("AppState is registered")
            .config
            .server;
        let query = web::Query::<Map<String, Value>>::from_query(req.query_string()).ok();
        let from_query = query
            .as_ref()
            .and_then(|q| q.get("redirect_to"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let referer = req.headers().get(REFERER).and_then(|v| v.to_str().ok());
        let candidate = extra.filter(|e| !e.is_empty()).or(from_query.as_deref());
        redirect::target(server, candidate, referer)
    }
}

impl FromRequest for Referrer {
    type Error = ApiError;
    type Future = Ready<ApiResult<Self>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Referrer(Referrer::of(req, None))))
    }
}

fn empty_ok() -> HttpResponse {
    HttpResponse::Ok().insert_header(no_store()).json(json!({}))
}

#[derive(serde::Deserialize)]
pub struct RecoverParams {
    email: Option<String>,
}

pub async fn recover(
    state: web::Data<AppState>,
    Client(client): Client,
    Referrer(to): Referrer,
    params: web::Json<RecoverParams>,
) -> ApiResult<HttpResponse> {
    state.limit(Limit::Otp, &client).await?;
    email::recover(&state, params.into_inner().email, to).await?;
    Ok(empty_ok())
}

#[derive(serde::Deserialize)]
pub struct MagicLinkParams {
    email: Option<String>,
    data: Option<Map<String, Value>>,
}

pub async fn magiclink(
    state: web::Data<AppState>,
    Client(client): Client,
    Referrer(to): Referrer,
    params: web::Json<MagicLinkParams>,
) -> ApiResult<HttpResponse> {
    state.limit(Limit::Otp, &client).await?;
    let p = params.into_inner();
    let email = p
        .email
        .filter(|e| !e.is_empty())
        .ok_or_else(|| ApiError::validation("Password recovery requires an email"))?;
    email::magic_link(&state, email, true, p.data.unwrap_or_default(), to).await?;
    Ok(empty_ok())
}

#[derive(serde::Deserialize)]
pub struct InviteParams {
    email: Option<String>,
    data: Option<Map<String, Value>>,
}

pub async fn invite(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    Referrer(to): Referrer,
    params: web::Json<InviteParams>,
) -> ApiResult<HttpResponse> {
    let p = params.into_inner();
    let (user, identities) = email::invite(&state, p.email, p.data, to).await?;
    Ok(user_response(&user, &identities))
}

pub async fn generate_link(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    req: HttpRequest,
    params: web::Json<GenerateLinkParams>,
) -> ApiResult<HttpResponse> {
    let p = params.into_inner();
    let to = Referrer::of(&req, p.redirect_to.as_deref());
    let link = email::generate_link(&state, p, to).await?;
    let mut body = serde_json::to_value(link.user.to_json(Some(&link.identities)))
        .map_err(ApiError::internal)?;
    if let Value::Object(map) = &mut body {
        map.insert("action_link".into(), json!(link.action_link));
        map.insert("email_otp".into(), json!(link.email_otp));
        map.insert("hashed_token".into(), json!(link.hashed_token));
        map.insert("verification_type".into(), json!(link.verification_type));
        map.insert("redirect_to".into(), json!(link.redirect_to));
    }
    Ok(HttpResponse::Ok().insert_header(no_store()).json(body))
}

#[derive(serde::Deserialize)]
pub struct VerifyQuery {
    token: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// GoTrue's `oauthErrorMap`.
fn oauth_error(status: u16) -> Option<&'static str> {
    Some(match status {
        400 => "invalid_request",
        401 => "unauthorized_client",
        403 => "access_denied",
        500 => "server_error",
        503 => "temporarily_unavailable",
        _ => return None,
    })
}

/// `key=value&…` with keys sorted and values escaped, as Go's `url.Values.Encode`.
fn encode(mut pairs: Vec<(&str, String)>) -> String {
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", query_escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn see_other(location: String) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header(no_store())
        .insert_header((LOCATION, location))
        .finish()
}

/// The part of `url` before any fragment (GoTrue replaces the fragment on error redirects).
fn without_fragment(url: &str) -> &str {
    url.split_once('#').map_or(url, |(u, _)| u)
}

/// `GET /verify?token=<token_hash>&type=…&redirect_to=…`: the link in a mail. 303 to the
/// allowed `redirect_to` with the session in the fragment, or the error there.
pub async fn verify_get(
    state: web::Data<AppState>,
    Client(client): Client,
    Referrer(to): Referrer,
    query: web::Query<VerifyQuery>,
) -> ApiResult<HttpResponse> {
    state.limit(Limit::Verify, &client).await?;
    let q = query.into_inner();
    let kind = q.kind.filter(|k| !k.is_empty());
    let token = q.token.filter(|t| !t.is_empty());
    let (Some(kind), Some(token)) = (kind, token) else {
        return Err(ApiError::validation(
            "Verify requires a verification type and a token",
        ));
    };
    if token.starts_with("pkce_") {
        // The PKCE exchange (`?code=`) needs the flow state of the OAuth work, not built yet.
        tracing::debug!("a pkce_ e-mail link was opened; the PKCE flow is not supported yet");
    }
    let params = VerifyParams {
        kind: Some(kind.clone()),
        token_hash: Some(token),
        ..Default::default()
    };
    Ok(match verify::verify(&state, params, client).await {
        Ok(Verified::Session(s)) => see_other(format!(
            "{to}#{}",
            encode(vec![
                ("access_token", s.access.token.clone()),
                ("token_type", "bearer".into()),
                ("expires_in", s.access.expires_in.to_string()),
                ("expires_at", s.access.expires_at.to_string()),
                ("refresh_token", s.refresh_token.clone()),
                ("sb", String::new()),
                ("type", kind),
            ])
        )),
        Ok(Verified::FirstOfTwoConfirmations) => see_other(format!(
            "{}#{}",
            without_fragment(&to),
            encode(vec![
                (
                    "message",
                    "Confirmation link accepted. Please proceed to confirm link sent to the other email".into(),
                ),
                ("sb", String::new()),
            ])
        )),
        Err(e) => {
            let mut pairs = vec![
                ("error_code", e.code.as_str().to_string()),
                ("error_description", e.msg.to_string()),
                ("sb", String::new()),
            ];
            if let Some(error) = oauth_error(e.status.as_u16()) {
                pairs.push(("error", error.to_string()));
            }
            if e.status.is_server_error() {
                tracing::error!(error = ?e, "e-mail link verification failed");
            }
            see_other(format!("{}#{}", without_fragment(&to), encode(pairs)))
        }
    })
}
