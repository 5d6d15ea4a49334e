// Where the dashboard is: `#/{area}/{view}?range=…&{dimension}=…`, so every view, filter and
// range is a link (back/forward, bookmarks, shared URLs), and what a drill-down adds is undone
// by its breadcrumb.

export type Area = "overview" | "web" | "business" | "health" | "ml" | "explore";

export interface Route {
  area: Area;
  view: string;
  /** range, start, end, interval, compare, metric, group_by and dimension filters. */
  params: Record<string, string>;
}

/** Views of each area, in menu order, and the role each area needs. */
export const AREAS: { area: Area; label: string; role: "viewer" | "analyst" | "admin"; views: string[] }[] = [
  { area: "overview", label: "Overview", role: "viewer", views: ["overview"] },
  { area: "web", label: "Web analytics", role: "viewer", views: ["overview", "pages", "sources", "devices", "countries", "funnel"] },
  { area: "business", label: "Business", role: "analyst", views: ["overview", "sales", "products", "collections", "funnel"] },
  { area: "health", label: "System health", role: "admin", views: ["overview", "api", "timeseries"] },
  { area: "ml", label: "ML pipelines", role: "admin", views: ["overview", "providers"] },
  { area: "explore", label: "Explore", role: "viewer", views: ["query"] },
];

/** Parameters that are not dimension filters. */
export const CONTROL = new Set(["range", "start", "end", "interval", "compare", "metric", "group_by", "limit", "aggregation"]);

export function parseRoute(hash: string): Route {
  const [path, query = ""] = hash.replace(/^#/, "").split("?");
  const [areaText = "", viewText = ""] = path.split("/").filter(Boolean);
  const known = AREAS.find((a) => a.area === areaText);
  const area: Area = known ? known.area : "overview";
  const views = (known ?? AREAS[0]).views;
  const view = views.includes(viewText) ? viewText : views[0];
  const params: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(query)) params[k] = v;
  return { area, view, params };
}

export function routeHash(r: Route): string {
  const q = new URLSearchParams(Object.entries(r.params).filter(([, v]) => v !== "")).toString();
  return `#/${r.area}/${r.view}${q ? `?${q}` : ""}`;
}

/** The time of a route (its range or custom span, and the comparison), which every area keeps. */
export function timeParams(r: Route): Record<string, string> {
  return Object.fromEntries(Object.entries(r.params).filter(([k]) => ["range", "start", "end", "compare"].includes(k)));
}

/** The dimension filters of a route. */
export function filters(r: Route): Record<string, string> {
  return Object.fromEntries(Object.entries(r.params).filter(([k]) => !CONTROL.has(k)));
}

export interface Crumb {
  label: string;
  hash: string;
}

/**
 * The trail back from a route: its area and view, then what drill-downs added in URL order (a
 * metric, a grouping, each filter, a narrowed time range), each crumb dropping what follows it.
 */
export function breadcrumbs(r: Route): Crumb[] {
  const area = AREAS.find((a) => a.area === r.area) ?? AREAS[0];
  const base: Record<string, string> = {};
  for (const k of ["range", "compare"]) if (r.params[k]) base[k] = r.params[k];
  const crumbs: Crumb[] = [{ label: area.label, hash: routeHash({ area: r.area, view: area.views[0], params: base }) }];
  if (r.view !== area.views[0]) crumbs.push({ label: r.view, hash: routeHash({ ...r, params: base }) });
  const acc: Record<string, string> = { ...base };
  const add = (label: string) => crumbs.push({ label, hash: routeHash({ ...r, params: { ...acc } }) });
  for (const [k, v] of Object.entries(r.params)) {
    if (k === "start") {
      acc.start = v;
      if (r.params.end) acc.end = r.params.end;
      if (r.params.interval) acc.interval = r.params.interval;
      add(`from ${new Date(v).toISOString().replace("T", " ").slice(0, 16)} UTC`);
    } else if (k === "metric" || k === "group_by") {
      acc[k] = v;
      add(k === "metric" ? v : `by ${v}`);
    } else if (!CONTROL.has(k)) {
      acc[k] = v;
      add(`${k} = ${v}`);
    }
  }
  return crumbs;
}

/** Where a click on a row of `area/view` leads: the view it filters, or Explore for a page. */
export function drillTarget(r: Route, dimension: string, value: string): Route {
  const keep = timeParams(r);
  const params = { ...keep, ...filters(r), [dimension]: value };
  const to = (area: Route["area"], view: string): Route => ({ area, view, params });
  switch (`${r.area}/${r.view}`) {
    case "web/pages":
      return { area: "explore", view: "query", params: { ...keep, metric: "web.pages", path: value } };
    case "business/products":
    case "business/collections":
      return to("business", "sales");
    case "health/api":
      return to("health", "timeseries");
    case "ml/providers":
      return to("ml", "overview");
    default:
      return to(r.area, "overview");
  }
}

/** The aggregations Explore offers; the chosen one is charted. */
export const AGGREGATIONS = ["count", "sum", "avg", "min", "max", "p50", "p95", "p99", "uniques"];

/**
 * The metric query Explore sends for its route parameters: the chosen aggregation first (the
 * API charts each point's first aggregation as `value`), then count, sum, avg and p95 for the
 * table, each once. A filter value `!x` means "not x", as in the views (`service=!pulse`).
 */
/**
 * The series a prediction can forecast for Explore's filters (`GET /api/v1/predictions/{metric}`'s
 * `series`: `tag=value` pairs in tag order); "" for no filter (the metric's total), null when a
 * filter is not an equality a selector can say (a `!` negation, a value holding a comma).
 */
export function seriesOf(filters: Record<string, string>): string | null {
  const pairs = Object.entries(filters).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  if (pairs.some(([, v]) => !v || v.startsWith("!") || v.includes(","))) return null;
  return pairs.map(([k, v]) => `${k}=${v}`).join(",");
}

export function exploreBody(p: Record<string, string>, filters: Record<string, string>, range: string, compare: boolean): Record<string, unknown> {
  const chosen = AGGREGATIONS.includes(p.aggregation ?? "") ? (p.aggregation as string) : "count";
  const aggregations = [chosen, ...["count", "sum", "avg", "p95", "uniques"].filter((a) => a !== chosen)];
  return {
    metric_name: p.metric ?? "page_view",
    time_range: p.start ? { start: p.start, end: p.end } : range,
    aggregations,
    filters: Object.fromEntries(Object.entries(filters).map(([k, v]) => [k, v.startsWith("!") ? { neq: v.slice(1) } : v])),
    ...(p.group_by ? { group_by: p.group_by.split(",") } : {}),
    ...(p.interval ? { interval: p.interval } : {}),
    ...(compare ? { compare_to: "previous_period" } : {}),
  };
}
