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
#   BENCH_SCENARIOS="user refresh login_returning login_new bind_phone password signup otp
#   oauth_callback mfa_verify"
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
BENCH_SCENARIOS=${BENCH_SCENARIOS:-"user refresh login_returning login_new bind_phone password signup otp oauth_callback mfa_verify"}
BENCH_POOL_SIZE=${BENCH_POOL_SIZE:-16}
BENCH_POOL_SWEEP=${BENCH_POOL_SWEEP-"4 8 16 32 64"}
BENCH_POOL_SCENARIOS=${BENCH_POOL_SCENARIOS:-"user refresh login_returning"}
BENCH_RETURNING_USERS=${BENCH_RETURNING_USERS:-256}
BENCH_PGBENCH_MODE=${BENCH_PGBENCH_MODE:-prepared}
BENCH_OUT=${BENCH_OUT:-$ROOT/BENCHMARKS.md}
BENCH_RESULTS_DIR=${BENCH_RESULTS_DIR:-$ROOT/bench/results}
# Instructions per request under callgrind: scenario:requests (empty: skip), and the scenarios
# whose per-function profile is kept.
BENCH_INSTR=${BENCH_INSTR-"health:2000 user:2000 refresh:1000 login_returning:1000 password:20"}
BENCH_INSTR_PROFILES=${BENCH_INSTR_PROFILES-"user refresh"}
SOAK_DURATION=${SOAK_DURATION:-600}
SOAK_CONCURRENCY=${SOAK_CONCURRENCY:-64}
SOAK_SAMPLE=${SOAK_SAMPLE:-15}

export PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres PGSSLMODE=disable
APPID=wxbench000000000001
APPSECRET=bench-app-secret-0123456789
QR_APPID=wxbenchqr000000001 # the website login (wechat_qr) of the oauth_callback cell
QR_SECRET=bench-qr-secret-0123456789
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

wait_http() { # url [tries of 50 ms]
  for _ in $(seq 1 "${2:-200}"); do
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
# Both weauth and the emulator read the WeChat apps and the SMS account from these (the emulator's
# built-in development Aliyun account).
CHILD_ENV=(env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$WORK/home"
  GOTRUE_EXTERNAL_WECHAT_APP_ID=$APPID GOTRUE_EXTERNAL_WECHAT_SECRET=$APPSECRET
  GOTRUE_EXTERNAL_WECHAT_QR_CLIENT_ID=$QR_APPID GOTRUE_EXTERNAL_WECHAT_QR_SECRET=$QR_SECRET
  WEAUTH_SMS_ALIYUN_ACCESS_KEY_ID=LTAIweauthDevKey WEAUTH_SMS_ALIYUN_ACCESS_KEY_SECRET=weauth-dev-aliyun-secret
  WEAUTH_SMS_ALIYUN_SIGN_NAME=weauth WEAUTH_SMS_ALIYUN_TEMPLATE_CODE=SMS_000000001
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

# weauth's environment for the benchmark (every rate limit off; SMS through the emulator's Aliyun
# API with no resend interval; the WeChat website login against the emulator).
weauth_env() { # db_port pool
  WEAUTH_ENV=("${CHILD_ENV[@]}"
    DATABASE_URL="postgres://postgres@127.0.0.1:$1/$DB?sslmode=disable"
    GOTRUE_JWT_SECRET=$JWT_SECRET GOTRUE_API_HOST=127.0.0.1 GOTRUE_API_PORT=$WEAUTH_PORT
    GOTRUE_DB_MAX_POOL_SIZE=$2
    GOTRUE_EXTERNAL_WECHAT_API_URL=$EMU_URL WEAUTH_WECHAT_OPEN_URL=$EMU_URL
    GOTRUE_EXTERNAL_WECHAT_QR_ENABLED=true GOTRUE_SITE_URL=http://localhost:3000
    GOTRUE_SMS_PROVIDER=aliyun WEAUTH_SMS_ALIYUN_ENDPOINT=$EMU_URL GOTRUE_SMS_MAX_FREQUENCY=0s
    GOTRUE_RATE_LIMIT_TOKEN_REFRESH=0 GOTRUE_RATE_LIMIT_OTP=0 WEAUTH_RATE_LIMIT_PASSWORD=0
    WEAUTH_RATE_LIMIT_WECHAT_LOGIN=0 WEAUTH_RATE_LIMIT_WECHAT_PHONE=0
    WEAUTH_RATE_LIMIT_WECHAT_QRCODE=0 GOTRUE_RATE_LIMIT_ANONYMOUS_USERS=0
    GOTRUE_RATE_LIMIT_VERIFY=0 GOTRUE_RATE_LIMIT_SMS_SENT=0 WEAUTH_RATE_LIMIT_SMS_PER_NUMBER=0
    GOTRUE_MFA_RATE_LIMIT_CHALLENGE_AND_VERIFY=0
    WEAUTH_ARGON2_MEMORY_KIB=$ARGON2_M WEAUTH_ARGON2_ITERATIONS=$ARGON2_T
    WEAUTH_ARGON2_PARALLELISM=$ARGON2_P)
}

start_weauth() { # db_port (5432 direct, or the proxy's) [pool size]
  local db_port=$1 pool=${2:-$BENCH_POOL_SIZE}
  WEAUTH_PORT=$(free_port)
  weauth_env "$db_port" "$pool"
  (cd "$WORK/cwd" && exec "${WEAUTH_ENV[@]}" \
    "$WEAUTH" serve >>"$WORK/weauth.log" 2>&1) &
  WEAUTH_PID=$!
  PIDS+=("$WEAUTH_PID")
  WEAUTH_URL=http://127.0.0.1:$WEAUTH_PORT
  wait_http "$WEAUTH_URL"
}

# weauth under callgrind, counting from the start; `callgrind_control --zero` then `--dump`
# around the measured phase bound the count to it.
start_weauth_callgrind() { # scenario
  WEAUTH_PORT=$(free_port)
  weauth_env 5432 "$BENCH_POOL_SIZE"
  (cd "$WORK/cwd" && exec "${WEAUTH_ENV[@]}" valgrind --tool=callgrind \
    --callgrind-out-file="$WORK/cg/$1.%p.out" "$WEAUTH" serve >>"$WORK/weauth-callgrind.log" 2>&1) &
  WEAUTH_PID=$!
  PIDS+=("$WEAUTH_PID")
  WEAUTH_URL=http://127.0.0.1:$WEAUTH_PORT
  wait_http "$WEAUTH_URL" 2400
}

# Instructions per request of weauth itself (every thread of the process, not PostgreSQL or the
# load generator), for a fixed number of requests at concurrency 1 after a warm-up of a tenth
# as many; independent of the machine's load. Writes $WORK/instructions.jsonl and, for
# BENCH_INSTR_PROFILES, the per-function top lists (inclusive, then self) in
# $WORK/callgrind-<scenario>.txt.
instructions_pass() {
  if [ -z "$BENCH_INSTR" ]; then return 0; fi
  if ! command -v valgrind >/dev/null; then
    echo "valgrind is not installed: no instruction counts" >&2
    return 0
  fi
  log "instructions per request: weauth under valgrind --tool=callgrind"
  mkdir -p "$WORK/cg"
  local item scenario n dump
  for item in $BENCH_INSTR; do
    scenario=${item%%:*} n=${item#*:}
    log "callgrind: $scenario, $n requests"
    start_weauth_callgrind "$scenario"
    loadgen_run "$scenario" 1 instructions --requests "$n" --warmup-requests $(((n + 9) / 10)) \
      --before-measure "callgrind_control --zero $WEAUTH_PID >/dev/null" \
      --after-measure "callgrind_control --dump=measured $WEAUTH_PID >/dev/null"
    stop_weauth
    dump=$(grep -l '^desc: Trigger: dump measured' "$WORK/cg/$scenario.$WEAUTH_PID.out"* | head -1)
    python3 - "$scenario" "$n" "$dump" "$RESULTS" >>"$WORK/instructions.jsonl" <<'PY'
import json, sys
scenario, n, dump, results = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
total = None
for line in open(dump):
    if line.startswith("summary:"):
        total = int(line.split()[1])
run = [json.loads(l) for l in open(results) if '"label":"instructions"' in l][-1]
print(json.dumps({"label": "instructions", "scenario": scenario, "requests": run["requests"],
                  "ok": run["ok"], "instructions": total,
                  "per_request": total / max(run["requests"], 1)}))
PY
    tail -1 "$WORK/instructions.jsonl" >&2
    if [[ " $BENCH_INSTR_PROFILES " == *" $scenario "* ]]; then
      {
        echo "# callgrind_annotate --inclusive=yes: weauth, $scenario, $n requests at c=1 after warm-up"
        echo "# (instructions of the measured phase, all threads; release build, commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null))"
        callgrind_annotate --inclusive=yes --threshold=100 "$dump" 2>/dev/null | sed -n '1,250p'
        echo
        echo "# callgrind_annotate (exclusive, self cost): the same dump"
        callgrind_annotate --inclusive=no --threshold=100 "$dump" 2>/dev/null | sed -n '/^Ir  *file:function/,$p' | sed -n '1,80p'
      } >"$WORK/callgrind-$scenario.txt"
    fi
  done
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
    --qr-appid $QR_APPID --server-pid "$WEAUTH_PID" --emulator-pid "$EMU_PID" \
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
    login_new | signup) n=1 ;;
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
  # What bench/pgbench/gen.py reads to regenerate the floors.
  mkdir -p "$BENCH_RESULTS_DIR"
  cp "$CAPTURE" "${CAPTURE_OUT:-$BENCH_RESULTS_DIR/sql-capture.md}"
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

  # 6. Instructions per request under callgrind.
  instructions_pass

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
  rm -f "$BENCH_RESULTS_DIR"/instructions.jsonl "$BENCH_RESULTS_DIR"/callgrind-*.txt
  cp "$WORK"/instructions.jsonl "$WORK"/callgrind-*.txt "$BENCH_RESULTS_DIR/" 2>/dev/null || true
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
    --instructions "$dir/instructions.jsonl" --compared "$ROOT/bench/compared.md" \
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
  instructions)
    # Only the callgrind pass; keeps its results in BENCH_RESULTS_DIR (instructions.jsonl,
    # callgrind-<scenario>.txt) for `bench/run.sh report`.
    build
    create_db
    start_emulator
    instructions_pass
    mkdir -p "$BENCH_RESULTS_DIR"
    rm -f "$BENCH_RESULTS_DIR"/callgrind-*.txt
    cp "$WORK"/instructions.jsonl "$WORK"/callgrind-*.txt "$BENCH_RESULTS_DIR/"
    cat "$WORK/instructions.jsonl"
    ;;
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
  *) echo "usage: bench/run.sh [soak|roundtrips|instructions|report|serve]" >&2; exit 2 ;;
esac
