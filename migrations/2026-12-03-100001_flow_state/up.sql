-- GoTrue's auth.flow_state (migrations 20230322519590, 20230402418590, 20240306115329 and
-- 20260115000000), for OAuth sign-ins and the PKCE exchange. Every statement is IF NOT EXISTS,
-- so a database GoTrue created (with any of those migrations applied) ends up the same.
DO $$ BEGIN
  CREATE TYPE auth.code_challenge_method AS ENUM ('s256', 'plain');
EXCEPTION
  WHEN duplicate_object THEN NULL;
END $$;

CREATE TABLE IF NOT EXISTS auth.flow_state (
  id uuid PRIMARY KEY,
  user_id uuid NULL,
  auth_code text NULL,
  code_challenge_method auth.code_challenge_method NULL,
  code_challenge text NULL,
  provider_type text NOT NULL,
  provider_access_token text NULL,
  provider_refresh_token text NULL,
  created_at timestamptz NULL,
  updated_at timestamptz NULL
);
ALTER TABLE auth.flow_state ADD COLUMN IF NOT EXISTS authentication_method text NOT NULL DEFAULT 'oauth';
ALTER TABLE auth.flow_state ALTER COLUMN authentication_method DROP DEFAULT;
ALTER TABLE auth.flow_state ADD COLUMN IF NOT EXISTS auth_code_issued_at timestamptz NULL;
ALTER TABLE auth.flow_state
  ADD COLUMN IF NOT EXISTS invite_token text NULL,
  ADD COLUMN IF NOT EXISTS referrer text NULL,
  ADD COLUMN IF NOT EXISTS oauth_client_state_id uuid NULL,
  ADD COLUMN IF NOT EXISTS linking_target_id uuid NULL,
  ADD COLUMN IF NOT EXISTS email_optional boolean NOT NULL DEFAULT false;
-- GoTrue's implicit flow keeps a row without PKCE fields (20260115000000).
ALTER TABLE auth.flow_state
  ALTER COLUMN code_challenge DROP NOT NULL,
  ALTER COLUMN code_challenge_method DROP NOT NULL,
  ALTER COLUMN auth_code DROP NOT NULL;
CREATE INDEX IF NOT EXISTS idx_auth_code ON auth.flow_state (auth_code);
CREATE INDEX IF NOT EXISTS idx_user_id_auth_method ON auth.flow_state (user_id, authentication_method);
CREATE INDEX IF NOT EXISTS flow_state_created_at_idx ON auth.flow_state (created_at DESC);
COMMENT ON TABLE auth.flow_state IS 'Stores metadata for all OAuth/SSO login flows';
