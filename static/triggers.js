// The "Retraining" panel of the train card: each trigger of GET /v1/triggers with its condition,
// its countdown or the rows still to come, how often it fired (and when last), how that ended,
// and a button that fires it now; refreshed every second while the page is visible.

import { $, api, el, integer, refreshWhileVisible } from "./core.js";

const REFRESH_MS = 1000;

function condition(trigger) {
  if (trigger.rows !== undefined) return `after ${integer(trigger.rows)} rows`;
  if (trigger.every !== undefined) return `every ${trigger.every}`;
  if (trigger.cron !== undefined) return `cron ${trigger.cron} (UTC)`;
  return "webhook";
}

function upcoming(state) {
  if (state.rows_to_go !== null) return `${integer(state.rows_to_go)} rows to go`;
  if (!state.next_fire) return "when called";
  const seconds = Math.max(0, Math.round((Date.parse(state.next_fire) - Date.now()) / 1000));
  const next = new Date(state.next_fire);
  const sameDay = next.toDateString() === new Date().toDateString();
  return seconds < 120 ? `in ${seconds} s` : `at ${sameDay ? next.toLocaleTimeString() : next.toLocaleString()}`;
}

function fireButton(name) {
  const button = el("button", { type: "button", title: `Fire ${name} now` }, "Fire");
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const fired = await api("POST", `/v1/triggers/${encodeURIComponent(name)}/fire`);
      const job = fired.job ? ` (job ${fired.job})` : "";
      showResult(`${name}: ${fired.admitted.replace("_", " ")}${job}${fired.error ? `: ${fired.error}` : ""}`);
    } catch (failure) {
      showResult(`${name} could not be fired: ${failure.message}`);
    } finally {
      button.disabled = false;
      refresh();
    }
  });
  return button;
}

function showResult(text) {
  $("triggers-result").textContent = text;
}

function row(trigger) {
  const state = trigger.state;
  const merged = state.merged ? ` (+${integer(state.merged)} merged)` : "";
  const last = state.last_fired ? `last ${new Date(state.last_fired).toLocaleTimeString()}` : "never";
  const tr = el(
    "tr",
    {},
    el("th", { scope: "row" }, trigger.name, el("span", { class: "condition note" }, condition(trigger))),
    el("td", { class: "next" }, upcoming(state)),
    el("td", { class: "num", title: last }, `${integer(state.fired)}${merged}`),
    el("td", { class: "outcome wrap" }, state.outcome || ""),
    el("td", {}, fireButton(trigger.name)),
  );
  tr.dataset.trigger = trigger.name;
  return tr;
}

async function refresh() {
  const error = $("triggers-error");
  try {
    const view = await api("GET", "/v1/triggers");
    $("triggers-table").tBodies[0].replaceChildren(...view.triggers.map(row));
    const waiting = view.waiting ? `; ${view.waiting.trigger} waits behind the running training (${integer(view.waiting.merged)} merged)` : "";
    $("triggers-summary").textContent = `${integer(view.triggers.length)} triggers${waiting}.`;
    error.hidden = true;
  } catch (failure) {
    error.textContent = `Could not read the triggers: ${failure.message}`;
    error.hidden = false;
  }
}

refreshWhileVisible(refresh, REFRESH_MS);
