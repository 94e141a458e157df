// pds/tests/pds_e2e.mjs: the official @atproto/api client drives our pds through every endpoint
// family, one step after another, as a user of the real client would: account, session, blob,
// posts with an image, profile, listing, applyWrites, deletion, app passwords, token refresh on
// expiry, preferences, handle change, admin takedown and restore, account deletion.
// Every JSON response is checked against the published lexicons (@atproto/lexicon's
// assertValidXrpcOutput), and after every kind of write the repo (com.atproto.sync.getRepo) is
// verified with @atproto/repo against the signing key in the DID document from the directory.
//
// Usage: node pds_e2e.mjs <pds url> <plc url> <tests/interop dir> <lexicons dir> <pds log file>
//                          <admin password> <access token ttl seconds>
// Prints one JSON line per step {"step","ok","msg"} and a last line {"done":N}.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const [base, plcUrl, interopDir, lexDir, logFile, adminPw, ttlArg] = process.argv.slice(2);
const req = createRequire(path.join(interopDir, 'package.json'));
const { AtpAgent } = req('@atproto/api');
const { Lexicons } = req('@atproto/lexicon');
const repoLib = req('@atproto/repo');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const adminHeaders = { authorization: 'Basic ' + Buffer.from('admin:' + adminPw).toString('base64') };

function check(cond, what) {
  if (!cond) {
    throw new Error('check failed: ' + what);
  }
}

// ---- lexicons ----
function loadLexicons(dir) {
  const lex = new Lexicons();
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) {
        walk(p);
      } else if (e.name.endsWith('.json')) {
        try {
          lex.add(JSON.parse(fs.readFileSync(p, 'utf8')));
        } catch {
          // a schema this lexicon version cannot read: its endpoints are then not checked
        }
      }
    }
  };
  walk(dir);
  return lex;
}
const lex = loadLexicons(lexDir);
let validated = 0;
function valid(nsid, res) {
  lex.assertValidXrpcOutput(nsid, res.data);
  validated++;
  return res.data;
}

// ---- repo verification ----
async function signingKeyOf(did) {
  const doc = await (await fetch(plcUrl + '/' + did)).json();
  const vm = doc.verificationMethod.find((m) => m.id.endsWith('#atproto'));
  return 'did:key:' + vm.publicKeyMultibase;
}

async function verifyRepo(agent, did, expectPaths) {
  const res = await agent.com.atproto.sync.getRepo({ did });
  const key = await signingKeyOf(did);
  const v = await repoLib.verifyRepoCar(new Uint8Array(res.data), did, key);
  const paths = v.creates.map((c) => c.collection + '/' + c.rkey).sort();
  check(JSON.stringify(paths) === JSON.stringify([...expectPaths].sort()),
        'repo records ' + JSON.stringify(paths) + ' vs ' + JSON.stringify([...expectPaths]));
}

// ---- a tiny PNG (1x1, valid) ----
const PNG = Buffer.from(
  '89504e470d0a1a0a0000000d4948445200000001000000010806000000' +
  '1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082', 'hex');

// ---- the steps ----
const st = { paths: new Set() };
const handle = 'e2e' + (process.pid % 100000) + '.test';
st.handle = handle;
const pathOf = (uri) => uri.split('/').slice(3).join('/');

const steps = [
  ['describeServer', async () => {
    st.agent = new AtpAgent({ service: base });
    const d = valid('com.atproto.server.describeServer',
                    await st.agent.com.atproto.server.describeServer());
    check(d.availableUserDomains.includes('.test'), 'domains');
  }],
  ['createAccount', async () => {
    const res = await st.agent.createAccount({ handle, email: handle + '@example.com',
                                               password: 'e2e-pass' });
    valid('com.atproto.server.createAccount', res);
    st.did = res.data.did;
    const s = valid('com.atproto.server.getSession', await st.agent.com.atproto.server.getSession());
    check(s.handle === handle && s.did === st.did, 'session');
    await verifyRepo(st.agent, st.did, st.paths);
  }],
  ['uploadBlob and post with an image', async () => {
    const up = valid('com.atproto.repo.uploadBlob',
                     await st.agent.uploadBlob(PNG, { encoding: 'image/png' }));
    check(up.blob.mimeType === 'image/png' && up.blob.size === PNG.length, 'blob ref');
    const post = await st.agent.post({
      text: 'hello from the official client',
      createdAt: new Date().toISOString(),
      embed: { $type: 'app.bsky.embed.images', images: [{ image: up.blob, alt: 'a pixel' }] },
    });
    st.post = post;
    st.paths.add(pathOf(post.uri));
    const blob = await st.agent.com.atproto.sync.getBlob({ did: st.did,
                                                          cid: up.blob.ref.toString() });
    check(Buffer.from(blob.data).equals(PNG), 'blob bytes back');
    await verifyRepo(st.agent, st.did, st.paths);
  }],
  ['getRecord', async () => {
    const rkey = st.post.uri.split('/').pop();
    const r = valid('com.atproto.repo.getRecord', await st.agent.com.atproto.repo.getRecord(
      { repo: st.did, collection: 'app.bsky.feed.post', rkey }));
    check(r.value.text === 'hello from the official client' && r.cid === st.post.cid, 'record');
  }],
  ['profile (putRecord)', async () => {
    await st.agent.upsertProfile((old) => ({ ...(old || {}), displayName: 'E2E',
                                             description: 'made by pds_e2e.mjs' }));
    await st.agent.upsertProfile((old) => ({ ...old, displayName: 'E2E again' }));
    st.paths.add('app.bsky.actor.profile/self');
    const r = valid('com.atproto.repo.getRecord', await st.agent.com.atproto.repo.getRecord(
      { repo: st.did, collection: 'app.bsky.actor.profile', rkey: 'self' }));
    check(r.value.displayName === 'E2E again', 'profile updated');
    await verifyRepo(st.agent, st.did, st.paths);
  }],
  ['applyWrites and listRecords', async () => {
    const now = new Date().toISOString();
    const writes = ['one', 'two', 'three'].map((t) => ({
      $type: 'com.atproto.repo.applyWrites#create', collection: 'app.bsky.feed.post',
      value: { $type: 'app.bsky.feed.post', text: t, createdAt: now } }));
    const res = valid('com.atproto.repo.applyWrites',
                      await st.agent.com.atproto.repo.applyWrites({ repo: st.did, writes }));
    for (const r of res.results) {
      st.paths.add(pathOf(r.uri));
    }
    const page1 = valid('com.atproto.repo.listRecords', await st.agent.com.atproto.repo.listRecords(
      { repo: st.did, collection: 'app.bsky.feed.post', limit: 2 }));
    check(page1.records.length === 2 && page1.cursor, 'first page');
    const page2 = valid('com.atproto.repo.listRecords', await st.agent.com.atproto.repo.listRecords(
      { repo: st.did, collection: 'app.bsky.feed.post', limit: 10, cursor: page1.cursor }));
    check(page2.records.length === 2, 'second page: ' + page2.records.length);
    const rev = valid('com.atproto.repo.listRecords', await st.agent.com.atproto.repo.listRecords(
      { repo: st.did, collection: 'app.bsky.feed.post', reverse: true }));
    check(rev.records[0].uri === page2.records[1].uri, 'reverse order');
    const d = valid('com.atproto.repo.describeRepo',
                    await st.agent.com.atproto.repo.describeRepo({ repo: st.did }));
    check(d.collections.includes('app.bsky.feed.post') && d.handle === handle, 'describeRepo');
    await verifyRepo(st.agent, st.did, st.paths);
  }],
  ['deleteRecord', async () => {
    await st.agent.deletePost(st.post.uri);
    st.paths.delete(pathOf(st.post.uri));
    let gone = false;
    try {
      await st.agent.com.atproto.repo.getRecord({ repo: st.did, collection: 'app.bsky.feed.post',
                                                  rkey: st.post.uri.split('/').pop() });
    } catch (e) {
      gone = e.error === 'RecordNotFound';
    }
    check(gone, 'deleted record not found');
    await verifyRepo(st.agent, st.did, st.paths);
  }],
  ['app passwords', async () => {
    const ap = valid('com.atproto.server.createAppPassword',
                     await st.agent.com.atproto.server.createAppPassword({ name: 'e2e app' }));
    const list = valid('com.atproto.server.listAppPasswords',
                       await st.agent.com.atproto.server.listAppPasswords());
    check(list.passwords.some((p) => p.name === 'e2e app'), 'listed');
    const app = new AtpAgent({ service: base });
    await app.login({ identifier: handle, password: ap.password });
    await app.post({ text: 'via an app password', createdAt: new Date().toISOString() })
      .then((p) => st.paths.add(pathOf(p.uri)));
    let refused = false;
    try {
      await app.com.atproto.server.createAppPassword({ name: 'nested' });
    } catch (e) {
      refused = e.status === 400 || e.status === 401 || e.status === 403;
    }
    check(refused, 'app password cannot make app passwords');
    await st.agent.com.atproto.server.revokeAppPassword({ name: 'e2e app' });
    let loginFails = false;
    try {
      await new AtpAgent({ service: base }).login({ identifier: handle, password: ap.password });
    } catch {
      loginFails = true;
    }
    check(loginFails, 'revoked app password refused');
  }],
  ['token refresh on expiry', async () => {
    const before = st.agent.session.accessJwt;
    await sleep((Number(ttlArg) + 1) * 1000);
    const s = valid('com.atproto.server.getSession', await st.agent.com.atproto.server.getSession());
    check(s.did === st.did && st.agent.session.accessJwt !== before, 'refreshed by the client');
  }],
  ['preferences', async () => {
    const prefs = [{ $type: 'app.bsky.actor.defs#adultContentPref', enabled: true },
                   { $type: 'app.bsky.actor.defs#savedFeedsPrefV2', items: [] }];
    await st.agent.app.bsky.actor.putPreferences({ preferences: prefs });
    const got = valid('app.bsky.actor.getPreferences',
                      await st.agent.app.bsky.actor.getPreferences());
    check(got.preferences.length === 2 && got.preferences[0].enabled === true, 'round trip');
  }],
  ['updateHandle', async () => {
    const h2 = 'e2x' + (process.pid % 100000) + '.test';
    await st.agent.com.atproto.identity.updateHandle({ handle: h2 });
    const r = valid('com.atproto.identity.resolveHandle',
                    await st.agent.com.atproto.identity.resolveHandle({ handle: h2 }));
    check(r.did === st.did, 'resolves');
    const doc = await (await fetch(plcUrl + '/' + st.did)).json();
    check(doc.alsoKnownAs.includes('at://' + h2), 'PLC document updated');
    st.handle = h2;
  }],
  ['admin takedown and restore', async () => {
    const admin = new AtpAgent({ service: base });
    const subject = { $type: 'com.atproto.admin.defs#repoRef', did: st.did };
    valid('com.atproto.admin.getAccountInfo', await admin.com.atproto.admin.getAccountInfo(
      { did: st.did }, { headers: adminHeaders }));
    await admin.com.atproto.admin.updateSubjectStatus(
      { subject, takedown: { applied: true, ref: 'e2e-ref' } }, { headers: adminHeaders });
    const status = valid('com.atproto.admin.getSubjectStatus',
                         await admin.com.atproto.admin.getSubjectStatus({ did: st.did },
                                                                        { headers: adminHeaders }));
    check(status.takedown && status.takedown.applied === true, 'takedown applied');
    let refused = '';
    try {
      await new AtpAgent({ service: base }).login({ identifier: st.handle, password: 'e2e-pass' });
    } catch (e) {
      refused = e.error;
    }
    check(refused === 'AccountTakedown', 'login refused: ' + refused);
    await admin.com.atproto.admin.updateSubjectStatus(
      { subject, takedown: { applied: false } }, { headers: adminHeaders });
    await new AtpAgent({ service: base }).login({ identifier: st.handle, password: 'e2e-pass' });
  }],
  ['deleteAccount', async () => {
    await st.agent.login({ identifier: st.handle, password: 'e2e-pass' });
    await st.agent.com.atproto.server.requestAccountDelete();
    let token = '';
    for (let i = 0; i < 50 && !token; i++) {
      const lines = fs.readFileSync(logFile, 'utf8').split('\n').filter((l) => l.includes('"mail"'));
      const m = lines.length ? /([A-Za-z0-9]{5}-[A-Za-z0-9]{5})/.exec(lines[lines.length - 1]) : null;
      token = m ? m[1] : '';
      if (!token) {
        await sleep(100);
      }
    }
    check(token, 'deletion token in the mail log');
    await st.agent.com.atproto.server.deleteAccount({ did: st.did, password: 'e2e-pass', token });
    let gone = '';
    try {
      await new AtpAgent({ service: base }).com.atproto.repo.describeRepo({ repo: st.did });
    } catch (e) {
      gone = e.error;
    }
    check(gone === 'RepoNotFound', 'repo gone: ' + gone);
  }],
];

let n = 0;
for (const [name, fn] of steps) {
  try {
    await fn();
    console.log(JSON.stringify({ step: name, ok: true }));
  } catch (e) {
    console.log(JSON.stringify({ step: name, ok: false, msg: String(e && (e.stack || e)) }));
  }
  n++;
}
console.log(JSON.stringify({ done: n, validated }));
