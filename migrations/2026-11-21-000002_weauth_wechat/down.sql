DROP INDEX IF EXISTS auth.identities_wechat_unionid_idx;
DROP TABLE IF EXISTS weauth.wechat_access_tokens;
DROP TABLE IF EXISTS weauth.wechat_session_keys;
DROP SCHEMA IF EXISTS weauth;
