#!/usr/bin/env bash
# Contract tests: the real JavaScript SDKs (supabase-wechat-stable-v2 2.0.8 and 2.2.0,
# @supabase/supabase-js 2.x), unmodified, against `weauth serve` and `weauth-emulator`.
# Needs Node.js >= 20.10 with npm, psql, Chromium (Debian's `chromium`, at /usr/bin/chromium or
# CHROMIUM_PATH, for the CORS browser test), PostgreSQL on 127.0.0.1:5432 (user postgres, or
# WEAUTH_TEST_DATABASE_URL) and the release binaries of weauth and of the emulator
# (cargo build --release --locked -p weauth -p weauth-emulator; or WEAUTH_BIN and
# WEAUTH_EMULATOR_BIN).
set -euo pipefail
cd "$(dirname "$0")"

# WEAUTH_BIN and WEAUTH_EMULATOR_BIN, if set, are relative to the repository root (like
# target/release/weauth).
repo="$(cd .. && pwd)"
bin="${WEAUTH_BIN:-${CARGO_TARGET_DIR:-target}/release/weauth}"
emu_bin="${WEAUTH_EMULATOR_BIN:-${CARGO_TARGET_DIR:-target}/release/weauth-emulator}"
case "$bin" in /*) ;; *) bin="$repo/$bin" ;; esac
case "$emu_bin" in /*) ;; *) emu_bin="$repo/$emu_bin" ;; esac
export WEAUTH_BIN="$bin" WEAUTH_EMULATOR_BIN="$emu_bin"
for b in "$bin" "$emu_bin"; do
  if [ ! -x "$b" ]; then
    echo "contract/run.sh: $b not found; run 'cargo build --release --locked -p weauth -p weauth-emulator' first" >&2
    exit 1
  fi
done

for tool in node npm psql; do
  command -v "$tool" >/dev/null 2>&1 || { echo "contract/run.sh: $tool not found (needs Node.js >= 20 with npm, and psql)" >&2; exit 1; }
done
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
  echo "contract/run.sh: Node.js >= 20 needed, found $(node --version)" >&2
  exit 1
fi

chromium_bin="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ ! -x "$chromium_bin" ]; then
  echo "contract/run.sh: $chromium_bin not found; install Debian's chromium (apt-get install chromium) or set CHROMIUM_PATH" >&2
  exit 1
fi
export CHROMIUM_PATH="$chromium_bin"

# playwright-core (pinned in package.json) only drives that Chromium: it downloads no browser.
npm ci --no-audit --no-fund --loglevel=error

# supabase-js 2.119 needs a global WebSocket at createClient (its realtime client), which Node
# only has by default from 22 on; Node 20.10+ has it behind a flag.
if [ "$node_major" -lt 22 ]; then
  if ! node --experimental-websocket -e 0 2>/dev/null; then
    echo "contract/run.sh: Node.js $(node --version) has no WebSocket; use Node.js 20.10 or newer" >&2
    exit 1
  fi
  export NODE_OPTIONS="--experimental-websocket ${NODE_OPTIONS:-}"
fi
# Each test file starts its own database, emulator and weauth, so files run in parallel.
exec node --test --test-concurrency=3 --test-timeout=120000 test/
