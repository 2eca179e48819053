-- Seeding for the pgbench floors (bench/run.sh runs this once in the benchmark database, after
-- the round-trip pass has created users, identities, sessions and tokens through weauth).
--
-- bench.seed(scenario, run, n) creates n users (keys run*1000 + 0..n-1), each a copy of a real
-- row weauth created (same column values, so the same row sizes), with deterministic ids
-- bench.u(key) = lpad(to_hex(key), 32, '0')::uuid, so the pgbench scripts can address them from
-- :run and :client_id without a lookup: user, WeChat identity, session (+ amr claim), first
-- refresh token 'r<key>s0' (live: never reissued, updated_at = created_at), WeChat session key; for bind_phone also a phone identity
-- (id bench.u(key + 2^40)); for password an e-mail address 'pgb-<key>@bench.example.com'.

CREATE SCHEMA IF NOT EXISTS bench;

CREATE OR REPLACE FUNCTION bench.u(k bigint) RETURNS uuid
LANGUAGE sql IMMUTABLE AS $$ SELECT lpad(to_hex(k), 32, '0')::uuid $$;

-- Inserts one row per element of `rows` into `t`: each element overrides `template`. Generated
-- columns and the columns named in `skip` (serial ids) are left to their defaults.
CREATE OR REPLACE FUNCTION bench.clone(t regclass, template jsonb, rows jsonb, skip text[] DEFAULT '{}')
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  cols text;
  sel text;
BEGIN
  SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum),
         string_agg('r.' || quote_ident(attname), ', ' ORDER BY attnum)
    INTO cols, sel
    FROM pg_attribute
   WHERE attrelid = t AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
     AND NOT (attname = ANY (skip));
  EXECUTE format(
    'INSERT INTO %s (%s) SELECT %s FROM jsonb_array_elements($2) e, jsonb_populate_record(NULL::%s, $1 || e.value) r',
    t, cols, sel, t)
  USING template, rows;
END $$;

CREATE OR REPLACE FUNCTION bench.seed(scenario text, run int, n int) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  keys bigint[] := ARRAY(SELECT run::bigint * 1000 + g FROM generate_series(0, n - 1) g);
  tu jsonb; ti jsonb; ts jsonb; ta jsonb; tr jsonb; tk jsonb;
  appid text;
BEGIN
  IF n > 1000 THEN
    RAISE EXCEPTION 'at most 1000 rows per run';
  END IF;
  -- Templates: a WeChat user if there is one (any user otherwise, e.g. a password-only run).
  SELECT to_jsonb(x) INTO tu FROM auth.users x
   ORDER BY (raw_app_meta_data->>'provider' = 'wechat') DESC, created_at LIMIT 1;
  SELECT to_jsonb(x) INTO ti FROM auth.identities x
   ORDER BY (provider = 'wechat') DESC, created_at LIMIT 1;
  SELECT to_jsonb(x) INTO ts FROM auth.sessions x ORDER BY created_at LIMIT 1;
  SELECT to_jsonb(x) INTO ta FROM auth.mfa_amr_claims x ORDER BY created_at LIMIT 1;
  SELECT to_jsonb(x) - 'id' INTO tr FROM auth.refresh_tokens x ORDER BY id LIMIT 1;
  SELECT to_jsonb(x), x.app_id INTO tk, appid FROM weauth.wechat_session_keys x LIMIT 1;
  IF tk IS NULL THEN
    appid := 'wxbench000000000001';
    tk := jsonb_build_object('app_id', appid, 'session_key', 'c2Vzc2lvbi1rZXktMTIzNDU2Nzg=',
                             'updated_at', now());
  END IF;
  IF tu IS NULL OR ti IS NULL OR ts IS NULL OR ta IS NULL OR tr IS NULL THEN
    RAISE EXCEPTION 'no template rows: run the round-trip pass (sign-ins through weauth) first';
  END IF;

  PERFORM bench.clone('auth.users', tu, (
    SELECT jsonb_agg(jsonb_build_object(
      'id', bench.u(k), 'phone', NULL, 'phone_confirmed_at', NULL,
      'email', CASE WHEN scenario = 'password' THEN 'pgb-' || k || '@bench.example.com' END,
      'email_confirmed_at', CASE WHEN scenario = 'password' THEN now() END))
    FROM unnest(keys) k));
  PERFORM bench.clone('auth.identities', ti, (
    SELECT jsonb_agg(jsonb_build_object(
      'id', bench.u(k), 'user_id', bench.u(k), 'provider_id', 'pgb-' || k,
      'identity_data', (ti->'identity_data') || jsonb_build_object(
         'sub', 'pgb-' || k, 'openid', 'pgb-' || k, 'unionid', 'pgbu-' || k)))
    FROM unnest(keys) k));
  IF scenario = 'bind_phone' THEN
    PERFORM bench.clone('auth.identities', ti, (
      SELECT jsonb_agg(jsonb_build_object(
        'id', bench.u(k + 1099511627776), 'user_id', bench.u(k), 'provider', 'phone',
        'provider_id', bench.u(k)::text,
        'identity_data', jsonb_build_object('sub', bench.u(k)::text, 'phone', '8600000000000',
                                            'phone_verified', true)))
      FROM unnest(keys) k));
  END IF;
  PERFORM bench.clone('auth.sessions', ts, (
    SELECT jsonb_agg(jsonb_build_object('id', bench.u(k), 'user_id', bench.u(k),
                                        'refreshed_at', NULL, 'not_after', NULL))
    FROM unnest(keys) k));
  PERFORM bench.clone('auth.mfa_amr_claims', ta, (
    SELECT jsonb_agg(jsonb_build_object('id', gen_random_uuid(), 'session_id', bench.u(k),
                                        'authentication_method', 'oauth'))
    FROM unnest(keys) k));
  PERFORM bench.clone('auth.refresh_tokens', tr, (
    SELECT jsonb_agg(jsonb_build_object('token', 'r' || k || 's0', 'user_id', bench.u(k)::text,
                                        'session_id', bench.u(k), 'revoked', false,
                                        'parent', NULL, 'created_at', now(), 'updated_at', now()))
    FROM unnest(keys) k), ARRAY['id']);
  PERFORM bench.clone('weauth.wechat_session_keys', tk, (
    SELECT jsonb_agg(jsonb_build_object('app_id', appid, 'openid', 'pgb-' || k,
                                        'user_id', bench.u(k)))
    FROM unnest(keys) k));
END $$;
