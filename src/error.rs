//! The one error type of the HTTP API, rendered the way GoTrue renders its errors
//! (`internal/api/errors.go`, `internal/api/apierrors/`).
//!
//! Legacy body: `{"code": <status>, "error_code": "...", "msg": "..."}` (+ `error_id` on 5xx).
//! With `X-Supabase-Api-Version: 2024-01-01` on the request: `{"code": "...", "message": "..."}`,
//! and the header is echoed. Both carry `x-sb-error-code`. The format switch happens in
//! [`api_version_middleware`], the only place that sees both the request and the error.

use std::borrow::Cow;
use std::fmt;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue, CACHE_CONTROL};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, ResponseError};
use serde_json::json;

/// GoTrue's `error_code` strings (`apierrors/errorcode.go`), plus the WeChat codes weauth adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    UnexpectedFailure,
    ValidationFailed,
    BadJson,
    EmailExists,
    PhoneExists,
    BadJwt,
    NotAdmin,
    NoAuthorization,
    UserNotFound,
    SessionNotFound,
    SessionExpired,
    RefreshTokenNotFound,
    RefreshTokenAlreadyUsed,
    SignupDisabled,
    UserBanned,
    UserAlreadyExists,
    IdentityAlreadyExists,
    EmailProviderDisabled,
    PhoneProviderDisabled,
    AnonymousProviderDisabled,
    ProviderDisabled,
    EmailNotConfirmed,
    PhoneNotConfirmed,
    InvalidCredentials,
    WeakPassword,
    SamePassword,
    Conflict,
    OverRequestRateLimit,
    OverSmsSendRateLimit,
    OtpExpired,
    OtpDisabled,
    SmsSendFailed,
    ReauthenticationNeeded,
    ReauthenticationNotValid,
    HookTimeout,
    HookTimeoutAfterRetry,
    RequestEntityTooLarge,
    RequestTimeout,
    NotFound,
    MethodNotAllowed,
    /// Too many mails: the per-user resend interval or the global cap.
    OverEmailSendRateLimit,
    MfaFactorNameConflict,
    TooManyEnrolledMfaFactors,
    MfaFactorNotFound,
    MfaIpAddressMismatch,
    MfaChallengeExpired,
    MfaVerificationFailed,
    InsufficientAal,
    MfaVerifiedFactorExists,
    MfaTotpEnrollNotEnabled,
    MfaTotpVerifyNotEnabled,
    MfaPhoneEnrollNotEnabled,
    MfaPhoneVerifyNotEnabled,
    MfaWebauthnEnrollNotEnabled,
    MfaWebauthnVerifyNotEnabled,
    /// The WebAuthn response is not the factor's credential.
    WebauthnCredentialNotFound,
    /// A WebAuthn verification without a WebAuthn challenge session.
    WebauthnChallengeNotFound,
    /// A registration offered a credential another factor already holds.
    WebauthnCredentialExists,
    /// The WebAuthn response failed a relying-party check (origin, rp id, challenge,
    /// signature, flags, counter).
    WebauthnVerificationFailed,
    BadOauthState,
    BadOauthCallback,
    FlowStateNotFound,
    FlowStateExpired,
    FlowStateAlreadyUsed,
    BadCodeVerifier,
    SingleIdentityNotDeletable,
    IdentityNotFound,
    ManualLinkingDisabled,
    /// An official-account page opened in WeChat's snapshot mode (`is_snapshotuser`): no real
    /// user behind the openid.
    WechatSnapshotUser,
    /// The WeChat code is invalid, expired or from another app (errcode 40029).
    WechatCodeInvalid,
    /// The WeChat code was already exchanged (errcode 40163).
    WechatCodeUsed,
    /// WeChat refused this user as high-risk (errcode 40226).
    WechatUserBlocked,
    /// WeChat's per-minute quota was hit (45011, 45009).
    WechatRateLimited,
    /// WeChat rejected the request parameters (QR code scene/page/env_version, ...).
    WechatInvalidRequest,
    /// WeChat is busy, slow, unreachable or answered garbage.
    WechatUnavailable,
    /// WeChat rejected weauth's own credentials (app id/secret, IP whitelist).
    WechatMisconfigured,
    /// The legacy encrypted payload could not be verified or decrypted.
    WechatDecryptFailed,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            UnexpectedFailure => "unexpected_failure",
            ValidationFailed => "validation_failed",
            BadJson => "bad_json",
            EmailExists => "email_exists",
            PhoneExists => "phone_exists",
            BadJwt => "bad_jwt",
            NotAdmin => "not_admin",
            NoAuthorization => "no_authorization",
            UserNotFound => "user_not_found",
            SessionNotFound => "session_not_found",
            SessionExpired => "session_expired",
            RefreshTokenNotFound => "refresh_token_not_found",
            RefreshTokenAlreadyUsed => "refresh_token_already_used",
            SignupDisabled => "signup_disabled",
            UserBanned => "user_banned",
            UserAlreadyExists => "user_already_exists",
            IdentityAlreadyExists => "identity_already_exists",
            EmailProviderDisabled => "email_provider_disabled",
            PhoneProviderDisabled => "phone_provider_disabled",
            AnonymousProviderDisabled => "anonymous_provider_disabled",
            ProviderDisabled => "provider_disabled",
            EmailNotConfirmed => "email_not_confirmed",
            PhoneNotConfirmed => "phone_not_confirmed",
            InvalidCredentials => "invalid_credentials",
            WeakPassword => "weak_password",
            SamePassword => "same_password",
            Conflict => "conflict",
            OverRequestRateLimit => "over_request_rate_limit",
            OverSmsSendRateLimit => "over_sms_send_rate_limit",
            OtpExpired => "otp_expired",
            OtpDisabled => "otp_disabled",
            SmsSendFailed => "sms_send_failed",
            ReauthenticationNeeded => "reauthentication_needed",
            ReauthenticationNotValid => "reauthentication_not_valid",
            HookTimeout => "hook_timeout",
            HookTimeoutAfterRetry => "hook_timeout_after_retry",
            RequestEntityTooLarge => "request_entity_too_large",
            RequestTimeout => "request_timeout",
            NotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            OverEmailSendRateLimit => "over_email_send_rate_limit",
            MfaFactorNameConflict => "mfa_factor_name_conflict",
            TooManyEnrolledMfaFactors => "too_many_enrolled_mfa_factors",
            MfaFactorNotFound => "mfa_factor_not_found",
            MfaIpAddressMismatch => "mfa_ip_address_mismatch",
            MfaChallengeExpired => "mfa_challenge_expired",
            MfaVerificationFailed => "mfa_verification_failed",
            InsufficientAal => "insufficient_aal",
            MfaVerifiedFactorExists => "mfa_verified_factor_exists",
            MfaTotpEnrollNotEnabled => "mfa_totp_enroll_not_enabled",
            MfaTotpVerifyNotEnabled => "mfa_totp_verify_not_enabled",
            MfaPhoneEnrollNotEnabled => "mfa_phone_enroll_not_enabled",
            MfaPhoneVerifyNotEnabled => "mfa_phone_verify_not_enabled",
            MfaWebauthnEnrollNotEnabled => "mfa_webauthn_enroll_not_enabled",
            MfaWebauthnVerifyNotEnabled => "mfa_webauthn_verify_not_enabled",
            WebauthnCredentialNotFound => "webauthn_credential_not_found",
            WebauthnChallengeNotFound => "webauthn_challenge_not_found",
            WebauthnCredentialExists => "webauthn_credential_exists",
            WebauthnVerificationFailed => "webauthn_verification_failed",
            BadOauthState => "bad_oauth_state",
            BadOauthCallback => "bad_oauth_callback",
            FlowStateNotFound => "flow_state_not_found",
            FlowStateExpired => "flow_state_expired",
            FlowStateAlreadyUsed => "flow_state_already_used",
            BadCodeVerifier => "bad_code_verifier",
            SingleIdentityNotDeletable => "single_identity_not_deletable",
            IdentityNotFound => "identity_not_found",
            ManualLinkingDisabled => "manual_linking_disabled",
            WechatSnapshotUser => "wechat_snapshot_user",
            WechatCodeInvalid => "wechat_code_invalid",
            WechatCodeUsed => "wechat_code_used",
            WechatUserBlocked => "wechat_user_blocked",
            WechatRateLimited => "wechat_rate_limited",
            WechatInvalidRequest => "wechat_invalid_request",
            WechatUnavailable => "wechat_unavailable",
            WechatMisconfigured => "wechat_misconfigured",
            WechatDecryptFailed => "wechat_decrypt_failed",
        }
    }
}

/// What a client sees when a request fails. The `source` is logged, never sent.
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub msg: Cow<'static, str>,
    /// Reasons for `weak_password` (`length`, `characters`), sent as `weak_password.reasons`.
    pub weak_password_reasons: Vec<&'static str>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

pub type ApiResult<T> = Result<T, ApiError>;

/// GoTrue's message for any unhandled failure; details stay in the server log.
const UNEXPECTED_MSG: &str = "Unexpected failure, please check server logs for more information";

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, msg: impl Into<Cow<'static, str>>) -> Self {
        ApiError {
            status,
            code,
            msg: msg.into(),
            weak_password_reasons: Vec::new(),
            source: None,
        }
    }
    pub fn bad_request(code: ErrorCode, msg: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, msg)
    }
    pub fn unprocessable(code: ErrorCode, msg: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, msg)
    }
    pub fn unauthorized(code: ErrorCode, msg: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, msg)
    }
    pub fn forbidden(code: ErrorCode, msg: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, msg)
    }
    pub fn not_found(code: ErrorCode, msg: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, msg)
    }
    pub fn conflict(code: ErrorCode, msg: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::CONFLICT, code, msg)
    }
    pub fn too_many_requests(code: ErrorCode, msg: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, code, msg)
    }
    pub fn bad_gateway(code: ErrorCode, msg: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, code, msg)
    }
    pub fn service_unavailable(code: ErrorCode, msg: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, msg)
    }
    pub fn validation(msg: impl Into<Cow<'static, str>>) -> Self {
        Self::bad_request(ErrorCode::ValidationFailed, msg)
    }
    /// The single "wrong e-mail/phone or password" answer, whatever the actual reason.
    pub fn invalid_credentials() -> Self {
        Self::bad_request(ErrorCode::InvalidCredentials, "Invalid login credentials")
    }
    pub fn weak_password(msg: String, reasons: Vec<&'static str>) -> Self {
        let mut e = Self::unprocessable(ErrorCode::WeakPassword, msg);
        e.weak_password_reasons = reasons;
        e
    }
    /// An unexpected failure: 500 with GoTrue's generic message; `source` goes to the log.
    pub fn internal(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        let mut e = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::UnexpectedFailure,
            UNEXPECTED_MSG,
        );
        e.source = Some(source.into());
        e
    }
    /// The database cannot be reached right now: 503 so clients retry.
    pub fn database_unavailable(
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::UnexpectedFailure,
            "The database is temporarily unavailable, please retry",
        );
        e.source = Some(source.into());
        e
    }
    /// Wraps an error actix-web produced itself, keeping its status.
    fn from_framework(status: StatusCode, detail: String) -> Self {
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => Self::new(
                status,
                ErrorCode::RequestEntityTooLarge,
                "Request body too large",
            ),
            StatusCode::NOT_FOUND => Self::new(status, ErrorCode::NotFound, "Not found"),
            StatusCode::METHOD_NOT_ALLOWED => {
                Self::new(status, ErrorCode::MethodNotAllowed, "Method not allowed")
            }
            s if s.is_client_error() => Self::new(s, ErrorCode::ValidationFailed, detail),
            _ => Self::internal(detail),
        }
    }

    /// True when PostgreSQL aborted the transaction to break a deadlock or a serialization
    /// conflict: running it again may succeed (see `db::transaction_retrying`).
    pub fn is_lock_conflict(&self) -> bool {
        self.code == ErrorCode::Conflict
    }

    /// Attaches a cause for the log without changing what the client sees.
    pub fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Renders the body in the legacy or the 2024-01-01 format.
    fn render(&self, api_2024: bool, error_id: Option<&str>) -> HttpResponse {
        let mut body = if api_2024 {
            json!({"code": self.code.as_str(), "message": self.msg})
        } else {
            json!({"code": self.status.as_u16(), "error_code": self.code.as_str(), "msg": self.msg})
        };
        if !self.weak_password_reasons.is_empty() {
            body["weak_password"] = json!({"reasons": self.weak_password_reasons});
        }
        if let (Some(id), false, true) = (error_id, api_2024, self.status.is_server_error()) {
            body["error_id"] = json!(id);
        }
        let mut res = HttpResponse::build(self.status);
        res.insert_header(("x-sb-error-code", self.code.as_str()));
        res.insert_header((CACHE_CONTROL, "no-store"));
        if api_2024 {
            res.insert_header((API_VERSION_HEADER, API_VERSION_2024));
        }
        res.json(body)
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code.as_str(),
            self.msg
        )?;
        if let Some(source) = &self.source {
            write!(f, " (cause: {source})")?;
        }
        Ok(())
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for ApiError {}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse<BoxBody> {
        // Log a failure once, where it becomes a response. 4xx are the client's business.
        if self.status.is_server_error() {
            tracing::error!(status = self.status.as_u16(), error = ?self, "request failed");
        } else {
            tracing::debug!(
                status = self.status.as_u16(),
                code = self.code.as_str(),
                "request rejected"
            );
        }
        self.render(false, None)
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match &e {
            Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            ) => ApiError::database_unavailable(e),
            // A statement that ran after its request had answered 503 (`weauth.in_time`).
            Error::DatabaseError(_, info)
                if info.message().starts_with("weauth: the request gave up") =>
            {
                ApiError::database_unavailable(e)
            }
            // Two transactions locked the same rows in opposite orders (e.g. a refresh racing a
            // password change); PostgreSQL aborted one. GoTrue answers lock contention with 409.
            Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::Conflict,
                "Too many concurrent requests on the same session, please retry",
            )
            .with_source(e),
            Error::DatabaseError(_, info) if info.message().contains("deadlock detected") => {
                ApiError::new(
                    StatusCode::CONFLICT,
                    ErrorCode::Conflict,
                    "Too many concurrent requests on the same session, please retry",
                )
                .with_source(e)
            }
            // Client text PostgreSQL cannot store (a NUL character, an overlong value) that
            // a check where the input entered missed: still the client's error, not a 500.
            Error::DatabaseError(_, info)
                if [
                    "invalid byte sequence",
                    "unsupported Unicode escape sequence",
                ]
                .iter()
                .any(|m| info.message().contains(m)) =>
            {
                ApiError::validation("Text must not contain NUL characters").with_source(e)
            }
            Error::DatabaseError(_, info) if info.message().starts_with("value too long") => {
                ApiError::validation("A value is too long").with_source(e)
            }
            // A row that names a user or a session which a concurrent request deleted
            // (`DELETE /admin/users/{id}` while that user signs in, or a logout while a session
            // is written to): the statement, and so the transaction, wrote nothing.
            Error::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, info) => {
                let constraint = info.constraint_name().unwrap_or("");
                if constraint.ends_with("session_id_fkey") {
                    ApiError::not_found(ErrorCode::SessionNotFound, "Session not found")
                        .with_source(e)
                } else if constraint.ends_with("user_id_fkey") {
                    ApiError::not_found(ErrorCode::UserNotFound, "User not found").with_source(e)
                } else {
                    ApiError::internal(e)
                }
            }
            _ => ApiError::internal(e),
        }
    }
}

/// A deserializer's message (serde_json, serde_urlencoded) with every request value taken out,
/// for client-facing messages built from client input: serde quotes the offending value
/// (`invalid type: string "…", expected …`), which may be a password or a megabyte of text.
/// What stays is schema text: the kind of mistake, field names weauth declares, what was
/// expected, and serde_json's line and column. Anything unrecognised becomes `invalid value`.
pub fn redact_deserialize_message(msg: &str) -> String {
    const MAX: usize = 200;
    // Messages that only name our own fields (`missing field `email``) or describe syntax.
    let keeps = [
        "missing field",
        "duplicate field",
        "invalid length",
        "expected",
        "EOF while parsing",
        "trailing",
        "key must be",
        "control character",
        "invalid escape",
        "invalid unicode",
        "invalid number",
        "number out of range",
        "lone leading surrogate",
        "recursion limit",
    ];
    let labels = [
        "invalid type",
        "invalid value",
        "unknown variant",
        "unknown field",
    ];
    let out = if let Some(label) = labels.iter().find(|l| msg.starts_with(**l)) {
        // The value sits between the label and the last ", expected" (schema text).
        match msg.rfind(", expected") {
            Some(i) => format!("{label}{}", &msg[i..]),
            None => label.to_string(),
        }
    } else if keeps.iter().any(|k| msg.starts_with(k))
        && !msg.contains('"')
        && !msg.contains(" got ")
    {
        msg.to_string()
    } else {
        "invalid value".to_string()
    };
    if out.len() > MAX {
        let mut end = MAX;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &out[..end])
    } else {
        out
    }
}

/// The request header supabase-js sends on every call.
pub const API_VERSION_HEADER: &str = "x-supabase-api-version";
pub const API_VERSION_2024: &str = "2024-01-01";

/// Dates compare correctly as strings (`YYYY-MM-DD`); GoTrue switches formats at 2024-01-01.
fn wants_2024_format(req: &ServiceRequest) -> bool {
    req.headers()
        .get(API_VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.len() == 10 && v >= API_VERSION_2024)
        .unwrap_or(false)
}

/// Re-renders [`ApiError`] responses for the request's API version and adds `error_id` on 5xx.
pub async fn api_version_middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let api_2024 = wants_2024_format(&req);
    let res = next.call(req).await?;
    let error_id = || {
        res.request()
            .extensions()
            .get::<tracing_actix_web::RequestId>()
            .map(|id| id.to_string())
    };
    let rendered = match res.response().error() {
        None => None,
        Some(e) => match e.as_error::<ApiError>() {
            Some(api) if api_2024 || api.status.is_server_error() => {
                Some(api.render(api_2024, error_id().as_deref()))
            }
            Some(_) => None,
            // actix's own errors (payload limits, ...) get the same envelope as ours.
            None => {
                let api =
                    ApiError::from_framework(e.as_response_error().status_code(), e.to_string());
                Some(api.render(api_2024, error_id().as_deref()))
            }
        },
    };
    Ok(match rendered {
        Some(new) => res.into_response(new).map_into_right_body(),
        None => res.map_into_left_body(),
    })
}

/// `Cache-Control: no-store`, for every response that carries tokens or user data.
pub fn no_store() -> (HeaderName, HeaderValue) {
    (CACHE_CONTROL, HeaderValue::from_static("no-store"))
}

impl ApiError {
    /// A mail that could not be sent: GoTrue's 500 with `what` ("Error sending recovery
    /// email"); the cause (never credentials or the message) goes to the log. An address the
    /// mail cannot carry is the client's 400.
    pub fn mail_not_sent(what: &'static str, e: crate::providers::mail::MailError) -> ApiError {
        use crate::providers::mail::MailError;
        match e {
            MailError::InvalidAddress => {
                ApiError::validation("Unable to validate email address: invalid format")
            }
            e => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::UnexpectedFailure,
                what,
            )
            .with_source(e),
        }
    }
}

/// What a client sees when WeChat fails. Client mistakes are 4xx; WeChat being down or
/// rejecting weauth's own credentials is 502/503, so the SDK may retry.
impl From<crate::providers::wechat::WechatFailure> for ApiError {
    fn from(f: crate::providers::wechat::WechatFailure) -> Self {
        use crate::providers::wechat::{Api, WechatError};
        use ErrorCode::*;
        match (&f.error, f.api) {
            (WechatError::Api { errcode: 40029, .. }, Api::Login) => ApiError::bad_request(
                WechatCodeInvalid,
                "Invalid or expired WeChat code, call wx.login again",
            ),
            (WechatError::Api { errcode: 40163, .. }, Api::Login) => ApiError::bad_request(
                WechatCodeUsed,
                "This WeChat code was already used, call wx.login again",
            ),
            (WechatError::Api { errcode: 40029 | 40163, .. }, Api::Phone) => {
                ApiError::bad_request(
                    WechatCodeInvalid,
                    "Invalid or expired phone number code, ask the user to tap the button again",
                )
            }
            (WechatError::Api { errcode: 40029, .. }, Api::OauthCode) => ApiError::bad_request(
                WechatCodeInvalid,
                "Invalid or expired WeChat authorization code, please sign in again",
            ),
            (WechatError::Api { errcode: 40163, .. }, Api::OauthCode) => ApiError::bad_request(
                WechatCodeUsed,
                "This WeChat authorization code was already used, please sign in again",
            ),
            (WechatError::Api { errcode: 40226, .. }, _) => {
                ApiError::forbidden(WechatUserBlocked, "WeChat blocked this login as high-risk")
            }
            (WechatError::Api { errcode: 45011 | 45009 | 45033, .. }, _) => {
                ApiError::too_many_requests(
                    WechatRateLimited,
                    "WeChat rate limit reached, please retry in a minute",
                )
            }
            (
                WechatError::Api {
                    errcode: 40169 | 40129 | 40097 | 41030 | 47001 | 40159,
                    errmsg,
                },
                Api::QrCode,
            ) => ApiError::bad_request(
                WechatInvalidRequest,
                format!("WeChat rejected the QR code request: {errmsg}"),
            ),
            (WechatError::Api { errcode: -1, .. }, _)
            | (WechatError::Timeout, _)
            | (WechatError::Unreachable(_), _) => ApiError::service_unavailable(
                WechatUnavailable,
                "WeChat is temporarily unavailable, please retry",
            ),
            (WechatError::Garbage(_), _) => ApiError::bad_gateway(
                WechatUnavailable,
                "WeChat answered unexpectedly, please retry",
            ),
            (WechatError::Api { errcode, .. }, _) => ApiError::bad_gateway(
                WechatMisconfigured,
                format!(
                    "WeChat rejected the server's request (errcode {errcode}); check the app id and secret"
                ),
            ),
        }
    }
}

/// A hook that failed, as GoTrue answers it (`internal/hooks`): the hook's own error status and
/// message when it answered one, 422 when it could not be reached, else 500.
impl From<crate::providers::hooks::HookError> for ApiError {
    fn from(e: crate::providers::hooks::HookError) -> Self {
        use crate::providers::hooks::HookError;
        match e {
            HookError::Answered { http_code, message } => {
                let status = StatusCode::from_u16(http_code)
                    .ok()
                    .filter(|s| s.is_client_error() || s.is_server_error())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                ApiError::new(status, ErrorCode::UnexpectedFailure, message)
            }
            HookError::Timeout => ApiError::unprocessable(
                ErrorCode::HookTimeout,
                "Failed to reach hook within maximum time",
            ),
            HookError::Unreachable(_) => ApiError::unprocessable(
                ErrorCode::HookTimeoutAfterRetry,
                "Failed to reach hook after maximum retries",
            ),
            other => ApiError::internal(other),
        }
    }
}

/// A failed SMS send (`providers::sms`), as GoTrue answers it; the provider's code is logged by
/// the provider, never the number's code.
impl From<crate::providers::sms::SmsError> for ApiError {
    fn from(e: crate::providers::sms::SmsError) -> Self {
        use crate::providers::sms::SmsError;
        match e {
            SmsError::RateLimited { .. } => ApiError::too_many_requests(
                ErrorCode::OverSmsSendRateLimit,
                "SMS rate limit exceeded",
            ),
            SmsError::InvalidNumber { .. } => {
                ApiError::validation("Invalid phone number format (E.164 required)")
            }
            SmsError::Rejected { .. } | SmsError::Unavailable { .. } => {
                let mut err = ApiError::unprocessable(
                    ErrorCode::SmsSendFailed,
                    "Error sending sms OTP to provider",
                );
                err.source = Some(Box::new(e));
                err
            }
            SmsError::Hook(hook) => hook.into(),
        }
    }
}

#[cfg(test)]
mod redact_tests {
    use super::redact_deserialize_message as redact;

    #[test]
    fn request_values_are_taken_out_of_serde_messages() {
        let cases = [
            (
                r#"invalid type: string "hunter2, expected x", expected a map at line 1 column 9"#,
                "invalid type, expected a map at line 1 column 9",
            ),
            (
                "invalid type: integer `13572468024`, expected a string at line 1 column 40",
                "invalid type, expected a string at line 1 column 40",
            ),
            (
                "unknown variant `secret`, expected `a` or `b`",
                "unknown variant, expected `a` or `b`",
            ),
            (
                "unknown field `secret`, there are no fields",
                "unknown field",
            ),
            ("missing field `email`", "missing field `email`"),
            (
                "expected value at line 1 column 1",
                "expected value at line 1 column 1",
            ),
            ("cannot parse \"secret\" to a u32", "invalid value"),
            ("invalid digit found in string", "invalid value"),
            (
                "expected a country code, got [8,6] at line 1 column 9",
                "invalid value",
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(redact(raw), want, "{raw}");
        }
    }
}
