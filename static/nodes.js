// The nodes panel: every node sharing this server's store, from GET /v1/nodes, refreshed every
// two seconds while the page is visible.
"use strict";

(() => {
  const REFRESH_MS = 2000;
  const table = document.getElementById("nodes-table");
  const empty = document.getElementById("nodes-empty");
  const error = document.getElementById("nodes-error");

  function duration(seconds) {
    if (seconds < 60) return `${seconds.toFixed(1)} s`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
    return `${(seconds / 3600).toFixed(1)} h`;
  }

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function row(node, answeredBy) {
    const tr = document.createElement("tr");
    tr.dataset.node = node.id;
    tr.dataset.state = node.state;
    const name = node.id === answeredBy ? `${node.id} (this page's server)` : node.id;
    tr.append(
      cell(name),
      cell(node.role),
      cell(node.state, `node-state node-${node.state}`),
      cell(node.model_version == null ? "none" : `v${node.model_version}`, "num"),
      cell(node.requests_per_second.toFixed(1), "num"),
      cell(duration(node.uptime_seconds), "num"),
      cell(duration(node.age_seconds), "num"),
      cell(node.last_error || ""),
    );
    tr.title = node.address;
    return tr;
  }

  async function refresh() {
    if (document.visibilityState !== "visible") return;
    try {
      const response = await fetch("/v1/nodes");
      const body = await response.json();
      if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
      table.tBodies[0].replaceChildren(...body.nodes.map((node) => row(node, body.answered_by)));
      table.hidden = body.nodes.length === 0;
      empty.hidden = body.nodes.length !== 0;
      error.hidden = true;
    } catch (failure) {
      error.textContent = `Could not list the nodes: ${failure.message}`;
      error.hidden = false;
    }
  }

  refresh();
  setInterval(refresh, REFRESH_MS);
  document.addEventListener("visibilitychange", refresh);
})();
