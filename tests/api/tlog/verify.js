// An independent verifier of data-vault's transparency log, written from RFC 6962 / RFC 9162
// and C2SP signed-note alone, with Node's own crypto (SHA-256, Ed25519). It shares no code
// with the server. Input (stdin, JSON): {key, leaves: [hex event hash...], checkpoints:
// [note...], inclusion: [{leaf_index, tree_size, proof}], consistency: [{from, to, proof}]}.
// Prints "ok" and the counts, or exits non-zero saying what failed.
'use strict';
const crypto = require('crypto');

const sha = (...parts) => crypto.createHash('sha256').update(Buffer.concat(parts)).digest();
const leafHash = (input) => sha(Buffer.from([0]), input);
const nodeHash = (l, r) => sha(Buffer.from([1]), l, r);
const split = (n) => { let k = 1; while (k * 2 < n) k *= 2; return k; };

function main(input) {
  const leaves = input.leaves.map((h) => Buffer.from(h, 'hex'));
  const memo = new Map();
  const mth = (a, b) => {
    const key = a + ':' + b;
    if (memo.has(key)) return memo.get(key);
    let r;
    if (b - a === 0) r = sha(Buffer.alloc(0));
    else if (b - a === 1) r = leafHash(leaves[a]);
    else { const k = split(b - a); r = nodeHash(mth(a, a + k), mth(a + k, b)); }
    memo.set(key, r);
    return r;
  };
  const path = (m, a, b) => {
    if (b - a <= 1) return [];
    const k = split(b - a);
    return m < k ? [...path(m, a, a + k), mth(a + k, b)] : [...path(m - k, a + k, b), mth(a, a + k)];
  };
  const subproof = (m, a, b, complete) => {
    if (m === b - a) return complete ? [] : [mth(a, b)];
    const k = split(b - a);
    return m <= k
      ? [...subproof(m, a, a + k, complete), mth(a + k, b)]
      : [...subproof(m - k, a + k, b, false), mth(a, a + k)];
  };
  const same = (x, y) => x.length === y.length && x.every((h, i) => h.equals(y[i]));

  // The verifier key: name+hex(key id)+base64(0x01 || key).
  const i = input.key.indexOf('+');
  const j = input.key.indexOf('+', i + 1);
  const [name, id, b64] = [input.key.slice(0, i), input.key.slice(i + 1, j), input.key.slice(j + 1)];
  const raw = Buffer.from(b64, 'base64');
  if (raw.length !== 33 || raw[0] !== 1) throw new Error('not an Ed25519 verifier key');
  const keyId = sha(Buffer.from(name + '\n'), raw).subarray(0, 4);
  if (keyId.toString('hex') !== id) throw new Error('key id mismatch');
  const spki = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), raw.subarray(1)]);
  const publicKey = crypto.createPublicKey({ key: spki, format: 'der', type: 'spki' });

  for (const note of input.checkpoints) {
    const at = note.lastIndexOf('\n\n');
    if (at < 0) throw new Error('no signature block');
    const body = note.slice(0, at + 1);
    const lines = note.slice(at + 2).split('\n').filter((l) => l.length > 0);
    let verified = false;
    for (const line of lines) {
      const m = /^\u2014 (\S+) (\S+)$/.exec(line);
      if (!m) throw new Error('bad signature line: ' + line);
      if (m[1] !== name) continue;
      const blob = Buffer.from(m[2], 'base64');
      if (!blob.subarray(0, 4).equals(keyId)) continue;
      if (!crypto.verify(null, Buffer.from(body), publicKey, blob.subarray(4))) {
        throw new Error('signature does not verify');
      }
      verified = true;
    }
    if (!verified) throw new Error('no signature by ' + name);
    const [origin, size, root] = body.split('\n');
    if (!origin.startsWith(name + '/')) throw new Error('origin ' + origin);
    const n = Number(size);
    if (!mth(0, n).equals(Buffer.from(root, 'base64'))) throw new Error('root of size ' + n + ' differs');
  }

  for (const p of input.inclusion) {
    const proof = p.proof.map((h) => Buffer.from(h, 'hex'));
    if (!same(proof, path(p.leaf_index, 0, p.tree_size))) throw new Error('inclusion proof differs');
    // RFC 9162 2.1.3.2
    let fn = p.leaf_index, sn = p.tree_size - 1, r = leafHash(leaves[p.leaf_index]);
    for (const c of proof) {
      if (sn === 0) throw new Error('inclusion too long');
      if (fn % 2 === 1 || fn === sn) {
        r = nodeHash(c, r);
        while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      } else r = nodeHash(r, c);
      fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
    }
    if (sn !== 0 || !r.equals(mth(0, p.tree_size))) throw new Error('inclusion does not verify');
  }

  for (const p of input.consistency) {
    const proof = p.proof.map((h) => Buffer.from(h, 'hex'));
    const expected = p.from === p.to ? [] : subproof(p.from, 0, p.to, true);
    if (!same(proof, expected)) throw new Error('consistency proof differs ' + p.from + '->' + p.to);
    if (p.from === p.to) continue;
    // RFC 9162 2.1.4.2
    const path2 = (p.from & (p.from - 1)) === 0 ? [mth(0, p.from), ...proof] : proof;
    let fn = p.from - 1, sn = p.to - 1;
    while (fn % 2 === 1) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
    let fr = path2[0], sr = path2[0];
    for (const c of path2.slice(1)) {
      if (sn === 0) throw new Error('consistency too long');
      if (fn % 2 === 1 || fn === sn) {
        fr = nodeHash(c, fr); sr = nodeHash(c, sr);
        while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      } else sr = nodeHash(sr, c);
      fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
    }
    if (sn !== 0 || !fr.equals(mth(0, p.from)) || !sr.equals(mth(0, p.to))) {
      throw new Error('consistency does not verify ' + p.from + '->' + p.to);
    }
  }
  console.log(`ok ${input.checkpoints.length} checkpoints ${input.inclusion.length} inclusion ${input.consistency.length} consistency`);
}

let data = '';
process.stdin.on('data', (c) => { data += c; });
process.stdin.on('end', () => {
  try { main(JSON.parse(data)); } catch (e) { console.error('FAILED: ' + e.message); process.exit(1); }
});
