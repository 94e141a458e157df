#!/usr/bin/env bash
# Fails if any C source uses a banned call (STYLE.md §2): strcpy strcat sprintf vsprintf gets
# atoi strtok rand alloca. VLAs are caught by -Wvla.
set -uo pipefail
cd "$(dirname "$0")/.."
pattern='(^|[^A-Za-z0-9_])(strcpy|strcat|sprintf|vsprintf|gets|atoi|strtok|rand|alloca)[[:space:]]*\('
hits=$(git ls-files -co --exclude-standard -- '*.c' '*.h' | grep -v node_modules |
  xargs grep -nE "$pattern" 2>/dev/null | grep -vE '^\S+:[0-9]+:\s*(/\*|\*|//)')
if [ -n "$hits" ]; then
  echo "banned calls:"
  echo "$hits"
  echo "0 passed, 1 failed"
  exit 1
fi
echo "no banned calls in $(git ls-files -co --exclude-standard -- '*.c' '*.h' | grep -vc node_modules) files"
