// Server-Sent Events read over `fetch`, so that a stream carries the tab's token (EventSource
// cannot send headers). Parses `id:`, `event:`, `data:` and `retry:` lines as EventSource does,
// and after a drop reconnects with `Last-Event-ID`, so the server resumes after the last event.

import { authorizedFetch, errorMessage } from "./token.js";

/** How long to wait before reconnecting after a drop, until the server sends `retry:`. */
const RECONNECT_MS = 1000;

/** Follows the stream at `path`, calling `handlers[type](data)` for each event. An answer
 * that is not a stream (an error) ends it: `onRefused(message)` is called and it is not
 * retried. Returns the stream, whose `close()` stops it for good. */
export function followEvents(path, handlers, onRefused = () => {}) {
  const stream = { closed: false, lastEventId: "", delay: RECONNECT_MS, abort: null, timer: null };
  stream.close = () => {
    stream.closed = true;
    clearTimeout(stream.timer);
    if (stream.abort) stream.abort.abort();
  };
  connect(stream, path, handlers, onRefused);
  return stream;
}

async function connect(stream, path, handlers, onRefused) {
  stream.abort = new AbortController();
  const headers = { Accept: "text/event-stream" };
  if (stream.lastEventId) headers["Last-Event-ID"] = stream.lastEventId;
  try {
    const response = await authorizedFetch(path, { headers, signal: stream.abort.signal, cache: "no-store" });
    const type = response.headers.get("Content-Type") || "";
    if (!response.ok || !type.startsWith("text/event-stream")) {
      stream.closed = true;
      onRefused(await errorMessage(response));
      return;
    }
    await read(response.body, stream, handlers);
  } catch {
    // A dropped connection or an unreachable server: reconnected below, like EventSource.
  }
  if (!stream.closed) stream.timer = setTimeout(() => connect(stream, path, handlers, onRefused), stream.delay);
}

/** Reads the body line by line until it ends. A line may end with CR, LF or CRLF; a CR at the
 * end of a chunk waits for the next one, which may start with its LF. */
async function read(body, stream, handlers) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  const event = { type: "", data: [] };
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    const end = buffer.endsWith("\r") ? buffer.length - 1 : buffer.length;
    const lines = buffer.slice(0, end).split(/\r\n|\r|\n/);
    buffer = lines.pop() + buffer.slice(end);
    for (const line of lines) {
      if (stream.closed) return;
      readLine(line, event, stream, handlers);
    }
  }
}

/** One line of the stream: a field of the event being read, or the blank line ending it. */
function readLine(line, event, stream, handlers) {
  if (line === "") {
    const { type, data } = event;
    [event.type, event.data] = ["", []];
    const handler = handlers[type || "message"];
    if (data.length && handler) dispatch(handler, data.join("\n"));
    return;
  }
  if (line.startsWith(":")) return;
  const colon = line.indexOf(":");
  const field = colon < 0 ? line : line.slice(0, colon);
  const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
  if (field === "data") event.data.push(value);
  else if (field === "event") event.type = value;
  else if (field === "id" && !value.includes("\0")) stream.lastEventId = value;
  else if (field === "retry" && /^\d+$/.test(value)) stream.delay = Number(value);
}

/** Calls a handler; what it throws is reported as uncaught, as from an EventSource listener,
 * and the stream goes on. */
function dispatch(handler, data) {
  try {
    handler(data);
  } catch (error) {
    reportError(error);
  }
}
