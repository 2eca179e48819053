DROP INDEX IF EXISTS auth.identities_unionid_idx;
