-- A fresh WeChat-only account merged into the existing account that owns the phone number
-- WeChat vouched for (WEAUTH_WECHAT_PHONE_MERGE). The merged account is deleted; this row lets
-- an access token that still names it (until it expires) be served as the account it became,
-- and records the merge. weauth's own table: GoTrue ignores it.
CREATE TABLE IF NOT EXISTS weauth.merged_users (
  from_user_id uuid PRIMARY KEY,
  into_user_id uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  app_id text NOT NULL,
  merged_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS merged_users_into_idx ON weauth.merged_users (into_user_id);
