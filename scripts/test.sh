#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test:
#   1. the plain build with warnings as errors, whole ctest suite (unit, interop, fuzz replay);
#   2. a libFuzzer build (clang) running every fuzz target for a bounded time (FUZZ_SECONDS);
#   3. the whole suite again under AddressSanitizer + UndefinedBehaviorSanitizer.
# Ends with one line "N passed, N failed" over all three.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh || exit 1
scripts/npm-deps.sh || exit 1

JOBS=${JOBS:-$(nproc)}
FUZZ_SECONDS=${FUZZ_SECONDS:-10}
export ATP_SHARED_DIR=${ATP_SHARED_DIR:-$(cd .. && pwd)/shared}
passed=0
failed=0
status=0

# run_suite NAME BUILD_DIR CTEST_ARGS... -- CMAKE_ARGS...
run_suite() {
  local name=$1 dir=$2
  shift 2
  local ctest_args=()
  while [ "$1" != "--" ]; do ctest_args+=("$1"); shift; done
  shift
  echo "== $name: configure and build ($dir)"
  if ! cmake -S . -B "$dir" "$@" >"$dir.configure.log" 2>&1; then
    cat "$dir.configure.log"; failed=$((failed + 1)); status=1; return
  fi
  if ! cmake --build "$dir" -j"$JOBS" >"$dir.build.log" 2>&1; then
    grep -E 'error|warning' "$dir.build.log" | head -50; failed=$((failed + 1)); status=1; return
  fi
  echo "== $name: ctest"
  local log="$dir.ctest.log"
  (cd "$dir" && ctest --output-on-failure -j"$JOBS" "${ctest_args[@]}") 2>&1 | tee "$log"
  local line total nfail
  line=$(grep -E 'tests passed, [0-9]+ tests failed out of [0-9]+' "$log" | tail -1)
  if [ -z "$line" ]; then
    echo "== $name: ctest printed no summary"; failed=$((failed + 1)); status=1; return
  fi
  total=$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$line")
  nfail=$(sed -E 's/.*tests passed, ([0-9]+) tests failed.*/\1/' <<<"$line")
  passed=$((passed + total - nfail))
  failed=$((failed + nfail))
  [ "$nfail" = 0 ] || status=1
}

mkdir -p build
run_suite "plain" build -- -DATP_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
run_suite "fuzz smoke (${FUZZ_SECONDS}s a target)" build-fuzz -L fuzz-smoke -- \
  -DCMAKE_C_COMPILER=clang -DATP_FUZZ=ON -DATP_FUZZ_SECONDS="$FUZZ_SECONDS" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo
run_suite "asan+ubsan" build-asan -- -DATP_SANITIZE=ON -DATP_WERROR=ON -DCMAKE_BUILD_TYPE=Debug

echo "== all suites"
echo "$passed passed, $failed failed"
exit $status
