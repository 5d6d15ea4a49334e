// Chart options: what a gauge draws for a known and an unknown value.
import { describe, expect, it } from "vitest";
import { gaugeOption } from "../src/widgets";

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
