#!/usr/bin/env bash
# Property-based API fuzzing: schemathesis (from PyPI) generates requests from
# api-spec/openapi.yaml against a live weauth + WeChat emulator on a fresh database, and fails on
# any 5xx or any response that does not match the spec. Run by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${WEAUTH_BIN:-${CARGO_TARGET_DIR:-target}/debug/weauth}
EMU_BIN=${WEAUTH_EMULATOR_BIN:-${CARGO_TARGET_DIR:-target}/debug/weauth-emulator}
[ -x "$BIN" ] || cargo build --locked -p weauth
[ -x "$EMU_BIN" ] || cargo build --locked -p weauth-emulator
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"
EMU_BIN="$(cd "$(dirname "$EMU_BIN")" && pwd)/$(basename "$EMU_BIN")"
VENV=target/schemathesis-venv
SCHEMATHESIS_VERSION=4.32.5
if [ ! -x "$VENV/bin/schemathesis" ] || ! "$VENV/bin/schemathesis" --version | grep -q "$SCHEMATHESIS_VERSION"; then
  python3 -m venv "$VENV" || {
    # Debian's system Python keeps venv in a separate package.
    apt-get install -y -q python3-venv >/dev/null && python3 -m venv "$VENV"
  }
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

PG=${WEAUTH_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB=weauth_fuzz_$$_$RANDOM
SECRET=fuzz-secret-fuzz-secret-fuzz-secret-0123456789
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
EMU_PORT=$(free_port)
API_PORT=$(free_port)
WORK=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$PG" -q -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
psql "$PG" -q -c "CREATE DATABASE $DB"

common_env=(
  PATH="$PATH"
  GOTRUE_EXTERNAL_WECHAT_APP_ID=wxfuzz0000000000001 GOTRUE_EXTERNAL_WECHAT_SECRET=fuzz-app-secret
  GOTRUE_EXTERNAL_WECHAT_QR_CLIENT_ID=wxfuzz00000000000qr GOTRUE_EXTERNAL_WECHAT_QR_SECRET=fuzz-qr-secret
  GOTRUE_EXTERNAL_WECHAT_MP_CLIENT_ID=wxfuzz00000000000mp GOTRUE_EXTERNAL_WECHAT_MP_SECRET=fuzz-mp-secret
  GOTRUE_EXTERNAL_WECHAT_APP_CLIENT_ID=wxfuzz0000000000app GOTRUE_EXTERNAL_WECHAT_APP_SECRET=fuzz-native-secret
)
# Every per-client rate limit off: the fuzzer sends thousands of requests from one address.
no_limits=()
for var in $("$BIN" rate-limits --names); do no_limits+=("$var=0"); done
( cd "$WORK" && exec env -i "${common_env[@]}" "$EMU_BIN" --port "$EMU_PORT" ) >"$WORK/emulator.log" 2>&1 &
pids+=($!)
( cd "$WORK" && exec env -i "${common_env[@]}" \
    DATABASE_URL="${PG%/*}/$DB" GOTRUE_JWT_SECRET="$SECRET" GOTRUE_API_HOST=127.0.0.1 GOTRUE_API_PORT="$API_PORT" \
    GOTRUE_EXTERNAL_WECHAT_API_URL="http://127.0.0.1:$EMU_PORT" WEAUTH_ARGON2_MEMORY_KIB=1024 \
    WEAUTH_WECHAT_OPEN_URL="http://127.0.0.1:$EMU_PORT" GOTRUE_SECURITY_MANUAL_LINKING_ENABLED=true \
    GOTRUE_EXTERNAL_WECHAT_QR_ENABLED=true GOTRUE_EXTERNAL_WECHAT_MP_ENABLED=true GOTRUE_EXTERNAL_WECHAT_APP_ENABLED=true \
    "${no_limits[@]}" \
    "$BIN" serve ) >"$WORK/weauth.log" 2>&1 &
pids+=($!)
BASE=http://127.0.0.1:$API_PORT
for _ in $(seq 1 100); do curl -fs "$BASE/health" >/dev/null && break; sleep 0.2; done
curl -fs "$BASE/health" >/dev/null || { cat "$WORK/weauth.log"; exit 1; }

# A service-role key and a signed-in user's token, so both admin and user routes are reached.
SERVICE_KEY=$(python3 - "$SECRET" <<'PY'
import base64, hashlib, hmac, json, sys, time
b = lambda d: base64.urlsafe_b64encode(json.dumps(d, separators=(",", ":")).encode()).rstrip(b"=")
msg = b({"alg": "HS256", "typ": "JWT"}) + b"." + b({"role": "service_role", "iss": "supabase-demo", "exp": int(time.time()) + 3600})
sig = base64.urlsafe_b64encode(hmac.new(sys.argv[1].encode(), msg, hashlib.sha256).digest()).rstrip(b"=")
print((msg + b"." + sig).decode())
PY
)
USER_TOKEN=$(curl -fs -X POST "$BASE/auth/v1/signup" -H 'content-type: application/json' \
  -d '{"email":"fuzz@example.com","password":"fuzz-password"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

run() {
  "$VENV/bin/schemathesis" run api-spec/openapi.yaml --url "$BASE/auth/v1" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
    --phases fuzzing,stateful \
    --max-examples "${FUZZ_MAX_EXAMPLES:-40}" --seed 20261121 --workers 2 --request-timeout 20 \
    --suppress-health-check all -H "Authorization: Bearer $1" --no-color
}
status=0
echo "== schemathesis as a signed-in user"; run "$USER_TOKEN" || status=1
echo "== schemathesis with the service-role key"; run "$SERVICE_KEY" || status=1
if [ $status -ne 0 ]; then echo "--- weauth log (tail)"; tail -n 50 "$WORK/weauth.log"; fi
exit $status
