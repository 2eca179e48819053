#!/usr/bin/env bash
# Runs scripts/smtp-sink.py (the tests' SMTP server) from a virtualenv under target/ that holds
# aiosmtpd from PyPI, creating it first if needed. `--install-only` only prepares the venv.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${CARGO_TARGET_DIR:-target}/smtp-sink-venv
AIOSMTPD_VERSION=1.4.6
if ! "$VENV/bin/python" -c "import aiosmtpd, sys; sys.exit(aiosmtpd.__version__ != '$AIOSMTPD_VERSION')" 2>/dev/null; then
  python3 -m venv "$VENV" || {
    # Debian's system Python keeps venv in a separate package.
    apt-get install -y -q python3-venv >/dev/null && python3 -m venv "$VENV"
  }
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "aiosmtpd==$AIOSMTPD_VERSION" >&2
fi
[ "${1:-}" = "--install-only" ] && exit 0
exec "$VENV/bin/python" scripts/smtp-sink.py "$@"
