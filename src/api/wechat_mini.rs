//! `/wechat_mini/*`: the routes MemFire's `supabase-wechat-stable-v2` SDK calls
//! (`signInWithWechat`, `wechatBindPhone`, `wechatBindAccount`, `getUnlimitedQRCode`).

use actix_web::dev::Payload;
use actix_web::http::header::REFERER;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use base64::Engine;
use futures_util::future::LocalBoxFuture;
use serde::Deserialize;
use serde_json::json;

use super::extract::{AuthUser, Client, SignedToken};
use super::render::{token_response, user_response};
use crate::config::WechatApp;
use crate::error::{no_store, ApiError, ApiResult, ErrorCode};
use crate::flows::wechat_mini::{self, LegacyUserInfo, PhoneProof, QrCodeParams};
use crate::rate_limit::Limit;
use crate::state::AppState;

/// Query and body parameters of the WeChat routes (`code`, optional `appid`, legacy payload).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct WechatParams {
    pub code: Option<String>,
    pub appid: Option<String>,
    pub encrypted_data: Option<String>,
    pub iv: Option<String>,
    pub raw_data: Option<String>,
    pub signature: Option<String>,
}

impl WechatParams {
    /// Body fields win over query fields (the SDK sends both for login).
    fn merge(query: WechatParams, body: Option<WechatParams>) -> WechatParams {
        let body = body.unwrap_or_default();
        WechatParams {
            code: body.code.or(query.code),
            appid: body.appid.or(query.appid),
            encrypted_data: body.encrypted_data.or(query.encrypted_data),
            iv: body.iv.or(query.iv),
            raw_data: body.raw_data.or(query.raw_data),
            signature: body.signature.or(query.signature),
        }
    }

    fn code(&self) -> ApiResult<&str> {
        wechat_mini::check_code(self.code.as_deref())
    }
}

/// The mini-program a request is for: explicit `appid`, else `wx.request`'s `Referer`, else
/// the default app (see [`wechat_mini::resolve_app`]).
fn request_app(state: &AppState, appid: Option<&str>, req: &HttpRequest) -> ApiResult<WechatApp> {
    let referer = req.headers().get(REFERER).and_then(|v| v.to_str().ok());
    wechat_mini::resolve_app(state, appid, referer)
}

/// The parameters of a WeChat route: the query string and, on POST, a JSON body (the SDK sends
/// GET; both are accepted so plain `wx.request` POSTs work too).
pub struct WechatInput(WechatParams);

impl FromRequest for WechatInput {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let query = web::Query::<WechatParams>::from_query(req.query_string())
            .map(web::Query::into_inner)
            .map_err(|e| {
                ApiError::validation(format!(
                    "Invalid query parameters: {}",
                    crate::error::redact_deserialize_message(&e.to_string())
                ))
            });
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let body = body.await?;
            Ok(WechatInput(WechatParams::merge(
                query?,
                optional_body(&body)?,
            )))
        })
    }
}

/// Reads an optional JSON body (GET requests and empty POSTs have none).
fn optional_body(body: &web::Bytes) -> ApiResult<Option<WechatParams>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body).map(Some).map_err(|e| {
        ApiError::bad_request(
            ErrorCode::BadJson,
            format!(
                "Could not parse request body as JSON: {}",
                crate::error::redact_deserialize_message(&e.to_string())
            ),
        )
    })
}

pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    Client(client): Client,
    WechatInput(params): WechatInput,
) -> ApiResult<HttpResponse> {
    state.limit(Limit::WechatLogin, &client).await?;
    let app = request_app(&state, params.appid.as_deref(), &req)?;
    let code = params.code()?.to_string();
    let legacy = match (params.encrypted_data, params.iv) {
        (Some(encrypted_data), Some(iv)) => Some(LegacyUserInfo {
            encrypted_data,
            iv,
            raw_data: params.raw_data,
            signature: params.signature,
        }),
        (None, None) => None,
        _ => {
            return Err(ApiError::validation(
                "encryptedData and iv must be sent together",
            ))
        }
    };
    let session = wechat_mini::login(&state, app, &code, legacy, client).await?;
    Ok(token_response(&session, None))
}

pub async fn bind_phone(
    state: web::Data<AppState>,
    req: HttpRequest,
    AuthUser(auth): AuthUser,
    Client(client): Client,
    WechatInput(params): WechatInput,
) -> ApiResult<HttpResponse> {
    state.limit(Limit::WechatPhone, &client).await?;
    let app = request_app(&state, params.appid.as_deref(), &req)?;
    let code = params
        .code
        .is_some()
        .then(|| params.code())
        .transpose()?
        .map(str::to_string);
    let proof = match (code, params.encrypted_data, params.iv) {
        (Some(code), _, _) => PhoneProof::Code(code),
        (None, Some(encrypted_data), Some(iv)) => PhoneProof::Legacy { encrypted_data, iv },
        _ => {
            return Err(ApiError::validation(
                "code (or encryptedData and iv) is required",
            ))
        }
    };
    let (user, identities) = wechat_mini::bind_phone(&state, app, auth.user, proof).await?;
    Ok(user_response(&user, &identities))
}

pub async fn bind_account(
    state: web::Data<AppState>,
    req: HttpRequest,
    AuthUser(auth): AuthUser,
    Client(client): Client,
    WechatInput(params): WechatInput,
) -> ApiResult<HttpResponse> {
    state.limit(Limit::WechatLogin, &client).await?;
    let app = request_app(&state, params.appid.as_deref(), &req)?;
    let code = params.code()?.to_string();
    let (user, identities) = wechat_mini::bind_account(&state, app, auth.user, &code).await?;
    Ok(user_response(&user, &identities))
}

/// `getUnlimitedQRCode`'s body: the QR code parameters and, optionally, the app.
#[derive(Deserialize)]
pub struct QrCodeBody {
    pub appid: Option<String>,
    #[serde(flatten)]
    pub params: QrCodeParams,
}

/// Any token signed with the project's keys (the anon key the SDK sends, a user's token or
/// the service-role key): QR codes spend the app's WeChat quota, so anonymous callers are out.
pub async fn unlimited_qrcode(
    state: web::Data<AppState>,
    req: HttpRequest,
    _caller: SignedToken,
    Client(client): Client,
    body: web::Json<QrCodeBody>,
) -> ApiResult<HttpResponse> {
    state.limit(Limit::WechatQrcode, &client).await?;
    let body = body.into_inner();
    let app = request_app(&state, body.appid.as_deref(), &req)?;
    let image = wechat_mini::unlimited_qrcode(&state, app, body.params).await?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(image);
    Ok(HttpResponse::Ok()
        .insert_header(no_store())
        .json(json!({ "imgBase64": encoded })))
}
