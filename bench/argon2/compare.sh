#!/usr/bin/env bash
# argon2id verifications/s at weauth's cost, side by side in one run (the machine is noisy, so
# the implementations are interleaved round by round and the ratios are taken within a round):
#
#   weauth       weauth::auth::password::verify on weauth's HashPool (argon2-rust)  loadgen argon2
#   rustcrypto   RustCrypto argon2 0.5 with a kept block buffer (weauth before)     loadgen argon2
#   node-rs      @node-rs/argon2 (argon2-rust behind napi), verifySync               verify.js
#   argon2-cffi  argon2-cffi, the reference C implementation (phc-winner-argon2)    verify.py
#
# npm and PyPI packages are installed under target/argon2-compare/ (not committed); an
# implementation whose runtime or package is missing is skipped with a note.
#
# usage: bench/argon2/compare.sh [--duration S] [--rounds R] [--threads "1 2"] [--callgrind N]
#                                [--loadgen PATH] [--results FILE]
#   --duration   seconds per measurement (5)          --rounds   interleaved rounds (3)
#   --threads    thread (process) counts ("1 $(nproc)")
#   --callgrind  also count instructions per verification: valgrind on N and on 0 verifications
#                of each implementation, one thread; (I(N) - I(0)) / N. Valgrind has no AVX-512,
#                so argon2-rust runs its AVX2 fill there.
#   --loadgen    a built loadgen (default: cargo build --release -p loadgen)
#   --results    append the medians at the largest thread count to this JSON-lines file
#                (bench/run.sh): weauth as `hash_floor`, the others as `hash_floor_ref`, with
#                verifications per CPU second as `per_cpu=` in `detail`
# Environment: ARGON2_M ARGON2_T ARGON2_P (19456 2 1), NODE_RS_ARGON2 (2.2.1), ARGON2_CFFI (25.1.0)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/bench/argon2
DIR=$ROOT/target/argon2-compare
M=${ARGON2_M:-19456} T=${ARGON2_T:-2} P=${ARGON2_P:-1}
NODE_RS_VERSION=${NODE_RS_ARGON2:-2.2.1}
CFFI_VERSION=${ARGON2_CFFI:-25.1.0}
DURATION=5 ROUNDS=3 THREADS="1 $(nproc)" CALLGRIND=0 LOADGEN="" RESULTS=""
while [ $# -gt 0 ]; do
  case $1 in
    --duration) DURATION=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --callgrind) CALLGRIND=$2; shift 2 ;;
    --loadgen) LOADGEN=$2; shift 2 ;;
    --results) RESULTS=$2; shift 2 ;;
    *) echo "unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
log() { echo "[argon2 compare] $*" >&2; }
mkdir -p "$DIR"

if [ -z "$LOADGEN" ]; then
  (cd "$ROOT" && cargo build --release --locked -q -p loadgen)
  LOADGEN=$ROOT/target/release/loadgen
fi
IMPLS="weauth rustcrypto"

NODE_DIR=$DIR/node-rs-$NODE_RS_VERSION
if command -v node >/dev/null && command -v npm >/dev/null; then
  if [ ! -d "$NODE_DIR/node_modules/@node-rs/argon2" ]; then
    log "installing @node-rs/argon2@$NODE_RS_VERSION into $NODE_DIR"
    mkdir -p "$NODE_DIR"
    npm install --silent --no-audit --no-fund --prefix "$NODE_DIR" "@node-rs/argon2@$NODE_RS_VERSION" >&2 || true
  fi
  if [ -d "$NODE_DIR/node_modules/@node-rs/argon2" ]; then IMPLS="$IMPLS node-rs"; else log "skipping node-rs (npm install failed)"; fi
else
  log "skipping node-rs (no node/npm)"
fi

VENV=$DIR/venv
if command -v python3 >/dev/null; then
  if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import argon2" 2>/dev/null; then
    log "installing argon2-cffi==$CFFI_VERSION into $VENV"
    { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q "argon2-cffi==$CFFI_VERSION"; } >&2 || true
  fi
  if "$VENV/bin/python" -c "import argon2" 2>/dev/null; then IMPLS="$IMPLS argon2-cffi"; else log "skipping argon2-cffi (pip install failed)"; fi
else
  log "skipping argon2-cffi (no python3)"
fi

# One process of a non-loadgen implementation: prints {"n":..,"secs":..}.
one_process() { # impl seconds [count]
  case $1 in
    node-rs) node "$HERE/verify.js" "$NODE_DIR" "$M" "$T" "$P" "$2" ${3:+"$3"} ;;
    argon2-cffi) "$VENV/bin/python" "$HERE/verify.py" "$M" "$T" "$P" "$2" ${3:+"$3"} ;;
  esac
}

# One implementation on `threads` threads (processes for node and Python): prints
# `rps per_cpu`, verifications per wall-clock second and per CPU second (the second is less
# stretched by other load on the machine).
measure() { # impl threads
  local impl=$1 threads=$2 tmp
  tmp=$(mktemp -d)
  case $impl in
    weauth | rustcrypto)
      "$LOADGEN" argon2 --impl "$impl" --threads "$threads" --duration "$DURATION" \
        --m "$M" --t "$T" --p "$P" --out "$tmp/out.jsonl" 2>/dev/null || true
      python3 -c 'import json,sys
d = json.loads(open(sys.argv[1]).read().splitlines()[-1])
print(d["rps"], d["transactions"] / float(d["detail"].split("cpu_s=")[1]))' "$tmp/out.jsonl" ;;
    *)
      local i
      for i in $(seq "$threads"); do one_process "$impl" "$DURATION" >"$tmp/$i.json" & done
      wait
      python3 -c 'import json,sys
ds = [json.load(open(f)) for f in sys.argv[1:]]
print(sum(d["n"] / d["secs"] for d in ds), sum(d["n"] for d in ds) / sum(d["cpu_s"] for d in ds))' "$tmp"/*.json ;;
  esac
  rm -rf "$tmp"
}

RUN=$DIR/run-$(date +%Y%m%d-%H%M%S).jsonl
log "m=$M KiB t=$T p=$P, ${DURATION}s per measurement, $ROUNDS rounds, threads: $THREADS; implementations: $IMPLS"
log "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), load $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$ROUNDS"); do
  for threads in $THREADS; do
    for impl in $IMPLS; do
      read -r rps per_cpu < <(measure "$impl" "$threads" 2>/dev/null || true)
      [ -n "${per_cpu:-}" ] || { log "$impl on $threads thread(s) failed"; exit 1; }
      log "round $round, $threads thread(s): $impl $(printf '%.1f' "$rps")/s, $(printf '%.1f' "$per_cpu") per CPU second"
      echo "{\"round\":$round,\"impl\":\"$impl\",\"threads\":$threads,\"rps\":$rps,\"per_cpu\":$per_cpu}" >>"$RUN"
    done
  done
done

if [ "$CALLGRIND" -gt 0 ] && command -v valgrind >/dev/null; then
  refs() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null | sed -n 's/.*I *refs: *//p' | tr -d ,; }
  for impl in $IMPLS; do
    log "callgrind: $impl, 0 and $CALLGRIND verifications"
    case $impl in
      weauth | rustcrypto)
        lg() { refs "$LOADGEN" argon2 --impl "$impl" --threads 1 --count "$1" --m "$M" --t "$T" --p "$P" --out /dev/null; }
        i0=$(lg 0) i1=$(lg "$CALLGRIND") ;;
      node-rs)
        i0=$(refs --smc-check=all-non-file node "$HERE/verify.js" "$NODE_DIR" "$M" "$T" "$P" 0 0)
        i1=$(refs --smc-check=all-non-file node "$HERE/verify.js" "$NODE_DIR" "$M" "$T" "$P" 0 "$CALLGRIND") ;;
      argon2-cffi)
        i0=$(refs "$VENV/bin/python" "$HERE/verify.py" "$M" "$T" "$P" 0 0)
        i1=$(refs "$VENV/bin/python" "$HERE/verify.py" "$M" "$T" "$P" 0 "$CALLGRIND") ;;
    esac
    echo "{\"impl\":\"$impl\",\"callgrind\":$(( (i1 - i0) / CALLGRIND ))}" >>"$RUN"
  done
fi

python3 - "$RUN" "$RESULTS" "$M" "$T" "$P" "$NODE_RS_VERSION" "$CFFI_VERSION" <<'EOF'
import json, statistics, sys
run, results, m, t, p, node_v, cffi_v = sys.argv[1:8]
rows = [json.loads(l) for l in open(run)]
meas = [r for r in rows if "rps" in r]
instr = {r["impl"]: r["callgrind"] for r in rows if "callgrind" in r}
names = {
    "weauth": "weauth (argon2-rust on its HashPool)",
    "rustcrypto": "RustCrypto argon2 0.5 (weauth before)",
    "node-rs": f"@node-rs/argon2 {node_v} (argon2-rust, napi)",
    "argon2-cffi": f"argon2-cffi {cffi_v} (reference C)",
}
impls = list(dict.fromkeys(r["impl"] for r in meas))
threads = sorted({r["threads"] for r in meas})
rounds = sorted({r["round"] for r in meas})
def med(xs): return statistics.median(xs) if xs else None
print(f"\nargon2id m={m} KiB t={t} p={p}; median of {len(rounds)} interleaved round(s) (min-max);")
print("ratio: weauth / this implementation, median of the per-round ratios")
for metric, title in (("rps", "verifications/s (wall clock)"), ("per_cpu", "verifications per CPU second")):
    at = {(r["round"], r["impl"], r["threads"]): r[metric] for r in meas}
    print(f"\n{title}\n")
    print("| implementation | " + " | ".join(f"{n} thread(s) | ratio" for n in threads)
          + (" | instructions/verification |" if instr and metric == "rps" else " |"))
    print("|---|" + "---:|---:|" * len(threads) + ("---:|" if instr and metric == "rps" else ""))
    for i in impls:
        cells = []
        for n in threads:
            xs = [at[(r, i, n)] for r in rounds if (r, i, n) in at]
            rs = [at[(r, "weauth", n)] / at[(r, i, n)] for r in rounds if (r, i, n) in at and (r, "weauth", n) in at]
            cells.append(f"{med(xs):.1f} ({min(xs):.1f}-{max(xs):.1f})" if xs else "-")
            cells.append(f"{med(rs):.2f}" if rs else "-")
        extra = ""
        if instr and metric == "rps":
            extra = f" {instr[i] / 1e6:.1f} M |" if i in instr else " - |"
        print(f"| {names.get(i, i)} | " + " | ".join(cells) + " |" + extra)
    for n in threads:
        others = [i for i in impls if i != "weauth"]
        if not others:
            continue
        best = max(others, key=lambda i: med([at[(r, i, n)] for r in rounds if (r, i, n) in at]) or 0)
        rs = [at[(r, "weauth", n)] / at[(r, best, n)] for r in rounds if (r, best, n) in at and (r, "weauth", n) in at]
        print(f"\n{n} thread(s), {title}: fastest other: {names.get(best, best)}; weauth / fastest = {med(rs):.2f}")
at = {(r["round"], r["impl"], r["threads"]): r["rps"] for r in meas}
print(f"\nraw: {run}")
if results:
    n = threads[-1]
    with open(results, "a") as out:
        for i in impls:
            rows_i = [r for r in meas if r["impl"] == i and r["threads"] == n]
            rps = med([r["rps"] for r in rows_i])
            per_cpu = med([r["per_cpu"] for r in rows_i])
            out.write(json.dumps({
                "label": "hash_floor" if i == "weauth" else "hash_floor_ref",
                "scenario": "password", "concurrency": n, "rps": rps, "p50_ms": None, "p99_ms": None,
                "transactions": 0, "failed": 0,
                "mode": f"{names.get(i, i)}: argon2id m={m} KiB t={t} p={p}, {n} threads",
                "statements": None, "detail": f"per_cpu={per_cpu:.1f}",
            }) + "\n")
EOF
