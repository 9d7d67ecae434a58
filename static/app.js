// The regserve page: upload a dataset, train with live progress, look at the fit, predict,
// and choose the served model version. Plain JavaScript, no dependencies; plots are inline SVG.
(function () {
  "use strict";

  /** The server's defaults per solver; `null`: the solver has no Adam settings. */
  const SOLVER_DEFAULTS = {
    adam: { epochs: 500, learningRate: 0.001, batchSize: 32 },
    "adam-standardized": { epochs: 10000, learningRate: 0.01, batchSize: 32 },
    "least-squares": null,
  };
  const SOLVER_NOTES = {
    adam: "Adam on the raw columns, exactly as the original Keras model: it may stop far from the optimum.",
    "adam-standardized": "Adam on standardized columns with early stopping: converges to the optimum.",
    "least-squares": "The exact least-squares solution: no epochs, no settings.",
  };
  const PREVIEW_ROWS = 10;
  const SAMPLE_ROWS = 500;
  const POLL_MS = 1000;
  const LOSS_POINTS = 600;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const PLOT_WIDTH = { min: 340, max: 620 };
  const MARGIN = { left: 70, right: 24, top: 14, bottom: 58 };

  const state = {
    dataset: null,
    sample: null,
    model: null,
    /** Why the version named active cannot be served (the server's 503), or "". */
    modelProblem: "",
    models: [],
    modelsKey: null,
    job: null,
    source: null,
    losses: [],
    /** The epoch (1-based) of each of `losses` when the server sampled a long history; null
     * when there is one loss per epoch from the first. */
    lossEpochs: null,
    lossCaption: "No loss history yet.",
    lossFrame: 0,
    marker: null,
    /** The Adam-based solver whose defaults the Adam fields were last given. */
    adamSolver: null,
  };

  const $ = (id) => document.getElementById(id);

  /** Calls the service; resolves to the parsed body, rejects with the server's error message
   * (the error also has the answer's `status` and `retryAfter` header). */
  async function api(method, path, body) {
    const init = { method, headers: { Accept: "application/json" } };
    if (body instanceof FormData) {
      init.body = body;
    } else if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      throw new Error(`the server cannot be reached (${error.message})`);
    }
    const type = response.headers.get("Content-Type") || "";
    const data = type.includes("json") ? await response.json() : await response.text();
    if (!response.ok) {
      const message = data && data.error ? data.error : `${response.status} ${response.statusText}`;
      throw Object.assign(new Error(message), {
        status: response.status,
        retryAfter: response.headers.get("Retry-After"),
      });
    }
    return data;
  }

  // ---------------------------------------------------------------- formatting

  /** A number to 4 significant digits (exponent form when very large or small). */
  function fmt(value) {
    if (value === null || value === undefined || Number.isNaN(value)) return "–";
    if (!Number.isFinite(value)) return value > 0 ? "∞" : "−∞";
    if (value === 0) return "0";
    const abs = Math.abs(value);
    if (abs >= 1e6 || abs < 1e-3) return value.toExponential(3).replace(/\.?0+e/, "e");
    return String(Number(value.toPrecision(4)));
  }

  function integer(value) {
    return Number(value).toLocaleString("en-US");
  }

  function duration(ms) {
    if (ms === null || ms === undefined) return "–";
    if (ms < 1000) return `${Math.round(ms)} ms`;
    if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
    const minutes = Math.floor(ms / 60000);
    return `${minutes} min ${Math.round((ms - minutes * 60000) / 1000)} s`;
  }

  function timestamp(iso) {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return iso || "–";
    const pad = (n) => String(n).padStart(2, "0");
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
      `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  }

  /** Date and time as two pieces that each stay on one line. */
  function timestampParts(iso) {
    const [date, time = ""] = timestamp(iso).split(" ");
    return [el("span", { class: "nowrap" }, date), " ", el("span", { class: "nowrap" }, time)];
  }

  /** The gap to the least-squares optimum, absolute and relative. */
  function gapText(gap, optimum) {
    if (gap === null || gap === undefined) return "–";
    const percent = optimum > 0 ? ` (${fmt((gap / optimum) * 100)} %)` : "";
    return `${fmt(gap)}${percent}`;
  }

  // ---------------------------------------------------------------- DOM helpers

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === false || value === null || value === undefined) continue;
      node.setAttribute(name, value === true ? "" : value);
    }
    node.append(...children);
    return node;
  }

  /** A formatted number whose title holds the full precision. */
  function num(value, attrs) {
    return el("span", { class: "number", title: String(value), ...attrs }, fmt(value));
  }

  function svgEl(tag, attrs, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function showMessage(id, message) {
    const node = $(id);
    node.textContent = message || "";
    node.hidden = !message;
  }

  // ---------------------------------------------------------------- dataset

  async function refreshDataset() {
    try {
      const [dataset, preview, sample] = await Promise.all([
        api("GET", "/v1/dataset"),
        api("GET", `/v1/dataset/rows?limit=${PREVIEW_ROWS}&spread=false`),
        api("GET", `/v1/dataset/rows?limit=${SAMPLE_ROWS}&spread=true`),
      ]);
      state.dataset = dataset;
      state.sample = sample;
      renderDataset(preview);
      renderFit();
    } catch (error) {
      showMessage("upload-error", `The dataset could not be read: ${error.message}`);
    }
  }

  function numericColumns() {
    return state.dataset ? state.dataset.columns.filter((column) => column.type === "number") : [];
  }

  function renderDataset(preview) {
    const dataset = state.dataset;
    const numeric = numericColumns();
    $("dataset-summary").textContent =
      `${integer(dataset.rows)} rows, ${dataset.columns.length} columns (${numeric.length} numeric). ` +
      `SHA-256 ${dataset.sha256.slice(0, 12)}…`;
    $("dataset-summary").title = dataset.sha256;
    $("status-dataset").textContent = numeric.length
      ? `Dataset: ${integer(dataset.rows)} rows`
      : "Dataset: no numeric columns";

    const columns = $("columns-table").tBodies[0];
    columns.replaceChildren(...dataset.columns.map((column) => el("tr", {},
      el("th", { scope: "row" }, column.name),
      el("td", {}, column.type),
      el("td", { class: "num" }, column.type === "number" ? num(column.min) : "–"),
      el("td", { class: "num" }, column.type === "number" ? num(column.mean) : "–"),
      el("td", { class: "num" }, column.type === "number" ? num(column.max) : "–"))));

    const table = $("preview-table");
    table.tHead.replaceChildren(el("tr", {}, el("th", { scope: "col", class: "num" }, "Row"),
      ...preview.columns.map((name) => el("th", { scope: "col", class: "num" }, name))));
    table.tBodies[0].replaceChildren(...preview.rows.map((row, i) => el("tr", {},
      el("td", { class: "num" }, String(preview.row_numbers[i] + 1)),
      ...row.map((value) => el("td", { class: "num" }, value === null ? "–" : num(value))))));

    renderTrainChoices();
  }

  async function upload(file) {
    showMessage("upload-error", "");
    $("upload-status").textContent = `Uploading ${file.name}…`;
    const form = new FormData();
    form.append("file", file, file.name);
    try {
      await api("POST", "/upload", form);
      $("upload-status").textContent = `Loaded ${file.name}.`;
      await refreshDataset();
    } catch (error) {
      $("upload-status").textContent = "";
      showMessage("upload-error", `${file.name} was rejected, the current data stays: ${error.message}`);
    } finally {
      $("file-input").value = "";
    }
  }

  function bindUpload() {
    const zone = $("drop-zone");
    $("file-input").addEventListener("change", (event) => {
      const file = event.target.files[0];
      if (file) upload(file);
    });
    zone.addEventListener("dragover", (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("dragging");
      const file = event.dataTransfer.files[0];
      if (file) upload(file);
    });
  }

  // ---------------------------------------------------------------- training form

  /** Fills the feature checkboxes and target select, keeping a still valid choice. */
  function renderTrainChoices() {
    const names = numericColumns().map((column) => column.name);
    const select = $("target");
    const previousTarget = select.value;
    const previousFeatures = checkedFeatures();
    const target = names.includes(previousTarget) ? previousTarget : state.dataset.default_target;
    const keep = previousFeatures.length && previousFeatures.every((name) => names.includes(name));
    const features = keep ? previousFeatures : state.dataset.default_features;

    select.replaceChildren(...names.map((name) => el("option", { value: name }, name)));
    select.value = names.includes(target) ? target : names[names.length - 1] || "";
    $("feature-list").replaceChildren(...names.map((name) => {
      const id = `feature-${name}`;
      return el("span", { class: "check" },
        el("input", { type: "checkbox", id, value: name, checked: features.includes(name) }),
        el("label", { for: id }, name));
    }));
    syncTargetWithFeatures();
    renderJob();
  }

  function checkedFeatures() {
    return [...$("feature-list").querySelectorAll("input:checked")].map((input) => input.value);
  }

  /** The target cannot also be a feature. */
  function syncTargetWithFeatures() {
    const target = $("target").value;
    for (const input of $("feature-list").querySelectorAll("input")) {
      input.disabled = input.value === target;
      if (input.disabled) input.checked = false;
    }
  }

  /** Switches the Adam fields to the new solver's defaults, keeping values the user changed. */
  function applySolver(solver) {
    const before = SOLVER_DEFAULTS[state.adamSolver];
    const after = SOLVER_DEFAULTS[solver];
    const fields = [["epochs", "epochs"], ["learning-rate", "learningRate"], ["batch-size", "batchSize"]];
    if (after) {
      for (const [id, key] of fields) {
        const input = $(id);
        if (input.value === "" || (before && Number(input.value) === before[key])) input.value = after[key];
      }
      state.adamSolver = solver;
    }
    $("adam-fields").disabled = !after;
    $("adam-fields").hidden = !after;
    $("solver-note").textContent = SOLVER_NOTES[solver];
  }

  /** The body of POST /train: only the fields the chosen solver uses. */
  function trainRequest() {
    const features = checkedFeatures();
    if (!features.length) throw new Error("choose at least one feature");
    const body = { features, target: $("target").value, solver: $("solver").value };
    if (!SOLVER_DEFAULTS[body.solver]) return body;
    for (const id of ["epochs", "learning-rate", "batch-size", "seed"]) {
      const input = $(id);
      if (!input.checkValidity()) {
        const label = input.closest("label").firstChild.textContent.trim();
        throw new Error(`${label}: ${input.validationMessage}`);
      }
    }
    body.epochs = Number($("epochs").value);
    body.learning_rate = Number($("learning-rate").value);
    body.batch_size = Number($("batch-size").value);
    if ($("seed").value !== "") body.seed = Number($("seed").value);
    return body;
  }

  async function startTraining(event) {
    event.preventDefault();
    showMessage("train-error", "");
    try {
      const job = await api("POST", "/train", trainRequest());
      watchJob(job);
    } catch (error) {
      showMessage("train-error", `Training was not started: ${error.message}`);
    }
  }

  async function cancelTraining() {
    if (!state.job) return;
    $("cancel-button").disabled = true;
    try {
      updateJob(await api("DELETE", `/v1/jobs/${state.job.id}`));
    } catch (error) {
      showMessage("train-error", `Cancel failed: ${error.message}`);
    }
  }

  function bindTrainForm() {
    $("train-form").addEventListener("submit", startTraining);
    $("cancel-button").addEventListener("click", cancelTraining);
    $("target").addEventListener("change", syncTargetWithFeatures);
    $("solver").addEventListener("change", (event) => applySolver(event.target.value));
  }

  // ---------------------------------------------------------------- jobs

  function isActive(job) {
    return Boolean(job) && (job.state === "queued" || job.state === "running");
  }

  /** How many epochs a loss history from an answer covers: a long one is sampled down to
   * fewer losses, and then `length` gives the count. */
  function historyLength(history) {
    if (!history) return 0;
    return history.length ?? history.loss.length;
  }

  /** Puts a loss history from an answer (or none) in the loss chart. A copy: the events of a
   * watched job append to it, and the model's own history must stay as it came. */
  function showLosses(history) {
    state.losses = history ? history.loss.slice() : [];
    state.lossEpochs = history && history.epochs ? history.epochs : null;
  }

  /** Follows a job through its event stream until its `done` event. */
  function watchJob(job) {
    if (state.source) state.source.close();
    state.job = job;
    showLosses(null);
    state.lossCaption = `Loss per epoch of job ${job.id}.`;
    const source = new EventSource(`/v1/jobs/${job.id}/events`);
    source.addEventListener("progress", (event) => onProgress(JSON.parse(event.data)));
    source.addEventListener("done", (event) => {
      source.close();
      if (state.source === source) state.source = null;
      onDone(JSON.parse(event.data));
    });
    source.addEventListener("error", () => {
      // A closed stream (the job is gone) is left to the poll; otherwise the browser reconnects.
      if (source.readyState === EventSource.CLOSED && state.source === source) state.source = null;
    });
    state.source = source;
    renderJob();
    scheduleLossChart();
  }

  function onProgress(progress) {
    if (!state.job || progress.id !== state.job.id) return;
    appendLosses(progress);
    // The last progress event of a finished fit already names its final state; the error and
    // the metrics only come with `done`, so the job stays shown as running until then.
    const fields = { ...progress };
    if (!isActive(progress)) delete fields.state;
    updateJob(fields);
  }

  /** Puts a progress event's losses at their epochs. One event carries at most 10,000 losses,
   * so a long history comes as several events back to back, each going on from the last; a
   * reconnected stream starts again from epoch 1 and replaces what came before. */
  function appendLosses(progress) {
    const losses = state.losses;
    const start = progress.first_epoch - 1;
    losses.length = Math.min(losses.length, start);
    // Epochs this page never received stay unknown (NaN, not drawn) so the later ones keep
    // their place on the epoch axis.
    while (losses.length < start) losses.push(NaN);
    for (const loss of progress.losses) losses.push(loss);
  }

  function onDone(job) {
    updateJob(job);
    refreshModels();
  }

  /** Merges what is known about the watched job (events carry only part of it). */
  function updateJob(fields) {
    if (!state.job || fields.id !== state.job.id) return;
    state.job = { ...state.job, ...fields };
    renderJob();
    scheduleLossChart();
  }

  /** Shows a job that finished without this page watching it. */
  function showFinishedJob(job) {
    state.job = job;
    showLosses(null);
    state.lossCaption = `Loss per epoch of job ${job.id}.`;
    renderJob();
    loadJobHistory(job.id);
  }

  /** Reads a finished job's loss history (sampled when long) into the chart. */
  async function loadJobHistory(id) {
    try {
      const job = await api("GET", `/v1/jobs/${id}`);
      if (!state.job || state.job.id !== id) return;
      showLosses(job.history);
      updateJob(job);
    } catch (error) {
      showMessage("train-error", `The loss history of job ${id} could not be read: ${error.message}`);
    }
  }

  function renderJob() {
    const job = state.job;
    const active = isActive(job);
    const noChoice = !numericColumns().length;
    $("train-button").disabled = active || noChoice;
    $("cancel-button").disabled = !active;
    $("job").hidden = !job;
    if (!job) {
      $("status-training").textContent = "Training: idle";
      return;
    }
    const solver = job.params ? job.params.solver : "";
    const features = job.features ? `${job.features.join(", ")} → ${job.target}` : "";
    $("job-title").textContent = `Job ${job.id} (${solver}, ${features}): ${job.state}`;
    $("job").dataset.state = job.state;

    // Early stopping ends a fit before its last epoch: a success fills the bar all the same.
    const progress = $("job-progress");
    if (job.epochs > 0) {
      progress.max = job.epochs;
      progress.value = job.state === "succeeded" ? job.epochs : job.epoch;
    } else if (active) {
      progress.removeAttribute("value");
    } else {
      progress.max = 1;
      progress.value = 1;
    }
    $("job-text").textContent = jobText(job);
    showMessage("job-error", job.state === "failed" ? `Training failed: ${job.error}` : "");
    $("status-training").textContent = active
      ? `Training: job ${job.id}, ${job.epochs ? `${Math.floor((100 * job.epoch) / job.epochs)} %` : job.state}`
      : `Training: idle (job ${job.id} ${job.state})`;
  }

  function jobText(job) {
    const epochs = job.epochs > 0 ? `epoch ${integer(job.epoch)} / ${integer(job.epochs)}` : "";
    const loss = job.loss === null || job.loss === undefined ? "" : ` · loss ${fmt(job.loss)}`;
    switch (job.state) {
      case "queued":
        return "Waiting to start…";
      case "running":
        return `${epochs || "Solving"}${loss} · ETA ${duration(job.eta_ms)} · ${duration(job.elapsed_ms)} elapsed`;
      case "succeeded": {
        const early = job.epochs > 0 && job.epoch < job.epochs ? ` (stopped early at epoch ${integer(job.epoch)})` : "";
        return `Done in ${duration(job.elapsed_ms)}${early}: model v${job.model_version}, ` +
          `MSE ${fmt(job.mse)}, R² ${fmt(job.r2)}, gap ${gapText(job.gap, job.optimum_mse)}.`;
      }
      case "cancelled":
        return `Cancelled at ${epochs || "the start"}${loss}; the served model did not change.`;
      default:
        return `Stopped at ${epochs || "the start"}${loss}.`;
    }
  }

  // ---------------------------------------------------------------- models

  /** Reads the version list, and the served model when its version changed. */
  async function refreshModels() {
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

  async function activate(version) {
    showMessage("models-error", "");
    try {
      await api("POST", `/v1/models/${version}/activate`);
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

  // ---------------------------------------------------------------- prediction

  function renderPredictForm() {
    const model = state.model;
    const container = $("predict-inputs");
    const existing = [...container.querySelectorAll("input")].map((input) => input.name);
    if (existing.join("\u0000") === model.features.join("\u0000")) return;
    const means = new Map(numericColumns().map((column) => [column.name, column.mean]));
    container.replaceChildren(...model.features.map((feature, i) => {
      const id = `predict-${i}`;
      const mean = means.get(feature);
      return el("label", { for: id }, feature,
        el("input", { id, name: feature, type: "number", step: "any", required: true,
          value: mean === undefined ? "" : Number(mean.toPrecision(4)) }));
    }));
  }

  async function predict(row) {
    const result = await api("POST", "/predict", { x_predict: [row] });
    return result.y_predict[0][0];
  }

  async function predictFromForm(event) {
    event.preventDefault();
    showMessage("predict-error", "");
    const inputs = [...$("predict-inputs").querySelectorAll("input")];
    const invalid = inputs.find((input) => !input.checkValidity() || input.value === "");
    if (invalid) {
      showMessage("predict-error", `${invalid.name}: enter a number`);
      invalid.focus();
      return;
    }
    const row = inputs.map((input) => Number(input.value));
    try {
      showPrediction(row, await predict(row));
    } catch (error) {
      showMessage("predict-error", `Prediction failed: ${error.message}`);
    }
  }

  function showPrediction(row, value) {
    const model = state.model;
    const inputs = model.features.map((feature, i) => `${feature} ${fmt(row[i])}`).join(", ");
    const result = $("predict-result");
    result.replaceChildren(`${model.target} = `, num(value, { id: "predict-value" }), ` for ${inputs}`);
    result.hidden = false;
  }

  /** A click on the one-feature scatter plot predicts at that x and marks the point. */
  async function predictAtClick(event, plot) {
    const svg = event.currentTarget;
    const point = svg.createSVGPoint();
    point.x = event.clientX;
    point.y = event.clientY;
    const local = point.matrixTransform(svg.getScreenCTM().inverse());
    if (local.x < plot.box.left || local.x > plot.box.width - plot.box.right) return;
    const x = Number(plot.x.invert(local.x).toPrecision(4));
    showMessage("predict-error", "");
    try {
      const y = await predict([x]);
      state.marker = { x, y };
      $("predict-0").value = x;
      showPrediction([x], y);
      renderFit();
    } catch (error) {
      showMessage("predict-error", `Prediction failed: ${error.message}`);
    }
  }

  // ---------------------------------------------------------------- plots

  /** A plot's size in SVG units: its container's width (clamped), so text keeps its size. */
  function plotSize(container) {
    const width = Math.round(Math.min(PLOT_WIDTH.max, Math.max(PLOT_WIDTH.min, container.clientWidth || PLOT_WIDTH.max)));
    return { width, height: Math.round(Math.max(300, Math.min(400, width * 0.66))) };
  }

  function linearScale(domain, range) {
    const [d0, d1] = domain[0] === domain[1] ? [domain[0] - 1, domain[1] + 1] : domain;
    const scale = (value) => range[0] + ((value - d0) / (d1 - d0)) * (range[1] - range[0]);
    scale.invert = (position) => d0 + ((position - range[0]) / (range[1] - range[0])) * (d1 - d0);
    scale.domain = [d0, d1];
    return scale;
  }

  function logScale(domain, range) {
    const linear = linearScale(domain.map(Math.log10), range);
    const scale = (value) => linear(Math.log10(value));
    scale.domain = domain;
    return scale;
  }

  /** Round tick values (1, 2 or 5 times a power of ten apart), about `count` of them. */
  function niceTicks([min, max], count) {
    const span = max - min;
    const magnitude = 10 ** Math.floor(Math.log10(span / count));
    const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => span / s <= count);
    const ticks = [];
    for (let value = Math.ceil(min / step) * step; value <= max + step * 1e-9; value += step) {
      ticks.push(Number(value.toPrecision(12)));
    }
    return ticks;
  }

  /** Powers of ten inside the domain, with 2 and 5 times them when there are few. */
  function logTicks([min, max]) {
    const ticks = [];
    const multiples = Math.log10(max / min) < 2 ? [1, 2, 5] : [1];
    for (let power = Math.floor(Math.log10(min)); power <= Math.ceil(Math.log10(max)); power += 1) {
      for (const m of multiples) {
        const value = m * 10 ** power;
        if (value >= min && value <= max) ticks.push(Number(value.toPrecision(12)));
      }
    }
    return ticks.length >= 2 ? ticks : [min, max];
  }

  /** A short tick label: 250k, 1.5M, or 4 significant digits. */
  function tickLabel(value) {
    const abs = Math.abs(value);
    if (abs >= 1e6 && abs < 1e9) return `${Number((value / 1e6).toPrecision(3))}M`;
    if (abs >= 1e4 && abs < 1e6) return `${Number((value / 1e3).toPrecision(3))}k`;
    return fmt(value);
  }

  function padded(values) {
    const min = Math.min(...values);
    const max = Math.max(...values);
    const pad = (max - min) * 0.05 || Math.abs(min) * 0.05 || 1;
    return [min - pad, max + pad];
  }

  /** An SVG plot with grid, ticks and axis labels; returns the scales to draw with. */
  function createPlot({ container, label, xDomain, yDomain, xLabel, yLabel, logY, legend }) {
    const { width, height } = plotSize(container);
    const box = { ...MARGIN, top: legend ? MARGIN.top + 26 : MARGIN.top, width, height };
    const { left, right, top, bottom } = box;
    const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label, class: "plot" });
    const x = linearScale(xDomain, [left, width - right]);
    const y = (logY ? logScale : linearScale)(yDomain, [height - bottom, top]);
    const clipId = `clip-${container.id}`;
    const clip = svgEl("clipPath", { id: clipId });
    clip.append(svgEl("rect", { x: left, y: top, width: width - left - right, height: height - top - bottom }));
    svg.append(clip);

    const grid = svgEl("g", { class: "plot-grid" });
    for (const value of niceTicks(x.domain, width < 450 ? 4 : 6)) {
      const position = x(value);
      if (position < left - 0.5 || position > width - right + 0.5) continue;
      grid.append(svgEl("line", { x1: position, x2: position, y1: top, y2: height - bottom }));
      grid.append(svgEl("text", { x: position, y: height - bottom + 20, class: "tick", "text-anchor": "middle" }, tickLabel(value)));
    }
    for (const value of logY ? logTicks(yDomain) : niceTicks(y.domain, 5)) {
      const position = y(value);
      if (position < top - 0.5 || position > height - bottom + 0.5) continue;
      grid.append(svgEl("line", { x1: left, x2: width - right, y1: position, y2: position }));
      grid.append(svgEl("text", { x: left - 8, y: position + 5, class: "tick", "text-anchor": "end" }, tickLabel(value)));
    }
    grid.append(svgEl("rect", { x: left, y: top, width: width - left - right, height: height - top - bottom, class: "frame" }));
    svg.append(grid);
    svg.append(svgEl("text", { x: (left + width - right) / 2, y: height - 12, class: "axis-label", "text-anchor": "middle" }, xLabel));
    svg.append(svgEl("text", {
      x: -(top + height - bottom) / 2, y: 18, transform: "rotate(-90)", class: "axis-label", "text-anchor": "middle",
    }, yLabel));
    const layer = svgEl("g", { "clip-path": `url(#${clipId})` });
    svg.append(layer);
    const plot = { svg, x, y, layer, box };
    if (legend) addLegend(plot, legend);
    return plot;
  }

  /** A legend row above the plot area: [class, label] pairs. */
  function addLegend(plot, entries) {
    const legend = svgEl("g", { class: "legend" });
    let offset = 10;
    for (const [kind, label] of entries) {
      const item = svgEl("g", { transform: `translate(${offset} 18)` });
      item.append(kind === "points"
        ? svgEl("circle", { cx: 10, cy: 0, r: 5, class: "point" })
        : svgEl("line", { x1: 0, x2: 22, y1: 0, y2: 0, class: kind }));
      item.append(svgEl("text", { x: 28, y: 5 }, label));
      legend.append(item);
      offset += 44 + label.length * 7.6;
    }
    plot.svg.append(legend);
  }

  /** The data points of a plot, one circle each. */
  function pointGroup(positions) {
    const group = svgEl("g", { class: "points" });
    for (const [cx, cy] of positions) {
      group.append(svgEl("circle", { cx: cx.toFixed(1), cy: cy.toFixed(1), r: 4, class: "point" }));
    }
    return group;
  }

  function path(points) {
    return points.map(([x, y], i) => `${i ? "L" : "M"}${x.toFixed(1)} ${y.toFixed(1)}`).join("");
  }

  function scheduleLossChart() {
    if (state.lossFrame) return;
    state.lossFrame = requestAnimationFrame(() => {
      state.lossFrame = 0;
      renderLossChart();
    });
  }

  /** The loss per epoch on a log scale, thinned to at most LOSS_POINTS points. */
  function renderLossChart() {
    const container = $("loss-chart");
    const { losses, lossEpochs } = state;
    const job = state.job;
    // A sampled history lists the epoch of each of its losses (the first and the last among them).
    const epochOf = (i) => (lossEpochs ? lossEpochs[i] : i + 1);
    const last = losses.length - 1;
    const points = [];
    const stride = Math.max(1, Math.ceil(losses.length / LOSS_POINTS));
    for (let i = 0; i < losses.length; i += stride) points.push([epochOf(i), losses[i]]);
    if (losses.length && last % stride) points.push([epochOf(last), losses[last]]);
    const drawable = points.filter(([, loss]) => Number.isFinite(loss) && loss > 0);
    if (drawable.length < 2) {
      const exact = job && job.params && job.params.solver === "least-squares";
      $("loss-caption").textContent = exact ? "The least-squares solver has no epochs." : state.lossCaption;
      container.replaceChildren();
      return;
    }
    const lastEpoch = epochOf(last);
    const axisEnd = isActive(job) && job.epochs ? job.epochs : lastEpoch;
    const values = drawable.map(([, loss]) => loss);
    let [low, high] = [Math.min(...values), Math.max(...values)];
    if (high / low < 1.01) [low, high] = [low / 1.01, high * 1.01];
    const plot = createPlot({
      container,
      label: `Training loss per epoch, log scale, from ${fmt(values[0])} to ${fmt(values[values.length - 1])}`,
      xDomain: [1, Math.max(2, axisEnd)], yDomain: [low, high], xLabel: "epoch", yLabel: "loss (MSE, log scale)", logY: true,
    });
    plot.layer.append(svgEl("path", { d: path(drawable.map(([e, l]) => [plot.x(e), plot.y(l)])), class: "loss-line" }));
    container.replaceChildren(plot.svg);
    $("loss-caption").textContent = `${state.lossCaption} Last loss ${fmt(losses[last])} at epoch ${integer(lastEpoch)}.`;
  }

  /** Sample rows as {x: [...per feature], y} for the model's columns, or null if one is missing. */
  function sampleFor(model) {
    const sample = state.sample;
    if (!sample) return null;
    const featureIndexes = model.features.map((name) => sample.columns.indexOf(name));
    const targetIndex = sample.columns.indexOf(model.target);
    if (targetIndex < 0 || featureIndexes.some((i) => i < 0)) return null;
    return sample.rows
      .map((row) => ({ x: featureIndexes.map((i) => row[i]), y: row[targetIndex] }))
      .filter((point) => point.y !== null && point.x.every((v) => v !== null));
  }

  /** The least-squares line through the points (closed form). */
  function leastSquaresLine(points) {
    const n = points.length;
    const meanX = points.reduce((sum, p) => sum + p.x[0], 0) / n;
    const meanY = points.reduce((sum, p) => sum + p.y, 0) / n;
    let sxy = 0;
    let sxx = 0;
    for (const p of points) {
      sxy += (p.x[0] - meanX) * (p.y - meanY);
      sxx += (p.x[0] - meanX) ** 2;
    }
    const slope = sxx > 0 ? sxy / sxx : 0;
    return { slope, intercept: meanY - slope * meanX };
  }

  function renderFit() {
    const model = state.model;
    const container = $("fit-chart");
    if (!model) return;
    const points = sampleFor(model);
    if (!points || points.length === 0) {
      container.replaceChildren();
      $("fit-caption").textContent =
        `The current dataset lacks the model's columns (${model.features.join(", ")} → ${model.target}), so there is no plot.`;
      return;
    }
    const sampled = state.dataset && points.length < state.dataset.rows
      ? ` (an even sample of ${integer(points.length)} of ${integer(state.dataset.rows)} rows)` : "";
    if (model.features.length === 1) {
      container.replaceChildren(scatterPlot(container, model, points));
      $("fit-caption").textContent = `${model.target} against ${model.features[0]}${sampled}. Click the plot to predict at that ${model.features[0]}.`;
    } else {
      container.replaceChildren(predictedVsActualPlot(container, model, points));
      $("fit-caption").textContent = `Predicted against actual ${model.target}${sampled}; points on the diagonal are fitted exactly.`;
    }
  }

  function scatterPlot(container, model, points) {
    const xs = points.map((p) => p.x[0]);
    const ys = points.map((p) => p.y);
    const xDomain = padded(xs);
    const line = (a, b) => xDomain.map((x) => [x, a * x + b]);
    const fitted = line(model.kernel[0], model.bias);
    const optimum = leastSquaresLine(points);
    const best = line(optimum.slope, optimum.intercept);
    // Keep the data readable when the model is far off: the y range grows at most 2 data spans.
    const [low, high] = padded(ys);
    const span = high - low;
    const lineYs = fitted.map(([, y]) => Math.min(high + 2 * span, Math.max(low - 2 * span, y)));
    const plot = createPlot({
      container,
      label: `Scatter plot of ${model.target} against ${model.features[0]} with the model's line and the least-squares line`,
      xDomain, yDomain: padded([...ys, ...lineYs]), xLabel: model.features[0], yLabel: model.target,
      legend: [["points", "data"], ["model-line", `model v${model.version}`], ["optimum-line", "least squares"]],
    });
    plot.layer.append(svgEl("path", { d: path(best.map(([x, y]) => [plot.x(x), plot.y(y)])), class: "optimum-line" }));
    plot.layer.append(svgEl("path", { d: path(fitted.map(([x, y]) => [plot.x(x), plot.y(y)])), class: "model-line" }));
    plot.layer.append(pointGroup(points.map((p) => [plot.x(p.x[0]), plot.y(p.y)])));
    if (state.marker) addMarker(plot, state.marker);
    plot.svg.classList.add("clickable");
    plot.svg.addEventListener("click", (event) => predictAtClick(event, plot));
    return plot.svg;
  }

  function addMarker(plot, { x, y }) {
    const cx = plot.x(x);
    const cy = plot.y(y);
    const anchor = cx > plot.box.width / 2 ? "end" : "start";
    const dx = anchor === "end" ? -12 : 12;
    plot.layer.append(svgEl("circle", { cx, cy, r: 7, class: "marker" }));
    plot.layer.append(svgEl("text", { x: cx + dx, y: cy - 10, class: "marker-label", "text-anchor": anchor },
      `${fmt(x)} → ${fmt(y)}`));
  }

  function predictedVsActualPlot(container, model, points) {
    const predicted = points.map((p) => p.x.reduce((sum, v, i) => sum + v * model.kernel[i], model.bias));
    const actual = points.map((p) => p.y);
    const domain = padded([...actual, ...predicted]);
    const plot = createPlot({
      container,
      label: `Predicted against actual ${model.target} for model v${model.version}, with the diagonal y = x`,
      xDomain: domain, yDomain: domain, xLabel: `actual ${model.target}`, yLabel: `predicted ${model.target}`,
      legend: [["points", `rows, model v${model.version}`], ["optimum-line", "y = x (exact fit)"]],
    });
    plot.layer.append(svgEl("path", { d: path(domain.map((v) => [plot.x(v), plot.y(v)])), class: "optimum-line" }));
    plot.layer.append(pointGroup(actual.map((value, i) => [plot.x(value), plot.y(predicted[i])])));
    return plot.svg;
  }

  /** Redraws the plots when the window's width changes: their size follows their container. */
  function bindResize() {
    let lastWidth = window.innerWidth;
    window.addEventListener("resize", () => {
      if (window.innerWidth === lastWidth) return;
      lastWidth = window.innerWidth;
      renderFit();
      scheduleLossChart();
    });
  }

  // ---------------------------------------------------------------- polling and start

  /** Follows trainings started anywhere (another page, curl) and changes of the served version. */
  async function poll() {
    try {
      const jobs = await api("GET", "/v1/jobs");
      const latest = jobs[0];
      const known = state.job ? state.job.id : 0;
      if (latest && isActive(latest) && !(state.source && known === latest.id)) {
        watchJob(latest);
      } else if (latest && latest.id > known) {
        showFinishedJob(latest);
      }
      await refreshModels();
      showMessage("connection", "");
    } catch (error) {
      showMessage("connection", `Lost contact with the server (${error.message}); retrying…`);
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  function init() {
    bindUpload();
    bindTrainForm();
    $("predict-form").addEventListener("submit", predictFromForm);
    bindResize();
    applySolver($("solver").value);
    refreshDataset();
    poll();
  }

  init();
})();
