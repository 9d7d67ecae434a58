// The plots, inline SVG: the loss per epoch, and the fit of the served model against a sample
// of the dataset's rows.

import { $, fmt, integer, state, svgEl } from "./core.js";
import { isActive } from "./train.js";
import { predictAtClick } from "./predict.js";

const LOSS_POINTS = 600;
const PLOT_WIDTH = { min: 340, max: 620 };
const MARGIN = { left: 70, right: 24, top: 14, bottom: 58 };

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

export function scheduleLossChart() {
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

export function renderFit() {
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
export function bindResize() {
  let lastWidth = window.innerWidth;
  window.addEventListener("resize", () => {
    if (window.innerWidth === lastWidth) return;
    lastWidth = window.innerWidth;
    renderFit();
    scheduleLossChart();
  });
}
