// libs.mjs: the official libraries, re-exported for scripts outside tests/interop (bench/js/),
// which cannot resolve bare package names from their own folder. Resolution happens here, in
// tests/interop, against its pinned node_modules.
export * as dagCbor from '@ipld/dag-cbor';
export * as lexCbor from '@atproto/lex-cbor';
export * as atcrypto from '@atproto/crypto';
export { CID } from 'multiformats/cid';
export { sha256 } from 'multiformats/hashes/sha2';
