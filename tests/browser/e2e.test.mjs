// End-to-end test of the page served at `/`: headless Chromium against the real binary.
//
// Starts `target/release/regserve` (or $REGSERVE_BIN) on a free port with a fresh data
// directory (see harness.mjs), drives the page through upload, training with live progress, the fit, prediction,
// version activation and the model timeline, cancellation, a failed training, a training started by another client, a
// rejected upload, a loss history long enough to be sampled, and stored versions damaged on disk
// (restarting the server on the same data directory), checks that the numbered sections read in
// order, and compares what the page shows with the HTTP API. Any console error or uncaught
// exception on the page fails the test. Screenshots of the main states go to `screenshots/` at
// the repository root.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

import {
  CHROMIUM, CHROMIUM_ARGS, INCOME2, SCREENSHOTS, callApi, removeTempDirs, startServer, stopServer, tempDir, watchPage,
} from "./harness.mjs";

const LAPTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };
/** Window sizes at which the sections must read in the order of their numbers. */
const LAYOUT_SIZES = [
  { width: 1280, height: 800 },
  { width: 1440, height: 900 },
  { width: 1920, height: 1080 },
  { width: 800, height: 900 },
];
/** The most losses an answer lists before the server samples a history down. */
const HISTORY_POINTS = 10000;

let server;
let context;
let page;
/** The page's console errors (see harness.mjs). */
let watcher;

/** Stops the server, damages stored model files, and starts it again on the same data. The
 * page leaves first, so its polls do not log the refused connections of the restart. */
async function restartWithDamagedVersions(versions) {
  await page.goto("about:blank");
  await stopServer(server);
  for (const version of versions) {
    const file = join(server.dataDir, "models", `v${String(version).padStart(6, "0")}.json`);
    writeFileSync(file, "this is not a model file\n");
  }
  server = await startServer({ dataDir: server.dataDir });
}

/** Calls the API from the test (not through the page). */
function api(method, path, body) {
  return callApi(server.base, method, path, body);
}

async function screenshot(name, options = {}) {
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), ...options });
}

/** The parsed number of a formatted value and its full precision from the title. */
async function shownNumber(locator) {
  const [text, title] = await Promise.all([locator.textContent(), locator.getAttribute("title")]);
  return { shown: Number(text), full: Number(title) };
}

/** Checks a value shown to 4 significant digits against the API's value. */
function assertShown({ shown, full }, expected, what) {
  assert.equal(full, expected, `${what}: the title holds the full value`);
  const tolerance = Math.abs(expected) * 5e-4 + 1e-12;
  assert.ok(Math.abs(shown - expected) <= tolerance, `${what}: shown ${shown}, API ${expected}`);
}

async function chooseFeatures(names) {
  for (const input of await page.locator("#feature-list input").all()) {
    const name = await input.getAttribute("value");
    if (await input.isDisabled()) continue;
    await input.setChecked(names.includes(name));
  }
}

/** Fills the train form and clicks Train; returns the id of the job the page shows. */
async function train({ features, target = "Income", solver, epochs, learningRate, batchSize, seed }) {
  await page.selectOption("#target", target);
  await chooseFeatures(features);
  await page.selectOption("#solver", solver);
  if (epochs !== undefined) await page.fill("#epochs", String(epochs));
  if (learningRate !== undefined) await page.fill("#learning-rate", String(learningRate));
  if (batchSize !== undefined) await page.fill("#batch-size", String(batchSize));
  if (seed !== undefined) await page.fill("#seed", String(seed));
  const before = (await api("GET", "/v1/jobs"))[0];
  await page.click("#train-button");
  await page.waitForFunction(
    (previous) => /^Job (\d+)/.test(document.getElementById("job-title").textContent) &&
      Number(/^Job (\d+)/.exec(document.getElementById("job-title").textContent)[1]) > previous,
    before ? before.id : 0,
  );
  return Number(/^Job (\d+)/.exec(await page.textContent("#job-title"))[1]);
}

async function waitForJobState(id, jobState, timeout = 60000) {
  await page.waitForSelector(`#job[data-state="${jobState}"]`, { timeout });
  assert.match(await page.textContent("#job-title"), new RegExp(`^Job ${id} `));
}

/** The numbered section headings ("3. Model and fit") with their number and position. */
async function sectionHeadings() {
  return page.evaluate(() => [...document.querySelectorAll("main section > h2")].map((heading) => {
    const box = heading.getBoundingClientRect();
    return { text: heading.textContent, number: parseInt(heading.textContent, 10), top: box.top, left: box.left };
  }));
}

/** Checks that each section comes after the one numbered before it: lower on the page, or on
 * the same line (within a pixel) and to its right. */
function assertReadingOrder(headings, size) {
  const byNumber = [...headings].sort((a, b) => a.number - b.number);
  assert.deepEqual(byNumber.map((h) => h.number), [1, 2, 3, 4, 5, 6]);
  for (let i = 1; i < byNumber.length; i += 1) {
    const [before, next] = [byNumber[i - 1], byNumber[i]];
    const sameLine = Math.abs(next.top - before.top) <= 1;
    const follows = sameLine ? next.left > before.left : next.top > before.top;
    const where = (h) => `"${h.text}" at top ${Math.round(h.top)}, left ${Math.round(h.left)}`;
    assert.ok(follows, `at ${size.width}x${size.height}, ${where(next)} comes before ${where(before)}`);
  }
}

/** The loss chart's epoch tick labels and the losses its label names ("from A to B"). */
async function lossChart() {
  // The x axis's ticks are centred under their grid line; the y axis's end at the axis.
  const ticks = await page.locator('#loss-chart svg text.tick[text-anchor="middle"]').allTextContents();
  const label = await page.getAttribute("#loss-chart svg", "aria-label");
  const [, from, to] = /from (\S+) to (\S+)$/.exec(label);
  return { ticks, from: Number(from), to: Number(to) };
}

/** Checks a loss shown to 4 significant digits. */
function assertLoss(shown, expected, what) {
  assert.ok(Math.abs(shown - expected) <= Math.abs(expected) * 5e-4, `${what}: shown ${shown}, API ${expected}`);
}

describe("the regserve page", { timeout: 240000 }, () => {
  before(async () => {
    mkdirSync(SCREENSHOTS, { recursive: true });
    server = await startServer();
    context = await chromium.launchPersistentContext(tempDir("regserve-e2e-chromium-"), {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: LAPTOP,
    });
    page = context.pages()[0] || (await context.newPage());
    page.setDefaultTimeout(15000);
    watcher = watchPage(page);
  });

  after(async () => {
    try {
      if (context) await context.close();
    } finally {
      await stopServer(server);
      removeTempDirs();
    }
  });

  afterEach(() => {
    assert.deepEqual(watcher.take(), [], "the page logged errors");
  });

  test("shows the state without a model", async () => {
    await page.goto(server.base + "/");
    await page.waitForSelector("#no-model:visible");
    assert.equal((await page.textContent("#no-model")).trim(), "No model yet: train one.");
    await page.waitForSelector("#columns-table tbody tr");
    assert.match(await page.textContent("#status-model"), /none yet/);
    assert.ok(await page.isVisible("#models-empty"));
    assert.ok(await page.isVisible("#timeline-empty"));
    assert.ok(await page.isVisible("#predict-empty"));
    await screenshot("01-empty");
  });

  test("uploads Income2.csv and shows its columns and first rows", async () => {
    await page.setInputFiles("#file-input", INCOME2);
    await page.waitForSelector("text=Loaded Income2.csv.");
    await page.waitForFunction(() => document.querySelectorAll("#columns-table tbody tr").length === 3);
    const columns = await page.locator("#columns-table tbody th").allTextContents();
    assert.deepEqual(columns, ["Education", "Seniority", "Income"]);
    const dataset = await api("GET", "/v1/dataset");
    assert.equal(dataset.rows, 30);
    const education = dataset.columns.find((column) => column.name === "Education");
    const cells = page.locator("#columns-table tbody tr").first().locator("td .number");
    assertShown(await shownNumber(cells.nth(0)), education.min, "Education min");
    assertShown(await shownNumber(cells.nth(1)), education.mean, "Education mean");
    assertShown(await shownNumber(cells.nth(2)), education.max, "Education max");

    const header = await page.locator("#preview-table thead th").allTextContents();
    assert.deepEqual(header, ["Row", "Education", "Seniority", "Income"]);
    assert.equal(await page.locator("#preview-table tbody tr").count(), 10);
    const firstRow = page.locator("#preview-table tbody tr").first().locator("td .number");
    assertShown(await shownNumber(firstRow.nth(0)), 21.5862068965517, "first Education");
    assertShown(await shownNumber(firstRow.nth(2)), 99.9171726114381, "first Income");
    const features = await page.locator("#feature-list input").evaluateAll((inputs) => inputs.map((i) => i.value));
    assert.deepEqual(features, ["Education", "Seniority", "Income"]);
    await screenshot("02-dataset-loaded");
  });

  test("offers each solver's settings with the server's defaults", async () => {
    const settings = () => Promise.all(["#epochs", "#learning-rate", "#batch-size"].map((id) => page.inputValue(id)));
    assert.equal(await page.inputValue("#solver"), "adam");
    assert.deepEqual(await settings(), ["500", "0.001", "32"]);
    await page.selectOption("#solver", "adam-standardized");
    assert.deepEqual(await settings(), ["10000", "0.01", "32"]);
    await page.selectOption("#solver", "least-squares");
    assert.ok(await page.isHidden("#adam-fields"), "least-squares has no Adam settings");
    await page.selectOption("#solver", "adam");
    assert.deepEqual(await settings(), ["500", "0.001", "32"]);
    assert.equal(await page.inputValue("#seed"), "");
  });

  test("trains a first exact model", async () => {
    const id = await train({ features: ["Education", "Seniority"], solver: "least-squares" });
    await waitForJobState(id, "succeeded");
    await page.waitForSelector("#models-table tbody tr.active");
    const models = await api("GET", "/v1/models");
    assert.equal(models.length, 1);
    assert.equal(models[0].solver, "least-squares");
    assert.ok(await page.isHidden("#no-model"));
    assert.match(await page.textContent("#status-model"), /v1 \(least-squares\)/);
  });

  test("trains with Adam and shows the progress until the job finishes", async () => {
    const epochs = 400000;
    const id = await train({ features: ["Education", "Seniority"], solver: "adam", epochs, batchSize: 1, seed: 7 });
    await page.waitForSelector('#job[data-state="running"]');
    await page.waitForFunction(() => document.getElementById("job-progress").value > 0);
    await page.waitForSelector("#loss-chart svg path.loss-line");
    const text = await page.textContent("#job-text");
    assert.match(text, /^epoch [\d,]+ \/ 400,000 · loss [\d.e-]+ · ETA /);
    assert.equal(await page.getAttribute("#job-progress", "max"), String(epochs));
    assert.ok(await page.isDisabled("#train-button"), "Train is disabled while a job runs");
    assert.ok(await page.isEnabled("#cancel-button"));
    await screenshot("03-training-in-progress", { fullPage: true });

    await waitForJobState(id, "succeeded");
    const job = await api("GET", `/v1/jobs/${id}`);
    assert.equal(job.state, "succeeded");
    assert.equal(job.epoch, epochs);
    assert.equal(await page.evaluate(() => document.getElementById("job-progress").value), epochs);
    assert.match(await page.textContent("#job-text"), new RegExp(`^Done in .*: model v${job.model_version}, MSE `));
    await page.waitForSelector("text=Last loss");
    assert.match(await page.textContent("#loss-caption"), /at epoch 400,000\.$/, "the loss curve has every epoch");
    assert.ok(await page.isEnabled("#train-button"));
    assert.ok(await page.isDisabled("#cancel-button"));
  });

  test("shows the served model's weights, metrics and fit", async () => {
    const model = await api("GET", "/v1/model");
    assert.equal(model.version, 2);
    await page.waitForFunction(() => /v2 \(adam\)/.test(document.getElementById("status-model").textContent));
    for (const [i, feature] of model.features.entries()) {
      assertShown(await shownNumber(page.locator(`#weights-table [data-feature="${feature}"]`)), model.kernel[i], feature);
    }
    assertShown(await shownNumber(page.locator("#model-bias")), model.bias, "bias");
    assertShown(await shownNumber(page.locator("#model-mse")), model.mse, "MSE");
    assertShown(await shownNumber(page.locator("#model-r2")), model.r2, "R²");
    const gap = await page.textContent("#model-gap");
    assert.match(gap, /\(.+ %\)$/, "the gap is also shown in per cent");
    const facts = await page.textContent("#model-facts");
    assert.match(facts, /Versionv2/);
    assert.match(facts, /Solveradam/);

    // Two features: predicted against actual, one point per row, and the diagonal.
    await page.waitForSelector("#fit-chart svg");
    assert.equal(await page.locator("#fit-chart .points circle").count(), 30);
    assert.equal(await page.locator("#fit-chart path.optimum-line").count(), 1);
    assert.match(await page.textContent("#fit-chart svg"), /actual Income/);
    await screenshot("04-trained-fit", { fullPage: true });
  });

  test("predicts from the form", async () => {
    const form = page.locator("#predict-form");
    await form.getByLabel("Education", { exact: true }).fill("12");
    await form.getByLabel("Seniority", { exact: true }).fill("50");
    await form.getByRole("button", { name: "Predict" }).click();
    await page.waitForSelector("#predict-value");
    const expected = (await api("POST", "/predict", { x_predict: [[12, 50]] })).y_predict[0][0];
    assertShown(await shownNumber(page.locator("#predict-value")), expected, "prediction");
    assert.match(await page.textContent("#predict-result"), /^Income = .* for Education 12, Seniority 50$/);
  });

  test("activates the older version", async () => {
    await page.getByRole("button", { name: "Activate version 1" }).click();
    await page.waitForSelector('#models-table tr.active[data-version="1"]');
    const model = await api("GET", "/v1/model");
    assert.equal(model.version, 1);
    assert.match(await page.textContent('#models-table tr[data-version="1"] th'), /active/);
    assert.equal(await page.locator('#models-table tr[data-version="2"] button').count(), 1);
    await page.waitForFunction(() => /v1 \(least-squares\)/.test(document.getElementById("status-model").textContent));
    assertShown(await shownNumber(page.locator('#weights-table [data-feature="Education"]')), model.kernel[0], "v1 Education");
    assert.ok(await page.isHidden("#predict-result"), "the previous model's prediction is cleared");
  });

  test("lists each activation in the model timeline, newest first", async () => {
    // Two trainings (v1, v2) and the rollback to v1 before this: one event each, live.
    await page.waitForFunction(() => document.querySelectorAll("#timeline-table tbody tr").length === 3);
    const rows = await page.locator("#timeline-table tbody tr").evaluateAll((trs) => trs.map((tr) => ({
      reason: tr.dataset.reason,
      cells: [...tr.cells].slice(0, 3).map((cell) => cell.textContent),
      at: tr.cells[4].title,
    })));
    assert.deepEqual(rows.map((row) => row.reason), ["rollback", "manual", "manual"]);
    assert.deepEqual(rows.map((row) => row.cells), [
      ["v1", "v2", "rollback"],
      ["v2", "v1", "manual"],
      ["v1", "none", "manual"],
    ]);
    for (const row of rows) assert.match(row.at, /^\d{4}-\d\d-\d\dT[\d:.]+Z$/);
    assert.ok(rows[0].at >= rows[1].at && rows[1].at >= rows[2].at, "newest first");
    assert.ok(await page.isHidden("#timeline-empty"));
    // A fresh page reads the same history from the server.
    await page.reload();
    await page.waitForFunction(() => document.querySelectorAll("#timeline-table tbody tr").length === 3);
    assert.deepEqual(
      await page.locator("#timeline-table tbody tr").evaluateAll((trs) => trs.map((tr) => tr.dataset.reason)),
      ["rollback", "manual", "manual"],
    );
    // The next steps train from the form: the reloaded page has its columns again.
    await page.waitForFunction(() => document.querySelectorAll("#feature-list input").length === 3);
    await page.locator("#models").scrollIntoViewIfNeeded();
    await screenshot("12-model-timeline");
  });

  test("lists the server among the nodes, up and serving the active version", async () => {
    const listed = await api("GET", "/v1/nodes");
    assert.equal(listed.nodes.length, 1, JSON.stringify(listed));
    const expected = { id: listed.answered_by, version: (await api("GET", "/v1/model")).version };
    // The heartbeat is rewritten every 5 s and the panel refreshed every 2 s.
    await page.waitForFunction(({ id, version }) => {
      const row = [...document.querySelectorAll("#nodes-table tbody tr")].find((tr) => tr.dataset.node === id);
      return row && row.dataset.state === "up" && row.textContent.includes(`v${version}`);
    }, expected, { timeout: 15000 });
    const cells = await page.locator("#nodes-table tbody tr").first().locator("td").allTextContents();
    assert.match(cells[0], /this page's server/);
    assert.deepEqual(cells.slice(1, 4), ["all", "up", `v${expected.version}`]);
  });

  test("cancels a long training and keeps the served model", async () => {
    const id = await train({ features: ["Education", "Seniority"], solver: "adam", epochs: 1000000, batchSize: 1 });
    await page.waitForSelector('#job[data-state="running"]');
    await page.click("#cancel-button");
    await waitForJobState(id, "cancelled");
    assert.equal((await api("GET", `/v1/jobs/${id}`)).state, "cancelled");
    assert.match(await page.textContent("#job-text"), /^Cancelled at epoch [\d,]+ \/ 1,000,000/);
    assert.equal((await api("GET", "/v1/model")).version, 1);
    assert.equal((await api("GET", "/v1/models")).length, 2);
    assert.match(await page.textContent("#status-model"), /v1/);
    assert.ok(await page.isEnabled("#train-button"));
  });

  test("follows a training started outside the page", async () => {
    const job = await api("POST", "/train", {
      features: ["Education"], solver: "adam", epochs: 1000000, batch_size: 1,
    });
    await page.waitForFunction((id) => document.getElementById("job-title").textContent.startsWith(`Job ${id} `) &&
      document.getElementById("job").dataset.state === "running", job.id);
    assert.ok(await page.isDisabled("#train-button"), "Train is disabled while another client trains");
    await page.waitForFunction(() => document.getElementById("job-progress").value > 0);
    await api("DELETE", `/v1/jobs/${job.id}`);
    await waitForJobState(job.id, "cancelled");
    assert.ok(await page.isEnabled("#train-button"));
  });

  test("shows why a training failed", async () => {
    const id = await train({ features: ["Education", "Seniority"], solver: "adam", epochs: 50, learningRate: 1e300, batchSize: 32 });
    await waitForJobState(id, "failed");
    assert.match(await page.textContent("#job-error"), /^Training failed: training diverged: .*learning_rate/);
    assert.equal((await api("GET", `/v1/jobs/${id}`)).state, "failed");
    assert.equal((await api("GET", "/v1/model")).version, 1);
    assert.ok(await page.isEnabled("#train-button"));
    await screenshot("05-training-failed");
  });

  test("predicts by clicking the one-feature scatter plot", async () => {
    // Keras-faithful Adam stops far from the optimum: the two lines differ.
    const id = await train({ features: ["Education"], solver: "adam", epochs: 3000, learningRate: 0.001, batchSize: 32, seed: 3 });
    await waitForJobState(id, "succeeded");
    await page.waitForFunction(() => /v3 \(adam\)/.test(document.getElementById("status-model").textContent));
    await page.waitForSelector("text=at epoch 3,000.");
    const plot = page.locator("#fit-chart svg.clickable");
    assert.equal(await plot.locator("path.model-line").count(), 1);
    assert.equal(await plot.locator("path.optimum-line").count(), 1);
    assert.equal(await plot.locator(".points circle").count(), 30);
    assert.match(await plot.textContent(), /model v3/);
    const box = await plot.boundingBox();
    await plot.click({ position: { x: box.width * 0.6, y: box.height * 0.5 } });
    await page.waitForSelector("#fit-chart circle.marker");
    const x = Number(await page.inputValue("#predict-0"));
    assert.ok(x > 10 && x < 22, `clicked at Education ${x}`);
    const expected = (await api("POST", "/predict", { x_predict: [x] })).y_predict[0][0];
    assertShown(await shownNumber(page.locator("#predict-value")), expected, "prediction at the click");
    await screenshot("06-scatter-click", { fullPage: true });
    await page.locator("#fit").evaluate((section) => window.scrollTo(0, section.offsetTop - 8));
    await screenshot("trained-1280x900");
    await page.evaluate(() => window.scrollTo(0, 0));
  });

  test("numbers the sections in reading order at common widths", async () => {
    try {
      for (const size of LAYOUT_SIZES) {
        await page.setViewportSize(size);
        // The plots are redrawn for the new width on the next frames.
        await page.evaluate(() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done))));
        assertReadingOrder(await sectionHeadings(), size);
      }
      await page.setViewportSize(LAYOUT_SIZES[0]);
      await screenshot("09-layout-1280x800", { fullPage: true });
    } finally {
      await page.setViewportSize(LAPTOP);
    }
  });

  test("shows a long, sampled loss history with every epoch counted", async () => {
    const epochs = 20000;
    const id = await train({ features: ["Education", "Seniority"], solver: "adam", epochs, learningRate: 0.01, batchSize: 32, seed: 5 });
    await waitForJobState(id, "succeeded");
    const job = await api("GET", `/v1/jobs/${id}`);
    assert.equal(job.history.loss.length, HISTORY_POINTS, "the answer samples the history");
    assert.equal(job.history.length, epochs);
    assert.deepEqual([job.history.epochs[0], job.history.epochs.at(-1)], [1, epochs]);
    const losses = (await api("GET", `/v1/jobs/${id}?history=full`)).history.loss;
    assert.equal(losses.length, epochs);

    // The page watched the job: its losses came as several progress events, appended in turn.
    await page.waitForSelector("text=at epoch 20,000.");
    let chart = await lossChart();
    assertLoss(chart.from, losses[0], "first loss of the streamed history");
    assertLoss(chart.to, losses.at(-1), "last loss of the streamed history");
    assert.equal(chart.ticks.at(-1), "20k", "the epoch axis ends at the last epoch");
    await page.waitForFunction((v) => document.getElementById("status-model").textContent.includes(`v${v} `), job.model_version);
    const model = await api("GET", "/v1/model");
    assert.equal(model.history.length, epochs);
    assert.match(await page.textContent("#model-facts"), /Epochs run20,000Rows/);

    // A fresh page reads the finished job's sampled history instead.
    await page.reload();
    await page.waitForSelector(`#job[data-state="succeeded"]`);
    assert.match(await page.textContent("#job-title"), new RegExp(`^Job ${id} `));
    await page.waitForSelector("text=at epoch 20,000.");
    chart = await lossChart();
    assertLoss(chart.from, losses[0], "first loss of the sampled history");
    assertLoss(chart.to, losses.at(-1), "last loss of the sampled history");
    assert.equal(chart.ticks.at(-1), "20k", "the sampled history's epoch axis ends at the last epoch");
    await page.waitForSelector("#model-facts dd");
    assert.match(await page.textContent("#model-facts"), /Epochs run20,000Rows/);
  });

  test("lists a stored version whose file is unreadable", async () => {
    const active = (await api("GET", "/v1/model")).version;
    const damaged = 2;
    assert.notEqual(active, damaged);
    await restartWithDamagedVersions([damaged]);
    const listed = (await api("GET", "/v1/models")).find((entry) => entry.version === damaged);
    assert.match(listed.error, /is unreadable/);
    assert.equal(listed.active, false);

    await page.goto(server.base + "/");
    const row = page.locator(`#models-table tr.unreadable[data-version="${damaged}"]`);
    await row.waitFor();
    assert.match(await row.locator("th").textContent(), /^v2\s*unreadable$/);
    assert.equal((await row.locator("td").textContent()).trim(), listed.error);
    assert.equal(await row.getAttribute("title"), listed.error);
    assert.equal(await row.locator("button").count(), 0, "an unreadable version cannot be activated");
    assert.equal(await page.locator("#models-table tbody tr").count(), (await api("GET", "/v1/models")).length);
    assert.equal(await page.locator('#models-table tr[data-version="1"] button').count(), 1);
    await page.waitForSelector(`#models-table tr.active[data-version="${active}"]`);
    await page.waitForFunction((v) => document.getElementById("status-model").textContent.includes(`v${v} `), active);
    assert.ok(await page.isVisible("#model-view"));
    assert.ok(await page.isHidden("#model-error"));
    await screenshot("10-unreadable-version", { fullPage: true });
  });

  test("shows why the active version cannot be served, until another is activated", async () => {
    const active = (await api("GET", "/v1/model")).version;
    await restartWithDamagedVersions([active]);
    const answer = await fetch(`${server.base}/v1/model`);
    assert.equal(answer.status, 503);
    const { error } = await answer.json();
    assert.match(error, new RegExp(`^the active model version ${active} cannot be served: .*; activate another version$`));
    const refused = await fetch(`${server.base}/predict`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ x_predict: [12] }),
    });
    assert.equal(refused.status, 503);

    await watcher.expecting(
      [{ description: "the 503 answer for the served model", text: /status of 503/, url: "/v1/model" }],
      async () => {
        await page.goto(server.base + "/");
        await page.waitForSelector("#model-error:visible");
        // The version list is read once more with nothing changed: the 503 is not asked again.
        await page.waitForTimeout(1500);
      },
    );
    assert.equal(await page.textContent("#model-error"), `No model is served: ${error}`);
    assert.ok(await page.isHidden("#no-model"));
    assert.ok(await page.isHidden("#model-view"));
    assert.ok(await page.isHidden("#predict-form"));
    assert.match(await page.textContent("#predict-empty"), /^No model is served/);
    assert.equal(await page.textContent("#status-model"), `Model: v${active} cannot be served`);
    const row = page.locator(`#models-table tr.unreadable[data-version="${active}"]`);
    assert.match(await row.locator("th").textContent(), new RegExp(`^v${active}\\s*active\\s*unreadable$`));
    assert.equal(await row.locator("button").count(), 0);
    await screenshot("11-active-version-unreadable", { fullPage: true });

    const other = active - 1;
    await page.getByRole("button", { name: `Activate version ${other}` }).click();
    await page.waitForFunction((v) => document.getElementById("status-model").textContent.includes(`v${v} `), other);
    assert.equal((await api("GET", "/v1/model")).version, other);
    assert.ok(await page.isHidden("#model-error"));
    assert.ok(await page.isVisible("#model-view"));
    assert.ok(await page.isVisible("#predict-form"));
    assert.equal(await page.textContent("#predict-empty"), "Train a model to predict.");
  });

  test("shows a rejected upload's error and keeps the data", async () => {
    const broken = join(tempDir("regserve-e2e-csv-"), "broken.csv");
    // A bad value in a default column (Education or Income) rejects the file; elsewhere the
    // server would keep the column as text.
    writeFileSync(broken, "Education,Seniority,Income\n12,50,30\nx,60,40\n");
    const before = await api("GET", "/v1/dataset");
    await watcher.expecting(
      [{ description: "the 422 answer to the upload", text: /status of 422/, url: "/upload" }],
      async () => {
        await page.setInputFiles("#file-input", broken);
        await page.waitForSelector("#upload-error:visible");
      },
    );
    const message = await page.textContent("#upload-error");
    assert.match(message, /broken\.csv was rejected/);
    assert.match(message, /line 3, column 1 \("Education"\): "x" is not a number/);
    const after = await api("GET", "/v1/dataset");
    assert.equal(after.rows, 30);
    assert.equal(after.sha256, before.sha256);
    assert.equal(await page.locator("#columns-table tbody tr").count(), 3);
    await page.locator("#upload-error").scrollIntoViewIfNeeded();
    await screenshot("07-upload-error");
  });

  test("accepts a dropped file and clears the error", async () => {
    const csv = readFileSync(INCOME2, "utf8");
    await page.evaluate((text) => {
      const transfer = new DataTransfer();
      transfer.items.add(new File([text], "Income2.csv", { type: "text/csv" }));
      const drop = new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true });
      document.getElementById("drop-zone").dispatchEvent(drop);
    }, csv);
    await page.waitForSelector("text=Loaded Income2.csv.");
    assert.ok(await page.isHidden("#upload-error"));
    assert.equal((await api("GET", "/v1/dataset")).rows, 30);
  });

  test("shows rows arriving live, per source", async () => {
    const rows = [1, 2, 3].map((i) => ({ Education: 10 + i, Seniority: 100 + i, Income: 30 + i }));
    const answer = await api("POST", "/v1/data", { rows });
    assert.equal(answer.appended, 3);
    // The panel is refreshed every 2 s.
    await page.waitForFunction(() => {
      const http = document.querySelector('#intake-table tr[data-source="http"]');
      return http && http.cells[1].textContent === "3";
    }, null, { timeout: 10000 });
    const cells = await page.locator('#intake-table tr[data-source="http"] td').allTextContents();
    assert.ok(Number(cells[2]) > 0, `a rate over the last minute: ${cells}`);
    assert.match(await page.textContent("#intake-summary"), /^33 rows, 1 appended segments; the newest arrived /);
    assert.equal(await page.locator("#intake-table tbody tr").count(), 4);
  });

  test("shows the retraining triggers and fires one from the page", async () => {
    await api("PUT", "/v1/triggers", {
      triggers: [
        { name: "enough", rows: 1000, train: { solver: "least-squares" } },
        { name: "hourly", every: "1h" },
        { name: "etl", webhook: true, train: { solver: "least-squares" } },
      ],
    });
    await page.waitForFunction(() => document.querySelectorAll("#triggers-table tbody tr").length === 3, null, { timeout: 5000 });
    const cells = async (name) => page.locator(`#triggers-table tr[data-trigger="${name}"] > *`).allTextContents();
    const condition = async (name) => page.textContent(`#triggers-table tr[data-trigger="${name}"] .condition`);
    assert.equal(await condition("enough"), "after 1,000 rows");
    assert.equal(await condition("hourly"), "every 1h");
    assert.match((await cells("enough"))[1], /^[\d,]+ rows to go$/);
    assert.match((await cells("hourly"))[1], /^at /, "an hour ahead is shown as a time");
    assert.equal((await cells("etl"))[1], "when called");
    await page.click('#triggers-table tr[data-trigger="etl"] button');
    await page.waitForFunction(() => /^etl: started \(job \d+\)$/.test(document.getElementById("triggers-result").textContent));
    await page.waitForFunction(() => {
      const row = document.querySelector('#triggers-table tr[data-trigger="etl"]');
      return row && /^version \d+ activated$/.test(row.cells[3].textContent);
    }, null, { timeout: 10000 });
    const view = await api("GET", "/v1/triggers");
    const etl = view.triggers.find((trigger) => trigger.name === "etl");
    assert.equal(etl.state.fired, 1);
    assert.equal((await cells("etl"))[2], "1");
    const job = await api("GET", `/v1/jobs/${etl.state.job}`);
    assert.deepEqual(job.origin, { kind: "trigger", name: "etl" });
    await page.locator("#triggers-table").scrollIntoViewIfNeeded();
    await screenshot("08-triggers");
  });

  test("fits a phone-width screen", async () => {
    await page.setViewportSize(PHONE);
    await page.waitForFunction(() => document.querySelector(".grid").getBoundingClientRect().width <= 390);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
    // The plot is redrawn for the new width, so it is looked up anew until it has scaled down.
    await page.waitForFunction((width) => {
      const plot = document.querySelector("#fit-chart svg");
      return plot && plot.getBoundingClientRect().width <= width;
    }, PHONE.width);
    await screenshot("08-phone", { fullPage: true });
    await page.setViewportSize(LAPTOP);
  });
});
