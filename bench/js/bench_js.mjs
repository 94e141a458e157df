// bench_js.mjs DIR [SECONDS [NAME-PREFIX]]: the official JS libraries on the benchmark corpus written by
// gen_corpus.mjs, one figure per line ("name value"), names matching bench_common's so the
// driver can print ratios. Figures from @atproto/lex-cbor carry the suffix "@lex".
// Each figure runs a warm-up (JIT) and then loops over the corpus for SECONDS, in rounds.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CID, atcrypto, dagCbor, lexCbor, sha256 } from '../../tests/interop/libs.mjs';
import { ipldToJson, jsonToIpld } from '../../tests/interop/records.mjs';

const dir = process.argv[2];
const seconds = Number(process.argv[3] || 1.5);
// Optional third argument: run only the figures whose name starts with it (for profiling).
const only = process.argv[4] || '';
const wanted = (name) => name.startsWith(only) || only.startsWith(name);
if (!dir) {
  console.error('usage: bench_js.mjs DIR [SECONDS]');
  process.exit(2);
}

const all = readFileSync(join(dir, 'corpus.cbor'));
const idx = readFileSync(join(dir, 'corpus.idx'));
const blocks = [];
for (let i = 0, off = 0; i < idx.length / 4; i++) {
  const len = idx.readUInt32LE(4 * i);
  blocks.push(new Uint8Array(all.buffer, all.byteOffset + off, len));
  off += len;
}
const jsonLines = readFileSync(join(dir, 'corpus.jsonl'), 'utf8').split('\n').filter((l) => l);
const n = blocks.length;
// CPU time of the process (user + system, all threads: JIT and GC threads are part of the
// library's cost), not wall time: the 2-core machine is shared, and time spent descheduled
// must not count (bench_common uses its thread's CPU time the same way).
const now = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
// Clock reads about every 0.5 ms at a given rate (process.cpuUsage is a system call).
const maskFor = (opsPerSec) => {
  let m = 1;
  while (m * 2 < opsPerSec / 2000) m *= 2;
  return m - 1;
};

const ROUNDS = 8;

// Runs step(i) over the items cyclically (resuming where the last round stopped) after a
// warm-up (JIT), then in ROUNDS rounds of secs/ROUNDS keeping the best, as bench_common does:
// the machine is shared and the best round is the least disturbed. step returns the bytes it
// processed. Returns [ops per second, MB per second].
function run(count, step, secs = seconds) {
  let pos = 0;
  const loop = (limit, mask) => {
    let ops = 0;
    let bytes = 0;
    const t0 = now();
    let t = t0;
    let i = pos % count;
    for (; t - t0 < limit; i = (i + 1) % count) {
      bytes += step(i);
      ops++;
      if ((ops & mask) === 0) t = now();
    }
    pos = i;
    return [ops / (t - t0), bytes / (t - t0) / 1e6];
  };
  const mask = maskFor(loop(Math.max(0.5, secs / 3), 0)[0]);
  let best = [0, 0];
  for (let r = 0; r < ROUNDS; r++) {
    const [o, m] = loop(secs / ROUNDS, mask);
    best = [Math.max(best[0], o), Math.max(best[1], m)];
  }
  return best;
}

async function runAsync(count, step, secs = seconds) {
  let pos = 0;
  const loop = async (limit, mask) => {
    let ops = 0;
    const t0 = now();
    let t = t0;
    let i = pos % count;
    for (; t - t0 < limit; i = (i + 1) % count) {
      await step(i);
      ops++;
      if ((ops & mask) === 0) t = now();
    }
    pos = i;
    return ops / (t - t0);
  };
  const mask = maskFor(await loop(Math.max(0.3, secs / 4), 0));
  let best = 0;
  for (let r = 0; r < ROUNDS; r++) best = Math.max(best, await loop(secs / ROUNDS, mask));
  return best;
}

const out = (name, v) => console.log(`${name} ${v.toFixed(v < 100 ? 2 : 1)}`);

function cborFigures(lib, suffix) {
  if (wanted('cbor.decode')) {
    const [decRec, decMB] = run(n, (i) => (lib.decode(blocks[i]), blocks[i].length));
    out(`cbor.decode.MBps${suffix}`, decMB);
    out(`cbor.decode.rec_per_s${suffix}`, decRec);
  }
  if (wanted('cbor.encode')) {
    const values = blocks.map((b) => lib.decode(b));
    const [encRec, encMB] = run(n, (i) => lib.encode(values[i]).length);
    out(`cbor.encode.MBps${suffix}`, encMB);
    out(`cbor.encode.rec_per_s${suffix}`, encRec);
  }
}

cborFigures(dagCbor, '');
cborFigures(lexCbor, '@lex');

if (wanted('cid')) {
  const [cidRate] = run(n, (i) => {
    const digest = sha256.digest(blocks[i]);
    return CID.create(1, dagCbor.code, digest).toString().length;
  });
  out('cid.per_s', cidRate);
}
if (wanted('json_to_cbor')) {
  const [j2c] = run(n, (i) => dagCbor.encode(jsonToIpld(JSON.parse(jsonLines[i]))).length);
  out('json_to_cbor.rec_per_s', j2c);
}
if (wanted('cbor_to_json')) {
  const [c2j] = run(n, (i) => JSON.stringify(ipldToJson(dagCbor.decode(blocks[i]))).length);
  out('cbor_to_json.rec_per_s', c2j);
}

// ECDSA through @atproto/crypto's public API: keypair.sign and verifySignature(did:key, ...).
const msgs = Array.from({ length: 64 }, (_, i) => new Uint8Array(100).fill(i + 1));
for (const [name, Keypair] of [['k256', atcrypto.Secp256k1Keypair], ['p256', atcrypto.P256Keypair]]) {
  if (!wanted(name)) continue;
  const key = await Keypair.import(new Uint8Array(32).fill(7));
  const did = key.did();
  const sigs = [];
  for (const m of msgs) sigs.push(await key.sign(m));
  out(`${name}.sign.per_s`, await runAsync(msgs.length, (i) => key.sign(msgs[i])));
  out(`${name}.verify.per_s`, await runAsync(msgs.length, async (i) => {
    if (!(await atcrypto.verifySignature(did, msgs[i], sigs[i]))) throw new Error('verify failed');
  }));
}
