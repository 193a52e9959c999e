// The ui-app example behind auth = "key" in the system Chromium: the UI's API calls are
// refused, a page navigation leads to the sign-in page, a key becomes a session cookie,
// then the UI works unchanged. Usage: node sign_in.mjs <emulator url> <key>; prints
// one JSON report on stdout.
import { chromium } from "playwright-core";

const [base, key] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const report = { failed: [], consoleErrors: [], ui: {} };
let watching = false; // only what happens once signed in counts as a failure

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
  ],
});

try {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on("response", (r) => {
    if (watching && r.status() >= 400) report.failed.push(`${r.request().method()} ${r.url()} ${r.status()}`);
  });
  page.on("console", (m) => { if (watching && m.type() === "error") report.consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => report.consoleErrors.push(e.message));

  // 1. The UI loads, but starting a run is refused: no credentials yet.
  await page.goto(`${base}/deployments/ui-app/ui/`, { waitUntil: "networkidle" });
  await page.fill("#topic", "colour");
  await page.click("#start");
  await page.waitForFunction(() => document.querySelector("#result").textContent !== "",
    null, { timeout: 15000 });
  report.before = await page.textContent("#result");

  // 2. Opening the deployment sends the browser to the sign-in page.
  await page.goto(`${base}/deployments/ui-app/`, { waitUntil: "networkidle" });
  report.signInUrl = page.url();

  // 3. A wrong key: the page says why, no cookie.
  await page.fill("#key", "llamaws_0123456789ab_" + "A".repeat(43));
  const [wrong] = await Promise.all([
    page.waitForNavigation({ waitUntil: "networkidle" }),
    page.click("#sign-in"),
  ]);
  report.wrongKey = { status: wrong.status(), error: (await page.textContent(".error")).trim() };

  // 4. The key: a session cookie, and on to the UI.
  await page.fill("#key", key);
  await Promise.all([
    page.waitForURL(/\/deployments\/ui-app\/ui\/$/, { waitUntil: "networkidle" }),
    page.click("#sign-in"),
  ]);
  report.afterSignIn = page.url();
  const cookies = await context.cookies();
  report.cookie = cookies.find((c) => c.name === "llamaws_session") || null;
  report.documentCookie = await page.evaluate(() => document.cookie);

  // 5. The example UI, unchanged: start a run, see its question, answer it, see its
  // result (the UI resumes its event stream after the last id when a stream ends).
  watching = true;
  await page.fill("#topic", "colour");
  await page.click("#start");
  await page.waitForSelector("#prompt-form:not([hidden])", { timeout: 20000 });
  report.ui.prompt = await page.textContent("#prompt");
  await page.fill("#answer", "blue");
  const [answered] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === "POST" && /\/events\//.test(r.url())),
    page.click("#send"),
  ]);
  report.ui.answerStatus = answered.status();
  await page.waitForFunction(() => document.querySelector("#result").textContent !== "",
    null, { timeout: 20000 });
  report.ui.result = await page.textContent("#result");
} catch (error) {
  report.error = String(error && error.stack || error);
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
