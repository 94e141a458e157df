// pds/tests/proxy_client.mjs: the official @atproto/api client reads the AppView through our pds
// (the stub of proxy_stub.mjs behind it): getTimeline, getAuthorFeed, getPostThread, getProfile.
// Usage: node proxy_client.mjs <pds base URL> <tests/interop dir> <handle> <password>
// Prints one JSON line {"ok":true,...} on success; exits 1 with a message otherwise.
import { createRequire } from 'node:module';
import path from 'node:path';

const [base, interopDir, handle, password] = process.argv.slice(2);
const req = createRequire(path.join(interopDir, 'package.json'));
const { AtpAgent } = req('@atproto/api');

function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
}

async function main() {
  const agent = new AtpAgent({ service: base });
  await agent.login({ identifier: handle, password });
  const me = agent.session.did;

  const tl = await agent.getTimeline({ limit: 7 });
  check(tl.success && Array.isArray(tl.data.feed), 'getTimeline feed');
  check(tl.data.cursor === 'stubcursor', 'getTimeline cursor from the stub');
  check(tl.data.stub.iss === me && tl.data.stub.lxm === 'app.bsky.feed.getTimeline', 'jwt');
  check(tl.data.stub.q.limit === '7', 'query passed through');
  check(tl.headers['atproto-repo-rev'] === '3stubrev', 'atproto-repo-rev passed back');

  const af = await agent.getAuthorFeed({ actor: me });
  check(af.data.stub.lxm === 'app.bsky.feed.getAuthorFeed' && af.data.stub.q.actor === me,
        'getAuthorFeed');

  const uri = `at://${me}/app.bsky.feed.post/3jzfcijpj2z2a`;
  const th = await agent.getPostThread({ uri });
  check(th.data.thread.notFound === true && th.data.thread.uri === uri, 'getPostThread');

  const pr = await agent.getProfile({ actor: me });
  check(pr.data.did === me && pr.data.displayName === 'Stub', 'getProfile');
  check(pr.data.stub.lxm === 'app.bsky.actor.getProfile', 'getProfile lxm');

  console.log(JSON.stringify({ ok: true, calls: 4 }));
}

main().catch((e) => {
  console.log(JSON.stringify({ ok: false, error: String(e && e.message ? e.message : e) }));
  process.exit(1);
});
