-- One person across every WeChat channel (mini-programs now; website, official-account and
-- native-app logins later) is found by unionid, whatever the identity's provider. The
-- predicate is in every look-up (models/identity.rs `find_by_unionid`), so the planner uses
-- this partial index for any list of providers. Additive: GoTrue ignores it.
CREATE INDEX IF NOT EXISTS identities_unionid_idx ON auth.identities ((identity_data ->> 'unionid'))
  WHERE identity_data ? 'unionid';
