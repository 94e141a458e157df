#!/bin/sh
# run-repo.sh: the repository benchmark, ours (bench_repo) against @atproto/repo 0.9.1
# (bench/js/bench_repo.mjs), one figure a line with the ratio ours/theirs:
#   repo.build.records_per_s 148794.4 js 3949.0 ratio 37.7x
#   repo.build.peak_MB 157.5 js 546.4 ratio 0.29x
# Each phase (build+export, import, commits+inversion) runs in its own process on each side, so
# each peak memory (VmHWM) is that phase's own; the two sides never run at once (2 shared
# cores). Memory is measured the same way on both sides: peak_MB is the raw peak, base_MB the
# resident set right after the shared inputs are loaded (the corpus, read whole by both; the
# import phase loads none) and net_MB = peak - base. The CAR is streamed from its file in
# 64 KiB chunks on both sides. The corpus is bench/js/gen_corpus.mjs's (shared with
# run-common.sh). Both sides must arrive at the same MST root for the same records under the
# same paths: checked here.
#
# Environment: BUILD_DIR (default <repo>/build-bench), BENCH_RECORDS (100000), BENCH_SEED
# (2024), BENCH_COMMITS (10000), BENCH_JS_COMMITS (default BENCH_COMMITS: the commits peak grows
# with every commit on both sides, so its ratio is like for like only with equal counts; a
# smaller count is only for quick runs, @atproto/repo doing about 100 commits+inversions/s),
# NODE. Whole default run: about 3-4 minutes.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build-bench}
N=${BENCH_RECORDS:-100000}
SEED=${BENCH_SEED:-2024}
M=${BENCH_COMMITS:-10000}
MJS=${BENCH_JS_COMMITS:-$M}
NODE=${NODE:-node}
CORPUS=$BUILD/bench/corpus

if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$BUILD" --target bench_repo -j2 >/dev/null
if [ ! -x "$BUILD/bench/bench_repo" ]; then
  echo "run-repo.sh: bench_repo was not built (atp_repo missing?)" >&2
  exit 1
fi
if [ "$(cat "$CORPUS/corpus.stamp" 2>/dev/null)" != "$N $SEED" ]; then
  timeout 120 "$NODE" "$ROOT/bench/js/gen_corpus.mjs" "$CORPUS" "$N" "$SEED"
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP" "$CORPUS/repo_c.car" "$CORPUS/repo_js.car"' EXIT INT TERM
C="$BUILD/bench/bench_repo"
JS="$ROOT/bench/js/bench_repo.mjs"
timeout 120 "$C" "$CORPUS" build "$N" >"$TMP/c.txt"
timeout 120 "$C" "$CORPUS" import >>"$TMP/c.txt"
timeout 120 "$C" "$CORPUS" commits "$M" >>"$TMP/c.txt"
timeout 240 "$NODE" --max-old-space-size=8192 "$JS" "$CORPUS" build "$N" >"$TMP/js.txt"
timeout 120 "$NODE" --max-old-space-size=8192 "$JS" "$CORPUS" import >>"$TMP/js.txt"
timeout 480 "$NODE" --max-old-space-size=8192 "$JS" "$CORPUS" commits "$MJS" >>"$TMP/js.txt"

awk '
  FNR == NR { js[$1] = $2; next }
  { c[$1] = $2; order[n++] = $1 }
  END {
    for (i = 0; i < n; i++) {
      k = order[i]
      if (k == "repo.root") {
        print (c[k] == js[k] ? "repo.root same " c[k] : "repo.root DIFFERENT ours " c[k] " js " js[k])
        continue
      }
      line = sprintf("%s %s", k, c[k])
      if ((k in js) && k ~ /base_MB$/) line = line sprintf(" js %s", js[k])
      else if (k in js) line = line sprintf(" js %s ratio %.2fx", js[k], c[k] / js[k])
      print line
    }
  }' "$TMP/js.txt" "$TMP/c.txt"
if [ "$M" != "$MJS" ]; then
  echo "note: commits ours $M, @atproto/repo $MJS: the commits peak ratios are not like for like"
fi
