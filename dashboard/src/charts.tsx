// ECharts, imported module by module (only the charts and components used), and one Chart
// component: it renders an option, resizes with its box, reports clicks on points, bars and
// slices for drill-down, and offers its PNG.

import * as echarts from "echarts/core";
import { BarChart, GaugeChart, HeatmapChart, LineChart, PieChart } from "echarts/charts";
import {
  AriaComponent,
  DataZoomComponent,
  GridComponent,
  LegendComponent,
  ToolboxComponent,
  TooltipComponent,
  VisualMapComponent,
} from "echarts/components";
import { CanvasRenderer } from "echarts/renderers";
import { useEffect, useRef } from "preact/hooks";

echarts.use([
  LineChart,
  BarChart,
  PieChart,
  HeatmapChart,
  GaugeChart,
  GridComponent,
  TooltipComponent,
  LegendComponent,
  DataZoomComponent,
  ToolboxComponent,
  VisualMapComponent,
  AriaComponent,
  CanvasRenderer,
]);

export type Option = echarts.EChartsCoreOption;

/** What a click on a chart says: the series, the category or slice name, the value. */
export interface ChartClick {
  seriesName?: string;
  name?: string;
  value?: unknown;
  dataIndex?: number;
}

/**
 * Twenty colours, no two alike (ECharts' default has nine, so a tenth line repeated the first):
 * a chart of up to twenty lines or slices never shows one colour for two of them.
 */
export const PALETTE = [
  "#1d4ed8", "#c2410c", "#047857", "#7c3aed", "#b91c1c", "#0e7490", "#a16207", "#be185d", "#64748b", "#65a30d",
  "#ea580c", "#0284c7", "#9f1239", "#4338ca", "#0f766e", "#ca8a04", "#86198f", "#57534e", "#16a34a", "#f472b6",
];

/** Charts on the page by id, for PNG export and the render benchmark. */
const registry = new Map<string, echarts.ECharts>();

/** The PNG of chart `id` as a data URL. */
export function chartPng(id: string): string | null {
  const chart = registry.get(id);
  return chart ? chart.getDataURL({ type: "png", pixelRatio: 2, backgroundColor: "#fff" }) : null;
}

/** Renders `option` into a fresh chart in `el` and returns the milliseconds it took (benchmarks). */
export function renderTimed(el: HTMLElement, option: Option): number {
  const t0 = performance.now();
  const chart = echarts.init(el, undefined, { renderer: "canvas" });
  chart.setOption(option);
  const ms = performance.now() - t0;
  chart.dispose();
  return ms;
}

export function Chart(props: {
  id: string;
  option: Option;
  title: string;
  height?: number;
  /** A click on a point, bar or slice. */
  onClick?: (e: ChartClick) => void;
  /** A click anywhere in a time-series plot: the time (epoch ms) under the pointer. */
  onTimeClick?: (t: number) => void;
  /**
   * A time span dragged across a time-series plot (Grafana's drag-to-zoom): its start and end
   * (epoch ms). A click without a drag stays a click.
   */
  onRangeSelect?: (start: number, end: number) => void;
}) {
  const el = useRef<HTMLDivElement>(null);
  const chart = useRef<echarts.ECharts | null>(null);
  const click = useRef(props.onClick);
  click.current = props.onClick;
  const timeClick = useRef(props.onTimeClick);
  timeClick.current = props.onTimeClick;
  const rangeSelect = useRef(props.onRangeSelect);
  rangeSelect.current = props.onRangeSelect;

  useEffect(() => {
    if (!el.current) return;
    const c = echarts.init(el.current, undefined, { renderer: "canvas" });
    chart.current = c;
    registry.set(props.id, c);
    c.on("click", (e) => click.current?.(e as ChartClick));
    // Lines are thin and their symbols hidden past 60 points: the whole plot area takes the click.
    c.getZr().on("click", (e) => {
      if (!timeClick.current || !c.containPixel({ gridIndex: 0 }, [e.offsetX, e.offsetY])) return;
      const [t] = c.convertFromPixel({ gridIndex: 0 }, [e.offsetX, e.offsetY]) as number[];
      if (Number.isFinite(t)) timeClick.current(t);
    });
    // The box a drag draws zooms by the toolbox's select mode (kept on, its icons hidden); the
    // span it selects goes to the page, which makes it the range of every view.
    c.on("datazoom", (e) => {
      const batch = (e as { batch?: { startValue?: unknown; endValue?: unknown }[] }).batch ?? [];
      const span = batch.find((b) => typeof b.startValue === "number" && typeof b.endValue === "number");
      if (span && rangeSelect.current) rangeSelect.current(span.startValue as number, span.endValue as number);
    });
    const observer = new ResizeObserver(() => c.resize());
    observer.observe(el.current);
    return () => {
      observer.disconnect();
      registry.delete(props.id);
      c.dispose();
      chart.current = null;
    };
  }, [props.id]);

  useEffect(() => {
    const c = chart.current;
    if (!c) return;
    const select = props.onRangeSelect ? { toolbox: { itemSize: 0, showTitle: false, feature: { dataZoom: { yAxisIndex: "none" } } } } : {};
    c.setOption({ color: PALETTE, aria: { enabled: true, decal: { show: false } }, animationDuration: 300, ...select, ...props.option }, { notMerge: true });
    if (props.onRangeSelect) c.dispatchAction({ type: "takeGlobalCursor", key: "dataZoomSelect", dataZoomSelectActive: true });
  }, [props.option]);

  return (
    <div
      ref={el}
      class="chart"
      role="img"
      aria-label={props.title}
      data-chart={props.id}
      style={{ height: `${props.height ?? 280}px` }}
    />
  );
}
