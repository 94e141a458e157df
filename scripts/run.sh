#!/usr/bin/env bash
# Installs what is missing, builds, and starts the local network on 127.0.0.1, then prints its
# URLs and waits; Ctrl-C (or SIGTERM) stops every daemon cleanly.
#
# Daemons so far: plc (the did:plc directory). The pds, relay, appview and cdn-proxy join as
# they are written. A demo runs against what is up: a did:plc identity is created with the atp
# tool, registered with the plc directory, and resolved back; a record is encoded, hashed and
# signed with the identity's key.
#
# Environment: ATP_RUN_DIR (data, default ./.run), PLC_PORT (2582), RUN_ONCE=1 (start, run the
# demo, stop: for checks and CI).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null

atp=build/tools/atp/atp
run_dir=${ATP_RUN_DIR:-$PWD/.run}
plc_port=${PLC_PORT:-2582}
plc_url="http://127.0.0.1:$plc_port"
mkdir -p "$run_dir"
pids=()

stop_all() {
  for pid in "${pids[@]+"${pids[@]}"}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]+"${pids[@]}"}"; do
    wait "$pid" 2>/dev/null || true
  done
  pids=()
}
trap 'stop_all; echo "stopped"' EXIT
trap 'exit 0' INT TERM

# wait_health URL NAME: up to 10 s for the daemon to answer.
wait_health() {
  for _ in $(seq 1 100); do
    curl -fsS "$1" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "run: $2 did not come up; its log: $run_dir/$2.log" >&2
  exit 1
}

build/plc/plc --host 127.0.0.1 --port "$plc_port" --db "$run_dir/plc.sqlite" \
  2>"$run_dir/plc.log" &
pids+=($!)
wait_health "$plc_url/_health" plc

# Demo: an identity on the local directory, and a signed record.
rot=$("$atp" key gen --curve k256 | sed -n 's/^private: //p')
key=$("$atp" key gen --curve k256)
sign_priv=$(sed -n 's/^private: //p' <<<"$key")
sign_did=$(sed -n 's/^did: //p' <<<"$key")
handle="demo-$(date +%s).test"
"$atp" plc genesis --rotation-key "$rot" --signing-key "$sign_priv" --handle "$handle" \
  --pds "http://127.0.0.1:2583" >"$run_dir/genesis.txt"
did=$(tail -n 1 "$run_dir/genesis.txt")
head -n 1 "$run_dir/genesis.txt" |
  curl -fsS -X POST -H 'content-type: application/json' --data-binary @- "$plc_url/$did" >/dev/null
"$atp" did resolve "$did" --plc "$plc_url" --local >"$run_dir/didoc.json"
printf '{"$type":"app.bsky.feed.post","text":"hello from atproto-c","createdAt":"%s"}' \
  "$(date -u +%Y-%m-%dT%H:%M:%S.000Z)" | "$atp" cbor from-json --data >"$run_dir/post.cbor"
cid=$("$atp" cid <"$run_dir/post.cbor")
sig=$("$atp" key sign "$sign_priv" --curve k256 <"$run_dir/post.cbor")
"$atp" key verify "$sign_did" "$sig" <"$run_dir/post.cbor"

cat <<MSG
atproto-c local network (127.0.0.1)
  plc directory   $plc_url           (log: $run_dir/plc.log)
  pds, relay, appview, cdn-proxy: not written yet
demo
  identity        $did  handle $handle
  resolved        $plc_url/$did  -> $(head -c 120 "$run_dir/didoc.json")...
  record CID      $cid  signed by $sign_did (verified)
tool              $atp --help
MSG

if [ "${RUN_ONCE:-0}" = 1 ]; then
  exit 0
fi
echo "running; Ctrl-C to stop"
wait
