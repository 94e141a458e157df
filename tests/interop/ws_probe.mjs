// ws_probe.mjs PORT: an independent client for the one-port proof in common/tests/test_server.c.
// Uses the `ws` npm package and Node's fetch against ONE port:
//   1. ws://127.0.0.1:PORT/xrpc/com.atproto.sync.subscribeRepos?cursor=3: expects 3 binary
//      frames, payload = 8-byte big-endian sequence numbers 1, 2, 3;
//   2. sends the text "echo:hello" and expects the same text back;
//   3. sends "close-me" and expects the server to close with code 4000, reason "bye";
//   4. GET http://127.0.0.1:PORT/xrpc/_health: 200, JSON with a string "version".
// Prints one JSON result line; exit status 0 only if every check passed.
import WebSocket from 'ws';

const port = Number(process.argv[2]);
const result = { ok: false, frames: [], echo: null, closeCode: null, closeReason: null, health: null };

function fail(why) {
  result.error = why;
  console.log(JSON.stringify(result));
  process.exit(1);
}

if (!Number.isInteger(port) || port <= 0) {
  fail('usage: node ws_probe.mjs PORT');
}
const timer = setTimeout(() => fail('timeout'), 10000);

function probeWebSocket() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/xrpc/com.atproto.sync.subscribeRepos?cursor=3`);
    ws.on('message', (data, isBinary) => {
      if (isBinary) {
        const buf = Buffer.from(data);
        if (buf.length !== 8) {
          reject(new Error(`binary frame of ${buf.length} bytes`));
          return;
        }
        result.frames.push(Number(buf.readBigUInt64BE(0)));
        if (result.frames.length === 3) {
          ws.send('echo:hello');
        }
      } else {
        result.echo = data.toString('utf8');
        ws.send('close-me');
      }
    });
    ws.on('close', (code, reason) => {
      result.closeCode = code;
      result.closeReason = reason.toString('utf8');
      resolve();
    });
    ws.on('error', reject);
  });
}

async function probeHealth() {
  const res = await fetch(`http://127.0.0.1:${port}/xrpc/_health`);
  const body = await res.json();
  result.health = { status: res.status, body };
}

try {
  await probeWebSocket();
  await probeHealth();
} catch (e) {
  fail(String(e && e.message ? e.message : e));
}
clearTimeout(timer);

const checks = [
  [JSON.stringify(result.frames) === '[1,2,3]', 'frames'],
  [result.echo === 'echo:hello', 'echo'],
  [result.closeCode === 4000 && result.closeReason === 'bye', 'close code'],
  [result.health && result.health.status === 200 && typeof result.health.body.version === 'string',
   'health'],
];
const bad = checks.filter(([ok]) => !ok).map(([, name]) => name);
if (bad.length) {
  fail(`mismatch: ${bad.join(', ')}`);
}
result.ok = true;
console.log(JSON.stringify(result));
