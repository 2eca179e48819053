//! GoTrue's auth hooks: a call out to the operator's own code at a fixed point of a flow (send
//! this SMS, send this e-mail, customise these claims). Mirrors GoTrue's `internal/hooks/`
//! (`hookshttp`, `hookspgfunc`, `hookserrors`) and the `ExtensibilityPointConfiguration`
//! validation in `internal/conf/configuration.go`, so a GoTrue hook works unchanged.
//!
//! A hook is either
//! * an `https://` URL (`http://` only for localhost, as GoTrue allows), called with a JSON POST
//!   signed per Standard Webhooks (standardwebhooks.com): headers `webhook-id`,
//!   `webhook-timestamp` and `webhook-signature`, one `v1,<base64 HMAC-SHA256>` per configured
//!   secret; or
//! * `pg-functions://postgres/<schema>/<function>`: `select "<schema>"."<function>"($1::jsonb)`
//!   on the caller's connection, usually inside the transaction of the request.
//!
//! Either way the hook may answer `{"error": {"http_code": 4xx, "message": "..."}}` to fail the
//! flow with that status and message. Payloads, answers and secrets are never logged: they carry
//! one-time codes and user records.
//!
//! Differences from GoTrue, all on the side of failing loudly: no retries (GoTrue retries a
//! connection error twice, but the Send SMS hook is not idempotent); an HTTP hook needs at least
//! one secret (GoTrue accepts none and sends an empty signature header); asymmetric `v1a` secrets
//! are refused at start-up (GoTrue accepts them in the configuration, then fails every call);
//! `{"error": "text"}` is an error (GoTrue ignores an `error` that is not an object); several
//! signatures are separated by a space, as the Standard Webhooks spec says (GoTrue uses ", ",
//! which the official Python verifier cannot parse).

use std::fmt;
use std::time::Duration;

use base64::Engine;
use diesel::pg::PgConnection;
use diesel::sql_types::{Jsonb, Nullable, Text};
use diesel::{Connection, QueryableByName, RunQueryDsl};
use serde_json::Value;

/// Largest hook answer read, as in GoTrue (`payloadLimit`, 200 KB).
const RESPONSE_LIMIT: usize = 200 * 1024;

/// PostgreSQL identifiers GoTrue accepts in a `pg-functions` URI (`postgresNamesRegexp`):
/// a letter or `_`, then up to 62 letters, digits or `_`.
fn is_valid_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `"name"` with embedded quotes doubled. Names are validated first, so there are none; the
/// doubling keeps this function safe on its own.
fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// One signing key from `GOTRUE_HOOK_<NAME>_SECRETS`, decoded from `v1,whsec_<base64>`.
#[derive(Clone, PartialEq, Eq)]
pub struct HookSecret(Vec<u8>);

impl HookSecret {
    /// Parses `v1,whsec_<base64>` (GoTrue's `symmetricSecretFormat`: 32 to 88 base64 characters).
    /// The error never contains the secret.
    pub fn parse(value: &str) -> Result<HookSecret, String> {
        let value = value.trim();
        if value.starts_with("v1a,") {
            return Err(
                "asymmetric (v1a,whpk_...) hook secrets are not supported; use v1,whsec_<base64>"
                    .into(),
            );
        }
        let encoded = value
            .strip_prefix("v1,whsec_")
            .ok_or("a hook secret must look like v1,whsec_<base64>")?;
        if !(32..=88).contains(&encoded.len())
            || !encoded
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
        {
            return Err(
                "a hook secret must be v1,whsec_ followed by 32 to 88 base64 characters".into(),
            );
        }
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map(HookSecret)
            .map_err(|_| "a hook secret's whsec_ part is not valid base64".into())
    }

    /// The raw HMAC key.
    pub fn key(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for HookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HookSecret(***)")
    }
}

/// Parses GoTrue's `|`-separated secret list (`HTTPHookSecrets.Decode`); empty items are skipped.
pub fn parse_secrets(list: &str) -> Result<Vec<HookSecret>, String> {
    list.split('|')
        .filter(|s| !s.trim().is_empty())
        .map(HookSecret::parse)
        .collect()
}

/// Where a hook goes.
#[derive(Clone, PartialEq, Eq)]
pub enum HookTarget {
    /// An HTTPS endpoint (or HTTP on localhost).
    Http(url::Url),
    /// A PostgreSQL function taking and returning `jsonb`.
    PgFunction { schema: String, function: String },
}

impl HookTarget {
    /// Validates a hook URI the way GoTrue's `ValidateExtensibilityPoint` does, with the
    /// function's path required to be exactly `/<schema>/<function>` (GoTrue ignores extra
    /// segments). The host of a `pg-functions` URI is not used: the call goes to weauth's own
    /// database, as in GoTrue.
    pub fn parse(uri: &str) -> Result<HookTarget, String> {
        let url = url::Url::parse(uri.trim()).map_err(|e| format!("invalid hook URI: {e}"))?;
        match url.scheme() {
            "https" => Ok(HookTarget::Http(url)),
            "http" => match url.host_str() {
                Some("localhost" | "127.0.0.1" | "[::1]" | "host.docker.internal") => {
                    Ok(HookTarget::Http(url))
                }
                _ => Err(
                    "only localhost, 127.0.0.1, ::1 and host.docker.internal are supported with http; use https".into(),
                ),
            },
            "pg-functions" => {
                let parts: Vec<&str> = url.path().trim_start_matches('/').split('/').collect();
                let [schema, function] = parts.as_slice() else {
                    return Err("a pg-functions hook URI must be pg-functions://postgres/<schema>/<function>".into());
                };
                for (what, name) in [("schema", schema), ("function", function)] {
                    if !is_valid_identifier(name) {
                        return Err(format!(
                            "invalid {what} name in pg-functions hook URI: {name:?} (letters, digits and _, not starting with a digit, at most 63)"
                        ));
                    }
                }
                Ok(HookTarget::PgFunction {
                    schema: schema.to_string(),
                    function: function.to_string(),
                })
            }
            other => Err(format!(
                "unsupported hook URI scheme {other:?}: only https (http for localhost) and pg-functions are supported"
            )),
        }
    }

    /// The SQL name of a `pg-functions` target, quoted (`"schema"."function"`).
    pub fn sql_name(&self) -> Option<String> {
        match self {
            HookTarget::PgFunction { schema, function } => Some(format!(
                "{}.{}",
                quote_identifier(schema),
                quote_identifier(function)
            )),
            HookTarget::Http(_) => None,
        }
    }
}

/// Shows scheme, host, port and path only: an operator may put a token in the query string or
/// credentials in the URL.
impl fmt::Debug for HookTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookTarget::Http(url) => {
                let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
                write!(
                    f,
                    "Http({}://{}{}{})",
                    url.scheme(),
                    url.host_str().unwrap_or(""),
                    port,
                    url.path()
                )
            }
            HookTarget::PgFunction { schema, function } => {
                write!(f, "PgFunction({schema}.{function})")
            }
        }
    }
}

/// A validated hook target with its secrets (what `GOTRUE_HOOK_<NAME>_URI`/`_SECRETS` hold).
#[derive(Clone, Debug)]
pub struct HookEndpoint {
    pub target: HookTarget,
    /// Signing keys of an HTTP hook (every one signs each call, for key rotation). Unused for
    /// `pg-functions`.
    pub secrets: Vec<HookSecret>,
}

impl HookEndpoint {
    /// Validates a URI and its `|`-separated secrets. An HTTP hook needs at least one secret:
    /// an unsigned call would let anyone who finds the URL forge them.
    pub fn parse(uri: &str, secrets: Option<&str>) -> Result<HookEndpoint, String> {
        let target = HookTarget::parse(uri)?;
        let secrets = parse_secrets(secrets.unwrap_or(""))?;
        if matches!(target, HookTarget::Http(_)) && secrets.is_empty() {
            return Err("an http(s) hook needs at least one secret (v1,whsec_<base64>)".into());
        }
        Ok(HookEndpoint { target, secrets })
    }
}

/// Why a hook call failed. GoTrue's answer for each is noted; the mapping to API errors is the
/// caller's.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The hook answered `{"error": {"http_code", "message"}}`. GoTrue fails the request with
    /// that status (500 when `http_code` is absent) and message.
    #[error("the hook answered an error ({http_code})")]
    Answered { http_code: u16, message: String },
    /// No answer within the timeout (GoTrue: 422 `hook_timeout`). The hook may still have acted.
    #[error("the hook did not answer in time")]
    Timeout,
    /// The call could not be delivered: connection refused, DNS, TLS (GoTrue: 422
    /// `hook_timeout_after_retry`).
    #[error("the hook is unreachable: {0}")]
    Unreachable(String),
    /// An HTTP status other than 200, 202 or 204, redirects included (GoTrue: 500).
    #[error("the hook answered HTTP {0}")]
    Status(u16),
    /// An answer that is not a JSON document: wrong content type, not JSON, over 200 KB (GoTrue:
    /// 400 `hook_payload_invalid_content_type` or 500).
    #[error("the hook answered something unexpected: {0}")]
    InvalidResponse(String),
    /// The `pg-functions` call failed: missing function, an exception it raised, a lost
    /// connection (GoTrue: 500).
    #[error("the hook function failed: {0}")]
    Database(String),
    /// `call_http` on a `pg-functions` hook, or `call_sql` on an HTTP one.
    #[error("the {0} hook cannot be called this way")]
    WrongTarget(&'static str),
}

impl HookError {
    /// True when the hook could not be reached or answered as unavailable (timeout, transport
    /// error, 5xx, 429): the caller may tell the user to try again later.
    pub fn is_unavailable(&self) -> bool {
        match self {
            HookError::Timeout | HookError::Unreachable(_) => true,
            HookError::Status(status) => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// The Standard Webhooks signature of one message: `v1,<base64 HMAC-SHA256(key,
/// "{msg_id}.{timestamp}.{body}")>`.
pub fn sign(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let signed = [
        msg_id.as_bytes(),
        b".",
        timestamp.to_string().as_bytes(),
        b".",
        body,
    ]
    .concat();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(super::hmac_sha256(key, &signed))
    )
}

/// The `webhook-signature` header: one signature per secret, space-separated.
pub fn signature_header(
    secrets: &[HookSecret],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|s| sign(s.key(), msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks a hook's JSON answer for GoTrue's error object (`hookserrors.Check`): an `error` with
/// a non-empty `message`. A bare string `error` counts too.
fn check_answer(answer: Value) -> Result<Value, HookError> {
    let error = match answer.get("error") {
        None | Some(Value::Null) => return Ok(answer),
        Some(error) => error,
    };
    let (http_code, message) = match error {
        Value::Object(obj) => (
            obj.get("http_code").and_then(Value::as_u64).unwrap_or(0),
            obj.get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        ),
        Value::String(message) => (0, message.clone()),
        _ => (0, String::new()),
    };
    if message.is_empty() {
        // GoTrue: an error object without a message is not an error.
        return Ok(answer);
    }
    let http_code = match u16::try_from(http_code) {
        Ok(code) if (100..=599).contains(&code) => code,
        _ => 500,
    };
    Err(HookError::Answered { http_code, message })
}

#[derive(QueryableByName)]
struct HookRow {
    #[diesel(sql_type = Nullable<Text>)]
    result: Option<String>,
}

/// One configured hook, ready to call.
#[derive(Clone)]
pub struct Hook {
    name: &'static str,
    endpoint: HookEndpoint,
    http: reqwest::Client,
    timeout: Duration,
}

impl fmt::Debug for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hook")
            .field("name", &self.name)
            .field("target", &self.endpoint.target)
            .field("secrets", &self.endpoint.secrets.len())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Hook {
    /// `name` is for logs (`send_sms`, ...). `timeout` bounds the whole HTTP call, or the SQL
    /// statement (`statement_timeout`). Redirects are never followed: a signed payload goes only
    /// to the configured URL.
    pub fn new(
        name: &'static str,
        endpoint: HookEndpoint,
        timeout: Duration,
    ) -> Result<Hook, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3).min(timeout))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("weauth/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Hook {
            name,
            endpoint,
            http,
            timeout,
        })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn target(&self) -> &HookTarget {
        &self.endpoint.target
    }

    /// True for a `pg-functions` hook, which must be called with [`Hook::call_sql`].
    pub fn is_pg_function(&self) -> bool {
        matches!(self.endpoint.target, HookTarget::PgFunction { .. })
    }

    /// POSTs `payload` to an HTTP hook and returns its JSON answer (`Null` for 204 No Content).
    /// Called once: the caller decides whether a failed call may be repeated.
    pub async fn call_http(&self, payload: &Value) -> Result<Value, HookError> {
        let HookTarget::Http(url) = &self.endpoint.target else {
            return Err(HookError::WrongTarget(self.name));
        };
        let body = serde_json::to_vec(payload)
            .map_err(|e| HookError::InvalidResponse(format!("payload not serializable: {e}")))?;
        let msg_id = uuid::Uuid::new_v4().to_string();
        let timestamp = chrono::Utc::now().timestamp();
        let signature = signature_header(&self.endpoint.secrets, &msg_id, timestamp, &body);
        let started = std::time::Instant::now();
        let result = self
            .http
            .post(url.clone())
            .timeout(self.timeout)
            .header("content-type", "application/json")
            .header("webhook-id", &msg_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        let result = match result {
            Ok(response) => self.read_answer(response).await,
            Err(e) => Err(transport_error(e)),
        };
        log_call(self.name, started, &result);
        result
    }

    async fn read_answer(&self, mut response: reqwest::Response) -> Result<Value, HookError> {
        let status = response.status().as_u16();
        match status {
            204 => return Ok(Value::Null),
            200 | 202 => {}
            other => return Err(HookError::Status(other)),
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let media_type = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if media_type != "application/json" {
            return Err(HookError::InvalidResponse(format!(
                "content type {content_type:?}, expected application/json"
            )));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            if body.len() + chunk.len() > RESPONSE_LIMIT {
                return Err(HookError::InvalidResponse(format!(
                    "answer larger than {RESPONSE_LIMIT} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        let answer: Value = serde_json::from_slice(&body)
            .map_err(|_| HookError::InvalidResponse("answer is not JSON".into()))?;
        check_answer(answer)
    }

    /// Calls a `pg-functions` hook on `conn` with `payload` and returns its answer (`Null` when
    /// it returns NULL or nothing). Runs in a savepoint when `conn` is inside a transaction (as
    /// GoTrue calls it, with the request's transaction: taking a second pooled connection would
    /// risk exhausting the pool), else in a transaction of its own; a failing function leaves the
    /// caller's transaction usable. The statement is bounded by `statement_timeout`.
    pub fn call_sql(&self, conn: &mut PgConnection, payload: &Value) -> Result<Value, HookError> {
        let Some(function) = self.endpoint.target.sql_name() else {
            return Err(HookError::WrongTarget(self.name));
        };
        let timeout_ms = self.timeout.as_millis().max(1);
        let started = std::time::Instant::now();
        let result = conn
            .transaction::<_, diesel::result::Error, _>(|conn| {
                diesel::sql_query(format!("set local statement_timeout = {timeout_ms}"))
                    .execute(conn)?;
                let row: HookRow =
                    diesel::sql_query(format!("select {function}($1::jsonb)::text as result"))
                        .bind::<Jsonb, _>(payload)
                        .get_result(conn)?;
                diesel::sql_query("set local statement_timeout to default").execute(conn)?;
                Ok(row.result)
            })
            .map_err(|e| match e {
                diesel::result::Error::DatabaseError(_, info)
                    if info.message().contains("statement timeout") =>
                {
                    HookError::Timeout
                }
                other => HookError::Database(other.to_string()),
            })
            .and_then(|text| match text.as_deref().map(str::trim) {
                None | Some("") => Ok(Value::Null),
                Some(text) => serde_json::from_str(text)
                    .map_err(|_| {
                        HookError::InvalidResponse("the function's result is not JSON".into())
                    })
                    .and_then(check_answer),
            });
        log_call(self.name, started, &result);
        result
    }
}

/// One line per call: which hook, how long, and the error kind; never the payload or answer.
fn log_call(name: &str, started: std::time::Instant, result: &Result<Value, HookError>) {
    let duration_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(_) => tracing::info!(hook = name, duration_ms, "hook succeeded"),
        Err(e) => tracing::warn!(hook = name, duration_ms, error = %e, "hook failed"),
    }
}

/// reqwest's error text includes the URL, which may carry a token: drop it.
fn transport_error(e: reqwest::Error) -> HookError {
    if e.is_timeout() {
        HookError::Timeout
    } else {
        HookError::Unreachable(e.without_url().to_string())
    }
}

#[cfg(test)]
mod tests;
