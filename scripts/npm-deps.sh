#!/usr/bin/env bash
# Installs the npm packages of tests/interop (the official @atproto/* libraries used as the
# independent client in tests and benchmarks) from the lock file. Quick when up to date.
set -euo pipefail
cd "$(dirname "$0")/../tests/interop"
stamp=node_modules/.package-lock.json
if [ -f "$stamp" ] && [ "$stamp" -nt package-lock.json ] && [ "$stamp" -nt package.json ]; then
  exit 0
fi
echo "npm-deps: npm ci in tests/interop" >&2
npm ci --no-audit --no-fund --loglevel=error >/dev/null
touch "$stamp"
