// check_sigs.mjs FILE: checks signatures and did:keys made by atproto-c with @atproto/crypto.
// FILE has one line per case:
//   <ES256K|ES256> TAB <private key hex> TAB <did:key> TAB <message hex> TAB <sig hex> TAB <0|1>
// For each line: the official keypair imported from the same private bytes must give the same
// did:key, and verifySignature (strict: low-S, 64-byte compact only) must return the expected
// result (1 = valid, 0 = must be rejected). Prints a summary; exit 1 on any disagreement.

import { readFileSync } from 'node:fs';
import { P256Keypair, Secp256k1Keypair, verifySignature } from '@atproto/crypto';
import { fromHex } from './records.mjs';

const file = process.argv[2];
if (!file) {
  console.error('usage: check_sigs.mjs FILE');
  process.exit(2);
}
const KEYPAIRS = { ES256K: Secp256k1Keypair, ES256: P256Keypair };

let ok = 0;
let bad = 0;
const counts = { didkey: 0, valid: 0, rejected: 0 };
const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l.length > 0);
for (const [lineno, line] of lines.entries()) {
  const [alg, privHex, didKey, msgHex, sigHex, expect] = line.split('\t');
  const fail = (what) => {
    bad++;
    console.log(`line ${lineno + 1} (${alg}): ${what}`);
  };
  const Keypair = KEYPAIRS[alg];
  if (!Keypair || (expect !== '0' && expect !== '1')) {
    fail('malformed line');
    continue;
  }
  if (privHex) {
    const key = await Keypair.import(fromHex(privHex));
    if (key.did() !== didKey) {
      fail(`did:key differs: ours ${didKey}, @atproto/crypto ${key.did()}`);
      continue;
    }
    counts.didkey++;
  }
  const valid = await verifySignature(didKey, fromHex(msgHex), fromHex(sigHex));
  if (valid !== (expect === '1')) {
    fail(`verifySignature returned ${valid}, expected ${expect === '1'}`);
    continue;
  }
  counts[valid ? 'valid' : 'rejected']++;
  ok++;
}
console.log(
  `check_sigs: ${ok} ok, ${bad} failed (${counts.didkey} did:keys, ${counts.valid} valid, ` +
    `${counts.rejected} rejected as expected)`,
);
process.exit(bad === 0 && ok > 0 ? 0 : 1);
