//! Diesel's view of the tables weauth reads and writes: GoTrue's `auth` schema (every column, in
//! the database's order, so GoTrue's own columns are known even where weauth does not use them)
//! and weauth's own `weauth` schema. Written to match `migrations/`; the test
//! `tests/api/schema.rs` fails when the two disagree and prints what the database says.

/// GoTrue's enum types.
pub mod sql_types {
    #[derive(diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "aal_level", schema = "auth"))]
    pub struct AalLevel;

    #[derive(diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "code_challenge_method", schema = "auth"))]
    pub struct CodeChallengeMethod;

    #[derive(diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "factor_status", schema = "auth"))]
    pub struct FactorStatus;

    #[derive(diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "factor_type", schema = "auth"))]
    pub struct FactorType;

    #[derive(diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "one_time_token_type", schema = "auth"))]
    pub struct OneTimeTokenType;
}

diesel::table! {
    auth.users (id) {
        instance_id -> Nullable<Uuid>,
        id -> Uuid,
        aud -> Nullable<Varchar>,
        role -> Nullable<Varchar>,
        email -> Nullable<Varchar>,
        encrypted_password -> Nullable<Varchar>,
        email_confirmed_at -> Nullable<Timestamptz>,
        invited_at -> Nullable<Timestamptz>,
        confirmation_token -> Nullable<Varchar>,
        confirmation_sent_at -> Nullable<Timestamptz>,
        recovery_token -> Nullable<Varchar>,
        recovery_sent_at -> Nullable<Timestamptz>,
        email_change_token_new -> Nullable<Varchar>,
        email_change -> Nullable<Varchar>,
        email_change_sent_at -> Nullable<Timestamptz>,
        last_sign_in_at -> Nullable<Timestamptz>,
        raw_app_meta_data -> Nullable<Jsonb>,
        raw_user_meta_data -> Nullable<Jsonb>,
        is_super_admin -> Nullable<Bool>,
        created_at -> Nullable<Timestamptz>,
        updated_at -> Nullable<Timestamptz>,
        phone -> Nullable<Text>,
        phone_confirmed_at -> Nullable<Timestamptz>,
        phone_change -> Nullable<Text>,
        phone_change_token -> Nullable<Varchar>,
        phone_change_sent_at -> Nullable<Timestamptz>,
        confirmed_at -> Nullable<Timestamptz>,
        email_change_token_current -> Nullable<Varchar>,
        email_change_confirm_status -> Nullable<Int2>,
        banned_until -> Nullable<Timestamptz>,
        reauthentication_token -> Nullable<Varchar>,
        reauthentication_sent_at -> Nullable<Timestamptz>,
        is_sso_user -> Bool,
        deleted_at -> Nullable<Timestamptz>,
        is_anonymous -> Bool,
    }
}

diesel::table! {
    auth.identities (id) {
        provider_id -> Text,
        user_id -> Uuid,
        identity_data -> Jsonb,
        provider -> Text,
        last_sign_in_at -> Nullable<Timestamptz>,
        created_at -> Nullable<Timestamptz>,
        updated_at -> Nullable<Timestamptz>,
        email -> Nullable<Text>,
        id -> Uuid,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::*;

    auth.sessions (id) {
        id -> Uuid,
        user_id -> Uuid,
        created_at -> Nullable<Timestamptz>,
        updated_at -> Nullable<Timestamptz>,
        factor_id -> Nullable<Uuid>,
        aal -> Nullable<AalLevel>,
        not_after -> Nullable<Timestamptz>,
        refreshed_at -> Nullable<Timestamp>,
        user_agent -> Nullable<Text>,
        ip -> Nullable<Inet>,
        tag -> Nullable<Text>,
        oauth_client_id -> Nullable<Uuid>,
        refresh_token_hmac_key -> Nullable<Text>,
        refresh_token_counter -> Nullable<Int8>,
        scopes -> Nullable<Text>,
    }
}

diesel::table! {
    auth.refresh_tokens (id) {
        instance_id -> Nullable<Uuid>,
        id -> Int8,
        token -> Nullable<Varchar>,
        user_id -> Nullable<Varchar>,
        revoked -> Nullable<Bool>,
        created_at -> Nullable<Timestamptz>,
        updated_at -> Nullable<Timestamptz>,
        parent -> Nullable<Varchar>,
        session_id -> Nullable<Uuid>,
    }
}

diesel::table! {
    auth.audit_log_entries (id) {
        instance_id -> Nullable<Uuid>,
        id -> Uuid,
        payload -> Nullable<Json>,
        created_at -> Nullable<Timestamptz>,
        ip_address -> Varchar,
    }
}

diesel::table! {
    auth.mfa_amr_claims (id) {
        session_id -> Uuid,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        authentication_method -> Text,
        id -> Uuid,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::*;

    auth.mfa_factors (id) {
        id -> Uuid,
        user_id -> Uuid,
        friendly_name -> Nullable<Text>,
        factor_type -> FactorType,
        status -> FactorStatus,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        secret -> Nullable<Text>,
        phone -> Nullable<Text>,
        last_challenged_at -> Nullable<Timestamptz>,
        web_authn_credential -> Nullable<Jsonb>,
        web_authn_aaguid -> Nullable<Uuid>,
        last_webauthn_challenge_data -> Nullable<Jsonb>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::*;

    auth.one_time_tokens (id) {
        id -> Uuid,
        user_id -> Uuid,
        token_type -> OneTimeTokenType,
        token_hash -> Text,
        relates_to -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    auth.mfa_challenges (id) {
        id -> Uuid,
        factor_id -> Uuid,
        created_at -> Timestamptz,
        verified_at -> Nullable<Timestamptz>,
        ip_address -> Inet,
        otp_code -> Nullable<Text>,
        web_authn_session_data -> Nullable<Jsonb>,
    }
}

diesel::table! {
    weauth.mfa_factor_attempts (factor_id) {
        factor_id -> Uuid,
        last_totp_step -> Nullable<Int8>,
        failed_attempts -> Int4,
        locked_until -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::*;

    auth.flow_state (id) {
        id -> Uuid,
        user_id -> Nullable<Uuid>,
        auth_code -> Nullable<Text>,
        code_challenge_method -> Nullable<CodeChallengeMethod>,
        code_challenge -> Nullable<Text>,
        provider_type -> Text,
        provider_access_token -> Nullable<Text>,
        provider_refresh_token -> Nullable<Text>,
        created_at -> Nullable<Timestamptz>,
        updated_at -> Nullable<Timestamptz>,
        authentication_method -> Text,
        auth_code_issued_at -> Nullable<Timestamptz>,
        invite_token -> Nullable<Text>,
        referrer -> Nullable<Text>,
        oauth_client_state_id -> Nullable<Uuid>,
        linking_target_id -> Nullable<Uuid>,
        email_optional -> Bool,
    }
}

diesel::table! {
    weauth.wechat_session_keys (app_id, openid) {
        app_id -> Text,
        openid -> Text,
        user_id -> Uuid,
        session_key -> Text,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    weauth.wechat_access_tokens (app_id) {
        app_id -> Text,
        access_token -> Nullable<Text>,
        expires_at -> Nullable<Timestamptz>,
        lease_until -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::*;

    weauth.otp_attempts (user_id, token_type) {
        user_id -> Uuid,
        token_type -> OneTimeTokenType,
        failures -> Int4,
    }
}

diesel::table! {
    weauth.merged_users (from_user_id) {
        from_user_id -> Uuid,
        into_user_id -> Uuid,
        app_id -> Text,
        merged_at -> Timestamptz,
    }
}

diesel::joinable!(identities -> users (user_id));
diesel::joinable!(sessions -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(
    users,
    identities,
    sessions,
    refresh_tokens,
    mfa_amr_claims,
    mfa_factors,
    mfa_challenges,
    one_time_tokens
);
