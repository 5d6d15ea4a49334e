// Data shaping between the API's answers and what the dashboard shows: number formats, deltas,
// tables, CSV, the hour-of-day × weekday heatmap, and merging a live query update into the
// points already shown. Pure functions, unit-tested in test/shape.test.ts.

export interface Card {
  id: string;
  label: string;
  unit: string;
  value: number | null;
  previous: number | null;
  change: number | null;
  sparkline: (number | null)[];
}

export interface Figure {
  value: number | null;
  previous?: number | null;
  previous_period?: number | null;
  change: number | null;
}

export interface ViewRange {
  start: string;
  end: string;
  interval?: string;
}

/** A row of a table: column name → value. */
export type Row = Record<string, string | number | null>;

const compact = new Intl.NumberFormat("en", { notation: "compact", maximumFractionDigits: 1 });
const plain = new Intl.NumberFormat("en", { maximumFractionDigits: 2 });
// Percentages as Plausible and Grafana show them: one decimal at most, whole numbers for a
// change of 10 % or more (a reader compares "+12%" with "−3.4%", not their hundredths).
const percent = new Intl.NumberFormat("en", { maximumFractionDigits: 1 });
const wholePercent = new Intl.NumberFormat("en", { maximumFractionDigits: 0 });

let money = new Intl.NumberFormat("en", { maximumFractionDigits: 2, minimumFractionDigits: 2 });

/**
 * The tenant's currency (`GET /api/v1/settings`): money is shown in it (`€1,234.50`), or as a
 * plain number with two decimals when the tenant has none (or the code is unknown here).
 */
export function setCurrency(code: string | null | undefined) {
  try {
    money = code
      ? new Intl.NumberFormat("en", { style: "currency", currency: code })
      : new Intl.NumberFormat("en", { maximumFractionDigits: 2, minimumFractionDigits: 2 });
  } catch {
    money = new Intl.NumberFormat("en", { maximumFractionDigits: 2, minimumFractionDigits: 2 });
  }
}

/** A value in its unit: `12.3k`, `4.5%`, `1m 05s`, `€1,234.50`, `230 ms`. */
export function formatValue(value: number | null | undefined, unit = ""): string {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  switch (unit) {
    case "ratio":
    case "percent":
      return `${percent.format(value * 100)}%`;
    case "seconds": {
      const s = Math.round(value);
      if (s < 60) return `${s}s`;
      const m = Math.floor(s / 60);
      if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
      return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
    }
    case "ms":
      return `${plain.format(value)} ms`;
    case "currency":
      return money.format(value);
    default:
      return Math.abs(value) >= 10_000 ? compact.format(value) : plain.format(value);
  }
}

/** The change as shown: `+12%`, `−3.4%`, or nothing when there is no previous value. */
export function formatChange(change: number | null | undefined): string {
  if (change === null || change === undefined || !Number.isFinite(change)) return "";
  const pct = change * 100;
  const text = (Math.abs(pct) >= 10 ? wholePercent : percent).format(Math.abs(pct));
  return `${pct > 0 ? "+" : pct < 0 ? "−" : "±"}${text}%`;
}

/** Whether a change is good news: more is better, except for rates of failure, bounces and latency. */
export function changeTone(id: string, change: number | null | undefined): "up" | "down" | "flat" {
  if (!change) return "flat";
  const lowerIsBetter = /error|bounce|latency|failed|p95|duration_ms|cost/.test(id);
  return (change > 0) !== lowerIsBetter ? "up" : "down";
}

/** The unit a figure is shown in, from its name. */
export function unitOf(name: string): string {
  if (/rate$|_rate|conversion/.test(name)) return "ratio";
  if (/duration$|_seconds$/.test(name)) return "seconds";
  if (/_ms$|latency/.test(name)) return "ms";
  if (/revenue|order_value|cost/.test(name)) return "currency";
  return "";
}

/** `visit_duration` → `Visit duration`. */
export function label(name: string): string {
  // One spelling, Plausible's: "Pageviews" (the API says pageviews, page_view, page_views_today).
  const text = name
    .replace(/[_.]/g, " ")
    .replace(/\bp(\d\d)\b/, "p$1")
    .replace(/\bpage ?views?\b/i, "pageviews")
    .trim();
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** What a source of "(none)" (no referrer, no UTM source) reads as, Plausible's wording. */
export const DIRECT = "Direct / None";

/** A dimension value as shown; `stored` maps it back for a filter. */
export function shownValue(dimension: string, value: string): string {
  return dimension === "source" && value === "(none)" ? DIRECT : value;
}

/** The stored value behind a shown one (a click on "Direct / None" filters on "(none)"). */
export function stored(dimension: string, shown: string): string {
  return dimension === "source" && shown === DIRECT ? "(none)" : shown;
}

/**
 * A CSV field, quoted when it holds a comma, quote or line break (RFC 4180). Text a spreadsheet
 * would run as a formula (starting with =, +, -, @, tab or CR: a page path or an event name from
 * a public beacon) is prefixed with ' so it stays text (OWASP's CSV injection advice); numbers
 * stay numbers.
 */
function csvField(v: unknown): string {
  if (v === null || v === undefined) return "";
  let s = typeof v === "object" ? JSON.stringify(v) : String(v);
  if (typeof v === "string" && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Rows as CSV with a header of every column in first-seen order; CRLF line ends (RFC 4180). */
export function toCsv(rows: Row[]): string {
  const columns: string[] = [];
  for (const r of rows) for (const k of Object.keys(r)) if (!columns.includes(k)) columns.push(k);
  const lines = [columns.map(csvField).join(",")];
  for (const r of rows) lines.push(columns.map((c) => csvField(r[c])).join(","));
  return lines.join("\r\n") + "\r\n";
}

/** A view's figures (`metrics`) as rows: name, value, previous, change. */
export function figureRows(metrics: Record<string, Figure>): Row[] {
  return Object.entries(metrics).map(([name, f]) => ({
    metric: name,
    value: f.value,
    previous: f.previous ?? f.previous_period ?? null,
    change: f.change,
  }));
}

/** The data behind a view as table rows: its breakdown rows, timeseries, steps or figures. */
export function viewRows(view: Record<string, unknown>): Row[] {
  const dim = typeof view["dimension"] === "string" ? (view["dimension"] as string) : null;
  for (const key of ["rows", "steps", "timeseries", "pages", "currencies"]) {
    const v = view[key];
    if (Array.isArray(v) && v.length > 0) {
      // A breakdown's dimension is its first column, the figures follow.
      if (key === "rows" && dim) return (v as Row[]).map((r) => ({ [dim]: r[dim] ?? null, ...r }));
      // Funnel steps lead with the step.
      if (key === "steps") return (v as Row[]).map((r) => ({ step: r["step"] ?? null, ...r }));
      // A time series leads with its timestamp.
      if (key === "timeseries") return (v as Row[]).map((r) => ({ timestamp: r["timestamp"] ?? null, ...r }));
      return v as Row[];
    }
  }
  const metrics = view["metrics"];
  if (metrics && typeof metrics === "object") return figureRows(metrics as Record<string, Figure>);
  const points = view["data"];
  if (Array.isArray(points)) {
    // A metrics-query answer: one row per point, its tags and every aggregation as columns.
    return (points as (QueryPoint & { values?: Record<string, number | null> })[]).map((p) => ({
      timestamp: p.timestamp,
      ...p.tags,
      ...(p.values ?? { value: p.value }),
    }));
  }
  return [];
}

const WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/**
 * Hourly points summed into a 7 × 24 grid (UTC weekday × hour of day), as ECharts heatmap data
 * `[hour, weekday, value]`, and the largest cell for the colour scale.
 */
export function heatmap(
  points: { timestamp: string; value: number | null }[],
): { cells: [number, number, number][]; max: number; days: string[] } {
  const grid = new Map<string, number>();
  for (const p of points) {
    if (p.value === null) continue;
    const t = new Date(p.timestamp);
    const day = (t.getUTCDay() + 6) % 7;
    const key = `${t.getUTCHours()},${day}`;
    grid.set(key, (grid.get(key) ?? 0) + p.value);
  }
  const cells: [number, number, number][] = [];
  let max = 0;
  for (const [key, value] of grid) {
    const [h, d] = key.split(",").map(Number);
    cells.push([h, d, value]);
    max = Math.max(max, value);
  }
  cells.sort((a, b) => a[1] - b[1] || a[0] - b[0]);
  return { cells, max, days: WEEKDAYS };
}

/** A metrics-query point. */
export interface QueryPoint {
  timestamp: string;
  value: number | null;
  tags: Record<string, string>;
}

/**
 * A live query update merged into the points shown: points from `since` on are replaced by the
 * update's, points before `start` (the moving range's start) dropped; ordered by tags and time.
 */
export function mergeSince(
  shown: QueryPoint[],
  update: QueryPoint[],
  since: string,
  start: string,
): QueryPoint[] {
  const s = Date.parse(since);
  const from = Date.parse(start);
  const kept = shown.filter((p) => {
    const t = Date.parse(p.timestamp);
    return t >= from && t < s;
  });
  const all = kept.concat(update);
  const key = (p: QueryPoint) => JSON.stringify(Object.entries(p.tags).sort());
  return all.sort((a, b) => key(a).localeCompare(key(b)) || Date.parse(a.timestamp) - Date.parse(b.timestamp));
}

/**
 * A count series with every step of `[start, end)` present: a minute without events is 0, so a
 * per-minute chart is a line, not dots where traffic happened. Untagged points only (a count's
 * total); nothing is filled when there are no points at all (the empty state says so instead).
 */
export function fillSteps(points: QueryPoint[], start: string, end: string, stepMs: number): QueryPoint[] {
  const from = Date.parse(start);
  const to = Date.parse(end);
  if (points.length === 0 || !Number.isFinite(from) || !Number.isFinite(to) || stepMs <= 0) return points;
  if (points.some((p) => Object.keys(p.tags).length > 0)) return points;
  const byTime = new Map(points.map((p) => [Date.parse(p.timestamp), p]));
  const out: QueryPoint[] = [];
  for (let t = Math.ceil(from / stepMs) * stepMs; t < to; t += stepMs) {
    out.push(byTime.get(t) ?? { timestamp: new Date(t).toISOString().replace(".000Z", "Z"), value: 0, tags: {} });
  }
  return out;
}

/** Series for a line chart: one per group of tags, each `[time ms, value]` in time order. */
export function seriesByTags(points: QueryPoint[]): { name: string; data: [number, number | null][] }[] {
  const groups = new Map<string, [number, number | null][]>();
  for (const p of points) {
    const name = Object.values(p.tags).join(" · ") || "total";
    const list = groups.get(name) ?? [];
    list.push([Date.parse(p.timestamp), p.value]);
    groups.set(name, list);
  }
  return [...groups].map(([name, data]) => ({ name, data: data.sort((a, b) => a[0] - b[0]) }));
}

/**
 * The range a click at `timestamp` on a time series drills into: the interval holding it (UTC
 * aligned; a week starts on Monday).
 */
export function pointRange(timestamp: string | number, interval: string | undefined): { start: string; end: string } {
  const at = typeof timestamp === "number" ? timestamp : Date.parse(timestamp);
  const len = intervalMs(interval);
  // 1970-01-01 was a Thursday: weeks start on Mondays, four days later.
  const offset = interval === "1w" ? 4 * 86_400_000 : 0;
  const start = Math.floor((at - offset) / len) * len + offset;
  return { start: new Date(start).toISOString(), end: new Date(start + len).toISOString() };
}

/** The length of an interval (`1m` … `1w`) in ms; an hour when unknown. */
export function intervalMs(interval: string | undefined): number {
  const secs: Record<string, number> = { "1m": 60, "5m": 300, "1h": 3600, "1d": 86_400, "1w": 604_800 };
  return (secs[interval ?? "1h"] ?? 3600) * 1000;
}

/**
 * The bucket still filling at `now` (epoch ms) among series points at `interval`: the last
 * point's bucket when it has not ended yet, else null. Its value is a partial count, so a
 * chart greys it rather than drawing the drop as a crash.
 */
export function openBucket(series: { data: [number, number | null][] }[], interval: string | undefined, now: number): { start: number; end: number } | null {
  const last = Math.max(...series.flatMap((s) => s.data.map(([t]) => t)));
  if (!Number.isFinite(last)) return null;
  const end = last + intervalMs(interval);
  return end > now ? { start: last, end } : null;
}

/**
 * A line's legend figures, as Grafana's legend shows them: its last, average and highest value
 * over the points with a value, leaving out the bucket still filling (`before`, epoch ms: its
 * partial value is not the last), in the line's unit: `last 12 · avg 10.5 · max 20`.
 */
export function legendStats(data: [number, number | null][], unit?: string, before = Infinity): string {
  const values = data.filter(([t, v]) => t < before && v !== null && Number.isFinite(v)).map(([, v]) => v as number);
  if (!values.length) return "";
  const avg = values.reduce((a, b) => a + b, 0) / values.length;
  const f = (v: number) => formatValue(v, unit);
  return `last ${f(values[values.length - 1])} · avg ${f(avg)} · max ${f(Math.max(...values))}`;
}

/** An anomaly as `GET /api/v1/anomalies` reports it. */
export interface Anomaly {
  timestamp: string;
  value: number;
  expected: number;
  low: number;
  high: number;
  severity: string;
  feature: string;
}

/**
 * Chart markers for `anomalies` on `series` (the charted line): each at the anomaly's time, on
 * the line's point for that time (the chart's interval may be finer than the detector's), with
 * a tooltip of actual against expected. An anomaly outside the charted points is left out.
 */
export function anomalyMarkers(anomalies: Anomaly[], series: [number, number | null][]): { coord: [number, number]; text: string; severity: string }[] {
  const fmt = (v: number) => formatValue(Math.round(v * 100) / 100, "");
  return anomalies.flatMap((a) => {
    const t = Date.parse(a.timestamp);
    const at = series.filter(([x, y]) => x <= t && y !== null).at(-1);
    if (!at || t - at[0] > 86_400_000) return [];
    const text = `${a.severity}: ${fmt(a.value)} vs expected ${fmt(a.expected)} (usual ${fmt(Math.max(0, a.low))}–${fmt(a.high)}), ${a.feature.replace("_", " ")}`;
    return [{ coord: [t, at[1] as number] as [number, number], text, severity: a.severity }];
  });
}

/** Of `times` (epoch ms), the one nearest to `t`; `t` itself when there are none. */
export function nearestTime(times: number[], t: number): number {
  let best = t;
  let gap = Infinity;
  for (const x of times) {
    if (Number.isFinite(x) && Math.abs(x - t) < gap) {
      gap = Math.abs(x - t);
      best = x;
    }
  }
  return best;
}

/** One group of a metrics-query answer over its whole range (`summary`). */
export interface SummaryRow {
  tags: Record<string, string>;
  values: Record<string, number | null>;
}

/**
 * Explore's summary table: one row per group (its tags, `by`, then the other aggregations over
 * the whole range), largest `by` first; groups without a value for it go last.
 */
export function summaryRows(summary: SummaryRow[], by: string): Row[] {
  // Columns: the group's tags, the chosen aggregation, then the others.
  const rows: Row[] = summary.map((s) => ({ ...s.tags, [by]: s.values[by] ?? null, ...s.values }));
  const key = (r: Row) => (typeof r[by] === "number" ? (r[by] as number) : -Infinity);
  return rows.sort((a, b) => key(b) - key(a));
}

/** The unit of an aggregation's value for a metric in `unit`: counts and rates have none. */
export function aggregationUnit(aggregation: string, unit: string | null | undefined): string {
  if (["count", "uniques", "rate"].includes(aggregation)) return "";
  return unit ?? "";
}

/** A metric of the catalog (`GET /api/v1/metrics/catalog`). */
export interface CatalogMetric {
  name: string;
  events: number;
  unit: string | null;
  aggregation: string;
  description?: string | null;
  tags: Record<string, { values: string[]; more: boolean }>;
}

/** How the metric picker names a metric: `api_request · 1.2K events · ms · route, status`. */
export function catalogLabel(m: CatalogMetric): string {
  const tags = Object.keys(m.tags);
  return [m.name, `${formatValue(m.events)} events`, m.unit ?? "", tags.length ? `by ${tags.join(", ")}` : ""].filter(Boolean).join(" · ");
}

/** A day of a forecast (`GET /api/v1/predictions/{metric}`). */
export interface PredictionPoint {
  date: string;
  forecast: number;
  lo80: number;
  hi80: number;
  lo95: number;
  hi95: number;
}

/**
 * A forecast as chart series on a time axis (each day at its UTC midnight): the forecast, each
 * interval's lower bound and its width (drawn stacked on the bound, so the band fills between
 * the bounds).
 */
export function forecastBands(points: PredictionPoint[]): Record<"forecast" | "lo80" | "width80" | "lo95" | "width95", [number, number][]> {
  const at = (p: PredictionPoint) => Date.parse(`${p.date}T00:00:00Z`);
  return {
    forecast: points.map((p) => [at(p), p.forecast]),
    lo80: points.map((p) => [at(p), p.lo80]),
    width80: points.map((p) => [at(p), p.hi80 - p.lo80]),
    lo95: points.map((p) => [at(p), p.lo95]),
    width95: points.map((p) => [at(p), p.hi95 - p.lo95]),
  };
}

/** Whether an Explore range spans a week or more (forecasts are daily: shorter ranges skip them). */
export function weekOrMore(range: string, start?: string, end?: string): boolean {
  if (start) return Date.parse(end ?? new Date().toISOString()) - Date.parse(start) >= 7 * 86_400_000;
  const m = /^(\d+)([mhdw])$/.exec(range);
  if (!m) return false;
  const days = Number(m[1]) * { m: 1 / 1440, h: 1 / 24, d: 1, w: 7 }[m[2] as "m" | "h" | "d" | "w"];
  return days >= 7;
}
