// plc_interop.mjs: did:plc operations with the official @did-plc/lib (0.0.4), both ways.
//
//   node plc_interop.mjs gen
//     Creates histories with the library (genesis, rotate keys, change handle, change PDS,
//     tombstone, a recovery fork within 72 h) and prints one JSON object per line:
//       {"name", "did", "audit": [{did, operation, cid, nullified, createdAt}], "data"}
//     where "data" is validateOperationLog over the non-nullified ops (null when tombstoned),
//     and bad cases {"name", "did", "audit", "bad": op, "expect": "ESIG"|"EEXPIRED"|"EINVAL",
//     "at": createdAt for the bad op}: the library itself rejects each `bad` op (checked here).
//   node plc_interop.mjs check FILE
//     FILE holds lines {"did", "ops": [...]} (and optional "fork": {"history": [...], "op"}) made
//     by our C code; validates each log with validateOperationLog and the DID with
//     didForCreateOp, and forks with assureValidNextOp. Prints "ok N" or exits non-zero.
import { readFileSync } from 'node:fs';
import * as plc from '@did-plc/lib';
import { P256Keypair, Secp256k1Keypair } from '@atproto/crypto';
import * as dagCbor from '@ipld/dag-cbor';
import { CID } from 'multiformats/cid';
import { sha256 } from 'multiformats/hashes/sha2';

const HOUR = 3600 * 1000;

async function cidOf(op) {
  const bytes = dagCbor.encode(op);
  return CID.createV1(0x71, await sha256.digest(bytes));
}

const hex = (n) => n.toString(16).padStart(64, '0');

async function keys() {
  return {
    rot0: await Secp256k1Keypair.import(hex(0xa1), { exportable: true }),
    rot1: await P256Keypair.import(hex(0xa2), { exportable: true }),
    rot2: await Secp256k1Keypair.import(hex(0xa3), { exportable: true }),
    sign: await Secp256k1Keypair.import(hex(0xa4), { exportable: true }),
    sign2: await P256Keypair.import(hex(0xa5), { exportable: true }),
  };
}

// A history as the directory would record it: every op with its CID, createdAt, nullified.
class History {
  constructor(did) { this.did = did; this.entries = []; }
  active() { return this.entries.filter((e) => !e.nullified); }
  async add(op, createdAt) {
    const indexed = this.active().map((e) => ({
      did: this.did, operation: e.operation, cid: CID.parse(e.cid), nullified: false,
      createdAt: new Date(e.createdAt),
    }));
    const res = await plc.assureValidNextOp(this.did, indexed, op);
    const gone = new Set(res.nullified.map((c) => c.toString()));
    for (const e of this.entries) if (gone.has(e.cid)) e.nullified = true;
    const cid = (await cidOf(op)).toString();
    this.entries.push({ did: this.did, operation: op, cid, nullified: false,
      createdAt: new Date(createdAt).toISOString() });
    return cid;
  }
  last() { return this.active().at(-1); }
}

async function data(h) {
  const doc = await plc.validateOperationLog(h.did, h.active().map((e) => e.operation));
  return doc;
}

async function gen() {
  const k = await keys();
  const now = Date.now();
  const out = [];
  const emit = async (name, h) => out.push({ name, did: h.did, audit: structuredClone(h.entries), data: await data(h) });

  // 1. The full life: genesis, rotate keys, change handle, change PDS, tombstone.
  const g = await plc.createOp({
    signingKey: k.sign.did(), handle: 'alice.test', pds: 'https://pds.test',
    rotationKeys: [k.rot0.did(), k.rot1.did()], signer: k.rot0,
  });
  const life = new History(g.did);
  await life.add(g.op, now - 10 * HOUR);
  await emit('genesis', life);
  let op = await plc.updateRotationKeysOp(life.last().operation, k.rot1,
    [k.rot0.did(), k.rot1.did(), k.rot2.did()]);
  await life.add(op, now - 9 * HOUR);
  op = await plc.updateHandleOp(life.last().operation, k.rot2, 'alice2.test');
  await life.add(op, now - 8 * HOUR);
  op = await plc.updatePdsOp(life.last().operation, k.rot1, 'https://pds2.test');
  await life.add(op, now - 7 * HOUR);
  op = await plc.updateAtprotoKeyOp(life.last().operation, k.rot0, k.sign2.did());
  await life.add(op, now - 6 * HOUR);
  await emit('rotate-handle-pds-key', life);
  const tomb = await plc.tombstoneOp(CID.parse(life.last().cid), k.rot2);
  await life.add(tomb, now - 5 * HOUR);
  await emit('tombstone', life);

  // 2. Recovery: rot1 (index 1) makes a change; rot0 (index 0) forks it away within 72 h.
  const g2 = await plc.createOp({
    signingKey: k.sign.did(), handle: 'bob.test', pds: 'https://pds.test',
    rotationKeys: [k.rot0.did(), k.rot1.did()], signer: k.rot1,
  });
  const rec = new History(g2.did);
  await rec.add(g2.op, now - 50 * HOUR);
  const genesisOp = rec.last().operation;
  op = await plc.updateHandleOp(genesisOp, k.rot1, 'mallory.test');
  await rec.add(op, now - 40 * HOUR);
  op = await plc.updatePdsOp(rec.last().operation, k.rot1, 'https://evil.test');
  await rec.add(op, now - 39 * HOUR);
  const fork = await plc.updateHandleOp(genesisOp, k.rot0, 'bob2.test');
  await rec.add(fork, now - 1 * HOUR);
  await emit('recovery-fork', rec);

  // Bad cases, each rejected by the library first.
  const bad = async (name, h, badOp, at, expect) => {
    const indexed = h.active().map((e) => ({ did: h.did, operation: e.operation,
      cid: CID.parse(e.cid), nullified: false, createdAt: new Date(e.createdAt) }));
    let rejected = false;
    try { await plc.assureValidNextOp(h.did, indexed, badOp); } catch { rejected = true; }
    if (!rejected) throw new Error(`library accepted bad case ${name}`);
    out.push({ name, did: h.did, audit: structuredClone(h.entries), bad: badOp,
      at: new Date(at).toISOString(), expect });
  };
  // Forged: another op's signature pasted on a changed op.
  const good = await plc.updateHandleOp(genesisOp, k.rot0, 'x.test');
  await bad('forged', rec, { ...good, alsoKnownAs: ['at://y.test'] }, now, 'ESIG');
  // Removed key: rot1 rotates itself out ([rot0] only), then tries to sign again.
  const g3 = await plc.createOp({
    signingKey: k.sign.did(), handle: 'carol.test', pds: 'https://pds.test',
    rotationKeys: [k.rot0.did(), k.rot1.did()], signer: k.rot0,
  });
  const rm = new History(g3.did);
  await rm.add(g3.op, now - 3 * HOUR);
  await rm.add(await plc.updateRotationKeysOp(g3.op, k.rot1, [k.rot0.did()]), now - 2 * HOUR);
  await bad('removed-key', rm, await plc.updateHandleOp(rm.last().operation, k.rot1, 'z.test'),
    now, 'ESIG');
  // A fork of the recovered history that is now past 72 h: rot0 overriding rot1's op.
  const late = new History(g2.did);
  await late.add(g2.op, now - 200 * HOUR);
  await late.add(await plc.updateHandleOp(genesisOp, k.rot1, 'm.test'), now - 100 * HOUR);
  await bad('late-fork', late, await plc.updateHandleOp(genesisOp, k.rot0, 'b.test'), now,
    'EEXPIRED');
  // An op whose prev is the tombstone.
  const { sig: _s, ...lastData } = life.entries.at(-2).operation;
  await bad('after-tombstone', life, await plc.signOperation(
    { ...lastData, alsoKnownAs: ['at://again.test'], prev: life.last().cid }, k.rot0), now,
  'EINVAL');
  for (const o of out) console.log(JSON.stringify(o));
}

async function check(file) {
  let n = 0;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const c = JSON.parse(line);
    if (c.ops) {
      const derived = await plc.didForCreateOp(c.ops[0]);
      if (derived !== c.did) throw new Error(`DID mismatch: ${derived} vs ${c.did}`);
      await plc.validateOperationLog(c.did, c.ops);
      n++;
    }
    if (c.fork) {
      const now = Date.now();
      const indexed = await Promise.all(c.fork.history.map(async (op, i) => ({
        did: c.did, operation: op, cid: await cidOf(op), nullified: false,
        createdAt: new Date(now - (c.fork.history.length - i) * HOUR),
      })));
      const res = await plc.assureValidNextOp(c.did, indexed, c.fork.op);
      if (res.nullified.length !== c.fork.nullified) {
        throw new Error(`fork nullified ${res.nullified.length}, expected ${c.fork.nullified}`);
      }
      n++;
    }
  }
  console.log(`ok ${n}`);
}

const [mode, arg] = process.argv.slice(2);
if (mode === 'gen') await gen();
else if (mode === 'check') await check(arg);
else { console.error('usage: plc_interop.mjs gen | check FILE'); process.exit(2); }
