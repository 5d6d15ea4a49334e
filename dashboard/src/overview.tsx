// The overview: the key metric cards (value, change against the previous period, sparkline),
// kept live through the WebSocket API, the last hour's page views by minute (a live query
// subscription), traffic over the chosen range with zoom and pan, visitors by hour of day and
// weekday, and a KPI gauge against its target.

import { useEffect, useRef, useState } from "preact/hooks";
import { can, type Api, type Me } from "./api";
import { Chart } from "./charts";
import type { Interval, LiveClient, ServerFrame } from "./live";
import { changeTone, formatChange, formatValue, fillSteps, heatmap, mergeSince, nearestTime, pointRange, seriesByTags, type Card, type QueryPoint } from "./shape";
import { Exports, RangeBar, lineOption, heatmapOption, gaugeOption } from "./widgets";
import { routeHash } from "./route";

function Sparkline(props: { values: (number | null)[] }) {
  const v = props.values.map((x) => x ?? 0);
  if (v.length < 2) return <svg class="spark" aria-hidden="true" />;
  const max = Math.max(...v, 1e-9);
  const min = Math.min(...v, 0);
  const pts = v.map((x, i) => `${((i / (v.length - 1)) * 100).toFixed(1)},${(28 - ((x - min) / (max - min || 1)) * 26).toFixed(1)}`);
  return (
    <svg class="spark" viewBox="0 0 100 30" preserveAspectRatio="none" aria-hidden="true">
      <polyline points={pts.join(" ")} fill="none" stroke="currentColor" stroke-width="1.5" vector-effect="non-scaling-stroke" />
    </svg>
  );
}

function CardView(props: { card: Card }) {
  const { card } = props;
  const [bump, setBump] = useState(false);
  const last = useRef(card.value);
  useEffect(() => {
    if (last.current !== card.value) {
      last.current = card.value;
      setBump(true);
      const t = setTimeout(() => setBump(false), 600);
      return () => clearTimeout(t);
    }
  }, [card.value]);
  const tone = changeTone(card.id, card.change);
  const change = formatChange(card.change);
  return (
    <article class={`card${bump ? " bump" : ""}`} data-card={card.id} aria-label={card.label}>
      <h3>{card.label}</h3>
      <p class="value" data-value={card.value ?? ""}>
        {formatValue(card.value, card.unit)}
      </p>
      <p class={`delta ${tone}`}>
        {change ? (
          <>
            <span aria-hidden="true">{tone === "up" ? "▲" : tone === "down" ? "▼" : ""}</span> {change}
            <span class="sr-only"> against the previous period</span>
          </>
        ) : (
          <span class="muted">no previous period</span>
        )}
      </p>
      <Sparkline values={card.sparkline} />
    </article>
  );
}

/** The metrics whose live changes move the caller's cards. */
function watched(me: Me): string[] {
  const m = ["page_view"];
  if (can(me, "analyst")) m.push("order");
  if (can(me, "admin")) m.push("api_request");
  return m;
}

export function Overview(props: { api: Api; live: LiveClient; me: Me; interval: Interval }) {
  const { api, live, me, interval } = props;
  const [cards, setCards] = useState<Card[] | null>(null);
  const [error, setError] = useState("");
  const [minutes, setMinutes] = useState<QueryPoint[]>([]);
  const [hour, setHour] = useState<{ start?: string; end?: string }>({});
  const [range, setRange] = useState("7d");
  const [traffic, setTraffic] = useState<Record<string, unknown> | null>(null);
  /** The range the traffic chart shows; while it differs from `range`, the chart is the old one. */
  const [shownRange, setShownRange] = useState("");

  // Cards: fetched once, then again whenever a live update says a watched metric moved (one
  // request in flight, the last update wins), so they always show what the API answers.
  useEffect(() => {
    let inFlight = false;
    let again = false;
    const load = () => {
      if (inFlight) {
        again = true;
        return;
      }
      inFlight = true;
      api
        .get<{ cards: Card[] }>("/api/v1/metrics")
        .then((r) => setCards(r.cards), (e: Error) => setError(e.message))
        .finally(() => {
          inFlight = false;
          if (again) {
            again = false;
            load();
          }
        });
    };
    load();
    const off = live.subscribe({ metrics: watched(me) }, interval, (f) => {
      if (f.type === "metrics_update") load();
    });
    return off;
  }, [interval]);

  // The last hour by minute, from a live query subscription: snapshot, then tails.
  useEffect(() => {
    const query = { metric_name: "page_view", time_range: "1h", interval: "1m", aggregation: "count" };
    return live.subscribe({ query }, interval, (f: ServerFrame) => {
      const data = f.data as { data?: QueryPoint[]; since?: string; range?: { start: string; end: string } } | undefined;
      if (!data?.data) return;
      if (data.range) setHour(data.range as { start: string; end: string });
      if (f.type === "snapshot" || !data.since) setMinutes(data.data);
      else setMinutes((shown) => mergeSince(shown, data.data ?? [], data.since ?? "", data.range?.start ?? ""));
    });
  }, [interval]);

  useEffect(() => {
    let cancelled = false;
    api.get<Record<string, unknown>>("/api/v1/web/overview", { range, interval: range === "1h" ? "1m" : "1h", top: "false" }).then(
      (t) => {
        if (cancelled) return;
        setTraffic(t);
        setShownRange(range);
      },
      (e: Error) => {
        if (!cancelled) setError(e.message);
      },
    );
    return () => {
      cancelled = true;
    };
  }, [range]);
  const trafficLoading = shownRange !== range;

  const series = (traffic?.timeseries ?? []) as { timestamp: string; visitors: number; pageviews: number; visits: number }[];
  const figures = (traffic?.metrics ?? {}) as Record<string, { value: number | null }>;
  const drill = (t: number) => {
    const { start, end } = pointRange(nearestTime(series.map((p) => Date.parse(p.timestamp)), t), "1h");
    location.hash = routeHash({ area: "web", view: "overview", params: { start, end, interval: "5m" } });
  };
  const target = Number(localStorage.getItem("pulse.target.bounce_rate") ?? "0.4");

  return (
    <section aria-labelledby="overview-title">
      <h1 id="overview-title">Overview</h1>
      {error && <p role="alert">{error}</p>}
      <div class="cards" aria-live="polite" aria-busy={cards === null}>
        {(cards ?? []).map((c) => (
          <CardView key={c.id} card={c} />
        ))}
      </div>
      <div class="grid">
        <figure class="panel wide">
          <figcaption>
            <h2>Pageviews, last hour by minute</h2>
            <Exports id="live-minutes" rows={() => minutes.map((p) => ({ timestamp: p.timestamp, page_views: p.value }))} name="page-views-last-hour" />
          </figcaption>
          <Chart id="live-minutes" title="Pageviews per minute over the last hour" option={lineOption(
              seriesByTags(hour.start && hour.end ? fillSteps(minutes, hour.start, hour.end, 60_000) : minutes).map((s) => ({ ...s, name: "pageviews" })),
              { zoom: false, area: true, min: hour.start ? Date.parse(hour.start) : undefined, max: hour.end ? Date.parse(hour.end) : undefined },
            )} />
        </figure>
        <figure class="panel wide" data-loading={trafficLoading ? "1" : "0"} aria-busy={trafficLoading}>
          <figcaption>
            <h2>Traffic</h2>
            <RangeBar value={range} onChange={setRange} presets={["24h", "7d", "30d"]} />
            <Exports id="traffic" rows={() => series} name={`traffic-${shownRange}`} />
          </figcaption>
          {trafficLoading && (
            <p class="loading" role="status">
              Loading {range}…
            </p>
          )}
          <Chart
            id="traffic"
            title={`Visitors, visits and pageviews over ${range}; click a point to drill down`}
            onTimeClick={drill}
            option={lineOption(
              [
                { name: "visitors", data: series.map((p) => [Date.parse(p.timestamp), p.visitors]) },
                { name: "visits", data: series.map((p) => [Date.parse(p.timestamp), p.visits]) },
                { name: "pageviews", data: series.map((p) => [Date.parse(p.timestamp), p.pageviews]) },
              ],
              { zoom: true, interval: (traffic?.range as { interval?: string } | undefined)?.interval },
            )}
          />
        </figure>
        <figure class="panel">
          <figcaption>
            <h2>Visitors by hour and weekday (UTC)</h2>
            <Exports id="heatmap" rows={() => heatmap(series.map((p) => ({ timestamp: p.timestamp, value: p.visitors }))).cells.map(([h, d, v]) => ({ weekday: d, hour: h, visitors: v }))} name="visitors-heatmap" />
          </figcaption>
          <Chart id="heatmap" title="Visitors by hour of day and weekday" option={heatmapOption(heatmap(series.map((p) => ({ timestamp: p.timestamp, value: p.visitors }))))} />
        </figure>
        <figure class="panel">
          <figcaption>
            <h2>Bounce rate against its target</h2>
            <label class="target">
              target{" "}
              <input
                type="number"
                min="0"
                max="100"
                value={Math.round(target * 100)}
                aria-label="Bounce rate target in percent"
                onChange={(e) => {
                  localStorage.setItem("pulse.target.bounce_rate", String(Number(e.currentTarget.value) / 100));
                  setTraffic(traffic ? { ...traffic } : traffic);
                }}
              />
              %
            </label>
          </figcaption>
          <Chart id="gauge" title="Bounce rate against its target" option={gaugeOption("bounce rate", figures.bounce_rate?.value ?? null, target, true)} />
        </figure>
      </div>
    </section>
  );
}
