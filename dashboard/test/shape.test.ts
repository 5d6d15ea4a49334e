// Data shaping: formats, CSV, heatmap cells, live query merges, routes and breadcrumbs.
import { describe, expect, it } from "vitest";
import { aggregationUnit, anomalyMarkers, catalogLabel, changeTone, forecastBands, summaryRows, weekOrMore, nearestTime, fillSteps, formatChange, formatValue, heatmap, label, mergeSince, openBucket, pointRange, seriesByTags, setCurrency, shownValue, stored, toCsv, viewRows } from "../src/shape";
import { breadcrumbs, drillTarget, exploreBody, filters, parseRoute, routeHash, seriesOf, timeParams } from "../src/route";

describe("formats", () => {
  it("shows values in their unit and changes with a sign", () => {
    expect(formatValue(0.3333, "ratio")).toBe("33.3%");
    expect(formatValue(0.0456, "ratio")).toBe("4.6%");
    expect(formatValue(65, "seconds")).toBe("1m 05s");
    expect(formatValue(3725, "seconds")).toBe("1h 02m");
    expect(formatValue(123456)).toBe("123.5K");
    expect(formatValue(null)).toBe("–");
    expect(formatChange(0.125)).toBe("+13%");
    expect(formatChange(0.034)).toBe("+3.4%");
    expect(formatChange(-0.5)).toBe("−50%");
    expect(formatChange(null)).toBe("");
  });

  it("colours a rise in errors or bounces as bad news", () => {
    expect(changeTone("page_views_today", 0.2)).toBe("up");
    expect(changeTone("api_error_rate", 0.2)).toBe("down");
    expect(changeTone("bounce_rate", -0.1)).toBe("up");
    expect(changeTone("x", 0)).toBe("flat");
  });
});

describe("CSV", () => {
  it("quotes what needs quoting and keeps every column", () => {
    const csv = toCsv([
      { path: "/a,b", visitors: 3 },
      { path: 'say "hi"', visitors: null, extra: "x" },
    ]);
    expect(csv).toBe('path,visitors,extra\r\n"/a,b",3,\r\n"say ""hi""",,x\r\n');
  });

  it("fills the minutes without views with 0 so the last hour is a line", () => {
    const points = [
      { timestamp: "2026-12-02T07:01:00Z", value: 3, tags: {} },
      { timestamp: "2026-12-02T07:04:00Z", value: 1, tags: {} },
    ];
    const filled = fillSteps(points, "2026-12-02T07:00:30Z", "2026-12-02T07:05:00Z", 60_000);
    expect(filled.map((p) => [p.timestamp, p.value])).toEqual([
      ["2026-12-02T07:01:00Z", 3],
      ["2026-12-02T07:02:00Z", 0],
      ["2026-12-02T07:03:00Z", 0],
      ["2026-12-02T07:04:00Z", 1],
    ]);
    // Nothing to fill: the empty state speaks instead of a line of zeros
    expect(fillSteps([], "2026-12-02T07:00:00Z", "2026-12-02T08:00:00Z", 60_000)).toEqual([]);
  });

  it("keeps text a spreadsheet would run as a formula as text, and numbers as numbers", () => {
    const csv = toCsv([
      { name: '=HYPERLINK("http://evil.example","x")', value: -3 },
      { name: "+1", value: 2 },
      { name: "@sum", value: 0 },
      { name: "-x", value: 1 },
    ]);
    expect(csv).toBe(
      'name,value\r\n"\'=HYPERLINK(""http://evil.example"",""x"")",-3\r\n\'+1,2\r\n\'@sum,0\r\n\'-x,1\r\n',
    );
  });

  it("takes a view's rows, steps, timeseries or figures", () => {
    expect(viewRows({ rows: [{ path: "/", visitors: 1 }], timeseries: [{ t: 1 }] })).toEqual([{ path: "/", visitors: 1 }]);
    // A breakdown's dimension leads, whatever order the API's keys come in
    const led = viewRows({ dimension: "path", rows: [{ pageviews: 3, path: "/", visitors: 2 }] });
    expect(Object.keys(led[0])).toEqual(["path", "pageviews", "visitors"]);
    expect(viewRows({ metrics: { visitors: { value: 3, previous: 2, change: 0.5 } } })).toEqual([
      { metric: "visitors", value: 3, previous: 2, change: 0.5 },
    ]);
    expect(viewRows({ data: [{ timestamp: "t", value: 2, values: { count: 2, sum: 4 }, tags: { path: "/x" } }] })).toEqual([
      { timestamp: "t", path: "/x", count: 2, sum: 4 },
    ]);
  });
});

describe("heatmap", () => {
  it("sums hourly points into weekday × hour cells (UTC)", () => {
    // 2026-11-23 is a Monday; 2026-11-30 the next one
    const h = heatmap([
      { timestamp: "2026-11-23T09:00:00Z", value: 2 },
      { timestamp: "2026-11-30T09:00:00Z", value: 3 },
      { timestamp: "2026-11-29T23:00:00Z", value: 1 },
      { timestamp: "2026-11-24T10:00:00Z", value: null },
    ]);
    expect(h.cells).toEqual([
      [9, 0, 5],
      [23, 6, 1],
    ]);
    expect(h.max).toBe(5);
  });
});

describe("live query merge", () => {
  it("replaces points from since on, drops those before the range and keeps series apart", () => {
    const p = (t: string, v: number, path = "/") => ({ timestamp: `2026-11-22T10:${t}:00Z`, value: v, tags: { path } });
    const shown = [p("00", 1), p("01", 2), p("02", 3), p("01", 9, "/b")];
    const merged = mergeSince(shown, [p("02", 4), p("03", 1)], "2026-11-22T10:02:00Z", "2026-11-22T10:01:00Z");
    expect(merged).toEqual([p("01", 2), p("02", 4), p("03", 1), p("01", 9, "/b")]);
    expect(seriesByTags(merged).map((s) => [s.name, s.data.length])).toEqual([
      ["/", 3],
      ["/b", 1],
    ]);
  });

  it("drills a click into the interval holding it", () => {
    expect(pointRange("2026-11-22T10:00:00Z", "1h")).toEqual({ start: "2026-11-22T10:00:00.000Z", end: "2026-11-22T11:00:00.000Z" });
    expect(pointRange(Date.parse("2026-11-22T10:37:12Z"), "5m")).toEqual({ start: "2026-11-22T10:35:00.000Z", end: "2026-11-22T10:40:00.000Z" });
    // 2026-11-25 is a Wednesday: its week began on Monday the 23rd
    expect(pointRange("2026-11-25T08:00:00Z", "1w").start).toBe("2026-11-23T00:00:00.000Z");
  });
});

describe("routes", () => {
  it("round-trips and falls back to the area's first view", () => {
    const r = parseRoute("#/web/sources?range=7d&country=DE");
    expect(r).toEqual({ area: "web", view: "sources", params: { range: "7d", country: "DE" } });
    expect(routeHash(r)).toBe("#/web/sources?range=7d&country=DE");
    expect(parseRoute("#/nowhere/x").area).toBe("overview");
    expect(parseRoute("#/web/bogus").view).toBe("overview");
  });

  it("leads back from a drill-down one step at a time", () => {
    const crumbs = breadcrumbs(parseRoute("#/web/overview?range=7d&source=Google&device=mobile"));
    expect(crumbs.map((c) => c.label)).toEqual(["Web analytics", "source = Google", "device = mobile"]);
    expect(crumbs[0].hash).toBe("#/web/overview?range=7d");
    expect(crumbs[1].hash).toBe("#/web/overview?range=7d&source=Google");
    // A page drilled into Explore: the metric, then the page
    const explore = breadcrumbs(parseRoute("#/explore/query?range=24h&metric=web.pages&path=%2Fdocs"));
    expect(explore.map((c) => c.label)).toEqual(["Explore", "web.pages", "path = /docs"]);
    // A narrowed time range is one crumb, start, end and interval together
    const narrowed = breadcrumbs(parseRoute("#/web/overview?start=2026-11-22T10:00:00.000Z&end=2026-11-22T11:00:00.000Z&interval=5m"));
    expect(narrowed.map((c) => c.label)).toEqual(["Web analytics", "from 2026-11-22 10:00 UTC"]);
  });
});

describe("drill-down", () => {
  it("takes a bar or slice to the view that can filter by it, keeping the range", () => {
    const at = (hash: string, dim: string, value: string) => routeHash(drillTarget(parseRoute(hash), dim, value));
    expect(at("#/web/sources?range=7d&device=mobile", "source", "Google")).toBe("#/web/overview?range=7d&device=mobile&source=Google");
    expect(at("#/web/pages?range=24h", "path", "/docs")).toBe("#/explore/query?range=24h&metric=web.pages&path=%2Fdocs");
    expect(at("#/business/products?range=30d&compare=1", "product", "p1")).toBe("#/business/sales?range=30d&compare=1&product=p1");
    expect(at("#/health/api", "route", "GET /x")).toBe("#/health/timeseries?route=GET+%2Fx");
    expect(at("#/ml/providers", "provider", "openai")).toBe("#/ml/overview?provider=openai");
  });
});

describe("a direct visit's source", () => {
  it("reads as Plausible's Direct / None and filters on the stored (none)", () => {
    // Given the source a visit without referrer or UTM source is stored under
    // When it is shown, and a click on it is turned back into a filter
    const shown = shownValue("source", "(none)");
    // Then it reads Direct / None, filters on (none), and other values and dimensions are as stored
    expect(shown).toBe("Direct / None");
    expect(stored("source", shown)).toBe("(none)");
    expect(shownValue("source", "google")).toBe("google");
    expect(shownValue("path", "(none)")).toBe("(none)");
    expect(stored("path", "Direct / None")).toBe("Direct / None");
  });
});

describe("openBucket", () => {
  const hour = 3_600_000;
  const series = [{ data: [[10 * hour, 5], [11 * hour, 7], [12 * hour, 1]] as [number, number | null][] }];
  it("greys the last point's bucket while it is still filling", () => {
    // Given hourly points whose last hour started 20 minutes ago
    // When the open bucket is asked for, Then it is that hour
    expect(openBucket(series, "1h", 12 * hour + 20 * 60_000)).toEqual({ start: 12 * hour, end: 13 * hour });
  });
  it("greys nothing once the last bucket has ended, or when there are no points", () => {
    expect(openBucket(series, "1h", 13 * hour)).toBeNull();
    expect(openBucket([{ data: [] }], "1h", 0)).toBeNull();
  });
  it("measures the bucket by the chart's interval", () => {
    expect(openBucket(series, "1d", 13 * hour)).toEqual({ start: 12 * hour, end: 12 * hour + 86_400_000 });
  });
});

describe("exploreBody", () => {
  it("asks for the chosen aggregation first, so it is the charted value, and keeps it out of the filters", () => {
    // Given Explore's route for p95 of API requests by route over 24 hours
    const route = parseRoute("#/explore/query?metric=api_request&aggregation=p95&group_by=route&range=24h");
    // When its query is built
    const body = exploreBody(route.params, filters(route), "24h", false);
    // Then p95 leads the aggregations, once, and no filter is made of the picker
    expect(body.aggregations).toEqual(["p95", "count", "sum", "avg", "uniques"]);
    expect(body.group_by).toEqual(["route"]);
    expect(body.filters).toEqual({});
  });
  it("reads a filter value starting with ! as not that value", () => {
    expect(exploreBody({}, { service: "!pulse", route: "/a" }, "24h", false).filters).toEqual({ service: { neq: "pulse" }, route: "/a" });
  });
  it("falls back to count for an aggregation it does not offer", () => {
    expect(exploreBody({ aggregation: "p42" }, {}, "7d", false).aggregations).toEqual(["count", "sum", "avg", "p95", "uniques"]);
  });
});

describe("seriesOf", () => {
  it("names a filtered chart's series as a prediction takes it, in tag order", () => {
    // Given Explore's page views filtered to Twitter on mobile
    const route = parseRoute("#/explore/query?metric=page_view&source=Twitter&device=mobile&range=30d");
    // Then the series the forecast is asked for is both equalities, sorted by tag
    expect(seriesOf(filters(route))).toBe("device=mobile,source=Twitter");
    // And no filter is the metric's total
    expect(seriesOf({})).toBe("");
  });
  it("has no series for a filter a selector cannot say", () => {
    expect(seriesOf({ service: "!pulse" })).toBeNull();
    expect(seriesOf({ route: "/a,/b" })).toBeNull();
  });
});

describe("label", () => {
  it("spells pageviews one way, as Plausible does, whatever the API calls them", () => {
    expect(["pageviews", "page_view", "page_views_today", "Page views"].map(label)).toEqual(["Pageviews", "Pageviews", "Pageviews today", "Pageviews"]);
    expect(label("p95_latency_ms")).toBe("P95 latency ms");
  });
});

describe("anomalyMarkers", () => {
  const hour = 3_600_000;
  const line: [number, number | null][] = [[0, 10], [hour, 12], [2 * hour, 300], [3 * hour, 11]];
  const spike = { timestamp: new Date(2 * hour).toISOString(), value: 300, expected: 11.4, low: 2, high: 20.5, severity: "critical", feature: "new_level" };
  it("pins an anomaly on the charted point of its time, explained as actual against expected", () => {
    // Given a spike the detector found at the line's third point
    // When its markers are made, Then one sits on that point and says what was expected
    const [m, ...rest] = anomalyMarkers([spike], line);
    expect(rest).toEqual([]);
    expect(m.coord).toEqual([2 * hour, 300]);
    expect(m.text).toBe("critical: 300 vs expected 11.4 (usual 2–20.5), new level");
  });
  it("leaves out an anomaly before the charted points", () => {
    expect(anomalyMarkers([{ ...spike, timestamp: new Date(-hour).toISOString() }], line)).toEqual([]);
  });
});

describe("nearestTime", () => {
  it("snaps a click to the nearest point drawn", () => {
    // Given hourly points, When a click lands 40 minutes after the second, Then it is the third
    const hour = 3_600_000;
    expect(nearestTime([0, hour, 2 * hour], hour + 40 * 60_000)).toBe(2 * hour);
    expect(nearestTime([0, hour, 2 * hour], hour + 10 * 60_000)).toBe(hour);
    expect(nearestTime([], 5)).toBe(5);
  });
});

describe("explore summary", () => {
  it("lists one row per group, largest of the chosen aggregation first, missing values last", () => {
    const rows = summaryRows(
      [
        { tags: { route: "/a" }, values: { p95: 120, count: 10 } },
        { tags: { route: "/b" }, values: { p95: null, count: 1 } },
        { tags: { route: "/c" }, values: { p95: 900, count: 2 } },
      ],
      "p95",
    );
    expect(rows.map((r) => r.route)).toEqual(["/c", "/a", "/b"]);
    expect(rows[0]).toEqual({ route: "/c", p95: 900, count: 2 });
    expect(Object.keys(summaryRows([{ tags: { route: "/a" }, values: { avg: 1, count: 2, p95: 3 } }], "p95")[0])).toEqual(["route", "p95", "avg", "count"]);
  });

  it("gives a value its metric's unit unless it counts", () => {
    expect(aggregationUnit("p95", "ms")).toBe("ms");
    expect(aggregationUnit("count", "ms")).toBe("");
    expect(aggregationUnit("uniques", "currency")).toBe("");
    expect(aggregationUnit("sum", null)).toBe("");
  });

  it("names a catalog metric with its events, unit and tags", () => {
    const m = { name: "api_request", events: 12345, unit: "ms", aggregation: "p95", tags: { route: { values: ["/a"], more: false }, status: { values: ["200"], more: false } } };
    expect(catalogLabel(m)).toBe("api_request · 12.3K events · ms · by route, status");
    expect(catalogLabel({ ...m, unit: null, tags: {} })).toBe("api_request · 12.3K events");
  });
});

describe("forecast", () => {
  it("draws each interval as a band stacked on its lower bound", () => {
    const b = forecastBands([{ date: "2026-12-03", forecast: 10, lo80: 8, hi80: 12, lo95: 6, hi95: 15 }]);
    const t = Date.parse("2026-12-03T00:00:00Z");
    expect(b.forecast).toEqual([[t, 10]]);
    expect(b.lo80).toEqual([[t, 8]]);
    expect(b.width80).toEqual([[t, 4]]);
    expect(b.lo95).toEqual([[t, 6]]);
    expect(b.width95).toEqual([[t, 9]]);
  });

  it("forecasts only over ranges of a week or more", () => {
    expect(weekOrMore("24h")).toBe(false);
    expect(weekOrMore("7d")).toBe(true);
    expect(weekOrMore("2w")).toBe(true);
    expect(weekOrMore("", "2026-11-01T00:00:00Z", "2026-11-03T00:00:00Z")).toBe(false);
    expect(weekOrMore("", "2026-11-01T00:00:00Z", "2026-11-30T00:00:00Z")).toBe(true);
  });
});

describe("the time every area keeps", () => {
  it("is the range or custom span and the comparison, not the filters or the metric", () => {
    // Given a route with a time, a comparison, a filter and Explore's parameters
    const r = parseRoute("#/web/sources?range=6h&compare=1&country=DE&metric=x");
    // Then switching area keeps the time and the comparison only
    expect(timeParams(r)).toEqual({ range: "6h", compare: "1" });
    expect(timeParams(parseRoute("#/health/api?start=2026-01-01T00:00:00Z&end=2026-01-02T00:00:00Z"))).toEqual({ start: "2026-01-01T00:00:00Z", end: "2026-01-02T00:00:00Z" });
  });
});

describe("money", () => {
  it("is shown in the tenant's currency, and as a plain number without one", () => {
    // Given a tenant that reports in euros, then one that chose none, then an unknown code
    setCurrency("EUR");
    expect(formatValue(1234.5, "currency")).toBe("€1,234.50");
    setCurrency("JPY");
    expect(formatValue(1234.5, "currency")).toBe("¥1,235");
    setCurrency(null);
    expect(formatValue(1234.5, "currency")).toBe("1,234.50");
    setCurrency("??");
    expect(formatValue(1234.5, "currency")).toBe("1,234.50");
  });
});
