-- Wrong codes entered against a user's pending one-time code, per code type. weauth's own
-- table: GoTrue neither reads nor needs it (a database handed back to GoTrue just loses the
-- counts). A new code resets its count; reaching WEAUTH_SMS_OTP_MAX_ATTEMPTS voids the code.
CREATE TABLE IF NOT EXISTS weauth.otp_attempts (
  user_id uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  token_type auth.one_time_token_type NOT NULL,
  failures integer NOT NULL DEFAULT 0,
  PRIMARY KEY (user_id, token_type)
);
