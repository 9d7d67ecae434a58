// The stored model versions and their activation, and the served model: its facts and weights.

import {
  $, api, el, gapText, integer, num, showMessage, state, timestamp, timestampParts,
} from "./core.js";
import { refreshDataset } from "./data.js";
import { historyLength, showLosses } from "./train.js";
import { renderPredictForm } from "./predict.js";
import { renderFit, scheduleLossChart } from "./plots.js";

/** Reads the version list, and the served model when its version changed. */
export async function refreshModels() {
  try {
    const models = await api("GET", "/v1/models");
    const key = JSON.stringify(models);
    if (key !== state.modelsKey) {
      state.models = models;
      renderModels();
      // A version listed with an `error` is unreadable: it is not served even when active.
      const active = models.find((model) => model.active && !model.error);
      if (!state.model || !active || active.version !== state.model.version) await loadModel(models.length > 0);
      state.modelsKey = key;
    }
    showMessage("models-error", "");
  } catch (error) {
    showMessage("models-error", `The models could not be read: ${error.message}`);
  }
}

/** Reads the served model, if any version is stored. A version named active that cannot be
 * served (its file is unreadable) answers 503 with the reason, which the page shows until
 * the version list changes; 409 means that no version is active. */
async function loadModel(stored) {
  let model = null;
  let problem = "";
  if (stored) {
    try {
      model = await api("GET", "/v1/model");
    } catch (error) {
      // A 503 with Retry-After is an overloaded server, not a verdict: the next poll retries.
      if (error.status === 503 && !error.retryAfter) problem = error.message;
      else if (error.status !== 409) throw error;
    }
  }
  state.model = model;
  state.modelProblem = problem;
  state.marker = null;
  renderModel();
  // A model trained elsewhere may come with a dataset uploaded elsewhere.
  if (model && state.dataset && model.dataset_sha256 !== state.dataset.sha256) refreshDataset();
}

/** The model's name, which its version routes are under (GET /v1 says it). */
let modelName = null;

async function activate(version) {
  showMessage("models-error", "");
  try {
    modelName ??= (await api("GET", "/v1")).model;
    await api("POST", `/v1/models/${encodeURIComponent(modelName)}/versions/${version}/activate`);
  } catch (error) {
    showMessage("models-error", `Version ${version} was not activated: ${error.message}`);
  }
  await refreshModels();
  $("models-table").focus({ preventScroll: true });
}

function renderModels() {
  const models = state.models;
  $("models-empty").hidden = models.length > 0;
  $("models-table").hidden = models.length === 0;
  $("models-table").tBodies[0].replaceChildren(...models.map((model) =>
    (model.error ? unreadableRow(model) : versionRow(model))));
}

function versionHeader(model, ...extra) {
  return el("th", { scope: "row" }, `v${model.version}`,
    model.active ? el("span", { class: "badge" }, "active") : "", ...extra);
}

function versionRow(model) {
  return el("tr", { class: model.active ? "active" : "", "data-version": model.version },
    versionHeader(model),
    el("td", { class: "wrap", title: model.trained_at }, ...timestampParts(model.trained_at)),
    el("td", {}, model.solver),
    el("td", { class: "wrap" }, `${model.features.join(", ")} → ${model.target}`),
    el("td", { class: "num" }, num(model.mse)),
    el("td", { class: "num" }, num(model.r2)),
    el("td", { class: "num", title: String(model.gap) }, gapText(model.gap, model.optimum_mse)),
    el("td", {}, model.active ? "" : activateButton(model.version)));
}

/** A stored version whose file cannot be read: the server lists only its number and why.
 * It has no Activate button, since the server would refuse it (500). */
function unreadableRow(model) {
  return el("tr", { class: "unreadable", "data-version": model.version, title: model.error },
    versionHeader(model, el("span", { class: "badge unreadable-badge" }, "unreadable")),
    el("td", { class: "wrap unreadable-error", colspan: 7 }, model.error));
}

function activateButton(version) {
  const button = el("button", { type: "button", class: "small", "aria-label": `Activate version ${version}` }, "Activate");
  button.addEventListener("click", () => activate(version));
  return button;
}

function renderModel() {
  const model = state.model;
  const problem = state.modelProblem;
  $("no-model").hidden = Boolean(model || problem);
  showMessage("model-error", problem ? `No model is served: ${problem}` : "");
  $("model-view").hidden = !model;
  $("predict-empty").hidden = Boolean(model);
  $("predict-empty").textContent = problem
    ? "No model is served, so nothing can be predicted (see 3. Model and fit)."
    : "Train a model to predict.";
  $("predict-form").hidden = !model;
  showMessage("predict-result", "");
  showMessage("predict-error", "");
  if (!model) {
    $("status-model").textContent = problem ? `Model: ${unservedVersion()} cannot be served` : "Model: none yet";
    $("predict-inputs").replaceChildren();
    if (!state.job) showModelHistory();
    return;
  }
  const solver = model.params.solver;
  $("status-model").textContent = `Model: v${model.version} (${solver})`;
  const facts = [
    ["Version", `v${model.version}`],
    ["Solver", solver],
    ["Target", model.target],
    ["Bias", num(model.bias, { id: "model-bias" })],
    ["MSE", num(model.mse, { id: "model-mse" })],
    ["R²", num(model.r2, { id: "model-r2" })],
    ["Optimum MSE", num(model.optimum_mse)],
    ["Gap to optimum", el("span", { id: "model-gap", title: String(model.gap) }, gapText(model.gap, model.optimum_mse))],
    ["Epochs run", integer(historyLength(model.history))],
    ["Rows", integer(model.rows)],
    ["Trained at", el("span", { title: model.trained_at }, timestamp(model.trained_at))],
  ];
  $("model-facts").replaceChildren(...facts.flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, value)]));
  $("weights-table").tBodies[0].replaceChildren(...model.features.map((feature, i) => el("tr", {},
    el("th", { scope: "row" }, feature),
    el("td", { class: "num" }, num(model.kernel[i], { "data-feature": feature })))));
  renderPredictForm();
  renderFit();
  if (!state.job) showModelHistory();
}

/** The version named active although it cannot be served, as the version list shows it. */
function unservedVersion() {
  const active = state.models.find((model) => model.active);
  return active ? `v${active.version}` : "the active version";
}

/** Without a job to show, the loss chart shows the served model's history. */
function showModelHistory() {
  showLosses(state.model ? state.model.history : null);
  state.lossCaption = state.model ? `Loss per epoch of model v${state.model.version}.` : "No loss history yet.";
  scheduleLossChart();
}
