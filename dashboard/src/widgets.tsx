// Building blocks shared by the pages: chart options (line with zoom and pan, bar, pie/donut,
// heatmap, gauge), the range presets, figure tiles, tables, and export (CSV, JSON, PNG).

import { useState } from "preact/hooks";
import { chartPng, type Option } from "./charts";
import { changeTone, formatChange, formatValue, label, legendStats, openBucket, shownValue, toCsv, unitOf, type Figure, type Row } from "./shape";


/** A line: its name, `[epoch ms, value]` points, dashed for a compared period. */
export type Series = { name: string; data: [number, number | null][]; dashed?: boolean };

/** A time-series line chart; `min`/`max` (epoch ms) pin the time axis to the range asked for. */
export function lineOption(
  series: Series[],
  opts: {
    zoom?: boolean;
    area?: boolean;
    min?: number;
    max?: number;
    unit?: string;
    interval?: string;
    now?: number;
    /** Anomalies on the first series ([`anomalyMarkers`]), drawn as pins with their explanation. */
    markers?: { coord: [number, number]; text: string; severity: string }[];
  } = {},
): Option {
  // The bucket still filling is greyed and labelled, so its partial value does not read as
  // a drop; daily and weekly points are drawn as steps (each holds a whole period).
  const open = opts.interval ? openBucket(series, opts.interval, opts.now ?? Date.now()) : null;
  const steps = opts.interval === "1d" || opts.interval === "1w";
  const stats = new Map(series.map((s) => [s.name, legendStats(s.data, opts.unit, open?.start)]));
  return {
    tooltip: { trigger: "axis" },
    legend: { top: 0, type: "scroll", formatter: (name: string) => (stats.get(name) ? `${name}  ${stats.get(name)}` : name) },
    grid: { left: 48, right: 16, top: 32, bottom: opts.zoom ? 64 : 28 },
    xAxis: { type: "time", min: opts.min, max: opts.max },
    yAxis: opts.unit
      ? { type: "value", axisLabel: { formatter: (v: number) => formatValue(v, opts.unit) } }
      : { type: "value", minInterval: 1 },
    dataZoom: opts.zoom ? [{ type: "inside" }, { type: "slider", height: 20, bottom: 8 }] : [],
    series: series.map((s, i) => ({
      type: "line",
      name: s.name,
      data: s.data,
      step: steps ? "start" : undefined,
      markPoint:
        i === 0 && opts.markers?.length
          ? {
              symbol: "pin",
              symbolSize: 34,
              label: { formatter: "!" },
              tooltip: { formatter: (m: { data?: { text?: string } }) => m.data?.text ?? "" },
              data: opts.markers.map((m) => ({ coord: m.coord, text: m.text, itemStyle: { color: m.severity === "critical" ? "#c62828" : "#ef6c00" } })),
            }
          : undefined,
      markArea:
        open && i === 0
          ? { silent: true, itemStyle: { color: "rgba(128,128,128,0.15)" }, label: { show: true, position: "insideTop", formatter: "in progress" }, data: [[{ xAxis: open.start }, { xAxis: open.end }]] }
          : undefined,
      showSymbol: s.data.length < 60,
      symbolSize: 6,
      sampling: "lttb",
      lineStyle: s.dashed ? { type: "dashed", width: 1.5 } : { width: 2 },
      areaStyle: opts.area ? { opacity: 0.15 } : undefined,
      emphasis: { focus: "series" },
    })),
  };
}

/**
 * A daily forecast after its history: the history as a line, the forecast dashed, and its 80 %
 * and 95 % intervals as bands (each a transparent lower bound with its width stacked on it).
 */
export function forecastOption(history: [number, number | null][], bands: Record<"forecast" | "lo80" | "width80" | "lo95" | "width95", [number, number][]>, unit?: string): Option {
  const band = (name: string, stack: string, lo: [number, number][], width: [number, number][], opacity: number) => [
    { type: "line", name: `${name} low`, data: lo, stack, stackStrategy: "all", lineStyle: { opacity: 0 }, symbol: "none", silent: true, tooltip: { show: false } },
    { type: "line", name, data: width, stack, stackStrategy: "all", lineStyle: { opacity: 0 }, symbol: "none", itemStyle: { color: "#1d4ed8", opacity: opacity * 2 }, areaStyle: { color: "#1d4ed8", opacity }, silent: true },
  ];
  return {
    tooltip: { trigger: "axis", formatter: forecastTooltip(bands, unit) },
    legend: { top: 0, data: ["history", "forecast", "80% interval", "95% interval"] },
    grid: { left: 56, right: 16, top: 32, bottom: 28 },
    xAxis: { type: "time" },
    yAxis: unit ? { type: "value", axisLabel: { formatter: (v: number) => formatValue(v, unit) } } : { type: "value", minInterval: 1 },
    series: [
      ...band("95% interval", "b95", bands.lo95, bands.width95, 0.12),
      ...band("80% interval", "b80", bands.lo80, bands.width80, 0.22),
      { type: "line", name: "history", data: history, step: "start", symbol: "none", lineStyle: { width: 2 } },
      { type: "line", name: "forecast", data: bands.forecast, lineStyle: { type: "dashed", width: 2 }, symbolSize: 6 },
    ],
  };
}

/** The tooltip of a forecast day: the forecast and both intervals, in the metric's unit. */
function forecastTooltip(bands: Record<"forecast" | "lo80" | "width80" | "lo95" | "width95", [number, number][]>, unit?: string) {
  return (items: { axisValue?: number; seriesName?: string; value?: [number, number | null] }[]) => {
    const t = items[0]?.axisValue;
    const i = bands.forecast.findIndex(([x]) => x === t);
    const day = t === undefined ? "" : new Date(t).toISOString().slice(0, 10);
    if (i < 0) {
      const h = items.find((x) => x.seriesName === "history");
      return `${day}<br/>history: ${formatValue(h?.value?.[1] ?? null, unit)}`;
    }
    const f = (v: number) => formatValue(v, unit);
    const lo80 = bands.lo80[i][1];
    const lo95 = bands.lo95[i][1];
    return `${day}<br/>forecast: ${f(bands.forecast[i][1])}<br/>80%: ${f(lo80)} – ${f(lo80 + bands.width80[i][1])}<br/>95%: ${f(lo95)} – ${f(lo95 + bands.width95[i][1])}`;
  };
}

export function barOption(categories: string[], values: (number | null)[], name: string, previous?: (number | null)[]): Option {
  const series: Record<string, unknown>[] = [{ type: "bar", name, data: values, barMaxWidth: 28 }];
  if (previous) series.push({ type: "bar", name: `${name} (previous period)`, data: previous, barMaxWidth: 28, itemStyle: { opacity: 0.45 } });
  return {
    tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
    legend: previous ? { top: 0 } : undefined,
    grid: { left: 8, right: 24, top: previous ? 28 : 8, bottom: 8, containLabel: true },
    xAxis: { type: "value" },
    yAxis: { type: "category", data: categories, inverse: true, axisLabel: { width: 140, overflow: "truncate" } },
    series,
  };
}

export function pieOption(slices: { name: string; value: number }[], name: string): Option {
  return {
    tooltip: { trigger: "item", formatter: "{b}: {c} ({d}%)" },
    legend: { bottom: 0, type: "scroll" },
    series: [
      {
        type: "pie",
        name,
        radius: ["42%", "70%"],
        center: ["50%", "45%"],
        avoidLabelOverlap: true,
        label: { formatter: "{b}\n{d}%" },
        data: slices,
      },
    ],
  };
}

export function heatmapOption(h: { cells: [number, number, number][]; max: number; days: string[] }): Option {
  return {
    tooltip: { position: "top" },
    grid: { left: 40, right: 8, top: 8, bottom: 80 },
    xAxis: { type: "category", data: Array.from({ length: 24 }, (_, i) => String(i)), splitArea: { show: true } },
    yAxis: { type: "category", data: h.days, inverse: true, splitArea: { show: true } },
    visualMap: { min: 0, max: Math.max(1, h.max), calculable: true, orient: "horizontal", left: "center", bottom: 0, itemHeight: 120, inRange: { color: ["#eff6ff", "#1d4ed8"] } },
    series: [{ type: "heatmap", name: "visitors", data: h.cells, emphasis: { itemStyle: { borderColor: "#111", borderWidth: 1 } } }],
  };
}

/** A gauge of a rate (0–1) with its target marked; `lowerIsBetter` colours the side past it. */
export function gaugeOption(name: string, value: number | null, target: number, lowerIsBetter: boolean): Option {
  const good = "#047857";
  const bad = "#b91c1c";
  // The scale reaches five times a small target (a 1% objective on 0–5%), else 100%.
  const max = Math.min(100, Math.max(Math.ceil(target * 500), Math.ceil((value ?? 0) * 120)));
  const split = Math.min(1, (target * 100) / max);
  return {
    series: [
      {
        type: "gauge",
        name,
        min: 0,
        max,
        // No progress arc: drawn over the axis line it hid the target zone; the pointer shows
        // the value against both zones.
        progress: { show: false },
        axisLine: { lineStyle: { width: 14, color: [[split, lowerIsBetter ? good : bad], [1, lowerIsBetter ? bad : good]] } },
        axisTick: { show: false },
        splitLine: { length: 8 },
        // An unknown value has no needle (at 0 it would read as a perfect score).
        pointer: { show: value !== null, width: 4 },
        detail: { valueAnimation: true, formatter: value === null ? "–" : "{value}%", fontSize: 22, offsetCenter: [0, "70%"] },
        title: { offsetCenter: [0, "95%"], fontSize: 12 },
        data: [{ value: value === null ? 0 : Math.round(value * 10_000) / 100, name: `target ${Math.round(target * 1000) / 10}%` }],
      },
    ],
  };
}

export const PRESETS = ["15m", "1h", "6h", "24h", "7d", "30d"];

/** Range presets, and a custom range when `onCustom` is given. */
export function RangeBar(props: {
  value: string;
  onChange: (range: string) => void;
  presets?: string[];
  custom?: { start?: string; end?: string };
  onCustom?: (start: string, end: string) => void;
}) {
  const [open, setOpen] = useState(!!props.custom?.start);
  const [start, setStart] = useState(props.custom?.start?.slice(0, 16) ?? "");
  const [end, setEnd] = useState(props.custom?.end?.slice(0, 16) ?? "");
  return (
    <div class="rangebar" role="group" aria-label="Date range">
      {(props.presets ?? PRESETS).map((p) => (
        <button key={p} type="button" aria-pressed={!props.custom?.start && props.value === p} onClick={() => props.onChange(p)}>
          {p}
        </button>
      ))}
      {props.onCustom && (
        <button type="button" aria-pressed={!!props.custom?.start} aria-expanded={open} onClick={() => setOpen(!open)}>
          custom
        </button>
      )}
      {open && props.onCustom && (
        <form
          class="custom"
          onSubmit={(e) => {
            e.preventDefault();
            if (start && end) props.onCustom?.(new Date(`${start}Z`).toISOString(), new Date(`${end}Z`).toISOString());
          }}
        >
          <label>
            from (UTC) <input type="datetime-local" value={start} onInput={(e) => setStart(e.currentTarget.value)} required />
          </label>
          <label>
            to <input type="datetime-local" value={end} onInput={(e) => setEnd(e.currentTarget.value)} required />
          </label>
          <button type="submit">apply</button>
        </form>
      )}
    </div>
  );
}

function download(name: string, type: string, content: string) {
  const a = document.createElement("a");
  a.download = name;
  a.href = content.startsWith("data:") ? content : URL.createObjectURL(new Blob([content], { type }));
  document.body.append(a);
  a.click();
  a.remove();
}

/** CSV and JSON of the rows behind a view or chart, and the chart's PNG. */
export function Exports(props: { id?: string; rows: () => Row[] | unknown[]; name: string; json?: () => unknown }) {
  return (
    <span class="exports" role="group" aria-label={`Export ${props.name}`}>
      <button type="button" data-export="csv" onClick={() => download(`${props.name}.csv`, "text/csv", toCsv(props.rows() as Row[]))}>
        CSV
      </button>
      <button
        type="button"
        data-export="json"
        onClick={() => download(`${props.name}.json`, "application/json", JSON.stringify(props.json ? props.json() : props.rows(), null, 2))}
      >
        JSON
      </button>
      {props.id && (
        <button
          type="button"
          data-export="png"
          onClick={() => {
            const png = chartPng(props.id ?? "");
            if (png) download(`${props.name}.png`, "image/png", png);
          }}
        >
          PNG
        </button>
      )}
    </span>
  );
}

/** A view's headline figures, each with its change against the compared period. */
/**
 * Figures with their change against the previous period, shown whenever there is one (an empty
 * previous period shows no change rather than "– vs 0"). With `onSelect`, each tile is a button
 * that charts its figure; `selected` is the one charted.
 */
export function Tiles(props: {
  metrics: Record<string, Figure & { change_year?: number | null }>;
  selected?: string;
  onSelect?: (name: string) => void;
}) {
  return (
    <div class="tiles">
      {Object.entries(props.metrics).map(([name, f]) => {
        const tone = changeTone(name, f.change);
        const change = typeof f.change === "number" && Number.isFinite(f.change) ? formatChange(f.change) : "";
        const body = (
          <>
            <h3>{label(name)}</h3>
            <p class="value">{formatValue(f.value, unitOf(name))}</p>
            {change && (
              <p class={`delta ${tone}`}>
                {change} <span class="muted">vs {formatValue(f.previous ?? f.previous_period ?? null, unitOf(name))}</span>
              </p>
            )}
          </>
        );
        return props.onSelect ? (
          <button type="button" class="tile" key={name} data-figure={name} aria-pressed={props.selected === name} onClick={() => props.onSelect?.(name)}>
            {body}
          </button>
        ) : (
          <div class="tile" key={name} data-figure={name}>
            {body}
          </div>
        );
      })}
    </div>
  );
}

/** A cell as shown: numbers in their unit, timestamps as `2026-11-22 18:00`. */
function cell(column: string, v: Row[string], unit?: string): string {
  if (typeof v === "number") return formatValue(v, unit ?? unitOf(column));
  if (typeof v === "string") v = shownValue(column, v);
  if (typeof v === "string" && /^\d{4}-\d\d-\d\dT\d\d:\d\d/.test(v)) return v.slice(0, 16).replace("T", " ");
  return String(v ?? "–");
}

/** A table of rows; the first column is the row header; `units` names a column's unit where its name does not say it. */
export function Table(props: { rows: Row[]; caption: string; onRow?: (row: Row) => void; units?: Record<string, string> }) {
  const columns = props.rows.length ? Object.keys(props.rows[0]) : [];
  if (!columns.length) return <p class="muted empty">No data in this range.</p>;
  return (
    <div class="table-wrap">
      <table>
        <caption class="sr-only">{props.caption}</caption>
        <thead>
          <tr>
            {columns.map((c) => (
              <th key={c} scope="col">
                {label(c)}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {props.rows.map((r, i) => (
            <tr key={i}>
              {columns.map((c, j) =>
                j === 0 ? (
                  <th key={c} scope="row">
                    {props.onRow ? (
                      <button type="button" class="link" onClick={() => props.onRow?.(r)}>
                        {String(r[c] ?? "(none)")}
                      </button>
                    ) : (
                      cell(c, r[c], props.units?.[c])
                    )}
                  </th>
                ) : (
                  <td key={c}>{cell(c, r[c], props.units?.[c])}</td>
                ),
              )}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
