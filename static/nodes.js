// The nodes panel: every node sharing this server's store, from GET /v1/nodes, refreshed every
// two seconds while the page is visible.

import { $, api, el, refreshWhileVisible } from "./core.js";

const REFRESH_MS = 2000;

/** An uptime or an age, from seconds. */
function age(seconds) {
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function row(node, answeredBy) {
  const name = node.id === answeredBy ? `${node.id} (this page's server)` : node.id;
  const tr = el(
    "tr",
    { title: node.address },
    el("td", {}, name),
    el("td", {}, node.role),
    el("td", { class: `node-state node-${node.state}` }, node.state),
    el("td", { class: "num" }, node.model_version == null ? "none" : `v${node.model_version}`),
    el("td", { class: "num" }, node.requests_per_second.toFixed(1)),
    el("td", { class: "num" }, age(node.uptime_seconds)),
    el("td", { class: "num" }, age(node.age_seconds)),
    el("td", {}, node.last_error || ""),
  );
  tr.dataset.node = node.id;
  tr.dataset.state = node.state;
  return tr;
}

async function refresh() {
  const [table, empty, error] = [$("nodes-table"), $("nodes-empty"), $("nodes-error")];
  try {
    const body = await api("GET", "/v1/nodes");
    table.tBodies[0].replaceChildren(...body.nodes.map((node) => row(node, body.answered_by)));
    table.hidden = body.nodes.length === 0;
    empty.hidden = body.nodes.length !== 0;
    error.hidden = true;
  } catch (failure) {
    error.textContent = `Could not list the nodes: ${failure.message}`;
    error.hidden = false;
  }
}

refreshWhileVisible(refresh, REFRESH_MS);
