// pds/tests/blob_client.mjs: the official @atproto/api client (AtpAgent) posts an image: it
// creates an account, uploads a PNG with agent.uploadBlob, posts it with agent.post (an
// app.bsky.embed.images embed), reads the post back, then fetches the bytes with
// com.atproto.sync.getBlob and lists them with listBlobs, all parsed by the client.
// Usage: node blob_client.mjs <pds base URL> <tests/interop dir> <handle suffix>
// Prints one JSON line {"ok":true,...} on success; exits 1 with a message otherwise.
import { createRequire } from 'node:module';
import path from 'node:path';
import zlib from 'node:zlib';

const [base, interopDir, suffix] = process.argv.slice(2);
const req = createRequire(path.join(interopDir, 'package.json'));
const { AtpAgent } = req('@atproto/api');

function check(cond, what) {
  if (!cond) {
    throw new Error('check failed: ' + what);
  }
}

// A real 2x2 grey PNG, built here (no fixture file).
function png() {
  const crcTable = [];
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    crcTable[n] = c >>> 0;
  }
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.from([0, 0, 0, 2, 0, 0, 0, 2, 8, 0, 0, 0, 0]);
  const raw = Buffer.from([0, 128, 128, 0, 128, 128]);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

async function main() {
  const handle = 'img' + suffix + '.test';
  const agent = new AtpAgent({ service: base });
  await agent.createAccount({ handle, email: handle + '@example.com', password: 'img-pass' });
  const did = agent.session.did;
  const bytes = png();

  // The client sends its own Content-Type; the server answers the sniffed one.
  const up = await agent.uploadBlob(bytes, { encoding: 'image/png' });
  const blob = up.data.blob;
  check(blob.mimeType === 'image/png', 'uploadBlob mimeType ' + blob.mimeType);
  check(blob.size === bytes.length, 'uploadBlob size');
  const cid = blob.ref.toString();
  check(cid.startsWith('bafkrei'), 'raw sha256 CID ' + cid);

  const post = await agent.post({
    text: 'a picture',
    createdAt: new Date().toISOString(),
    embed: { $type: 'app.bsky.embed.images', images: [{ alt: 'grey', image: blob }] },
  });
  check(post.uri.startsWith('at://' + did + '/app.bsky.feed.post/'), 'post uri');
  const rkey = post.uri.split('/').pop();
  const rec = await agent.com.atproto.repo.getRecord({ repo: did,
    collection: 'app.bsky.feed.post', rkey });
  const img = rec.data.value.embed.images[0].image;
  check(img.ref.toString() === cid && img.mimeType === 'image/png', 'record keeps the ref');

  const got = await agent.com.atproto.sync.getBlob({ did, cid });
  check(Buffer.from(got.data).equals(bytes), 'getBlob bytes');
  check(got.headers['content-type'].startsWith('image/png'), 'getBlob type');
  check(got.headers['x-content-type-options'] === 'nosniff', 'nosniff');

  const list = await agent.com.atproto.sync.listBlobs({ did });
  check(list.data.cids.length === 1 && list.data.cids[0] === cid, 'listBlobs');

  let notFound = '';
  try {
    await agent.com.atproto.sync.getBlob({ did,
      cid: 'bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy' });
  } catch (e) {
    notFound = e.error || String(e);
  }
  check(notFound === 'BlobNotFound', 'unknown blob: ' + notFound);
  console.log(JSON.stringify({ ok: true, did, cid }));
}

main().catch((e) => {
  console.log(JSON.stringify({ ok: false, error: String(e && e.stack ? e.stack : e) }));
  process.exit(1);
});
