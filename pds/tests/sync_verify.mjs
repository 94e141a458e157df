// pds/tests/sync_verify.mjs: @atproto/repo checks of what com.atproto.sync.* served.
// Usage: node sync_verify.mjs <tests/interop dir> <plc url> <did> <mode> <args...>
//   repo  <car>                          verifyRepoCar with the DID's signing key
//   diff  <early car> <diff car> <late car>   the diff applied to early gives late's records
//   proof <car> <collection> <rkey> <cid|null> verifyProofs claim, then verifyRecords
// Prints one JSON line {"ok":true,...}; exits 1 with the reason otherwise.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';

const [interopDir, plcUrl, did, mode, ...args] = process.argv.slice(2);
const req = createRequire(path.join(interopDir, 'package.json'));
const repo = req('@atproto/repo');
const { parseCid } = req('@atproto/lex-data');

async function signingKey() {
  const res = await fetch(`${plcUrl}/${did}`);
  if (!res.ok) throw new Error(`plc: ${res.status}`);
  const doc = await res.json();
  const vm = doc.verificationMethod.find((m) => m.id.endsWith('#atproto'));
  return `did:key:${vm.publicKeyMultibase}`;
}

const recordsOf = (creates) =>
  creates.map((c) => `${c.collection}/${c.rkey}=${c.cid.toString()}`).sort();

async function main() {
  const key = await signingKey();
  if (mode === 'repo') {
    const v = await repo.verifyRepoCar(fs.readFileSync(args[0]), did, key);
    console.log(JSON.stringify({ ok: true, records: v.creates.length, rev: v.commit.rev }));
  } else if (mode === 'diff') {
    const early = await repo.readCarWithRoot(fs.readFileSync(args[0]));
    const storage = new repo.MemoryBlockstore(early.blocks);
    const before = await repo.Repo.load(storage, early.root);
    const diff = await repo.verifyDiffCar(before, fs.readFileSync(args[1]), did, key);
    await storage.applyCommit(diff.commit);
    const after = await repo.verifyRepoCar(fs.readFileSync(args[2]), did, key);
    if (!after.commit.cid.equals(diff.commit.cid)) throw new Error('diff root is not the head');
    const applied = await repo.Repo.load(storage, diff.commit.cid);
    const got = [];
    for await (const e of applied.walkRecords()) got.push(`${e.collection}/${e.rkey}=${e.cid}`);
    const want = recordsOf(after.creates);
    got.sort();
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      throw new Error(`diff result differs: ${got.length} vs ${want.length} records`);
    }
    console.log(JSON.stringify({ ok: true, records: got.length, writes: diff.writes.length }));
  } else if (mode === 'proof') {
    const [car, collection, rkey, cid] = args;
    const bytes = fs.readFileSync(car);
    const claim = { collection, rkey, cid: cid === 'null' ? null : parseCid(cid) };
    const res = await repo.verifyProofs(bytes, [claim], did, key);
    if (res.verified.length !== 1) throw new Error('proof claim not verified');
    const recs = await repo.verifyRecords(bytes, did, key);
    console.log(JSON.stringify({ ok: true, records: recs.length }));
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
}

main().catch((e) => {
  console.error(String(e && e.stack ? e.stack : e));
  process.exit(1);
});
