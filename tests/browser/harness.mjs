// What the browser tests share: the binary and browser they drive, starting and stopping the
// server on a free port with a fresh data directory, calling its API from the test, and
// watching a page's console for errors (any error a step does not expect fails the test).

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const BINARY = resolve(ROOT, process.env.REGSERVE_BIN || "target/release/regserve");
export const CHROMIUM = "/usr/bin/chromium";
export const SCREENSHOTS = join(ROOT, "screenshots");
export const INCOME2 = join(ROOT, "dataset", "Income2.csv");
export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Temporary directories made by this run, removed by `removeTempDirs`. */
const temporary = [];

export function tempDir(prefix) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  temporary.push(dir);
  return dir;
}

export function removeTempDirs() {
  for (const dir of temporary.splice(0)) rmSync(dir, { recursive: true, force: true });
}

function freePort() {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.on("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolvePort(port));
    });
  });
}

/** Starts the binary on `dataDir` (a fresh one by default) with `args` besides its address
 * and data directory, and waits until it answers. */
export async function startServer({ dataDir = tempDir("regserve-e2e-data-"), args = [] } = {}) {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const argv = ["--addr", `127.0.0.1:${port}`, "--data-dir", dataDir, ...args];
  // The browser shares the machine; a fit at the default idle priority would wait for it.
  const env = { ...process.env, RUST_LOG: "warn", REGSERVE_TRAINING_PRIORITY: "0" };
  const child = spawn(BINARY, argv, { stdio: ["ignore", "pipe", "pipe"], env });
  let log = "";
  child.stdout.on("data", (chunk) => { log += chunk; });
  child.stderr.on("data", (chunk) => { log += chunk; });
  const exited = new Promise((resolveExit) => child.on("exit", (code, signal) => resolveExit({ code, signal })));
  // Never leave the server behind, even when the test run is interrupted.
  process.once("exit", () => child.kill("SIGKILL"));
  let spawnError = null;
  child.on("error", (error) => { spawnError = error; });

  const deadline = Date.now() + 20000;
  for (;;) {
    if (spawnError) throw new Error(`cannot start ${BINARY}: ${spawnError.message} (build it with cargo build --release)`);
    if (child.exitCode !== null) throw new Error(`${BINARY} exited with ${child.exitCode}:\n${log}`);
    try {
      // The health probe answers whatever tokens the server needs.
      const response = await fetch(`${base}/healthz`);
      if (response.ok) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) throw new Error(`${BINARY} did not answer on ${base} within 20 s:\n${log}`);
    await new Promise((wake) => setTimeout(wake, 100));
  }
  return { base, child, exited, dataDir, log: () => log };
}

export async function stopServer(server) {
  if (!server || server.child.exitCode !== null || server.child.signalCode !== null) return;
  server.child.kill("SIGTERM");
  const timer = setTimeout(() => server.child.kill("SIGKILL"), 5000);
  await server.exited;
  clearTimeout(timer);
}

/** Calls the API of the server at `base` from the test (not through the page), with `token`
 * when given; resolves to the parsed body, rejects on an error answer. */
export async function callApi(base, method, path, body, token) {
  const init = { method, headers: {} };
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(base + path, init);
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return data;
}

/** Records the console errors and uncaught exceptions of `page`, but those matching one of
 * `tolerated` (regular expressions on the message). `expecting(matchers, step)` runs a step
 * during which exactly these errors ({ description, text, url }) must be logged; `take()`
 * returns the unexpected ones so far and forgets them. */
export function watchPage(page, tolerated = []) {
  const errors = [];
  let expected = [];
  page.on("pageerror", (error) => errors.push(`uncaught exception: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    const text = message.text();
    const url = message.location().url || "";
    const match = expected.find((m) => !m.seen && m.text.test(text) && url.endsWith(m.url));
    if (match) match.seen = true;
    else if (!tolerated.some((pattern) => pattern.test(text))) errors.push(`console error: ${text} (${url})`);
  });
  return {
    async expecting(matchers, step) {
      expected = matchers.map((matcher) => ({ ...matcher, seen: false }));
      try {
        await step();
      } finally {
        const missing = expected.filter((matcher) => !matcher.seen);
        expected = [];
        assert.deepEqual(missing.map((m) => m.description), [], "expected console errors that did not happen");
      }
    },
    take: () => errors.splice(0),
  };
}
