"""Regenerates the pgbench floor scripts bench/pgbench/<scenario>.sql from a SQL capture.

    python3 bench/pgbench/gen.py [capture]    (default: bench/results/sql-capture.md)

`bench/run.sh roundtrips` (and every full run) writes the capture: the statements weauth issued
for one request of each scenario, as the counting proxy saw them, with the types of their bound
parameters. Each floor replays exactly those statements, in order, with the same SQL text and
the same BEGIN/COMMIT, except that every placeholder `$n` becomes a pgbench expression cast to
the type weauth binds (`(<value>)::uuid`): pgbench sends its parameters untyped, and PostgreSQL
would infer other types (or none) for some of them. Run with `-M prepared`, each statement is
parsed once per connection.

What this file says per scenario is only where the values come from (SPEC): the rows
bench.seed() (setup.sql) created for each client, fresh values for writes. Parameters without
an entry take a default by type (`now()` for timestamps, `'{}'` for jsonb, false, 1); uuid and
text parameters must be given. When weauth's SQL changes, rerun the round-trip pass and this
script; it stops with the statement and parameter it cannot fill, or when a statement's shape
(its `key`) is no longer where SPEC expects it.
"""

import os
import re
import sys

OUT = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(OUT))
CAPTURE = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "bench", "results", "sql-capture.md")

# ---- values --------------------------------------------------------------------------------------
NIL = "'00000000-0000-0000-0000-000000000000'"


def U(var):
    """bench.u(key) inline: the deterministic id seeded rows have (32 hex digits)."""
    return f"lpad(to_hex(:{var}::bigint), 32, '0')"


K = U("k")
NU = U("u")
NOW = "now()"
# weauth.in_time(deadline): the request's 503 instant (db::fast_path); later than any transaction.
DEADLINE = "now() + interval '5 seconds'"
APPID = "'wxbench000000000001'"
SKEY = "'c2Vzc2lvbi1rZXktMTIzNDU2Nzg='"
# JSON literals keep a space after every colon: pgbench reads ':word' as a variable.
IDDATA = ("'{\"sub\": \"oBench0000000000000000000000\", \"appid\": \"wxbench000000000001\", "
          "\"openid\": \"oBench0000000000000000000000\", \"unionid\": \"uBench0000000000000000000000\"}'")
HASH = "'$argon2id$v=19$m=19456,t=2,p=1$YmVuY2gtc2FsdC0xMjM0NQ$w4WMoJ2pLJbx2pBJ2Ge/1SgPzHq8QaZb3QJ5yE6SxKw'"


def session(first, method, action, token="'t' || :tok"):
    """The 18 parameters of models::sign_in::session_ctes (session and its deadline, amr claim,
    audit entry, refresh token), in the order weauth's statement numbers them."""
    vals = ["gen_random_uuid()", NOW, NOW, "'aal1'", "'weauth-bench'", "'127.0.0.1'", DEADLINE, NOW, NOW,
            f"'{method}'", f"'{action}'", "'account'", NOW, "'127.0.0.1'", f"'{action}'", token,
            NOW, NOW]
    return {first + i: v for i, v in enumerate(vals)}


def user_json(uid, email="NULL", password="''", provider="wechat"):
    confirmed = NOW if email != "NULL" else "NULL"
    return (f"jsonb_build_object('instance_id', {NIL}, 'id', {uid}, 'aud', 'authenticated', "
            f"'role', 'authenticated', 'email', {email}, 'phone', NULL, 'encrypted_password', {password}, "
            f"'email_confirmed_at', {confirmed}, 'confirmation_token', '', 'recovery_token', '', "
            f"'email_change_token_new', '', 'email_change', '', "
            f"'raw_app_meta_data', jsonb_build_object('provider', '{provider}', 'providers', jsonb_build_array('{provider}')), "
            f"'raw_user_meta_data', '{{}}'::jsonb, 'created_at', {NOW}, 'updated_at', {NOW}, "
            f"'is_anonymous', false, 'last_sign_in_at', {NOW})")


def identity_json(uid, provider, provider_id, data):
    return (f"jsonb_build_object('id', gen_random_uuid(), 'provider_id', {provider_id}, 'user_id', {uid}, "
            f"'identity_data', {data}, 'provider', '{provider}', 'last_sign_in_at', {NOW}, "
            f"'created_at', {NOW}, 'updated_at', {NOW})")


def by_identity(provider_id, action):
    """models::sign_in::by_identity: WeChat mini-program identity `provider_id`."""
    return {1: "'wechat'", 2: provider_id, 4: f"{IDDATA}::jsonb", 9: APPID, 10: provider_id,
            11: SKEY, 13: APPID, **session(14, "oauth", action)}


USER_RECORD = {1: K, 2: K}  # AuthUser extractor: session id, user id (seeded with the same key)

# ---- what each floor replays -------------------------------------------------------------------
# head: pgbench meta-commands run first; stmts: per bound statement of the capture, in order,
# (key that its SQL must contain, {parameter number: value}).
SPEC = {
    "user": dict(
        what="GET /user",
        head=[r"\set k :run * 1000 + :client_id"],
        stmts=[("session_found", USER_RECORD)],
    ),
    "refresh": dict(
        what="POST /token?grant_type=refresh_token",
        note="Each client follows its own chain r<key>s0 -> r<key>s1 -> ... like the load generator's workers.",
        head=[r"\set k :run * 1000 + :client_id", r"\set p :s", r"\set s :s + 1"],
        stmts=[("amr_json", {1: "'r' || :k || 's' || :p", 4: DEADLINE, 8: "'r' || :k || 's' || :s",
                             11: "'token_refreshed'", 12: "'token'", 14: "'token_refreshed'"})],
    ),
    "login_returning": dict(
        what="GET /wechat_mini/login (returning user)",
        note="Client c logs in users (c + clients*i) mod nusers in turn, like the load generator's round-robin.",
        head=[r"\set i :i + 1", r"\set k :run * 1000 + (:client_id + :clients * :i) % :nusers",
              r"\set tok random(1, 9223372036854775806)"],
        stmts=[("FOR NO KEY UPDATE", by_identity("'pgb-' || :k", "login"))],
    ),
    "login_new": dict(
        what="GET /wechat_mini/login (first-time user)",
        note="A new openid/unionid and user id per transaction (random 63-bit u).",
        head=[r"\set tok random(1, 9223372036854775806)", r"\set u random(1, 9223372036854775806)"],
        stmts=[
            ("FOR NO KEY UPDATE", by_identity("'pgn-' || :u", "login")),
            ("pg_advisory_xact_lock", {1: "'wechat|pgnu-' || :u"}),
            ("jsonb_populate_record(NULL::auth.users", {
                1: user_json(NU), 2: "'wechat'", 3: "'pgn-' || :u", 4: "'pgnu-' || :u",
                5: "ARRAY['wechat', 'wechat_qr', 'wechat_mp', 'wechat_app']", 6: "'pgnu-' || :u",
                7: identity_json(NU, "wechat", "'pgn-' || :u", f"{IDDATA}::jsonb"),
                8: identity_json(NU, "wechat", "'pgn-' || :u", f"{IDDATA}::jsonb"),
                9: APPID, 10: "'pgn-' || :u", 11: SKEY, 13: APPID,
                **session(14, "oauth", "user_signedup")}),
        ],
    ),
    "bind_phone": dict(
        what="GET /wechat_mini/bind_phone",
        note="Each client binds a new number (87 + key + counter) to its own user, like the load generator's workers.",
        head=[r"\set k :run * 1000 + :client_id", r"\set i :i + 1",
              r"\set ph 8700000000000 + :k * 100000 + :i"],
        stmts=[
            ("session_found", USER_RECORD),
            ("phone_confirmed_at", {
                1: ":ph", 4: "'{\"providers\": [\"wechat\", \"phone\"]}'", 5: K, 6: ":ph", 7: K,
                8: DEADLINE,
                10: f"jsonb_build_object('sub', {K}, 'phone', :ph::text, 'phone_verified', true)",
                11: f"jsonb_build_object('sub', {K}, 'phone', :ph::text, 'phone_verified', true)",
                15: K}),
        ],
    ),
    "password": dict(
        what="POST /token?grant_type=password (SQL only, no hashing)",
        head=[r"\set i :i + 1", r"\set k :run * 1000 + (:client_id + :clients * :i) % :nusers",
              r"\set tok random(1, 9223372036854775806)"],
        stmts=[
            ("lower(\"auth\".\"users\".\"email\")", {
                1: NIL, 2: "'pgb-' || :k || '@bench.example.com'", 3: "'authenticated'"}),
            ("deleted_at IS NULL", {3: K, **session(4, "password", "login")}),
        ],
    ),
    "signup": dict(
        what="POST /signup (autoconfirm; SQL only, no hashing)",
        note="A new address and user id per transaction (random 63-bit u).",
        head=[r"\set tok random(1, 9223372036854775806)", r"\set u random(1, 9223372036854775806)"],
        stmts=[
            ("lower(x.email)", {
                1: user_json(NU, "'pgs-' || :u || '@bench.example.com'", HASH, "email"),
                2: "'pgs-' || :u || '@bench.example.com'", 3: "'authenticated'",
                4: identity_json(NU, "email", NU, f"jsonb_build_object('sub', {NU}, 'email', 'pgs-' || :u || '@bench.example.com', 'email_verified', true)"),
                5: identity_json(NU, "email", NU, f"jsonb_build_object('sub', {NU}, 'email', 'pgs-' || :u || '@bench.example.com', 'email_verified', true)"),
                6: "NULL", 7: "NULL", 8: "NULL", 10: "NULL",
                **session(11, "password", "user_signedup")}),
        ],
    ),
}

DEFAULTS = {"timestamptz": NOW, "timestamp": "now()::timestamp", "jsonb": "'{}'", "json": "'{}'",
            "bool": "false", "int8": "1", "int4": "0", "int2": "0"}


# ---- the capture ---------------------------------------------------------------------------------
def read_capture(path):
    """{scenario: [("Q", text) | ("B", sql, [types])]}"""
    out, scenario = {}, None
    line_re = re.compile(r"^c\d+ (Q|P|B|T|S)  (?:\[([^\]]+)\] )?(.*)$")
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if line.startswith("### "):
            scenario = line.split()[1]
            out[scenario] = []
            continue
        m = line_re.match(line)
        if not m or scenario is None:
            continue
        kind, _name, rest = m.groups()
        if kind == "Q":
            out[scenario].append(("Q", rest))
        elif kind == "B":
            out[scenario].append(("B", rest, []))
        elif kind == "T" and out[scenario] and out[scenario][-1][0] == "B":
            out[scenario][-1][2].extend(t.strip() for t in rest.split(","))
    return out


def replay(scenario, n, sql, types, values):
    used = sorted({int(x) for x in re.findall(r"\$(\d+)", sql)})
    if used and used != list(range(1, len(types) + 1)):
        sys.exit(f"{scenario} statement {n}: placeholders {used} but {len(types)} parameter types")
    extra = set(values) - set(used)
    if extra:
        sys.exit(f"{scenario} statement {n}: SPEC gives ${sorted(extra)} the statement does not have")
    if re.search(r"(?<![:\w]):[A-Za-z_]", sql):
        sys.exit(f"{scenario} statement {n}: ':word' outside a string; pgbench would take it for a variable")

    def sub(m):
        i = int(m.group(1))
        ty = types[i - 1]
        if i in values:
            v = values[i]
        elif ty in DEFAULTS:
            v = DEFAULTS[ty]
        else:
            sys.exit(f"{scenario} statement {n}: no value for ${i} ({ty}) in SPEC")
        if ty.startswith("oid:"):
            sys.exit(f"{scenario} statement {n}: ${i} has type {ty}: name it in proxy.rs type_name")
        return f"({v})::{ty}"

    return re.sub(r"\$(\d+)", sub, sql)


def main():
    capture = read_capture(CAPTURE)
    written = []
    for scenario, spec in SPEC.items():
        if scenario not in capture:
            print(f"{scenario}: not in {CAPTURE}, floor left as it is", file=sys.stderr)
            continue
        steps = capture[scenario]
        binds = [s for s in steps if s[0] == "B"]
        if len(binds) != len(spec["stmts"]):
            sys.exit(f"{scenario}: the capture has {len(binds)} bound statements, SPEC {len(spec['stmts'])}")
        lines = [
            f"-- pgbench floor for {spec['what']}: the statements weauth issues for one request, in order,",
            "-- as captured by the counting proxy (bench/results/sql-capture.md), each placeholder a typed",
            "-- pgbench expression; generated by bench/pgbench/gen.py, do not edit. Rows seeded by bench.seed()",
            "-- (bench/pgbench/setup.sql); bench/run.sh runs it with -M prepared -D run=N -D nusers=N",
            "-- -D clients=C -D i=0 -D s=0.",
        ]
        if spec.get("note"):
            lines.append(f"-- {spec['note']}")
        lines += spec["head"]
        n = 0
        for step in steps:
            if step[0] == "Q":
                lines.append(step[1] + ";")
                continue
            key, values = spec["stmts"][n]
            n += 1
            if key not in step[1]:
                sys.exit(f"{scenario} statement {n}: expected one containing {key!r}, the capture has: {step[1][:200]}")
            lines.append(replay(scenario, n, step[1], step[2], values) + ";")
        open(os.path.join(OUT, f"{scenario}.sql"), "w").write("\n".join(lines) + "\n")
        written.append(scenario)
    missing = [s for s in capture if s not in SPEC]
    if missing:
        print(f"no floor (not in SPEC): {', '.join(missing)}", file=sys.stderr)
    print("wrote " + ", ".join(f"{s}.sql" for s in written))


main()
