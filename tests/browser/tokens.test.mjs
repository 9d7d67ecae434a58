// End-to-end test of the page on a server started with --admin-token and --read-token:
// headless Chromium against the real binary (see harness.mjs). The page asks for a token in
// its token form, asks again after a wrong one, then uploads, trains and predicts with the
// admin token, following the job's progress and the model timeline over streams that carry
// it; a reload of the tab keeps the token, a new browser context asks again, and the read
// token predicts but is refused for training, which then asks for the admin token. The 401
// answers the page gets before it has a token are logged by the browser and tolerated; any
// other console error or uncaught exception fails the test.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

import {
  CHROMIUM, CHROMIUM_ARGS, INCOME2, SCREENSHOTS, callApi, removeTempDirs, startServer, stopServer, watchPage,
} from "./harness.mjs";

const ADMIN = "admin-7f3a9c1e5b2d4f60";
const READ = "read-2b8e6d0c4a1f9e73";
const VIEWPORT = { width: 1280, height: 900 };
const EPOCHS = 200000;
const NEEDS_ANY = "This needs the read token or the admin token.";
const NEEDS_ADMIN = "This needs the admin token (upload, train, cancel, activate).";

let server;
let browser;
/** The tabs opened, each with its console watcher (see harness.mjs). */
const tabs = [];

async function openTab() {
  const context = await browser.newContext({ viewport: VIEWPORT });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  tabs.push({ page, watcher: watchPage(page, [/status of 401/]) });
  await page.goto(server.base + "/");
  return page;
}

/** The `Authorization` header of every request of `page` to `path` from now on. */
function authorizations(page, path) {
  const seen = [];
  page.on("request", async (request) => {
    if (new URL(request.url()).pathname === path) seen.push((await request.allHeaders()).authorization);
  });
  return seen;
}

/** Waits up to 10 s for `condition` (checked in the test, not the page). */
async function until(condition, what) {
  const deadline = Date.now() + 10000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((wake) => setTimeout(wake, 50));
  }
}

/** An event of the model timeline's stream, as the server writes one. */
function activation(id, version, previous, reason) {
  return { id, version, previous, reason, gate: null, at: "2026-12-01T23:50:44.212870412Z" };
}

/** Waits for the token form and checks what it says it needs and which error it shows. */
async function assertAsked(page, need, error) {
  await page.waitForSelector("#token-dialog[open]");
  assert.equal(await page.textContent("#token-need"), need);
  if (error) {
    await page.waitForFunction((text) => document.getElementById("token-error").textContent === text, error);
    assert.ok(await page.isVisible("#token-error"));
  } else {
    assert.ok(await page.isHidden("#token-error"));
  }
}

async function enterToken(page, token) {
  await page.fill("#token-input", token);
  await page.getByRole("button", { name: "Use this token" }).click();
}

async function waitForModel(page, version) {
  await page.waitForFunction(
    (v) => document.getElementById("status-model").textContent.startsWith(`Model: v${v} `), version);
}

/** Predicts from the form and checks the value against the API's. */
async function predict(page) {
  const form = page.locator("#predict-form");
  await form.getByLabel("Education", { exact: true }).fill("12");
  await form.getByLabel("Seniority", { exact: true }).fill("50");
  await form.getByRole("button", { name: "Predict" }).click();
  await page.waitForSelector("#predict-value");
  const expected = (await callApi(server.base, "POST", "/predict", { x_predict: [[12, 50]] }, READ)).y_predict[0][0];
  assert.equal(Number(await page.getAttribute("#predict-value", "title")), expected);
}

/** The model timeline's rows as version and reason. */
function timeline(page) {
  return page.locator("#timeline-table tbody tr").evaluateAll((trs) =>
    trs.map((tr) => `${tr.cells[0].textContent} ${tr.dataset.reason}`));
}

describe("the page on a server that needs tokens", { timeout: 240000 }, () => {
  /** The first tab, which enters the admin token, and the one of a second browser context. */
  let page;
  let other;

  before(async () => {
    mkdirSync(SCREENSHOTS, { recursive: true });
    server = await startServer({ args: ["--admin-token", ADMIN, "--read-token", READ] });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  });

  after(async () => {
    try {
      if (browser) await browser.close();
    } finally {
      await stopServer(server);
      removeTempDirs();
    }
  });

  afterEach(() => {
    for (const { watcher } of tabs) assert.deepEqual(watcher.take(), [], "the page logged errors");
  });

  test("asks for a token, and again after a wrong one", async () => {
    page = await openTab();
    await assertAsked(page, NEEDS_ANY, null);
    assert.ok(await page.isHidden("#forget-token"));
    await page.screenshot({ path: join(SCREENSHOTS, "20-token-asked.png") });

    await enterToken(page, "not-the-token");
    await assertAsked(page, NEEDS_ANY, "The token was refused: the bearer token is not valid for this route");
    assert.equal(await page.inputValue("#token-input"), "not-the-token", "the form stays as it was");

    await enterToken(page, ADMIN);
    await page.waitForSelector("#token-dialog", { state: "hidden" });
    await page.waitForFunction(() => /^Dataset: 30 rows$/.test(document.getElementById("status-dataset").textContent));
    assert.ok(await page.isVisible("#forget-token"));
  });

  test("uploads, trains with live progress and predicts with the admin token", async () => {
    const jobStream = authorizations(page, "/v1/jobs/1/events");
    await page.setInputFiles("#file-input", INCOME2);
    await page.waitForSelector("text=Loaded Income2.csv.");
    await page.waitForFunction(() => document.querySelectorAll("#feature-list input").length === 3);
    await page.selectOption("#target", "Income");
    await page.check("#feature-Education");
    await page.check("#feature-Seniority");
    await page.selectOption("#solver", "adam");
    await page.fill("#epochs", String(EPOCHS));
    await page.fill("#batch-size", "1");
    await page.click("#train-button");

    // Only the job's event stream moves the progress bar of a job the page started.
    await page.waitForFunction(() => document.getElementById("job-progress").value > 0);
    assert.match(await page.textContent("#job-title"), /^Job 1 \(adam, Education, Seniority → Income\)/);
    await page.waitForSelector('#job[data-state="succeeded"]', { timeout: 60000 });
    assert.equal(await page.evaluate(() => document.getElementById("job-progress").value), EPOCHS);
    assert.match(await page.textContent("#job-text"), /^Done in .*: model v1, MSE /);

    // The activation arrives over the model timeline's stream, without a reload.
    await page.waitForFunction(() => document.querySelectorAll("#timeline-table tbody tr").length === 1);
    assert.deepEqual(await timeline(page), ["v1 manual"]);

    await waitForModel(page, 1);
    await predict(page);
    const job = await callApi(server.base, "GET", "/v1/jobs/1", undefined, READ);
    assert.equal(job.state, "succeeded");
    assert.equal(job.epoch, EPOCHS);
    assert.deepEqual(jobStream, [`Bearer ${ADMIN}`]);
  });

  test("keeps the token when the tab reloads", async () => {
    const refused = [];
    const onResponse = (response) => response.status() === 401 && refused.push(response.url());
    page.on("response", onResponse);
    await page.reload();
    await waitForModel(page, 1);
    await page.waitForFunction(() => document.querySelectorAll("#timeline-table tbody tr").length === 1);
    await page.waitForTimeout(1500);
    page.off("response", onResponse);
    assert.deepEqual(refused, [], "no call of the reloaded tab goes without the token");
    assert.ok(await page.isHidden("#token-dialog"), "the reloaded tab does not ask");
    assert.ok(await page.isVisible("#forget-token"));
  });

  test("resumes the timeline's stream after a drop with the last event's id", async () => {
    // The first two answers are written here and end at once, as a dropped stream does; the
    // third waits until the page has shown their events, then goes to the server.
    const requests = [];
    let release;
    const released = new Promise((resolveRelease) => { release = resolveRelease; });
    const first = activation(41, 9, null, { kind: "manual" });
    const second = activation(42, 10, 9, { kind: "trigger", name: "nightly" });
    const bodies = [
      `: a comment\r\nretry: 200\r\nid: 41\r\nevent: activation\r\ndata: ${JSON.stringify(first)}\r\n\r\n`,
      `id: 42\nevent: activation\ndata: ${JSON.stringify(second).replace(",", ",\ndata: ")}\n\n`,
    ];
    await page.route("**/v1/models/events", async (route) => {
      const headers = route.request().headers();
      requests.push([headers["last-event-id"], headers.authorization]);
      const body = bodies[requests.length - 1];
      if (body) return route.fulfill({ status: 200, contentType: "text/event-stream", body });
      await released;
      return route.continue();
    });
    await page.reload();
    await page.waitForFunction(() => document.querySelectorAll("#timeline-table tbody tr").length === 2);
    assert.deepEqual(await timeline(page), ["v10 trigger", "v9 manual"]);
    assert.equal(await page.textContent("#timeline-table tbody tr td:nth-child(3)"), "trigger “nightly”");
    await until(() => requests.length === 3, "the stream to be followed a third time");
    assert.deepEqual(requests, [[undefined, `Bearer ${ADMIN}`], ["41", `Bearer ${ADMIN}`], ["42", `Bearer ${ADMIN}`]]);

    // The server's events never reached 42: it sends its newest, which replace those shown.
    release();
    await page.waitForFunction(() => document.querySelector("#timeline-table tbody tr th").textContent === "v1");
    assert.deepEqual(await timeline(page), ["v1 manual"]);
    await page.unroute("**/v1/models/events");
  });

  test("asks again in a new browser context; the read token predicts but cannot train", async () => {
    other = await openTab();
    await assertAsked(other, NEEDS_ANY, null);
    await enterToken(other, READ);
    await other.waitForSelector("#token-dialog", { state: "hidden" });
    await waitForModel(other, 1);
    await predict(other);

    await other.waitForFunction(() => document.querySelectorAll("#feature-list input").length === 3);
    await other.selectOption("#solver", "least-squares");
    await other.click("#train-button");
    const refused = "The token was refused: the bearer token is not valid for this route: it needs the admin token";
    await assertAsked(other, NEEDS_ADMIN, refused);
    await other.screenshot({ path: join(SCREENSHOTS, "21-token-admin-asked.png") });
    await other.getByRole("button", { name: "Not now" }).click();
    await other.waitForSelector("#train-error:visible");
    assert.equal(await other.textContent("#train-error"),
      "Training was not started: the bearer token is not valid for this route: it needs the admin token");
    assert.ok(await other.isHidden("#token-dialog"));

    // Entering the admin token retries the refused call.
    await other.click("#train-button");
    await assertAsked(other, NEEDS_ADMIN, refused);
    await enterToken(other, ADMIN);
    await other.waitForSelector('#job[data-state="succeeded"]');
    assert.match(await other.textContent("#job-title"), /^Job 2 \(least-squares, /);
    await waitForModel(other, 2);
    await other.waitForFunction(() => document.querySelectorAll("#timeline-table tbody tr").length === 2);
    assert.deepEqual(await timeline(other), ["v2 manual", "v1 manual"]);
  });

  test("asks on a 403 with a Bearer challenge, and not on other 403s", async () => {
    // A token that does not reach far enough may be answered 403 with a challenge (RFC 6750's
    // insufficient_scope, as a proxy in front may answer); a 403 without one is no question
    // of tokens (the admin listener, a page of another origin).
    const answers = [
      { status: 403, headers: { "WWW-Authenticate": 'Bearer error="insufficient_scope"' }, message: "it needs the admin token" },
      { status: 403, headers: {}, message: "served only on the admin listener" },
    ];
    await other.route("**/predict", (route) => {
      const answer = answers.shift();
      if (!answer) return route.continue();
      const body = JSON.stringify({ error: answer.message });
      return route.fulfill({ status: answer.status, headers: answer.headers, contentType: "application/json", body });
    });
    const { watcher } = tabs.find((tab) => tab.page === other);
    const refusal = (description) => ({ description, text: /status of 403/, url: "/predict" });
    const form = other.locator("#predict-form");
    await form.getByLabel("Education", { exact: true }).fill("14");
    await watcher.expecting([refusal("the 403 with a challenge"), refusal("the 403 without one")], async () => {
      await form.getByRole("button", { name: "Predict" }).click();
      await assertAsked(other, NEEDS_ADMIN, "The token was refused: it needs the admin token");
      await enterToken(other, ADMIN);
      await other.waitForSelector("#predict-error:visible");
    });
    assert.equal(await other.textContent("#predict-error"), "Prediction failed: served only on the admin listener");
    assert.ok(await other.isHidden("#token-dialog"), "a 403 without a challenge does not ask");
    await form.getByRole("button", { name: "Predict" }).click();
    // Version 2, trained above with the form's default features, has Education alone.
    await other.waitForFunction(() => / for Education 14$/.test(document.getElementById("predict-result").textContent));
    const expected = (await callApi(server.base, "POST", "/predict", { x_predict: [14] }, READ)).y_predict[0][0];
    assert.equal(Number(await other.getAttribute("#predict-value", "title")), expected);
    await other.unroute("**/predict");
  });

  test("a dismissed form stays closed through the background refreshes until the user acts", async () => {
    const tab = await openTab();
    await assertAsked(tab, NEEDS_ANY, null);
    await tab.getByRole("button", { name: "Not now" }).click();
    assert.ok(await tab.isHidden("#token-dialog"));
    // The panels refresh every second or two, each refused for want of a token.
    await tab.waitForTimeout(3000);
    assert.ok(await tab.isHidden("#token-dialog"), "a background refresh reopened the dismissed form");
    await tab.click("body", { position: { x: 5, y: 5 } });
    await assertAsked(tab, NEEDS_ANY, null);
  });

  test("forgets the token and asks again", async () => {
    await page.click("#forget-token");
    await assertAsked(page, NEEDS_ANY, null);
    assert.ok(await page.isHidden("#forget-token"));
    await page.reload();
    await assertAsked(page, NEEDS_ANY, null);
  });
});
