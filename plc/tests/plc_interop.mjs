// plc/tests/plc_interop.mjs: ops created and signed by the official @did-plc/lib are accepted by
// our plc daemon, and what it serves back is what the library expects.
// Usage: node plc_interop.mjs <plc base URL> <tests/interop dir> [did created by our C code]
// Prints one JSON line {"ok":true,...} on success; exits 1 with a message otherwise.
import { createRequire } from 'node:module';
import path from 'node:path';

const [base, interopDir, ourDid] = process.argv.slice(2);
const req = createRequire(path.join(interopDir, 'package.json'));
const plc = req('@did-plc/lib');
// The library's own @atproto/crypto (0.1.x), for keypairs it knows how to sign with. Only k256:
// that version's P-256 keypair (WebCrypto) does not normalise signatures to low-S, which the
// spec (and our directory) requires.
const libReq = createRequire(req.resolve('@did-plc/lib'));
const { Secp256k1Keypair } = libReq('@atproto/crypto');

function check(cond, what) {
  if (!cond) {
    throw new Error('check failed: ' + what);
  }
}

async function status(p) {
  const res = await fetch(base + p);
  return res.status;
}

async function main() {
  const client = new plc.Client(base);
  const k1 = await Secp256k1Keypair.create();
  const k2 = await Secp256k1Keypair.create();
  const signing = await Secp256k1Keypair.create();
  const did = await client.createDid({
    signingKey: signing.did(),
    handle: 'alice.test',
    pds: 'https://pds.example.com',
    rotationKeys: [k1.did(), k2.did()],
    signer: k1,
  });
  await client.updateHandle(did, k2, 'bob.test');
  await client.updatePds(did, k1, 'https://pds2.example.com');
  await client.updateRotationKeys(did, k1, [k1.did()]);

  const doc = await client.getDocument(did);
  check(doc.id === did, 'document id');
  check(doc.alsoKnownAs[0] === 'at://bob.test', 'handle in document');
  check(doc.service[0].serviceEndpoint === 'https://pds2.example.com', 'pds in document');
  check(doc.verificationMethod[0].publicKeyMultibase === signing.did().slice(8), 'signing key');
  const data = await client.getDocumentData(did);
  check(data.rotationKeys.length === 1 && data.rotationKeys[0] === k1.did(), 'data keys');
  const log = await client.getOperationLog(did);
  check(log.length === 4, 'log length ' + log.length);
  const state = await plc.validateOperationLog(did, log);
  check(state && state.alsoKnownAs[0] === 'at://bob.test', 'library validates our log');
  const audit = await client.getAuditableLog(did);
  check(audit.length === 4 && audit.every((e) => !e.nullified), 'audit');
  const last = await client.getLastOp(did);
  check(last.rotationKeys.length === 1, 'last op');

  // k2 was removed: an op it signs must be refused, and the log must stay as it was.
  let refused = false;
  try {
    await client.updateHandle(did, k2, 'mallory.test');
  } catch (e) {
    refused = e.status === 400;
  }
  check(refused, 'op signed by a removed key refused with 400');
  check((await client.getOperationLog(did)).length === 4, 'log untouched');

  await client.tombstone(did, k1);
  const gone = await status('/' + did);
  check(gone === 410 || gone === 404, 'tombstoned DID status ' + gone);

  let ours = null;
  if (ourDid) {
    const ourLog = await client.getOperationLog(ourDid);
    const st = await plc.validateOperationLog(ourDid, ourLog);
    ours = { did: ourDid, ops: ourLog.length, valid: st !== undefined };
  }
  const exported = await client.export(undefined, 1000);
  check(exported.some((e) => e.did === did), 'export lists the DID');
  console.log(JSON.stringify({ ok: true, did, ops: 5, tombstoned: gone, ours }));
}

main().catch((e) => {
  console.log(JSON.stringify({ ok: false, error: String(e && e.message ? e.message : e) }));
  if (process.env.PLC_DEBUG) console.error(e);
  process.exit(1);
});
