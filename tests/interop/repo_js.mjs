// repo_js.mjs: the repository cross-checks' JS half, driving the official @atproto/repo 0.9.1.
//
//   repo_js.mjs script SEED N            the commit script shared by both sides, one write a line:
//                                        <commit#> TAB <create|update|delete> TAB <path> TAB <record hex|->
//   repo_js.mjs build SEED N CURVE DIR   @atproto/repo applies the same script (Repo.create, then
//                                        applyWrites per commit) with a key from @atproto/crypto;
//                                        writes DIR/theirs.car (getFullRepo) and record proofs
//                                        DIR/theirs_proof_<i>.car (getRecords) and prints
//                                        key / root / head / record / proof lines
//   repo_js.mjs verify CAR DIDKEY DID    verifyRepoCar (signature, whole MST, every leaf), then
//                                        prints the commit and every record (path, CID, record
//                                        re-encoded by @atproto/lex-cbor) in key order
//   repo_js.mjs proofs DIDKEY DID FILE   FILE lines: <car file> TAB <path> TAB <cid|->; checks each
//                                        with verifyProofs (and verifyRecords for present ones)
//
// Records come from records.mjs's seeded generator (edge shapes included), as @ipld/dag-cbor
// bytes; @atproto/repo gets them decoded by @atproto/lex-cbor, so a record it stores under a
// different CID would show up as a root mismatch.

import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as dagCbor from '@ipld/dag-cbor';
import * as lexCbor from '@atproto/lex-cbor';
import { CID } from 'multiformats/cid';
import { P256Keypair, Secp256k1Keypair } from '@atproto/crypto';
import atrepo from '@atproto/repo';
import { genRecord, jsonToIpld, makeRng, cidFor, toHex } from './records.mjs';
// @atproto/repo is CommonJS: its named exports come through the default export.
const {
  MemoryBlockstore,
  Repo,
  WriteOpAction,
  concatBytesAsync,
  getFullRepo,
  getRecords,
  readCarWithRoot,
  verifyProofs,
  verifyRecords,
  verifyRepoCar,
} = atrepo;

const B32SORT = '234567abcdefghijklmnopqrstuvwxyz';
const RKEY_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-_~:';
export const THEIR_DID = 'did:plc:theirrepointeropabcdefgh';

// A TID for microsecond time `us` and clock id `clk`: 13 sortable base32 characters.
export function tidFor(us, clk) {
  let v = (BigInt(us) << 10n) | BigInt(clk & 1023);
  let s = '';
  for (let i = 0; i < 13; i++) {
    s = B32SORT[Number(v & 31n)] + s;
    v >>= 5n;
  }
  return s;
}

function oddRkey(rng) {
  for (;;) {
    let s = '';
    const n = rng.int(1, 24);
    for (let i = 0; i < n; i++) s += RKEY_CHARS[Math.floor(rng.next() * RKEY_CHARS.length)];
    if (s !== '.' && s !== '..') return s;
  }
}

// The commit script: commits of creates, updates, deletes and re-creates over about `n` records,
// the first a bulk of 60 creates and the last exactly 200 writes (the per-commit maximum).
export function genScript(seed, n) {
  const rng = makeRng((seed * 2654435761) >>> 0);
  const st = { recIdx: 0, us: 1700000000000000, live: [], liveSet: new Set(), dead: [] };
  const nextRec = () => dagCbor.encode(jsonToIpld(genRecord(seed, st.recIdx++, true)));
  const newPath = (bytes) => {
    const coll = dagCbor.decode(bytes).$type;
    st.us += rng.int(1, 5000000);
    const rkey = rng.chance(0.05) ? oddRkey(rng) : tidFor(st.us, rng.int(0, 1023));
    return `${coll}/${rkey}`;
  };
  const commits = [];
  let created = 0;
  const commit = (size, mix) => {
    const ops = [];
    const used = new Set();
    while (ops.length < size) {
      const roll = mix ? rng.next() : 1;
      const pick = () => st.live[Math.floor(rng.next() * st.live.length)];
      if (roll < 0.15 && st.live.length > 20) {
        const p = pick();
        if (used.has(p)) continue;
        used.add(p);
        ops.push({ action: 'update', path: p, bytes: nextRec() });
      } else if (roll < 0.27 && st.live.length > 20) {
        const p = pick();
        if (used.has(p)) continue;
        used.add(p);
        st.live.splice(st.live.indexOf(p), 1);
        st.liveSet.delete(p);
        st.dead.push(p);
        ops.push({ action: 'delete', path: p, bytes: null });
      } else if (roll < 0.3 && st.dead.length > 0 && !used.has(st.dead[0])) {
        const p = st.dead.shift();
        used.add(p);
        st.live.push(p);
        st.liveSet.add(p);
        ops.push({ action: 'create', path: p, bytes: nextRec() });
      } else {
        const bytes = nextRec();
        const p = newPath(bytes);
        if (used.has(p) || st.liveSet.has(p)) continue;
        used.add(p);
        st.live.push(p);
        st.liveSet.add(p);
        ops.push({ action: 'create', path: p, bytes });
        created++;
      }
    }
    commits.push(ops);
  };
  commit(60, false);
  while (created < n - 200) commit(rng.int(1, 25), true);
  commit(200, true);
  return commits;
}

const keypairFor = async (curve, label) => {
  const priv = createHash('sha256').update(label).digest();
  const K = curve === 'p256' ? P256Keypair : Secp256k1Keypair;
  return { key: await K.import(new Uint8Array(priv), { exportable: true }), priv };
};

const splitPath = (p) => {
  const i = p.indexOf('/');
  return { collection: p.slice(0, i), rkey: p.slice(i + 1) };
};

const toWrite = (op) => {
  const { collection, rkey } = splitPath(op.path);
  const action = { create: WriteOpAction.Create, update: WriteOpAction.Update, delete: WriteOpAction.Delete }[op.action];
  return op.bytes ? { action, collection, rkey, record: lexCbor.decode(op.bytes) } : { action, collection, rkey };
};

async function cmdScript(seed, n) {
  const out = [];
  genScript(seed, n).forEach((ops, i) => {
    for (const o of ops) out.push(`${i}\t${o.action}\t${o.path}\t${o.bytes ? toHex(o.bytes) : '-'}\n`);
  });
  process.stdout.write(out.join(''));
}

async function cmdBuild(seed, n, curve, dir) {
  const { key, priv } = await keypairFor(curve, `atproto-c repo interop ${curve} ${seed}`);
  const storage = new MemoryBlockstore();
  const script = genScript(seed, n);
  const out = [`key\t${curve}\t${priv.toString('hex')}\t${key.did()}\t${THEIR_DID}\n`];
  let repo = await Repo.create(storage, THEIR_DID, key, script[0].map(toWrite));
  out.push(`root\t0\t${repo.data.pointer.toString()}\n`);
  for (let i = 1; i < script.length; i++) {
    repo = await repo.applyWrites(script[i].map(toWrite), key);
    out.push(`root\t${i}\t${(await repo.data.getPointer()).toString()}\n`);
  }
  writeFileSync(join(dir, 'theirs.car'), await concatBytesAsync(getFullRepo(storage, repo.cid)));
  out.push(`head\t${repo.cid.toString()}\t${repo.commit.rev}\n`);
  const leaves = await repo.data.list();
  for (const l of leaves) out.push(`record\t${l.key}\t${l.value.toString()}\n`);
  // Proofs: a spread of present paths, and absent ones just beside them (same collection).
  const paths = [];
  for (let i = 0; i < leaves.length; i += Math.max(1, Math.floor(leaves.length / 12))) {
    paths.push([leaves[i].key, leaves[i].value.toString()]);
    paths.push([leaves[i].key + 'zz', '-']);
  }
  paths.push(['zzz.example.none/self', '-'], ['aaa.example.none/self', '-']);
  for (const [i, [p, cid]] of paths.entries()) {
    const file = join(dir, `theirs_proof_${i}.car`);
    writeFileSync(file, await concatBytesAsync(getRecords(storage, repo.cid, [splitPath(p)])));
    out.push(`proof\t${file}\t${p}\t${cid}\n`);
  }
  process.stdout.write(out.join(''));
}

async function cmdVerify(file, didKey, did) {
  const bytes = new Uint8Array(readFileSync(file));
  const v = await verifyRepoCar(bytes, did, didKey);
  const car = await readCarWithRoot(bytes);
  const repo = await Repo.load(new MemoryBlockstore(car.blocks), car.root);
  const out = [`commit\t${car.root.toString()}\t${repo.commit.rev}\t${repo.commit.data.toString()}\t${repo.commit.version}\n`];
  const creates = new Map(v.creates.map((c) => [`${c.collection}/${c.rkey}`, c.cid.toString()]));
  let n = 0;
  for await (const r of repo.walkRecords()) {
    const path = `${r.collection}/${r.rkey}`;
    const enc = lexCbor.encode(r.record);
    // The record as the library re-encodes it must hash to the CID the tree holds.
    if (cidFor(0x71, enc).toString() !== r.cid.toString() || creates.get(path) !== r.cid.toString()) {
      throw new Error(`${path}: CID mismatch after @atproto/lex-cbor re-encoding`);
    }
    out.push(`record\t${path}\t${r.cid.toString()}\t${toHex(enc)}\n`);
    n++;
  }
  if (n !== v.creates.length) throw new Error(`walkRecords gave ${n}, verifyRepo ${v.creates.length}`);
  process.stdout.write(out.join(''));
}

async function cmdProofs(didKey, did, list) {
  let ok = 0;
  let bad = 0;
  for (const line of readFileSync(list, 'utf8').split('\n').filter((l) => l)) {
    const [file, path, cidStr] = line.split('\t');
    const bytes = new Uint8Array(readFileSync(file));
    const { collection, rkey } = splitPath(path);
    const claim = { collection, rkey, cid: cidStr === '-' ? null : CID.parse(cidStr) };
    const res = await verifyProofs(bytes, [claim], did, didKey);
    let good = res.verified.length === 1;
    if (good && cidStr !== '-') {
      const recs = await verifyRecords(bytes, did, didKey);
      good = recs.some((r) => r.collection === collection && r.rkey === rkey);
    }
    if (good) ok++;
    else {
      bad++;
      console.log(`proof not verified: ${path} (${cidStr}) in ${file}`);
    }
  }
  console.log(`proofs: ${ok} verified, ${bad} failed`);
}

async function main() {
  const [cmd, ...a] = process.argv.slice(2);
  if (cmd === 'script') return cmdScript(Number(a[0]), Number(a[1]));
  if (cmd === 'build') return cmdBuild(Number(a[0]), Number(a[1]), a[2], a[3]);
  if (cmd === 'verify') return cmdVerify(a[0], a[1], a[2]);
  if (cmd === 'proofs') return cmdProofs(a[0], a[1], a[2]);
  console.error('usage: repo_js.mjs script|build|verify|proofs ...');
  process.exit(2);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
