// check_cbor.mjs FILE: checks DAG-CBOR blocks, CIDs and JSON made by atproto-c with the official
// libraries. FILE has one line per block:
//   <cid> TAB <dag-cbor hex> TAB <JSON form, or empty>
// For each line: @ipld/dag-cbor (strict decoder) must decode the bytes and re-encode them to the
// same bytes; the CID computed with multiformats (sha2-256, dag-cbor codec) must equal ours; if
// a JSON form is given, it must convert to the same data model value (same bytes once encoded).
// Every 4th line is also decoded and re-encoded with @atproto/lex-cbor. Exit 1 on any mismatch.

import { readFileSync } from 'node:fs';
import * as dagCbor from '@ipld/dag-cbor';
import * as lexCbor from '@atproto/lex-cbor';
import { CID } from 'multiformats/cid';
import { sha256 } from 'multiformats/hashes/sha2';
import { fromHex, jsonToIpld, toHex } from './records.mjs';

const file = process.argv[2];
if (!file) {
  console.error('usage: check_cbor.mjs FILE');
  process.exit(2);
}

const same = (a, b) => a.length === b.length && Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;

async function checkLine(line, i) {
  const [cidStr, hex, json] = line.split('\t');
  const bytes = fromHex(hex);
  const value = dagCbor.decode(bytes);
  const again = dagCbor.encode(value);
  if (!same(again, bytes)) return `@ipld/dag-cbor re-encodes differently: ${toHex(again).slice(0, 80)}`;
  const cid = CID.create(1, dagCbor.code, await sha256.digest(bytes)).toString();
  if (cid !== cidStr) return `CID differs: ours ${cidStr}, multiformats ${cid}`;
  if (i % 4 === 0 && !same(lexCbor.encode(lexCbor.decode(bytes)), bytes)) {
    return '@atproto/lex-cbor re-encodes differently';
  }
  if (json) {
    const fromJson = dagCbor.encode(jsonToIpld(JSON.parse(json)));
    if (!same(fromJson, bytes)) return `our JSON gives a different value: ${json.slice(0, 120)}`;
  }
  return null;
}

let ok = 0;
let bad = 0;
let withJson = 0;
const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l.length > 0);
for (const [i, line] of lines.entries()) {
  let why;
  try {
    why = await checkLine(line, i);
  } catch (e) {
    why = `rejected: ${e.message}`;
  }
  if (why) {
    bad++;
    if (bad <= 20) console.log(`line ${i + 1}: ${why}`);
  } else {
    ok++;
    if (line.split('\t')[2]) withJson++;
  }
}
console.log(`check_cbor: ${ok} ok, ${bad} failed (${withJson} with JSON)`);
process.exit(bad === 0 && ok > 0 ? 0 : 1);
