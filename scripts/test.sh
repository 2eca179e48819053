#!/usr/bin/env bash
# The whole test suite: unit tests and the HTTP integration tests (real PostgreSQL on
# 127.0.0.1:5432 as user postgres, or WEAUTH_TEST_DATABASE_URL; the WeChat emulator runs
# in-process), for weauth and for the emulator crate (crates/emulator). Each test gets its own
# database, so tests run in parallel.
set -euo pipefail
cd "$(dirname "$0")/.."

# The e-mail tests read what a real SMTP server received (aiosmtpd from PyPI, in a venv
# under target/; tests/api/support.rs starts it).
bash scripts/smtp-sink.sh --install-only
cargo test --locked -p weauth -p weauth-emulator --all-targets

# Contract tests: the real JavaScript SDKs (supabase-wechat-stable-v2 2.0.8 and 2.2.0,
# @supabase/supabase-js) run unmodified against the release binaries of weauth and of the
# emulator (needs Node.js >= 20.10 with npm, and psql; see contract/run.sh).
cargo build --release --locked -p weauth -p weauth-emulator
bash contract/run.sh

# Property-based fuzzing of every documented operation against a live server: no 5xx, no
# response outside api-spec/openapi.yaml (schemathesis from PyPI, installed under target/).
bash scripts/fuzz.sh

# Reached only when every suite above passed (set -e stops at the first failure).
echo "suites: 3 passed, 0 failed"
