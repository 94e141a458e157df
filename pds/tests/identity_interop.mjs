// pds/tests/identity_interop.mjs: the identity endpoints driven by the official @atproto/api
// client, with every effect checked by independent official code: the PLC directory's state and
// log through @did-plc/lib (its log validation), service tokens through @atproto/xrpc-server's
// verifyJwt and @atproto/crypto against the key in the DID document.
// Usage: node identity_interop.mjs <pds URL> <tests/interop dir> <plc URL> <pds log> <suffix>
// Prints one JSON line {"ok":true,...} on success; exits 1 with a message otherwise.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';

const [base, interopDir, plcUrl, logPath, suffix] = process.argv.slice(2);
const req = createRequire(path.join(interopDir, 'package.json'));
const { AtpAgent } = req('@atproto/api');
const crypto = req('@atproto/crypto');
const plc = req('@did-plc/lib');
const { verifyJwt } = req('@atproto/xrpc-server');

function check(cond, what) {
  if (!cond) {
    throw new Error('check failed: ' + what);
  }
}

// The last PLC token the pds mailed (its default mailer writes mails to its log).
function lastToken() {
  const all = [...fs.readFileSync(logPath, 'utf8').matchAll(/token: ([A-Z2-7]{5}-[A-Z2-7]{5})/g)];
  check(all.length > 0, 'a mailed token in the log');
  return all[all.length - 1][1];
}

async function expectError(p, name, what) {
  try {
    await p;
  } catch (e) {
    check(e.error === name, `${what}: got ${e.error} ${e.message}, want ${name}`);
    return;
  }
  throw new Error(`check failed: ${what} succeeded`);
}

// The directory's log must validate with the official library and end in the given state.
async function plcState(client, did) {
  const ops = await client.getOperationLog(did);
  await plc.validateOperationLog(did, ops);
  return { ops, data: await client.getDocumentData(did) };
}

async function handles(agent, client, did, handle) {
  const newHandle = 'id' + suffix + 'b.test';
  await agent.com.atproto.identity.updateHandle({ handle: newHandle });
  const res = await agent.com.atproto.identity.resolveHandle({ handle: newHandle });
  check(res.data.did === did, 'resolveHandle after updateHandle');
  await expectError(agent.com.atproto.identity.resolveHandle({ handle }), 'HandleNotFound',
                    'old handle');
  const { ops, data } = await plcState(client, did);
  check(ops.length === 2, 'two ops on the directory');
  check(data.alsoKnownAs[0] === 'at://' + newHandle, 'alsoKnownAs on the directory');
  const s = await agent.com.atproto.server.getSession();
  check(s.data.handle === newHandle, 'getSession handle');
  return newHandle;
}

async function plcFlow(agent, client, did, handle) {
  const rec = (await agent.com.atproto.identity.getRecommendedDidCredentials()).data;
  const before = (await plcState(client, did)).data;
  check(rec.rotationKeys[0] === before.rotationKeys[0], 'recommended rotation key');
  check(rec.verificationMethods.atproto === before.verificationMethods.atproto,
        'recommended signing key');
  check(rec.services.atproto_pds.endpoint === before.services.atproto_pds.endpoint,
        'recommended endpoint');
  check(rec.alsoKnownAs[0] === 'at://' + handle, 'recommended alsoKnownAs');

  await agent.com.atproto.identity.requestPlcOperationSignature();
  const userKey = await crypto.Secp256k1Keypair.create();
  const services = { ...before.services, extra: { type: 'ExtraService',
                                                   endpoint: 'https://extra.example.com' } };
  const signed = await agent.com.atproto.identity.signPlcOperation({
    token: lastToken(), rotationKeys: [userKey.did(), ...rec.rotationKeys], services });
  const op = signed.data.operation;
  check(op.type === 'plc_operation' && typeof op.sig === 'string', 'signed op shape');
  await agent.com.atproto.identity.submitPlcOperation({ operation: op });
  const { ops, data } = await plcState(client, did);
  check(ops.length === 3, 'the op is on the directory');
  check(data.rotationKeys[0] === userKey.did() && data.rotationKeys.length === 2,
        'rotation key added');
  check(data.services.extra && data.services.extra.endpoint === 'https://extra.example.com',
        'service added');
  // The op is signed by the PDS rotation key, which the previous op lists.
  await plc.assureValidSig(before.rotationKeys, op);

  // A token is single use.
  await expectError(agent.com.atproto.identity.signPlcOperation({ token: lastToken() }),
                    'InvalidToken', 'reused token');
  return data;
}

async function serviceAuth(agent, did, data) {
  const aud = 'did:web:appview.example.com';
  const lxm = 'app.bsky.feed.getTimeline';
  const res = await agent.com.atproto.server.getServiceAuth({ aud, lxm });
  const token = res.data.token;
  const key = data.verificationMethods.atproto;
  const payload = await verifyJwt(token, aud, lxm, async (iss) => {
    check(iss === did, 'iss');
    return key;
  });
  check(payload.iss === did && payload.aud === aud && payload.lxm === lxm, 'claims');
  const now = Math.floor(Date.now() / 1000);
  check(payload.exp > now && payload.exp <= now + 61, 'exp about a minute ahead');
  const [h, p, s] = token.split('.');
  const header = JSON.parse(Buffer.from(h, 'base64url').toString());
  check(header.alg === 'ES256K' && header.typ === 'JWT', 'header');
  const ok = await crypto.verifySignature(key, new TextEncoder().encode(h + '.' + p),
                                          new Uint8Array(Buffer.from(s, 'base64url')));
  check(ok, '@atproto/crypto verifies the signature with the DID document key');
  await expectError(agent.com.atproto.server.getServiceAuth({ aud, lxm, exp: now - 10 }),
                    'BadExpiration', 'exp in the past');
}

async function main() {
  const handle = 'id' + suffix + '.test';
  const agent = new AtpAgent({ service: base });
  const created = await agent.createAccount({ handle, email: handle + '@example.com',
                                              password: 'id-pass' });
  const did = created.data.did;
  const client = new plc.Client(plcUrl);
  const newHandle = await handles(agent, client, did, handle);
  const data = await plcFlow(agent, client, did, newHandle);
  await serviceAuth(agent, did, data);
  const key = (await agent.com.atproto.server.reserveSigningKey({})).data.signingKey;
  check(crypto.parseDidKey(key).jwtAlg === 'ES256K', 'reserved key is a k256 did:key');
  console.log(JSON.stringify({ ok: true, did, handle: newHandle }));
}

main().catch((e) => {
  console.log(JSON.stringify({ ok: false, error: String(e && e.stack ? e.stack : e) }));
  process.exit(1);
});
