// A newcomer's first `make dev`, checked in headless Chromium: with demo traffic on, every
// view of every area (as an admin of tenant `demo`, over the last 30 days) has no card without
// a number ("–") and no "No data in this range" once the demo history is in. Run it beside a
// running `make dev`: `node dashboard/e2e/first-run.mjs` (PULSE_URL, CHROMIUM as in e2e.mjs).
// Prints how long after its start every view was filled, then each view's draw time after a
// click (median of 5, at 24h, 7d and 30d; over 1 s fails), then checks the numbers'
// invariants on the demo after 5 minutes; screenshots go to e2e/artifacts/.

import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const base = process.env.PULSE_URL ?? "http://127.0.0.1:3000";
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const deadline = Date.now() + Number(process.env.FIRST_RUN_WAIT_SECS ?? 300) * 1000;
const artifacts = join(here, "artifacts", "first-run");
mkdirSync(artifacts, { recursive: true });
const t0 = Date.now();

async function token() {
  for (;;) {
    const res = await fetch(`${base}/dev/token`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ tenant: "demo", role: "admin" }),
    }).catch(() => null);
    if (res?.ok) return (await res.json()).token;
    if (Date.now() > deadline) throw new Error("the local cloud never answered");
    await new Promise((r) => setTimeout(r, 1000));
  }
}

const VIEWS = [
  "overview/overview", "web/overview", "web/pages", "web/sources", "web/devices", "web/countries",
  "business/overview", "business/sales", "business/products", "business/collections",
  "health/overview", "health/api", "ml/overview", "ml/providers",
];

const tok = await token();
const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
await context.addInitScript((t) => sessionStorage.setItem("pulse.token", t), tok);
const page = await context.newPage();

/** What is still missing on a view: cards showing "–" and charts in their empty state. */
async function missing(view) {
  await page.goto(`${base}/#/${view}?range=30d`);
  await page.waitForLoadState("networkidle");
  await page.waitForTimeout(1500);
  return page.evaluate(() => {
    const gaps = [];
    for (const card of document.querySelectorAll(".card")) {
      const value = card.querySelector(".value");
      if (value && value.textContent.trim() === "–") gaps.push(`card ${card.dataset.card ?? card.textContent.slice(0, 30)}`);
    }
    for (const empty of document.querySelectorAll(".empty")) {
      const panel = empty.closest("section, .panel, article");
      gaps.push(`empty ${panel?.querySelector("h2, h3")?.textContent ?? "panel"}`);
    }
    return gaps;
  });
}

let failed = 0;
for (const view of VIEWS) {
  let gaps = [];
  for (;;) {
    gaps = await missing(view);
    if (!gaps.length || Date.now() > deadline) break;
    await page.waitForTimeout(5000);
  }
  await page.screenshot({ path: join(artifacts, `${view.replace("/", "-")}.png`), fullPage: true });
  if (gaps.length) {
    failed += 1;
    console.log(`FAIL ${view}: ${gaps.join("; ")}`);
  } else {
    console.log(`ok   ${view} filled ${Math.round((Date.now() - t0) / 1000)} s after the start`);
  }
}
// Then each view's draw time, as a user switching views sees it: from the hash change a nav
// link makes to the view's answer drawn (its section no longer loading), five times per view
// and range, each time coming from another view so no answer is reused.
const ranges = (process.env.FIRST_RUN_RANGES ?? "24h,7d,30d").split(",");
const drawn = async (view, range) => {
  const started = await page.evaluate(([v, r]) => {
    location.hash = `#/${v}?range=${r}`;
    return performance.now();
  }, [view, range]);
  if (view === "overview/overview") {
    // The overview is cards and a traffic panel, not a view section.
    await page.waitForFunction(() => !document.querySelector("section[data-view]") && document.querySelector(".card .value") && !document.querySelector('[data-loading="1"]'), null, { timeout: 30_000, polling: "raf" });
  } else {
    // Polled every animation frame: a locator's wait backs off to 500 ms between tries, which
    // would round every draw up to its next try.
    await page.waitForFunction((v) => document.querySelector(`section[data-view="${v}"][data-loading="0"]`) && !document.querySelector('[data-loading="1"]'), view, { timeout: 30_000, polling: "raf" });
  }
  return (await page.evaluate(() => performance.now())) - started;
};
const slow = [];
for (const range of ranges) {
  for (const view of VIEWS) {
    const times = [];
    for (let i = 0; i < 5; i++) {
      const other = VIEWS[(VIEWS.indexOf(view) + 1 + i) % VIEWS.length];
      await drawn(other, range);
      // A user looks at a view before the next click; back-to-back switches would time the
      // previous view's chart animation too.
      await page.waitForTimeout(1000);
      times.push(await drawn(view, range));
    }
    times.sort((a, b) => a - b);
    const median = times[2];
    if (median > 1000) slow.push(`${view} ${range}`);
    console.log(`draw ${view} ${range}: median ${Math.round(median)} ms, max ${Math.round(times[4])} ms`);
  }
}
if (slow.length) console.log(`FAIL over 1 s (median of 5): ${slow.join(", ")}`);

// Then the invariants of the dashboard's numbers, on the demo tenant once its traffic has run
// 5 minutes (as tests/invariants.rs checks them over generated traffic): a card is the sum of
// its sparkline, the web overview's pageviews the sum of its chart, current visitors no more
// than today's, every rate within [0, 1], funnel steps never growing, and totals never down.
const wait = 5 * 60_000 - (Date.now() - t0);
if (wait > 0) await new Promise((r) => setTimeout(r, wait));
const read = async (path) => {
  const res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${tok}` } });
  if (!res.ok) throw new Error(`${path}: ${res.status}`);
  return res.json();
};
const broken = [];
const card = (cards, id) => cards.cards.find((c) => c.id === id);
const cards = await read("/api/v1/metrics");
const views = card(cards, "page_views_today");
const sparkSum = views.sparkline.reduce((a, v) => a + (v ?? 0), 0);
if (views.value !== sparkSum) broken.push(`page views today ${views.value} ≠ its sparkline's sum ${sparkSum}`);
const current = card(cards, "current_visitors")?.value;
const today = card(cards, "unique_visitors_today")?.value;
if (!(current <= today)) broken.push(`current visitors ${current} > today's ${today}`);
const web = await read("/api/v1/web/overview?range=24h");
const charted = web.timeseries.reduce((a, p) => a + (p.pageviews ?? 0), 0);
if (web.metrics.pageviews.value !== charted) broken.push(`web overview pageviews ${web.metrics.pageviews.value} ≠ its chart's sum ${charted}`);
const rates = [];
const walk = (v, at) => {
  if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${at}/${i}`));
  else if (v && typeof v === "object") {
    for (const [k, x] of Object.entries(v)) {
      if ((k.endsWith("rate") || k.startsWith("conversion")) && (x === null || typeof x === "number")) rates.push([`${at}/${k}`, x]);
      if (k.endsWith("rate") && x && typeof x === "object") for (const f of ["value", "previous", "previous_period", "previous_year"]) if (f in x) rates.push([`${at}/${k}/${f}`, x[f]]);
      walk(x, `${at}/${k}`);
    }
  }
};
for (const path of ["/api/v1/web/overview?range=24h", "/api/v1/web/sources?range=24h", "/api/v1/business/overview?range=24h", "/api/v1/business/products?range=24h", "/api/v1/business/collections?range=24h", "/api/v1/business/funnel?range=24h", "/api/v1/health/overview?range=24h", "/api/v1/ml/overview?range=24h", "/api/v1/metrics"]) {
  const answer = await read(path);
  walk(answer, path);
  const steps = (answer.steps ?? []).map((s) => s.visitors);
  if (steps.some((v, i) => i > 0 && v > steps[i - 1])) broken.push(`${path}: funnel steps grow ${steps}`);
}
for (const [at, v] of rates) if (!(v === null || (v >= 0 && v <= 1))) broken.push(`${at} = ${v}`);
let before = views.value;
for (let i = 0; i < 6; i++) {
  await new Promise((r) => setTimeout(r, 10_000));
  const now = card(await read("/api/v1/metrics"), "page_views_today").value;
  if (now < before) broken.push(`page views today went down: ${before} → ${now}`);
  before = now;
}
if (broken.length) console.log(`FAIL invariants on the demo: ${broken.join("; ")}`);
else console.log(`ok   invariants on the demo after ${Math.round((Date.now() - t0) / 60_000)} min: ${rates.length} rates in [0, 1], cards and charts agree, totals never down`);
await browser.close();
process.exit(failed || slow.length || broken.length ? 1 : 0);
