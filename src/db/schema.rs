//! Diesel's view of the tables weauth reads and writes. Written by hand to match
//! `migrations/` (GoTrue's `auth` schema plus weauth's own `weauth` schema); columns weauth never
//! touches are left out, which diesel allows.

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
        created_at -> Nullable<Timestamptz>,
        updated_at -> Nullable<Timestamptz>,
        phone -> Nullable<Text>,
        phone_confirmed_at -> Nullable<Timestamptz>,
        phone_change -> Nullable<Text>,
        phone_change_sent_at -> Nullable<Timestamptz>,
        confirmed_at -> Nullable<Timestamptz>,
        reauthentication_sent_at -> Nullable<Timestamptz>,
        banned_until -> Nullable<Timestamptz>,
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
    auth.sessions (id) {
        id -> Uuid,
        user_id -> Uuid,
        created_at -> Nullable<Timestamptz>,
        updated_at -> Nullable<Timestamptz>,
        not_after -> Nullable<Timestamptz>,
        refreshed_at -> Nullable<Timestamp>,
        user_agent -> Nullable<Text>,
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

diesel::joinable!(identities -> users (user_id));
diesel::joinable!(sessions -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(
    users,
    identities,
    sessions,
    refresh_tokens,
    mfa_amr_claims
);
