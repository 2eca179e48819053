//! The WeChat endpoints, with WeChat's paths, parameters, bodies and errcodes.
//!
//! Every handler first counts the call and applies any injected failure, before touching codes
//! or tokens, so a failed call never consumes the code it was given.

use std::collections::HashMap;
use std::time::Instant;

use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::state::{Api, Failure, WechatEmulator, WxError};
use super::{wx_error, wx_error_with_status, wx_json, wxacode};

/// `GET /sns/jscode2session?appid=&secret=&js_code=&grant_type=authorization_code`
pub async fn jscode2session(req: HttpRequest, em: web::Data<WechatEmulator>) -> HttpResponse {
    if let Some(resp) = injected(&em, Api::Jscode2session).await {
        return resp;
    }
    // WeChat reads only the query of a GET; a POST (even with a query) reports "appid missing".
    if req.method() != Method::GET {
        return wx_error(WxError::new(41002));
    }
    let q = query(&req);
    let result = (|| {
        let app_id = param(&q, "appid").ok_or(WxError::new(41002))?;
        let secret = param(&q, "secret").ok_or(WxError::new(41004))?;
        let code = param(&q, "js_code").ok_or(WxError::new(41008))?;
        if param(&q, "grant_type").is_some_and(|g| g != "authorization_code") {
            return Err(WxError::new(40002));
        }
        em.check_app(app_id, secret)?;
        em.lock().exchange_login_code(app_id, code, Instant::now())
    })();
    match result {
        // Real successes carry no errcode; unionid only when the app is bound (login flag).
        Ok(login) => {
            let mut body = json!({ "session_key": login.session_key, "openid": login.openid });
            if let Some(unionid) = login.unionid {
                body["unionid"] = Value::String(unionid);
            }
            wx_json(body)
        }
        Err(e) => wx_error(e),
    }
}

/// `GET /cgi-bin/token?grant_type=client_credential&appid=&secret=`
pub async fn token(req: HttpRequest, em: web::Data<WechatEmulator>) -> HttpResponse {
    if let Some(resp) = injected(&em, Api::Token).await {
        return resp;
    }
    let q = query(&req);
    let result = (|| {
        if param(&q, "grant_type") != Some("client_credential") {
            return Err(WxError::new(40002));
        }
        let app_id = param(&q, "appid").ok_or(WxError::new(41002))?;
        let secret = param(&q, "secret").ok_or(WxError::new(41004))?;
        em.check_app(app_id, secret)?;
        Ok(em.lock().issue_token(app_id, Instant::now()))
    })();
    match result {
        Ok((token, expires_in)) => {
            wx_json(json!({ "access_token": token, "expires_in": expires_in }))
        }
        Err(e) => wx_error(e),
    }
}

/// `POST /cgi-bin/stable_token` with `{"grant_type","appid","secret","force_refresh"}`.
pub async fn stable_token(
    req: HttpRequest,
    body: web::Bytes,
    em: web::Data<WechatEmulator>,
) -> HttpResponse {
    if let Some(resp) = injected(&em, Api::StableToken).await {
        return resp;
    }
    if req.method() != Method::POST {
        return wx_error(WxError::new(43002));
    }
    let result = (|| {
        let body = json_object(&body)?;
        let field = |name: &str| {
            body.get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let app_id = field("appid").ok_or(WxError::new(41002))?;
        let secret = field("secret").ok_or(WxError::new(41004))?;
        if field("grant_type") != Some("client_credential") {
            return Err(WxError::new(40002));
        }
        em.check_app(app_id, secret)?;
        let force_refresh = body
            .get("force_refresh")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Ok(em
            .lock()
            .stable_token(app_id, force_refresh, Instant::now()))
    })();
    match result {
        Ok((token, expires_in)) => {
            wx_json(json!({ "access_token": token, "expires_in": expires_in }))
        }
        Err(e) => wx_error(e),
    }
}

/// `POST /wxa/business/getuserphonenumber?access_token=` with `{"code"}`.
pub async fn get_user_phone_number(
    req: HttpRequest,
    body: web::Bytes,
    em: web::Data<WechatEmulator>,
) -> HttpResponse {
    if let Some(resp) = injected(&em, Api::GetUserPhoneNumber).await {
        return resp;
    }
    let q = query(&req);
    let result = (|| {
        let app_id = em
            .lock()
            .check_token(param(&q, "access_token"), Instant::now())?;
        if req.method() != Method::POST {
            return Err(WxError::new(43002));
        }
        let body = json_object(&body)?;
        let code = body
            .get("code")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .ok_or(WxError::new(41008))?;
        // The optional "openid" field is accepted and ignored: phone codes are not tied to a user here.
        let (phone, timestamp) = em.lock().redeem_phone_code(&app_id, code, Instant::now())?;
        Ok(json!({
            "errcode": 0,
            "errmsg": "ok",
            "phone_info": {
                "phoneNumber": phone.phone_number(),
                "purePhoneNumber": phone.pure,
                "countryCode": phone.country_code,
                "watermark": { "timestamp": timestamp, "appid": app_id },
            },
        }))
    })();
    match result {
        Ok(body) => wx_json(body),
        Err(e) => wx_error(e),
    }
}

/// `POST /wxa/getwxacodeunlimit?access_token=` with `{"scene", "page", ...}` → PNG bytes.
pub async fn get_wxa_code_unlimit(
    req: HttpRequest,
    body: web::Bytes,
    em: web::Data<WechatEmulator>,
) -> HttpResponse {
    if let Some(resp) = injected(&em, Api::GetWxaCodeUnlimit).await {
        return resp;
    }
    let q = query(&req);
    let checked = (|| {
        let app_id = em
            .lock()
            .check_token(param(&q, "access_token"), Instant::now())?;
        if req.method() != Method::POST {
            return Err(WxError::new(43002));
        }
        let body: Value = serde_json::from_slice(&body).map_err(|_| WxError::new(47001))?;
        let request = wxacode::parse_request(&body).map_err(WxError::new)?;
        Ok((app_id, request))
    })();
    let (app_id, request) = match checked {
        Ok(ok) => ok,
        Err(e) => return wx_error(e),
    };
    // Rendering a 1280 px PNG takes a few milliseconds: keep it off the async worker.
    match web::block(move || wxacode::render_png(&app_id, &request)).await {
        Ok(Ok(png)) => {
            em.lock().stats.qrcodes_generated += 1;
            HttpResponse::Ok().content_type("image/png").body(png)
        }
        Ok(Err(e)) => {
            // Content too long for a QR code (a huge page): WeChat would call that bad args.
            tracing::warn!(error = %e, "emulator could not render the QR code");
            wx_error(WxError::new(40097))
        }
        Err(e) => {
            tracing::error!(error = %e, "emulator QR rendering task failed");
            wx_error(WxError::new(-1))
        }
    }
}

/// Counts the call, then applies the next injected failure: `Some(response)` to answer with,
/// `None` to carry on (no failure, or only a delay).
async fn injected(em: &WechatEmulator, api: Api) -> Option<HttpResponse> {
    let failure: Failure = em.lock().begin_call(api)?;
    if !failure.delay.is_zero() {
        actix_web::rt::time::sleep(failure.delay).await;
    }
    let status = StatusCode::from_u16(failure.http_status).unwrap_or(StatusCode::OK);
    if failure.garbage || (failure.errcode.is_none() && status != StatusCode::OK) {
        // What a gateway in front of WeChat sends when things go wrong: HTML, not JSON.
        let title = match status {
            // Garbage with HTTP 200: an HTML error page behind a success status.
            StatusCode::OK => "502 Bad Gateway".to_string(),
            s => format!("{} {}", s.as_u16(), s.canonical_reason().unwrap_or("Error")),
        };
        let body = format!(
            "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
        );
        return Some(
            HttpResponse::build(status)
                .content_type("text/html")
                .body(body),
        );
    }
    failure
        .errcode
        .map(|code| wx_error_with_status(code, status))
}

/// The query string as a map (first value wins); never fails, whatever the client sent.
pub(super) fn query(req: &HttpRequest) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        map.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    map
}

/// A parameter; an empty value counts as missing, as it does for WeChat.
pub(super) fn param<'a>(q: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    q.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

/// A POST body that must be a JSON object, else 47001 "data format error".
fn json_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, WxError> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(WxError::new(47001)),
    }
}
