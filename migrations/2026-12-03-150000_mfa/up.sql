-- MFA (TOTP, WebAuthn, phone factors): GoTrue's `auth.mfa_challenges` and the indexes GoTrue
-- puts on `auth.mfa_factors` (migrations 20221003041349, 20230523124323, 20240729123726,
-- 20240806073726, 20241009103726), so factors and challenges written by either server are
-- read by the other. Everything IF NOT EXISTS: on a database GoTrue created, nothing changes.
CREATE TABLE IF NOT EXISTS auth.mfa_challenges (
  id uuid NOT NULL,
  factor_id uuid NOT NULL,
  created_at timestamptz NOT NULL,
  verified_at timestamptz NULL,
  ip_address inet NOT NULL,
  CONSTRAINT mfa_challenges_pkey PRIMARY KEY (id),
  CONSTRAINT mfa_challenges_auth_factor_id_fkey FOREIGN KEY (factor_id) REFERENCES auth.mfa_factors(id) ON DELETE CASCADE
);
ALTER TABLE auth.mfa_challenges ADD COLUMN IF NOT EXISTS otp_code text NULL;
ALTER TABLE auth.mfa_challenges ADD COLUMN IF NOT EXISTS web_authn_session_data jsonb NULL;
CREATE INDEX IF NOT EXISTS mfa_challenge_created_at_idx ON auth.mfa_challenges (created_at desc);
CREATE UNIQUE INDEX IF NOT EXISTS mfa_factors_user_friendly_name_unique ON auth.mfa_factors (friendly_name, user_id) WHERE trim(friendly_name) <> '';
DO $$ BEGIN
  -- GoTrue renamed unique_verified_phone_factor to unique_phone_factor_per_user; either is fine.
  IF NOT EXISTS (SELECT 1 FROM pg_indexes WHERE schemaname = 'auth'
                 AND indexname IN ('unique_verified_phone_factor', 'unique_phone_factor_per_user')) THEN
    CREATE UNIQUE INDEX unique_phone_factor_per_user ON auth.mfa_factors (user_id, phone);
  END IF;
END $$;

-- What only weauth keeps about a TOTP factor (GoTrue has no column for it): the last time step
-- whose code was accepted, so each code is accepted once (RFC 6238 section 5.2), and the count
-- of consecutive wrong codes, which locks verification for a while (see flows/mfa.rs). GoTrue
-- ignores this table; a factor without a row has used no step yet.
CREATE TABLE IF NOT EXISTS weauth.mfa_factor_attempts (
  factor_id uuid PRIMARY KEY REFERENCES auth.mfa_factors(id) ON DELETE CASCADE,
  last_totp_step bigint NULL,
  failed_attempts integer NOT NULL DEFAULT 0,
  locked_until timestamptz NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
