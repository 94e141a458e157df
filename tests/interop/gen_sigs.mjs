// gen_sigs.mjs N [SEED]: for each curve, N signatures made by @atproto/crypto, one per line:
//   <ES256K|ES256> TAB <private key hex> TAB <did:key> TAB <message hex> TAB <signature hex>
// Keys are derived from the seed (SHA-256 of a label), so a run is reproducible except for the
// P-256 nonces. Each signature is verified here first with verifySignature: a line is only
// printed if the official library accepts its own output.

import { createHash } from 'node:crypto';
import { P256Keypair, Secp256k1Keypair, verifySignature } from '@atproto/crypto';
import { makeRng, toHex } from './records.mjs';

const n = Number(process.argv[2] || 50);
const seed = Number(process.argv[3] || 7);
if (!Number.isInteger(n) || n <= 0 || !Number.isInteger(seed)) {
  console.error('usage: gen_sigs.mjs N [SEED]');
  process.exit(2);
}

export const CURVES = [
  { alg: 'ES256K', Keypair: Secp256k1Keypair },
  { alg: 'ES256', Keypair: P256Keypair },
];

// Messages of every interesting size: empty, one byte, the spec's 13-byte {"hello":"world"}
// block, a 32-byte digest-sized one, and random lengths up to 4 KiB.
function message(rng, i) {
  if (i === 0) return new Uint8Array(0);
  if (i === 1) return new Uint8Array([0]);
  if (i === 2) return new Uint8Array(Buffer.from('a16568656c6c6f65776f726c64', 'hex'));
  if (i === 3) return rng.bytes(32);
  return rng.bytes(rng.int(1, 4096));
}

const rng = makeRng(seed);
const lines = [];
for (const { alg, Keypair } of CURVES) {
  const nkeys = Math.max(1, Math.ceil(n / 5));
  for (let i = 0; i < n; i++) {
    const priv = createHash('sha256').update(`atproto-c interop ${alg} ${seed} key ${i % nkeys}`).digest();
    const key = await Keypair.import(new Uint8Array(priv));
    const msg = message(rng, i);
    const sig = await key.sign(msg);
    if (!(await verifySignature(key.did(), msg, sig))) {
      throw new Error(`${alg} #${i}: @atproto/crypto rejects its own signature`);
    }
    lines.push([alg, priv.toString('hex'), key.did(), toHex(msg), toHex(sig)].join('\t') + '\n');
  }
}
process.stdout.write(lines.join(''));
console.error(`gen_sigs: ${lines.length} signatures (${n} per curve, seed ${seed})`);
