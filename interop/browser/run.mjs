#!/usr/bin/env node
// Serves index.html and the bundled page.js on http://localhost:PORT (the portal's origin),
// opens it in headless Chromium (Playwright, with the system's chromium), waits until the page
// has uploaded, read and deleted a blob on the vault at VAULT (another origin), and prints
// what the page showed as JSON on stdout.
//
//   node run.mjs --port 5173 --vault http://127.0.0.1:8080 --key HEX --envelope BASE64 \
//     [--screenshot page.png]
//
// CHROMIUM overrides the browser's path (default /usr/bin/chromium).

import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { build } from "esbuild";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const { values } = parseArgs({
  options: {
    port: { type: "string" },
    vault: { type: "string" },
    key: { type: "string" },
    envelope: { type: "string" },
    screenshot: { type: "string" },
  },
});

const bundle = await build({
  entryPoints: [join(here, "page.js")],
  bundle: true,
  write: false,
  platform: "browser",
  format: "esm",
  define: { global: "globalThis" },
  // Keplr's hashing reaches Node's stream module; the browser gets the usual polyfill.
  alias: { stream: "stream-browserify" },
  absWorkingDir: here,
  inject: [join(here, "shims.js")],
  logLevel: "error",
});
const files = {
  "/": ["text/html; charset=utf-8", readFileSync(join(here, "index.html"))],
  "/page.js": ["text/javascript; charset=utf-8", bundle.outputFiles[0].contents],
};
const server = createServer((request, response) => {
  const file = files[request.url];
  if (file === undefined) {
    response.writeHead(404).end();
    return;
  }
  response.writeHead(200, { "Content-Type": file[0] }).end(file[1]);
});
await new Promise((resolve) => server.listen(Number(values.port), "127.0.0.1", resolve));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  // Root in a container has no user namespaces for Chromium's sandbox.
  args: ["--no-sandbox"],
});
let exitCode = 0;
try {
  const page = await browser.newPage();
  page.on("console", (message) => console.error(`[page] ${message.text()}`));
  page.on("pageerror", (error) => console.error(`[page error] ${error}`));
  const fragment = new URLSearchParams({
    vault: values.vault,
    key: values.key,
    envelope: values.envelope,
  });
  await page.goto(`http://localhost:${values.port}/#${fragment}`);
  await page.waitForSelector("#result[data-done=true]", { timeout: 30_000 });
  if (values.screenshot) await page.screenshot({ path: values.screenshot, fullPage: true });
  const shown = {
    result: JSON.parse(await page.textContent("#result")),
    log: await page.$$eval("#log li", (rows) => rows.map((row) => row.textContent)),
  };
  process.stdout.write(JSON.stringify(shown) + "\n");
} catch (e) {
  console.error(e);
  exitCode = 1;
} finally {
  await browser.close();
  server.close();
}
process.exit(exitCode);
