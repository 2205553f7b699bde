// Batches: the live list with progress, and one batch with its counts, rate, ETA, cancel and download.
import { changed, h, replace } from "./dom.js";
import { FINAL_BATCH, badge, between, duration, shortId, time, tokens, usd, when } from "./format.js";
import { emptyRow, facts, pageHeader, progressBar, section, stat, thead } from "./widgets.js";

const ITEMS_SHOWN = 100;
const functionNames = new Map(); // function id -> name, looked up once per console session

async function nameOf(api, functionId) {
  if (!functionId) return "—";
  if (!functionNames.has(functionId)) {
    const found = await api.get(`/functions/${functionId}`).then((f) => f.name, () => shortId(functionId));
    functionNames.set(functionId, found);
  }
  return functionNames.get(functionId);
}

function ended(counts) {
  return counts.succeeded + counts.failed + counts.cancelled;
}

/** Items ended per second since the first item started (until the batch finished). */
function rate(batch) {
  if (!batch.started_at) return null;
  const ms = between(batch.started_at, batch.finished_at || new Date().toISOString());
  return ms > 0 ? ended(batch.counts) / (ms / 1000) : null;
}

function rateText(batch) {
  const r = rate(batch);
  return r === null || ended(batch.counts) === 0 ? "—" : `${r >= 10 ? r.toFixed(0) : r.toFixed(1)} items/s`;
}

function etaText(batch) {
  if (FINAL_BATCH.has(batch.status)) return "done";
  const s = batch.estimated_seconds_remaining;
  return s === null || s === undefined ? "estimating…" : duration(s * 1000);
}

export async function batchesView(ctx) {
  const { api, root } = ctx;
  const count = h("span", { class: "muted" });
  const body = h("tbody", { id: "batches-body" });
  replace(root, pageHeader("Batches", count), h("div", { class: "card card-flush" }, h("table", { class: "table table-clickable", id: "batches-table" },
    thead(["Status", "Function", "Progress", "Items #", "Rate #", "ETA #", "Cost #", "Created"]),
    body)));
  const refresh = async () => {
    const page = await api.get("/batches", { limit: 50 });
    const names = await Promise.all(page.data.map((b) => nameOf(api, b.function_id)));
    if (!ctx.alive()) return false;
    count.textContent = `${page.meta.total_count.toLocaleString()} batch${page.meta.total_count === 1 ? "" : "es"}`;
    if (changed(body, page)) replace(body, page.data.length ? page.data.map((batch, i) => h("tr", { class: "batch-row", dataset: { batchId: batch.id }, onclick: () => ctx.navigate(`#/batches/${batch.id}`) },
      h("td", {}, badge(batch.status)),
      h("td", {}, h("a", { href: `#/batches/${batch.id}` }, names[i]), h("div", { class: "sub mono" }, shortId(batch.id))),
      h("td", { class: "progress-cell" }, progressBar(batch.counts)),
      h("td", { class: "num" }, `${ended(batch.counts).toLocaleString()} / ${batch.counts.total.toLocaleString()}`),
      h("td", { class: "num" }, rateText(batch)),
      h("td", { class: "num" }, etaText(batch)),
      h("td", { class: "num" }, usd(batch.cost.total)),
      h("td", { class: "nowrap" }, when(batch.created_at)))) : emptyRow(8, "No batches yet."));
    return true;
  };
  await refresh();
  ctx.live(refresh);
}

export async function batchView(ctx) {
  const { api, root, args } = ctx;
  const id = args[0];
  const holder = h("div", { id: "batch-detail" });
  replace(root, holder);
  const refresh = async () => {
    const batch = await api.get(`/batches/${id}`);
    const [name, items] = await Promise.all([nameOf(api, batch.function_id), api.ndjsonHead(`/batches/${id}/results`, ITEMS_SHOWN)]);
    if (!ctx.alive()) return false;
    if (changed(holder, [batch, items])) replace(holder, batchDetail(ctx, batch, name, items, refresh));
    return !FINAL_BATCH.has(batch.status);
  };
  if (await refresh()) ctx.live(refresh);
}

function batchDetail(ctx, batch, name, items, reload) {
  const c = batch.counts;
  const actions = [h("button", { class: "btn", id: "download-results", onclick: () => ctx.api.download(`/batches/${batch.id}/results`, `batch-${batch.id}.jsonl`) }, "Download results")];
  if (!FINAL_BATCH.has(batch.status) && batch.status !== "cancelling") {
    actions.unshift(h("button", { class: "btn btn-danger", id: "cancel-batch", onclick: async (event) => {
      event.target.disabled = true;
      await ctx.api.post(`/batches/${batch.id}/cancel`).catch(() => {});
      await reload();
    } }, "Cancel batch"));
  }
  return [
    pageHeader([h("a", { href: "#/batches", class: "crumb" }, "Batches"), " / ", name], badge(batch.status), actions),
    h("div", { class: "stats" },
      stat("Done", `${ended(c).toLocaleString()} / ${c.total.toLocaleString()}`, `${Math.floor((100 * ended(c)) / Math.max(1, c.total))}%`),
      stat("Rate", rateText(batch)),
      stat("Time left", etaText(batch)),
      stat("Tokens", tokens(batch.usage.total_tokens)),
      stat("Cost", usd(batch.cost.total))),
    h("section", { class: "card" }, progressBar(c, true), h("div", { class: "legend", id: "batch-counts" },
      ["queued", "running", "succeeded", "failed", "cancelled"].map((state) => h("span", { class: `legend-item legend-${state}` }, h("i"), `${state} ${c[state].toLocaleString()}`)))),
    facts([
      ["Batch", h("code", {}, batch.id)],
      ["Created", time(batch.created_at)],
      ["Started", time(batch.started_at)],
      ["Finished", time(batch.finished_at)],
      ["Completion window", batch.completion_window || "—"],
      ["Invalid items skipped", batch.invalid_count],
    ]),
    section(`Items${c.total > ITEMS_SHOWN ? ` (first ${ITEMS_SHOWN})` : ""}`, h("table", { class: "table table-clickable", id: "batch-items" },
      thead(["Custom id", "Status", "Job", "Tokens #", "Outcome"]),
      h("tbody", {}, items.length ? items.map((item) => h("tr", { class: "item-row", onclick: () => ctx.navigate(`#/jobs/${item.job_id}`) },
        h("td", {}, item.custom_id),
        h("td", {}, badge(item.status)),
        h("td", { class: "mono" }, h("a", { href: `#/jobs/${item.job_id}` }, shortId(item.job_id))),
        h("td", { class: "num" }, item.result?.usage ? tokens(item.result.usage.total_tokens) : "—"),
        h("td", { class: "truncate" }, item.error ? h("span", { class: "error-text" }, item.error.message) : item.result ? (item.result.message ?? JSON.stringify(item.result.json_payload)) : "—"))) : emptyRow(5, "No items.")))),
  ];
}
