-- weauth's own state lives in its own schema so GoTrue's `auth` schema keeps GoTrue's shape.

CREATE SCHEMA IF NOT EXISTS weauth;

-- The latest WeChat session_key per (app, openid). Needed to decrypt legacy `encryptedData`;
-- it never leaves the server.
CREATE TABLE IF NOT EXISTS weauth.wechat_session_keys (
  app_id text NOT NULL,
  openid text NOT NULL,
  user_id uuid NOT NULL REFERENCES auth.users(id) ON DELETE CASCADE,
  session_key text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (app_id, openid)
);
CREATE INDEX IF NOT EXISTS wechat_session_keys_user_id_idx ON weauth.wechat_session_keys (user_id);

-- WeChat's app access token (stable_token), shared by every weauth instance on this database.
-- `lease_until` elects the one instance that refreshes it; the others wait for its result.
CREATE TABLE IF NOT EXISTS weauth.wechat_access_tokens (
  app_id text PRIMARY KEY,
  access_token text NULL,
  expires_at timestamptz NULL,
  lease_until timestamptz NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- WeChat identities are found by unionid when a person first uses a second mini-program.
CREATE INDEX IF NOT EXISTS identities_wechat_unionid_idx ON auth.identities ((identity_data ->> 'unionid'))
  WHERE provider = 'wechat';
