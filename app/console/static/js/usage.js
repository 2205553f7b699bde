// Usage and cost over time, by model, from /v2/analytics/usage.
import { stackedBars } from "./chart.js";
import { changed, h, replace } from "./dom.js";
import { tokens, usd } from "./format.js";
import { pageHeader, section, stat } from "./widgets.js";

const RANGES = {
  "1h": { label: "Last hour", ms: 3600e3, granularity: "minute" },
  "24h": { label: "Last 24 hours", ms: 86400e3, granularity: "hour" },
  "7d": { label: "Last 7 days", ms: 7 * 86400e3, granularity: "day" },
  "30d": { label: "Last 30 days", ms: 30 * 86400e3, granularity: "day" },
};
const MAX_SERIES = 6;

function floorTo(ms, granularity) {
  const d = new Date(ms);
  d.setUTCSeconds(0, 0);
  if (granularity !== "minute") d.setUTCMinutes(0);
  if (granularity === "day") d.setUTCHours(0);
  return d.getTime();
}

function step(granularity) {
  return { minute: 60e3, hour: 3600e3, day: 86400e3 }[granularity];
}

function bucketLabel(ms, granularity) {
  const d = new Date(ms);
  if (granularity === "day") return d.toLocaleDateString(undefined, { month: "short", day: "numeric" });
  return d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}

/** Model names, most expensive (then most tokens) first, the tail folded into "other models". */
function rankModels(items) {
  const totals = new Map();
  for (const item of items) {
    const name = item.model || "other";
    const [cost, count] = totals.get(name) || [0, 0];
    totals.set(name, [cost + Number(item.cost || 0), count + Number(item.total_tokens || 0)]);
  }
  const ranked = [...totals.entries()].sort((a, b) => b[1][0] - a[1][0] || b[1][1] - a[1][1]).map(([name]) => name);
  if (ranked.length <= MAX_SERIES) return { names: ranked, shown: new Set(ranked), count: ranked.length };
  const shown = new Set(ranked.slice(0, MAX_SERIES - 1));
  return { names: [...shown, "other models"], shown, count: ranked.length };
}

/** Every bucket of the range (empty ones too, so time reads evenly), each with `metric` by model. */
function series(items, range, models, metric) {
  const size = step(range.granularity);
  const end = floorTo(Date.now(), range.granularity);
  const start = floorTo(Date.now() - range.ms, range.granularity) + size;
  const buckets = new Map();
  for (let t = start; t <= end; t += size) buckets.set(t, { label: bucketLabel(t, range.granularity), title: new Date(t).toLocaleString(), values: {} });
  for (const item of items) {
    const bucket = buckets.get(new Date(item.time_bucket).getTime());
    if (!bucket) continue;
    const name = models.shown.has(item.model || "other") ? item.model || "other" : "other models";
    bucket.values[name] = (bucket.values[name] || 0) + metric(item);
  }
  return [...buckets.values()];
}

export async function usageView(ctx) {
  const { api, root, params } = ctx;
  const chosen = RANGES[params.get("range")] ? params.get("range") : "24h";
  const range = RANGES[chosen];
  const holder = h("div", { id: "usage" });
  replace(root,
    pageHeader("Usage & cost", h("div", { class: "segmented", id: "usage-range" }, Object.entries(RANGES).map(([keyName, r]) =>
      h("a", { href: `#/usage?range=${keyName}`, class: keyName === chosen ? "active" : "" }, r.label)))),
    holder);
  const refresh = async () => {
    const now = Date.now();
    const items = await api.get("/analytics/usage", {
      from_date: new Date(floorTo(now - range.ms, range.granularity)).toISOString(),
      to_date: new Date(now + 60e3).toISOString(),
      granularity: range.granularity,
      fields: ["input_tokens", "output_tokens", "total_tokens"],
      group_by: "model",
    });
    if (!ctx.alive()) return false;
    if (!changed(holder, items)) return true;
    const cost = (item) => Number(item.cost || 0);
    const total = (item) => Number(item.total_tokens || 0);
    const sum = (fn) => items.reduce((acc, item) => acc + fn(item), 0);
    const models = rankModels(items);
    replace(holder,
      h("div", { class: "stats" },
        stat("Cost", usd(sum(cost)), range.label.toLowerCase()),
        stat("Tokens", tokens(sum(total)), `${tokens(sum((i) => Number(i.input_tokens || 0)))} in / ${tokens(sum((i) => Number(i.output_tokens || 0)))} out`),
        stat("Models", models.count)),
      section("Cost (USD)", stackedBars({ id: "cost-chart", buckets: series(items, range, models, cost), series: models.names, format: (v) => usd(v) })),
      section("Tokens", stackedBars({ id: "tokens-chart", buckets: series(items, range, models, total), series: models.names, format: (v) => tokens(Math.round(v)), height: 200 })));
    return true;
  };
  await refresh();
  ctx.live(refresh);
}
