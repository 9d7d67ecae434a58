// What every part of the page shares: its state, the calls to the service, the formatting of
// numbers, durations and dates, and the DOM and SVG helpers.

import { authorizedFetch, errorMessage } from "./token.js";

const SVG_NS = "http://www.w3.org/2000/svg";

export const state = {
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

export const $ = (id) => document.getElementById(id);

/** Calls the service with the tab's token (see token.js); resolves to the parsed body, rejects
 * with the server's error message (the error also has the answer's `status` and `retryAfter`
 * header). */
export async function api(method, path, body) {
  const init = { method, headers: { Accept: "application/json" } };
  if (body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await authorizedFetch(path, init);
  } catch (error) {
    throw new Error(`the server cannot be reached (${error.message})`);
  }
  if (!response.ok) {
    throw Object.assign(new Error(await errorMessage(response)), {
      status: response.status,
      retryAfter: response.headers.get("Retry-After"),
    });
  }
  const type = response.headers.get("Content-Type") || "";
  return type.includes("json") ? response.json() : response.text();
}

// ---------------------------------------------------------------- formatting

/** A number to 4 significant digits (exponent form when very large or small). */
export function fmt(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (!Number.isFinite(value)) return value > 0 ? "∞" : "−∞";
  if (value === 0) return "0";
  const abs = Math.abs(value);
  if (abs >= 1e6 || abs < 1e-3) return value.toExponential(3).replace(/\.?0+e/, "e");
  return String(Number(value.toPrecision(4)));
}

export function integer(value) {
  return Number(value).toLocaleString("en-US");
}

export function duration(ms) {
  if (ms === null || ms === undefined) return "–";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  const minutes = Math.floor(ms / 60000);
  return `${minutes} min ${Math.round((ms - minutes * 60000) / 1000)} s`;
}

export function timestamp(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso || "–";
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

/** Date and time as two pieces that each stay on one line. */
export function timestampParts(iso) {
  const [date, time = ""] = timestamp(iso).split(" ");
  return [el("span", { class: "nowrap" }, date), " ", el("span", { class: "nowrap" }, time)];
}

/** The gap to the least-squares optimum, absolute and relative. */
export function gapText(gap, optimum) {
  if (gap === null || gap === undefined) return "–";
  const percent = optimum > 0 ? ` (${fmt((gap / optimum) * 100)} %)` : "";
  return `${fmt(gap)}${percent}`;
}

// ---------------------------------------------------------------- DOM helpers

export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children);
  return node;
}

/** A formatted number whose title holds the full precision. */
export function num(value, attrs) {
  return el("span", { class: "number", title: String(value), ...attrs }, fmt(value));
}

export function svgEl(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Calls `refresh` now, every `ms` milliseconds while the page is visible, and when it shows again. */
export function refreshWhileVisible(refresh, ms) {
  const visible = () => document.visibilityState === "visible" && refresh();
  visible();
  setInterval(visible, ms);
  document.addEventListener("visibilitychange", visible);
}

export function showMessage(id, message) {
  const node = $(id);
  node.textContent = message || "";
  node.hidden = !message;
}
