#!/usr/bin/env bash
# weauth benchmarks (issue #5) and soak (issue #6). See bench/README.md.
#
#   bench/run.sh          scenarios × concurrency, their pgbench floors, the /health HTTP floor,
#                         the emulator alone, round trips per request; rewrites BENCHMARKS.md
#   bench/run.sh soak     mixed workload at concurrency 64 for SOAK_DURATION seconds (600),
#                         RSS curve and database row-count checks; replaces the Soak section
#                         of BENCHMARKS.md; exits non-zero if any check fails
#
# Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust), pgbench and psql, cargo.
# Every knob is an environment variable (defaults = the full run):
#   BENCH_WARMUP=5 BENCH_DURATION=15 BENCH_RT_DURATION=3 BENCH_CONCURRENCY="1 16 64"
#   BENCH_SCENARIOS="user refresh login_returning login_new bind_phone password"
#   BENCH_POOL_SIZE=16 BENCH_POOL_SWEEP="4 8 16 32 64" (pool sizes tried at the highest
#   concurrency for BENCH_POOL_SCENARIOS="user refresh login_returning"; empty to skip)
#   BENCH_RETURNING_USERS=256 BENCH_OUT=BENCHMARKS.md BENCH_RESULTS_DIR=bench/results
#   BENCH_PGBENCH_MODE=prepared (pgbench -M: "extended" parses every statement again, as weauth
#   does for its raw-SQL and update statements)
#   SOAK_DURATION=600 SOAK_CONCURRENCY=64 SOAK_SAMPLE=15
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODE=${1:-bench}

BENCH_WARMUP=${BENCH_WARMUP:-5}
BENCH_DURATION=${BENCH_DURATION:-15}
BENCH_RT_DURATION=${BENCH_RT_DURATION:-3}
BENCH_CONCURRENCY=${BENCH_CONCURRENCY:-"1 16 64"}
BENCH_SCENARIOS=${BENCH_SCENARIOS:-"user refresh login_returning login_new bind_phone password"}
BENCH_POOL_SIZE=${BENCH_POOL_SIZE:-16}
BENCH_POOL_SWEEP=${BENCH_POOL_SWEEP-"4 8 16 32 64"}
BENCH_POOL_SCENARIOS=${BENCH_POOL_SCENARIOS:-"user refresh login_returning"}
BENCH_RETURNING_USERS=${BENCH_RETURNING_USERS:-256}
BENCH_PGBENCH_MODE=${BENCH_PGBENCH_MODE:-prepared}
BENCH_OUT=${BENCH_OUT:-$ROOT/BENCHMARKS.md}
BENCH_RESULTS_DIR=${BENCH_RESULTS_DIR:-$ROOT/bench/results}
SOAK_DURATION=${SOAK_DURATION:-600}
SOAK_CONCURRENCY=${SOAK_CONCURRENCY:-64}
SOAK_SAMPLE=${SOAK_SAMPLE:-15}

export PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres PGSSLMODE=disable
APPID=wxbench000000000001
APPSECRET=bench-app-secret-0123456789
JWT_SECRET=bench-jwt-secret-0123456789abcdef0123456789
ARGON2_M=19456 ARGON2_T=2 ARGON2_P=1

WORK=$(mktemp -d /tmp/weauth-bench.XXXXXX)
RESULTS=$WORK/results.jsonl
CAPTURE=$WORK/sql-capture.md
DB=weauth_bench_$$_$(date +%s)
PIDS=()

log() { printf '\n== %s ==\n' "$*" >&2; }

cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  psql -qAt -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  if [ "${KEEP_WORK:-0}" = 1 ] || [ $rc -ne 0 ]; then
    echo "work directory kept: $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
    echo $((20000 + RANDOM % 20000))
}

wait_http() { # url
  for _ in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/${1##*:}") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "nothing listening on $1" >&2
  return 1
}

# --- build: snapshot the binaries, other people may rebuild target/ while we run --------------
build() {
  log "building (cargo build --release --locked -p weauth -p weauth-emulator, then -p loadgen)"
  (cd "$ROOT" && cargo build --release --locked -q -p weauth -p weauth-emulator &&
    cargo build --release --locked -q -p loadgen)
  mkdir -p "$WORK/bin"
  cp "$ROOT/target/release/weauth" "$ROOT/target/release/weauth-emulator" \
    "$ROOT/target/release/loadgen" "$WORK/bin/"
  WEAUTH=$WORK/bin/weauth
  EMULATOR=$WORK/bin/weauth-emulator
  LOADGEN=$WORK/bin/loadgen
}

# --- children run with a clean environment in an empty directory (no .env) --------------------
CHILD_ENV=(env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$WORK/home"
  GOTRUE_EXTERNAL_WECHAT_APP_ID=$APPID GOTRUE_EXTERNAL_WECHAT_SECRET=$APPSECRET
  GOTRUE_LOG_LEVEL=warn)

start_emulator() {
  EMU_PORT=$(free_port)
  mkdir -p "$WORK/home" "$WORK/cwd"
  (cd "$WORK/cwd" && exec "${CHILD_ENV[@]}" "$EMULATOR" --port "$EMU_PORT" \
    >>"$WORK/emulator.log" 2>&1) &
  EMU_PID=$!
  PIDS+=("$EMU_PID")
  EMU_URL=http://127.0.0.1:$EMU_PORT
  wait_http "$EMU_URL"
}

start_proxy() {
  PROXY_PORT=$(free_port)
  PROXY_CTL=127.0.0.1:$(free_port)
  "$LOADGEN" proxy --listen "127.0.0.1:$PROXY_PORT" --upstream 127.0.0.1:5432 \
    --control "$PROXY_CTL" >>"$WORK/proxy.log" 2>&1 &
  PROXY_PID=$!
  PIDS+=("$PROXY_PID")
  wait_http "http://$PROXY_CTL"
}

start_weauth() { # db_port (5432 direct, or the proxy's) [pool size]
  local db_port=$1 pool=${2:-$BENCH_POOL_SIZE}
  WEAUTH_PORT=$(free_port)
  (cd "$WORK/cwd" && exec "${CHILD_ENV[@]}" \
    DATABASE_URL="postgres://postgres@127.0.0.1:$db_port/$DB?sslmode=disable" \
    GOTRUE_JWT_SECRET=$JWT_SECRET GOTRUE_API_HOST=127.0.0.1 GOTRUE_API_PORT=$WEAUTH_PORT \
    GOTRUE_DB_MAX_POOL_SIZE=$pool \
    GOTRUE_EXTERNAL_WECHAT_API_URL=$EMU_URL \
    GOTRUE_RATE_LIMIT_TOKEN_REFRESH=0 GOTRUE_RATE_LIMIT_OTP=0 WEAUTH_RATE_LIMIT_PASSWORD=0 \
    WEAUTH_RATE_LIMIT_WECHAT_LOGIN=0 WEAUTH_RATE_LIMIT_WECHAT_PHONE=0 \
    WEAUTH_RATE_LIMIT_WECHAT_QRCODE=0 \
    WEAUTH_ARGON2_MEMORY_KIB=$ARGON2_M WEAUTH_ARGON2_ITERATIONS=$ARGON2_T \
    WEAUTH_ARGON2_PARALLELISM=$ARGON2_P \
    "$WEAUTH" serve >>"$WORK/weauth.log" 2>&1) &
  WEAUTH_PID=$!
  PIDS+=("$WEAUTH_PID")
  WEAUTH_URL=http://127.0.0.1:$WEAUTH_PORT
  wait_http "$WEAUTH_URL"
}

stop_weauth() {
  kill "$WEAUTH_PID" 2>/dev/null || true
  wait "$WEAUTH_PID" 2>/dev/null || true
}

create_db() {
  psql -qAt -d postgres -c "CREATE DATABASE $DB" >/dev/null
}

TAG=0
loadgen_run() { # scenario concurrency label extra-args...
  local scenario=$1 c=$2 label=$3
  shift 3
  TAG=$((TAG + 1))
  "$LOADGEN" run --scenario "$scenario" --concurrency "$c" --label "$label" --tag "$TAG" \
    --weauth "$WEAUTH_URL" --emulator "$EMU_URL" --appid $APPID --secret $APPSECRET \
    --server-pid "$WEAUTH_PID" --emulator-pid "$EMU_PID" \
    --returning-users "$BENCH_RETURNING_USERS" --out "$RESULTS" "$@"
}

machine_meta() {
  {
    echo "nproc=$(nproc)"
    echo "mem=$(free -m | awk '/^Mem:/{print $2}') MiB"
    echo "cpu=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)"
    echo "postgres=$(psql -qAt -d postgres -c 'show server_version')"
    echo "pg_settings=$(psql -qAt -d postgres -c "select string_agg(name||'='||setting||coalesce(unit,''), ', ' order by name) from pg_settings where name in ('shared_buffers','synchronous_commit','fsync','max_connections','ssl','wal_sync_method')")"
    echo "kernel=$(uname -r)"
    echo "commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    # Uncommitted changes that would be in the weauth binary (the [workspace] entry for
    # bench/loadgen in Cargo.toml/Cargo.lock does not change it).
    echo "dirty=$(git -C "$ROOT" status --porcelain -- src migrations 2>/dev/null | wc -l)"
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "uptime_before=$(uptime | sed 's/^ *//')"
    echo "top_before=$(top -bn1 -o %CPU | sed -n '8,12p' | awk '{printf "%s %s%%; ", $12, $9}')"
  } >"$WORK/meta.txt"
}

# pgbench floor: replay the endpoint's SQL (bench/pgbench/<scenario>.sql) at the same concurrency.
pgbench_floor() { # scenario c [label clients]: clients defaults to c
  local scenario=$1 c=$2 label=${3:-floor} clients=${4:-$2} script=$ROOT/bench/pgbench/$1.sql run n
  [ -f "$script" ] || return 0
  n=$clients
  case $scenario in
    login_returning) n=$BENCH_RETURNING_USERS ;;
    password) n=$((clients > 16 ? clients : 16)) ;;
    login_new) n=1 ;;
  esac
  for phase in warmup measure; do
    TAG=$((TAG + 1))
    run=$TAG
    psql -qAt -d "$DB" -v ON_ERROR_STOP=1 -c "SELECT bench.seed('$scenario', $run, $n)" >/dev/null
    local secs=$BENCH_DURATION out=$WORK/pgbench-$scenario-$c-$label-$phase.txt
    [ $phase = warmup ] && secs=$BENCH_WARMUP
    rm -f "$WORK"/pgb_log*
    (cd "$WORK" && pgbench -n -M "$BENCH_PGBENCH_MODE" -c "$clients" -j 2 -T "$secs" \
      -D run=$run -D nusers=$n -D clients=$clients -D i=0 -D s=0 \
      -l --log-prefix=pgb_log -f "$script" "$DB" >"$out" 2>&1) || {
      cat "$out" >&2
      return 1
    }
  done
  "$LOADGEN" pgbench-result --scenario "$scenario" --concurrency "$c" --label "$label" \
    --mode "$BENCH_PGBENCH_MODE, -c $clients -j 2" --stdout "$out" --logs "$WORK" --log-prefix pgb_log \
    --script "$script" --out "$RESULTS"
}

# Round trips per request and the SQL capture: weauth through the counting proxy (a short
# separate pass; throughput is measured without the proxy).
roundtrip_pass() {
  log "round trips: weauth through the counting proxy (${BENCH_RT_DURATION}s per cell)"
  start_proxy
  start_weauth "$PROXY_PORT"
  local first
  first=$(echo $BENCH_CONCURRENCY | awk '{print $1}')
  for scenario in $BENCH_SCENARIOS; do
    for c in $BENCH_CONCURRENCY; do
      extra=()
      [ "$c" = "$first" ] && extra=(--capture "$CAPTURE")
      loadgen_run "$scenario" "$c" roundtrips --warmup 1 --duration "$BENCH_RT_DURATION" \
        --proxy-control "$PROXY_CTL" "${extra[@]}"
    done
  done
  stop_weauth
}

roundtrips_main() {
  build
  create_db
  start_emulator
  roundtrip_pass
  cat "$CAPTURE"
  cp "$CAPTURE" "${CAPTURE_OUT:-$ROOT/target/sql-capture.md}"
}

bench_main() {
  machine_meta
  build
  create_db
  start_emulator
  psql -qAt -d "$DB" -c "select 1" >/dev/null

  roundtrip_pass
  psql -qAt -d "$DB" -v ON_ERROR_STOP=1 -f "$ROOT/bench/pgbench/setup.sql" >/dev/null

  # 2. Throughput, each cell on a fresh weauth process (RSS per cell), each followed by its floor.
  for scenario in health $BENCH_SCENARIOS; do
    for c in $BENCH_CONCURRENCY; do
      log "$scenario c=$c"
      start_weauth 5432
      loadgen_run "$scenario" "$c" throughput --warmup "$BENCH_WARMUP" --duration "$BENCH_DURATION"
      stop_weauth
      pgbench_floor "$scenario" "$c"
      # weauth puts c clients on BENCH_POOL_SIZE connections; pgbench at -c c opens c backends.
      # The floor at -c BENCH_POOL_SIZE shows what the database does at weauth's concurrency.
      if [ "$c" -gt "$BENCH_POOL_SIZE" ]; then
        pgbench_floor "$scenario" "$c" floor_pool "$BENCH_POOL_SIZE"
      fi
    done
  done

  # 3. Pool size: the same cells at the highest concurrency with other pool sizes.
  local cmax
  cmax=$(echo $BENCH_CONCURRENCY | awk '{print $NF}')
  for pool in $BENCH_POOL_SWEEP; do
    for scenario in $BENCH_POOL_SCENARIOS; do
      log "pool size $pool: $scenario c=$cmax"
      start_weauth 5432 "$pool"
      loadgen_run "$scenario" "$cmax" "pool:$pool" --warmup "$BENCH_WARMUP" --duration "$BENCH_DURATION"
      stop_weauth
    done
  done

  # 4. The emulator alone: its ceiling (stable_token, no codes) and at the rate of the logins
  #    and phone bindings just measured (latency from the scheduled start).
  for c in $BENCH_CONCURRENCY; do
    log "emulator alone c=$c"
    WEAUTH_PID=$EMU_PID
    loadgen_run emu_stable_token "$c" throughput --warmup 2 --duration "$BENCH_DURATION"
    for pair in emu_jscode2session:login_returning emu_phone:bind_phone; do
      if grep -q "\"scenario\":\"${pair#*:}\",\"concurrency\":$c," "$RESULTS"; then
        loadgen_run "${pair%%:*}" "$c" throughput --warmup 2 --duration "$BENCH_DURATION" \
          --rate-from "${pair#*:}" --rate-file "$RESULTS"
      fi
    done
  done

  # 5. The hashing floor of the password grant: weauth's own argon2id verification on all cores,
  #    interleaved with the other implementations bench/argon2/compare.sh measures at the same
  #    parameters (the report gives weauth / fastest); weauth's floor alone if that fails.
  log "argon2id floor: weauth and other implementations (bench/argon2/compare.sh)"
  ARGON2_M=$ARGON2_M ARGON2_T=$ARGON2_T ARGON2_P=$ARGON2_P "$ROOT/bench/argon2/compare.sh" \
    --loadgen "$LOADGEN" --threads "$(nproc)" --duration "$BENCH_DURATION" \
    --rounds "${BENCH_ARGON2_ROUNDS:-3}" --results "$RESULTS" >&2 ||
    "$LOADGEN" argon2 --threads "$(nproc)" --duration "$BENCH_DURATION" \
      --m $ARGON2_M --t $ARGON2_T --p $ARGON2_P --out "$RESULTS"

  echo "uptime_after=$(uptime | sed 's/^ *//')" >>"$WORK/meta.txt"
  # Keep the raw results of the last run next to the report (`bench/run.sh report` re-renders).
  mkdir -p "$BENCH_RESULTS_DIR"
  cp "$RESULTS" "$WORK/meta.txt" "$CAPTURE" "$BENCH_RESULTS_DIR/"
  {
    echo "command=${BENCH_COMMAND:-bench/run.sh}"
    echo "env=BENCH_WARMUP=$BENCH_WARMUP BENCH_DURATION=$BENCH_DURATION BENCH_RT_DURATION=$BENCH_RT_DURATION BENCH_POOL_SIZE=$BENCH_POOL_SIZE BENCH_CONCURRENCY=\"$BENCH_CONCURRENCY\" BENCH_RETURNING_USERS=$BENCH_RETURNING_USERS BENCH_POOL_SWEEP=\"$BENCH_POOL_SWEEP\""
    echo "pool=$BENCH_POOL_SIZE"
  } >"$BENCH_RESULTS_DIR/run.txt"
  render_report "$BENCH_RESULTS_DIR"
  log "wrote $BENCH_OUT"
}

render_report() { # directory with results.jsonl, meta.txt, sql-capture.md, run.txt
  local dir=$1
  "$LOADGEN" report --results "$dir/results.jsonl" --meta "$dir/meta.txt" \
    --capture "$dir/sql-capture.md" --analysis "$ROOT/bench/analysis.md" \
    --command "$(sed -n 's/^command=//p' "$dir/run.txt")" --env "$(sed -n 's/^env=//p' "$dir/run.txt")" \
    --pool-size "$(sed -n 's/^pool=//p' "$dir/run.txt")" --argon2 "m=$ARGON2_M KiB, t=$ARGON2_T, p=$ARGON2_P" \
    --out "$BENCH_OUT"
}

soak_main() {
  machine_meta
  build
  create_db
  start_emulator
  start_weauth 5432
  log "soak: concurrency $SOAK_CONCURRENCY for ${SOAK_DURATION}s"
  set +e
  "$LOADGEN" soak --weauth "$WEAUTH_URL" --emulator "$EMU_URL" --appid $APPID --secret $APPSECRET \
    --server-pid "$WEAUTH_PID" --concurrency "$SOAK_CONCURRENCY" --duration "$SOAK_DURATION" \
    --sample "$SOAK_SAMPLE" --database "$DB" --meta "$WORK/meta.txt" \
    --pool-size "$BENCH_POOL_SIZE" --command "${BENCH_COMMAND:-bench/run.sh soak}" \
    --env "SOAK_DURATION=$SOAK_DURATION SOAK_CONCURRENCY=$SOAK_CONCURRENCY SOAK_SAMPLE=$SOAK_SAMPLE BENCH_POOL_SIZE=$BENCH_POOL_SIZE" \
    --out "$BENCH_OUT"
  local rc=$?
  set -e
  log "soak $([ $rc = 0 ] && echo passed || echo FAILED); section written to $BENCH_OUT"
  return $rc
}

case "$MODE" in
  bench) bench_main ;;
  soak) soak_main ;;
  roundtrips) roundtrips_main ;;
  report)
    # Re-render BENCHMARKS.md from the last run's raw results (bench/results/), e.g. after
    # editing bench/analysis.md.
    (cd "$ROOT" && cargo build --release --locked -q -p loadgen)
    LOADGEN=$ROOT/target/release/loadgen
    render_report "$BENCH_RESULTS_DIR"
    ;;
  serve)
    # For profiling by hand: a fresh database, the emulator and weauth with the benchmark's
    # configuration, until interrupted. Prints what `loadgen run` needs.
    build
    create_db
    start_emulator
    start_weauth 5432
    echo "weauth $WEAUTH_URL pid $WEAUTH_PID; emulator $EMU_URL pid $EMU_PID; db $DB" >&2
    echo "$LOADGEN run --weauth $WEAUTH_URL --emulator $EMU_URL --appid $APPID --secret $APPSECRET --server-pid $WEAUTH_PID --emulator-pid $EMU_PID --scenario user --concurrency 64" >&2
    wait "$WEAUTH_PID"
    ;;
  *) echo "usage: bench/run.sh [soak|roundtrips|report|serve]" >&2; exit 2 ;;
esac
