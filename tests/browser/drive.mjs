// Drive the system Chromium through the ui-app example and the debugger.
// Usage: node drive.mjs <emulator url> [published]; prints one JSON report on stdout.
// "published": the UI as published to S3 behind a CloudFront-like front, where there
// is no debugger: a deep link and the base path without its slash instead.
import { chromium } from "playwright-core";

const base = process.argv[2];
const published = process.argv[3] === "published";
const executablePath = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const report = { failed: [], consoleErrors: [], ui: {}, debugger: {}, websockets: [] };

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
  ],
});

function watch(page, name) {
  page.on("requestfailed", (r) => {
    report.failed.push(`${name}: ${r.method()} ${r.url()} ${r.failure()?.errorText}`);
  });
  page.on("response", (r) => {
    if (r.status() >= 400) report.failed.push(`${name}: ${r.request().method()} ${r.url()} ${r.status()}`);
  });
  page.on("console", (m) => { if (m.type() === "error") report.consoleErrors.push(`${name}: ${m.text()}`); });
  page.on("pageerror", (e) => report.consoleErrors.push(`${name}: ${e.message}`));
  page.on("websocket", (ws) => {
    const entry = { url: ws.url(), received: [] };
    report.websockets.push(entry);
    ws.on("framereceived", (frame) => entry.received.push(String(frame.payload).slice(0, 200)));
  });
}

// The debugger: list workflows, start a run, watch it wait, send the answer.
async function debuggerRun(context) {
  const dbg = await context.newPage();
  watch(dbg, "debugger");
  await dbg.goto(`${base}/debugger`, { waitUntil: "networkidle" });
  report.debugger.url = dbg.url();
  await dbg.waitForFunction(() => document.querySelector("#workflow").options.length > 0);
  report.debugger.workflows = await dbg.$$eval("#workflow option", (os) => os.map((o) => o.value));
  await dbg.fill("#start-input", JSON.stringify({ topic: "tea" }));
  await dbg.click("#start");
  await dbg.waitForSelector("#events li.waiting", { timeout: 15000 });
  await dbg.fill("#event-input", JSON.stringify({ type: "HumanResponseEvent", value: { response: "green" } }));
  await dbg.click("#send");
  await dbg.waitForSelector("#result-box:not([hidden])", { timeout: 15000 });
  report.debugger.status = await dbg.textContent("#status");
  report.debugger.result = await dbg.textContent("#result");
  report.debugger.events = await dbg.$$eval("#events .type", (items) => items.map((i) => i.textContent));
}

// A client-side route is answered with the app (SPA fallback), assets and all; the
// base path without its slash is redirected to the app.
async function deepLinks(context) {
  const deep = await context.newPage();
  watch(deep, "deep-link");
  const response = await deep.goto(`${base}/deployments/ui-app/ui/runs/abc/details`,
    { waitUntil: "networkidle" });
  report.deepLink = { status: response.status(), title: await deep.title(),
    hasStart: (await deep.$("#start")) !== null };
  const bare = await context.newPage();
  watch(bare, "bare");
  await bare.goto(`${base}/deployments/ui-app/ui`, { waitUntil: "networkidle" });
  report.bareUrl = bare.url();
}

try {
  const context = await browser.newContext();
  // The example UI: start a run, see its events, answer its question, see the result.
  const page = await context.newPage();
  watch(page, "ui");
  await page.goto(`${base}/deployments/ui-app/ui/`, { waitUntil: "networkidle" });
  report.ui.title = await page.title();
  await page.fill("#topic", "colour");
  await page.click("#start");
  await page.waitForSelector("#prompt-form:not([hidden])", { timeout: 15000 });
  report.ui.prompt = await page.textContent("#prompt");
  await page.fill("#answer", "blue");
  await page.click("#send");
  await page.waitForFunction(() => document.querySelector("#result").textContent !== "",
    null, { timeout: 15000 });
  report.ui.result = await page.textContent("#result");
  report.ui.events = await page.$$eval("#events li", (items) => items.map((li) => li.textContent));

  if (published) await deepLinks(context);
  else await debuggerRun(context);
} catch (error) {
  report.error = String(error && error.stack || error);
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
