import os
# Regenerate the floor scripts: python3 bench/pgbench/gen.py (after changing the SQL below to
# match a new capture of what weauth issues).
OUT = os.path.dirname(os.path.abspath(__file__))
UC = ", ".join(f'"auth"."users"."{c}"' for c in "id aud role email encrypted_password email_confirmed_at invited_at confirmation_sent_at recovery_sent_at email_change email_change_sent_at last_sign_in_at raw_app_meta_data raw_user_meta_data created_at updated_at phone phone_confirmed_at phone_change phone_change_sent_at confirmed_at reauthentication_sent_at banned_until deleted_at is_anonymous".split())
IC = ", ".join(f'"auth"."identities"."{c}"' for c in "id provider_id user_id identity_data provider last_sign_in_at created_at updated_at email".split())
RC = ", ".join(f'"auth"."refresh_tokens"."{c}"' for c in "id token user_id revoked updated_at parent session_id".split())
def U(v): return f"lpad(to_hex(:{v}::bigint), 32, '0')::uuid"
K = U("k")
NIL = "'00000000-0000-0000-0000-000000000000'"
def audit(action, log_type):
    # a space after every colon: pgbench would read ':word' as a variable
    return ("'{\"actor_id\": \"00000000-0000-4000-8000-000000000000\", \"actor_via_sso\": false, "
            f"\"actor_username\": \"\", \"action\": \"{action}\", \"log_type\": \"{log_type}\"}}'")
IDDATA = "'{\"sub\": \"oBench0000000000000000000000\", \"appid\": \"wxbench000000000001\", \"openid\": \"oBench0000000000000000000000\", \"unionid\": \"uBench0000000000000000000000\"}'"
SKEY = "'c2Vzc2lvbi1rZXktMTIzNDU2Nzg='"
USER_AUTH = f'''SELECT {UC}, "auth"."sessions"."id", {IC} FROM (("auth"."users" LEFT OUTER JOIN "auth"."sessions" ON (("auth"."sessions"."id" = {K}) AND ("auth"."sessions"."user_id" = "auth"."users"."id"))) LEFT OUTER JOIN "auth"."identities" ON ("auth"."identities"."user_id" = "auth"."users"."id")) WHERE ("auth"."users"."id" = {K}) ORDER BY "auth"."identities"."created_at" ASC;'''
IDENTITIES = lambda uid: f'''SELECT {IC} FROM "auth"."identities" WHERE ("auth"."identities"."user_id" = {uid}) ORDER BY "auth"."identities"."created_at" ASC;'''
USER_WITH_IDENTITIES = f'''SELECT {UC}, {IC} FROM ("auth"."users" LEFT OUTER JOIN "auth"."identities" ON ("auth"."identities"."user_id" = "auth"."users"."id")) WHERE ("auth"."users"."id" = {K}) ORDER BY "auth"."identities"."created_at" ASC;'''
USER_BY_ID = f'''SELECT {UC} FROM "auth"."users" WHERE ("auth"."users"."id" = {K}) LIMIT 1;'''
def session_create(uid, method, action, tok):
    return (f"WITH s AS ( INSERT INTO auth.sessions (id, user_id, created_at, updated_at, aal, user_agent, ip) VALUES (gen_random_uuid(), {uid}, now(), now(), 'aal1', 'weauth-bench', '127.0.0.1'::inet) RETURNING id ), "
            f"a AS ( INSERT INTO auth.mfa_amr_claims (id, session_id, created_at, updated_at, authentication_method) SELECT gen_random_uuid(), id, now(), now(), '{method}' FROM s ), "
            f"u AS ( UPDATE auth.users SET last_sign_in_at = now(), updated_at = now() WHERE id = {uid} ), "
            f"l AS (INSERT INTO auth.audit_log_entries (instance_id, id, payload, created_at, ip_address) VALUES ({NIL}, gen_random_uuid(), {audit(action, 'account')}::json, now(), coalesce('127.0.0.1', ''))) "
            f"INSERT INTO auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at, session_id) SELECT {NIL}, :{tok}, ({uid})::text, false, now(), now(), id FROM s;")
def find_identity(pid):
    return f'''SELECT {IC}, {UC} FROM ("auth"."identities" INNER JOIN "auth"."users" ON ("auth"."identities"."user_id" = "auth"."users"."id")) WHERE (("auth"."identities"."provider" = 'wechat') AND ("auth"."identities"."provider_id" = {pid})) LIMIT 1;'''
def session_key(openid, uid):
    return (f'''INSERT INTO "weauth"."wechat_session_keys" ("app_id", "openid", "user_id", "session_key", "updated_at") VALUES ('wxbench000000000001', {openid}, {uid}, {SKEY}, now()) '''
            f'''ON CONFLICT ("app_id", "openid") DO UPDATE SET "user_id" = {uid}, "session_key" = {SKEY}, "updated_at" = now();''')

HEAD = lambda what: f"-- pgbench floor for {what}: the statements weauth issues for one request, in order\n-- (captured through the counting proxy of bench/, see BENCHMARKS.md), against rows seeded by\n-- bench.seed() (bench/pgbench/setup.sql). Run by bench/run.sh with -M prepared -D run=N\n-- -D nusers=N -D clients=C -D i=0 -D s=0.\n"
files = {}
files["user.sql"] = HEAD("GET /user") + f"""\\set k :run * 1000 + :client_id
-- AuthUser extractor (src/auth/extract.rs): user, session and identities in one statement
{USER_AUTH}
"""
files["refresh.sql"] = HEAD("POST /token?grant_type=refresh_token") + f"""-- Each client follows its own chain r<key>s0 -> r<key>s1 -> ... like the load generator's workers.
\\set k :run * 1000 + :client_id
\\set p :s
\\set s :s + 1
BEGIN;
SELECT {RC}, "auth"."sessions"."not_after" FROM ("auth"."refresh_tokens" INNER JOIN "auth"."sessions" ON ("auth"."sessions"."id" = "auth"."refresh_tokens"."session_id")) WHERE ("auth"."refresh_tokens"."token" = 'r' || :k || 's' || :p) LIMIT 1 FOR UPDATE \\gset
{USER_WITH_IDENTITIES}
WITH r AS ( UPDATE auth.refresh_tokens SET revoked = true, updated_at = now() WHERE id = :id ), s AS ( UPDATE auth.sessions SET refreshed_at = (now() AT TIME ZONE 'UTC'), updated_at = now() WHERE id = :session_id ), l AS (INSERT INTO auth.audit_log_entries (instance_id, id, payload, created_at, ip_address) VALUES ({NIL}, gen_random_uuid(), {audit('token_refreshed', 'token')}::json, now(), '')) INSERT INTO auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at, parent, session_id) VALUES ({NIL}, 'r' || :k || 's' || :s, :user_id, false, now(), now(), :token, :session_id);
SELECT "auth"."mfa_amr_claims"."authentication_method", "auth"."mfa_amr_claims"."updated_at" FROM "auth"."mfa_amr_claims" WHERE ("auth"."mfa_amr_claims"."session_id" = :session_id) ORDER BY "auth"."mfa_amr_claims"."updated_at" DESC;
COMMIT;
"""
files["login_returning.sql"] = HEAD("GET /wechat_mini/login (returning user)") + f"""-- Client c logs in users (c + clients*i) mod nusers in turn, like the load generator's
-- round-robin over its returning users.
\\set i :i + 1
\\set k :run * 1000 + (:client_id + :clients * :i) % :nusers
\\set tok random(1, 9223372036854775806)
BEGIN;
{find_identity("'pgb-' || :k")}
UPDATE "auth"."identities" SET "identity_data" = {IDDATA}, "last_sign_in_at" = now(), "updated_at" = now() WHERE ("auth"."identities"."id" = {K});
{session_key("'pgb-' || :k", K)}
{session_create(K, 'oauth', 'login', 'tok')}
{IDENTITIES(K)}
COMMIT;
"""
NU = U("u")
files["login_new.sql"] = HEAD("GET /wechat_mini/login (first-time user)") + f"""-- A new openid/unionid and user id per transaction (random 63-bit u).
\\set tok random(1, 9223372036854775806)
\\set u random(1, 9223372036854775806)
BEGIN;
{find_identity("'pgn-' || :u")}
SELECT pg_advisory_xact_lock(hashtextextended('wechat|pgnu-' || :u, 0));
{find_identity("'pgn-' || :u")}
SELECT {IC} FROM "auth"."identities" WHERE (("auth"."identities"."provider" = 'wechat') AND identity_data->>'unionid' = 'pgnu-' || :u) ORDER BY "auth"."identities"."created_at" ASC LIMIT 1;
INSERT INTO "auth"."users" ("instance_id", "id", "aud", "role", "email", "phone", "encrypted_password", "email_confirmed_at", "phone_confirmed_at", "confirmation_sent_at", "confirmation_token", "recovery_token", "email_change_token_new", "email_change", "raw_app_meta_data", "raw_user_meta_data", "created_at", "updated_at", "banned_until", "is_anonymous") VALUES ({NIL}, {NU}, 'authenticated', 'authenticated', DEFAULT, DEFAULT, '', DEFAULT, DEFAULT, DEFAULT, '', '', '', '', '{{"provider": "wechat", "providers": ["wechat"]}}', '{{}}', now(), now(), DEFAULT, false) RETURNING {UC};
INSERT INTO "auth"."identities" ("id", "provider_id", "user_id", "identity_data", "provider", "last_sign_in_at", "created_at", "updated_at") VALUES (gen_random_uuid(), 'pgn-' || :u, {NU}, {IDDATA}, 'wechat', now(), now(), now()) RETURNING {IC};
{session_key("'pgn-' || :u", NU)}
{session_create(NU, 'oauth', 'user_signedup', 'tok')}
{IDENTITIES(NU)}
COMMIT;
"""
KP = U("kp")
files["bind_phone.sql"] = HEAD("GET /wechat_mini/bind_phone") + f"""-- Each client binds a new number (87 + key + counter) to its own user, like the load
-- generator's workers.
\\set k :run * 1000 + :client_id
\\set kp :k + 1099511627776
\\set i :i + 1
\\set ph 8700000000000 + :k * 100000 + :i
-- AuthUser extractor
{USER_AUTH}
BEGIN;
SELECT {UC} FROM "auth"."users" WHERE ("auth"."users"."phone" = :ph) LIMIT 1;
UPDATE "auth"."users" SET "phone" = :ph, "phone_confirmed_at" = now(), "phone_change" = '', "updated_at" = now() WHERE ("auth"."users"."id" = {K});
SELECT {IC} FROM "auth"."identities" WHERE (("auth"."identities"."user_id" = {K}) AND ("auth"."identities"."provider" = 'phone')) LIMIT 1;
UPDATE "auth"."identities" SET "identity_data" = '{{"sub": "00000000-0000-4000-8000-000000000000", "phone": "8613800000000", "phone_verified": true}}', "updated_at" = now() WHERE ("auth"."identities"."id" = {KP});
{USER_BY_ID}
UPDATE "auth"."users" SET "raw_app_meta_data" = '{{"provider": "wechat", "providers": ["wechat", "phone"]}}' WHERE ("auth"."users"."id" = {K});
{USER_WITH_IDENTITIES}
COMMIT;
"""
files["password.sql"] = HEAD("POST /token?grant_type=password (SQL only, no hashing)") + f"""\\set i :i + 1
\\set k :run * 1000 + (:client_id + :clients * :i) % :nusers
\\set tok random(1, 9223372036854775806)
SELECT {UC} FROM "auth"."users" WHERE (((lower("auth"."users"."email") = 'pgb-' || :k || '@bench.example.com') AND ("auth"."users"."aud" = 'authenticated')) AND ("auth"."users"."is_sso_user" = false)) LIMIT 1;
BEGIN;
{session_create(K, 'password', 'login', 'tok')}
{IDENTITIES(K)}
COMMIT;
"""
for name, text in files.items():
    open(os.path.join(OUT, name), "w").write(text)
print("ok")
