// The benchmark page (bench.html): a 1,000-point line chart with zoom rendered from scratch 15
// times, as the Chart component does (init + setOption); the end-to-end test reads the result.
import { renderTimed } from "./charts";
import { lineOption } from "./widgets";

const el = document.getElementById("chart") as HTMLElement;
const out = document.querySelector("output") as HTMLOutputElement;
const start = Date.parse("2026-11-21T00:00:00Z");
const data: [number, number][] = Array.from({ length: 1000 }, (_, i) => [start + i * 60_000, 50 + 30 * Math.sin(i / 40) + (i % 7)]);
const option = { ...lineOption([{ name: "page views", data }], { zoom: true }), animation: false };
renderTimed(el, option); // warm-up: code paths compiled, fonts measured
const times: number[] = [];
for (let i = 0; i < 15; i++) times.push(renderTimed(el, option));
times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)];
out.dataset.median = median.toFixed(1);
out.dataset.max = times[times.length - 1].toFixed(1);
out.dataset.done = "1";
out.textContent = `median ${median.toFixed(1)} ms, slowest ${times[times.length - 1].toFixed(1)} ms`;
