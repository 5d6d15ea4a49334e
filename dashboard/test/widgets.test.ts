// Chart options: what a gauge draws for a known and an unknown value.
import { describe, expect, it } from "vitest";
import { PALETTE } from "../src/charts";
import { gaugeOption, lineOption } from "../src/widgets";

type Gauge = { pointer: { show: boolean }; detail: { formatter: string }; axisLine: { lineStyle: { color: [number, string][] } } };

describe("gauge", () => {
  it("shows no needle for an unknown value and keeps the target band", () => {
    const unknown = (gaugeOption("error rate", null, 0.01, true).series as Gauge[])[0];
    expect(unknown.pointer.show).toBe(false);
    expect(unknown.detail.formatter).toBe("–");
    expect(unknown.axisLine.lineStyle.color[0][0]).toBeCloseTo(0.2);
    const known = (gaugeOption("error rate", 0.004, 0.01, true).series as Gauge[])[0];
    expect(known.pointer.show).toBe(true);
  });
});

describe("line legend", () => {
  type Legend = { formatter: (name: string) => string };
  it("says each line's last, average and highest value, leaving out the bucket still filling", () => {
    // Given visitors per hour of which the last hour is still filling
    const hour = 3_600_000;
    const now = 10 * hour + 60_000;
    const data: [number, number | null][] = [[7 * hour, 3], [8 * hour, null], [9 * hour, 5], [10 * hour, 1]];
    // When the chart is drawn
    const legend = lineOption([{ name: "visitors", data }], { interval: "1h", now }).legend as Legend;
    // Then the legend reads the complete hours only, in the line's unit
    expect(legend.formatter("visitors")).toBe("visitors  last 5 · avg 4 · max 5");
    const ms = lineOption([{ name: "p95", data: [[0, 1200], [hour, 800]] }], { unit: "ms" }).legend as Legend;
    expect(ms.formatter("p95")).toBe("p95  last 800 ms · avg 1,000 ms · max 1,200 ms");
  });

  it("has twenty colours, so up to twenty lines never share one", () => {
    expect(PALETTE.length).toBe(20);
    expect(new Set(PALETTE.map((c) => c.toLowerCase())).size).toBe(20);
  });
});
