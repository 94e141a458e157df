// pds/tests/proxy_stub.mjs: a stub AppView + relay on 127.0.0.1 for test_pds_proxy.c.
// Usage: node proxy_stub.mjs <tests/interop dir> <plc URL>
// Prints "PORT <n>" once listening; runs until killed.
//
// - /.well-known/did.json: the DID document of did:web:127.0.0.1%3A<port>, with services
//   #bsky_appview and #test_svc (this server) and #dead_svc (a closed port).
// - /xrpc/com.atproto.sync.requestCrawl (POST): recorded, answered {}.
// - /_state: {"crawls":[bodies...]} for the test to read.
// - any other /xrpc/<nsid>: the service JWT of the Authorization header is verified with the
//   official verifier (@atproto/xrpc-server verifyJwt; the issuer's key from its DID document on
//   the plc, via @atproto/identity); aud must be our DID (bare or #fragment), lxm the NSID,
//   exp at most 60 s after iat and in the future. A failure answers 401 {"error":"BadJwt",...}.
//   Then: app.bsky.feed.getTimeline / getAuthorFeed / getPostThread, app.bsky.actor.getProfile
//   answer lexicon-valid bodies with a `stub` member echoing what was checked; app.bsky.test.*:
//   big?size=N (N bytes, byte i = 'a' + i % 26), fail?status=S (an XRPC error), echo (method,
//   query, headers, body).
import { createRequire } from 'node:module';
import http from 'node:http';
import path from 'node:path';

const [interopDir, plcUrl] = process.argv.slice(2);
const req = createRequire(path.join(interopDir, 'package.json'));
const { verifyJwt } = req('@atproto/xrpc-server');
const { IdResolver } = req('@atproto/identity');

const idr = new IdResolver({ plcUrl });
const crawls = [];
let port = 0;
const did = () => `did:web:127.0.0.1%3A${port}`;

function send(res, status, body, headers = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
  res.end(text);
}

function didDoc() {
  const me = `http://127.0.0.1:${port}`;
  return {
    '@context': ['https://www.w3.org/ns/did/v1'],
    id: did(),
    service: [
      { id: '#bsky_appview', type: 'BskyAppView', serviceEndpoint: me },
      { id: '#test_svc', type: 'TestService', serviceEndpoint: me },
      { id: '#dead_svc', type: 'TestService', serviceEndpoint: 'http://127.0.0.1:1' },
    ],
  };
}

async function checkJwt(request, nsid) {
  const auth = request.headers.authorization || '';
  if (!auth.startsWith('Bearer ')) throw new Error('no bearer token');
  const jwt = auth.slice(7);
  const getKey = (iss, force) => idr.did.resolveAtprotoKey(iss, force);
  const payload = await verifyJwt(jwt, null, nsid, getKey);
  const aud = payload.aud;
  if (aud !== did() && !aud.startsWith(did() + '#')) throw new Error('bad aud ' + aud);
  const parts = JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());
  const hdr = JSON.parse(Buffer.from(jwt.split('.')[0], 'base64url').toString());
  const now = Math.floor(Date.now() / 1000);
  if (hdr.alg !== 'ES256K' || hdr.typ !== 'JWT') throw new Error('bad header');
  if (!(parts.exp > now && parts.exp - parts.iat <= 60 && parts.iat <= now + 5)) {
    throw new Error('bad exp/iat');
  }
  if (typeof parts.jti !== 'string' || parts.jti.length < 16) throw new Error('no jti');
  return { iss: payload.iss, aud, lxm: parts.lxm, exp: parts.exp, iat: parts.iat };
}

function answer(res, nsid, url, stub, body, request) {
  const q = Object.fromEntries(url.searchParams);
  const rev = { 'atproto-repo-rev': '3stubrev', 'atproto-content-labelers': 'did:plc:stublabeler' };
  switch (nsid) {
    case 'app.bsky.feed.getTimeline':
    case 'app.bsky.feed.getAuthorFeed':
      return send(res, 200, { feed: [], cursor: 'stubcursor', stub: { ...stub, q } }, rev);
    case 'app.bsky.feed.getPostThread':
      return send(res, 200, {
        thread: { $type: 'app.bsky.feed.defs#notFoundPost', uri: q.uri, notFound: true },
        stub: { ...stub, q },
      }, rev);
    case 'app.bsky.actor.getProfile':
      return send(res, 200, { did: stub.iss, handle: 'stub.test', displayName: 'Stub',
                              stub: { ...stub, q } }, rev);
    case 'app.bsky.test.big': {
      const n = Number(q.size || 0);
      const buf = Buffer.alloc(n);
      for (let i = 0; i < n; i++) buf[i] = 97 + (i % 26);
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      return res.end(buf);
    }
    case 'app.bsky.test.fail':
      return send(res, Number(q.status), { error: 'StubError', message: 'stub says no' },
                  { 'retry-after': '7' });
    default:
      return send(res, 200, { stub: { ...stub, q }, method: request.method, body,
                              ctype: request.headers['content-type'] || null,
                              lang: request.headers['accept-language'] || null,
                              labelers: request.headers['atproto-accept-labelers'] || null,
                              proxyHeader: request.headers['atproto-proxy'] || null });
  }
}

const server = http.createServer((request, res) => {
  const chunks = [];
  request.on('data', (c) => chunks.push(c));
  request.on('end', async () => {
    const url = new URL(request.url, 'http://x');
    const body = Buffer.concat(chunks).toString();
    if (url.pathname === '/.well-known/did.json') return send(res, 200, didDoc());
    if (url.pathname === '/_state') return send(res, 200, { crawls });
    if (url.pathname === '/xrpc/com.atproto.sync.requestCrawl') {
      crawls.push(JSON.parse(body || '{}'));
      return send(res, 200, {});
    }
    if (!url.pathname.startsWith('/xrpc/')) return send(res, 404, { error: 'NotFound' });
    const nsid = url.pathname.slice(6);
    let stub;
    try {
      stub = await checkJwt(request, nsid);
    } catch (e) {
      return send(res, 401, { error: 'BadJwt', message: String(e.message || e) });
    }
    answer(res, nsid, url, stub, body, request);
  });
});

server.listen(0, '127.0.0.1', () => {
  port = server.address().port;
  process.stdout.write(`PORT ${port}\n`);
});
