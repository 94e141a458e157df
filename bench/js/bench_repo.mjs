// bench_repo.mjs DIR PHASE [N|M]: the official @atproto/repo 0.9.1 doing bench_repo.c's work,
// one phase per process (peak memory is the process's own), figures named as bench_repo's:
//   build [N]    N corpus records under the same TID paths in one commit (Repo.create with the
//                records as initial writes), then the full export (getFullRepo) to repo_js.car
//   import       repo_js.car streamed in 64 KiB chunks through readCarStream (block hashes) and
//                fully verified (verifyRepo, i.e. verifyRepoCar's body: signature, whole MST,
//                every leaf present), its blocks put in a MemoryBlockstore
//   commits [M]  after an untimed load (the CAR streamed the same way, then Repo.load): M
//                single-record commits (formatCommit + applyCommit),
//                the same mix as bench_repo.c, each then checked the sync v1.1 way from its
//                #commit CAR (relevantBlocks): @atproto/repo 0.9.1 has no inversion function,
//                so it is built from its primitives (readCarWithRoot, verifyCommitSig, MST
//                get/add/update/delete/getPointer), as indigo and @atproto/sync do it.
// Times are the process's CPU time (user + system, GC and JIT threads included).
// Memory, as bench_repo.c: each phase prints its raw peak (VmHWM), its base (VmRSS right after
// the shared inputs are loaded: the corpus, or nothing for import) and net = peak - base. The
// CAR is streamed on both sides, so the corpus is the only input either side holds whole.

import { createHash } from 'node:crypto';
import { createReadStream, readFileSync, writeFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { atcrypto, lexCbor } from '../../tests/interop/libs.mjs';
import atrepo from '../../tests/interop/node_modules/@atproto/repo/dist/index.js';

const { BlockMap, MST, MemoryBlockstore, Repo, WriteOpAction, blocksToCarFile, concatBytesAsync,
  def, getFullRepo, readCarStream, readCarWithRoot, verifyCommitSig, verifyRepo } = atrepo;
const DID = 'did:plc:benchrepoabcdefghijklmno';
const B32 = '234567abcdefghijklmnopqrstuvwxyz';

const [dir, phase, argN] = process.argv.slice(2);
if (!dir || !phase) {
  console.error('usage: bench_repo.mjs DIR build [N] | import | commits [M]');
  process.exit(2);
}
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const fig = (name, v) => console.log(`${name} ${v.toFixed(v < 100 ? 2 : 1)}`);
const statusMB = (key) => {
  const m = new RegExp(`${key}:\\s+(\\d+)`).exec(readFileSync('/proc/self/status', 'utf8'));
  return Number(m[1]) / 1024;
};
const memFigs = (phase, baseMB) => {
  const peak = statusMB('VmHWM');
  fig(`repo.${phase}.peak_MB`, peak);
  fig(`repo.${phase}.base_MB`, baseMB);
  fig(`repo.${phase}.net_MB`, peak - baseMB);
};
const keypair = () => atcrypto.Secp256k1Keypair.import(
  new Uint8Array(createHash('sha256').update('atproto-c repo bench k256').digest()));

// bench_repo.c's tid_for.
const tidFor = (i) => {
  let v = ((1700000000000000n + (BigInt(i) * 1000003n) / 1000n) << 10n) | BigInt(i % 1024);
  let s = '';
  for (let k = 0; k < 13; k++) {
    s = B32[Number(v & 31n)] + s;
    v >>= 5n;
  }
  return s;
};

// The corpus as raw blocks, decoded on demand: the decoded form of all 100,000 records would
// weigh on this side's peak memory in phases that need only a few of them.
function loadCorpus() {
  const all = readFileSync(join(dir, 'corpus.cbor'));
  const idx = readFileSync(join(dir, 'corpus.idx'));
  const raw = [];
  for (let i = 0, off = 0; i < idx.length / 4; i++) {
    const len = idx.readUInt32LE(4 * i);
    raw.push(new Uint8Array(all.buffer, all.byteOffset + off, len));
    off += len;
  }
  return { length: raw.length, get: (i) => lexCbor.decode(raw[i % raw.length]) };
}

// repo_js.car streamed in 64 KiB chunks, as bench_repo.c feeds its importer, into a BlockMap
// (readCarStream checks every block's hash, as readCarWithRoot does).
async function readCarFile() {
  const file = createReadStream(join(dir, 'repo_js.car'), { highWaterMark: 1 << 16 });
  const car = await readCarStream(file);
  if (car.roots.length !== 1) throw new Error(`expected one root, got ${car.roots.length}`);
  const blocks = new BlockMap();
  for await (const b of car.blocks) blocks.set(b.cid, b.bytes);
  return { root: car.roots[0], blocks };
}

const write = (recs, action, i, recIdx) => {
  const w = { action, collection: recs.get(i).$type, rkey: tidFor(i) };
  if (action !== WriteOpAction.Delete) w.record = recs.get(recIdx);
  return w;
};

async function build(n) {
  const recs = loadCorpus();
  const base = statusMB('VmRSS');
  n = Math.min(n || recs.length, recs.length);
  const writes = [];
  for (let i = 0; i < n; i++) writes.push(write(recs, WriteOpAction.Create, i, i));
  const key = await keypair();
  const storage = new MemoryBlockstore();
  const t0 = cpu();
  const repo = await Repo.create(storage, DID, key, writes);
  const t1 = cpu();
  fig('repo.build.records_per_s', n / (t1 - t0));
  const car = await concatBytesAsync(getFullRepo(storage, repo.cid));
  const t2 = cpu();
  writeFileSync(join(dir, 'repo_js.car'), car);
  fig('repo.export.records_per_s', n / (t2 - t1));
  fig('repo.export.MBps', car.length / (t2 - t1) / 1e6);
  memFigs('build', base);
  console.log(`repo.root ${repo.commit.data.toString()}`);
}

async function importCar() {
  const base = statusMB('VmRSS');
  const key = await keypair();
  const storage = new MemoryBlockstore();
  const t0 = cpu();
  const car = await readCarFile();
  const v = await verifyRepo(car.blocks, car.root, DID, key.did());
  await storage.putMany(v.commit.newBlocks);
  await storage.updateRoot(v.commit.cid, v.commit.rev);
  const t1 = cpu();
  const carLen = (await stat(join(dir, 'repo_js.car'))).size;
  fig('repo.import.records_per_s', v.creates.length / (t1 - t0));
  fig('repo.import.MBps', carLen / (t1 - t0) / 1e6);
  memFigs('import', base);
}

// The relay's check of one #commit: commit and signature, forward check, inverse op, root.
async function invert(carBytes, op, prevData, didKey) {
  const car = await readCarWithRoot(carBytes);
  const bs = new MemoryBlockstore(car.blocks);
  const commit = await bs.readObj(car.root, def.commit);
  if (commit.did !== DID || !(await verifyCommitSig(commit, didKey))) throw new Error('commit');
  let mst = MST.load(bs, commit.data);
  const got = await mst.get(op.path);
  if (op.cid ? !got?.equals(op.cid) : got !== null) throw new Error(`forward ${op.path}`);
  if (op.action === 'create') mst = await mst.delete(op.path);
  else if (op.action === 'update') mst = await mst.update(op.path, op.prev);
  else mst = await mst.add(op.path, op.prev);
  if (!(await mst.getPointer()).equals(prevData)) throw new Error(`root ${op.path}`);
}

async function commits(m) {
  const recs = loadCorpus();
  const base = statusMB('VmRSS');
  const car = await readCarFile();
  const key = await keypair();
  let repo = await Repo.load(new MemoryBlockstore(car.blocks), car.root);
  const n = recs.length;
  let tApply = 0;
  let tInvert = 0;
  for (let i = 0; i < m; i++) {
    let w;
    if (i % 10 === 3) w = write(recs, WriteOpAction.Update, 1000 + ((Math.floor(i / 10) * 37) % (n - 1000)), i + 7);
    else if (i % 10 === 7) w = write(recs, WriteOpAction.Delete, Math.floor(i / 10), 0);
    else w = write(recs, WriteOpAction.Create, n + i, n + i);
    const path = `${w.collection}/${w.rkey}`;
    const prev = await repo.data.get(path);
    const prevData = repo.commit.data;
    const t0 = cpu();
    const cd = await repo.formatCommit(w, key);
    repo = await repo.applyCommit(cd);
    const t1 = cpu();
    const slice = await blocksToCarFile(cd.cid, cd.relevantBlocks);
    const cid = w.action === WriteOpAction.Delete ? null : await repo.data.get(path);
    const t2 = cpu();
    await invert(slice, { action: w.action, path, cid, prev }, prevData, key.did());
    tInvert += cpu() - t2;
    tApply += t1 - t0;
  }
  fig('repo.commit.per_s', m / tApply);
  fig('repo.invert.per_s', m / tInvert);
  memFigs('commits', base);
}

if (phase === 'build') await build(Number(argN || 0));
else if (phase === 'import') await importCar();
else if (phase === 'commits') await commits(Number(argN || 10000));
else {
  console.error(`bench_repo.mjs: unknown phase ${phase}`);
  process.exit(2);
}
