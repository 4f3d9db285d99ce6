#!/usr/bin/env node
// Writes auth/tests/vectors/wallet.json: known answers for both authentication schemes, made
// with the real client libraries rather than with our own Rust code, so that the Rust tests
// (auth/tests/js_vectors.rs) check us against what portal clients actually send.
//
//   cd interop/wallet && npm ci && node make-vectors.mjs
//
// Wallet scheme: cosmjs (@cosmjs/amino) wallets from a fixed mnemonic and a fixed raw key,
// Keplr's makeADR36AminoSignDoc (@keplr-wallet/cosmos) for the sign doc, cosmjs'
// serializeSignDoc for its bytes and the wallet's signAmino for the signature. HMAC scheme:
// Node's crypto over the canonical string of auth/src/hmac_scheme.rs. Every output is
// deterministic (RFC 6979 signatures, fixed timestamps and nonces), so rerunning the script
// must leave the JSON unchanged.

import { createHash, createHmac } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { rawSecp256k1PubkeyToRawAddress, serializeSignDoc } from "@cosmjs/amino";
import { Secp256k1, Secp256k1Signature, sha256 } from "@cosmjs/crypto";
import { fromBase64, fromHex, toBase64, toBech32, toHex, toUtf8 } from "@cosmjs/encoding";
import { bodyHashField, makeWallet, signData, signedData } from "./sign-request.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const output = join(here, "..", "..", "auth", "tests", "vectors", "wallet.json");

const PREFIX = "virtengine";
// The configured chain id of the legacy vector: older portal clients put it in the sign doc.
const LEGACY_CHAIN_ID = "virtengine-1";
// Well-known public test mnemonic (BIP-39 test vector entropy 0x00..00). Never holds funds.
const MNEMONIC =
  "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";
// SHA-256 of "data-vault wallet test key 1": an arbitrary fixed test key.
const PRIVKEY_HEX = "abb097dee43379f877dd1c4538375ef42ba954eef1d839f4fd5391f76a299fea";
const BLOB_ID = "0190b6a0-0000-7000-8000-000000000000";

const REQUESTS = [
  {
    name: "get-with-query",
    method: "GET",
    pathAndQuery: `/api/v1/vault/blobs/${BLOB_ID}?reason=audit%20review&purpose=support`,
    timestampMs: 1700000000000,
    nonce: "00112233445566778899aabbccddeeff",
    body: "",
  },
  {
    name: "post-with-body",
    method: "POST",
    pathAndQuery: "/api/v1/vault/blobs",
    timestampMs: 1700000000123,
    nonce: "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    body: '{"scope":"support","payload_base64":"aGVsbG8gd2FsbGV0"}',
  },
  {
    name: "delete",
    method: "DELETE",
    pathAndQuery: `/api/v1/vault/blobs/${BLOB_ID}`,
    timestampMs: 1700000059999,
    nonce: "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100",
    body: "",
  },
];

const HMAC_REQUESTS = [
  {
    name: "get-with-query",
    secret: "s3cr3t-for-tests-only",
    method: "GET",
    path: `/api/v1/vault/blobs/${BLOB_ID}`,
    rawQuery: "reason=audit%20review&purpose=support",
    principal: "provider-daemon-7",
    timestamp: "1700000000",
    nonce: "00112233445566778899aabbccddeeff",
    body: "",
  },
  {
    name: "post-with-body",
    secret: "s3cr3t-for-tests-only",
    method: "POST",
    path: "/api/v1/vault/blobs",
    rawQuery: "",
    principal: "provider-daemon-7",
    timestamp: "1700000001",
    nonce: "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    body: '{"scope":"support","payload_base64":"aGVsbG8gd2FsbGV0"}',
  },
];

function check(condition, message) {
  if (!condition) throw new Error(`self-check failed: ${message}`);
}

function installedVersion(name) {
  const manifest = join(here, "node_modules", ...name.split("/"), "package.json");
  return JSON.parse(readFileSync(manifest, "utf8")).version;
}

async function walletVectors(walletName, wallet, rawPrivkey) {
  const vectors = [];
  const cases = REQUESTS.map((request) => ({ request, chainId: "" }));
  cases.push({ request: REQUESTS[0], chainId: LEGACY_CHAIN_ID });
  for (const { request, chainId } of cases) {
    const bodyHash = bodyHashField(Buffer.from(request.body, "utf8"));
    const data = signedData({ ...request, bodyHash });
    const { account, signDoc, signature, pubkey } = await signData(wallet, data, chainId);
    const serialized = serializeSignDoc(signDoc);
    const digest = sha256(serialized);

    // Cross-checks inside the JS world: the wallet's signature is plain ECDSA over
    // SHA-256(sign doc) and verifies with the account key.
    const sigBytes = fromBase64(signature);
    check(sigBytes.length === 64, "signAmino returns 64 bytes");
    check(toBase64(account.pubkey) === pubkey, "signAmino reports the account key");
    check(
      await Secp256k1.verifySignature(Secp256k1Signature.fromFixedLength(sigBytes), digest, account.pubkey),
      "signature verifies over SHA-256(serializeSignDoc(doc))",
    );
    let recoverable;
    if (rawPrivkey !== undefined) {
      const direct = await Secp256k1.createSignature(digest, rawPrivkey);
      check(
        toBase64(new Uint8Array([...direct.r(32), ...direct.s(32)])) === signature,
        "Secp256k1.createSignature(sha256(serializeSignDoc(doc))) equals signAmino",
      );
      recoverable = toBase64(direct.toFixedLength());
    }

    vectors.push({
      name: `${walletName}/${request.name}${chainId === "" ? "" : "/legacy-chain-id"}`,
      wallet: walletName,
      method: request.method,
      path_and_query: request.pathAndQuery,
      timestamp_ms: request.timestampMs,
      nonce: request.nonce,
      body: request.body,
      body_hash: bodyHash,
      signed_data: data,
      chain_id: chainId,
      sign_doc: new TextDecoder().decode(serialized),
      sign_doc_sha256_hex: toHex(digest),
      signature_base64: signature,
      ...(recoverable === undefined ? {} : { recoverable_signature_base64: recoverable }),
    });
  }
  return vectors;
}

async function main() {
  const hdWallet = await makeWallet({ mnemonic: MNEMONIC, prefix: PREFIX });
  const rawPrivkey = fromHex(PRIVKEY_HEX);
  const keyWallet = await makeWallet({ privkeyHex: PRIVKEY_HEX, prefix: PREFIX });

  const wallets = [];
  for (const [name, wallet, source] of [
    ["mnemonic", hdWallet, { mnemonic: MNEMONIC, hd_path: "m/44'/118'/0'/0/0" }],
    ["privkey", keyWallet, { privkey_hex: PRIVKEY_HEX }],
  ]) {
    const [account] = await wallet.getAccounts();
    check(account.pubkey.length === 33, "compressed public key");
    check(
      toBech32(PREFIX, rawSecp256k1PubkeyToRawAddress(account.pubkey)) === account.address,
      "address is RIPEMD160(SHA256(pubkey)) in bech32",
    );
    wallets.push({
      name,
      ...source,
      address: account.address,
      pubkey_base64: toBase64(account.pubkey),
      pubkey_hex: toHex(account.pubkey),
      uncompressed_pubkey_base64: toBase64(Secp256k1.uncompressPubkey(account.pubkey)),
    });
  }

  const walletVectorList = [
    ...(await walletVectors("mnemonic", hdWallet, undefined)),
    ...(await walletVectors("privkey", keyWallet, rawPrivkey)),
  ];

  const hmacVectors = HMAC_REQUESTS.map((request) => {
    // The HMAC scheme hashes the empty body too: X-VE-Content-SHA256 is never empty.
    const contentSha256 = createHash("sha256").update(Buffer.from(request.body, "utf8")).digest("hex");
    const canonical = [
      request.method,
      request.path,
      request.rawQuery,
      request.principal,
      request.timestamp,
      request.nonce,
      contentSha256,
    ].join("\n");
    const signature = createHmac("sha256", Buffer.from(request.secret, "ascii"))
      .update(toUtf8(canonical))
      .digest("hex");
    return {
      name: request.name,
      secret: request.secret,
      method: request.method,
      path: request.path,
      raw_query: request.rawQuery,
      principal: request.principal,
      timestamp: request.timestamp,
      nonce: request.nonce,
      body: request.body,
      content_sha256: contentSha256,
      canonical_string: canonical,
      signature_hex: signature,
    };
  });

  const document = {
    about:
      "Known answers for docs/auth.md, generated by interop/wallet/make-vectors.mjs with the " +
      "packages below; regenerate with: cd interop/wallet && npm ci && node make-vectors.mjs",
    generator: {
      "@cosmjs/amino": installedVersion("@cosmjs/amino"),
      "@cosmjs/crypto": installedVersion("@cosmjs/crypto"),
      "@cosmjs/encoding": installedVersion("@cosmjs/encoding"),
      "@keplr-wallet/cosmos": installedVersion("@keplr-wallet/cosmos"),
    },
    prefix: PREFIX,
    legacy_chain_id: LEGACY_CHAIN_ID,
    wallets,
    wallet_vectors: walletVectorList,
    hmac_vectors: hmacVectors,
  };
  mkdirSync(dirname(output), { recursive: true });
  writeFileSync(output, `${JSON.stringify(document, null, 2)}\n`);
  process.stdout.write(
    `wrote ${walletVectorList.length} wallet and ${hmacVectors.length} HMAC vectors to ${output}\n`,
  );
}

main().catch((error) => {
  process.stderr.write(`${error.stack ?? error}\n`);
  process.exit(1);
});
