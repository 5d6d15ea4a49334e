// A newcomer's first `make dev`, checked in headless Chromium: with demo traffic on, every
// view of every area (as an admin of tenant `demo`, over the last 30 days) has no card without
// a number ("–") and no "No data in this range" once the demo history is in. Run it beside a
// running `make dev`: `node dashboard/e2e/first-run.mjs` (PULSE_URL, CHROMIUM as in e2e.mjs).
// Prints how long after its start every view was filled; screenshots go to e2e/artifacts/.

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
await browser.close();
process.exit(failed ? 1 : 0);
