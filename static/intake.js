// The "Arriving" panel of the data card: rows appended per source (HTTP, WebSocket, MQTT,
// Kafka), their rate over the last minute and the batches refused, from GET /v1/dataset,
// refreshed every two seconds while the page is visible.

import { $, api, el, integer, refreshWhileVisible } from "./core.js";

const REFRESH_MS = 2000;
const SOURCES = [["http", "HTTP"], ["websocket", "WebSocket"], ["mqtt", "MQTT"], ["kafka", "Kafka"]];

function row([key, label], counts) {
  const rate = counts.rows_per_second;
  const tr = el(
    "tr",
    {},
    el("td", {}, label),
    el("td", { class: "num" }, integer(counts.rows)),
    el("td", { class: "num" }, rate < 10 ? rate.toFixed(1) : integer(Math.round(rate))),
    el("td", { class: "num" }, integer(counts.rejected)),
  );
  tr.dataset.source = key;
  return tr;
}

function describe(dataset) {
  const newest = dataset.newest_arrival ? `; the newest arrived ${new Date(dataset.newest_arrival).toLocaleTimeString()}` : "";
  return `${integer(dataset.rows)} rows, ${integer(dataset.segments)} appended segments${newest}.`;
}

async function refresh() {
  const error = $("intake-error");
  try {
    const dataset = await api("GET", "/v1/dataset");
    const zero = { rows: 0, rows_per_second: 0, rejected: 0 };
    $("intake-table").tBodies[0].replaceChildren(...SOURCES.map((source) => row(source, dataset.sources[source[0]] || zero)));
    $("intake-summary").textContent = describe(dataset);
    error.hidden = true;
  } catch (failure) {
    error.textContent = `Could not read the arriving rows: ${failure.message}`;
    error.hidden = false;
  }
}

refreshWhileVisible(refresh, REFRESH_MS);
