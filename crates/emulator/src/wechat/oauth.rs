//! WeChat's OAuth 2.0 for websites (网站应用), official-account pages (公众号 网页授权) and
//! native apps (移动应用).
//!
//! Browser side (`open.weixin.qq.com`): `GET /connect/qrconnect` (scope `snsapi_login`) and
//! `GET /connect/oauth2/authorize` (`snsapi_base` / `snsapi_userinfo`) show an HTML page naming
//! the app with a "confirm as user …" form; confirming (`POST /connect/confirm`) redirects to
//! `redirect_uri?code=…&state=…` as WeChat does. Server side (`api.weixin.qq.com`):
//! `sns/oauth2/access_token`, `sns/oauth2/refresh_token`, `sns/userinfo`, `sns/auth`, with
//! WeChat's errcodes. Control: `POST /emulator/oauth-code {appid, user, scope?, snapshot?}`
//! returns a code directly. Test users are the same people as `/emulator/login-code`'s: one
//! unionid per user name, a different openid per app.
//!
//! Codes are single use and live 5 minutes; user tokens 2 hours; refresh tokens 30 days.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix_web::http::header::LOCATION;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::state::{openid, random_hex, unionid, WechatEmulator, WxError, CODE_TTL, TOKEN_TTL};
use super::wechat_api::{param, query};
use super::{wx_error, wx_json};
use crate::control_error;

const REFRESH_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug)]
struct Code {
    app_id: String,
    user: String,
    scope: String,
    snapshot: bool,
    issued: Instant,
    used: bool,
}

#[derive(Debug, Clone)]
struct Grant {
    app_id: String,
    user: String,
    scope: String,
    expires: Instant,
}

/// Codes, user access tokens and refresh tokens.
#[derive(Debug, Default)]
pub struct OauthState {
    codes: HashMap<String, Code>,
    tokens: HashMap<String, Grant>,
    refresh: HashMap<String, Grant>,
}

impl OauthState {
    pub fn issue_code(
        &mut self,
        app_id: &str,
        user: &str,
        scope: &str,
        snapshot: bool,
        now: Instant,
    ) -> String {
        self.codes
            .retain(|_, c| now.duration_since(c.issued) < CODE_TTL * 2);
        let code = random_hex(16);
        self.codes.insert(
            code.clone(),
            Code {
                app_id: app_id.into(),
                user: user.into(),
                scope: scope.into(),
                snapshot,
                issued: now,
                used: false,
            },
        );
        code
    }

    /// 40029 unknown, expired or another app's code; 40163 already used.
    fn exchange(
        &mut self,
        app_id: &str,
        code: &str,
        now: Instant,
    ) -> Result<serde_json::Value, WxError> {
        let entry = self.codes.get_mut(code).ok_or(WxError::new(40029))?;
        if entry.app_id != app_id || now.duration_since(entry.issued) >= CODE_TTL {
            return Err(WxError::new(40029));
        }
        if entry.used {
            return Err(WxError::new(40163));
        }
        entry.used = true;
        let grant = Grant {
            app_id: entry.app_id.clone(),
            user: entry.user.clone(),
            scope: entry.scope.clone(),
            expires: now + TOKEN_TTL,
        };
        let snapshot = entry.snapshot;
        Ok(self.answer(grant, snapshot, now))
    }

    fn answer(&mut self, grant: Grant, snapshot: bool, now: Instant) -> serde_json::Value {
        let access_token = format!("oat_{}", random_hex(32));
        let refresh_token = format!("ort_{}", random_hex(32));
        let mut body = json!({
            "access_token": access_token,
            "expires_in": TOKEN_TTL.as_secs(),
            "refresh_token": refresh_token,
            "openid": openid(&grant.app_id, &grant.user),
            "scope": grant.scope,
        });
        // Official accounts' snsapi_base gives no unionid; every other scope does (all apps
        // of the emulator belong to one Open Platform account).
        if grant.scope != "snsapi_base" && !snapshot {
            body["unionid"] = json!(unionid(&grant.user));
        }
        if snapshot {
            body["is_snapshotuser"] = json!(1);
        }
        self.refresh.insert(
            refresh_token,
            Grant {
                expires: now + REFRESH_TTL,
                ..grant.clone()
            },
        );
        self.tokens.retain(|_, g| g.expires > now);
        self.tokens.insert(access_token, grant);
        body
    }

    fn refresh(
        &mut self,
        app_id: &str,
        refresh_token: &str,
        now: Instant,
    ) -> Result<serde_json::Value, WxError> {
        let grant = self
            .refresh
            .get(refresh_token)
            .filter(|g| g.app_id == app_id && g.expires > now)
            .cloned()
            .ok_or(WxError::new(40030))?;
        self.refresh.remove(refresh_token);
        Ok(self.answer(
            Grant {
                expires: now + TOKEN_TTL,
                ..grant
            },
            false,
            now,
        ))
    }

    /// The grant behind a user token for `openid`: 40001 unknown, 42001 expired, 40003 another
    /// user's openid.
    fn check(
        &self,
        token: Option<&str>,
        openid_param: Option<&str>,
        now: Instant,
    ) -> Result<Grant, WxError> {
        let token = token.ok_or(WxError::new(41001))?;
        let grant = self.tokens.get(token).ok_or(WxError::new(40001))?;
        if grant.expires <= now {
            return Err(WxError::new(42001));
        }
        if openid_param != Some(openid(&grant.app_id, &grant.user).as_str()) {
            return Err(WxError::new(40003));
        }
        Ok(grant.clone())
    }

    pub fn reset(&mut self) {
        *self = OauthState::default();
    }
}

/// `GET /sns/oauth2/access_token?appid&secret&code&grant_type=authorization_code`
pub async fn access_token(req: HttpRequest, em: web::Data<WechatEmulator>) -> HttpResponse {
    let q = query(&req);
    let result = (|| {
        let app_id = param(&q, "appid").ok_or(WxError::new(41002))?;
        let secret = param(&q, "secret").ok_or(WxError::new(41004))?;
        let code = param(&q, "code").ok_or(WxError::new(41008))?;
        if param(&q, "grant_type") != Some("authorization_code") {
            return Err(WxError::new(40002));
        }
        em.check_app(app_id, secret)?;
        em.oauth().exchange(app_id, code, Instant::now())
    })();
    result.map_or_else(wx_error, wx_json)
}

/// `GET /sns/oauth2/refresh_token?appid&grant_type=refresh_token&refresh_token`
pub async fn refresh_token(req: HttpRequest, em: web::Data<WechatEmulator>) -> HttpResponse {
    let q = query(&req);
    let result = (|| {
        let app_id = param(&q, "appid").ok_or(WxError::new(41002))?;
        if !em.has_app(app_id) {
            return Err(WxError::new(40013));
        }
        if param(&q, "grant_type") != Some("refresh_token") {
            return Err(WxError::new(40002));
        }
        let token = param(&q, "refresh_token").ok_or(WxError::new(40030))?;
        em.oauth().refresh(app_id, token, Instant::now())
    })();
    result.map_or_else(wx_error, wx_json)
}

/// `GET /sns/userinfo?access_token&openid[&lang]`: 48001 for an `snsapi_base` token.
pub async fn userinfo(req: HttpRequest, em: web::Data<WechatEmulator>) -> HttpResponse {
    let q = query(&req);
    let result = em
        .oauth()
        .check(param(&q, "access_token"), param(&q, "openid"), Instant::now())
        .and_then(|grant| {
            if grant.scope == "snsapi_base" {
                return Err(WxError::new(48001));
            }
            Ok(json!({
                "openid": openid(&grant.app_id, &grant.user),
                "nickname": grant.user,
                "sex": 0,
                "province": "",
                "city": "",
                "country": "",
                "headimgurl": format!("https://thirdwx.qlogo.cn/mmopen/{}/132", unionid(&grant.user)),
                "privilege": [],
                "unionid": unionid(&grant.user),
            }))
        });
    result.map_or_else(wx_error, wx_json)
}

/// `GET /sns/auth?access_token&openid`: `{"errcode":0,"errmsg":"ok"}` while the token is valid.
pub async fn auth(req: HttpRequest, em: web::Data<WechatEmulator>) -> HttpResponse {
    let q = query(&req);
    match em.oauth().check(
        param(&q, "access_token"),
        param(&q, "openid"),
        Instant::now(),
    ) {
        Ok(_) => wx_json(json!({"errcode": 0, "errmsg": "ok"})),
        Err(e) => wx_error(e),
    }
}

/// What an authorize page was asked: WeChat's parameters, checked as WeChat checks them.
struct PageRequest {
    app_id: String,
    redirect_uri: String,
    scope: String,
    state: String,
}

fn page_request(
    q: &HashMap<String, String>,
    scopes: &[&str],
    em: &WechatEmulator,
) -> Result<PageRequest, &'static str> {
    let app_id = param(q, "appid").ok_or("参数错误: appid")?;
    if !em.has_app(app_id) {
        return Err("参数错误: appid");
    }
    let redirect_uri = param(q, "redirect_uri").ok_or("redirect_uri 参数错误")?;
    let parsed = url::Url::parse(redirect_uri).map_err(|_| "redirect_uri 参数错误")?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("redirect_uri 参数错误");
    }
    if param(q, "response_type") != Some("code") {
        return Err("参数错误: response_type");
    }
    let scope = param(q, "scope").ok_or("scope 参数错误或没有 scope 权限")?;
    if !scopes.contains(&scope) {
        return Err("scope 参数错误或没有 scope 权限");
    }
    let state = q.get("state").cloned().unwrap_or_default();
    // WeChat: "state … a-zA-Z0-9 … 最多128字节".
    if state.len() > 128 || !state.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err("state 参数错误");
    }
    Ok(PageRequest {
        app_id: app_id.into(),
        redirect_uri: redirect_uri.into(),
        scope: scope.into(),
        state,
    })
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn error_page(message: &str) -> HttpResponse {
    HttpResponse::build(StatusCode::BAD_REQUEST)
        .content_type("text/html; charset=utf-8")
        .body(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>微信登录</title></head>\
             <body><h1>请求参数错误</h1><p id=\"error\">{}</p></body></html>",
            html_escape(message)
        ))
}

fn authorize_page(
    q: HashMap<String, String>,
    scopes: &[&str],
    title: &str,
    em: &WechatEmulator,
) -> HttpResponse {
    let page = match page_request(&q, scopes, em) {
        Ok(page) => page,
        Err(message) => return error_page(message),
    };
    let hidden = |name: &str, value: &str| {
        format!(
            "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
            html_escape(value)
        )
    };
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head><body>\
             <h1>{title}</h1><p>应用 <code id=\"appid\">{app}</code> 申请使用你的微信身份登录 ({scope})</p>\
             <form method=\"post\" action=\"/connect/confirm\">{h1}{h2}{h3}{h4}\
             <label>测试用户 <input id=\"user\" name=\"user\" value=\"alice\"></label>\
             <button id=\"confirm\" type=\"submit\">确认登录</button></form>\
             <form method=\"post\" action=\"/connect/deny\">{h2}{h4}<button id=\"deny\" type=\"submit\">拒绝</button></form>\
             </body></html>",
            app = html_escape(&page.app_id),
            scope = html_escape(&page.scope),
            h1 = hidden("appid", &page.app_id),
            h2 = hidden("redirect_uri", &page.redirect_uri),
            h3 = hidden("scope", &page.scope),
            h4 = hidden("state", &page.state),
        ))
}

/// `GET /connect/qrconnect` (网站应用: `snsapi_login` only).
pub async fn qrconnect(req: HttpRequest, em: web::Data<WechatEmulator>) -> HttpResponse {
    authorize_page(query(&req), &["snsapi_login"], "微信扫码登录", &em)
}

/// `GET /connect/oauth2/authorize` (公众号: `snsapi_base`, `snsapi_userinfo`).
pub async fn oauth2_authorize(req: HttpRequest, em: web::Data<WechatEmulator>) -> HttpResponse {
    authorize_page(
        query(&req),
        &["snsapi_base", "snsapi_userinfo"],
        "微信网页授权",
        &em,
    )
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    appid: String,
    redirect_uri: String,
    scope: String,
    #[serde(default)]
    state: String,
    user: String,
}

fn with_params(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    let mut url = match url::Url::parse(redirect_uri) {
        Ok(url) => url,
        Err(_) => return redirect_uri.to_string(),
    };
    url.set_fragment(None);
    {
        let mut pairs = url.query_pairs_mut();
        for (k, v) in params {
            pairs.append_pair(k, v);
        }
    }
    url.to_string()
}

/// The confirm button: a code for the user, and the browser back to `redirect_uri`.
pub async fn confirm(form: web::Form<ConfirmForm>, em: web::Data<WechatEmulator>) -> HttpResponse {
    let form = form.into_inner();
    let q: HashMap<String, String> = [
        ("appid", form.appid.as_str()),
        ("redirect_uri", form.redirect_uri.as_str()),
        ("response_type", "code"),
        ("scope", form.scope.as_str()),
        ("state", form.state.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let all = ["snsapi_login", "snsapi_base", "snsapi_userinfo"];
    let page = match page_request(&q, &all, &em) {
        Ok(page) => page,
        Err(message) => return error_page(message),
    };
    let user = form.user.trim();
    if user.is_empty() {
        return error_page("user must not be empty");
    }
    let code = em
        .oauth()
        .issue_code(&page.app_id, user, &page.scope, false, Instant::now());
    let location = with_params(
        &page.redirect_uri,
        &[("code", &code), ("state", &page.state)],
    );
    HttpResponse::Found()
        .insert_header((LOCATION, location))
        .finish()
}

#[derive(Deserialize)]
pub struct DenyForm {
    redirect_uri: String,
    #[serde(default)]
    state: String,
}

/// The deny button: official-account pages come back without a code.
pub async fn deny(form: web::Form<DenyForm>) -> HttpResponse {
    let location = with_params(&form.redirect_uri, &[("state", &form.state)]);
    HttpResponse::Found()
        .insert_header((LOCATION, location))
        .finish()
}

#[derive(Deserialize)]
pub struct OauthCodeRequest {
    appid: String,
    user: String,
    #[serde(default = "default_scope")]
    scope: String,
    /// An official-account page opened in snapshot mode (`is_snapshotuser: 1`).
    #[serde(default)]
    snapshot: bool,
}

fn default_scope() -> String {
    "snsapi_login".into()
}

/// `POST /emulator/oauth-code {"appid","user","scope"?,"snapshot"?}` → `{"code"}`.
pub async fn oauth_code(body: web::Bytes, em: web::Data<WechatEmulator>) -> HttpResponse {
    let req: OauthCodeRequest = match serde_json::from_slice(&body) {
        Ok(req) => req,
        Err(e) => return control_error(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")),
    };
    if !em.has_app(&req.appid) {
        return control_error(
            StatusCode::BAD_REQUEST,
            format!(
                "unknown appid {:?}; the emulator serves {:?}",
                req.appid,
                em.app_ids()
            ),
        );
    }
    if req.user.trim().is_empty() {
        return control_error(StatusCode::BAD_REQUEST, "user must not be empty");
    }
    if !["snsapi_login", "snsapi_base", "snsapi_userinfo"].contains(&req.scope.as_str()) {
        return control_error(
            StatusCode::BAD_REQUEST,
            "scope must be snsapi_login, snsapi_base or snsapi_userinfo",
        );
    }
    let code = em.oauth().issue_code(
        &req.appid,
        req.user.trim(),
        &req.scope,
        req.snapshot,
        Instant::now(),
    );
    HttpResponse::Ok().json(json!({ "code": code }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_single_use_per_app_and_expire() {
        let mut s = OauthState::default();
        let now = Instant::now();
        let code = s.issue_code("wxa", "alice", "snsapi_login", false, now);
        assert_eq!(s.exchange("wxb", &code, now).unwrap_err().code, 40029);
        let ok = s.exchange("wxa", &code, now).unwrap();
        assert_eq!(ok["unionid"], json!(unionid("alice")));
        assert_eq!(s.exchange("wxa", &code, now).unwrap_err().code, 40163);
        let old = s.issue_code("wxa", "bob", "snsapi_login", false, now);
        assert_eq!(
            s.exchange("wxa", &old, now + CODE_TTL).unwrap_err().code,
            40029
        );
        let token = ok["access_token"].as_str().unwrap();
        let oid = openid("wxa", "alice");
        assert!(s.check(Some(token), Some(&oid), now).is_ok());
        assert_eq!(
            s.check(Some(token), Some("other"), now).unwrap_err().code,
            40003
        );
        assert_eq!(
            s.check(Some(token), Some(&oid), now + TOKEN_TTL)
                .unwrap_err()
                .code,
            42001
        );
        let refreshed = s
            .refresh("wxa", ok["refresh_token"].as_str().unwrap(), now)
            .unwrap();
        assert_eq!(refreshed["openid"], json!(oid));
        assert_eq!(s.refresh("wxa", "nope", now).unwrap_err().code, 40030);
    }

    #[test]
    fn base_scope_has_no_unionid() {
        let mut s = OauthState::default();
        let now = Instant::now();
        let code = s.issue_code("wxa", "alice", "snsapi_base", false, now);
        assert!(s
            .exchange("wxa", &code, now)
            .unwrap()
            .get("unionid")
            .is_none());
    }
}
