#!/usr/bin/env bash
# A/B comparison of two weauth binaries on the same database, alternating rounds, for the
# experiments quoted in BENCHMARKS.md (the patches in this directory, applied to a copy of the
# tree and built there; src/ of the repository is never changed):
#
#   git worktree add /tmp/wa HEAD && (cd /tmp/wa && git apply bench/experiments/user-one-hop.patch \
#     && cargo build --release) ; cp /tmp/wa/target/release/weauth /tmp/weauth-B
#   cargo build --release && cp target/release/weauth /tmp/weauth-A
#   bench/experiments/ab.sh /tmp/weauth-A /tmp/weauth-B            # SCEN, ROUNDS, DUR, C, EXTRA
#
# EXTRA adds environment to both weauth processes (e.g. EXTRA=MALLOC_MMAP_THRESHOLD_=131072).
set -euo pipefail
A=$1 B=$2
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
(cd "$ROOT" && cargo build --release --locked -q -p weauth-emulator -p loadgen)
L=$ROOT/target/release/loadgen
EMULATOR=$ROOT/target/release/weauth-emulator
export PGHOST=127.0.0.1 PGUSER=postgres PGSSLMODE=disable
DB=weauth_ab_$$
WORK=$(mktemp -d /tmp/weauth-ab.XXXXXX)
psql -qd postgres -c "create database $DB"
EMU=
cleanup() {
  set +e
  [ -n "$EMU" ] && kill "$EMU" 2>/dev/null
  psql -qd postgres -c "drop database if exists $DB with (force)"
  rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"
ENVS=(env -i PATH=/usr/bin:/bin GOTRUE_EXTERNAL_WECHAT_APP_ID=wxbench000000000001
  GOTRUE_EXTERNAL_WECHAT_SECRET=bench-app-secret-0123456789 GOTRUE_LOG_LEVEL=warn)
"${ENVS[@]}" "$EMULATOR" --port 39200 >/dev/null 2>&1 &
EMU=$!
sleep 0.5
TAG=100
for round in ${ROUNDS:-1 2 3}; do
  for bin in "$A" "$B"; do
    # shellcheck disable=SC2086
    "${ENVS[@]}" ${EXTRA:-} DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB?sslmode=disable" \
      GOTRUE_JWT_SECRET=bench-jwt-secret-0123456789abcdef0123456789 GOTRUE_API_HOST=127.0.0.1 \
      GOTRUE_API_PORT=39201 GOTRUE_DB_MAX_POOL_SIZE=16 GOTRUE_EXTERNAL_WECHAT_API_URL=http://127.0.0.1:39200 \
      GOTRUE_RATE_LIMIT_TOKEN_REFRESH=0 GOTRUE_RATE_LIMIT_OTP=0 WEAUTH_RATE_LIMIT_PASSWORD=0 \
      WEAUTH_RATE_LIMIT_WECHAT_LOGIN=0 WEAUTH_RATE_LIMIT_WECHAT_PHONE=0 "$bin" serve >/dev/null 2>&1 &
    P=$!
    sleep 1.5
    for sc in ${SCEN:-user refresh login_returning}; do
      TAG=$((TAG + 1))
      printf 'round %s %s: ' "$round" "$(basename "$bin")"
      "$L" run --weauth http://127.0.0.1:39201 --emulator http://127.0.0.1:39200 \
        --appid wxbench000000000001 --secret bench-app-secret-0123456789 --server-pid $P \
        --emulator-pid $EMU --scenario "$sc" --concurrency "${C:-64}" --warmup 3 \
        --duration "${DUR:-10}" --tag $TAG 2>&1 | grep "c=${C:-64}:"
      echo "   threads: $(ls /proc/$P/task | wc -l)"
    done
    kill $P
    wait $P 2>/dev/null || true
  done
done
