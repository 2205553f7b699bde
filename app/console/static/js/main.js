// The console's shell: sign-in with an API key (kept in sessionStorage), hash routing, live refresh.
import { Api, ApiError, storedKey, storeKey } from "./api.js";
import { replace } from "./dom.js";
import { batchView, batchesView } from "./batches.js";
import { functionView, functionsView } from "./functions.js";
import { jobView, jobsView } from "./jobs.js";
import { traceView, tracesView } from "./traces.js";
import { usageView } from "./usage.js";

const ROUTES = [
  [/^jobs\/([^/]+)$/, jobView, "jobs"],
  [/^jobs$/, jobsView, "jobs"],
  [/^batches\/([^/]+)$/, batchView, "batches"],
  [/^batches$/, batchesView, "batches"],
  [/^traces\/([^/]+)$/, traceView, "traces"],
  [/^traces$/, tracesView, "traces"],
  [/^functions\/([^/]+)$/, functionView, "functions"],
  [/^functions$/, functionsView, "functions"],
  [/^usage$/, usageView, "usage"],
];
const REFRESH_MS = 2500;

const $ = (id) => document.getElementById(id);
let current = null; // the mounted view: { token, timer }
let api = null;

function showBanner(message) {
  const banner = $("banner");
  banner.textContent = message || "";
  banner.hidden = !message;
}

/** What a view gets: the API, where to draw, the route's arguments and query, and live refresh. */
function context(token, args, params) {
  return {
    api,
    root: $("view"),
    args,
    params,
    alive: () => current && current.token === token,
    navigate: (hash) => {
      location.hash = hash;
    },
    /** Call `refresh` every few seconds while this view is shown; stop when it returns false. */
    live(refresh) {
      const tick = async () => {
        if (!this.alive()) return;
        let again = true;
        try {
          again = (await refresh()) !== false;
          showBanner("");
        } catch (error) {
          showBanner(`Refresh failed: ${error.message}`);
        }
        if (again && this.alive()) current.timer = setTimeout(tick, REFRESH_MS);
      };
      current.timer = setTimeout(tick, REFRESH_MS);
    },
  };
}

async function route() {
  if (!api) return;
  const [path, search] = (location.hash.replace(/^#\/?/, "") || "jobs").split("?");
  if (current) clearTimeout(current.timer);
  const token = Symbol(path);
  current = { token, timer: null };
  showBanner("");
  let match = null;
  for (const [pattern, view, nav] of ROUTES) {
    const found = path.match(pattern);
    if (found) {
      match = { view, nav, args: found.slice(1).map(decodeURIComponent) };
      break;
    }
  }
  if (!match) {
    location.hash = "#/jobs";
    return;
  }
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.classList.toggle("active", link.dataset.nav === match.nav);
  }
  const ctx = context(token, match.args, new URLSearchParams(search || ""));
  replace(ctx.root);
  try {
    await match.view(ctx);
  } catch (error) {
    if (!ctx.alive()) return;
    if (error instanceof ApiError && error.status === 401) return signOut("That key is no longer valid.");
    showBanner(error instanceof ApiError && error.status === 404 ? "Not found in this project." : error.message);
  }
}

function signIn(key) {
  api = new Api(key);
  $("key-hint").textContent = `${key.slice(0, 8)}…`;
  $("login").hidden = true;
  $("app").hidden = false;
  route();
}

function signOut(message) {
  storeKey(null);
  api = null;
  if (current) clearTimeout(current.timer);
  current = null;
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("login-error").hidden = !message;
  $("api-key").value = "";
  $("api-key").focus();
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = $("api-key").value.trim();
  const button = event.submitter;
  if (button) button.disabled = true;
  try {
    await new Api(key).get("/jobs", { limit: 1 });
    storeKey(key);
    signIn(key);
  } catch (error) {
    const message = error instanceof ApiError && error.status === 401 ? "This key was not accepted." : error.message;
    $("login-error").textContent = message;
    $("login-error").hidden = false;
  } finally {
    if (button) button.disabled = false;
  }
});
$("logout").addEventListener("click", () => signOut(""));
window.addEventListener("hashchange", route);

const key = storedKey();
if (key) signIn(key);
else signOut("");
