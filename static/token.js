// The bearer token of a server started with --admin-token or --read-token: asked for in the
// page's token form when a call is refused for the want of one, kept for this tab only
// (sessionStorage: a reload keeps it, a new tab or window asks again), and sent on every call
// and event stream through `authorizedFetch`.

const KEY = "regserve-token";

/** The calls waiting for a token, woken when one is entered (or rejected on "Not now"). */
let waiting = [];

/** Set by "Not now": until the user next clicks or submits something, a call refused for its
 * token gets its refusal without asking, so the page's background refreshes do not reopen the
 * form a second after it was dismissed. */
let declined = false;

function stored() {
  return sessionStorage.getItem(KEY) || "";
}

const byId = (id) => document.getElementById(id);

/** Whether an answer refuses the call for its token: 401, or a 403 with a Bearer challenge
 * (a token that does not reach far enough). */
function refusesToken(response) {
  if (response.status === 401) return true;
  return response.status === 403 && /^bearer/i.test(response.headers.get("WWW-Authenticate") || "");
}

/** The server's message in an error answer: its JSON `error`, or the status. */
export async function errorMessage(response) {
  const body = await response.clone().json().catch(() => null);
  return body && body.error ? body.error : `${response.status} ${response.statusText}`;
}

function showForgetButton() {
  byId("forget-token").hidden = !stored();
}

/** Opens the token form (or updates it), saying which token the refusal asks for and why the
 * token sent was refused; resolves once a token is entered. */
function askForToken(message, sent) {
  const dialog = byId("token-dialog");
  byId("token-need").textContent = /admin token/.test(message)
    ? "This needs the admin token (upload, train, cancel, activate)."
    : "This needs the read token or the admin token.";
  const error = byId("token-error");
  error.textContent = sent ? `The token was refused: ${message}` : "";
  error.hidden = !sent;
  if (!dialog.open) {
    byId("token-input").value = "";
    dialog.show();
    byId("token-input").focus();
  }
  return new Promise((resolve, reject) => waiting.push({ resolve, reject }));
}

/** Wakes every waiting call, to retry or to give up with `error`. */
function wake(error) {
  const woken = waiting;
  waiting = [];
  for (const call of woken) {
    if (error) call.reject(error);
    else call.resolve();
  }
}

/** `fetch` with the tab's token; a call refused for its token asks for one and is retried.
 * The form closes once a call with the entered token is answered without such a refusal. */
export async function authorizedFetch(path, init = {}) {
  for (;;) {
    const token = stored();
    const headers = new Headers(init.headers);
    if (token) headers.set("Authorization", `Bearer ${token}`);
    const response = await fetch(path, { ...init, headers });
    if (!refusesToken(response)) {
      if (token && token === stored() && !waiting.length) byId("token-dialog").close();
      return response;
    }
    // A token entered meanwhile is tried before asking again.
    if (token !== stored()) continue;
    if (declined) return response;
    const message = await errorMessage(response);
    try {
      await askForToken(message, Boolean(token));
    } catch {
      return response;
    }
  }
}

function bindTokenForm() {
  byId("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = byId("token-input").value.trim();
    if (!token) return;
    sessionStorage.setItem(KEY, token);
    byId("token-error").hidden = true;
    showForgetButton();
    wake(null);
  });
  // Any click or submit is the user acting again, and may ask for the token; "Not now" itself
  // declines after this has run (capture runs first).
  for (const type of ["click", "submit"]) document.addEventListener(type, () => { declined = false; }, true);
  byId("token-later").addEventListener("click", () => {
    declined = true;
    byId("token-dialog").close();
    wake(new Error("no token entered"));
  });
  byId("forget-token").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    showForgetButton();
  });
  showForgetButton();
}

bindTokenForm();
