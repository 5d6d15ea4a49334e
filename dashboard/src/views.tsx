// The area views (web analytics, business, system health, ML pipelines) and Explore (any
// metric by query): one page that fetches the route's view, shows its figures, charts and
// table, and drills down: a bar or slice adds its dimension as a filter, a point of a time
// series narrows the range to its interval; breadcrumbs undo either.

import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, type Api, type Me } from "./api";
import { Chart, type ChartClick } from "./charts";
import type { Interval, LiveClient } from "./live";
import { AGGREGATIONS, AREAS, breadcrumbs, drillTarget, exploreBody, filters, routeHash, seriesOf, type Route } from "./route";
import { aggregationUnit, anomalyMarkers, catalogLabel, forecastBands, weekOrMore, type PredictionPoint, intervalMs, label, nearestTime, pointRange, seriesByTags, shownValue, stored, summaryRows, unitOf, viewRows, type Anomaly, type CatalogMetric, type QueryPoint, type Row, type SummaryRow } from "./shape";
import { CurrencySetting, FilterChips, GoalsPanel, Retrain, TopList, panelsFrom, topPanels, type GoalsView, type TopPanel } from "./panels";
import { Exports, RangeBar, Table, Tiles, barOption, forecastOption, gaugeOption, lineOption, pieOption, type Series } from "./widgets";

type View = Record<string, unknown>;

/** A forecast as `GET /api/v1/predictions/{metric}` answers it. */
interface Prediction {
  /** The series forecast (its tags, `k=v` in tag order), absent for the metric's total. */
  series?: string;
  model: string;
  trained_at: string;
  version: number;
  history_days: number;
  accuracy: { mase: number | null; accuracy: number | null; coverage80: number | null; coverage95: number | null; cuts: number };
  points: PredictionPoint[];
}

const PIES = new Set(["web/sources", "web/devices"]);

/** The time range a view answered for, shifted back by its own length. */
function previousRange(view: View): { start: string; end: string } | null {
  const range = view.range as { start?: string; end?: string } | undefined;
  if (!range?.start || !range.end) return null;
  const s = Date.parse(range.start);
  const e = Date.parse(range.end);
  return { start: new Date(2 * s - e).toISOString(), end: range.start };
}

/** Columns holding a number in some row (a rate is null where nothing was counted). */
function numericColumns(rows: Row[], skip: string[]): string[] {
  const out: string[] = [];
  for (const r of rows) {
    for (const [k, v] of Object.entries(r)) if (typeof v === "number" && !skip.includes(k) && !out.includes(k)) out.push(k);
  }
  return out;
}

/** The funnel steps typed as `/, /pricing*, signup`: paths start with a slash, others are events. */
function parseSteps(text: string): { path?: string; event?: string }[] {
  return text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => (s.startsWith("/") ? { path: s } : { event: s }));
}

export function ViewPage(props: { api: Api; live: LiveClient; me: Me; route: Route; interval: Interval }) {
  const { api, route } = props;
  const [view, setView] = useState<View | null>(null);
  const [previous, setPrevious] = useState<View | null>(null);
  const [error, setError] = useState("");
  // Which request the shown answer (or error) belongs to: the render right after the hash
  // changes is already "loading", before the effect that fetches has run, so the old answer
  // is never presented under the new route's title.
  const [loadedFor, setLoadedFor] = useState("");
  const [steps, setSteps] = useState("/, /pricing, /signup");
  // Bumped to load the same route again (after a retrain).
  const [reloads, setReloads] = useState(0);
  // Explore's metric picker: what the tenant has, with tags and units (loaded once).
  const [catalog, setCatalog] = useState<CatalogMetric[]>([]);
  const p = route.params;
  const range = p.range ?? (route.area === "explore" ? "24h" : "7d");
  const compare = p.compare === "1";
  const key = `${route.area}/${route.view}`;
  const request = `${location.hash}|${steps}|${reloads}`;
  const loading = loadedFor !== request;

  // Auto-refresh (the header's interval, at least every 5 s): a range ending now is read again
  // in the background, the shown answer replaced without dimming. Explore (forecasts) and
  // funnels reload on request only; a custom range is history.
  const loader = useRef<(() => Promise<[View, View | null]>) | null>(null);
  const shown = useRef({ request, loading });
  shown.current = { request, loading };
  useEffect(() => {
    if (route.area === "explore" || key === "web/funnel" || p.start) return;
    const secs = { "1s": 5, "5s": 5, "30s": 30, "1m": 60 }[props.interval] ?? 30;
    let busy = false;
    const timer = setInterval(() => {
      const at = shown.current;
      if (busy || at.loading || document.hidden || !loader.current) return;
      busy = true;
      loader
        .current()
        .then(
          ([v, prev]) => {
            if (shown.current.request !== at.request) return;
            setView(v);
            setPrevious(prev);
          },
          () => {},
        )
        .finally(() => {
          busy = false;
        });
    }, secs * 1000);
    return () => clearInterval(timer);
  }, [request, props.interval]);

  const go = (params: Record<string, string>) => {
    location.hash = routeHash({ ...route, params });
  };

  useEffect(() => {
    let cancelled = false;
    setError("");
    const time = p.start ? { start: p.start, end: p.end } : { range };
    const load = async (): Promise<[View, View | null]> => {
      if (key === "web/funnel") {
        const body = { steps: parseSteps(steps), time_range: p.start ? { start: p.start, end: p.end } : range };
        return [await api.post<View>("/api/v1/funnels/query", body), null];
      }
      if (route.area === "explore") {
        const body = exploreBody(p, filters(route), range, compare);
        const answer = await api.post<View>("/api/v1/metrics/query", body);
        // A total's count or sum gets the detector's anomalies over the charted range and, over
        // a week or more, the next 7 days' forecast after its last 4 weeks of daily totals; a
        // chart filtered to one series (equalities only) gets that series' forecast.
        const points = (answer.data as QueryPoint[] | undefined) ?? [];
        const aggregation = (body.aggregations as string[])[0];
        const series = seriesOf(filters(route));
        if (!p.group_by && series !== null && ["count", "sum"].includes(aggregation) && points.length) {
          const metric = String(body.metric_name);
          const to = Date.parse(points[points.length - 1].timestamp) + intervalMs(String(answer.resolution));
          // A chart by minute shows what the detectors found as its minutes sealed.
          const byMinute = answer.resolution === "1m" && aggregation === "count" ? { interval: "1m" } : {};
          const anomalies = series
            ? Promise.resolve([])
            : api.get<View>("/api/v1/anomalies", { metric, from: points[0].timestamp, to: new Date(to).toISOString(), aggregation, ...byMinute }).then(
                (a) => a.anomalies,
                () => [],
              );
          const forecast = weekOrMore(range, p.start, p.end)
            ? Promise.all([
                api.get<View>(`/api/v1/predictions/${encodeURIComponent(metric)}`, { days: "7", aggregation, ...(series ? { series } : {}) }),
                api.post<View>("/api/v1/metrics/query", { metric_name: metric, time_range: "28d", interval: "1d", aggregations: [aggregation], filters: body.filters }),
              ]).catch(() => null)
            : Promise.resolve(null);
          const [found, predicted] = await Promise.all([anomalies, forecast]);
          answer.anomalies = found;
          if (predicted) {
            answer.prediction = predicted[0];
            answer.forecast_history = predicted[1].data;
          }
        }
        return [answer, null];
      }
      const params = { ...time, ...(p.interval ? { interval: p.interval } : {}), ...filters(route) };
      // Web analytics' overview is one page: its top sources, pages, countries and devices,
      // read at once with it, under the same filters.
      const overview = key === "web/overview";
      const now = await api.get<View>(`/api/v1/${route.area}/${route.view}`, params);
      // The overview answers with its top panels and its goals' conversions (one read of the
      // breakdowns for all); goals take no filter yet: under one, the panel says so.
      if (overview) {
        const top = now.top as Record<string, Row[]> | undefined;
        now.top_panels = top ? panelsFrom(top, filters(route)) : await topPanels(api, time, filters(route));
        now.goals_panel = (now.goals as GoalsView | undefined) ?? { filtered: Object.keys(filters(route)) };
      }
      const before = previousRange(now);
      const wantsPrevious = compare && before && (Array.isArray(now.rows) || (Array.isArray(now.timeseries) && !("metrics" in now)));
      const earlier = wantsPrevious ? await api.get<View>(`/api/v1/${route.area}/${route.view}`, { ...params, ...before, range: undefined }) : null;
      return [now, earlier];
    };
    loader.current = load;
    load().then(
      ([v, prev]) => {
        if (cancelled) return;
        setView(v);
        setPrevious(prev);
        setLoadedFor(request);
      },
      (e: unknown) => {
        if (cancelled) return;
        setView(null);
        setLoadedFor(request);
        setError(e instanceof ApiError ? `${e.status}: ${e.detail}` : String(e));
      },
    );
    return () => {
      cancelled = true;
    };
  }, [request]);

  useEffect(() => {
    if (route.area !== "explore" || catalog.length) return;
    api.get<{ metrics: CatalogMetric[] }>("/api/v1/metrics/catalog").then(
      (c) => setCatalog(c.metrics),
      () => setCatalog([]),
    );
  }, [route.area]);

  const area = AREAS.find((a) => a.area === route.area) ?? AREAS[0];
  const rows = view ? viewRows(view) : [];
  const name = `${route.area}-${route.view}${Object.entries(filters(route)).map(([k, v]) => `-${k}-${v}`).join("")}`.replace(/[^a-zA-Z0-9._-]+/g, "_");

  return (
    <section aria-labelledby="view-title" aria-busy={loading} data-view={key} data-loading={loading ? "1" : "0"}>
      <nav aria-label="Breadcrumbs" class="crumbs">
        <ol>
          {breadcrumbs(route).map((c, i, all) => (
            <li key={c.hash}>{i === all.length - 1 ? <span aria-current="page">{c.label}</span> : <a href={c.hash}>{c.label}</a>}</li>
          ))}
        </ol>
      </nav>
      <h1 id="view-title">
        {area.label}
        {route.area !== "explore" && <span class="muted"> · {route.view}</span>}
      </h1>
      {area.views.length > 1 && (
        <nav class="tabs" aria-label={`${area.label} views`}>
          {area.views.map((v) => (
            <a key={v} href={routeHash({ area: route.area, view: v, params: Object.fromEntries(Object.entries(p).filter(([k]) => ["range", "compare"].includes(k))) })} aria-current={v === route.view ? "page" : undefined}>
              {v}
            </a>
          ))}
        </nav>
      )}
      <div class="toolbar">
        <RangeBar
          value={range}
          custom={p.start ? { start: p.start, end: p.end } : undefined}
          onChange={(r) => {
            const { start: _s, end: _e, interval: _i, ...rest } = p;
            go({ ...rest, range: r });
          }}
          onCustom={(start, end) => {
            const { range: _r, interval: _i, ...rest } = p;
            go({ ...rest, start, end });
          }}
        />
        <label class="toggle">
          <input type="checkbox" checked={compare} onChange={(e) => go({ ...p, compare: e.currentTarget.checked ? "1" : "" })} /> compare to previous period
        </label>
        {route.area === "health" && <OwnCalls route={route} />}
        {route.area === "business" && props.me.role === "admin" && <CurrencySetting api={api} done={() => setReloads((n) => n + 1)} />}
        {view && <Exports rows={() => rows} json={() => view} name={name} />}
      </div>
      {key === "web/funnel" && (
        <form
          class="steps"
          onSubmit={(e) => {
            e.preventDefault();
            const text = (e.currentTarget.elements.namedItem("steps") as HTMLInputElement).value;
            setSteps(text);
          }}
        >
          <label>
            Steps (paths with * or event names, comma-separated){" "}
            <input name="steps" defaultValue={steps} size={40} />
          </label>
          <button type="submit">run</button>
        </form>
      )}
      {route.area !== "explore" && <FilterChips route={route} />}
      {route.area === "explore" && <ExploreForm route={route} catalog={catalog} />}
      {error && <p role="alert">{error}</p>}
      {loading && (
        <p class="loading" role="status">
          Loading {range}…
        </p>
      )}
      {view && <ViewBody view={view} previous={previous} route={route} compare={compare} me={props.me} catalog={catalog} api={api} reload={() => setReloads((n) => n + 1)} />}
      {view && rows.length > 0 && (
        <details open={rows.length <= 50}>
          <summary>Data ({rows.length} rows)</summary>
          <Table rows={rows} caption={`${area.label} ${route.view}`} onRow={drillRow(route, view)} />
        </details>
      )}
    </section>
  );
}

/** A table row's drill-down, for breakdowns. */
function drillRow(route: Route, view: View): ((row: Row) => void) | undefined {
  const dim = view.dimension as string | undefined;
  if (!dim || !Array.isArray(view.rows)) return undefined;
  return (row) => {
    location.hash = routeHash(drillTarget(route, dim, String(row[dim] ?? "")));
  };
}

/** A summary row's drill-down: that group alone (its tags become filters), over time. */
function drillGroup(route: Route): (row: Row) => void {
  return (row) => {
    const { group_by: by = "", ...rest } = route.params;
    const tags = Object.fromEntries(by.split(",").map((k) => [k.trim(), String(row[k.trim()] ?? "")]));
    location.hash = routeHash({ ...route, params: { ...rest, ...tags } });
  };
}

/** "Without Pulse's own API calls": Pulse records its API calls as the tenant's, `service=pulse`. */
function OwnCalls(props: { route: Route }) {
  const p = props.route.params;
  return (
    <label class="toggle">
      <input
        type="checkbox"
        checked={p.service === "!pulse"}
        onChange={(e) => {
          const { service: _s, ...rest } = p;
          location.hash = routeHash({ ...props.route, params: e.currentTarget.checked ? { ...rest, service: "!pulse" } : rest });
        }}
      />{" "}
      without Pulse's own API calls
    </label>
  );
}

function ExploreForm(props: { route: Route; catalog: CatalogMetric[] }) {
  const p = props.route.params;
  const [chosen, setChosen] = useState(p.metric ?? "page_view");
  // The aggregation picked by hand; until then the metric's own (latency as p95, money as sum),
  // also when the catalog arrives after the metric was typed.
  const [picked, setPicked] = useState(p.aggregation ?? "");
  useEffect(() => {
    setChosen(p.metric ?? "page_view");
    setPicked(p.aggregation ?? "");
  }, [p.metric, p.aggregation]);
  const known = props.catalog.find((m) => m.name === chosen);
  const names = props.catalog.length ? props.catalog.map((m) => m.name) : ["page_view", "web.pages", "order", "api_request", "error", "ml_job"];
  return (
    <form
      class="explore"
      onSubmit={(e) => {
        e.preventDefault();
        const form = e.currentTarget.elements;
        const metric = (form.namedItem("metric") as HTMLInputElement).value.trim();
        const group = (form.namedItem("group_by") as HTMLInputElement).value.trim();
        const aggregation = (form.namedItem("aggregation") as HTMLSelectElement).value;
        location.hash = routeHash({ ...props.route, params: { ...p, metric, aggregation, group_by: group } });
      }}
    >
      <label>
        Metric{" "}
        <input
          name="metric"
          defaultValue={p.metric ?? "page_view"}
          list="metric-names"
          required
          onInput={(e) => {
            setChosen(e.currentTarget.value.trim());
            setPicked("");
          }}
        />
      </label>
      <datalist id="metric-names">
        {names.map((name) => {
          const m = props.catalog.find((x) => x.name === name);
          return <option key={name} value={name} label={m ? catalogLabel(m) : undefined} />;
        })}
      </datalist>
      <label>
        Aggregation{" "}
        <select name="aggregation" value={picked || known?.aggregation || "count"} onChange={(e) => setPicked(e.currentTarget.value)}>
          {AGGREGATIONS.map((a) => (
            <option key={a} value={a}>
              {a}
            </option>
          ))}
        </select>
      </label>
      <label>
        Group by <input name="group_by" defaultValue={p.group_by ?? ""} placeholder={known ? Object.keys(known.tags).join(", ") || "no tags" : "path, country, …"} list="metric-tags" />
      </label>
      <datalist id="metric-tags">
        {Object.entries(known?.tags ?? {}).map(([tag, t]) => (
          <option key={tag} value={tag} label={`${tag}: ${t.values.slice(0, 3).join(", ")}${t.more || t.values.length > 3 ? ", …" : ""}`} />
        ))}
      </datalist>
      {known?.tags.service?.values.includes("pulse") && <OwnCalls route={props.route} />}
      <button type="submit">query</button>
    </form>
  );
}

/** Plausible's top stats, in its order. */
const TOP_STATS = ["visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration"];

function ViewBody(props: { view: View; previous: View | null; route: Route; compare: boolean; me: Me; catalog: CatalogMetric[]; api: Api; reload: () => void }) {
  const { view, previous, route, compare } = props;
  const [stat, setStat] = useState<string | null>(null);
  const key = `${route.area}/${route.view}`;
  const interval = (view.range as { interval?: string } | undefined)?.interval ?? (view.resolution as string | undefined);
  // A click drills into the interval of the nearest point drawn (not of wherever between
  // two points it landed), so the drilled range holds data.
  const drawn = [
    ...((view.timeseries as Row[] | undefined) ?? []).map((r) => Date.parse(String(r.timestamp))),
    ...((view.data as QueryPoint[] | undefined) ?? []).map((q) => Date.parse(q.timestamp)),
  ];
  // A drilled range keeps its axis: the range asked for, not the extent of the data.
  const axis = route.params.start && route.params.end ? { min: Date.parse(route.params.start), max: Date.parse(route.params.end) } : {};
  const narrow = (t: number) => {
    const { range: _r, ...rest } = route.params;
    const finer: Record<string, string> = { "1d": "1h", "1h": "5m", "5m": "1m" };
    const r = pointRange(nearestTime(drawn, t), interval);
    location.hash = routeHash({ ...route, params: { ...rest, start: r.start, end: r.end, interval: finer[interval ?? ""] ?? "1m" } });
  };
  // A span dragged across a chart becomes the range of the page (the time picker's custom range).
  const zoomTo = (start: number, end: number) => {
    if (!(end > start)) return;
    const { range: _r, interval: _i, ...rest } = route.params;
    location.hash = routeHash({ ...route, params: { ...rest, start: new Date(start).toISOString(), end: new Date(end).toISOString() } });
  };
  const drill = (e: ChartClick) => {
    const dim = view.dimension as string | undefined;
    if (dim && e.name && !String(e.seriesName ?? "").includes("previous")) location.hash = routeHash(drillTarget(route, dim, stored(dim, e.name)));
  };
  const parts = [];
  const metrics = view.metrics as Record<string, { value: number | null; previous?: number | null; change: number | null }> | undefined;
  // Web analytics leads with Plausible's top stats, in Plausible's order; a click on one charts it.
  const chartable = key === "web/overview" && metrics ? TOP_STATS.filter((m) => m in metrics) : [];
  const charted = stat && chartable.includes(stat) ? stat : chartable[0];
  const tiles = metrics && chartable.length ? Object.fromEntries(chartable.map((m) => [m, metrics[m]])) : metrics;
  if (tiles) parts.push(<Tiles key="tiles" metrics={tiles} selected={charted} onSelect={chartable.length ? setStat : undefined} />);
  const through = view.sessions_through as string | undefined;
  const rangeEnd = (view.range as { end?: string } | undefined)?.end;
  // Visits count as their minutes seal (about two minutes behind): a note only when they lag more.
  if (through && rangeEnd && Date.parse(through) < Date.parse(rangeEnd) - 5 * 60_000) {
    parts.push(
      <p key="sessions-through" class="muted note" data-sessions-through={through}>
        Visits, views per visit, bounce rate and visit duration count the visits up to {through.slice(11, 16)} UTC, the last minute sealed so far.
      </p>,
    );
  }
  // Breakdowns count through the last sealed minute (about two minutes behind): likewise.
  const rowsThrough = view.through as string | undefined;
  if (rowsThrough && rangeEnd && Date.parse(rowsThrough) < Date.parse(rangeEnd) - 5 * 60_000) {
    parts.push(
      <p key="rows-through" class="muted note" data-rows-through={rowsThrough}>
        These rows count events up to {rowsThrough.slice(11, 16)} UTC, the last minute sealed so far.
      </p>,
    );
  }
  if (key === "health/overview" && metrics?.error_rate) {
    parts.push(
      <figure class="panel" key="gauge">
        <figcaption>
          <h2>Error rate against a 1% objective</h2>
        </figcaption>
        <Chart id="health-gauge" title="Error rate against a 1% objective" option={gaugeOption("error rate", metrics.error_rate.value, 0.01, true)} />
      </figure>,
    );
  }
  if (key === "ml/overview" && metrics?.success_rate) {
    parts.push(
      <figure class="panel" key="gauge">
        <figcaption>
          <h2>Job success rate against a 95% target</h2>
        </figcaption>
        <Chart id="ml-gauge" title="Job success rate against a 95% target" option={gaugeOption("success rate", metrics.success_rate.value, 0.95, false)} />
      </figure>,
    );
  }
  const timeseries = view.timeseries as Row[] | undefined;
  if (timeseries?.length) {
    // Columns the API compares itself (sales: previous_period_revenue, previous_year_revenue)
    // are drawn dashed when comparing, and left out otherwise.
    // A chosen top stat is charted even before it has a number (visits come hourly).
    const all = charted ? [charted] : numericColumns(timeseries, ["timestamp"]);
    const own = all.filter((c) => c.startsWith("previous_"));
    const columns = all.filter((c) => !c.startsWith("previous_"));
    const earlier = (previous?.timeseries as Row[] | undefined) ?? [];
    const shift = previous ? Date.parse(String((view.range as { start: string }).start)) - Date.parse(String((previous.range as { start: string }).start)) : 0;
    const line = (c: string, dashed: boolean) => ({
      name: label(c),
      data: timeseries.map((r) => [Date.parse(String(r.timestamp)), r[c] as number | null] as [number, number | null]),
      dashed,
    });
    // One chart per unit (counts, rates, latency, money), so no line is flattened by another's scale.
    const units = [...new Set(columns.map((c) => unitOf(c)))];
    for (const unit of units) {
      const mine = columns.filter((c) => unitOf(c) === unit);
      const series: Series[] = mine.map((c) => line(c, false));
      if (compare) series.push(...own.filter((c) => unitOf(c) === unit).map((c) => line(c, true)));
      if (compare && !own.length) {
        for (const c of mine.slice(0, 2)) {
          series.push({
            name: `${label(c)} (previous period)`,
            data: earlier.map((r) => [Date.parse(String(r.timestamp)) + shift, r[c] as number | null]),
            dashed: true,
          });
        }
      }
      const id = `${key}-line${unit ? `-${unit}` : ""}`;
      const title = { "": "Over time", ratio: "Rates over time", ms: "Latency over time", currency: "Revenue over time", seconds: "Durations over time" }[unit] ?? "Over time";
      parts.push(
        <figure class="panel wide" key={id}>
          <figcaption>
            <h2>{title}</h2>
            <Exports id={id} rows={() => timeseries.map((r) => ({ timestamp: r.timestamp, ...Object.fromEntries(mine.map((c) => [c, r[c]])) }))} name={`${route.area}-${route.view}-${unit || "counts"}`} />
          </figcaption>
          <Chart id={id} title={`${title} (${mine.map(label).join(", ")}); click a point to drill into its interval, or drag across a span to zoom to it`} option={lineOption(series, { zoom: true, unit, interval, ...axis })} onTimeClick={narrow} onRangeSelect={zoomTo} height={unit ? 220 : 280} />
        </figure>,
      );
    }
  }
  const rows = view.rows as Row[] | undefined;
  const dim = view.dimension as string | undefined;
  if (rows?.length && dim) {
    const measure = numericColumns(rows, [dim])[0];
    const names = rows.map((r) => shownValue(dim, String(r[dim] ?? "(none)")));
    const values = rows.map((r) => r[measure] as number | null);
    const before = new Map(((previous?.rows as Row[] | undefined) ?? []).map((r) => [shownValue(dim, String(r[dim] ?? "(none)")), r[measure] as number | null]));
    const option = PIES.has(key)
      ? pieOption(names.map((n, i) => ({ name: n, value: values[i] ?? 0 })), label(measure))
      : barOption(names, values, label(measure), compare ? names.map((n) => before.get(n) ?? 0) : undefined);
    parts.push(
      <figure class="panel wide" key="breakdown">
        <figcaption>
          <h2>
            {label(measure)} by {dim}
          </h2>
          <Exports id={`${key}-breakdown`} rows={() => rows} name={`${route.area}-${route.view}`} />
        </figcaption>
        <Chart id={`${key}-breakdown`} title={`${label(measure)} by ${dim}; click a ${PIES.has(key) ? "slice" : "bar"} to drill down`} option={option} onClick={drill} height={Math.max(240, Math.min(600, rows.length * 30 + 40))} />
      </figure>,
    );
  }
  const steps = view.steps as Row[] | undefined;
  if (steps?.length && typeof view.entered === "number") {
    // A funnel query's totals (the business funnel's steps carry their own conversions).
    const totals = { entered: view.entered, converted: view.converted, conversion_rate: view.conversion_rate } as Record<string, number | null>;
    parts.push(
      <Tiles key="funnel-tiles" metrics={Object.fromEntries(Object.entries(totals).map(([k, v]) => [k, { value: v, change: null }]))} />,
    );
    if (view.entered === 0) {
      parts.push(
        <p key="funnel-hint" class="muted">
          No visitor entered this funnel in the range. Funnels read the hourly visitor trails: the last 30 to 90 minutes are not in yet.
        </p>,
      );
    }
  }
  if (steps?.length) {
    parts.push(
      <figure class="panel wide" key="funnel">
        <figcaption>
          <h2>Funnel</h2>
          <Exports id={`${key}-funnel`} rows={() => steps} name={`${route.area}-funnel`} />
        </figcaption>
        <Chart id={`${key}-funnel`} title="Visitors at each funnel step" option={barOption(steps.map((s) => String(s.step)), steps.map((s) => s.visitors as number), "visitors")} />
      </figure>,
    );
  }
  const points = view.data as QueryPoint[] | undefined;
  if (route.area === "explore" && Array.isArray(points)) {
    const compared = (view.comparison as { data?: QueryPoint[] } | undefined)?.data ?? [];
    const range = view as { data: QueryPoint[] };
    const series: Series[] = seriesByTags(range.data);
    if (compare && compared.length) {
      const shift = Date.parse(points[0]?.timestamp ?? "") - Date.parse(compared[0]?.timestamp ?? "");
      for (const s of seriesByTags(compared)) {
        series.push({ name: `${s.name} (previous period)`, data: s.data.map(([t, v]) => [t + (Number.isFinite(shift) ? shift : 0), v]), dashed: true });
      }
    }
    const aggregation = ((view.aggregations as string[] | undefined) ?? [])[0] ?? "count";
    const metricUnit = props.catalog.find((m) => m.name === view.metric)?.unit;
    const unit = aggregationUnit(aggregation, metricUnit);
    parts.push(
      <figure class="panel wide" key="explore">
        <figcaption>
          <h2>
            {aggregation} of {String(view.metric)}
            {route.params.group_by ? ` by ${route.params.group_by}` : ""}
            {unit ? <span class="muted"> ({unit})</span> : null}
          </h2>
          <Exports id="explore-line" rows={() => points.map((p) => ({ timestamp: p.timestamp, ...p.tags, value: p.value }))} name={`explore-${String(view.metric)}`} />
        </figcaption>
        <Chart id="explore-line" title={`${String(view.metric)} over time; click a point to drill into its interval`} option={lineOption(series, { zoom: true, unit, interval, ...axis, markers: anomalyMarkers((view.anomalies as Anomaly[] | undefined) ?? [], series[0]?.data ?? []) })} onTimeClick={narrow} />
      </figure>,
    );
    const prediction = view.prediction as Prediction | undefined;
    if (prediction?.points.length) {
      const today = Date.parse(`${prediction.points[0].date}T00:00:00Z`);
      const history = ((view.forecast_history as QueryPoint[] | undefined) ?? []).map((q) => [Date.parse(q.timestamp), q.value] as [number, number | null]).filter(([t]) => t < today);
      const a = prediction.accuracy;
      const pct = (v: number | null) => (v === null ? "–" : `${Math.round(v * 100)}%`);
      const subject = `${String(view.metric)}${prediction.series ? ` where ${prediction.series.split(",").join(", ")}` : ""}`;
      parts.push(
        <figure class="panel wide" key="forecast" data-forecast="1">
          <figcaption>
            <h2>
              Next {prediction.points.length} days of {aggregation} of {subject}: forecast with 80% and 95% intervals
            </h2>
            <Exports id="explore-forecast" rows={() => prediction.points as unknown as Row[]} name={`forecast-${String(view.metric)}`} />
          </figcaption>
          <Chart id="explore-forecast" title={`Daily ${aggregation} of ${subject}: the last 4 weeks and the next ${prediction.points.length} days' forecast`} option={forecastOption(history, forecastBands(prediction.points), unit)} height={240} />
          <p class="muted" data-accuracy="1">
            {prediction.model}, from {prediction.history_days} days, fitted {prediction.trained_at.replace("T", " ").slice(0, 16)} UTC (version {prediction.version}). On {prediction.series ? "this series'" : "this metric's"} last {a.cuts} weeks: accuracy {pct(a.accuracy)}, MASE {a.mase === null ? "–" : a.mase.toFixed(2)}, the 80% interval held {pct(a.coverage80)} of days and the 95% {pct(a.coverage95)}.
          </p>
          {props.me.role === "admin" && <Retrain api={props.api} done={props.reload} />}
        </figure>,
      );
    }
    // One value per group over the whole range (percentiles of the range, not of its points).
    const summary = view.summary as SummaryRow[] | undefined;
    if (summary?.length) {
      const units = Object.fromEntries(((view.aggregations as string[] | undefined) ?? []).map((a) => [a, aggregationUnit(a, metricUnit)]));
      const table = summaryRows(summary, aggregation);
      parts.push(
        <figure class="panel wide" key="explore-summary" data-summary="1">
          <figcaption>
            <h2>
              Over the range{route.params.group_by ? `, by ${route.params.group_by}` : ""}, by {aggregation}
            </h2>
            <Exports id="explore-summary" rows={() => table} name={`explore-${String(view.metric)}-summary`} />
          </figcaption>
          <Table rows={table} caption={`${aggregation} of ${String(view.metric)} over the range`} units={units} onRow={route.params.group_by ? drillGroup(route) : undefined} />
        </figure>,
      );
    }
  }
  if (!parts.length) {
    const sealed = !["web/realtime", "web/funnel"].includes(key) && route.area !== "explore";
    parts.push(
      <p key="empty" class="muted empty">
        No data in this range.
        {key === "web/funnel" && " Funnels are computed hourly: they appear 30 to 90 minutes after the traffic."}
        {sealed && " Visits and breakdowns count each minute once it is sealed, about two minutes after it ends."}
      </p>,
    );
  }
  for (const panel of (view.top_panels as TopPanel[] | undefined) ?? []) parts.push(<TopList key={`top-${panel.view}`} panel={panel} route={route} />);
  const goals = view.goals_panel as GoalsView | undefined;
  if (goals) parts.push(<GoalsPanel key="goals" view={goals} me={props.me} api={props.api} reload={props.reload} />);
  return <div class="grid view-body">{parts}</div>;
}
