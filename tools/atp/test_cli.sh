#!/usr/bin/env bash
# test_cli.sh ATP: the atp tool end to end: exit statuses, outputs byte for byte, reasons on
# stderr. Expected values come from ../shared (spec worked examples and interop vectors).
set -u
atp=$1
shared=${ATP_SHARED_DIR:-$(dirname "$0")/../../../shared}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0

ok() { pass=$((pass + 1)); echo "ok - $1"; }
bad() { fail=$((fail + 1)); echo "not ok - $1"; }
# check NAME EXPECTED ACTUAL
check() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: expected '$2', got '$3'"; fi; }
# status NAME EXPECTED_STATUS COMMAND...
status() {
  local name=$1 want=$2
  shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"
  local got=$?
  if [ "$got" = "$want" ]; then ok "$name"; else bad "$name: exit $got, wanted $want ($(cat "$tmp/err"))"; fi
}

# syntax
status "syntax handle valid" 0 "$atp" syntax handle alice.example.com XX.LCS.MIT.EDU
status "syntax handle invalid" 1 "$atp" syntax handle alice.example.com -bad.example.com
grep -q "invalid handle" "$tmp/err" && ok "syntax reason on stderr" || bad "syntax reason on stderr"
status "syntax did" 0 "$atp" syntax did did:plc:z72i7hdynmk6r22z27h6tvur did:web:example.com
status "syntax did invalid" 1 "$atp" syntax did DID:plc:abc
status "syntax nsid" 0 "$atp" syntax nsid app.bsky.feed.post
status "syntax tid" 0 "$atp" syntax tid 3jzfcijpj2z2a
status "syntax tid invalid" 1 "$atp" syntax tid 3jzfcijpj2z2
status "syntax rkey" 0 "$atp" syntax rkey self
status "syntax aturi" 0 "$atp" syntax aturi at://did:plc:abc/app.bsky.feed.post/3jzfcijpj2z2a
status "syntax datetime" 0 "$atp" syntax datetime 1985-04-12T23:20:50.123Z
status "syntax datetime impossible" 1 "$atp" syntax datetime 1985-13-12T23:20:50.123Z
status "syntax language" 0 "$atp" syntax language pt-BR
status "syntax cid" 0 "$atp" syntax cid bafyreidykglsfhoixmivffc5uwhcgshx4j465xwqntbmu43nb2dzqwfvae
status "syntax unknown kind" 2 "$atp" syntax color red

# cbor and cid: the spec's worked example {"hello":"world"}
printf '{"hello":"world"}' | "$atp" cbor from-json >"$tmp/hw.cbor"
check "cbor from-json bytes" "a16568656c6c6f65776f726c64" "$(od -An -v -tx1 "$tmp/hw.cbor" | tr -d ' \n')"
check "cid of cbor" "bafyreidykglsfhoixmivffc5uwhcgshx4j465xwqntbmu43nb2dzqwfvae" "$("$atp" cid <"$tmp/hw.cbor")"
check "cbor to-json compact" '{"hello":"world"}' "$("$atp" cbor to-json --compact <"$tmp/hw.cbor")"
check "cid --raw" "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e" \
  "$(printf 'hello world' | "$atp" cid --raw)"
printf '{"b":1,"a":{"$link":"bafyreidykglsfhoixmivffc5uwhcgshx4j465xwqntbmu43nb2dzqwfvae"},"c":{"$bytes":"aGk"}}' |
  "$atp" cbor from-json | "$atp" cbor to-json --compact >"$tmp/rt.json"
check "json round trip (links, bytes, key order)" \
  '{"a":{"$link":"bafyreidykglsfhoixmivffc5uwhcgshx4j465xwqntbmu43nb2dzqwfvae"},"b":1,"c":{"$bytes":"aGk"}}' \
  "$(cat "$tmp/rt.json")"
printf '{"a":1.5}' >"$tmp/float.json"
status "cbor from-json rejects floats" 1 sh -c "\"$atp\" cbor from-json <\"$tmp/float.json\""
printf '\xa2\x61\x62\x01\x61\x61\x02' >"$tmp/unsorted.cbor"
status "cbor to-json rejects unsorted keys" 1 sh -c "\"$atp\" cbor to-json <\"$tmp/unsorted.cbor\""
status "cid rejects non-cbor" 1 sh -c "printf 'hello' | \"$atp\" cid"
status "cbor from-json --data rejects non-object" 1 sh -c "printf '[1]' | \"$atp\" cbor from-json --data"

# keys: W3C did:key vectors, generate, sign, verify
priv=$(node -e 'const v=require(process.argv[1]);console.log(v[0].privateKeyBytesHex)' "$shared/interop/crypto/w3c_didkey_K256.json")
want=$(node -e 'const v=require(process.argv[1]);console.log(v[0].publicDidKey)' "$shared/interop/crypto/w3c_didkey_K256.json")
check "key pub k256 (w3c vector)" "$want" "$("$atp" key pub "$priv" --curve k256)"
for curve in k256 p256; do
  "$atp" key gen --curve $curve >"$tmp/key"
  p=$(sed -n 's/^private: //p' "$tmp/key")
  d=$(sed -n 's/^did: //p' "$tmp/key")
  check "key gen $curve: pub matches" "$d" "$("$atp" key pub "$p" --curve $curve)"
  sig=$(printf 'message' | "$atp" key sign "$p" --curve $curve)
  status "key verify $curve" 0 sh -c "printf 'message' | \"$atp\" key verify \"$d\" \"$sig\""
  status "key verify $curve tampered" 1 sh -c "printf 'messagE' | \"$atp\" key verify \"$d\" \"$sig\""
done
status "key pub bad hex" 1 "$atp" key pub zz --curve k256

# car: the atproto monorepo fixture
node -e 'const f=require(process.argv[1])[0];process.stdout.write(Buffer.from(f.car,"base64"))' \
  "$shared/atproto-fixtures/repo/car-file-fixtures.json" >"$tmp/fixture.car"
root=$(node -e 'console.log(require(process.argv[1])[0].root)' "$shared/atproto-fixtures/repo/car-file-fixtures.json")
nblocks=$(node -e 'console.log(require(process.argv[1])[0].blocks.length)' "$shared/atproto-fixtures/repo/car-file-fixtures.json")
status "car verify fixture" 0 "$atp" car verify "$tmp/fixture.car"
"$atp" car ls "$tmp/fixture.car" >"$tmp/ls"
grep -q "^root $root" "$tmp/ls" && ok "car ls root" || bad "car ls root: $(head -2 "$tmp/ls")"
check "car ls block count" "$nblocks" "$(grep -c '^block ' "$tmp/ls")"
cp "$tmp/fixture.car" "$tmp/flipped.car"
printf '\xff' | dd of="$tmp/flipped.car" bs=1 seek=200 conv=notrunc 2>/dev/null
status "car verify rejects a flipped byte" 1 "$atp" car verify "$tmp/flipped.car"
head -c 600 "$tmp/fixture.car" >"$tmp/trunc.car"
status "car verify rejects truncation" 1 "$atp" car verify "$tmp/trunc.car"

# tid
t1=$("$atp" tid)
t2=$("$atp" tid)
status "tid is valid" 0 "$atp" syntax tid "$t1"
[ "$t1" \< "$t2" ] && ok "tids increase" || bad "tids increase: $t1 then $t2"

# usage
status "no args is usage" 2 "$atp"
status "unknown command is usage" 2 "$atp" frobnicate

# repo and mst: the spec's example repo (repository.md §3-§4), built, listed, read, verified
if "$atp" --help 2>&1 | grep -q "repo create"; then
  rk=780437017d08a32d28137c55e1e1a34e90c8908034bf4e9bafb764c15d0232f6
  rdk=did:key:zQ3shaDj7MuzSufG8b7CAneUK5fFV468n4SyFKbFeFvfYNbQm
  rdid=did:plc:pt7yvrqanufronpndk4qjuiz
  rpath=app.bsky.feed.post/3kznmn7xqxl22
  rrec='{"text":"hello world","$type":"app.bsky.feed.post","createdAt":"2024-01-01T00:00:00.000Z"}'
  printf '{"path":"%s","record":%s}\n' "$rpath" "$rrec" >"$tmp/one.jsonl"
  status "repo create" 0 sh -c "\"$atp\" repo create --key $rk --did $rdid <\"$tmp/one.jsonl\" >\"$tmp/one.car\""
  check "repo create: CAR size as the spec's" 532 "$(wc -c <"$tmp/one.car" | tr -d ' ')"
  "$atp" car ls "$tmp/one.car" >"$tmp/ls"
  grep -q "^block bafyreiggyd62cjzuwkul6lrjzkn3rcyzvuiny5nm2uuz5kwjx76cudaub4 93$" "$tmp/ls" &&
    ok "repo create: the spec's MST root" || bad "repo create: the spec's MST root: $(cat "$tmp/ls")"
  check "repo ls" "$rpath bafyreieawtmh7hwfrqpamqkodza5r62bbfhsepe2iyustgxhgbhi6b2lfi" \
    "$("$atp" repo ls "$tmp/one.car")"
  check "repo get" "$rrec" "$("$atp" repo get "$tmp/one.car" "$rpath")"
  status "repo get absent" 1 "$atp" repo get "$tmp/one.car" app.bsky.feed.post/nope
  status "repo verify" 0 "$atp" repo verify "$tmp/one.car" --didkey "$rdk" --did "$rdid"
  grep -q "valid: $rdid rev" "$tmp/err" && ok "repo verify summary" || bad "repo verify summary: $(cat "$tmp/err")"
  other=$("$atp" key gen --curve k256 | sed -n 's/^did: //p')
  status "repo verify other key" 1 "$atp" repo verify "$tmp/one.car" --didkey "$other"
  grep -q "signature" "$tmp/err" && ok "repo verify reason" || bad "repo verify reason: $(cat "$tmp/err")"
  status "repo verify other did" 1 "$atp" repo verify "$tmp/one.car" --didkey "$rdk" --did did:plc:other
  cp "$tmp/one.car" "$tmp/flip.car"
  printf '\x00' | dd of="$tmp/flip.car" bs=1 seek=500 conv=notrunc 2>/dev/null
  status "repo verify flipped byte" 1 "$atp" repo verify "$tmp/flip.car" --didkey "$rdk"
  head -c 400 "$tmp/one.car" >"$tmp/cut.car"
  status "repo ls truncated" 1 "$atp" repo ls "$tmp/cut.car"
  { printf '{"path":"%s","record":{"$type":"app.bsky.feed.post","text":"changed"}}\n' "$rpath"
    printf '{"path":"app.bsky.feed.like/3kznmn7xqxm22","record":{"$type":"app.bsky.feed.like"}}\n'
  } >"$tmp/two.jsonl"
  "$atp" repo create --key $rk --did $rdid <"$tmp/two.jsonl" >"$tmp/two.car"
  "$atp" repo diff "$tmp/one.car" "$tmp/two.car" >"$tmp/diff"
  check "repo diff lines" 2 "$(wc -l <"$tmp/diff" | tr -d ' ')"
  grep -q "^create app.bsky.feed.like/3kznmn7xqxm22 bafyrei" "$tmp/diff" && grep -q "^update $rpath bafyrei" "$tmp/diff" &&
    ok "repo diff ops" || bad "repo diff ops: $(cat "$tmp/diff")"
  check "repo diff back: delete" "delete app.bsky.feed.like/3kznmn7xqxm22 $("$atp" repo ls "$tmp/two.car" | sed -n 's/^app.bsky.feed.like[^ ]* //p')" \
    "$("$atp" repo diff "$tmp/two.car" "$tmp/one.car" | grep '^delete')"
  check "repo diff same" "" "$("$atp" repo diff "$tmp/one.car" "$tmp/one.car")"
  printf '{"path":"not-a-path","record":{"$type":"x.y.z"}}\n' >"$tmp/bad.jsonl"
  status "repo create bad path" 1 sh -c "\"$atp\" repo create --key $rk --did $rdid <\"$tmp/bad.jsonl\""
  status "repo create bad did" 1 sh -c "\"$atp\" repo create --key $rk --did nope <\"$tmp/one.jsonl\""
  pk=$("$atp" key gen --curve p256)
  status "repo create p256" 0 sh -c "\"$atp\" repo create --key $(echo "$pk" | sed -n 's/^private: //p') --curve p256 --did $rdid <\"$tmp/two.jsonl\" >\"$tmp/p.car\""
  status "repo verify p256" 0 "$atp" repo verify "$tmp/p.car" --didkey "$(echo "$pk" | sed -n 's/^did: //p')"
  status "repo empty" 0 sh -c "\"$atp\" repo create --key $rk --did $rdid </dev/null >\"$tmp/e.car\""
  check "repo ls empty" "" "$("$atp" repo ls "$tmp/e.car")"
  status "repo usage" 2 "$atp" repo
  # mst height: the interop key heights
  node -e 'for (const c of require(process.argv[1])) console.log(c.height + " " + c.key)' \
    "$shared/interop/mst/key_heights.json" >"$tmp/heights"
  hbad=0; hn=0
  while read -r h key; do
    hn=$((hn + 1))
    [ "$("$atp" mst height "$key")" = "$h" ] || hbad=$((hbad + 1))
  done <"$tmp/heights"
  [ "$hn" -gt 0 ] && [ "$hbad" = 0 ] && ok "mst height ($hn vectors)" || bad "mst height: $hbad of $hn wrong"
  check "mst height spec example" 8 "$("$atp" mst height app.bsky.feed.post/9adeb165882c)"
fi

# identity (issue 4): plc genesis = the spec's worked example (identity-crypto §4.6)
ex_rot=c464761c64ce0fdce18a123ec81686347632bd388ccc41279fb039124239b04d
ex_sign=780437017d08a32d28137c55e1e1a34e90c8908034bf4e9bafb764c15d0232f6
status "plc genesis" 0 "$atp" plc genesis --rotation-key $ex_rot --signing-key $ex_sign \
  --handle alice.example.com --pds https://pds.example.com
check "plc genesis DID" did:plc:pt7yvrqanufronpndk4qjuiz "$(sed -n 2p "$tmp/out")"
grep -q '"sig":"sM0m0JmoRGbhSUWm47hZiIgDNnoxJzFq1dLYUhPvk-YAtMx0Z4vkE2DfCja9TKuQEZ2FMwm-C3pXvxB66lDD1w"' "$tmp/out" &&
  ok "plc genesis sig" || bad "plc genesis sig: $(cat "$tmp/out")"
ex_op=$(sed -n 1p "$tmp/out")
status "plc genesis p256 + two keys" 0 "$atp" plc genesis --rotation-key "$ex_rot:p256" \
  --rotation-key $ex_rot --signing-key "$ex_sign:k256" --handle b.test --pds http://localhost:1
grep -q '"rotationKeys":\["did:key:zDna[^"]*","did:key:zQ3shevRTtL7' "$tmp/out" &&
  ok "plc genesis rotation key order" || bad "plc genesis rotation key order: $(cat "$tmp/out")"
status "plc genesis missing --pds" 1 "$atp" plc genesis --rotation-key $ex_rot --signing-key $ex_sign --handle a.test
status "plc genesis bad key" 1 "$atp" plc genesis --rotation-key 00 --signing-key $ex_sign --handle a.test --pds https://p
status "plc usage" 2 "$atp" plc
ex_cid=bafyreid476fmmadnbmltl3i2xecncgjbftiwpf7kckbpcqx4pqnqdyckde
audit() { printf '[{"did":"did:plc:pt7yvrqanufronpndk4qjuiz","operation":%s,"cid":"%s","nullified":%s,"createdAt":"2024-01-01T00:00:00.000Z"}]' "$ex_op" "$1" "$2"; }
audit $ex_cid false >"$tmp/audit.json"
status "plc verify-log" 0 sh -c "\"$atp\" plc verify-log <\"$tmp/audit.json\""
check "plc verify-log output" "ok did:plc:pt7yvrqanufronpndk4qjuiz: 1 ops, active" "$(cat "$tmp/out")"
audit bafyreid476fmmadnbmltl3i2xecncgjbftiwpf7kckbpcqx4pqnqdyckda false >"$tmp/audit.json"
status "plc verify-log wrong cid" 1 sh -c "\"$atp\" plc verify-log <\"$tmp/audit.json\""
audit $ex_cid true >"$tmp/audit.json"
status "plc verify-log false nullified" 1 sh -c "\"$atp\" plc verify-log <\"$tmp/audit.json\""
grep -q "nullified" "$tmp/err" && ok "plc verify-log reason" || bad "plc verify-log reason: $(cat "$tmp/err")"
echo '[{"did":' >"$tmp/audit.json"
status "plc verify-log malformed" 1 sh -c "\"$atp\" plc verify-log <\"$tmp/audit.json\""
status "did resolve bad DID" 1 "$atp" did resolve nope
status "did resolve did:key" 1 "$atp" did resolve did:key:zQ3shaDj7MuzSufG8b7CAneUK5fFV468n4SyFKbFeFvfYNbQm
status "handle resolve invalid" 1 "$atp" handle resolve -bad-.test
status "did usage" 2 "$atp" did
# did:web and a stub PLC directory: static files served by node on 127.0.0.1 (node is
# required by the suite anyway; no silent skip).
mkdir -p "$tmp/www/.well-known"
node -e '
const http = require("http"), fs = require("fs"), path = require("path");
const root = process.argv[1];
const srv = http.createServer((req, res) => {
  const file = path.join(root, decodeURIComponent(req.url.split("?")[0]));
  fs.readFile(file, (err, data) => {
    if (err) { res.writeHead(404); res.end(); return; }
    res.writeHead(200, { "content-type": "application/json" });
    res.end(data);
  });
});
srv.listen(0, "127.0.0.1", () => fs.writeFileSync(path.join(root, "..", "port"), String(srv.address().port)));
' "$tmp/www" &
web_pid=$!
for _ in $(seq 1 50); do [ -s "$tmp/port" ] && break; sleep 0.1; done
port=$(cat "$tmp/port" 2>/dev/null)
if [ -z "$port" ]; then
  bad "stub web server did not start"
else
  wdid="did:web:localhost%3A$port"
  printf '{"id":"%s","alsoKnownAs":["at://web.test"]}' "$wdid" >"$tmp/www/.well-known/did.json"
  printf '{"id":"did:plc:pt7yvrqanufronpndk4qjuiz"}' >"$tmp/www/did:plc:pt7yvrqanufronpndk4qjuiz"
  status "did resolve did:web --local" 0 "$atp" did resolve "$wdid" --local
  grep -q '"at://web.test"' "$tmp/out" && ok "did resolve did:web doc" || bad "did resolve did:web doc"
  status "did resolve did:web refused without --local" 1 "$atp" did resolve "$wdid"
  status "did resolve did:plc --plc" 0 "$atp" did resolve did:plc:pt7yvrqanufronpndk4qjuiz --plc "http://127.0.0.1:$port"
  status "did resolve did:plc unknown" 1 "$atp" did resolve did:plc:aaaaaaaaaaaaaaaaaaaaaaaa --plc "http://127.0.0.1:$port"
fi
kill "$web_pid" 2>/dev/null
wait "$web_pid" 2>/dev/null

echo "1..$((pass + fail))"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
