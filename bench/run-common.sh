#!/bin/sh
# run-common.sh: the common/ benchmark, ours against the official JS libraries, one figure a line:
#   cbor.decode.MBps 412.3 js 31.2 ratio 13.2x
#   k256.verify.per_s 20123.0 raw 20511.0 ratio 0.98x
# Builds bench_common in Release if needed, generates the seeded corpus once (under the build
# dir), runs the C side then the JS side (never both at once: 2 shared cores), then pairs
# figures by name. Bounded in time: each side runs under `timeout`.
# Rates are per CPU-second (the C thread's CPU time, the node process's user+system time, as
# `openssl speed` measures user time), best of 8 short rounds: the machine is shared, so wall
# time would mostly measure the other processes.
#
# Environment: BUILD_DIR (default <repo>/build-bench), BENCH_SECONDS per figure (1.5),
# BENCH_RECORDS (100000), BENCH_SEED (2024), NODE (node), OPENSSL_SPEED=1 to add the
# `openssl speed ecdsap256` figures as a second P-256 reference (about 7 s more).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build-bench}
SECS=${BENCH_SECONDS:-1.5}
N=${BENCH_RECORDS:-100000}
SEED=${BENCH_SEED:-2024}
NODE=${NODE:-node}
CORPUS=$BUILD/bench/corpus

if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$BUILD" --target bench_common -j2 >/dev/null
if [ ! -x "$BUILD/bench/bench_common" ]; then
  echo "run-common.sh: bench_common was not built (a common/ module missing?)" >&2
  exit 1
fi

if [ "$(cat "$CORPUS/corpus.stamp" 2>/dev/null)" != "$N $SEED" ]; then
  timeout 120 "$NODE" "$ROOT/bench/js/gen_corpus.mjs" "$CORPUS" "$N" "$SEED"
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM
timeout 150 "$BUILD/bench/bench_common" "$CORPUS" "$SECS" >"$TMP/c.txt"
timeout 150 "$NODE" "$ROOT/bench/js/bench_js.mjs" "$CORPUS" "$SECS" >"$TMP/js.txt"
if [ "${OPENSSL_SPEED:-0}" = 1 ]; then
  # Last line: " 256 bits ecdsa (nistp256)   0.0000s   0.0001s  sign/s  verify/s".
  timeout 30 openssl speed -seconds 3 ecdsap256 2>/dev/null | tail -1 |
    awk '{print "p256.sign.openssl_speed_per_s " $(NF-1); print "p256.verify.openssl_speed_per_s " $NF}' \
      >>"$TMP/c.txt"
fi

# Pair the figures: JS counterparts by the same name ("@lex" = @atproto/lex-cbor), and for
# ECDSA the raw library rate ("<x>.raw_per_s") measured in the same run.
awk '
  FNR == NR { js[$1] = $2; next }
  { c[$1] = $2; order[n++] = $1 }
  END {
    for (i = 0; i < n; i++) {
      k = order[i]
      if (k ~ /\.raw_per_s$/ || k ~ /openssl_speed/) continue
      line = sprintf("%s %s", k, c[k])
      if (k in js) line = line sprintf(" js %s ratio %.1fx", js[k], c[k] / js[k])
      if ((k "@lex") in js) line = line sprintf(" lex-cbor %s ratio %.1fx", js[k "@lex"], c[k] / js[k "@lex"])
      raw = k; sub(/\.per_s$/, ".raw_per_s", raw)
      if (raw != k && (raw in c)) line = line sprintf(" raw %s ratio %.2fx", c[raw], c[k] / c[raw])
      osp = k; sub(/\.per_s$/, ".openssl_speed_per_s", osp)
      if (osp != k && (osp in c)) line = line sprintf(" openssl-speed %s", c[osp])
      print line
    }
  }' "$TMP/js.txt" "$TMP/c.txt"
