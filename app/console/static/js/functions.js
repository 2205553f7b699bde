// Functions: the project's functions, and one function with its revisions and dataset entries.
import { h, replace } from "./dom.js";
import { codeBlock, pretty, shortId, time } from "./format.js";
import { emptyRow, facts, pageHeader, section, thead } from "./widgets.js";

function modelText(model) {
  if (!model) return "default";
  if (typeof model === "string") return model;
  if (Array.isArray(model)) return model.map(modelText).join(" → ");
  return model.name || JSON.stringify(model);
}

export async function functionsView(ctx) {
  const { api, root } = ctx;
  const page = await api.get("/functions", { limit: 100 });
  if (!ctx.alive()) return;
  replace(root,
    pageHeader("Functions", h("span", { class: "muted" }, `${page.meta.total_count.toLocaleString()} function${page.meta.total_count === 1 ? "" : "s"}`)),
    h("div", { class: "card card-flush" }, h("table", { class: "table table-clickable", id: "functions-table" },
      thead(["Name", "Model", "Instructions", "Revision"]),
      h("tbody", {}, page.data.length ? page.data.map((fn) => h("tr", { class: "function-row", onclick: () => ctx.navigate(`#/functions/${fn.id}`) },
        h("td", {}, h("a", { href: `#/functions/${fn.id}` }, fn.name)),
        h("td", { class: "mono" }, modelText(fn.model)),
        h("td", { class: "truncate" }, fn.instructions || fn.description || "—"),
        h("td", { class: "mono" }, shortId(fn.revision_id)))) : emptyRow(4, "No functions yet.")))));
}

export async function functionView(ctx) {
  const { api, root, args } = ctx;
  const fn = await api.get(`/functions/${args[0]}`);
  const [revisions, entries] = await Promise.all([
    api.get(`/functions/${fn.id}/revisions`, { limit: 10 }),
    fn.dataset_id ? api.get(`/datasets/${fn.dataset_id}/entries`, { limit: 50 }) : Promise.resolve({ meta: { total_count: 0 }, data: [] }),
  ]);
  if (!ctx.alive()) return;
  replace(root,
    pageHeader([h("a", { href: "#/functions", class: "crumb" }, "Functions"), " / ", fn.name],
      h("a", { class: "btn", href: `#/jobs?name=${encodeURIComponent(fn.name)}` }, "Its jobs")),
    facts([
      ["Function", h("code", {}, fn.id)],
      ["Model", modelText(fn.model)],
      ["Revision", h("code", {}, fn.revision_id || "—")],
      ["Dataset", fn.dataset_id ? h("code", {}, fn.dataset_id) : "—"],
      ["Observer", fn.observer_enabled ? "on" : "off"],
    ]),
    h("div", { class: "grid-2" },
      section("Instructions", h("p", { class: "prose" }, fn.instructions || "—")),
      section(`Revisions (${revisions.meta.total_count})`, h("table", { class: "table", id: "revisions-table" },
      thead(["Revision", "Created", "Configuration"]),
      h("tbody", {}, revisions.data.length ? revisions.data.map((rev) => h("tr", {},
        h("td", { class: "mono" }, rev.id === fn.revision_id ? [shortId(rev.id), " ", h("span", { class: "tag" }, "latest")] : shortId(rev.id)),
        h("td", {}, time(rev.created_at)),
        h("td", { class: "mono truncate" }, Object.keys(rev.configuration).length ? JSON.stringify(rev.configuration) : "—"))) : emptyRow(3, "No revisions."))))),
    section(`Dataset entries (${entries.meta.total_count})`, h("table", { class: "table", id: "entries-table" },
      thead(["Input", "Output", "Expected", "Comment"]),
      h("tbody", {}, entries.data.length ? entries.data.map((entry) => h("tr", {},
        h("td", {}, h("pre", { class: "code code-small" }, pretty(entry.input))),
        h("td", {}, h("pre", { class: "code code-small" }, pretty(entry.output))),
        h("td", {}, entry.expected ? h("pre", { class: "code code-small" }, pretty(entry.expected)) : "—"),
        h("td", {}, entry.comment || "—"))) : emptyRow(4, "No entries: feedback or saved examples add them.")))),
    h("div", { class: "grid-2" }, section("Input schema", codeBlock(fn.input_schema, "none")), section("Output schema", codeBlock(fn.output_schema, "none"))));
}
