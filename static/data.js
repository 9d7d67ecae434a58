// The dataset card: the dataset's summary, columns and first rows, and uploading a CSV file
// (picked or dropped) to replace it.

import { $, api, el, integer, num, showMessage, state } from "./core.js";
import { renderTrainChoices } from "./train.js";
import { renderFit } from "./plots.js";

const PREVIEW_ROWS = 10;
const SAMPLE_ROWS = 500;

export async function refreshDataset() {
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

export function numericColumns() {
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

export function bindUpload() {
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
