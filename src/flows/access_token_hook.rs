//! What GoTrue accepts back from the custom access-token hook (`internal/tokens/service.go`
//! `validateTokenClaims` and `MinimumViableTokenSchema`): `{"claims": {...}}` whose claims keep
//! every required claim with its type. Anything else fails the sign-in with GoTrue's 500 and
//! the reason, and nothing is signed.

use serde_json::Value;

use crate::error::{ApiError, ErrorCode};

/// The claims every token keeps.
const REQUIRED: [&str; 10] = [
    "aud", "exp", "iat", "sub", "email", "phone", "role", "aal", "session_id", "is_anonymous",
];

/// The hook's `claims`, checked against GoTrue's schema.
pub fn checked_claims(output: Value) -> Result<Value, ApiError> {
    let Some(Value::Object(claims)) = output.get("claims").cloned() else {
        return Err(invalid("the hook's answer has no claims object".into()));
    };
    let mut problems = Vec::new();
    for name in REQUIRED {
        if !claims.contains_key(name) {
            problems.push(format!("{name} is required"));
        }
    }
    for (name, value) in &claims {
        if let Some(expected) = expected_type(name) {
            if !expected.accepts(value) {
                problems.push(format!("{name}: invalid type, expected {}", expected.name()));
            }
        }
    }
    if let Some(Value::Array(amr)) = claims.get("amr") {
        if amr.iter().any(|v| !(v.is_string() || v.is_object())) {
            problems.push("amr: items must be strings or objects".into());
        }
    }
    if problems.is_empty() {
        Ok(Value::Object(claims))
    } else {
        Err(invalid(format!(
            "output claims do not conform to the expected schema: {}",
            problems.join("; ")
        )))
    }
}

fn invalid(reason: String) -> ApiError {
    tracing::warn!(reason = %reason, "custom access token hook returned invalid claims");
    ApiError::new(
        actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::UnexpectedFailure,
        reason,
    )
}

#[derive(Clone, Copy)]
enum Type {
    String,
    StringOrArray,
    Integer,
    Object,
    Array,
    Boolean,
}

impl Type {
    fn accepts(self, v: &Value) -> bool {
        match self {
            Type::String => v.is_string(),
            Type::StringOrArray => v.is_string() || v.is_array(),
            // JSON Schema integers: whole numbers, also written as 1.0.
            Type::Integer => v.as_i64().is_some() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
            Type::Object => v.is_object(),
            Type::Array => v.is_array(),
            Type::Boolean => v.is_boolean(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Type::String => "string",
            Type::StringOrArray => "string or array",
            Type::Integer => "integer",
            Type::Object => "object",
            Type::Array => "array",
            Type::Boolean => "boolean",
        }
    }
}

fn expected_type(claim: &str) -> Option<Type> {
    Some(match claim {
        "aud" => Type::StringOrArray,
        "exp" | "iat" | "nbf" => Type::Integer,
        "jti" | "iss" | "sub" | "email" | "phone" | "role" | "aal" | "session_id" | "client_id" => {
            Type::String
        }
        "app_metadata" | "user_metadata" => Type::Object,
        "amr" => Type::Array,
        // Not in GoTrue's schema's properties, but signed as a boolean by everything that
        // reads it (PostgREST policies compare it).
        "is_anonymous" => Type::Boolean,
        _ => return None,
    })
}

/// A valid set of claims, for the tests.
#[cfg(test)]
fn base() -> serde_json::Map<String, Value> {
    serde_json::json!({
        "aud": "authenticated", "exp": 2000000000, "iat": 1900000000, "sub": "u",
        "email": "", "phone": "", "role": "authenticated", "aal": "aal1",
        "session_id": "s", "is_anonymous": false, "amr": [{"method": "password", "timestamp": 1}],
    })
    .as_object()
    .unwrap()
    .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extra_claims_pass_and_required_ones_must_stay_typed() {
        let mut claims = base();
        claims.insert("plan".into(), json!("pro"));
        let out = checked_claims(json!({ "claims": claims })).unwrap();
        assert_eq!(out["plan"], "pro");

        let mut missing = base();
        missing.remove("session_id");
        let err = checked_claims(json!({ "claims": missing })).unwrap_err();
        assert_eq!(err.status.as_u16(), 500);
        assert!(err.msg.contains("session_id is required"), "{}", err.msg);

        let mut wrong = base();
        wrong.insert("exp".into(), json!("tomorrow"));
        wrong.insert("app_metadata".into(), json!([]));
        let err = checked_claims(json!({ "claims": wrong })).unwrap_err();
        assert!(err.msg.contains("exp: invalid type"), "{}", err.msg);
        assert!(err.msg.contains("app_metadata: invalid type"), "{}", err.msg);

        for garbage in [json!(null), json!("x"), json!({"claims": 1}), json!({})] {
            assert!(checked_claims(garbage).is_err());
        }
    }
}
