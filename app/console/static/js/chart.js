// A stacked bar chart drawn as SVG: one bar per time bucket, one colour per series.
import { h, svg } from "./dom.js";

export const PALETTE = ["#4f46e5", "#0ea5e9", "#10b981", "#f59e0b", "#ef4444", "#8b5cf6", "#64748b"];

function niceMax(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

/**
 * buckets: [{label, title, values: {series: number}}]; series: names in stacking order;
 * format: how an axis value is written.
 */
export function stackedBars({ id, buckets, series, format, height = 240 }) {
  const width = 880;
  const pad = { top: 12, right: 12, bottom: 28, left: 64 };
  const innerW = width - pad.left - pad.right;
  const innerH = height - pad.top - pad.bottom;
  const totals = buckets.map((b) => series.reduce((sum, s) => sum + (b.values[s] || 0), 0));
  const max = niceMax(Math.max(0, ...totals));
  const y = (v) => pad.top + innerH - (v / max) * innerH;
  const slot = innerW / Math.max(1, buckets.length);
  const barW = Math.max(2, Math.min(48, slot * 0.7));
  const grid = [0, 0.25, 0.5, 0.75, 1].map((f) => [
    svg("line", { x1: pad.left, x2: width - pad.right, y1: y(max * f), y2: y(max * f), class: "grid-line" }),
    svg("text", { x: pad.left - 8, y: y(max * f) + 4, class: "axis-label", "text-anchor": "end" }, format(max * f)),
  ]);
  const every = Math.max(1, Math.ceil(buckets.length / 12));
  const bars = buckets.map((bucket, i) => {
    const x = pad.left + i * slot + (slot - barW) / 2;
    let base = 0;
    const rects = series.map((name, k) => {
      const value = bucket.values[name] || 0;
      if (!value) return null;
      const rect = svg("rect", { x, width: barW, y: y(base + value), height: Math.max(1, y(base) - y(base + value)), fill: PALETTE[k % PALETTE.length], rx: 2 },
        svg("title", {}, `${bucket.title}\n${name}: ${format(value)}`));
      base += value;
      return rect;
    });
    const label = i % every === 0 ? svg("text", { x: x + barW / 2, y: height - 8, class: "axis-label", "text-anchor": "middle" }, bucket.label) : null;
    return svg("g", { class: "bar" }, rects, label);
  });
  const chart = svg("svg", { id, class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", preserveAspectRatio: "xMidYMid meet" }, grid, bars);
  const legend = h("div", { class: "legend" }, series.map((name, k) => h("span", { class: "legend-item" }, h("i", { style: `background:${PALETTE[k % PALETTE.length]}` }), name)));
  return h("div", { class: "chart-wrap" }, chart, series.length > 1 ? legend : null);
}
