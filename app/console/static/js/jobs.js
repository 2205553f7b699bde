// Jobs: the recent jobs of the project (filterable, live) and one job with its input, outcome and attempts.
import { changed, h, replace } from "./dom.js";
import { FINAL_JOB, badge, between, codeBlock, duration, time, tokens, usd, when } from "./format.js";
import { emptyRow, facts, pageHeader, pager, section, thead, timingBar } from "./widgets.js";

const STATUSES = ["queued", "running", "succeeded", "failed", "cancelled"];
const PAGE = 50;

/** The call span of each ended job, by job id: model, usage, cost, input and output as recorded. */
async function callSpans(api, jobs) {
  const ended = jobs.filter((job) => job.status !== "queued").map((job) => job.id);
  if (!ended.length) return new Map();
  const spans = await api.get("/spans", { job_id: ended, type: "call" });
  return new Map(spans.data.map((span) => [span.job_id, span]));
}

function tagText(tags) {
  return Object.entries(tags || {}).map(([k, v]) => h("span", { class: "tag" }, `${k}:${v}`));
}

export async function jobsView(ctx) {
  const { api, root, params } = ctx;
  const filters = { status: params.get("status") || "", name: params.get("name") || "", tag: params.get("tag") || "" };
  const status = h("select", { id: "filter-status", "aria-label": "Status" },
    h("option", { value: "" }, "Any status"),
    STATUSES.map((s) => h("option", { value: s, selected: s === filters.status }, s)));
  const name = h("input", { id: "filter-name", placeholder: "Function name", value: filters.name });
  const tag = h("input", { id: "filter-tag", placeholder: "Tag key:value", value: filters.tag });
  const apply = (event) => {
    event.preventDefault();
    const search = new URLSearchParams();
    if (status.value) search.set("status", status.value);
    if (name.value.trim()) search.set("name", name.value.trim());
    if (tag.value.trim()) search.set("tag", tag.value.trim());
    const text = search.toString();
    ctx.navigate(text ? `#/jobs?${text}` : "#/jobs");
  };
  status.addEventListener("change", apply);
  const form = h("form", { class: "filters", onsubmit: apply }, status, name, tag,
    h("button", { class: "btn", type: "submit" }, "Filter"),
    h("a", { class: "btn btn-ghost", href: "#/jobs" }, "Clear"));
  const offset = Math.max(0, Number(params.get("offset")) || 0);
  const count = h("span", { class: "muted" });
  const footer = h("div");
  const body = h("tbody", { id: "jobs-body" });
  const table = h("table", { class: "table table-clickable", id: "jobs-table" },
    thead(["Status", "Function", "Model", "Latency #", "Tokens #", "Cost #", "Tags", "Created"]),
    body);
  replace(root, pageHeader("Jobs", count), form, h("div", { class: "card card-flush" }, table), footer);

  const refresh = async () => {
    const page = await api.get("/jobs", { limit: PAGE, offset, status: filters.status, name: filters.name, tag: filters.tag });
    const spans = await callSpans(api, page.data);
    if (!ctx.alive()) return false;
    count.textContent = `${page.meta.total_count.toLocaleString()} job${page.meta.total_count === 1 ? "" : "s"}`;
    replace(footer, pager("jobs", params, offset, PAGE, page.meta.total_count));
    if (changed(body, [page, [...spans.values()]])) replace(body, page.data.length ? page.data.map((job) => jobRow(ctx, job, spans.get(job.id))) : emptyRow(8, "No jobs match."));
    return true;
  };
  await refresh();
  ctx.live(refresh);
}

function jobRow(ctx, job, span) {
  const usage = job.result?.usage || span?.usage;
  const cost = job.result?.cost || span?.cost;
  return h("tr", { class: "job-row", dataset: { jobId: job.id }, onclick: () => ctx.navigate(`#/jobs/${job.id}`) },
    h("td", {}, badge(job.status)),
    h("td", {}, h("a", { href: `#/jobs/${job.id}` }, job.name), job.custom_id ? h("div", { class: "sub" }, job.custom_id) : null),
    h("td", { class: "mono" }, span?.model || "—"),
    h("td", { class: "num" }, duration(between(job.started_at, job.finished_at))),
    h("td", { class: "num" }, usage ? tokens(usage.total_tokens) : "—"),
    h("td", { class: "num" }, cost ? usd(cost.total) : "—"),
    h("td", {}, tagText(job.tags)),
    h("td", { class: "nowrap" }, when(job.created_at)));
}

export async function jobView(ctx) {
  const { api, root, args } = ctx;
  const id = args[0];
  const holder = h("div", { id: "job-detail" });
  replace(root, holder);
  const refresh = async () => {
    const job = await api.get(`/jobs/${id}`);
    const spans = job.status === "queued" ? { data: [] } : await api.get("/spans", { job_id: id });
    if (!ctx.alive()) return false;
    if (changed(holder, [job, spans.data])) replace(holder, jobDetail(ctx, job, spans.data, refresh));
    return !FINAL_JOB.has(job.status);
  };
  if (await refresh()) ctx.live(refresh);
}

function jobDetail(ctx, job, spans, reload) {
  const call = spans.find((s) => s.type === "call");
  const attempts = spans.filter((s) => s.type === "generation");
  const usage = job.result?.usage || call?.usage;
  const cost = job.result?.cost || call?.cost;
  const actions = [];
  if (!FINAL_JOB.has(job.status)) {
    actions.push(h("button", { class: "btn btn-danger", id: "cancel-job", onclick: async (event) => {
      event.target.disabled = true;
      await ctx.api.post(`/jobs/${job.id}/cancel`).catch(() => {});
      await reload();
    } }, "Cancel job"));
  }
  if (spans.length) actions.push(h("a", { class: "btn", id: "open-trace", href: `#/traces/${job.trace_id}` }, "Open trace"));
  if (job.batch_id) actions.push(h("a", { class: "btn", href: `#/batches/${job.batch_id}` }, "Open batch"));
  const outcome = job.error
    ? section("Error", h("div", { class: "error-box" }, h("strong", {}, job.error.type), " ", job.error.message), job.error.detail ? codeBlock(job.error.detail) : null)
    : section("Result", job.result ? codeBlock(job.result.message ?? job.result.json_payload) : h("p", { class: "muted" }, "Not finished yet."));
  return [
    pageHeader([h("a", { href: "#/jobs", class: "crumb" }, "Jobs"), " / ", job.name], badge(job.status), actions),
    facts([
      ["Job", h("code", {}, job.id)],
      ["Model", call?.model || "—"],
      ["Created", time(job.created_at)],
      ["Queued for", duration(between(job.created_at, job.started_at))],
      ["Latency", duration(between(job.started_at, job.finished_at))],
      ["Tokens", usage ? `${tokens(usage.total_tokens)} (${tokens(usage.input_tokens)} in / ${tokens(usage.output_tokens)} out)` : "—"],
      ["Cost", cost ? usd(cost.total) : "—"],
      ["Worker starts", job.attempts],
      ["Tags", Object.keys(job.tags || {}).length ? tagText(job.tags) : "—"],
      job.custom_id ? ["Batch item", job.custom_id] : null,
    ]),
    h("div", { class: "grid-2" }, section("Input", codeBlock(job.input ?? call?.input)), outcome),
    section(`Attempts (${attempts.length})`, attemptsTable(attempts)),
  ];
}

function attemptsTable(attempts) {
  if (!attempts.length) return h("p", { class: "muted" }, "No model attempt yet.");
  const starts = attempts.map((a) => new Date(a.start_time).getTime());
  const ends = attempts.map((a) => new Date(a.end_time || a.start_time).getTime());
  const t0 = Math.min(...starts);
  const span = Math.max(1, Math.max(...ends) - t0);
  return h("table", { class: "table", id: "attempts-table" },
    thead(["#", "Model", "Outcome", "Duration #", "Timeline", "Tokens #", "Cost #"]),
    h("tbody", {}, attempts.map((a, i) => h("tr", { class: "attempt-row" },
      h("td", {}, i + 1),
      h("td", { class: "mono" }, a.model || a.name),
      h("td", { class: "outcome" }, a.error ? h("span", { class: "error-text", title: a.error }, a.error) : badge("succeeded")),
      h("td", { class: "num" }, duration(a.duration_ms)),
      h("td", { class: "timeline-cell" }, timingBar((starts[i] - t0) / span, (ends[i] - starts[i]) / span, a.error ? "error" : "ok")),
      h("td", { class: "num" }, tokens(a.usage.total_tokens)),
      h("td", { class: "num" }, usd(a.cost.total))))));
}
