// The model timeline: every activation of a model version, newest first, with why it happened,
// followed live through GET /v1/models/events. The event reader (events.js) reconnects by
// itself and sends the last event's id, so the server resumes after it.

import { $, el, fmt, integer, showMessage, timestampParts } from "./core.js";
import { followEvents } from "./events.js";

/** The most activations the timeline shows. */
const SHOWN = 100;
/** How long to wait before following again when the server refused the stream. */
const RETRY_MS = 5000;

/** The id of the newest activation shown, 0 before the first. */
let newest = 0;

function reasonText(reason) {
  return reason.kind === "trigger" ? `trigger “${reason.name}”` : reason.kind;
}

/** The quality gate's scores, when a gate decided the activation. */
function gateText(gate) {
  if (!gate) return "";
  const active = gate.active_mse === null ? "none served" : fmt(gate.active_mse);
  return `candidate MSE ${fmt(gate.candidate_mse)} vs ${active}, margin ${fmt(gate.margin)}, ` +
    `${integer(gate.holdout_rows)} holdout rows`;
}

function activationRow(event) {
  return el("tr", { "data-event": event.id, "data-reason": event.reason.kind },
    el("th", { scope: "row" }, `v${event.version}`),
    el("td", {}, event.previous === null ? "none" : `v${event.previous}`),
    el("td", {}, reasonText(event.reason)),
    el("td", { class: "wrap" }, gateText(event.gate)),
    el("td", { class: "wrap", title: event.at }, ...timestampParts(event.at)));
}

/** Activations the server no longer keeps, between the last one shown and the next. */
function gapRow(gap) {
  const missed = gap.oldest - gap.after - 1;
  return el("tr", { class: "gap" },
    el("td", { colspan: 5 }, `${integer(missed)} earlier activations are no longer kept by the server.`));
}

function prepend(row) {
  const body = $("timeline-table").tBodies[0];
  body.prepend(row);
  while (body.rows.length > SHOWN) body.lastElementChild.remove();
  $("timeline-table").hidden = false;
  $("timeline-empty").hidden = true;
}

function onActivation(event) {
  // A lower id than one shown comes from another event log (the server's store was replaced).
  if (event.id <= newest) $("timeline-table").tBodies[0].replaceChildren();
  newest = event.id;
  prepend(activationRow(event));
  showMessage("timeline-error", "");
}

function follow() {
  const handlers = {
    activation: (data) => onActivation(JSON.parse(data)),
    gap: (data) => prepend(gapRow(JSON.parse(data))),
  };
  // A refused stream (an error answer) is not retried by the reader; a dropped one is.
  followEvents("/v1/models/events", handlers, () => {
    showMessage("timeline-error", "The timeline is not following the server; trying again shortly.");
    setTimeout(follow, RETRY_MS);
  });
}

follow();
