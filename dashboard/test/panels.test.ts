// Top panels under filter chips: which panels apply which filters.
import { describe, expect, it } from "vitest";
import { panelsFrom } from "../src/panels";

const top = { sources: [{ source: "Google" }], pages: [{ path: "/" }], countries: [{ country: "DE" }], devices: [{ device: "mobile" }] };

describe("top panels under filters", () => {
  it("split pages by one visit dimension, and say which filter they cannot apply", () => {
    const pages = (chosen: Record<string, string>) => panelsFrom(top, chosen).find((p) => p.view === "pages");
    expect(pages({ device: "mobile" })).toMatchObject({ rows: [{ path: "/" }], unfiltered: [] });
    expect(pages({ source: "Google", country: "DE" })).toMatchObject({ rows: [], unfiltered: ["country"] });
    expect(pages({ browser: "Firefox" })).toMatchObject({ rows: [], unfiltered: ["browser"] });
    expect(panelsFrom(top, { source: "Google", country: "DE" }).find((p) => p.view === "sources")?.unfiltered).toEqual([]);
  });
});
