//! weauth's own WeChat tables (`weauth.wechat_session_keys`, `weauth.wechat_access_tokens`).
