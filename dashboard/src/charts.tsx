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

export const PALETTE = ["#1d4ed8", "#c2410c", "#047857", "#7c3aed", "#b91c1c", "#0e7490", "#a16207", "#be185d"];

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
}) {
  const el = useRef<HTMLDivElement>(null);
  const chart = useRef<echarts.ECharts | null>(null);
  const click = useRef(props.onClick);
  click.current = props.onClick;
  const timeClick = useRef(props.onTimeClick);
  timeClick.current = props.onTimeClick;

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
    chart.current?.setOption(
      { color: PALETTE, aria: { enabled: true, decal: { show: false } }, animationDuration: 300, ...props.option },
      { notMerge: true },
    );
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
