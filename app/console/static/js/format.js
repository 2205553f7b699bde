// Formatting of times, durations, money, token counts, statuses and JSON for display.
import { h } from "./dom.js";

export function time(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

/** A moment as a clock time today, with the date on other days. */
export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  const clock = d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  if (d.toDateString() === new Date().toDateString()) return clock;
  return `${d.toLocaleDateString(undefined, { month: "short", day: "numeric" })}, ${clock}`;
}

export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${Math.round(s % 60)}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}

export function between(startIso, endIso) {
  if (!startIso || !endIso) return null;
  return new Date(endIso).getTime() - new Date(startIso).getTime();
}

export function usd(amount) {
  const value = Number(amount || 0);
  if (value === 0) return "$0";
  if (value < 0.01) return `$${value.toFixed(6).replace(/0+$/, "")}`;
  return `$${value.toFixed(value < 10 ? 4 : 2)}`;
}

export function tokens(count) {
  if (count === null || count === undefined) return "—";
  return Number(count).toLocaleString();
}

export function shortId(id) {
  return id ? String(id).slice(0, 8) : "—";
}

export function badge(status) {
  return h("span", { class: `badge badge-${status || "unknown"}` }, status || "unknown");
}

export function pretty(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") {
    try {
      return JSON.stringify(JSON.parse(value), null, 2);
    } catch {
      return value;
    }
  }
  return JSON.stringify(value, null, 2);
}

export function codeBlock(value, empty = "—") {
  const text = pretty(value);
  return h("pre", { class: "code" }, text === "" ? empty : text);
}

export const FINAL_JOB = new Set(["succeeded", "failed", "cancelled"]);
export const FINAL_BATCH = new Set(["completed", "cancelled", "failed"]);
