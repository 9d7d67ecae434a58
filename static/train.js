// Training: the form (features, target, solver and its settings), starting and cancelling a job,
// and following a job through its event stream, or reading one that finished unwatched.

import { $, api, duration, el, fmt, gapText, integer, showMessage, state } from "./core.js";
import { numericColumns } from "./data.js";
import { followEvents } from "./events.js";
import { refreshModels } from "./models.js";
import { scheduleLossChart } from "./plots.js";

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

// ---------------------------------------------------------------- training form

/** Fills the feature checkboxes and target select, keeping a still valid choice. */
export function renderTrainChoices() {
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
export function applySolver(solver) {
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

export function bindTrainForm() {
  $("train-form").addEventListener("submit", startTraining);
  $("cancel-button").addEventListener("click", cancelTraining);
  $("target").addEventListener("change", syncTargetWithFeatures);
  $("solver").addEventListener("change", (event) => applySolver(event.target.value));
}

// ---------------------------------------------------------------- jobs

export function isActive(job) {
  return Boolean(job) && (job.state === "queued" || job.state === "running");
}

/** How many epochs a loss history from an answer covers: a long one is sampled down to
 * fewer losses, and then `length` gives the count. */
export function historyLength(history) {
  if (!history) return 0;
  return history.length ?? history.loss.length;
}

/** Puts a loss history from an answer (or none) in the loss chart. A copy: the events of a
 * watched job append to it, and the model's own history must stay as it came. */
export function showLosses(history) {
  state.losses = history ? history.loss.slice() : [];
  state.lossEpochs = history && history.epochs ? history.epochs : null;
}

/** Follows a job through its event stream until its `done` event. */
export function watchJob(job) {
  if (state.source) state.source.close();
  state.job = job;
  showLosses(null);
  state.lossCaption = `Loss per epoch of job ${job.id}.`;
  const source = followEvents(`/v1/jobs/${job.id}/events`, {
    progress: (data) => onProgress(JSON.parse(data)),
    done: (data) => {
      source.close();
      if (state.source === source) state.source = null;
      onDone(JSON.parse(data));
    },
  }, () => {
    // A refused stream (the job is gone) is left to the poll; a dropped one is reconnected.
    if (state.source === source) state.source = null;
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
export function showFinishedJob(job) {
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
