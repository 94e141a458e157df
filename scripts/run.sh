#!/usr/bin/env bash
# Installs what is missing, builds, and starts the local network on 127.0.0.1, then prints its
# URLs and waits; Ctrl-C (or SIGTERM) stops every daemon cleanly.
#
# Daemons so far: plc (the did:plc directory) and pds (accounts, sessions, repo writes and
# reads so far). The relay, appview and cdn-proxy join as they are written. A demo runs against
# what is up: a did:plc identity made with the atp tool is registered and resolved; a demo
# account is created on the pds (its DID registered on the plc), logs in and writes a post.
#
# Environment: ATP_RUN_DIR (data, default ./.run), PLC_PORT (2582), PDS_PORT (2583),
# RUN_ONCE=1 (start, run the demo, stop: for checks and CI).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null

atp=build/tools/atp/atp
run_dir=${ATP_RUN_DIR:-$PWD/.run}
plc_port=${PLC_PORT:-2582}
plc_url="http://127.0.0.1:$plc_port"
pds_port=${PDS_PORT:-2583}
pds_url="http://localhost:$pds_port"
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

# The pds, with the reference PDS's own environment (as ../shared/refpds/start.sh sets it).
mkdir -p "$run_dir/pds/blocks"
[ -s "$run_dir/pds/jwt-secret" ] || od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$run_dir/pds/jwt-secret"
[ -s "$run_dir/pds/rotation-key" ] ||
  "$atp" key gen --curve k256 | sed -n 's/^private: //p' >"$run_dir/pds/rotation-key"
PDS_PORT=$pds_port PDS_HOSTNAME=localhost PDS_DEV_MODE=true \
  PDS_DATA_DIRECTORY="$run_dir/pds" PDS_BLOBSTORE_DISK_LOCATION="$run_dir/pds/blocks" \
  PDS_JWT_SECRET="$(cat "$run_dir/pds/jwt-secret")" PDS_ADMIN_PASSWORD=admin-pass \
  PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX="$(cat "$run_dir/pds/rotation-key")" \
  PDS_DID_PLC_URL="$plc_url" PDS_INVITE_REQUIRED=false PDS_RATE_LIMITS_ENABLED=false \
  PDS_CRAWLERS= build/pds/pds 2>"$run_dir/pds.log" &
pids+=($!)
wait_health "$pds_url/xrpc/_health" pds

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

# Demo account on the pds: create (or log in again on a later run), then post.
acct="demo.test"
pw="demo-password-$(cat "$run_dir/pds/jwt-secret" | cut -c1-8)"
xrpc() { curl -fsS -H 'content-type: application/json' "$@"; }
session=$(xrpc -X POST "$pds_url/xrpc/com.atproto.server.createAccount" \
  -d "{\"handle\":\"$acct\",\"email\":\"demo@example.com\",\"password\":\"$pw\"}" 2>/dev/null ||
  xrpc -X POST "$pds_url/xrpc/com.atproto.server.createSession" \
    -d "{\"identifier\":\"$acct\",\"password\":\"$pw\"}")
json_field() { node -e 'const o=JSON.parse(require("fs").readFileSync(0,"utf8"));console.log(o[process.argv[1]])' "$1"; }
acct_did=$(json_field did <<<"$session")
token=$(json_field accessJwt <<<"$session")
post=$(xrpc -X POST -H "authorization: Bearer $token" "$pds_url/xrpc/com.atproto.repo.createRecord" \
  -d "{\"repo\":\"$acct_did\",\"collection\":\"app.bsky.feed.post\",\"record\":{\"text\":\"hello from atproto-c\",\"createdAt\":\"$(date -u +%Y-%m-%dT%H:%M:%S.000Z)\"}}")
post_uri=$(json_field uri <<<"$post")
head_rev=$(curl -fsS "$pds_url/xrpc/com.atproto.sync.getLatestCommit?did=$acct_did" | json_field rev)

cat <<MSG
atproto-c local network (127.0.0.1)
  plc directory   $plc_url           (log: $run_dir/plc.log)
  pds             $pds_url          (log: $run_dir/pds.log)
  firehose        ${pds_url/http:/ws:}/xrpc/com.atproto.sync.subscribeRepos
  relay, appview, cdn-proxy: not written yet
demo
  pds account     $acct  $acct_did  password $pw
  post            $post_uri
  repo            $pds_url/xrpc/com.atproto.sync.getRepo?did=$acct_did  (rev $head_rev)
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
