// gen_records.mjs N [SEED]: prints N generated records, one per line, as
//   <cid> TAB <dag-cbor hex> TAB <record JSON>
// The bytes come from @ipld/dag-cbor and the CID from multiformats (sha2-256). Every 4th record
// and every edge-shape record is also encoded with @atproto/lex-cbor, and every record is
// decoded back with @ipld/dag-cbor and re-encoded: any disagreement between the official
// libraries is an error (exit 1), so the C side only compares against bytes they agree on.

import * as dagCbor from '@ipld/dag-cbor';
import * as lexCbor from '@atproto/lex-cbor';
import { CID } from 'multiformats/cid';
import { sha256 } from 'multiformats/hashes/sha2';
import { assertWellFormed, genRecord, jsonToIpld, toHex } from './records.mjs';

const n = Number(process.argv[2] || 1000);
const seed = Number(process.argv[3] || 42);
if (!Number.isInteger(n) || n <= 0 || !Number.isInteger(seed)) {
  console.error('usage: gen_records.mjs N [SEED]');
  process.exit(2);
}

const same = (a, b) => a.length === b.length && Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;
let lexChecked = 0;
const out = [];
for (let i = 0; i < n; i++) {
  const rec = genRecord(seed, i);
  assertWellFormed(rec);
  const bytes = dagCbor.encode(jsonToIpld(rec));
  if (!same(dagCbor.encode(dagCbor.decode(bytes)), bytes)) {
    throw new Error(`record ${i}: @ipld/dag-cbor decode/encode is not stable`);
  }
  if (i % 4 === 0 || rec.$type === 'com.example.edge') {
    const lexBytes = lexCbor.encode(jsonToIpld(rec));
    if (!same(lexBytes, bytes)) throw new Error(`record ${i}: @atproto/lex-cbor and @ipld/dag-cbor disagree`);
    if (!same(lexCbor.encode(lexCbor.decode(bytes)), bytes)) {
      throw new Error(`record ${i}: @atproto/lex-cbor decode/encode is not stable`);
    }
    lexChecked++;
  }
  const cid = CID.create(1, dagCbor.code, await sha256.digest(bytes));
  out.push(`${cid.toString()}\t${toHex(bytes)}\t${JSON.stringify(rec)}\n`);
}
process.stdout.write(out.join(''));
console.error(`gen_records: ${n} records (seed ${seed}), ${lexChecked} cross-checked with @atproto/lex-cbor`);
