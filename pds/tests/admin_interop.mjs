// pds/tests/admin_interop.mjs: the official @atproto/api client drives com.atproto.admin.* with
// admin basic auth: account info, takedown (login refused, then restored), record takedown
// (hidden from getRecord), invites, email, password, sendEmail and deleteAccount. The client
// checks every response against the official lexicons.
// Usage: node admin_interop.mjs <pds base URL> <tests/interop dir> <admin password> <suffix>
// Prints one JSON line {"ok":true,...} on success; exits 1 with a message otherwise.
import { createRequire } from 'node:module';
import path from 'node:path';

const [base, interopDir, adminPassword, suffix] = process.argv.slice(2);
const req = createRequire(path.join(interopDir, 'package.json'));
const { AtpAgent } = req('@atproto/api');

function check(cond, what) {
  if (!cond) {
    throw new Error('check failed: ' + what);
  }
}

const basic = (pw) => 'Basic ' + Buffer.from('admin:' + pw).toString('base64');
const adminOpts = { headers: { authorization: basic(adminPassword) } };
const adminPost = { ...adminOpts, encoding: 'application/json' };

// The XRPC error of a call that must fail (null if it succeeded).
async function failure(p) {
  try {
    await p;
    return null;
  } catch (e) {
    return { status: e.status, error: e.error };
  }
}

async function main() {
  const handle = 'adm' + suffix + '.test';
  const agent = new AtpAgent({ service: base });
  const created = await agent.createAccount({ handle, email: handle + '@example.com',
                                              password: 'adm-pass' });
  const did = created.data.did;
  const admin = new AtpAgent({ service: base }).com.atproto.admin;

  const info = await admin.getAccountInfo({ did }, adminOpts);
  check(info.data.did === did && info.data.handle === handle, 'getAccountInfo');
  check(info.data.email === handle + '@example.com', 'getAccountInfo email');
  const infos = await admin.getAccountInfos({ dids: [did, 'did:plc:nobodyhere'] }, adminOpts);
  check(infos.data.infos.length === 1 && infos.data.infos[0].did === did, 'getAccountInfos');

  const wrong = await failure(admin.getAccountInfo({ did }, { headers: { authorization:
                                                                          basic('nope') } }));
  check(wrong && wrong.status === 401, 'wrong admin password refused');
  const none = await failure(admin.getAccountInfo({ did }));
  check(none && none.status === 401, 'missing admin auth refused');

  // A post, taken down and restored.
  const post = await agent.com.atproto.repo.createRecord({
    repo: did, collection: 'app.bsky.feed.post',
    record: { $type: 'app.bsky.feed.post', text: 'admin', createdAt: new Date().toISOString() },
  });
  const rkey = post.data.uri.split('/').pop();
  const strongRef = { $type: 'com.atproto.repo.strongRef', uri: post.data.uri,
                      cid: post.data.cid };
  const recDown = await admin.updateSubjectStatus(
    { subject: strongRef, takedown: { applied: true, ref: 'rec' } }, adminPost);
  check(recDown.data.takedown.applied === true, 'record takedown answer');
  const recStatus = await admin.getSubjectStatus({ uri: post.data.uri }, adminOpts);
  check(recStatus.data.takedown.applied === true && recStatus.data.takedown.ref === 'rec',
        'record takedown status');
  const hidden = await failure(agent.com.atproto.repo.getRecord(
    { repo: did, collection: 'app.bsky.feed.post', rkey }));
  check(hidden && hidden.error === 'RecordNotFound', 'taken-down record hidden');
  await admin.updateSubjectStatus({ subject: strongRef, takedown: { applied: false } }, adminPost);
  const back = await agent.com.atproto.repo.getRecord(
    { repo: did, collection: 'app.bsky.feed.post', rkey });
  check(back.data.cid === post.data.cid, 'restored record readable');

  // The account, taken down and restored.
  const repoRef = { $type: 'com.atproto.admin.defs#repoRef', did };
  const down = await admin.updateSubjectStatus(
    { subject: repoRef, takedown: { applied: true, ref: 'acct' } }, adminPost);
  check(down.data.subject.did === did, 'takedown answer');
  const st = await admin.getSubjectStatus({ did }, adminOpts);
  check(st.data.takedown.applied && st.data.takedown.ref === 'acct', 'takedown status');
  check(st.data.deactivated && st.data.deactivated.applied === false, 'not deactivated');
  const refused = await failure(new AtpAgent({ service: base })
    .login({ identifier: handle, password: 'adm-pass' }));
  check(refused && refused.error === 'AccountTakedown', 'login refused while taken down');
  await admin.updateSubjectStatus({ subject: repoRef, takedown: { applied: false } }, adminPost);
  const again = new AtpAgent({ service: base });
  await again.login({ identifier: handle, password: 'adm-pass' });
  check(again.session.did === did, 'login after restore');

  // Invites, email, password, mail.
  await admin.disableAccountInvites({ account: did }, adminPost);
  const inv = await admin.getAccountInfo({ did }, adminOpts);
  check(inv.data.invitesDisabled === true, 'invites disabled');
  await admin.enableAccountInvites({ account: did }, adminPost);
  const codes = await admin.getInviteCodes({ limit: 5 }, adminOpts);
  check(Array.isArray(codes.data.codes), 'getInviteCodes');
  await admin.disableInviteCodes({ codes: [], accounts: [did] }, adminPost);
  await admin.updateAccountEmail({ account: did, email: 'moved' + suffix + '@example.com' },
                                 adminPost);
  await admin.updateAccountPassword({ did, password: 'adm-pass-2' }, adminPost);
  const relog = new AtpAgent({ service: base });
  await relog.login({ identifier: 'moved' + suffix + '@example.com', password: 'adm-pass-2' });
  check(relog.session.did === did, 'login with the new email and password');
  const mail = await admin.sendEmail({ recipientDid: did, senderDid: did, content: 'hi' },
                                     adminPost);
  check(mail.data.sent === true, 'sendEmail');

  // deleteAccount of a second account.
  const other = new AtpAgent({ service: base });
  const o = await other.createAccount({ handle: 'del' + suffix + '.test',
                                        email: 'del' + suffix + '@example.com',
                                        password: 'del-pass' });
  await admin.deleteAccount({ did: o.data.did }, adminPost);
  const gone = await failure(admin.getAccountInfo({ did: o.data.did }, adminOpts));
  check(gone && gone.error === 'NotFound', 'deleted account gone');

  console.log(JSON.stringify({ ok: true, did }));
}

main().catch((e) => {
  console.log(JSON.stringify({ ok: false, error: String(e && e.stack ? e.stack : e) }));
  process.exit(1);
});
