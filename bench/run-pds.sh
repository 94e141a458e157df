#!/bin/sh
# run-pds.sh: the PDS benchmark, our pds against the reference PDS (@atproto/pds 0.4.217 with
# its validating fake PLC, ../shared/refpds), the same load on both, one figure a line with the
# ratio ours/reference:
#   pds.write.c16.per_s 912.4 ref 58.7 ratio 15.5x
#   pds.write.c16.p99_ms 8.12 ref 394.10 ratio 0.02x
# For rates, higher is better; for *_ms and *_MB figures, lower is better (the ratio is still
# ours/ref). Lines starting with '#' are notes.
#
# Part "pds" (bench_pds, issue 5): createAccount x BENCH_ACCOUNTS, createRecord posts at each
# concurrency of BENCH_CONC spread over the accounts, getRecord and listRecords at
# BENCH_READ_CONC, the server's memory (VmRSS idle, largest under load, VmHWM, after) and CPU,
# and the load client's own CPU (it must stay far from a core: see *.client_cpu_pct).
# Part "firehose" (bench_firehose, issue 6): BENCH_SUBS WebSocket subscribers on subscribeRepos
# while 16 writers post (events/s, MB/s, ack-to-delivery delay p50/p99, memory over the run),
# then getRepo MB/s of a repo built with applyWrites batches of 200.
#
# Both servers get exactly the environment of ../shared/refpds/start.sh (PDS_HOSTNAME=localhost,
# PDS_DEV_MODE=true, PDS_RATE_LIMITS_ENABLED=false, PDS_INVITE_REQUIRED=false, PDS_CRAWLERS
# empty, the same JWT secret, admin password and PLC rotation key), ours with our own plc
# directory, the reference with start.sh's fake PLC; each on 127.0.0.1:BENCH_PORT (its PLC on
# BENCH_PORT+1), one after the other, never at once (2 shared cores). Every step runs under
# `timeout`. A default run took 11 minutes on the loaded 2-core machine (load average 9), most
# of it the reference (its writes and its applyWrites repo build); part "pds" alone about 4.
#
# The reference needs node_modules, which must not be written into ../shared: the first run
# copies ../shared/refpds to REFPDS_DIR (default <build>/refpds) and runs `npm ci` there (builds
# better-sqlite3 from source: 2-10 minutes); later runs reuse it while its package-lock.json is
# the same as the shared one.
#
# Environment: BUILD_DIR (default <repo>/build-bench, configured Release), SHARED_DIR (<repo>/../
# shared), BENCH_PORT (28008: below the ephemeral port range, so no outbound connection of
# the run can hold it), BENCH_SECONDS per phase (5), BENCH_ACCOUNTS (16), BENCH_CONC
# (1,16,64), BENCH_READ_CONC (16), BENCH_PARTS ("pds firehose"), BENCH_SUBS (1,10,100),
# BENCH_REPO_RECORDS (100000), BENCH_REF_REPO_RECORDS (10000: the reference builds only
# 140-300 records/s by applyWrites here, so 100,000 would take 6-12 minutes; set 100000 for a
# like-for-like export size), BENCH_REF=0 to skip the reference, KEEP_DATA=1 keeps the data
# and logs (the path is printed).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build-bench}
SHARED=${SHARED_DIR:-$ROOT/../shared}
PORT=${BENCH_PORT:-28008}
PLC_PORT=$((PORT + 1))
SECS=${BENCH_SECONDS:-5}
ACCOUNTS=${BENCH_ACCOUNTS:-16}
CONC=${BENCH_CONC:-1,16,64}
RCONC=${BENCH_READ_CONC:-16}
PARTS=${BENCH_PARTS:-pds firehose}
SUBS=${BENCH_SUBS:-1,10,100}
RECORDS=${BENCH_REPO_RECORDS:-100000}
REF_RECORDS=${BENCH_REF_REPO_RECORDS:-10000}
REFPDS=${REFPDS_DIR:-$BUILD/refpds}

if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$BUILD" --target pds plc bench_pds bench_firehose -j2 >/dev/null
for b in pds/pds plc/plc bench/bench_pds bench/bench_firehose; do
  if [ ! -x "$BUILD/$b" ]; then
    echo "run-pds.sh: $b was not built" >&2
    exit 1
  fi
done

# The reference's own node_modules, outside ../shared, rebuilt when the shared lock changes.
refpds_ready() {
  [ -d "$REFPDS/node_modules/@atproto/pds" ] &&
    cmp -s "$REFPDS/package-lock.json" "$SHARED/refpds/package-lock.json"
}
if [ "${BENCH_REF:-1}" = 1 ] && ! refpds_ready; then
  echo "# installing the reference PDS into $REFPDS (npm ci, once)" >&2
  rm -rf "$REFPDS"
  cp -r "$SHARED/refpds" "$REFPDS"
  chmod -R u+w "$REFPDS"
  (cd "$REFPDS" && npm_config_nodedir=/usr timeout 1500 npm ci --no-audit --no-fund >&2)
fi

TMP=$(mktemp -d /tmp/run-pds.XXXXXX)
PIDS=""
cleanup() {
  for p in $PIDS; do kill "$p" 2>/dev/null || true; done
  sleep 1
  for p in $PIDS; do kill -9 "$p" 2>/dev/null || true; done
  if [ "${KEEP_DATA:-0}" != 1 ]; then rm -rf "$TMP"; else echo "# data and logs kept in $TMP" >&2; fi
}
trap cleanup EXIT INT TERM

# start.sh's environment, shared by both servers (the secrets fixed for the run).
export PDS_PORT="$PORT" PDS_HOSTNAME=localhost PDS_DEV_MODE=true PDS_INVITE_REQUIRED=false
export PDS_RATE_LIMITS_ENABLED=false PDS_CRAWLERS="" PDS_BLOB_UPLOAD_LIMIT=5242880
export PDS_ADMIN_PASSWORD=admin-pass LOG_ENABLED=false
PDS_JWT_SECRET=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
export PDS_JWT_SECRET PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX
unset PDS_BSKY_APP_VIEW_URL PDS_BSKY_APP_VIEW_DID PDS_MOD_SERVICE_URL PDS_MOD_SERVICE_DID \
      PDS_REPORT_SERVICE_URL PDS_REPORT_SERVICE_DID PDS_EMAIL_SMTP_URL PDS_EMAIL_FROM_ADDRESS
URL=http://127.0.0.1:$PORT

wait_health() {
  i=0
  until curl -sf -o /dev/null "$URL/xrpc/_health"; do
    i=$((i + 1))
    if [ "$i" -gt 300 ]; then echo "run-pds.sh: $1 did not start" >&2; exit 1; fi
    sleep 0.2
  done
}

# The group-commit counters, when /metrics exposes them (sum of the named counter's lines).
metric() {
  curl -sf "$URL/metrics" 2>/dev/null | awk -v n="$1" '$1 == n { s += $2 } END { print s + 0 }'
}

# $1 = side (ours|ref), $2 = pid, $3 = records for getRepo.
run_benches() {
  case " $PARTS " in *" pds "*)
    timeout 240 "$BUILD/bench/bench_pds" --url "$URL" --pid "$2" --accounts "$ACCOUNTS" \
      --seconds "$SECS" --conc "$CONC" --read-conc "$RCONC" --prefix bp >>"$TMP/$1.txt" ||
      echo "# bench_pds failed on $1 (status $?)" >>"$TMP/$1.txt"
  esac
  case " $PARTS " in *" firehose "*)
    timeout 600 "$BUILD/bench/bench_firehose" --url "$URL" --pid "$2" --subs "$SUBS" \
      --seconds "$SECS" --repo-records "$3" --prefix bf >>"$TMP/$1.txt" ||
      echo "# bench_firehose failed on $1 (status $?)" >>"$TMP/$1.txt"
  esac
}

stop() {
  kill "$1" 2>/dev/null || true
  i=0
  while kill -0 "$1" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
}

# ---- ours: plc + pds ----
mkdir -p "$TMP/ours/blocks"
"$BUILD/plc/plc" --host 127.0.0.1 --port "$PLC_PORT" --db "$TMP/plc.sqlite" >"$TMP/plc.log" 2>&1 &
PLC_PID=$!
PIDS="$PLC_PID"
PDS_DATA_DIRECTORY=$TMP/ours PDS_BLOBSTORE_DISK_LOCATION=$TMP/ours/blocks \
  PDS_DID_PLC_URL=http://127.0.0.1:$PLC_PORT "$BUILD/pds/pds" >"$TMP/pds.log" 2>&1 &
PDS_PID=$!
PIDS="$PIDS $PDS_PID"
wait_health "our pds"
C0=$(metric atp_pds_repo_commits_total)
T0=$(metric atp_pds_repo_transactions_total)
run_benches ours "$PDS_PID" "$RECORDS"
C1=$(metric atp_pds_repo_commits_total)
T1=$(metric atp_pds_repo_transactions_total)
if [ "$T1" -gt "$T0" ]; then
  awk -v c=$((C1 - C0)) -v t=$((T1 - T0)) \
    'BEGIN { printf "pds.group_commit_factor %.2f\n", c / t }' >>"$TMP/ours.txt"
else
  echo "# group-commit factor: /metrics has no atp_pds_repo_{commits,transactions}_total" \
    >>"$TMP/ours.txt"
fi
stop "$PDS_PID"
stop "$PLC_PID"
PIDS=""

# ---- the reference: start.sh (its fake PLC validates every operation) ----
: >"$TMP/ref.txt"
if [ "${BENCH_REF:-1}" = 1 ]; then
  unset PDS_DID_PLC_URL
  REFPDS_DATA=$TMP/ref PDS_PORT=$PORT PLC_PORT=$PLC_PORT "$REFPDS/start.sh" >"$TMP/ref.log" 2>&1 &
  REF_PID=$!
  PIDS="$REF_PID"
  wait_health "the reference pds"
  run_benches ref "$REF_PID" "$REF_RECORDS"
  stop "$REF_PID"
  PIDS=""
fi

# ---- pair the figures ----
grep '^#' "$TMP/ours.txt" | sed 's/^# /# ours: /' || true
grep '^#' "$TMP/ref.txt" | sed 's/^# /# ref: /' || true
awk '
  FILENAME == ARGV[1] { if ($1 !~ /^#/) ref[$1] = $2; next }
  $1 ~ /^#/ { next }
  {
    line = sprintf("%s %s", $1, $2)
    if (($1 in ref) && ref[$1] + 0 != 0) line = line sprintf(" ref %s ratio %.2fx", ref[$1], $2 / ref[$1])
    else if ($1 in ref) line = line sprintf(" ref %s", ref[$1])
    print line
    seen[$1] = 1
  }
  END { for (k in ref) if (!(k in seen)) printf "%s - ref %s\n", k, ref[k] }
' "$TMP/ref.txt" "$TMP/ours.txt"
if [ "$RECORDS" != "$REF_RECORDS" ] && [ "${BENCH_REF:-1}" = 1 ]; then
  echo "# getRepo: ours exports $RECORDS records, the reference $REF_RECORDS (BENCH_REF_REPO_RECORDS)"
fi
