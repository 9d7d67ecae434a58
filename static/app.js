// The regserve page: upload a dataset, train with live progress, look at the fit, predict,
// and choose the served model version. Plain JavaScript modules, no dependencies; this one
// starts the page and polls the server.

import { $, api, showMessage, state } from "./core.js";
import { bindUpload, refreshDataset } from "./data.js";
import { applySolver, bindTrainForm, isActive, showFinishedJob, watchJob } from "./train.js";
import { refreshModels } from "./models.js";
import { predictFromForm } from "./predict.js";
import { bindResize } from "./plots.js";

const POLL_MS = 1000;

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
