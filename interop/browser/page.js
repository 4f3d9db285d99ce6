// The portal page: signs requests with the user's wallet exactly as interop/wallet does in
// Node (a cosmjs amino wallet and Keplr's ADR-036 sign doc), bundled for the browser, and
// calls the vault on another origin. It uploads, reads and deletes one blob and shows each
// answer's status, X-Request-Id and X-VE-Audit-Event: the page can read those headers only
// because the vault exposes them to this origin (CORS).
//
// Parameters come in the URL fragment: vault (base URL), key (hex private key), envelope
// (base64 of an age envelope to upload).

import { Secp256k1Wallet } from "@cosmjs/amino";
import { fromHex, toHex } from "@cosmjs/encoding";
import { makeADR36AminoSignDoc } from "@keplr-wallet/cosmos/build/adr-36/amino.js";

const params = new URLSearchParams(location.hash.slice(1));
const vault = params.get("vault");
const out = document.getElementById("result");

async function sha256Hex(bytes) {
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)));
}

/** Sends one wallet-signed request (docs/auth.md) and returns what the page can see of it. */
async function signedFetch(wallet, method, path, body) {
  const bytes = body === undefined ? new Uint8Array() : new TextEncoder().encode(body);
  const bodyHash = bytes.length === 0 ? "" : await sha256Hex(bytes);
  const timestampMs = Date.now();
  const nonce = toHex(crypto.getRandomValues(new Uint8Array(16)));
  const data =
    `{"method":"${method}","path":"${path}","timestamp":${timestampMs},` +
    `"nonce":"${nonce}","body_hash":"${bodyHash}"}`;
  const [account] = await wallet.getAccounts();
  const signDoc = makeADR36AminoSignDoc(account.address, data);
  const { signature } = await wallet.signAmino(account.address, signDoc);
  const headers = {
    "X-VE-Address": account.address,
    "X-VE-Timestamp": String(timestampMs),
    "X-VE-Nonce": nonce,
    "X-VE-PubKey": signature.pub_key.value,
    "X-VE-Signature": signature.signature,
  };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(vault + path, { method, headers, body: body === undefined ? undefined : bytes, mode: "cors" });
  const text = await response.text();
  return {
    method,
    status: response.status,
    request_id: response.headers.get("X-Request-Id"),
    audit_event: response.headers.get("X-VE-Audit-Event"),
    body: text === "" ? null : JSON.parse(text),
  };
}

function show(line) {
  const row = document.createElement("li");
  row.textContent = line;
  document.getElementById("log").appendChild(row);
}

async function run() {
  const wallet = await Secp256k1Wallet.fromKey(fromHex(params.get("key")), "virtengine");
  const [account] = await wallet.getAccounts();
  const steps = [];
  const step = async (method, path, body) => {
    const seen = await signedFetch(wallet, method, path, body);
    show(`${method} ${path} → ${seen.status}  X-Request-Id: ${seen.request_id}  X-VE-Audit-Event: ${seen.audit_event}`);
    steps.push(seen);
    return seen;
  };
  const created = await step(
    "POST",
    "/api/v1/vault/blobs",
    JSON.stringify({ scope: "market", payload_base64: params.get("envelope") }),
  );
  const id = created.body.metadata.id;
  await step("GET", `/api/v1/vault/blobs/${id}`);
  await step("DELETE", `/api/v1/vault/blobs/${id}`);
  return { address: account.address, steps };
}

run()
  .then((result) => {
    out.textContent = JSON.stringify(result);
  })
  .catch((e) => {
    out.textContent = JSON.stringify({ error: String(e) });
  })
  .finally(() => {
    out.dataset.done = "true";
  });
