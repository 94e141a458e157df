// pds/tests/pds_interop.mjs: the official @atproto/api client (AtpAgent) against our pds:
// createAccount, login, getSession, token refresh on expiry (the client's own logic), app
// password login, describeServer and resolveHandle, with the responses parsed by the client.
// Usage: node pds_interop.mjs <pds base URL> <tests/interop dir> <handle suffix> [invite code]
// Prints one JSON line {"ok":true,...} on success; exits 1 with a message otherwise.
import { createRequire } from 'node:module';
import path from 'node:path';

const [base, interopDir, suffix, inviteCode] = process.argv.slice(2);
const req = createRequire(path.join(interopDir, 'package.json'));
const { AtpAgent } = req('@atproto/api');

function check(cond, what) {
  if (!cond) {
    throw new Error('check failed: ' + what);
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const handle = 'node' + suffix + '.test';
  const agent = new AtpAgent({ service: base });
  const desc = await agent.com.atproto.server.describeServer();
  check(desc.data.availableUserDomains.includes('.test'), 'describeServer domains');

  const created = await agent.createAccount({ handle, email: handle + '@example.com',
                                              password: 'node-pass', inviteCode });
  check(created.data.did.startsWith('did:plc:'), 'createAccount did');
  check(agent.session && agent.session.handle === handle, 'session after createAccount');

  const login = new AtpAgent({ service: base });
  await login.login({ identifier: handle, password: 'node-pass' });
  check(login.session.did === created.data.did, 'login did');
  const s1 = await login.com.atproto.server.getSession();
  check(s1.data.handle === handle && s1.data.did === created.data.did, 'getSession');

  // Access tokens live 3 s on this daemon: the client must see 400 ExpiredToken, refresh
  // by itself and retry.
  const firstRefresh = login.session.refreshJwt;
  await sleep(3200);
  const s2 = await login.com.atproto.server.getSession();
  check(s2.data.did === created.data.did, 'getSession after expiry');
  check(login.session.refreshJwt !== firstRefresh, 'client refreshed the session');

  const app = await login.com.atproto.server.createAppPassword({ name: 'node' });
  check(/^[a-z2-7]{4}(-[a-z2-7]{4}){3}$/.test(app.data.password), 'app password format');
  const viaApp = new AtpAgent({ service: base });
  await viaApp.login({ identifier: handle, password: app.data.password });
  let refused = false;
  try {
    await viaApp.com.atproto.server.createAppPassword({ name: 'nested' });
  } catch (e) {
    refused = e.status === 401 || e.status === 403 || e.status === 400;
  }
  check(refused, 'app password session cannot create app passwords');

  const res = await agent.com.atproto.identity.resolveHandle({ handle });
  check(res.data.did === created.data.did, 'resolveHandle');

  let bad = false;
  try {
    await new AtpAgent({ service: base }).login({ identifier: handle, password: 'wrong' });
  } catch (e) {
    bad = e.status === 401 && e.error === 'AuthenticationRequired';
  }
  check(bad, 'bad password: 401 AuthenticationRequired');
  console.log(JSON.stringify({ ok: true, did: created.data.did }));
}

main().catch((e) => {
  console.error(String(e && e.stack ? e.stack : e));
  process.exit(1);
});
