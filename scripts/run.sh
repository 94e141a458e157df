#!/usr/bin/env bash
# Installs what is missing, builds, and starts the local network.
# Until the daemons exist it runs the atp tool on a demo: a fresh key, a record encoded as
# DAG-CBOR, its CID, a signature over it checked against the did:key, and a TID.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
atp=build/tools/atp/atp
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

key=$("$atp" key gen --curve k256)
priv=$(sed -n 's/^private: //p' <<<"$key")
did=$(sed -n 's/^did: //p' <<<"$key")
now=$(date -u +%Y-%m-%dT%H:%M:%S.000Z)
printf '{"$type":"app.bsky.feed.post","text":"hello from atproto-c","createdAt":"%s","langs":["en"]}' \
  "$now" >"$work/post.json"
"$atp" cbor from-json --data <"$work/post.json" >"$work/post.cbor"
cid=$("$atp" cid <"$work/post.cbor")
sig=$("$atp" key sign "$priv" --curve k256 <"$work/post.cbor")
"$atp" key verify "$did" "$sig" <"$work/post.cbor"

echo "atproto-c demo (the daemons are not written yet; this is the common/ library at work)"
echo "  signing key   $did"
echo "  record        $(cat "$work/post.json")"
echo "  DAG-CBOR      $(od -An -v -tx1 "$work/post.cbor" | tr -d ' \n' | cut -c1-64)... ($(wc -c <"$work/post.cbor") bytes)"
echo "  CID           $cid"
echo "  signature     $sig (verified)"
echo "  TID           $("$atp" tid)"
echo "  tool          $atp --help"
