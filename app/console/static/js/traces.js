// Traces: the project's recent traces, and one trace as a tree of spans with timing bars.
import { changed, h, replace } from "./dom.js";
import { badge, codeBlock, duration, time, tokens, when } from "./format.js";
import { emptyRow, facts, pageHeader, pager, section, thead, timingBar } from "./widgets.js";

export async function tracesView(ctx) {
  const { api, root, params } = ctx;
  const offset = Math.max(0, Number(params.get("offset")) || 0);
  const count = h("span", { class: "muted" });
  const footer = h("div");
  const body = h("tbody", { id: "traces-body" });
  replace(root, pageHeader("Traces", count), h("div", { class: "card card-flush" }, h("table", { class: "table table-clickable", id: "traces-table" },
    thead(["Status", "Name", "Duration #", "Tokens #", "Started"]),
    body)), footer);
  const refresh = async () => {
    const page = await api.get("/traces", { limit: 50, offset });
    if (!ctx.alive()) return false;
    count.textContent = `${page.meta.total_count.toLocaleString()} trace${page.meta.total_count === 1 ? "" : "s"}`;
    replace(footer, pager("traces", params, offset, 50, page.meta.total_count));
    if (changed(body, page)) replace(body, page.data.length ? page.data.map((trace) => h("tr", { class: "trace-row", dataset: { traceId: trace.id }, onclick: () => ctx.navigate(`#/traces/${trace.id}`) },
      h("td", {}, badge(trace.status)),
      h("td", {}, h("a", { href: `#/traces/${trace.id}` }, trace.name || trace.id)),
      h("td", { class: "num" }, duration(trace.duration_ms)),
      h("td", { class: "num" }, tokens(trace.total_tokens)),
      h("td", { class: "nowrap" }, when(trace.start_time)))) : emptyRow(5, "No traces yet."));
    return true;
  };
  await refresh();
  ctx.live(refresh);
}

/** Spans in depth-first order with their depth; orphans (parent outside the trace) are roots. */
function flatten(spans) {
  const ids = new Set(spans.map((s) => s.id));
  const children = new Map();
  for (const span of spans) {
    const parent = span.parent_id && ids.has(span.parent_id) ? span.parent_id : null;
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(span);
  }
  const order = [];
  const walk = (parent, depth) => {
    const kids = (children.get(parent) || []).sort((a, b) => String(a.start_time).localeCompare(String(b.start_time)));
    for (const span of kids) {
      order.push({ span, depth });
      walk(span.id, depth + 1);
    }
  };
  walk(null, 0);
  return order;
}

export async function traceView(ctx) {
  const { api, root, args } = ctx;
  const trace = await api.get(`/traces/${args[0]}`);
  if (!ctx.alive()) return;
  const spans = trace.spans || [];
  const t0 = new Date(trace.start_time).getTime();
  const total = Math.max(1, new Date(trace.end_time).getTime() - t0);
  const detail = h("div", { id: "span-detail" });
  const rows = flatten(spans).map(({ span, depth }) => {
    const start = span.start_time ? new Date(span.start_time).getTime() - t0 : 0;
    const length = span.duration_ms ?? 0;
    const row = h("tr", { class: "span-row", dataset: { spanId: span.id }, onclick: () => {
      for (const other of row.parentNode.children) other.classList.toggle("selected", other === row);
      replace(detail, spanDetail(span));
    } },
      h("td", { class: "span-name", style: `padding-left:${12 + depth * 20}px` },
        depth ? h("span", { class: "tree-elbow" }, "└ ") : null,
        h("span", { class: `type type-${span.type || "span"}` }, span.type || "span"), " ", span.name,
        span.type !== "generation" && span.data?.model ? h("span", { class: "sub-inline mono" }, span.data.model) : null),
      h("td", { class: "num" }, duration(length)),
      h("td", { class: "num" }, span.data?.total_tokens ? tokens(span.data.total_tokens) : ""),
      h("td", { class: "timeline-cell wide" }, timingBar(start / total, length / total, span.error ? "error" : span.type === "generation" ? "gen" : "ok")));
    return row;
  });
  replace(root,
    pageHeader([h("a", { href: "#/traces", class: "crumb" }, "Traces"), " / ", trace.name || trace.id], badge(trace.status)),
    facts([
      ["Trace", h("code", {}, trace.id)],
      ["Started", time(trace.start_time)],
      ["Duration", duration(trace.duration_ms)],
      ["Spans", spans.length],
      ["Tokens", tokens(trace.total_tokens)],
    ]),
    h("section", { class: "card card-flush" }, h("table", { class: "table table-clickable", id: "trace-tree" },
      thead(["Span", "Duration #", "Tokens #", `Timeline (${duration(total)})`]),
      h("tbody", {}, rows))),
    detail);
  if (rows.length) rows[0].click();
}

function spanDetail(span) {
  const data = span.data || {};
  return section(`Span: ${span.name}`,
    facts([
      ["Type", span.type || "—"],
      ["Model", data.model || "—"],
      ["Start", time(span.start_time)],
      ["Duration", duration(span.duration_ms)],
      ["Tokens", data.total_tokens ? tokens(data.total_tokens) : "—"],
      ["Tags", (data.tags || []).join(", ") || "—"],
      span.meta?.job_id ? ["Job", h("a", { href: `#/jobs/${span.meta.job_id}` }, span.meta.job_id)] : null,
    ]),
    span.error ? h("div", { class: "error-box" }, span.error) : null,
    h("div", { class: "grid-2" }, h("div", {}, h("h3", {}, "Input"), codeBlock(data.input)), h("div", {}, h("h3", {}, "Output"), codeBlock(data.output))));
}
