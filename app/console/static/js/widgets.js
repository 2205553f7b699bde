// Pieces shared by the views: page headers, fact grids, sections, progress and timing bars.
import { h } from "./dom.js";

export function pageHeader(title, ...extra) {
  return h("header", { class: "page-header" }, h("h1", {}, title), h("div", { class: "page-header-extra" }, extra));
}

export function section(title, ...children) {
  return h("section", { class: "card" }, h("h2", {}, title), children);
}

export function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.filter(Boolean).map(([label, value]) => h("div", { class: "fact" }, h("dt", {}, label), h("dd", {}, value))));
}

export function emptyRow(columns, text) {
  return h("tr", {}, h("td", { colspan: columns, class: "empty" }, text));
}

/** A bar from `offset` to `offset + width` (fractions of the row), at least a sliver wide. */
export function timingBar(offset, width, kind = "ok") {
  const left = Math.min(100, Math.max(0, offset * 100));
  const size = Math.max(0.8, Math.min(100 - left, width * 100));
  return h("div", { class: "timing" }, h("div", { class: `timing-bar timing-${kind}`, style: `left:${left}%;width:${size}%` }));
}

/** A stacked bar of a batch's item counts. */
export function progressBar(counts, large = false) {
  const total = Math.max(1, counts.total);
  const parts = ["succeeded", "failed", "cancelled", "running"].map((state) =>
    h("div", { class: `progress-${state}`, style: `width:${(100 * counts[state]) / total}%`, title: `${counts[state]} ${state}` }));
  return h("div", { class: `progress${large ? " progress-large" : ""}` }, parts);
}

export function stat(label, value, sub) {
  return h("div", { class: "stat" }, h("div", { class: "stat-label" }, label), h("div", { class: "stat-value" }, value), sub ? h("div", { class: "stat-sub" }, sub) : null);
}

/** A table head; a label ending in " #" is a numeric (right-aligned) column. */
export function thead(labels) {
  return h("thead", {}, h("tr", {}, labels.map((label) => (label.endsWith(" #") ? h("th", { class: "num" }, label.slice(0, -2)) : h("th", {}, label)))));
}

/** "1–50 of 448" with links to the newer and older pages (the offset kept in the address). */
export function pager(path, params, offset, limit, total) {
  const link = (to, label) => {
    const search = new URLSearchParams(params);
    if (to > 0) search.set("offset", String(to));
    else search.delete("offset");
    const text = search.toString();
    return h("a", { class: "btn", href: `#/${path}${text ? `?${text}` : ""}` }, label);
  };
  const shown = total ? `${(offset + 1).toLocaleString()}–${Math.min(offset + limit, total).toLocaleString()} of ${total.toLocaleString()}` : "";
  return h("div", { class: "pager" }, h("span", { class: "muted" }, shown),
    offset > 0 ? link(Math.max(0, offset - limit), "← Newer") : null,
    offset + limit < total ? link(offset + limit, "Older →") : null);
}
