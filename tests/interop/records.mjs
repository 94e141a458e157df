// records.mjs: a deterministic generator of realistic atproto records (and edge shapes), in the
// atproto JSON form ({"$link"}, {"$bytes"}), plus the JSON <-> IPLD conversions the official
// libraries need. Shared by the interop round trips (gen_records.mjs) and the benchmark corpus.
//
// Determinism matters: the same (seed, index) must give the same record on every run and
// machine, so everything random comes from one seeded PRNG, and CIDs are real SHA-256 CIDs of
// PRNG bytes.

import { createHash } from 'node:crypto';
import { CID } from 'multiformats/cid';
import * as Digest from 'multiformats/hashes/digest';

// mulberry32: tiny, fast and good enough to pick shapes; not for anything secret.
export function makeRng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const rng = {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: (arr) => arr[Math.floor(next() * arr.length)],
    chance: (p) => next() < p,
    bytes: (n) => {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) out[i] = Math.floor(next() * 256);
      return out;
    },
  };
  return rng;
}

const B32 = 'abcdefghijklmnopqrstuvwxyz234567';
const B32SORT = '234567abcdefghijklmnopqrstuvwxyz';

export function cidFor(codec, bytes) {
  const hash = createHash('sha256').update(bytes).digest();
  return CID.create(1, codec, Digest.create(0x12, new Uint8Array(hash)));
}

const randStr = (rng, alphabet, n) => {
  let s = '';
  for (let i = 0; i < n; i++) s += alphabet[Math.floor(rng.next() * alphabet.length)];
  return s;
};
const did = (rng) => 'did:plc:' + randStr(rng, B32, 24);
const tid = (rng) => randStr(rng, '234567abcdefghij', 1) + randStr(rng, B32SORT, 12);
const handle = (rng) =>
  rng.pick(['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'mallory', 'trent', 'zoe-x']) +
  rng.int(1, 999) + '.' + rng.pick(['bsky.social', 'example.com', 'test.dev']);
const recCid = (rng) => ({ $link: cidFor(0x71, rng.bytes(16)).toString() });
const strongRef = (rng, coll) => ({
  uri: `at://${did(rng)}/${coll || rng.pick(['app.bsky.feed.post', 'app.bsky.feed.like'])}/${tid(rng)}`,
  cid: cidFor(0x71, rng.bytes(16)).toString(),
});
const createdAt = (rng) => new Date(1680000000000 + rng.int(0, 2 ** 30) * 97).toISOString();
const blob = (rng, mimes) => ({
  $type: 'blob',
  ref: { $link: cidFor(0x55, rng.bytes(24)).toString() },
  mimeType: rng.pick(mimes || ['image/jpeg', 'image/png', 'image/webp']),
  size: rng.int(1000, 1000000),
});

// Text pieces chosen to stress UTF-8 handling: multi-byte scripts, emoji with ZWJ sequences and
// variation selectors, combining marks (no normalisation may happen), RTL text.
const WORDS = [
  'hello', 'world', 'atproto', 'the', 'a', 'is', 'of', 'posting', 'from', 'C', 'today', 'lovely',
  'café', 'naïve', 'über', 'Ελληνικά', 'русский', 'עברית', 'العربية', 'हिन्दी', '日本語', 'テキスト',
  '中文字符', '한국어', 'ไทย', '👍', '🎉', '👨‍👩‍👧‍👦', '🏳️‍🌈', '👩🏽‍💻', '❤️', '🇫🇷', 'e\u0301', 'a\u0308\u0323',
  'Z\u0351\u0364\u036b', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢', '\u200b', 'tab\there', 'line\nbreak', 'quote"s', 'back\\slash',
  '<b>html</b>', '&amp;', '🧑‍🤝‍🧑', '🫠', 'ﷺ', '\u00a0',
];

function textWithFacets(rng) {
  const parts = [];
  const facets = [];
  let bytes = 0;
  const add = (s) => {
    parts.push(s);
    bytes += Buffer.byteLength(s, 'utf8');
  };
  const nwords = rng.int(1, 40);
  for (let i = 0; i < nwords; i++) {
    if (i > 0) add(' ');
    const roll = rng.next();
    if (roll < 0.05) {
      const h = handle(rng);
      const start = bytes;
      add('@' + h);
      facets.push(facet(start, bytes, { $type: 'app.bsky.richtext.facet#mention', did: did(rng) }));
    } else if (roll < 0.09) {
      const u = `https://${rng.pick(['example.com', 'bsky.app', 'news.test'])}/${randStr(rng, B32, rng.int(1, 20))}?q=${rng.int(0, 99)}`;
      const start = bytes;
      add(u.length > 30 ? u.slice(0, 27) + '...' : u);
      facets.push(facet(start, bytes, { $type: 'app.bsky.richtext.facet#link', uri: u }));
    } else if (roll < 0.12) {
      const t = rng.pick(['atproto', 'bluesky', '日本', 'café', 'art', 'c11']);
      const start = bytes;
      add('#' + t);
      facets.push(facet(start, bytes, { $type: 'app.bsky.richtext.facet#tag', tag: t }));
    } else {
      add(rng.pick(WORDS));
    }
  }
  return { text: parts.join(''), facets };
}

function facet(byteStart, byteEnd, feature) {
  return { index: { byteStart, byteEnd }, features: [feature] };
}

function images(rng) {
  const n = rng.int(1, 4);
  const imgs = [];
  for (let i = 0; i < n; i++) {
    const img = { alt: rng.chance(0.3) ? '' : textWithFacets(rng).text, image: blob(rng) };
    if (rng.chance(0.7)) img.aspectRatio = { width: rng.int(1, 4000), height: rng.int(1, 4000) };
    imgs.push(img);
  }
  return { $type: 'app.bsky.embed.images', images: imgs };
}

function embed(rng) {
  const roll = rng.next();
  if (roll < 0.4) return images(rng);
  if (roll < 0.7) {
    const ext = {
      uri: `https://example.com/${randStr(rng, B32, 10)}`,
      title: textWithFacets(rng).text,
      description: rng.chance(0.2) ? '' : textWithFacets(rng).text,
    };
    if (rng.chance(0.6)) ext.thumb = blob(rng, ['image/jpeg']);
    return { $type: 'app.bsky.embed.external', external: ext };
  }
  if (roll < 0.85) return { $type: 'app.bsky.embed.record', record: strongRef(rng) };
  return {
    $type: 'app.bsky.embed.recordWithMedia',
    record: { $type: 'app.bsky.embed.record', record: strongRef(rng) },
    media: images(rng),
  };
}

function post(rng) {
  const { text, facets } = textWithFacets(rng);
  const r = { $type: 'app.bsky.feed.post', text, createdAt: createdAt(rng) };
  if (rng.chance(0.6)) r.langs = rng.chance(0.8) ? [rng.pick(['en', 'ja', 'pt-BR', 'de', 'fr'])] : ['en', 'es-419'];
  if (facets.length > 0) r.facets = facets;
  if (rng.chance(0.35)) r.embed = embed(rng);
  if (rng.chance(0.25)) {
    const root = strongRef(rng, 'app.bsky.feed.post');
    r.reply = { root, parent: rng.chance(0.5) ? root : strongRef(rng, 'app.bsky.feed.post') };
  }
  if (rng.chance(0.05)) r.tags = ['tag1', 'another-tag'];
  return r;
}

function profile(rng) {
  const r = { $type: 'app.bsky.actor.profile' };
  // Cut by code points: slicing UTF-16 could split a surrogate pair, which JSON carries as a
  // lone "\ud83c" escape that is not valid UTF-8 (the JS encoders silently turn it into U+FFFD).
  if (rng.chance(0.9)) r.displayName = Array.from(textWithFacets(rng).text).slice(0, 64).join('');
  if (rng.chance(0.8)) r.description = textWithFacets(rng).text;
  if (rng.chance(0.8)) r.avatar = blob(rng, ['image/jpeg', 'image/png']);
  if (rng.chance(0.5)) r.banner = blob(rng, ['image/jpeg']);
  if (rng.chance(0.5)) r.createdAt = createdAt(rng);
  if (rng.chance(0.1)) r.pinnedPost = strongRef(rng, 'app.bsky.feed.post');
  return r;
}

const INTS = [0, 1, -1, 23, 24, -24, -25, 255, 256, -256, -257, 65535, 65536, 4294967295, 4294967296,
  -4294967296, -4294967297, 2 ** 53 - 1, -(2 ** 53 - 1), 1e15, -123456789012];

// Shapes a real record rarely has but the data model allows.
function edge(rng) {
  const r = { $type: 'com.example.edge' };
  r.emptyArr = [];
  r.emptyMap = {};
  r.nested = [[1, [2, [[], {}]]], [[[rng.pick(INTS)]]], { deep: { deeper: { deepest: [null, true, false] } } }];
  r.ints = INTS.slice(0, rng.int(4, INTS.length));
  r.bytes = { $bytes: Buffer.from(rng.bytes(rng.int(0, 40))).toString('base64').replace(/=+$/, '') };
  r.emptyBytes = { $bytes: '' };
  r.link = recCid(rng);
  r.rawLink = { $link: cidFor(0x55, rng.bytes(8)).toString() };
  // Length-first key order: "z" < "aa" < "ab" < "é" (2 bytes) < "aaa" < "日" (3 bytes) < "👍".
  r.keys = { z: 1, aa: 2, ab: 3, b: 4, a: 5, é: 6, aaa: 7, 日: 8, '👍': 9, A: 10, Z_: 11, '': 12 };
  r.$unknown = 'kept';
  r.long = 'x'.repeat(rng.int(1000, 20000)) + '🎉';
  r.longUnicode = '日本語テキスト'.repeat(rng.int(100, 600));
  r.mixed = [1, 'two', { three: 3 }, [4], null, true, { $bytes: 'AQID' }, recCid(rng)];
  r.bools = { t: true, f: false, n: null };
  if (rng.chance(0.5)) r.big = { values: Array.from({ length: rng.int(100, 500) }, (_, i) => i * 1000003) };
  return r;
}

const simple = (type, subj) => (rng) => ({ $type: type, subject: subj(rng), createdAt: createdAt(rng) });
const like = simple('app.bsky.feed.like', (rng) => strongRef(rng, 'app.bsky.feed.post'));
const repost = simple('app.bsky.feed.repost', (rng) => strongRef(rng, 'app.bsky.feed.post'));
const follow = simple('app.bsky.graph.follow', did);
const block = simple('app.bsky.graph.block', did);

// Mix close to a real repo: mostly likes, posts and follows. `edges` adds the edge shapes
// (off for the benchmark corpus, whose long strings would dominate the byte count).
export function genRecord(seed, i, edges = true) {
  const rng = makeRng((seed * 1000003 + i * 7919) >>> 0);
  rng.next();
  if (edges && i % 50 === 7) return edge(rng);
  const roll = rng.next();
  if (roll < 0.35) return post(rng);
  if (roll < 0.65) return like(rng);
  if (roll < 0.75) return repost(rng);
  if (roll < 0.9) return follow(rng);
  if (roll < 0.95) return block(rng);
  return profile(rng);
}

// Throws on a string holding a lone surrogate: the data model is UTF-8, so such a record would
// be the generator's bug (the JS encoders would hide it by writing U+FFFD).
export function assertWellFormed(v, path = '') {
  if (typeof v === 'string' && !v.isWellFormed()) throw new Error(`lone surrogate at ${path}`);
  if (v === null || typeof v !== 'object') return;
  for (const [k, x] of Object.entries(v)) {
    if (!k.isWellFormed()) throw new Error(`lone surrogate in a key at ${path}`);
    assertWellFormed(x, `${path}/${k}`);
  }
}

// JSON form -> IPLD data model value (CID objects, Uint8Array), as the spec's §4 reads it: an
// object whose ONLY key is $link or $bytes is a link or bytes; anything else stays a map.
export function jsonToIpld(v) {
  if (Array.isArray(v)) return v.map(jsonToIpld);
  if (v === null || typeof v !== 'object') return v;
  const keys = Object.keys(v);
  if (keys.length === 1 && keys[0] === '$link' && typeof v.$link === 'string') return CID.parse(v.$link);
  if (keys.length === 1 && keys[0] === '$bytes' && typeof v.$bytes === 'string') {
    return new Uint8Array(Buffer.from(v.$bytes, 'base64'));
  }
  const out = {};
  for (const k of keys) out[k] = jsonToIpld(v[k]);
  return out;
}

// IPLD value -> JSON form ($bytes without padding, as the reference emits).
export function ipldToJson(v) {
  if (Array.isArray(v)) return v.map(ipldToJson);
  if (v instanceof Uint8Array) return { $bytes: Buffer.from(v).toString('base64').replace(/=+$/, '') };
  const cid = v !== null && typeof v === 'object' ? CID.asCID(v) : null;
  if (cid) return { $link: cid.toString() };
  if (v === null || typeof v !== 'object') return v;
  const out = {};
  for (const k of Object.keys(v)) out[k] = ipldToJson(v[k]);
  return out;
}

export const toHex = (u8) => Buffer.from(u8).toString('hex');
export const fromHex = (s) => new Uint8Array(Buffer.from(s, 'hex'));
