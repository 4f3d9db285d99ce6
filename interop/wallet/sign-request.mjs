#!/usr/bin/env node
// Signs one data-vault request with the wallet scheme (docs/auth.md) using the real cosmjs
// wallet and Keplr's ADR-036 sign doc, sends it with fetch, and prints the status on the first
// line and the response body after it. make-vectors.mjs imports the helpers below, so the test
// vectors exercise the very code this CLI sends requests with.
//
//   node sign-request.mjs --url http://127.0.0.1:8080 --method GET \
//     --path '/api/v1/vault/blobs/ID?reason=audit' --mnemonic-file wallet.txt [--accept A]
//   node sign-request.mjs --url BASE --method POST --path /api/v1/vault/blobs \
//     --privkey-hex HEX --body-file blob.json --content-type application/json
//
// Options: --prefix (default virtengine), --chain-id (default empty, as ADR-036; only for
// servers configured with a chain id for older clients), --timestamp-ms and --nonce (default:
// now and 16 random bytes; for replay tests).
// Depends on nothing but the npm packages in package.json and Node 20 built-ins.

import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { Secp256k1HdWallet, Secp256k1Wallet } from "@cosmjs/amino";
import { fromHex } from "@cosmjs/encoding";
import { makeADR36AminoSignDoc } from "@keplr-wallet/cosmos";

export const DEFAULT_PREFIX = "virtengine";

/** The `body_hash` field: lowercase hex SHA-256 of the body, or "" when it is empty. */
export function bodyHashField(body) {
  return body.length === 0 ? "" : createHash("sha256").update(body).digest("hex");
}

/**
 * The signed data: compact JSON in this key order, built by plain formatting with no escaping
 * (the path and query are percent-encoded by the caller). `timestamp` is a bare number.
 */
export function signedData({ method, pathAndQuery, timestampMs, nonce, bodyHash }) {
  return (
    `{"method":"${method}","path":"${pathAndQuery}","timestamp":${timestampMs},` +
    `"nonce":"${nonce}","body_hash":"${bodyHash}"}`
  );
}

/** A cosmjs amino wallet from a mnemonic (first account at m/44'/118'/0'/0/0) or a raw key. */
export async function makeWallet({ mnemonic, privkeyHex, prefix = DEFAULT_PREFIX }) {
  if (mnemonic !== undefined) {
    return Secp256k1HdWallet.fromMnemonic(mnemonic, { prefix });
  }
  return Secp256k1Wallet.fromKey(fromHex(privkeyHex), prefix);
}

/**
 * Signs `data` the ADR-036 way: Keplr's sign doc (chain_id "" unless `chainId` is given, for
 * servers that accept an older portal's chain id), signed by the wallet's `signAmino`.
 * Returns the account, the sign doc and the 64-byte signature in base64.
 */
export async function signData(wallet, data, chainId = "") {
  const [account] = await wallet.getAccounts();
  const doc = makeADR36AminoSignDoc(account.address, data);
  const signDoc = chainId === "" ? doc : { ...doc, chain_id: chainId };
  const { signature } = await wallet.signAmino(account.address, signDoc);
  return { account, signDoc, signature: signature.signature, pubkey: signature.pub_key.value };
}

/** The X-VE-* headers for one request. */
export async function walletHeaders(wallet, request, chainId = "") {
  const data = signedData(request);
  const { account, signature, pubkey } = await signData(wallet, data, chainId);
  return {
    "X-VE-Address": account.address,
    "X-VE-Timestamp": String(request.timestampMs),
    "X-VE-Nonce": request.nonce,
    "X-VE-PubKey": pubkey,
    "X-VE-Signature": signature,
  };
}

async function main() {
  const { values } = parseArgs({
    options: {
      url: { type: "string" },
      method: { type: "string", default: "GET" },
      path: { type: "string" },
      "mnemonic-file": { type: "string" },
      "privkey-hex": { type: "string" },
      "body-file": { type: "string" },
      "content-type": { type: "string" },
      accept: { type: "string" },
      prefix: { type: "string", default: DEFAULT_PREFIX },
      "chain-id": { type: "string", default: "" },
      "timestamp-ms": { type: "string" },
      nonce: { type: "string" },
    },
    strict: true,
  });
  if (!values.url || !values.path || !values.path.startsWith("/")) {
    throw new Error("--url BASE and --path /PATH[?QUERY] are required");
  }
  if ((values["mnemonic-file"] === undefined) === (values["privkey-hex"] === undefined)) {
    throw new Error("give exactly one of --mnemonic-file and --privkey-hex");
  }
  if (values["timestamp-ms"] !== undefined && !/^[0-9]{1,16}$/.test(values["timestamp-ms"])) {
    throw new Error("--timestamp-ms must be Unix milliseconds");
  }

  // Sign what fetch will put on the wire: the WHATWG URL parser may re-encode a path, so the
  // signed path and query are read back from the parsed URL.
  const url = new URL(values.url.replace(/\/+$/, "") + values.path);
  const pathAndQuery = url.pathname + url.search;
  if (pathAndQuery !== values.path) {
    process.stderr.write(`note: signing the path as sent, ${pathAndQuery}\n`);
  }

  const body = values["body-file"] ? readFileSync(values["body-file"]) : Buffer.alloc(0);
  const method = values.method.toUpperCase();
  const wallet = await makeWallet({
    mnemonic: values["mnemonic-file"]
      ? readFileSync(values["mnemonic-file"], "utf8").trim()
      : undefined,
    privkeyHex: values["privkey-hex"],
    prefix: values.prefix,
  });
  const request = {
    method,
    pathAndQuery,
    timestampMs: values["timestamp-ms"] ?? Date.now(),
    nonce: values.nonce ?? randomBytes(16).toString("hex"),
    bodyHash: bodyHashField(body),
  };
  const headers = await walletHeaders(wallet, request, values["chain-id"]);
  if (values["content-type"]) headers["Content-Type"] = values["content-type"];
  if (values.accept) headers["Accept"] = values.accept;

  const response = await fetch(url, {
    method,
    headers,
    body: body.length === 0 ? undefined : body,
  });
  const text = await response.text();
  process.stdout.write(`${response.status}\n${text}`);
  if (text.length > 0 && !text.endsWith("\n")) process.stdout.write("\n");
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  main().catch((error) => {
    process.stderr.write(`sign-request: ${error.message}\n`);
    process.exit(2);
  });
}
