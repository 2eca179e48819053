#!/usr/bin/env bash
# Runs the official auth-js test suite (supabase/supabase-js, packages/core/auth-js) against
# weauth. The suite is fetched code and is never committed: export it outside this repository,
#   git --git-dir=<mirror of supabase/supabase-js> archive HEAD tsconfig.base.json packages/core/auth-js | tar -x -C /tmp/authjs
# then:  bash scripts/auth-js.sh /tmp/authjs/packages/core/auth-js [test files...]
#        (or AUTHJS_DIR=...; SUITE=cli (default, test/*.test.ts as `nx test:auth`), docker
#        (test/docker-tests, as `nx test:docker`) or all)
# It installs the package's npm dependencies in that directory, builds the release binaries,
# starts a fresh database, the emulator and weauth with the settings the suite's Supabase CLI
# config (test/supabase/config.toml) and docker-compose (infra/docker-compose.yml) set, runs
# jest --runInBand, and prints pass/fail counts per file. Ports are the ones the suite
# hard-codes: 54321 (CLI, /auth/v1) and 9999/9998/9997/9996 (docker), so they must be free.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
AUTHJS_DIR=$(cd "${1:-${AUTHJS_DIR:?give the exported auth-js package directory}}" && pwd)
[ $# -gt 0 ] && shift
SUITE=${SUITE:-cli}
DB_SERVER=${WEAUTH_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
WORK=$(mktemp -d /tmp/weauth-authjs-XXXXXX)
DB=weauth_authjs_$(date +%s)
PIDS=()

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$DB_SERVER" -X -q -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 || true
  echo "logs: $WORK"
}
trap cleanup EXIT

(cd "$REPO" && cargo build --release --locked -p weauth -p weauth-emulator)

cd "$AUTHJS_DIR"
# tsconfig.test.json extends the monorepo's tsconfig.base.json: export it with the package.
[ -f ../../../tsconfig.base.json ] || { echo "export tsconfig.base.json too: git archive HEAD tsconfig.base.json packages/core/auth-js"; exit 1; }
# Its package.json names pnpm `catalog:` versions (from the monorepo's pnpm-workspace.yaml):
# replace them with those versions so plain npm can install it. typedoc is only for docs.
if [ ! -d node_modules/jest ]; then
  node -e '
    const fs = require("fs"); const p = JSON.parse(fs.readFileSync("package.json"));
    const cat = { typescript: "~5.8.3", jest: "30.4.2", "ts-jest": "^29.4.9", "@types/jest": "30.0.0",
                  "@types/node": "20.19.9", prettier: "^3.6.2" };
    delete p.devDependencies.typedoc;
    for (const k of Object.keys(p.devDependencies)) if (p.devDependencies[k] === "catalog:") p.devDependencies[k] = cat[k];
    fs.writeFileSync("package.json", JSON.stringify(p, null, 2));'
  npm install --no-audit --no-fund --loglevel=error
fi
[ -f test/supabase/signing_keys.json ] || node test/generate-signing-keys.js

psql "$DB_SERVER" -X -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$DB\""
DB_URL="${DB_SERVER%/*}/$DB"

# The SMS provider is Aliyun pointed at the emulator (the suite's Twilio is not offered).
SMS_ENV=(WEAUTH_SMS_ALIYUN_ACCESS_KEY_ID=LTAItestAccessKey01 WEAUTH_SMS_ALIYUN_ACCESS_KEY_SECRET=authjs-aliyun-secret
         WEAUTH_SMS_ALIYUN_SIGN_NAME=authjs WEAUTH_SMS_ALIYUN_TEMPLATE_CODE=SMS_465000001)
EMU_PORT=${AUTHJS_EMULATOR_PORT:-54399}
env -i PATH="$PATH" "${SMS_ENV[@]}" GOTRUE_LOG_LEVEL=info \
  "$TARGET/release/weauth-emulator" --port "$EMU_PORT" --host 127.0.0.1 >"$WORK/emulator.log" 2>&1 &
PIDS+=($!)

start_weauth() { # name port jwt-secret extra VAR=value...
  local name=$1 port=$2 secret=$3; shift 3
  env -i PATH="$PATH" NO_COLOR=1 DATABASE_URL="$DB_URL" GOTRUE_API_HOST=127.0.0.1 GOTRUE_API_PORT="$port" \
    GOTRUE_JWT_SECRET="$secret" GOTRUE_JWT_EXP=3600 GOTRUE_LOG_LEVEL=info WEAUTH_ARGON2_MEMORY_KIB=1024 \
    GOTRUE_EXTERNAL_PHONE_ENABLED=true GOTRUE_SMS_PROVIDER=aliyun WEAUTH_SMS_ALIYUN_ENDPOINT="http://127.0.0.1:$EMU_PORT" \
    "${SMS_ENV[@]}" "$@" "$TARGET/release/weauth" serve >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 300); do
    curl -fs "http://127.0.0.1:$port/health" >/dev/null && return 0
    kill -0 "${PIDS[-1]}" 2>/dev/null || { tail -20 "$WORK/$name.log"; exit 1; }
    sleep 0.1
  done
  echo "weauth $name did not start"; tail -20 "$WORK/$name.log"; exit 1
}

# A compose service's GOTRUE_JWT_KEYS (the suite's own test keys), read from its compose file.
compose_keys() {
  node -e '
    const y = require("fs").readFileSync("infra/docker-compose.yml", "utf8");
    const s = y.split(/\n  (?=\w+:)/).find((b) => b.startsWith(process.argv[1] + ":"));
    process.stdout.write(/GOTRUE_JWT_KEYS: \x27(.*)\x27/.exec(s)[1]);' "$1"
}

if [ "$SUITE" != docker ]; then # test/supabase/config.toml
  start_weauth cli 54321 super-secret-jwt-token-with-at-least-32-characters-long \
    GOTRUE_JWT_KEYS="$(node -e 'process.stdout.write(JSON.stringify(require("./test/supabase/signing_keys.json")))')" \
    GOTRUE_SITE_URL=http://127.0.0.1:3000 GOTRUE_URI_ALLOW_LIST=https://127.0.0.1:3000,http://localhost:5173 \
    GOTRUE_MAILER_AUTOCONFIRM=true GOTRUE_SMS_AUTOCONFIRM=true GOTRUE_EXTERNAL_ANONYMOUS_USERS_ENABLED=true \
    GOTRUE_PASSWORD_MIN_LENGTH=6 GOTRUE_SECURITY_REFRESH_TOKEN_ROTATION_ENABLED=true \
    GOTRUE_SECURITY_REFRESH_TOKEN_REUSE_INTERVAL=10 GOTRUE_SMS_MAX_FREQUENCY=1s GOTRUE_SMS_TEST_OTP=1234567890:123456 \
    WEAUTH_RATE_LIMIT_PASSWORD=100 GOTRUE_RATE_LIMIT_OTP=${AUTHJS_RATE_LIMIT_OTP:-100} GOTRUE_RATE_LIMIT_VERIFY=100 \
    GOTRUE_RATE_LIMIT_ANONYMOUS_USERS=100 GOTRUE_RATE_LIMIT_TOKEN_REFRESH=300 GOTRUE_RATE_LIMIT_SMS_SENT=100 \
    GOTRUE_MFA_WEB_AUTHN_ENROLL_ENABLED=true GOTRUE_MFA_WEB_AUTHN_VERIFY_ENABLED=true GOTRUE_WEBAUTHN_RP_ID=localhost \
    GOTRUE_WEBAUTHN_RP_DISPLAY_NAME="auth-js tests" GOTRUE_WEBAUTHN_RP_ORIGINS=http://localhost:5173
fi
if [ "$SUITE" != cli ]; then # infra/docker-compose.yml
  D=37c304f8-51aa-419a-a1af-06154e63707a
  start_weauth gotrue 9999 "$D" GOTRUE_SITE_URL=http://localhost:9999 GOTRUE_URI_ALLOW_LIST=https://supabase.io/docs \
    GOTRUE_MAILER_AUTOCONFIRM=false GOTRUE_SMS_AUTOCONFIRM=false
  start_weauth autoconfirm 9998 "$D" GOTRUE_JWT_KEYS="$(compose_keys autoconfirm)" GOTRUE_SITE_URL=http://localhost:9998 \
    GOTRUE_MAILER_AUTOCONFIRM=true GOTRUE_SMS_AUTOCONFIRM=true GOTRUE_EXTERNAL_ANONYMOUS_USERS_ENABLED=true
  start_weauth disabled 9997 "$D" GOTRUE_DISABLE_SIGNUP=true GOTRUE_SITE_URL=http://localhost:9997 \
    GOTRUE_MAILER_AUTOCONFIRM=false GOTRUE_EXTERNAL_PHONE_ENABLED=false GOTRUE_EXTERNAL_EMAIL_ENABLED=false
  start_weauth asymmetric 9996 Z7-AyPyChGNcQsX16cPBV-pPBo4q-zckDxkq1VZjATo \
    GOTRUE_JWT_KEYS="$(compose_keys autoconfirm_with_asymmetric_keys)" GOTRUE_SITE_URL=http://localhost:9996 \
    GOTRUE_MAILER_AUTOCONFIRM=true GOTRUE_SMS_AUTOCONFIRM=true
fi

run_jest() { # config, files...
  local out=$WORK/jest-$1.json; shift
  nice npx jest --config "$CONFIG" --runInBand --forceExit --coverage=false --json --outputFile="$out" "$@" \
    >"$WORK/jest-$SUITE_NOW.log" 2>&1 || true
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1]));
    const t = [];
    for (const f of r.testResults) {
      const c = { passed: 0, failed: 0, pending: 0 };
      for (const a of f.assertionResults) c[a.status === "passed" ? "passed" : a.status === "failed" ? "failed" : "pending"]++;
      t.push([require("path").relative(process.cwd(), f.name), c.passed, c.failed, c.pending, f.assertionResults.length ? "" : (f.message || "").split("\n")[0].slice(0, 80)]);
      for (const a of f.assertionResults) if (a.status === "failed") console.log("FAIL " + a.fullName);
    }
    console.log("\n| file | passed | failed | skipped | note |\n| --- | ---: | ---: | ---: | --- |");
    for (const x of t) console.log("| " + x.join(" | ") + " |");
    console.log(`| total | ${r.numPassedTests} | ${r.numFailedTests} | ${r.numPendingTests} | |`);' "$out"
}
for SUITE_NOW in cli docker; do
  [ "$SUITE" = all ] || [ "$SUITE" = "$SUITE_NOW" ] || continue
  CONFIG=jest.config.cli.js; [ "$SUITE_NOW" = docker ] && CONFIG=jest.config.docker.js
  echo "== auth-js $SUITE_NOW suite against weauth"
  run_jest "$SUITE_NOW" "$@"
done
