// pds/tests/firehose_sub.mjs: a firehose subscriber built on the official libraries, for
// test_pds_firehose.c. Reads raw frames with `ws`, decodes them with @atproto/common's
// cborDecodeMulti, and checks every #commit as a relay would:
//   - blocks is a CAR whose root is `commit`; the commit block decodes, version 3, its did/rev
//     equal the event's repo/rev, its signature verifies with the account's key from PLC
//     (@atproto/repo verifyCommitSig);
//   - every op is proven by the blocks against the new tree (@atproto/repo verifyProofs, as
//     @atproto/sync's parseCommitAuthenticated does), record blocks match their CIDs;
//   - sync v1.1 inversion: the new MST loaded from ONLY the event's blocks, with the ops undone
//     (create -> delete, update/delete -> put prev back), has root == prevData.
// Usage: node firehose_sub.mjs <tests/interop dir> <ws url> <plc url> <count> <timeout ms>
//   Stops after <count> sequenced events (0: only at close/timeout). Prints "READY" once the
//   socket is open, then one JSON line {events:[...], close:{code,reason}, timedOut}.
import { createRequire } from 'node:module';
import path from 'node:path';

const [interopDir, url, plcUrl, countArg, timeoutArg] = process.argv.slice(2);
const req = createRequire(path.join(interopDir, 'package.json'));
const WebSocket = req('ws');
const { cborDecodeMulti } = req('@atproto/common');
const repo = req('@atproto/repo');

const want = Number(countArg);
const keys = new Map();
const events = [];
let chain = Promise.resolve();
let done = false;

async function didKey(did) {
  if (!keys.has(did)) {
    const res = await fetch(`${plcUrl}/${encodeURIComponent(did)}`);
    const doc = await res.json();
    const vm = (doc.verificationMethod || []).find((m) => m.id.endsWith('#atproto'));
    keys.set(did, vm ? 'did:key:' + vm.publicKeyMultibase : null);
  }
  return keys.get(did);
}

async function invert(blocks, commit, ops, prevData) {
  const storage = new repo.MemoryBlockstore(blocks);
  let tree = repo.MST.load(storage, commit.data);
  for (const op of [...ops].reverse()) {
    if (op.action === 'create') {
      tree = await tree.delete(op.path);
    } else if (op.action === 'update') {
      tree = await tree.update(op.path, op.prev);
    } else {
      tree = await tree.add(op.path, op.prev);
    }
  }
  return (await tree.getPointer()).equals(prevData);
}

async function checkCommit(body, out) {
  const car = await repo.readCarWithRoot(body.blocks);
  out.rootOk = car.root.equals(body.commit);
  const commit = repo.cborToLex(car.blocks.get(body.commit));
  out.fieldsOk = commit.version === 3 && commit.did === body.repo && commit.rev === body.rev;
  const key = await didKey(body.repo);
  out.sigOk = key ? await repo.verifyCommitSig(commit, key) : false;
  const claims = body.ops.map((op) => {
    const { collection, rkey } = repo.parseDataKey(op.path);
    return { collection, rkey, cid: op.action === 'delete' ? null : op.cid };
  });
  if (claims.length) {
    const res = await repo.verifyProofs(body.blocks, claims, body.repo, key);
    out.opsOk = res.unverified.length === 0 && res.verified.length === claims.length;
  } else {
    out.opsOk = true;
  }
  out.opsShapeOk = body.ops.every((op) =>
    (op.action === 'delete') === (op.cid === null) &&
    (op.action === 'create') === (op.prev === undefined));
  out.invertOk = body.prevData ? await invert(car.blocks, commit, body.ops, body.prevData) : null;
  out.since = body.since;
  out.hasPrevData = body.prevData !== undefined;
  out.deprecatedOk = body.tooBig === false && body.rebase === false &&
    Array.isArray(body.blobs) && body.blobs.length === 0;
}

async function handle(buf) {
  const [header, body] = cborDecodeMulti(new Uint8Array(buf));
  const e = { op: header.op, t: header.t ?? null };
  if (header.op === -1) {
    e.error = body.error;
    e.message = body.message ?? null;
  } else {
    for (const k of ['seq', 'did', 'repo', 'rev', 'handle', 'active', 'status', 'name', 'time']) {
      if (body[k] !== undefined) {
        e[k] = body[k];
      }
    }
    if (header.t === '#commit') {
      e.actions = body.ops.map((op) => op.action);
      try {
        await checkCommit(body, e);
      } catch (err) {
        e.checkError = String(err);
      }
    }
  }
  events.push(e);
  if (want > 0 && events.filter((x) => x.seq !== undefined).length >= want) {
    finish(null);
  }
}

function finish(close) {
  if (done) {
    return;
  }
  done = true;
  chain.then(() => {
    console.log(JSON.stringify({ events, close, timedOut: close === 'timeout' }));
    process.exit(0);
  });
}

const ws = new WebSocket(url);
const timer = setTimeout(() => finish('timeout'), Number(timeoutArg));
ws.on('open', () => console.log('READY'));
ws.on('message', (data) => {
  chain = chain.then(() => handle(data)).catch((err) => events.push({ decodeError: String(err) }));
});
ws.on('unexpected-response', (_req, res) => {
  clearTimeout(timer);
  finish({ code: res.statusCode, reason: 'http' });
});
ws.on('close', (code, reason) => {
  clearTimeout(timer);
  finish({ code, reason: reason.toString() });
});
ws.on('error', (err) => events.push({ wsError: String(err) }));
