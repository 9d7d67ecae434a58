// The "Arriving" panel of the data card: rows appended per source (HTTP, WebSocket, MQTT,
// Kafka), their rate over the last minute and the batches refused, from GET /v1/dataset,
// refreshed every two seconds while the page is visible.
"use strict";

(() => {
  const REFRESH_MS = 2000;
  const SOURCES = [["http", "HTTP"], ["websocket", "WebSocket"], ["mqtt", "MQTT"], ["kafka", "Kafka"]];
  const table = document.getElementById("intake-table");
  const summary = document.getElementById("intake-summary");
  const error = document.getElementById("intake-error");
  const integer = new Intl.NumberFormat("en-US");

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function row([key, label], counts) {
    const tr = document.createElement("tr");
    tr.dataset.source = key;
    const rate = counts.rows_per_second;
    tr.append(
      cell(label),
      cell(integer.format(counts.rows), "num"),
      cell(rate < 10 ? rate.toFixed(1) : integer.format(Math.round(rate)), "num"),
      cell(integer.format(counts.rejected), "num"),
    );
    return tr;
  }

  function describe(dataset) {
    const newest = dataset.newest_arrival ? `; the newest arrived ${new Date(dataset.newest_arrival).toLocaleTimeString()}` : "";
    return `${integer.format(dataset.rows)} rows, ${integer.format(dataset.segments)} appended segments${newest}.`;
  }

  async function refresh() {
    if (document.visibilityState !== "visible") return;
    try {
      const response = await fetch("/v1/dataset");
      const dataset = await response.json();
      if (!response.ok) throw new Error(dataset.error || `HTTP ${response.status}`);
      const zero = { rows: 0, rows_per_second: 0, rejected: 0 };
      table.tBodies[0].replaceChildren(...SOURCES.map((source) => row(source, dataset.sources[source[0]] || zero)));
      summary.textContent = describe(dataset);
      error.hidden = true;
    } catch (failure) {
      error.textContent = `Could not read the arriving rows: ${failure.message}`;
      error.hidden = false;
    }
  }

  refresh();
  setInterval(refresh, REFRESH_MS);
  document.addEventListener("visibilitychange", refresh);
})();
