//! `GET /authorize`, `GET|POST /callback` (GoTrue `external.go`) and the native-app login
//! `GET /wechat_app/login` (MemFire's `gotrue_wechatlogin`).

use actix_web::http::header::{LOCATION, REFERER};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::extract::Client;
use super::render::token_response;
use crate::error::{no_store, ApiError, ApiResult};
use crate::flows::oauth::{self, AuthorizeRequest, CallbackParams};
use crate::rate_limit::Limit;
use crate::state::AppState;

/// The query of `/authorize` and `/user/identities/authorize`.
#[derive(Deserialize)]
pub struct AuthorizeQuery {
    pub provider: Option<String>,
    pub scopes: Option<String>,
    pub redirect_to: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub skip_http_redirect: Option<String>,
}

impl AuthorizeQuery {
    pub fn into_request(
        self,
        req: &HttpRequest,
        linking_target: Option<uuid::Uuid>,
    ) -> AuthorizeRequest {
        AuthorizeRequest {
            provider: self.provider,
            scopes: self.scopes,
            redirect_to: self.redirect_to,
            referer: req
                .headers()
                .get(REFERER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            code_challenge: self.code_challenge,
            code_challenge_method: self.code_challenge_method,
            linking_target,
        }
    }
}

/// A `302 Found` to `url`, never cached.
pub fn redirect(url: &str) -> HttpResponse {
    HttpResponse::build(StatusCode::FOUND)
        .insert_header((LOCATION, url))
        .insert_header(no_store())
        .finish()
}

pub async fn authorize(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<AuthorizeQuery>,
) -> ApiResult<HttpResponse> {
    let request = query.into_inner().into_request(&req, None);
    let url = oauth::authorize(&state, request).await?;
    Ok(redirect(&url))
}

/// GET carries the parameters in the query; POST (form_post providers) in a form body.
pub async fn callback(
    state: web::Data<AppState>,
    req: HttpRequest,
    Client(client): Client,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    state.limit(Limit::WechatLogin, &client).await?;
    let source = if body.is_empty() {
        req.query_string()
    } else {
        std::str::from_utf8(&body)
            .map_err(|_| ApiError::validation("Invalid callback parameters"))?
    };
    let params = web::Query::<CallbackParams>::from_query(source)
        .map_err(|_| ApiError::validation("Invalid callback parameters"))?
        .into_inner();
    let url = oauth::callback(&state, params, client).await;
    Ok(redirect(&url))
}

#[derive(Deserialize)]
pub struct AppLoginQuery {
    pub code: Option<String>,
}

/// `GET /wechat_app/login?code=…` (POST with a JSON body works too).
pub async fn app_login(
    state: web::Data<AppState>,
    Client(client): Client,
    query: web::Query<AppLoginQuery>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    state.limit(Limit::WechatLogin, &client).await?;
    let from_body = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<AppLoginQuery>(&body)
            .map_err(|_| {
                ApiError::bad_request(
                    crate::error::ErrorCode::BadJson,
                    "Could not parse request body as JSON",
                )
            })?
            .code
    };
    let code = from_body.or(query.into_inner().code);
    let code = crate::flows::wechat_mini::check_code(code.as_deref())?.to_string();
    let session = oauth::app_login(&state, &code, client).await?;
    Ok(token_response(&session, None))
}
