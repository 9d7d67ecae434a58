// Prediction with the served model: from the form of its features, or at a click on the
// one-feature scatter plot.

import { $, api, el, fmt, num, showMessage, state } from "./core.js";
import { numericColumns } from "./data.js";
import { renderFit } from "./plots.js";

export function renderPredictForm() {
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

export async function predictFromForm(event) {
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
export async function predictAtClick(event, plot) {
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
